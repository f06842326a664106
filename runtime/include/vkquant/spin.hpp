// Busy work of a chosen length: keeps a queue executing real work for as long
// as asked, so fence timeouts can be tested against work that is truly in
// flight (not an injected VK_TIMEOUT). Not a model kernel.
#pragma once

#include <cstdint>
#include <vector>

#include "vkquant/buffer.hpp"
#include "vkquant/stream.hpp"

namespace vkq::spin {

// Longest loop: llvmpipe ends an invocation's loops after 65535 trips in all.
inline constexpr std::uint32_t kMaxIters = 4096;

// Records out[i] = xorshift32^(16 * iters)((seed ^ i) | 1) for i < n (uint32
// each), iters <= kMaxIters. The run time grows with n * iters.
void record(Stream& s, Buffer& out, std::uint32_t n, std::uint32_t iters, std::uint32_t seed);

// The CPU twin: the same n values.
std::vector<std::uint32_t> reference(std::uint32_t n, std::uint32_t iters, std::uint32_t seed);

}  // namespace vkq::spin
