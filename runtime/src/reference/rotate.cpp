#include "vkquant/reference/rotate.hpp"

#include <algorithm>

#include "vkquant/error.hpp"

namespace vkq::ref {

void rotate(std::span<const float> x,  // (rows, d)
            std::span<const float> r,  // (blocks, d, d)
            std::span<float> y,        // (rows, d)
            std::uint32_t d, std::uint64_t first, std::uint64_t count, std::uint32_t blocks) {
  if (d == 0 || blocks == 0) throw Error("ref::rotate: d or blocks is 0");
  const std::uint64_t rows = x.size() / d;
  if (x.size() != rows * d || y.size() != x.size() || r.size() != std::uint64_t(blocks) * d * d)
    throw Error("ref::rotate: x, r, y sizes do not match d and blocks");
  if (first > rows) throw Error("ref::rotate: first row past the end");
  const std::uint64_t last = first + std::min(count, rows - first);
  for (std::uint64_t t = first; t < last; ++t) {
    const float* xt = x.data() + t * d;  // (d)
    const float* rb = r.data() + (t % blocks) * d * d;  // (d, d)
    for (std::uint32_t i = 0; i < d; ++i) {
      const float* ri = rb + std::uint64_t(i) * d;  // (d)
      double acc = 0;
      for (std::uint32_t j = 0; j < d; ++j) acc += double(ri[j]) * double(xt[j]);
      y[t * d + i] = float(acc);
    }
  }
}

}  // namespace vkq::ref
