#include "vkquant/reference/signpack.hpp"

#include <cmath>

#include "vkquant/error.hpp"
#include "vkquant/half.hpp"

namespace vkq::ref {

void row_mean(std::span<const float> v, std::uint64_t rows, std::uint32_t d, std::span<float> mean) {
  if (d == 0 || v.size() < rows * d || mean.size() < rows) throw Error("ref::row_mean: bad sizes");
  for (std::uint64_t r = 0; r < rows; ++r) {
    const float* x = v.data() + r * d;  // (d)
    double sum = 0;
    for (std::uint32_t c = 0; c < d; ++c) sum += x[c];
    mean[r] = float(sum / d);
  }
}

void signpack(std::span<const float> v, std::uint64_t rows, std::uint32_t d, std::span<const float> mean,
              std::span<std::uint32_t> bits, std::span<float> alpha) {
  const std::uint32_t words = (d + 31) / 32;
  if (d == 0 || v.size() < rows * d || bits.size() < rows * words || alpha.size() < rows ||
      (!mean.empty() && mean.size() < rows))
    throw Error("ref::signpack: bad sizes");
  for (std::uint64_t r = 0; r < rows; ++r) {
    const float* x = v.data() + r * d;         // (d)
    std::uint32_t* b = bits.data() + r * words;  // (W)
    const float m = mean.empty() ? 0.f : mean[r];
    double l1 = 0;
    for (std::uint32_t w = 0; w < words; ++w) b[w] = 0;
    for (std::uint32_t c = 0; c < d; ++c) {
      const float xc = mean.empty() ? x[c] : x[c] - m;  // float subtraction, as on the GPU
      l1 += std::fabs(double(xc));
      if (xc >= 0.f) b[c / 32] |= 1u << (c % 32);
    }
    alpha[r] = float(l1 / d);
  }
}

void signunpack(std::span<const std::uint32_t> bits, std::span<const float> alpha, std::span<const float> mean,
                std::uint64_t rows, std::uint32_t d, std::span<float> out) {
  const std::uint32_t words = (d + 31) / 32;
  if (d == 0 || bits.size() < rows * words || alpha.size() < rows || out.size() < rows * d ||
      (!mean.empty() && mean.size() < rows))
    throw Error("ref::signunpack: bad sizes");
  for (std::uint64_t r = 0; r < rows; ++r) {
    const std::uint32_t* b = bits.data() + r * words;  // (W)
    float* y = out.data() + r * d;                     // (d)
    const float m = mean.empty() ? 0.f : mean[r];
    for (std::uint32_t c = 0; c < d; ++c) {
      const bool pos = (b[c / 32] >> (c % 32)) & 1u;
      y[c] = (pos ? alpha[r] : -alpha[r]) + m;
    }
  }
}

std::vector<std::uint32_t> pack_half_rows(std::span<const float> v, std::uint64_t rows, std::uint32_t d) {
  const std::uint32_t stride = (d + 1) / 2;
  if (v.size() < rows * d) throw Error("ref::pack_half_rows: bad sizes");
  std::vector<std::uint32_t> out(rows * stride, 0);  // (rows, ceil(d/2))
  for (std::uint64_t r = 0; r < rows; ++r)
    for (std::uint32_t c = 0; c < d; ++c)
      out[r * stride + c / 2] |= std::uint32_t(to_half(v[r * d + c])) << (16 * (c % 2));
  return out;
}

std::vector<std::uint32_t> pack_half_pairs(std::span<const float> alpha) {
  std::vector<std::uint32_t> out((alpha.size() + 1) / 2, 0);  // (ceil(rows/2))
  for (std::size_t r = 0; r < alpha.size(); ++r) out[r / 2] |= std::uint32_t(to_half(alpha[r])) << (16 * (r % 2));
  return out;
}

std::vector<float> unpack_half_pairs(std::span<const std::uint32_t> words, std::uint64_t rows) {
  if (words.size() < (rows + 1) / 2) throw Error("ref::unpack_half_pairs: bad sizes");
  std::vector<float> out(rows);  // (rows)
  for (std::uint64_t r = 0; r < rows; ++r) out[r] = from_half(half_bits(words[r / 2] >> (16 * (r % 2))));
  return out;
}

}  // namespace vkq::ref
