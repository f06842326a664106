// CPU reference of the transformer ops (vkquant/kernels/ops.hpp): naive loops,
// fp64 accumulation.
#pragma once

#include <cstdint>
#include <span>

#include "vkquant/rope.hpp"

namespace vkq::ref {

// table (vocab, dim) as floats (an fp16 table already widened), ids (n) ->
// out (n, dim); ids >= vocab give zeros.
void embed(std::span<const float> table, std::uint32_t vocab, std::uint32_t dim, std::span<const std::uint32_t> ids,
           std::span<float> out);

// x (rows, d), weight (d) -> y (rows, d); y may be x.
void rmsnorm(std::span<const float> x, std::span<const float> weight, std::span<float> y, std::uint32_t rows,
             std::uint32_t d, float eps);

// In place on x (n, heads, table.hd): rope_apply at position pos0 + t (fp64
// angles and cos/sin). neox: pairs (i, i + hd/2); else pairs (2i, 2i+1).
void rope(std::span<float> x, std::uint32_t n, std::uint32_t heads, std::uint32_t pos0, const RopeTable& table,
          bool neox);

// out (count) = silu(gate) * up.
void swiglu(std::span<const float> gate, std::span<const float> up, std::span<float> out);

// x (count) += y (count).
void add(std::span<float> x, std::span<const float> y);

// y (rows, d) += bias (d).
void add_bias(std::span<float> y, std::span<const float> bias, std::uint32_t rows, std::uint32_t d);

// logits (n, E) -> ids (n, k), weights (n, k): softmax, top-k by logit
// (descending, ties to the lower index), optionally renormalised.
void moe_route(std::span<const float> logits, std::span<std::uint32_t> ids, std::span<float> weights,
               std::uint32_t n, std::uint32_t experts, std::uint32_t k, bool normalize);

// y (n, k, d), weights (n, k) -> out (n, d), added to it when accumulate.
void moe_combine(std::span<const float> y, std::span<const float> weights, std::span<float> out, std::uint32_t n,
                 std::uint32_t k, std::uint32_t d, bool accumulate);

}  // namespace vkq::ref
