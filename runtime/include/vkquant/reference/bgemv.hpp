// Naive CPU twins of the bgemv kernels (fp64 accumulation).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace vkq::ref {

// y[b][i] = c_i sum_j x_bj + alpha_i sum_j s_ij x_bj + sum_k P_ik sum_j Q_jk x_bj,
// s_ij = +1 where bit j of row i is set, else -1.
void bgemv(std::span<const std::uint32_t> bits,  // (out, words)
           std::span<const float> c,             // (out)
           std::span<const float> alpha,         // (out)
           std::span<const float> p,             // (out, rank)
           std::span<const float> q,             // (in, rank)
           std::span<const float> x,             // (batch, in)
           std::span<float> y,                   // (batch, out)
           std::uint32_t out, std::uint32_t in, std::uint32_t words, std::uint32_t rank, std::uint32_t batch);

// The weights a binary code stands for: w_ij = c_i + alpha_i s_ij.
std::vector<float> bgemv_decode(std::span<const std::uint32_t> bits,  // (out, words)
                                std::span<const float> c,             // (out)
                                std::span<const float> alpha,         // (out)
                                std::uint32_t out, std::uint32_t in, std::uint32_t words);  // -> (out, in)

}  // namespace vkq::ref
