// CPU twin of vkq::kernels::fwht (naive, fp64 butterflies).
#pragma once

#include <cstdint>

namespace vkq::ref {

// y (rows, n) = H·D·x/sqrt(n) per row of x (rows, n), or D·H·x/sqrt(n) with
// `inverse`; D = diag(kernels::srht_sign(seed, i)) with `srht`, else I.
// n a power of two; x and y may alias.
void fwht(const float* x, float* y, std::uint64_t rows, std::uint32_t n, bool srht, std::uint32_t seed,
          bool inverse);

// The textbook definition, O(n^2) per row: y_i = sum_j (-1)^popcount(i&j) x_j / sqrt(n)
// (no signs); used to check the butterfly reference itself.
void hadamard_naive(const float* x, float* y, std::uint64_t rows, std::uint32_t n);

}  // namespace vkq::ref
