// CPU twin of kernels/rotate.hpp: Y = X Rᵀ (block-diagonal with blocks > 1),
// fp64 accumulation.
#pragma once

#include <cstdint>
#include <span>

namespace vkq::ref {

// y[t][i] = sum_j r[t % blocks][i][j] * x[t][j] for rows [first, first +
// count) of x and y (whole buffers, row-major): x (rows, d),
// r (blocks, d, d), y (rows, d).
void rotate(std::span<const float> x, std::span<const float> r, std::span<float> y, std::uint32_t d,
            std::uint64_t first = 0, std::uint64_t count = ~std::uint64_t(0), std::uint32_t blocks = 1);

}  // namespace vkq::ref
