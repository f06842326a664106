#include "vkquant/reference/attn.hpp"

#include <algorithm>
#include <cmath>

#include "vkquant/error.hpp"
#include "vkquant/half.hpp"

namespace vkq::ref {

std::vector<std::uint32_t> kv_pack(std::span<const float> src, std::uint32_t n, std::uint32_t n_kv, std::uint32_t hd) {
  const std::uint64_t row = std::uint64_t(n_kv) * hd;
  if (hd % 2 || src.size() < n * row) throw Error("ref::kv_pack: bad sizes");
  std::vector<std::uint32_t> words(n * row / 2);
  for (std::uint64_t i = 0; i < words.size(); ++i)
    words[i] = std::uint32_t(to_half(src[2 * i])) | (std::uint32_t(to_half(src[2 * i + 1])) << 16);
  return words;
}

void attention(std::span<const float> q, std::span<const float> k, std::span<const float> v, std::span<float> out,
               std::uint32_t n, std::uint32_t pos0, std::uint32_t n_heads, std::uint32_t n_kv, std::uint32_t hd,
               float scale) {
  const std::uint64_t kv_len = std::uint64_t(pos0) + n;
  if (n_kv == 0 || n_heads % n_kv || q.size() < std::uint64_t(n) * n_heads * hd ||
      out.size() < std::uint64_t(n) * n_heads * hd || k.size() < kv_len * n_kv * hd || v.size() < kv_len * n_kv * hd)
    throw Error("ref::attention: bad sizes");
  const std::uint32_t group = n_heads / n_kv;
  std::vector<double> sc(kv_len), acc(hd);
  for (std::uint64_t t = 0; t < n; ++t)
    for (std::uint32_t h = 0; h < n_heads; ++h) {
      const float* qh = q.data() + (t * n_heads + h) * hd;  // (hd)
      const std::uint32_t g = h / group;
      const std::uint64_t keys = pos0 + t + 1;
      double mx = -INFINITY;
      for (std::uint64_t j = 0; j < keys; ++j) {
        const float* kj = k.data() + (j * n_kv + g) * hd;  // (hd)
        double dot = 0;
        for (std::uint32_t c = 0; c < hd; ++c) dot += double(qh[c]) * kj[c];
        sc[j] = dot * scale;
        mx = std::max(mx, sc[j]);
      }
      double sum = 0;
      std::fill(acc.begin(), acc.end(), 0.0);
      for (std::uint64_t j = 0; j < keys; ++j) {
        const double p = std::exp(sc[j] - mx);
        sum += p;
        const float* vj = v.data() + (j * n_kv + g) * hd;  // (hd)
        for (std::uint32_t c = 0; c < hd; ++c) acc[c] += p * vj[c];
      }
      float* o = out.data() + (t * n_heads + h) * hd;  // (hd)
      for (std::uint32_t c = 0; c < hd; ++c) o[c] = float(acc[c] / sum);
    }
}

}  // namespace vkq::ref
