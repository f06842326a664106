#include "vkquant/reference/bgemv.hpp"

namespace vkq::ref {

namespace {
float sign_of(std::span<const std::uint32_t> bits, std::size_t row_word0, std::uint32_t j) {
  return (bits[row_word0 + j / 32] >> (j % 32)) & 1u ? 1.f : -1.f;
}
}  // namespace

void bgemv(std::span<const std::uint32_t> bits, std::span<const float> c, std::span<const float> alpha,
           std::span<const float> p, std::span<const float> q, std::span<const float> x, std::span<float> y,
           std::uint32_t out, std::uint32_t in, std::uint32_t words, std::uint32_t rank, std::uint32_t batch) {
  for (std::uint32_t b = 0; b < batch; ++b) {
    const float* xb = &x[std::size_t(b) * in];
    double sum = 0;
    for (std::uint32_t j = 0; j < in; ++j) sum += xb[j];
    std::vector<double> t(rank, 0.0);  // Qᵀ x_b
    for (std::uint32_t k = 0; k < rank; ++k)
      for (std::uint32_t j = 0; j < in; ++j) t[k] += double(q[std::size_t(j) * rank + k]) * xb[j];
    for (std::uint32_t i = 0; i < out; ++i) {
      double dot = 0;  // s_i · x_b
      for (std::uint32_t j = 0; j < in; ++j) dot += sign_of(bits, std::size_t(i) * words, j) * double(xb[j]);
      double v = double(c[i]) * sum + double(alpha[i]) * dot;
      for (std::uint32_t k = 0; k < rank; ++k) v += double(p[std::size_t(i) * rank + k]) * t[k];
      y[std::size_t(b) * out + i] = float(v);
    }
  }
}

std::vector<float> bgemv_decode(std::span<const std::uint32_t> bits, std::span<const float> c,
                                std::span<const float> alpha, std::uint32_t out, std::uint32_t in,
                                std::uint32_t words) {
  std::vector<float> w(std::size_t(out) * in);
  for (std::uint32_t i = 0; i < out; ++i)
    for (std::uint32_t j = 0; j < in; ++j)
      w[std::size_t(i) * in + j] = c[i] + alpha[i] * sign_of(bits, std::size_t(i) * words, j);
  return w;
}

}  // namespace vkq::ref
