// The K-quant blocks of ggml (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K): decoders
// bit-identical with ggml's dequantize_row_*, encoders following its
// reference quantizers step for step (their scale searches included); see
// quant.cpp for how the order of operations is kept (-ffp-contract=off).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>

#include "quant_blocks.hpp"

namespace vkq::quant::detail {

// --- k-quant scale searches -----------------------------------------------------
//
// The k-quants split a 256-element super-block into sub-blocks of 16 or 32,
// pick a scale (and a minimum) per sub-block by a small search, then store
// those scales themselves quantized to 4, 6 or 8 bits against one fp16 super
// scale. These are ggml's make_q3_quants, make_qx_quants and
// make_qkx2_quants, restricted to the arguments the reference quantizers pass.

// Symmetric levels in [−nmax, nmax − 1] for the n values x, weighted by x²:
// starts from the scale that maps the signed largest value to −nmax, then
// tries 18 nearby scales and keeps the one of least weighted squared error
// (make_qx_quants with rmse_type 1). Writes codes + nmax to L; returns the scale.
static float search_symmetric(int n, int nmax, const float* x, std::int8_t* L) {
  const float max = signed_absmax(x, n);
  if (std::fabs(max) < kZeroGroup) {
    std::fill(L, L + n, std::int8_t(0));
    return 0.0f;
  }
  auto weighted_sums = [&](float iscale, float& sumlx, float& suml2, bool write) {
    sumlx = suml2 = 0.0f;
    for (int i = 0; i < n; ++i) {
      const int l = std::clamp(round_even(iscale * x[i]), -nmax, nmax - 1);
      if (write) L[i] = std::int8_t(l + nmax);
      const float w = x[i] * x[i];
      sumlx += w * x[i] * float(l);
      suml2 += w * float(l) * float(l);
    }
  };
  float sumlx = 0.0f, suml2 = 0.0f;
  weighted_sums(float(-nmax) / max, sumlx, suml2, true);
  float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int step = -9; step <= 9; ++step) {
    if (step == 0) continue;
    const float iscale = -(float(nmax) + 0.1f * float(step)) / max;
    weighted_sums(iscale, sumlx, suml2, false);
    if (suml2 > 0.0f && sumlx * sumlx > best * suml2) {
      weighted_sums(iscale, sumlx, suml2, true);
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

// Q3_K's sub-block search: levels in [−nmax, nmax − 1] from the scale that
// maps the signed largest value to −nmax, then up to five passes moving one
// code at a time while that raises the x²-weighted fit (make_q3_quants with
// do_rmse). Writes codes + nmax to L; returns the least-squares scale.
static float search_q3(int n, int nmax, const float* x, std::int8_t* L) {
  const float max = signed_absmax(x, n);
  if (std::fabs(max) < kZeroGroup) {
    std::fill(L, L + n, std::int8_t(0));
    return 0.0f;
  }
  const float iscale = float(-nmax) / max;
  float sumlx = 0.0f, suml2 = 0.0f;
  for (int i = 0; i < n; ++i) {
    const int l = std::clamp(round_even(iscale * x[i]), -nmax, nmax - 1);
    L[i] = std::int8_t(l);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * float(l);
    suml2 += w * float(l) * float(l);
  }
  for (int pass = 0; pass < 5; ++pass) {
    int changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = x[i] * x[i];
      float slx = sumlx - w * x[i] * float(L[i]);
      if (!(slx > 0.0f)) continue;
      float sl2 = suml2 - w * float(L[i]) * float(L[i]);
      const int l = std::clamp(round_even(x[i] * sl2 / slx), -nmax, nmax - 1);
      if (l == L[i]) continue;
      slx += w * x[i] * float(l);
      sl2 += w * float(l) * float(l);
      if (sl2 > 0.0f && slx * slx * suml2 > sumlx * sumlx * sl2) {
        L[i] = std::int8_t(l);
        sumlx = slx;
        suml2 = sl2;
        ++changed;
      }
    }
    if (changed == 0) break;
  }
  for (int i = 0; i < n; ++i) L[i] = std::int8_t(L[i] + nmax);
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// Affine levels x ≈ scale·l − min_out with l in [0, nmax] and min_out ≥ 0,
// for weights w: from the range [min(x, 0), max(x)], tries nstep + 1 scales
// (nmax + rmin + rdelta·k over the range), fits scale and minimum by weighted
// least squares at each, and keeps the fit of least weighted error, absolute
// (use_mad) or squared (make_qkx2_quants). Writes the codes to L.
static float search_affine(int n, int nmax, const float* x, const float* w, std::uint8_t* L, float* min_out, float rmin,
                    float rdelta, int nstep, bool use_mad) {
  float min = x[0], max = x[0];
  float sum_w = w[0], sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    min = std::min(min, x[i]);  // std::min keeps the first on ties, as ggml's `if (x < min)`
    max = std::max(max, x[i]);
    sum_w += w[i];
    sum_x += w[i] * x[i];
  }
  if (min > 0.0f) min = 0.0f;
  if (max == min) {
    std::fill(L, L + n, std::uint8_t(0));
    *min_out = -min;
    return 0.0f;
  }
  auto error_of = [&](float s, float m, const std::uint8_t* codes) {
    float err = 0.0f;
    for (int i = 0; i < n; ++i) {
      float diff = s * float(codes[i]) + m - x[i];
      diff = use_mad ? std::fabs(diff) : diff * diff;
      err += w[i] * diff;
    }
    return err;
  };
  float iscale = float(nmax) / (max - min);
  float scale = 1.0f / iscale;
  for (int i = 0; i < n; ++i) L[i] = std::uint8_t(std::clamp(round_even(iscale * (x[i] - min)), 0, nmax));
  float best_error = error_of(scale, min, L);
  std::uint8_t trial[32];
  for (int step = 0; step <= nstep; ++step) {
    iscale = (rmin + rdelta * float(step) + float(nmax)) / (max - min);
    float sum_l = 0.0f, sum_l2 = 0.0f, sum_xl = 0.0f;
    for (int i = 0; i < n; ++i) {
      const int l = std::clamp(round_even(iscale * (x[i] - min)), 0, nmax);
      trial[i] = std::uint8_t(l);
      sum_l += w[i] * float(l);
      sum_l2 += w[i] * float(l) * float(l);
      sum_xl += w[i] * float(l) * x[i];
    }
    const float det = sum_w * sum_l2 - sum_l * sum_l;
    if (!(det > 0.0f)) continue;
    float this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
    float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
    if (this_min > 0.0f) {  // the minimum may only lower the values
      this_min = 0.0f;
      this_scale = sum_xl / sum_l2;
    }
    const float err = error_of(this_scale, this_min, trial);
    if (err < best_error) {
      std::copy(trial, trial + n, L);
      best_error = err;
      scale = this_scale;
      min = this_min;
    }
  }
  *min_out = -min;
  return scale;
}

// --- Q2_K --------------------------------------------------------------------------
//
// 84 bytes: scales[16] (low nibble: the scale of sub-block k, high nibble:
// its minimum), qs[64], fp16 d, fp16 dmin. 16 sub-blocks of 16 elements.
// Element e has its 2-bit code in qs[32·(e/128) + e%32] at bit 2·((e%128)/32)
// and belongs to sub-block e/16: x = (d·sc)·q − dmin·m.

void decode_q2_k(const std::byte* b, float* y) {
  const float d = half_at(b + 80), dmin = half_at(b + 82);
  for (int e = 0; e < 256; ++e) {
    const std::uint8_t sm = byte_at(b, std::size_t(e / 16));
    const float dl = d * float(sm & 15), ml = dmin * float(sm >> 4);
    const int q = (byte_at(b + 16, std::size_t(32 * (e / 128) + e % 32)) >> (2 * ((e % 128) / 32))) & 3;
    y[e] = dl * float(q) - ml;
  }
}

// Packs 256 2-bit codes as Q2_K and Q3_K store their low bits.
static void pack_2bit(const std::uint8_t* L, std::byte* qs) {
  for (int half = 0; half < 2; ++half)
    for (int l = 0; l < 32; ++l) {
      const std::uint8_t* c = L + 128 * half + l;
      qs[32 * half + l] = std::byte(std::uint8_t(c[0] | (c[32] << 2) | (c[64] << 4) | (c[96] << 6)));
    }
}

void encode_q2_k(const float* x, std::byte* b) {
  std::uint8_t L[256];
  float scales[16], mins[16], weights[16];
  float max_scale = 0.0f, max_min = 0.0f;  // scales and minima are both >= 0
  for (int k = 0; k < 16; ++k) {
    for (int l = 0; l < 16; ++l) weights[l] = std::fabs(x[16 * k + l]);
    scales[k] = search_affine(16, 3, x + 16 * k, weights, L + 16 * k, &mins[k], -0.5f, 0.1f, 15, true);
    max_scale = std::max(max_scale, scales[k]);
    max_min = std::max(max_min, mins[k]);
  }
  std::uint8_t sm[16] = {};
  if (max_scale > 0.0f) {
    const float iscale = 15.0f / max_scale;
    for (int k = 0; k < 16; ++k) sm[k] = std::uint8_t(round_even(iscale * scales[k]));
    put_half(b + 80, max_scale / 15.0f);
  } else {
    put_half(b + 80, 0.0f);
  }
  if (max_min > 0.0f) {
    const float iscale = 15.0f / max_min;
    for (int k = 0; k < 16; ++k) sm[k] = std::uint8_t(sm[k] | (round_even(iscale * mins[k]) << 4));
    put_half(b + 82, max_min / 15.0f);
  } else {
    put_half(b + 82, 0.0f);
  }
  // Requantize against the stored (rounded) scales.
  for (int k = 0; k < 16; ++k) {
    const float d = half_at(b + 80) * float(sm[k] & 15);
    if (d == 0.0f) continue;
    const float dm = half_at(b + 82) * float(sm[k] >> 4);
    for (int i = 0; i < 16; ++i) L[16 * k + i] = std::uint8_t(std::clamp(round_even((x[16 * k + i] + dm) / d), 0, 3));
  }
  std::memcpy(b, sm, 16);
  pack_2bit(L, b + 16);
}

// --- Q3_K --------------------------------------------------------------------------
//
// 110 bytes: hmask[32], qs[64], scales[12], fp16 d. 16 sub-blocks of 16.
// Element e: low 2 bits as Q2_K (qs[32·(e/128) + e%32], bit 2·((e%128)/32)),
// high bit in hmask[e%32] at bit e/32; the code is low − 4 when the high bit
// is clear, low when set (−4..3). Sub-block k's 6-bit scale: low 4 bits in
// the low (k < 8) or high (k ≥ 8) nibble of scales[k%8], top 2 bits at bit
// 2·(k/4) of scales[8 + k%4]; it is stored + 32. x = (d·(sc − 32))·q.

static int q3_scale(const std::byte* sc, int k) {
  const std::uint8_t low = byte_at(sc, std::size_t(k % 8));
  const int lo = k < 8 ? (low & 15) : (low >> 4);
  const int hi = (byte_at(sc, 8 + std::size_t(k % 4)) >> (2 * (k / 4))) & 3;
  return (lo | (hi << 4)) - 32;
}

void decode_q3_k(const std::byte* b, float* y) {
  const float d = half_at(b + 108);
  for (int e = 0; e < 256; ++e) {
    const float dl = d * float(q3_scale(b + 96, e / 16));
    const int low = (byte_at(b + 32, std::size_t(32 * (e / 128) + e % 32)) >> (2 * ((e % 128) / 32))) & 3;
    const bool high = (byte_at(b, std::size_t(e % 32)) >> (e / 32)) & 1;
    y[e] = dl * float(low - (high ? 0 : 4));
  }
}

void encode_q3_k(const float* x, std::byte* b) {
  std::int8_t L[256];
  float scales[16];
  float max_scale = 0.0f, amax = 0.0f;  // the signed scale of largest magnitude
  for (int k = 0; k < 16; ++k) {
    scales[k] = search_q3(16, 4, x + 16 * k, L + 16 * k);
    if (std::fabs(scales[k]) > amax) {
      amax = std::fabs(scales[k]);
      max_scale = scales[k];
    }
  }
  std::byte* sc = b + 96;
  std::memset(sc, 0, 12);
  if (max_scale != 0.0f) {
    const float iscale = -32.0f / max_scale;
    for (int k = 0; k < 16; ++k) {
      const int l = std::clamp(int(std::int8_t(round_even(iscale * scales[k]))), -32, 31) + 32;
      sc[k % 8] |= std::byte(std::uint8_t(k < 8 ? (l & 15) : ((l & 15) << 4)));
      sc[8 + k % 4] |= std::byte(std::uint8_t((l >> 4) << (2 * (k / 4))));
    }
    put_half(b + 108, 1.0f / iscale);
  } else {
    put_half(b + 108, 0.0f);
  }
  for (int k = 0; k < 16; ++k) {
    const float d = half_at(b + 108) * float(q3_scale(sc, k));
    if (d == 0.0f) continue;
    for (int i = 0; i < 16; ++i) L[16 * k + i] = std::int8_t(std::clamp(round_even(x[16 * k + i] / d), -4, 3) + 4);
  }
  std::uint8_t low[256];
  std::memset(b, 0, 32);
  for (int e = 0; e < 256; ++e) {
    const bool high = L[e] > 3;
    if (high) b[e % 32] |= std::byte(std::uint8_t(1u << (e / 32)));
    low[e] = std::uint8_t(high ? L[e] - 4 : L[e]);
  }
  pack_2bit(low, b + 32);
}

// --- Q4_K and Q5_K -----------------------------------------------------------------
//
// Q4_K, 144 bytes: fp16 d, fp16 dmin, scales[12], qs[128]. Q5_K, 176 bytes:
// the same, then qh[32] before qs[128]. 8 sub-blocks of 32, each with a 6-bit
// scale sc and a 6-bit minimum m packed in scales[12]: for k < 4, sc is the
// low 6 bits of scales[k] and m of scales[k+4]; for k ≥ 4, the low 4 bits
// are the low (sc) and high (m) nibble of scales[k+4] and the top 2 bits are
// bits 6..7 of scales[k−4] (sc) and scales[k] (m).
// Element e's 4 low bits: qs[32·(e/64) + e%32], low nibble when e%64 < 32,
// high nibble otherwise; Q5_K's fifth bit: qh[e%32] at bit e/32.
// x = (d·sc)·q − dmin·m.

static void k4_scale_min(const std::byte* s, int k, int& sc, int& m) {
  if (k < 4) {
    sc = byte_at(s, std::size_t(k)) & 63;
    m = byte_at(s, std::size_t(k + 4)) & 63;
  } else {
    sc = (byte_at(s, std::size_t(k + 4)) & 15) | ((byte_at(s, std::size_t(k - 4)) >> 6) << 4);
    m = (byte_at(s, std::size_t(k + 4)) >> 4) | ((byte_at(s, std::size_t(k)) >> 6) << 4);
  }
}

static void decode_k4_k5(const std::byte* b, float* y, bool five) {
  const float d = half_at(b), dmin = half_at(b + 2);
  const std::byte* qh = b + 16;
  const std::byte* qs = b + (five ? 48 : 16);
  for (int k = 0; k < 8; ++k) {
    int sc = 0, m = 0;
    k4_scale_min(b + 4, k, sc, m);
    const float dl = d * float(sc), ml = dmin * float(m);
    for (int i = 0; i < 32; ++i) {
      const int e = 32 * k + i;
      const std::uint8_t q = byte_at(qs, std::size_t(32 * (e / 64) + i));
      int code = (k % 2 == 0) ? (q & 15) : (q >> 4);
      if (five && ((byte_at(qh, std::size_t(i)) >> k) & 1)) code += 16;
      y[e] = dl * float(code) - ml;
    }
  }
}

void decode_q4_k(const std::byte* b, float* y) { decode_k4_k5(b, y, false); }
void decode_q5_k(const std::byte* b, float* y) { decode_k4_k5(b, y, true); }

static void encode_k4_k5(const float* x, std::byte* b, bool five) {
  const int nmax = five ? 31 : 15;
  std::uint8_t L[256];
  float scales[8], mins[8], weights[32];
  float max_scale = 0.0f, max_min = 0.0f;
  for (int k = 0; k < 8; ++k) {
    const float* xs = x + 32 * k;
    // Weights: the sub-block's RMS plus each value's magnitude.
    float sum_x2 = 0.0f;
    for (int l = 0; l < 32; ++l) sum_x2 += xs[l] * xs[l];
    const float av_x = std::sqrt(sum_x2 / 32.0f);
    for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(xs[l]);
    scales[k] = five ? search_affine(32, nmax, xs, weights, L + 32 * k, &mins[k], -0.5f, 0.1f, 15, false)
                     : search_affine(32, nmax, xs, weights, L + 32 * k, &mins[k], -1.0f, 0.1f, 20, false);
    max_scale = std::max(max_scale, scales[k]);
    max_min = std::max(max_min, mins[k]);
  }
  const float inv_scale = max_scale > 0.0f ? 63.0f / max_scale : 0.0f;
  const float inv_min = max_min > 0.0f ? 63.0f / max_min : 0.0f;
  std::uint8_t s[12] = {};
  for (int k = 0; k < 8; ++k) {
    // ggml stores the rounded value in a uint8_t before clamping: keep its wrap.
    const std::uint8_t ls = std::min<std::uint8_t>(63, std::uint8_t(round_even(inv_scale * scales[k])));
    const std::uint8_t lm = std::min<std::uint8_t>(63, std::uint8_t(round_even(inv_min * mins[k])));
    if (k < 4) {
      s[k] = ls;
      s[k + 4] = lm;
    } else {
      s[k + 4] = std::uint8_t((ls & 15) | ((lm & 15) << 4));
      s[k - 4] = std::uint8_t(s[k - 4] | ((ls >> 4) << 6));
      s[k] = std::uint8_t(s[k] | ((lm >> 4) << 6));
    }
  }
  put_half(b, max_scale / 63.0f);
  put_half(b + 2, max_min / 63.0f);
  std::memcpy(b + 4, s, 12);
  for (int k = 0; k < 8; ++k) {
    int sc = 0, m = 0;
    k4_scale_min(b + 4, k, sc, m);
    const float d = half_at(b) * float(sc);
    if (d == 0.0f) continue;
    const float dm = half_at(b + 2) * float(m);
    for (int i = 0; i < 32; ++i) L[32 * k + i] = std::uint8_t(std::clamp(round_even((x[32 * k + i] + dm) / d), 0, nmax));
  }
  std::byte* qh = b + 16;
  std::byte* qs = b + (five ? 48 : 16);
  if (five) std::memset(qh, 0, 32);
  for (int chunk = 0; chunk < 4; ++chunk)
    for (int i = 0; i < 32; ++i) {
      int lo = L[64 * chunk + i], hi = L[64 * chunk + 32 + i];
      if (lo > 15) {
        lo -= 16;
        qh[i] |= std::byte(std::uint8_t(1u << (2 * chunk)));
      }
      if (hi > 15) {
        hi -= 16;
        qh[i] |= std::byte(std::uint8_t(2u << (2 * chunk)));
      }
      qs[32 * chunk + i] = std::byte(std::uint8_t(lo | (hi << 4)));
    }
}

void encode_q4_k(const float* x, std::byte* b) { encode_k4_k5(x, b, false); }
void encode_q5_k(const float* x, std::byte* b) { encode_k4_k5(x, b, true); }

// --- Q6_K --------------------------------------------------------------------------
//
// 210 bytes: ql[128], qh[64], int8 scales[16], fp16 d. 16 sub-blocks of 16.
// Element e, in half h = e/128 at i = e%128, quarter r = i/32, lane l = i%32:
// low 4 bits in ql[64h + 32·(r%2) + l] (low nibble for r < 2, high for r ≥ 2),
// high 2 bits at bit 2r of qh[32h + l]; code − 32 (−32..31).
// x = (d·sc)·q with sc = scales[e/16].

void decode_q6_k(const std::byte* b, float* y) {
  const float d = half_at(b + 208);
  for (int e = 0; e < 256; ++e) {
    const int h = e / 128, r = (e % 128) / 32, l = e % 32;
    const std::uint8_t lo = byte_at(b, std::size_t(64 * h + 32 * (r % 2) + l));
    const int low = r < 2 ? (lo & 15) : (lo >> 4);
    const int high = (byte_at(b + 128, std::size_t(32 * h + l)) >> (2 * r)) & 3;
    const float sc = float(std::int8_t(b[192 + e / 16]));
    y[e] = d * sc * float((low | (high << 4)) - 32);
  }
}

void encode_q6_k(const float* x, std::byte* b) {
  std::int8_t L[256];
  float scales[16];
  float max_scale = 0.0f, max_abs = 0.0f;
  for (int k = 0; k < 16; ++k) {
    scales[k] = search_symmetric(16, 32, x + 16 * k, L + 16 * k);
    if (std::fabs(scales[k]) > max_abs) {
      max_abs = std::fabs(scales[k]);
      max_scale = scales[k];
    }
  }
  if (max_abs < kZeroGroup) {  // all zero
    std::memset(b, 0, 210);
    return;
  }
  const float iscale = -128.0f / max_scale;
  put_half(b + 208, 1.0f / iscale);
  std::int8_t sc[16];
  for (int k = 0; k < 16; ++k) sc[k] = std::int8_t(std::min(127, round_even(iscale * scales[k])));
  std::memcpy(b + 192, sc, 16);
  for (int k = 0; k < 16; ++k) {
    const float d = half_at(b + 208) * float(sc[k]);
    if (d == 0.0f) continue;
    for (int i = 0; i < 16; ++i) L[16 * k + i] = std::int8_t(std::clamp(round_even(x[16 * k + i] / d), -32, 31) + 32);
  }
  for (int h = 0; h < 2; ++h)
    for (int l = 0; l < 32; ++l) {
      const std::int8_t* c = L + 128 * h + l;  // the four quarters' codes, 0..63
      b[64 * h + l] = std::byte(std::uint8_t((c[0] & 15) | ((c[64] & 15) << 4)));
      b[64 * h + 32 + l] = std::byte(std::uint8_t((c[32] & 15) | ((c[96] & 15) << 4)));
      b[128 + 32 * h + l] = std::byte(std::uint8_t((c[0] >> 4) | ((c[32] >> 4) << 2) | ((c[64] >> 4) << 4) | ((c[96] >> 4) << 6)));
    }
}

}  // namespace vkq::quant::detail
