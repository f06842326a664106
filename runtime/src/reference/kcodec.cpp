#include "vkquant/reference/kcodec.hpp"

#include <cmath>
#include <numbers>

#include "vkquant/error.hpp"

namespace vkq::ref {

namespace {

void check(const KCodec& c) {
  const std::uint64_t hd = c.hd;
  if (hd == 0 || hd % 32 || c.n_kv == 0 || c.rank > hd) throw Error("ref::kcode: bad codec sizes");
  if (c.mean_rope && c.mean_rope->hd != hd) throw Error("ref::kcode: mean-RoPE table for another head size");
  if (c.mu.size() < c.n_kv * hd || (!c.rot.empty() && c.rot.size() < c.n_kv * hd * hd) ||
      c.basis.size() < c.n_kv * hd * c.rank)
    throw Error("ref::kcode: codec arrays too small");
}

}  // namespace

std::vector<double> kcode_mean_at(const KCodec& c, std::uint32_t h, std::uint64_t pos) {
  const float* mu = c.mu.data() + std::uint64_t(h) * c.hd;  // (hd)
  std::vector<double> m(mu, mu + c.hd);
  if (c.mean_rope) rope_apply(*c.mean_rope, m.data(), double(pos));
  return m;
}

std::vector<double> kcode_coefs(const KCodec& c, std::uint32_t h, std::span<const double> v, double alpha) {
  const std::uint32_t hd = c.hd, rank = c.rank;
  const float* u = c.basis.data() + std::uint64_t(h) * hd * rank;  // (hd, rank)
  std::vector<double> out(rank, 0.0);
  for (std::uint32_t j = 0; j < hd; ++j) {
    const double e = v[j] - (v[j] >= 0 ? alpha : -alpha);
    for (std::uint32_t r = 0; r < rank; ++r) out[r] += double(u[j * rank + r]) * e;
  }
  return out;
}

KCodes kcode_encode(const KCodec& c, std::span<const float> k, std::uint32_t n, std::uint32_t pos0) {
  check(c);
  const std::uint32_t hd = c.hd, n_kv = c.n_kv, words = hd / 32;
  if (k.size() < std::uint64_t(n) * n_kv * hd) throw Error("ref::kcode_encode: k too small");
  KCodes out;
  out.bits.assign(std::uint64_t(n) * n_kv * words, 0);
  out.alpha.resize(std::uint64_t(n) * n_kv);
  out.coef.resize(std::uint64_t(n) * n_kv * c.rank);
  out.v.resize(std::uint64_t(n) * n_kv * hd);
  std::vector<double> d(hd);
  for (std::uint64_t t = 0; t < n; ++t)
    for (std::uint32_t h = 0; h < n_kv; ++h) {
      const std::uint64_t e = t * n_kv + h;
      const float* kr = k.data() + e * hd;  // (hd)
      const std::vector<double> m = kcode_mean_at(c, h, pos0 + t);
      double* v = out.v.data() + e * hd;  // (hd)
      for (std::uint32_t j = 0; j < hd; ++j) d[j] = double(kr[j]) - m[j];
      for (std::uint32_t i = 0; i < hd; ++i) {
        if (c.rot.empty()) {
          v[i] = d[i];
          continue;
        }
        const float* row = c.rot.data() + (std::uint64_t(h) * hd + i) * hd;  // R_h row i
        double s = 0;
        for (std::uint32_t j = 0; j < hd; ++j) s += double(row[j]) * d[j];
        v[i] = s;
      }
      double l1 = 0;
      for (std::uint32_t i = 0; i < hd; ++i) {
        l1 += std::fabs(v[i]);
        if (v[i] >= 0) out.bits[e * words + i / 32] |= 1u << (i % 32);
      }
      out.alpha[e] = to_half(float(l1 / hd));
      if (c.rank == 0) continue;
      const auto cf = kcode_coefs(c, h, std::span<const double>(v, hd), from_half(out.alpha[e]));
      for (std::uint32_t r = 0; r < c.rank; ++r) out.coef[e * c.rank + r] = to_half(float(cf[r]));
    }
  return out;
}

std::vector<half_bits> kcode_decode(const KCodec& c, std::span<const std::uint32_t> bits,
                                    std::span<const half_bits> alpha, std::span<const half_bits> coef,
                                    std::uint32_t first, std::uint32_t len, const RopeTable* rope) {
  check(c);
  const std::uint32_t hd = c.hd, n_kv = c.n_kv, words = hd / 32, rank = c.rank;
  const std::uint64_t elems = std::uint64_t(len) * n_kv;
  if (bits.size() < elems * words || alpha.size() < elems || coef.size() < elems * rank)
    throw Error("ref::kcode_decode: codes too small");
  std::vector<half_bits> out(elems * hd);
  std::vector<double> u(hd), x(hd);
  for (std::uint64_t t = 0; t < len; ++t)
    for (std::uint32_t h = 0; h < n_kv; ++h) {
      const std::uint64_t e = t * n_kv + h;
      const double a = from_half(alpha[e]);
      const float* ub = c.basis.data() + std::uint64_t(h) * hd * rank;  // (hd, rank)
      for (std::uint32_t j = 0; j < hd; ++j) {
        double s = (bits[e * words + j / 32] >> (j % 32)) & 1u ? a : -a;
        for (std::uint32_t r = 0; r < rank; ++r) s += double(ub[j * rank + r]) * from_half(coef[e * rank + r]);
        u[j] = s;
      }
      const std::vector<double> m = kcode_mean_at(c, h, first + t);
      for (std::uint32_t i = 0; i < hd; ++i) {
        double s = m[i];
        if (c.rot.empty()) {
          s += u[i];
        } else {
          const float* rh = c.rot.data() + std::uint64_t(h) * hd * hd;  // (hd, hd): (R_hᵀ u)_i = Σ_j R[j][i] u_j
          for (std::uint32_t j = 0; j < hd; ++j) s += double(rh[std::uint64_t(j) * hd + i]) * u[j];
        }
        x[i] = s;
      }
      if (rope) rope_apply(*rope, x.data(), double(first) + double(t));
      for (std::uint32_t i = 0; i < hd; ++i) out[e * hd + i] = to_half(float(x[i]));
    }
  return out;
}

}  // namespace vkq::ref
