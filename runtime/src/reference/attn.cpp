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

VPacked vcache_pack(VType t, std::span<const float> src, std::uint32_t n, std::uint32_t n_kv, std::uint32_t hd) {
  if (t == VType::f16) return {kv_pack(src, n, n_kv, hd), {}};
  const std::uint64_t rows = std::uint64_t(n) * n_kv;
  if (hd % kVBlock || src.size() < rows * hd) throw Error("ref::vcache_pack: bad sizes");
  const std::uint32_t cw = vtype_code_words(t, hd), sw = vtype_scale_words(t, hd), blocks = hd / kVBlock;
  VPacked p;
  p.codes.assign(rows * cw, 0);
  p.scales.assign(rows * sw, 0);
  for (std::uint64_t r = 0; r < rows; ++r)
    for (std::uint32_t b = 0; b < blocks; ++b) {
      const float* x = src.data() + r * hd + b * kVBlock;
      if (t == VType::q8) {
        float amax = 0.0f;
        for (std::uint32_t i = 0; i < kVBlock; ++i) amax = std::max(amax, std::abs(x[i]));
        const half_bits dh = to_half(amax / 127.0f);
        const float d = from_half(dh);
        for (std::uint32_t i = 0; i < kVBlock; ++i) {
          const int c = d > 0.0f ? int(std::clamp(std::nearbyint(x[i] / d), -127.0f, 127.0f)) : 0;
          const std::uint32_t e = b * kVBlock + i;
          p.codes[r * cw + e / 4] |= (std::uint32_t(c) & 0xffu) << (8 * (e % 4));
        }
        p.scales[r * sw + b / 2] |= std::uint32_t(dh) << (16 * (b % 2));
      } else {
        float lo = x[0], hi = x[0];
        for (std::uint32_t i = 1; i < kVBlock; ++i) lo = std::min(lo, x[i]), hi = std::max(hi, x[i]);
        const half_bits mh = to_half(lo), dh = to_half((hi - lo) / 15.0f);
        const float m = from_half(mh), d = from_half(dh);
        for (std::uint32_t i = 0; i < kVBlock; ++i) {
          const std::uint32_t c = d > 0.0f ? std::uint32_t(std::clamp(std::nearbyint((x[i] - m) / d), 0.0f, 15.0f)) : 0;
          const std::uint32_t e = b * kVBlock + i;
          p.codes[r * cw + e / 8] |= c << (4 * (e % 8));
        }
        p.scales[r * sw + b] = std::uint32_t(dh) | (std::uint32_t(mh) << 16);
      }
    }
  return p;
}

std::vector<float> vcache_unpack(VType t, const VPacked& p, std::uint32_t n, std::uint32_t n_kv, std::uint32_t hd) {
  const std::uint64_t rows = std::uint64_t(n) * n_kv;
  const std::uint32_t cw = vtype_code_words(t, hd), sw = vtype_scale_words(t, hd);
  if ((t != VType::f16 && hd % kVBlock) || p.codes.size() < rows * cw || p.scales.size() < rows * sw)
    throw Error("ref::vcache_unpack: bad sizes");
  std::vector<float> v(rows * hd);
  for (std::uint64_t r = 0; r < rows; ++r)
    for (std::uint32_t i = 0; i < hd; ++i) {
      const std::uint32_t b = i / kVBlock;
      float x = 0.0f;
      if (t == VType::f16) {
        x = from_half(half_bits(p.codes[r * cw + i / 2] >> (16 * (i % 2))));
      } else if (t == VType::q8) {
        const float d = from_half(half_bits(p.scales[r * sw + b / 2] >> (16 * (b % 2))));
        x = d * float(std::int8_t(std::uint8_t(p.codes[r * cw + i / 4] >> (8 * (i % 4)))));
      } else {
        const std::uint32_t s = p.scales[r * sw + b];
        x = from_half(half_bits(s)) * float((p.codes[r * cw + i / 8] >> (4 * (i % 8))) & 15u) + from_half(half_bits(s >> 16));
      }
      v[r * hd + i] = x;
    }
  return v;
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
