#include "vkquant/reference/fwht.hpp"

#include <bit>
#include <cmath>
#include <vector>

#include "fwht.h"

namespace vkq::ref {

void fwht(const float* x, float* y, std::uint64_t rows, std::uint32_t n, bool srht, std::uint32_t seed,
          bool inverse) {
  const std::uint32_t key = gpu::fwht_key(seed);
  const double scale = 1.0 / std::sqrt(double(n));
  std::vector<double> v(n);  // (n) one row
  for (std::uint64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * n;  // (n)
    float* yr = y + r * n;        // (n)
    for (std::uint32_t i = 0; i < n; ++i) v[i] = double(xr[i]) * (srht && !inverse ? gpu::fwht_sign(key, i) : 1.0f);
    for (std::uint32_t h = 1; h < n; h *= 2)
      for (std::uint32_t i = 0; i < n; i += 2 * h)
        for (std::uint32_t j = i; j < i + h; ++j) {
          const double a = v[j], b = v[j + h];
          v[j] = a + b;
          v[j + h] = a - b;
        }
    for (std::uint32_t i = 0; i < n; ++i)
      yr[i] = float(v[i] * scale * (srht && inverse ? gpu::fwht_sign(key, i) : 1.0f));
  }
}

void hadamard_naive(const float* x, float* y, std::uint64_t rows, std::uint32_t n) {
  const double scale = 1.0 / std::sqrt(double(n));
  std::vector<double> out(n);  // (n) one row, so x and y may alias
  for (std::uint64_t r = 0; r < rows; ++r) {
    for (std::uint32_t i = 0; i < n; ++i) {
      double acc = 0;
      for (std::uint32_t j = 0; j < n; ++j) acc += (std::popcount(i & j) & 1 ? -1.0 : 1.0) * double(x[r * n + j]);
      out[i] = acc * scale;
    }
    for (std::uint32_t i = 0; i < n; ++i) y[r * n + i] = float(out[i]);
  }
}

}  // namespace vkq::ref
