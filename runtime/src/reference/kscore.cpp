#include "vkquant/reference/kscore.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace vkq::ref {

namespace {

// s_i of key row `row` (bits (rows, W)).
double sign_at(std::span<const std::uint32_t> bits, std::uint64_t row, std::uint32_t w, std::uint32_t i) {
  return (bits[row * w + i / 32] >> (i % 32)) & 1u ? 1.0 : -1.0;
}

// Q_i of query head h from its planes.
std::uint32_t level_at(const KscoreQuantized& qq, std::uint32_t w, std::uint32_t h, std::uint32_t i) {
  std::uint32_t v = 0;
  for (std::uint32_t p = 0; p < qq.bits; ++p)
    v |= ((qq.planes[(std::uint64_t(h) * qq.bits + p) * w + i / 32] >> (i % 32)) & 1u) << p;
  return v;
}

// uq (q_heads, R) = U[h / group]ᵀ q'_h, R = the basis' columns.
std::vector<double> residual_query(const KscoreInputs& in, const KscoreDims& dm) {
  const std::uint32_t cols = dm.residual.any() ? dm.residual.basis_cols : 0;
  std::vector<double> uq(std::size_t(dm.q_heads()) * cols, 0.0);
  for (std::uint32_t h = 0; h < dm.q_heads(); ++h)
    for (std::uint32_t i = 0; i < cols; ++i) {
      double s = 0;
      for (std::uint32_t j = 0; j < dm.d; ++j)
        s += double(in.basis[(std::uint64_t(h / dm.group) * dm.d + j) * cols + i]) * in.q[std::uint64_t(h) * dm.d + j];
      uq[std::size_t(h) * cols + i] = s;
    }
  return uq;
}

// qmu + alpha·dot + uq·c for every (h, t), dot(h, row) supplying q'·s.
template <class Dot>
std::vector<float> scores(const KscoreInputs& in, const KscoreDims& dm, Dot&& dot) {
  const std::vector<double> uq = residual_query(in, dm);
  const std::uint32_t cols = dm.residual.any() ? dm.residual.basis_cols : 0;
  std::vector<float> out(std::size_t(dm.q_heads()) * dm.keys);
  for (std::uint32_t h = 0; h < dm.q_heads(); ++h) {
    const std::uint32_t kv = h / dm.group;
    const KResidualPlace place = cols ? dm.residual.heads.at(kv) : KResidualPlace{};
    const std::uint32_t rh = KResidualLayout::record_halves(place.code);
    for (std::uint64_t t = 0; t < dm.keys; ++t) {
      const std::uint64_t row = kv * dm.keys + t;
      double s = in.qmu.empty() ? 0.0 : in.qmu[h];
      s += double(from_half(in.alpha[row])) * dot(h, row);
      if (place.code.rank) {
        const std::vector<double> c = unpack_residual(place.code, in.c.subspan(place.offset + t * place.stride, rh),
                                                      double(from_half(in.alpha[row])));
        for (std::uint32_t i = 0; i < place.code.rank; ++i) s += uq[std::size_t(h) * cols + i] * c[i];
      }
      out[h * dm.keys + t] = float(s);
    }
  }
  return out;
}

KscoreQuantized quantize(std::span<const float> q, const KscoreDims& dm, std::uint32_t b,
                         std::span<const KscoreQueryConst> given) {
  const std::uint32_t w = dm.words(), levels = (1u << b) - 1u;
  KscoreQuantized out;
  out.bits = b;
  out.planes.assign(std::size_t(dm.q_heads()) * b * w, 0u);
  out.consts.resize(dm.q_heads());
  for (std::uint32_t h = 0; h < dm.q_heads(); ++h) {
    const float* qh = q.data() + std::size_t(h) * dm.d;  // (d)
    KscoreQueryConst c;
    if (!given.empty()) {
      c = given[h];
    } else {
      float lo = std::numeric_limits<float>::infinity(), hi = -lo, ab = 0;
      for (std::uint32_t i = 0; i < dm.d; ++i) {
        lo = std::min(lo, qh[i]);
        hi = std::max(hi, qh[i]);
        ab += std::fabs(qh[i]);
      }
      if (b == 1) {
        c.delta = 2.0f * ab / float(dm.d);
        c.zero = 0.5f;
        c.inv_delta = c.delta > 0 ? 1.0f / c.delta : 0.0f;
      } else if (hi > lo) {
        c.delta = (hi - lo) / float(levels);
        c.inv_delta = float(levels) / (hi - lo);
        c.zero = -lo * c.inv_delta;
      } else {
        c.delta = 1.0f;
        c.inv_delta = 1.0f;
        c.zero = -lo;
      }
    }
    c.sum_q = 0;
    for (std::uint32_t i = 0; i < dm.d; ++i) {
      std::uint32_t level;
      if (b == 1) {
        level = qh[i] >= 0.0f ? 1u : 0u;
      } else {
        float y = qh[i] * c.inv_delta;
        y = y + c.zero;  // two roundings, as the kernel's `precise` expression
        level = std::uint32_t(std::clamp(std::nearbyint(y), 0.0f, float(levels)));
      }
      c.sum_q += level;
      for (std::uint32_t p = 0; p < b; ++p)
        out.planes[(std::size_t(h) * b + p) * w + i / 32] |= ((level >> p) & 1u) << (i % 32);
    }
    out.consts[h] = c;
  }
  return out;
}

}  // namespace

