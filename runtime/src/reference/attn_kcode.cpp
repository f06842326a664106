#include "vkquant/reference/attn_kcode.hpp"

#include <algorithm>
#include <cmath>

#include "vkquant/error.hpp"

namespace vkq::ref {

namespace {

void check(const AttnKcodeInputs& in, std::uint32_t n, std::uint32_t pos0, std::uint32_t n_heads) {
  const KCodec& c = in.codec;
  const std::uint64_t hd = c.hd, kv_len = std::uint64_t(pos0) + n, w = hd / 32;
  if (hd == 0 || hd % 32 || c.n_kv == 0 || n_heads % c.n_kv || c.basis_cols > hd)
    throw Error("ref::attention_kcode: bad sizes");
  if (c.residual.stride && c.residual.n_kv() != c.n_kv) throw Error("ref::attention_kcode: residual layout for another n_kv");
  c.residual.check_basis("ref::attention_kcode", c.basis_cols);
  const std::uint64_t front = std::min<std::uint64_t>(in.front, kv_len);
  if (in.q.size() < std::uint64_t(n) * n_heads * hd ||
      (!c.transform && (in.bits.size() < kv_len * c.n_kv * w || in.alpha.size() < kv_len * c.n_kv)) ||
      in.coef.size() < kv_len * c.residual.stride ||
      in.front_keys.size() < front * c.n_kv * hd || in.v.size() < kv_len * c.n_kv * hd ||
      c.mu.size() < c.n_kv * hd || (!c.rot.empty() && c.rot.size() < c.n_kv * hd * hd) ||
      (c.residual.stride && c.basis.size() < c.n_kv * hd * c.basis_cols))
    throw Error("ref::attention_kcode: arrays too small");
  if (in.quantized && (in.quantized->planes.size() < std::uint64_t(n) * n_heads * in.quantized->bits * w ||
                       in.quantized->consts.size() < std::uint64_t(n) * n_heads))
    throw Error("ref::attention_kcode: quantized query too small");
}

}  // namespace

std::vector<float> attn_kcode_rotate_queries(const KCodec& c, std::span<const float> q, std::uint32_t n,
                                             std::uint32_t n_heads) {
  const std::uint32_t hd = c.hd, group = n_heads / c.n_kv;
  std::vector<float> out(std::uint64_t(n) * n_heads * hd);
  for (std::uint64_t m = 0; m < std::uint64_t(n) * n_heads; ++m) {
    const float* qm = q.data() + m * hd;                     // (hd)
    const std::uint32_t kv = std::uint32_t(m % n_heads) / group;
    for (std::uint32_t i = 0; i < hd; ++i) {
      if (c.rot.empty()) {
        out[m * hd + i] = qm[i];
        continue;
      }
      const float* row = c.rot.data() + (std::uint64_t(kv) * hd + i) * hd;  // R_kv row i
      double s = 0;
      for (std::uint32_t j = 0; j < hd; ++j) s += double(row[j]) * qm[j];
      out[m * hd + i] = float(s);
    }
  }
  return out;
}

std::vector<double> attn_kcode_scores(const AttnKcodeInputs& in, std::uint32_t n, std::uint32_t pos0,
                                      std::uint32_t n_heads) {
  check(in, n, pos0, n_heads);
  const KCodec& c = in.codec;
  const std::uint32_t hd = c.hd, n_kv = c.n_kv, group = n_heads / n_kv, w = hd / 32;
  const std::uint32_t cols = c.residual.stride ? c.basis_cols : 0;
  const std::uint64_t stride = c.residual.stride;
  const std::uint64_t kv_len = std::uint64_t(pos0) + n;
  const std::uint64_t front = std::min<std::uint64_t>(in.front, kv_len);
  std::vector<double> scores(std::uint64_t(n) * n_heads * kv_len, 0.0);
  std::vector<double> qr(hd), uq(cols);
  for (std::uint64_t t = 0; t < n; ++t)
    for (std::uint32_t h = 0; h < n_heads; ++h) {
      const std::uint64_t m = t * n_heads + h;
      const float* qm = in.q.data() + m * hd;  // (hd)
      const std::uint32_t g = h / group;
      for (std::uint32_t i = 0; i < hd; ++i) {  // q' = R_g q in fp64
        if (c.rot.empty()) {
          qr[i] = qm[i];
          continue;
        }
        const float* row = c.rot.data() + (std::uint64_t(g) * hd + i) * hd;
        double s = 0;
        for (std::uint32_t j = 0; j < hd; ++j) s += double(row[j]) * qm[j];
        qr[i] = s;
      }
      const float* u = c.basis.data() + std::uint64_t(g) * hd * cols;  // (hd, cols)
      for (std::uint32_t r = 0; r < cols; ++r) {
        double s = 0;
        for (std::uint32_t j = 0; j < hd; ++j) s += double(u[j * cols + r]) * qr[j];
        uq[r] = s;
      }
      const KResidual res = stride ? c.residual.heads[g] : KResidual{};
      double* sc = scores.data() + m * kv_len;  // (kv_len)
      for (std::uint64_t p = 0; p <= pos0 + t; ++p) {
        const std::uint64_t e = p * n_kv + g;
        if (p < front) {
          const float* k = in.front_keys.data() + e * hd;  // (hd)
          double s = 0;
          for (std::uint32_t i = 0; i < hd; ++i) s += double(qm[i]) * k[i];
          sc[p] = s;
          continue;
        }
        const std::vector<double> mean = kcode_mean_at(c, g, p);
        double s = 0;
        for (std::uint32_t i = 0; i < hd; ++i) s += double(qm[i]) * mean[i];
        if (c.transform) {  // no sign term: qmu + Σ uq_r ĉ_r
          if (res.rank) {
            const auto ch =
                unpack_residual(res, in.coef.subspan(p * stride + c.residual.offset[g], KResidualLayout::record_halves(res)),
                                0.0, c.head_levels(g));
            for (std::uint32_t r = 0; r < res.rank; ++r) s += uq[r] * ch[r];
          }
          sc[p] = s;
          continue;
        }
        const std::uint32_t* kb = in.bits.data() + e * w;  // (w)
        double dot = 0;
        if (!in.quantized) {
          for (std::uint32_t i = 0; i < hd; ++i) dot += (kb[i / 32] >> (i % 32)) & 1u ? qr[i] : -qr[i];
        } else {
          const KscoreQuantized& qq = *in.quantized;
          const std::uint32_t* pl = qq.planes.data() + m * qq.bits * w;  // (b, w)
          std::int64_t sq = 0, sigma = 0;
          for (std::uint32_t i = 0; i < hd; ++i) {
            const int si = (kb[i / 32] >> (i % 32)) & 1u ? 1 : -1;
            std::int64_t qi = 0;
            for (std::uint32_t b = 0; b < qq.bits; ++b) qi |= std::int64_t((pl[b * w + i / 32] >> (i % 32)) & 1u) << b;
            sq += si * qi;
            sigma += si;
          }
          const KscoreQueryConst& k = qq.consts[m];
          dot = double(k.delta) * (double(sq) - double(k.zero) * double(sigma));
        }
        s += from_half(in.alpha[e]) * dot;
        if (res.rank) {
          const auto ch = unpack_residual(
              res, in.coef.subspan(p * stride + c.residual.offset[g], KResidualLayout::record_halves(res)),
              double(from_half(in.alpha[e])));
          for (std::uint32_t r = 0; r < res.rank; ++r) s += uq[r] * ch[r];
        }
        sc[p] = s;
      }
    }
  return scores;
}

void attention_kcode(const AttnKcodeInputs& in, std::span<float> out, std::uint32_t n, std::uint32_t pos0,
                     std::uint32_t n_heads, float scale) {
  const std::vector<double> scores = attn_kcode_scores(in, n, pos0, n_heads);
  const std::uint32_t hd = in.codec.hd, n_kv = in.codec.n_kv, group = n_heads / n_kv;
  const std::uint64_t kv_len = std::uint64_t(pos0) + n;
  if (out.size() < std::uint64_t(n) * n_heads * hd) throw Error("ref::attention_kcode: out too small");
  std::vector<double> acc(hd);
  for (std::uint64_t t = 0; t < n; ++t)
    for (std::uint32_t h = 0; h < n_heads; ++h) {
      const double* sc = scores.data() + (t * n_heads + h) * kv_len;  // (kv_len)
      const std::uint64_t keys = pos0 + t + 1;
      double mx = -INFINITY;
      for (std::uint64_t p = 0; p < keys; ++p) mx = std::max(mx, sc[p] * scale);
      double sum = 0;
      std::fill(acc.begin(), acc.end(), 0.0);
      for (std::uint64_t p = 0; p < keys; ++p) {
        const double pr = std::exp(sc[p] * scale - mx);
        sum += pr;
        const float* vp = in.v.data() + (p * n_kv + h / group) * hd;  // (hd)
        for (std::uint32_t i = 0; i < hd; ++i) acc[i] += pr * vp[i];
      }
      float* o = out.data() + (t * n_heads + h) * hd;  // (hd)
      for (std::uint32_t i = 0; i < hd; ++i) o[i] = float(acc[i] / sum);
    }
}

}  // namespace vkq::ref
