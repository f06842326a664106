#include "vkquant/spin.hpp"

#include <string>

#include "spin.h"
#include "vkquant/device.hpp"

namespace vkq::spin {

static_assert(sizeof(gpu::SpinParams) == 16);

void record(Stream& s, Buffer& out, std::uint32_t n, std::uint32_t iters, std::uint32_t seed) {
  if (std::uint64_t(n) * 4 > out.size()) throw Error("spin::record: n exceeds the buffer");
  if (iters > kMaxIters) throw Error("spin::record: iters " + std::to_string(iters) + " is above " + std::to_string(kMaxIters));
  const Kernel& k = s.device().kernel(
      {.shader = "spin", .local_size = {64, 1, 1}});
  s.dispatch(k, {{out, 0, std::uint64_t(n) * 4}}, gpu::SpinParams{n, iters, seed, 0}, {n});
}

std::vector<std::uint32_t> reference(std::uint32_t n, std::uint32_t iters, std::uint32_t seed) {
  std::vector<std::uint32_t> out(n);  // (n)
  for (std::uint32_t i = 0; i < n; ++i) {
    std::uint32_t x = (seed ^ i) | 1u;
    for (std::uint32_t k = 0; k < 16 * iters; ++k) {
      x ^= x << 13;
      x ^= x >> 17;
      x ^= x << 5;
    }
    out[i] = x;
  }
  return out;
}

}  // namespace vkq::spin