KscoreQuantized kscore_quantize_query(std::span<const float> q, const KscoreDims& dims, std::uint32_t b) {
  return quantize(q, dims, b, {});
}

KscoreQuantized kscore_quantize_query_with(std::span<const float> q, const KscoreDims& dims, std::uint32_t b,
                                           std::span<const KscoreQueryConst> given) {
  return quantize(q, dims, b, given);
}

std::vector<std::int32_t> kscore_popcount_sums(std::span<const std::uint32_t> bits, const KscoreDims& dm,
                                               const KscoreQuantized& qq) {
  const std::uint32_t w = dm.words();
  std::vector<std::int32_t> out(std::size_t(dm.q_heads()) * dm.keys);
  for (std::uint32_t h = 0; h < dm.q_heads(); ++h)
    for (std::uint64_t t = 0; t < dm.keys; ++t) {
      const std::uint64_t row = std::uint64_t(h / dm.group) * dm.keys + t;
      std::int64_t s = 0;
      for (std::uint32_t i = 0; i < dm.d; ++i) s += std::int64_t(sign_at(bits, row, w, i)) * level_at(qq, w, h, i);
      out[h * dm.keys + t] = std::int32_t(s);
    }
  return out;
}

std::vector<float> kscore_float(const KscoreInputs& in, const KscoreDims& dm) {
  const std::uint32_t w = dm.words();
  return scores(in, dm, [&](std::uint32_t h, std::uint64_t row) {
    double s = 0;
    for (std::uint32_t i = 0; i < dm.d; ++i) s += sign_at(in.bits, row, w, i) * in.q[std::uint64_t(h) * dm.d + i];
    return s;
  });
}

std::vector<float> kscore_popcount(const KscoreInputs& in, const KscoreDims& dm, const KscoreQuantized& qq) {
  const std::uint32_t w = dm.words();
  return scores(in, dm, [&](std::uint32_t h, std::uint64_t row) {
    double sq = 0, sigma = 0;
    for (std::uint32_t i = 0; i < dm.d; ++i) {
      const double si = sign_at(in.bits, row, w, i);
      sq += si * level_at(qq, w, h, i);
      sigma += si;
    }
    const KscoreQueryConst& c = qq.consts[h];
    return double(c.delta) * (sq - double(c.zero) * sigma);
  });
}

std::vector<float> kscore_f16(std::span<const half_bits> k, std::span<const float> q, const KscoreDims& dm) {
  const std::uint64_t row_halves = std::uint64_t((dm.d + 1) / 2) * 2;  // rows padded to whole words
  std::vector<float> out(std::size_t(dm.q_heads()) * dm.keys);
  for (std::uint32_t h = 0; h < dm.q_heads(); ++h)
    for (std::uint64_t t = 0; t < dm.keys; ++t) {
      const std::uint64_t row = std::uint64_t(h / dm.group) * dm.keys + t;
      double s = 0;
      for (std::uint32_t i = 0; i < dm.d; ++i) s += double(from_half(k[row * row_halves + i])) * q[std::uint64_t(h) * dm.d + i];
      out[h * dm.keys + t] = float(s);
    }
  return out;
}

std::vector<std::uint32_t> kscore_pack_signs(std::span<const float> v, std::uint64_t rows, std::uint32_t d) {
  const std::uint32_t w = (d + 31) / 32;
  std::vector<std::uint32_t> bits(rows * w, 0u);
  for (std::uint64_t r = 0; r < rows; ++r)
    for (std::uint32_t i = 0; i < d; ++i)
      if (v[r * d + i] >= 0.0f) bits[r * w + i / 32] |= 1u << (i % 32);
  return bits;
}

}  // namespace vkq::ref
