#include "vkquant/reference/kcodec.hpp"

#include <cmath>
#include <numbers>

#include "vkquant/error.hpp"

namespace vkq::ref {

namespace {

void check(const KCodec& c) {
  const std::uint64_t hd = c.hd;
  if (hd == 0 || hd % 32 || c.n_kv == 0 || c.basis_cols > hd) throw Error("ref::kcode: bad codec sizes");
  if (c.residual.stride && c.residual.n_kv() != c.n_kv) throw Error("ref::kcode: residual layout for another n_kv");
  if (c.residual.stride && c.transform != c.residual.transform())
    throw Error("ref::kcode: a transform code needs transform-coded heads, and only it");
  c.residual.check_basis("ref::kcode", c.basis_cols);
  if (c.mean_rope && c.mean_rope->hd != hd) throw Error("ref::kcode: mean-RoPE table for another head size");
  if (c.mu.size() < c.n_kv * hd || (!c.rot.empty() && c.rot.size() < c.n_kv * hd * hd) ||
      (c.residual.stride && c.basis.size() < c.n_kv * hd * c.basis_cols) ||
      (c.residual.stride && !c.enc_basis.empty() && c.enc_basis.size() < c.n_kv * hd * c.basis_cols))
    throw Error("ref::kcode: codec arrays too small");
  if (!c.levels.empty() && (!c.transform || c.levels.size() < std::uint64_t(c.n_kv) * c.basis_cols * kTcLevels))
    throw Error("ref::kcode: levels belong to a transform code, " + std::to_string(kTcLevels) + " per basis column and head");
}

}  // namespace

std::vector<double> kcode_mean_at(const KCodec& c, std::uint32_t h, std::uint64_t pos) {
  const float* mu = c.mu.data() + std::uint64_t(h) * c.hd;  // (hd)
  std::vector<double> m(mu, mu + c.hd);
  if (c.mean_rope) rope_apply(*c.mean_rope, m.data(), double(pos));
  return m;
}

std::vector<double> kcode_coefs(const KCodec& c, std::uint32_t h, std::span<const double> v, double alpha) {
  const std::uint32_t hd = c.hd, cols = c.basis_cols, rank = c.residual.heads.at(h).rank;
  const float* u = (c.enc_basis.empty() ? c.basis : c.enc_basis).data() + std::uint64_t(h) * hd * cols;  // (hd, cols)
  std::vector<double> out(rank, 0.0);
  for (std::uint32_t j = 0; j < hd; ++j) {
    const double e = c.transform ? v[j] : v[j] - (v[j] >= 0 ? alpha : -alpha);
    for (std::uint32_t r = 0; r < rank; ++r) out[r] += double(u[j * cols + r]) * e;
  }
  return out;
}

KCodes kcode_encode(const KCodec& c, std::span<const float> k, std::uint32_t n, std::uint32_t pos0) {
  check(c);
  const std::uint32_t hd = c.hd, n_kv = c.n_kv, words = hd / 32;
  if (k.size() < std::uint64_t(n) * n_kv * hd) throw Error("ref::kcode_encode: k too small");
  KCodes out;
  if (!c.transform) {
    out.bits.assign(std::uint64_t(n) * n_kv * words, 0);
    out.alpha.resize(std::uint64_t(n) * n_kv);
  }
  const std::uint64_t stride = c.residual.stride;
  out.coef.assign(std::uint64_t(n) * stride, 0);
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
      double alpha = 0;
      if (!c.transform) {
        double l1 = 0;
        for (std::uint32_t i = 0; i < hd; ++i) {
          l1 += std::fabs(v[i]);
          if (v[i] >= 0) out.bits[e * words + i / 32] |= 1u << (i % 32);
        }
        out.alpha[e] = to_half(float(l1 / hd));
        alpha = from_half(out.alpha[e]);
      }
      if (stride == 0 || c.residual.heads[h].rank == 0) continue;
      const KResidual res = c.residual.heads[h];
      const auto cf = kcode_coefs(c, h, std::span<const double>(v, hd), alpha);
      pack_residual(res, cf,
                    std::span(out.coef).subspan(t * stride + c.residual.offset[h], KResidualLayout::record_halves(res)),
                    alpha, c.head_levels(h));
    }
  return out;
}

std::vector<half_bits> kcode_decode(const KCodec& c, std::span<const std::uint32_t> bits,
                                    std::span<const half_bits> alpha, std::span<const half_bits> coef,
                                    std::uint32_t first, std::uint32_t len, const RopeTable* rope) {
  check(c);
  const std::uint32_t hd = c.hd, n_kv = c.n_kv, words = hd / 32, cols = c.basis_cols;
  const std::uint64_t elems = std::uint64_t(len) * n_kv, stride = c.residual.stride;
  if ((!c.transform && (bits.size() < elems * words || alpha.size() < elems)) || coef.size() < std::uint64_t(len) * stride)
    throw Error("ref::kcode_decode: codes too small");
  std::vector<half_bits> out(elems * hd);
  std::vector<double> u(hd), x(hd);
  for (std::uint64_t t = 0; t < len; ++t)
    for (std::uint32_t h = 0; h < n_kv; ++h) {
      const std::uint64_t e = t * n_kv + h;
      const double a = c.transform ? 0.0 : from_half(alpha[e]);
      const float* ub = c.basis.data() + std::uint64_t(h) * hd * cols;  // (hd, cols)
      const KResidual res = stride ? c.residual.heads[h] : KResidual{};
      const std::vector<double> ch =
          res.rank ? unpack_residual(res, coef.subspan(t * stride + c.residual.offset[h], KResidualLayout::record_halves(res)), a,
                                     c.head_levels(h))
                   : std::vector<double>{};
      for (std::uint32_t j = 0; j < hd; ++j) {
        double s = c.transform ? 0.0 : (bits[e * words + j / 32] >> (j % 32)) & 1u ? a : -a;
        for (std::uint32_t r = 0; r < res.rank; ++r) s += double(ub[j * cols + r]) * ch[r];
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
