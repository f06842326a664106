#include "vkquant/reference/rotate.hpp"

#include <algorithm>

#include "vkquant/error.hpp"

namespace vkq::ref {

void rotate(std::span<const float> x,  // (rows, d)
            std::span<const float> r,  // (d, d)
            std::span<float> y,        // (rows, d)
            std::uint32_t d, std::uint64_t first, std::uint64_t count) {
  if (d == 0) throw Error("ref::rotate: d is 0");
  const std::uint64_t rows = x.size() / d;
  if (x.size() != rows * d || y.size() != x.size() || r.size() != std::uint64_t(d) * d)
    throw Error("ref::rotate: x, r, y sizes do not match d");
  if (first > rows) throw Error("ref::rotate: first row past the end");
  const std::uint64_t last = first + std::min(count, rows - first);
  for (std::uint64_t t = first; t < last; ++t) {
    const float* xt = x.data() + t * d;  // (d)
    for (std::uint32_t i = 0; i < d; ++i) {
      const float* ri = r.data() + std::uint64_t(i) * d;  // (d)
      double acc = 0;
      for (std::uint32_t j = 0; j < d; ++j) acc += double(ri[j]) * double(xt[j]);
      y[t * d + i] = float(acc);
    }
  }
}

}  // namespace vkq::ref
