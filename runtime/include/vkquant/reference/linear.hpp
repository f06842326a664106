// CPU references for kernels/linear.hpp (fp64 accumulation).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "vkquant/quant.hpp"

namespace vkq::ref {

// y (batch, out) = x (batch, in) · wᵀ with w (out, in); with `accumulate`, y += x · wᵀ.
void linear(std::span<const float> w, std::span<const float> x, std::span<float> y, std::uint32_t out,
            std::uint32_t in, std::uint32_t batch, bool accumulate = false);

// y (n, k, out) [t][j] = w[ids[t*k + j]] (out, in) · xrow, xrow = x (n, in) [t] or,
// if x_per_slot, x (n, k, in) [t][j]; w (experts, out, in); ids >= experts give zeros.
void linear_id(std::span<const float> w, std::span<const std::uint32_t> ids, std::span<const float> x,
               bool x_per_slot, std::span<float> y, std::uint32_t experts, std::uint32_t out, std::uint32_t in,
               std::uint32_t n, std::uint32_t k);

// Weights as the kernels read them: rows of `stride` bytes, each starting
// with quant::row_bytes(type, in) bytes of that type (kernels::linear_pack's
// layout: stride = kernels::linear_row_bytes(in, type)).
struct TypedRows {
  std::span<const std::byte> bytes;
  quant::Type type = quant::Type::f32;
  std::uint64_t stride = 0;
};

// The rows [first, first + count) of w decoded with quant::dequantize: (count, in).
std::vector<float> dequantize_rows(const TypedRows& w, std::uint32_t first, std::uint32_t count, std::uint32_t in);

// linear / linear_id above on typed rows (w: out rows; linear_id: experts × out rows).
void linear(const TypedRows& w, std::span<const float> x, std::span<float> y, std::uint32_t out, std::uint32_t in,
            std::uint32_t batch, bool accumulate = false);
void linear_id(const TypedRows& w, std::span<const std::uint32_t> ids, std::span<const float> x, bool x_per_slot,
               std::span<float> y, std::uint32_t experts, std::uint32_t out, std::uint32_t in, std::uint32_t n,
               std::uint32_t k);

}  // namespace vkq::ref
