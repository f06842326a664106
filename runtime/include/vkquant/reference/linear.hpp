// CPU references for kernels/linear.hpp (fp64 accumulation).
#pragma once

#include <cstdint>
#include <span>

namespace vkq::ref {

// y (batch, out) = x (batch, in) · wᵀ with w (out, in); with `accumulate`, y += x · wᵀ.
void linear(std::span<const float> w, std::span<const float> x, std::span<float> y, std::uint32_t out,
            std::uint32_t in, std::uint32_t batch, bool accumulate = false);

// y (n, k, out) [t][j] = w[ids[t*k + j]] (out, in) · xrow, xrow = x (n, in) [t] or,
// if x_per_slot, x (n, k, in) [t][j]; w (experts, out, in); ids >= experts give zeros.
void linear_id(std::span<const float> w, std::span<const std::uint32_t> ids, std::span<const float> x,
               bool x_per_slot, std::span<float> y, std::uint32_t experts, std::uint32_t out, std::uint32_t in,
               std::uint32_t n, std::uint32_t k);

}  // namespace vkq::ref
