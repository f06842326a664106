#include "vkquant/kresidual.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>

#include "vkquant/error.hpp"

namespace vkq {

namespace {

[[noreturn]] void refuse(std::uint32_t h, KResidual r, const std::string& rule) {
  throw Error("residual layout: head " + std::to_string(h) + " (" +
              (r.tc ? residual_label(r) : "rank " + std::to_string(r.rank) + ", " + std::to_string(r.bits) +
                                              (r.arel ? " alpha-relative" : "") + " bits") +
              "): " + rule);
}

// Largest code of a `bits`-bit record (bits 8: 127, 4: 7).
int max_code(std::uint32_t bits) { return bits == 8 ? 127 : 7; }
// Codes per half of a `bits`-bit record.
std::uint32_t per_half(std::uint32_t bits) { return 16 / bits; }

}  // namespace

TcSlot tc_slot(KResidual r, std::uint32_t i) {
  if (i < r.n4) return {4, i / 4, 4 * (i % 4)};
  std::uint32_t half = r.n4 / 4;
  i -= r.n4;
  if (i < r.n3) return {3, half + 3 * i / 16, 3 * i % 16};
  half += 3 * r.n3 / 16;
  i -= r.n3;
  if (i < r.n2) return {2, half + i / 8, 2 * (i % 8)};
  half += r.n2 / 8;
  i -= r.n2;
  return {1, half + i / 16, i % 16};
}

bool tc_fills_halves(KResidual r) {
  return r.n4 + r.n3 + r.n2 <= r.rank && r.n4 % 4 == 0 && r.n3 % 16 == 0 && r.n2 % 8 == 0 && r.n1() % 16 == 0;
}

std::string residual_label(KResidual r) {
  if (r.tc)
    return "tc" + (r.rank == 0 ? std::string("0")
                               : std::to_string(r.n4) + "/" + std::to_string(r.n3) + "/" + std::to_string(r.n2) + "/" +
                                     std::to_string(r.n1()));
  if (r.rank == 0) return "1bit";
  return "r" + std::to_string(r.rank) + "/" + (r.arel ? "a" : "") + std::to_string(r.bits);
}

std::uint32_t KResidualLayout::record_halves(KResidual r) {
  if (r.rank == 0) return 0;
  if (r.tc) return r.n4 / 4 + 3 * r.n3 / 16 + r.n2 / 8 + (r.rank - std::min(r.rank, r.n4 + r.n3 + r.n2)) / 16;
  if (r.arel) return r.rank / per_half(r.bits);
  if (r.bits == 16) return r.rank;
  return 1 + r.rank / per_half(r.bits);
}

KResidualLayout KResidualLayout::make(std::vector<KResidual> heads) {
  KResidualLayout l;
  l.offset.reserve(heads.size());
  std::uint64_t at = 0;
  for (std::uint32_t h = 0; h < heads.size(); ++h) {
    const KResidual r = heads[h];
    if (r.tc != heads[0].tc) refuse(h, r, "transform-coded heads cannot share a layer with sign-coded ones");
    if (r.tc) {
      if (r.arel || r.bits != 0) refuse(h, r, "a transform-coded head has bits 0 and no alpha-relative codes");
      if (r.n4 + r.n3 + r.n2 > r.rank) refuse(h, r, "n4 + n3 + n2 exceeds the rank");
      if (!tc_fills_halves(r))
        refuse(h, r, "transform codes fill whole halves: n4 % 4, n3 % 16, n2 % 8 and n1 % 16 must be 0 (n4 " +
                         std::to_string(r.n4) + ", n3 " + std::to_string(r.n3) + ", n2 " + std::to_string(r.n2) + ", n1 " +
                         std::to_string(r.n1()) + ")");
      if (r.rank >= 1024) refuse(h, r, "a transform code has fewer than 1024 coefficients (the device's head table)");
    } else if (r.arel) {
      const bool known_width = r.bits == 4 || r.bits == 2 || r.bits == 1;
      if (!known_width) refuse(h, r, "alpha-relative coefficients are 4, 2 or 1 bits");
      if (r.rank % per_half(r.bits))
        refuse(h, r, "alpha-relative " + std::to_string(r.bits) + "-bit codes need a rank divisible by " +
                         std::to_string(per_half(r.bits)));
    } else {
      if (r.bits != 16 && r.bits != 8 && r.bits != 4) refuse(h, r, "bits must be 16, 8 or 4");
      if (r.bits == 8 && r.rank % 2) refuse(h, r, "8-bit coefficients need an even rank");
      if (r.bits == 4 && r.rank % 4) refuse(h, r, "4-bit coefficients need a rank divisible by 4");
    }
    l.offset.push_back(std::uint32_t(at));
    at += record_halves(r);
    if (at >= (std::uint64_t(1) << 31)) refuse(h, r, "records exceed 2^31 halves per position");
  }
  l.heads = std::move(heads);
  l.stride = std::uint32_t(at);
  return l;
}

KResidualLayout KResidualLayout::uniform(std::uint32_t n_kv, std::uint32_t rank, std::uint32_t bits) {
  return make(std::vector<KResidual>(n_kv, KResidual{rank, bits}));
}

std::uint32_t KResidualLayout::max_rank() const {
  std::uint32_t m = 0;
  for (const KResidual& r : heads) m = std::max(m, r.rank);
  return m;
}

std::uint64_t KResidualLayout::bytes(std::uint32_t ctx) const {
  return (std::uint64_t(ctx) * stride + 1) / 2 * 4;
}

void KResidualLayout::check_basis(const char* fn, std::uint32_t basis_cols) const {
  for (std::uint32_t h = 0; h < heads.size(); ++h)
    if (heads[h].rank > basis_cols)
      throw Error(std::string(fn) + ": residual head " + std::to_string(h) + " has rank " +
                  std::to_string(heads[h].rank) + ", more than the basis' " + std::to_string(basis_cols) + " columns");
}

double tc_uniform_level(std::uint32_t width, std::uint32_t u) {
  const std::uint32_t sign = 1u << (width - 1);
  return double(int(u ^ sign) - int(sign)) + 0.5;
}

namespace {

// A transform code's segments fill whole halves (as KResidualLayout::make checks).
void check_tc(const char* fn, KResidual r) {
  if (!tc_fills_halves(r)) throw Error(std::string(fn) + ": " + residual_label(r) + " does not fill whole halves");
}

void check_levels(const char* fn, KResidual r, std::span<const float> levels) {
  if (!levels.empty() && levels.size() < std::size_t(r.rank) * kTcLevels)
    throw Error(std::string(fn) + ": " + std::to_string(levels.size()) + " levels for rank " + std::to_string(r.rank) +
                " (" + std::to_string(kTcLevels) + " per coefficient)");
}

}  // namespace

void pack_residual(KResidual r, std::span<const double> c, std::span<half_bits> record, double alpha,
                   std::span<const float> levels) {
  const std::uint32_t n = KResidualLayout::record_halves(r);
  if (c.size() < r.rank || record.size() < n) throw Error("pack_residual: arrays too small");
  if (r.tc) {
    check_tc("pack_residual", r);
    check_levels("pack_residual", r, levels);
    for (std::uint32_t j = 0; j < n; ++j) record[j] = 0;
    for (std::uint32_t i = 0; i < r.rank; ++i) {
      const TcSlot s = tc_slot(r, i);
      const int lo = -(1 << (s.width - 1)), hi = (1 << (s.width - 1)) - 1;
      int code = 0;  // NaN codes 0
      if (!std::isnan(c[i]) && levels.empty()) {
        code = int(std::clamp(std::floor(c[i]), double(lo), double(hi)));
      } else if (!std::isnan(c[i])) {
        // The nearest level in ascending code order, ties to the larger code
        // (the device's order and comparisons, in fp32).
        float best = INFINITY;
        const float x = float(c[i]);
        for (int v = lo; v <= hi; ++v) {
          const float dd = std::fabs(x - levels[std::size_t(i) * kTcLevels + tc_code_bits(v, s.width)]);
          if (dd <= best) best = dd, code = v;
        }
      }
      const std::uint32_t u = tc_code_bits(code, s.width) << s.shift;  // may run into the next half
      record[s.half] = half_bits(record[s.half] | (u & 0xffffu));
      if (u >> 16) record[s.half + 1] = half_bits(record[s.half + 1] | (u >> 16));
    }
    return;
  }
  if (r.arel) {
    if (r.bits != 4 && r.bits != 2 && r.bits != 1) throw Error("pack_residual: alpha-relative codes are 4, 2 or 1 bits");
    for (std::uint32_t j = 0; j < n; ++j) record[j] = 0;
    const double lo = -double(1 << (r.bits - 1)), hi = double((1 << (r.bits - 1)) - 1);
    const std::uint32_t per = per_half(r.bits), mask = (1u << r.bits) - 1;
    for (std::uint32_t i = 0; i < r.rank; ++i) {
      const int code = alpha > 0 ? int(std::clamp(std::floor(c[i] / alpha), lo, hi)) : 0;
      record[i / per] = half_bits(record[i / per] | ((std::uint32_t(code) & mask) << (r.bits * (i % per))));
    }
    return;
  }
  if (r.bits == 16) {
    for (std::uint32_t i = 0; i < r.rank; ++i) record[i] = to_half(float(c[i]));
    return;
  }
  if (r.bits != 8 && r.bits != 4) throw Error("pack_residual: bits must be 16, 8 or 4");
  double m = 0;
  for (std::uint32_t i = 0; i < r.rank; ++i) m = std::max(m, std::fabs(c[i]));
  const int top = max_code(r.bits);
  record[0] = to_half(float(m / top));
  const double sigma = from_half(record[0]);
  const std::uint32_t per = per_half(r.bits), mask = (1u << r.bits) - 1;
  for (std::uint32_t j = 1; j < n; ++j) record[j] = 0;
  for (std::uint32_t i = 0; i < r.rank; ++i) {
    const int code = sigma == 0 ? 0 : int(std::clamp(std::nearbyint(c[i] / sigma), -double(top), double(top)));
    record[1 + i / per] = half_bits(record[1 + i / per] | ((std::uint32_t(code) & mask) << (r.bits * (i % per))));
  }
}

std::vector<double> unpack_residual(KResidual r, std::span<const half_bits> record, double alpha,
                                    std::span<const float> levels) {
  if (record.size() < KResidualLayout::record_halves(r)) throw Error("unpack_residual: record too small");
  std::vector<double> c(r.rank);
  if (r.tc) {
    check_tc("unpack_residual", r);
    check_levels("unpack_residual", r, levels);
    for (std::uint32_t i = 0; i < r.rank; ++i) {
      const TcSlot s = tc_slot(r, i);
      std::uint32_t w = record[s.half];
      if (s.shift + s.width > 16) w |= std::uint32_t(record[s.half + 1]) << 16;
      const std::uint32_t u = (w >> s.shift) & ((1u << s.width) - 1);
      c[i] = levels.empty() ? tc_uniform_level(s.width, u) : double(levels[std::size_t(i) * kTcLevels + u]);
    }
    return c;
  }
  if (r.arel) {
    if (r.bits != 4 && r.bits != 2 && r.bits != 1) throw Error("unpack_residual: alpha-relative codes are 4, 2 or 1 bits");
    const std::uint32_t per = per_half(r.bits), mask = (1u << r.bits) - 1, sign = 1u << (r.bits - 1);
    for (std::uint32_t i = 0; i < r.rank; ++i) {
      const std::uint32_t u = (std::uint32_t(record[i / per]) >> (r.bits * (i % per))) & mask;
      c[i] = alpha * (double(int(u ^ sign) - int(sign)) + 0.5);
    }
    return c;
  }
  if (r.bits == 16) {
    for (std::uint32_t i = 0; i < r.rank; ++i) c[i] = from_half(record[i]);
    return c;
  }
  if (r.bits != 8 && r.bits != 4) throw Error("unpack_residual: bits must be 16, 8 or 4");
  const double sigma = r.rank ? from_half(record[0]) : 0.0;
  const std::uint32_t per = per_half(r.bits), mask = (1u << r.bits) - 1, sign = 1u << (r.bits - 1);
  for (std::uint32_t i = 0; i < r.rank; ++i) {
    const std::uint32_t u = (std::uint32_t(record[1 + i / per]) >> (r.bits * (i % per))) & mask;
    c[i] = sigma * double(int(u ^ sign) - int(sign));
  }
  return c;
}

KResidualView KResidualView::position_major(const KResidualLayout& l, std::uint32_t basis_cols) {
  KResidualView v;
  v.basis_cols = basis_cols;
  if (l.stride == 0) return v;
  for (std::uint32_t h = 0; h < l.heads.size(); ++h) v.heads.push_back({l.heads[h], l.offset[h], l.stride});
  return v;
}

KResidualView KResidualView::head_major(const KResidualLayout& l, std::uint64_t keys, std::uint32_t basis_cols) {
  KResidualView v;
  v.basis_cols = basis_cols;
  if (l.stride == 0) return v;
  std::uint64_t at = 0;
  for (const KResidual& r : l.heads) {
    const std::uint64_t rh = KResidualLayout::record_halves(r);
    v.heads.push_back({r, at, rh});
    at += keys * rh;
  }
  return v;
}

KResidualView KResidualView::head_major(std::uint32_t kv_heads, std::uint64_t keys, std::uint32_t rank) {
  return head_major(KResidualLayout::uniform(kv_heads, rank), keys, rank);
}

bool KResidualView::any() const { return max_rank() > 0; }

std::uint32_t KResidualView::max_rank() const {
  std::uint32_t m = 0;
  for (const KResidualPlace& p : heads) m = std::max(m, p.code.rank);
  return m;
}

std::uint64_t KResidualView::halves(std::uint64_t keys) const {
  std::uint64_t end = 0;
  if (keys == 0) return 0;
  for (const KResidualPlace& p : heads)
    if (p.code.rank) end = std::max(end, p.offset + (keys - 1) * p.stride + KResidualLayout::record_halves(p.code));
  return end;
}

}  // namespace vkq
