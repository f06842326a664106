// CPU reference of ggml's weight block formats (see quant.hpp): the type
// tables, one decoder and one encoder per block type, and random test blocks.
//
// Decoding is bit-identical with ggml's dequantize_row_*: every product and
// sum is written in ggml's order ((d·sc)·q − dmin·m, q·d + m, ...) and this
// file is compiled with -ffp-contract=off (runtime/CMakeLists.txt), so no
// multiply-add is fused on targets that have FMA. Encoding follows ggml's
// reference quantizers (quantize_row_*_ref, and quantize_iq4_nl/_xs without
// an importance matrix, which is what ggml_quantize_chunk runs) step for
// step, including their scale searches, so the bytes agree with ggml's
// (tests/test_quant.cpp checks both against libggml-base).
#include "vkquant/quant.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cctype>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>

#include "vkquant/error.hpp"
#include "vkquant/half.hpp"

namespace vkq::quant {

namespace {

// --- tables ------------------------------------------------------------------

constexpr std::array<TypeInfo, 15> kTypes{{
    {Type::f32, "f32", "F32", 1, 4},
    {Type::f16, "f16", "F16", 1, 2},
    {Type::q4_0, "q4_0", "Q4_0", 32, 18},
    {Type::q4_1, "q4_1", "Q4_1", 32, 20},
    {Type::q5_0, "q5_0", "Q5_0", 32, 22},
    {Type::q5_1, "q5_1", "Q5_1", 32, 24},
    {Type::q8_0, "q8_0", "Q8_0", 32, 34},
    {Type::q2_k, "q2_k", "Q2_K", 256, 84},
    {Type::q3_k, "q3_k", "Q3_K", 256, 110},
    {Type::q4_k, "q4_k", "Q4_K", 256, 144},
    {Type::q5_k, "q5_k", "Q5_K", 256, 176},
    {Type::q6_k, "q6_k", "Q6_K", 256, 210},
    {Type::iq4_nl, "iq4_nl", "IQ4_NL", 32, 18},
    {Type::iq4_xs, "iq4_xs", "IQ4_XS", 256, 136},
    {Type::bf16, "bf16", "BF16", 1, 2},
}};

// Every type ggml.h defines (ggml-common.h block sizes), read here or not.
// Ids 4, 5, 31..33 and 36..38 were removed from ggml and are not listed.
struct GgmlRow {
  std::uint32_t id;
  const char* name;
  BlockLayout layout;
};
constexpr std::array<GgmlRow, 36> kGgml{{
    {0, "F32", {1, 4}},          {1, "F16", {1, 2}},         {2, "Q4_0", {32, 18}},      {3, "Q4_1", {32, 20}},
    {6, "Q5_0", {32, 22}},       {7, "Q5_1", {32, 24}},      {8, "Q8_0", {32, 34}},      {9, "Q8_1", {32, 36}},
    {10, "Q2_K", {256, 84}},     {11, "Q3_K", {256, 110}},   {12, "Q4_K", {256, 144}},   {13, "Q5_K", {256, 176}},
    {14, "Q6_K", {256, 210}},    {15, "Q8_K", {256, 292}},   {16, "IQ2_XXS", {256, 66}}, {17, "IQ2_XS", {256, 74}},
    {18, "IQ3_XXS", {256, 98}},  {19, "IQ1_S", {256, 50}},   {20, "IQ4_NL", {32, 18}},   {21, "IQ3_S", {256, 110}},
    {22, "IQ2_S", {256, 82}},    {23, "IQ4_XS", {256, 136}}, {24, "I8", {1, 1}},         {25, "I16", {1, 2}},
    {26, "I32", {1, 4}},         {27, "I64", {1, 8}},        {28, "F64", {1, 8}},        {29, "IQ1_M", {256, 56}},
    {30, "BF16", {1, 2}},        {34, "TQ1_0", {256, 54}},   {35, "TQ2_0", {256, 66}},   {39, "MXFP4", {32, 17}},
    {40, "NVFP4", {64, 36}},     {41, "Q1_0", {128, 18}},    {42, "Q2_0", {64, 18}},     {~0u, nullptr, {0, 0}},
}};

const GgmlRow* ggml_row(std::uint32_t id) {
  for (const auto& r : kGgml)
    if (r.id == id && r.name) return &r;
  return nullptr;
}

// The 16 levels of IQ4_NL and IQ4_XS (ggml-common.h kvalues_iq4nl): a
// non-uniform grid, denser near zero, that a 4-bit index selects.
constexpr std::array<std::int8_t, 16> kIq4Levels{-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

// --- little-endian fields ----------------------------------------------------

std::uint8_t byte_at(const std::byte* p, std::size_t i) { return std::uint8_t(p[i]); }

float half_at(const std::byte* p) {
  std::uint16_t h;
  std::memcpy(&h, p, 2);
  return from_half(h);
}
void put_half(std::byte* p, float v) {
  const half_bits h = to_half(v);
  std::memcpy(p, &h, 2);
}
std::uint16_t u16_at(const std::byte* p) {
  std::uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
std::uint32_t u32_at(const std::byte* p) {
  std::uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

float bf16_to_float(std::uint16_t h) { return std::bit_cast<float>(std::uint32_t(h) << 16); }
// Round to nearest even; NaNs stay NaN and become quiet (ggml_compute_fp32_to_bf16).
std::uint16_t float_to_bf16(float f) {
  const std::uint32_t u = std::bit_cast<std::uint32_t>(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return std::uint16_t((u >> 16) | 0x40u);
  return std::uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

// --- rounding as ggml's quantizers do it ---------------------------------------

// Round half to even for |v| < 2^22 (ggml's nearest_int): adding 1.5·2^23
// leaves the rounded integer in the low mantissa bits. Defined for any float
// (garbage but no undefined behaviour outside that range).
int round_even(float v) {
  const float shifted = v + 12582912.0f;
  return int(std::bit_cast<std::uint32_t>(shifted) & 0x007fffffu) - 0x00400000;
}

// C's float-to-integer conversion (truncation toward zero) where the value
// fits; NaN gives 0 and out-of-range values saturate, where C would be
// undefined. The legacy quantizers round with (int)(x + 0.5) this way.
int truncate(float v) {
  if (!(v == v)) return 0;
  if (v >= 2147483520.0f) return std::numeric_limits<int>::max();
  if (v <= -2147483648.0f) return std::numeric_limits<int>::min();
  return int(v);
}

// Index of the IQ4 level nearest to v; a tie goes to the larger level
// (ggml's best_index_int8).
int nearest_iq4_level(float v) {
  if (v <= kIq4Levels.front()) return 0;
  if (v >= kIq4Levels.back()) return 15;
  int above = 1;  // first level greater than v
  while (!(v < kIq4Levels[std::size_t(above)])) ++above;
  const float below_gap = v - float(kIq4Levels[std::size_t(above - 1)]);
  const float above_gap = float(kIq4Levels[std::size_t(above)]) - v;
  return below_gap < above_gap ? above - 1 : above;
}

// A group whose largest magnitude is below this is all zero (GROUP_MAX_EPS).
constexpr float kZeroGroup = 1e-15f;

// --- legacy 32-element blocks ---------------------------------------------------
//
// Q4_0 (18 bytes): fp16 d, then 16 bytes; byte j holds element j in its low
// nibble and element j+16 in its high nibble. x = (q − 8)·d.
// Q4_1 (20 bytes): fp16 d, fp16 m, nibbles as Q4_0. x = q·d + m.
// Q5_0 (22 bytes): fp16 d, u32 qh whose bit j is bit 4 of element j, nibbles
// as Q4_0 for bits 0..3. x = (q − 16)·d.
// Q5_1 (24 bytes): fp16 d, fp16 m, qh, nibbles. x = q·d + m.
// Q8_0 (34 bytes): fp16 d, 32 int8 q. x = q·d.

void decode_q4_0(const std::byte* b, float* y) {
  const float d = half_at(b);
  for (int j = 0; j < 16; ++j) {
    const std::uint8_t q = byte_at(b, 2 + std::size_t(j));
    y[j] = float((q & 15) - 8) * d;
    y[j + 16] = float((q >> 4) - 8) * d;
  }
}

void decode_q4_1(const std::byte* b, float* y) {
  const float d = half_at(b), m = half_at(b + 2);
  for (int j = 0; j < 16; ++j) {
    const std::uint8_t q = byte_at(b, 4 + std::size_t(j));
    y[j] = float(q & 15) * d + m;
    y[j + 16] = float(q >> 4) * d + m;
  }
}

// The 5-bit code of element j of a Q5 block: its nibble and bit j of qh.
int q5_code(const std::byte* nibbles, std::uint32_t qh, int j) {
  const std::uint8_t q = byte_at(nibbles, std::size_t(j % 16));
  const int low = j < 16 ? (q & 15) : (q >> 4);
  return low | int(((qh >> j) & 1u) << 4);
}

void decode_q5_0(const std::byte* b, float* y) {
  const float d = half_at(b);
  const std::uint32_t qh = u32_at(b + 2);
  for (int j = 0; j < 32; ++j) y[j] = float(q5_code(b + 6, qh, j) - 16) * d;
}

void decode_q5_1(const std::byte* b, float* y) {
  const float d = half_at(b), m = half_at(b + 2);
  const std::uint32_t qh = u32_at(b + 4);
  for (int j = 0; j < 32; ++j) y[j] = float(q5_code(b + 8, qh, j)) * d + m;
}

void decode_q8_0(const std::byte* b, float* y) {
  const float d = half_at(b);
  for (int j = 0; j < 32; ++j) y[j] = float(std::int8_t(b[2 + j])) * d;
}

// The element of largest magnitude, with its sign (the first one on ties).
float signed_absmax(const float* x, int n) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < n; ++j)
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  return max;
}

// Q4_0 and Q5_0: the value of largest magnitude maps to the most negative
// code (−8 or −16) exactly; the rest round half up, clamped to the top code.
void encode_symmetric_legacy(const float* x, std::byte* b, int bits) {
  const int half = 1 << (bits - 1), top = (1 << bits) - 1;
  const float d = signed_absmax(x, 32) / float(-half);
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  put_half(b, d);
  int q[32];
  for (int j = 0; j < 32; ++j) q[j] = std::min(top, truncate(x[j] * id + (float(half) + 0.5f)));
  std::byte* nibbles = b + (bits == 4 ? 2 : 6);
  std::uint32_t qh = 0;
  for (int j = 0; j < 16; ++j) {
    nibbles[j] = std::byte(std::uint8_t((q[j] & 15) | ((q[j + 16] & 15) << 4)));
    qh |= std::uint32_t((q[j] >> 4) & 1) << j;
    qh |= std::uint32_t((q[j + 16] >> 4) & 1) << (j + 16);
  }
  if (bits == 5) std::memcpy(b + 2, &qh, 4);
}

// Q4_1 and Q5_1: d spans [min, max] in 2^bits − 1 steps, m = min.
void encode_affine_legacy(const float* x, std::byte* b, int bits) {
  const int top = (1 << bits) - 1;
  float min = std::numeric_limits<float>::max(), max = -std::numeric_limits<float>::max();
  for (int j = 0; j < 32; ++j) {
    min = std::min(min, x[j]);
    max = std::max(max, x[j]);
  }
  const float d = (max - min) / float(top);
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  put_half(b, d);
  put_half(b + 2, min);
  int q[32];
  for (int j = 0; j < 32; ++j) {
    // ggml clamps the 4-bit codes only; the 5-bit ones cannot pass 31 here.
    const int v = truncate((x[j] - min) * id + 0.5f);
    q[j] = bits == 4 ? std::min(top, v) : v;
  }
  std::byte* nibbles = b + (bits == 4 ? 4 : 8);
  std::uint32_t qh = 0;
  for (int j = 0; j < 16; ++j) {
    nibbles[j] = std::byte(std::uint8_t((q[j] & 15) | ((q[j + 16] & 15) << 4)));
    qh |= std::uint32_t((q[j] >> 4) & 1) << j;
    qh |= std::uint32_t((q[j + 16] >> 4) & 1) << (j + 16);
  }
  if (bits == 5) std::memcpy(b + 4, &qh, 4);
}

void encode_q4_0(const float* x, std::byte* b) { encode_symmetric_legacy(x, b, 4); }
void encode_q5_0(const float* x, std::byte* b) { encode_symmetric_legacy(x, b, 5); }
void encode_q4_1(const float* x, std::byte* b) { encode_affine_legacy(x, b, 4); }
void encode_q5_1(const float* x, std::byte* b) { encode_affine_legacy(x, b, 5); }

void encode_q8_0(const float* x, std::byte* b) {
  float amax = 0.0f;
  for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  put_half(b, d);
  for (int j = 0; j < 32; ++j) {  // round half away from zero (roundf)
    const int q = std::clamp(truncate(std::round(x[j] * id)), -128, 127);
    b[2 + j] = std::byte(std::uint8_t(std::int8_t(q)));
  }
}

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
float search_symmetric(int n, int nmax, const float* x, std::int8_t* L) {
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
float search_q3(int n, int nmax, const float* x, std::int8_t* L) {
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
float search_affine(int n, int nmax, const float* x, const float* w, std::uint8_t* L, float* min_out, float rmin,
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
void pack_2bit(const std::uint8_t* L, std::byte* qs) {
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

int q3_scale(const std::byte* sc, int k) {
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

void k4_scale_min(const std::byte* s, int k, int& sc, int& m) {
  if (k < 4) {
    sc = byte_at(s, std::size_t(k)) & 63;
    m = byte_at(s, std::size_t(k + 4)) & 63;
  } else {
    sc = (byte_at(s, std::size_t(k + 4)) & 15) | ((byte_at(s, std::size_t(k - 4)) >> 6) << 4);
    m = (byte_at(s, std::size_t(k + 4)) >> 4) | ((byte_at(s, std::size_t(k)) >> 6) << 4);
  }
}

void decode_k4_k5(const std::byte* b, float* y, bool five) {
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

void encode_k4_k5(const float* x, std::byte* b, bool five) {
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

// --- IQ4_NL and IQ4_XS -------------------------------------------------------------
//
// IQ4_NL (18 bytes): fp16 d, nibbles as Q4_0 that index kIq4Levels.
// x = d·level. IQ4_XS (136 bytes): fp16 d, u16 scales_h, scales_l[4],
// qs[128]; 8 sub-blocks of 32 with a 6-bit scale: low 4 bits in nibble k%2
// of scales_l[k/2], top 2 bits at bit 2k of scales_h, stored + 32. Sub-block
// k's nibbles are qs[16k..16k+16), laid out as IQ4_NL's. x = (d·(ls − 32))·level.

void decode_iq4_nl(const std::byte* b, float* y) {
  const float d = half_at(b);
  for (int j = 0; j < 16; ++j) {
    const std::uint8_t q = byte_at(b, 2 + std::size_t(j));
    y[j] = d * float(kIq4Levels[q & 15]);
    y[j + 16] = d * float(kIq4Levels[q >> 4]);
  }
}

void decode_iq4_xs(const std::byte* b, float* y) {
  const float d = half_at(b);
  const std::uint16_t scales_h = u16_at(b + 2);
  for (int k = 0; k < 8; ++k) {
    const int ls = ((byte_at(b + 4, std::size_t(k / 2)) >> (4 * (k % 2))) & 15) | (((scales_h >> (2 * k)) & 3) << 4);
    const float dl = d * float(ls - 32);
    for (int j = 0; j < 16; ++j) {
      const std::uint8_t q = byte_at(b + 8, std::size_t(16 * k + j));
      y[32 * k + j] = dl * float(kIq4Levels[q & 15]);
      y[32 * k + j + 16] = dl * float(kIq4Levels[q >> 4]);
    }
  }
}

// The scale of one 32-element group on the IQ4 grid: starts from the scale
// mapping the signed largest value to the level −127, then tries the 15
// scales mapping it to −134..−120 and keeps the best x²-weighted least-squares
// fit (quantize_row_iq4_nl_impl with 7 tries and no importance matrix).
float iq4_group_scale(const float* x) {
  const float max = signed_absmax(x, 32);
  if (std::fabs(max) < kZeroGroup) return 0.0f;
  auto fit = [&](float id, float& sumqx, float& sumq2) {
    sumqx = sumq2 = 0.0f;
    for (int j = 0; j < 32; ++j) {
      const float q = float(kIq4Levels[std::size_t(nearest_iq4_level(id * x[j]))]);
      const float w = x[j] * x[j];
      sumqx += w * q * x[j];
      sumq2 += w * q * q;
    }
  };
  const float d0 = -max / float(kIq4Levels[0]);
  float sumqx = 0.0f, sumq2 = 0.0f;
  fit(1.0f / d0, sumqx, sumq2);
  float d = sumq2 > 0.0f ? sumqx / sumq2 : 0.0f;
  float best = d * sumqx;
  for (int t = -7; t <= 7; ++t) {
    fit(float(t + kIq4Levels[0]) / max, sumqx, sumq2);
    if (sumq2 > 0.0f && sumqx * sumqx > best * sumq2) {
      d = sumqx / sumq2;
      best = d * sumqx;
    }
  }
  return d;
}

// Nibbles of 32 values against 1/d (0 when d is 0), laid out as Q4_0's.
void put_iq4_nibbles(const float* x, float id, std::byte* qs) {
  for (int j = 0; j < 16; ++j)
    qs[j] = std::byte(std::uint8_t(nearest_iq4_level(id * x[j]) | (nearest_iq4_level(id * x[j + 16]) << 4)));
}

void encode_iq4_nl(const float* x, std::byte* b) {
  const float d = iq4_group_scale(x);
  put_half(b, d);
  put_iq4_nibbles(x, d != 0.0f ? 1.0f / d : 0.0f, b + 2);
}

void encode_iq4_xs(const float* x, std::byte* b) {
  float scales[8];
  float max_scale = 0.0f, amax = 0.0f;
  for (int k = 0; k < 8; ++k) {
    scales[k] = iq4_group_scale(x + 32 * k);
    if (std::fabs(scales[k]) > amax) {
      amax = std::fabs(scales[k]);
      max_scale = scales[k];
    }
  }
  const float d = -max_scale / 32.0f;  // -0.0 for an all-zero block, as ggml writes it
  put_half(b, d);
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  std::uint16_t scales_h = 0;
  std::uint8_t scales_l[4] = {};
  for (int k = 0; k < 8; ++k) {
    const int l = std::clamp(round_even(id * scales[k]), -32, 31);
    const float dl = d * float(l);  // from the unrounded d, as ggml does
    put_iq4_nibbles(x + 32 * k, dl != 0.0f ? 1.0f / dl : 0.0f, b + 8 + 16 * k);
    const int stored = l + 32;
    scales_l[k / 2] = std::uint8_t(scales_l[k / 2] | ((stored & 15) << (4 * (k % 2))));
    scales_h = std::uint16_t(scales_h | ((stored >> 4) << (2 * k)));
  }
  std::memcpy(b + 2, &scales_h, 2);
  std::memcpy(b + 4, scales_l, 4);
}

// --- per-type dispatch ----------------------------------------------------------------

using Decode = void (*)(const std::byte*, float*);
using Encode = void (*)(const float*, std::byte*);

// A block type's codec and its fp16 scale fields (for fill_random_blocks):
// byte offsets, and whether ggml's quantizer may write a negative value there.
struct Codec {
  Type type;
  Decode decode;
  Encode encode;
  std::array<int, 2> scale_at;  // -1: none
  std::array<bool, 2> scale_signed;
};
constexpr std::array<Codec, 12> kCodecs{{
    {Type::q4_0, decode_q4_0, encode_q4_0, {0, -1}, {true, false}},
    {Type::q4_1, decode_q4_1, encode_q4_1, {0, 2}, {false, true}},
    {Type::q5_0, decode_q5_0, encode_q5_0, {0, -1}, {true, false}},
    {Type::q5_1, decode_q5_1, encode_q5_1, {0, 2}, {false, true}},
    {Type::q8_0, decode_q8_0, encode_q8_0, {0, -1}, {true, false}},
    {Type::q2_k, decode_q2_k, encode_q2_k, {80, 82}, {false, false}},
    {Type::q3_k, decode_q3_k, encode_q3_k, {108, -1}, {true, false}},
    {Type::q4_k, decode_q4_k, encode_q4_k, {0, 2}, {false, false}},
    {Type::q5_k, decode_q5_k, encode_q5_k, {0, 2}, {false, false}},
    {Type::q6_k, decode_q6_k, encode_q6_k, {208, -1}, {true, false}},
    {Type::iq4_nl, decode_iq4_nl, encode_iq4_nl, {0, -1}, {true, false}},
    {Type::iq4_xs, decode_iq4_xs, encode_iq4_xs, {0, -1}, {true, false}},
}};

const Codec& codec(Type t) {
  for (const auto& c : kCodecs)
    if (c.type == t) return c;
  throw Error(std::string("quant: no block codec for ") + info(t).name);
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = char(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// A finite value with |v| in [2^-10, 2^-2) and a random fp16 mantissa.
float moderate_value(std::uint64_t bits, bool allow_negative) {
  const int exponent = -10 + int(bits % 8);  // 2^-10 .. 2^-3, times 1.mantissa
  const float mantissa = 1.0f + float((bits >> 3) & 1023u) / 1024.0f;
  const float v = std::ldexp(mantissa, exponent);
  return allow_negative && ((bits >> 13) & 1u) ? -v : v;
}

}  // namespace

// --- public API -----------------------------------------------------------------------

std::span<const TypeInfo> types() { return kTypes; }

const TypeInfo& info(Type t) {
  for (const auto& i : kTypes)
    if (i.type == t) return i;
  throw Error("quant: " + std::to_string(std::uint32_t(t)) + " is not a vkquant weight type");
}

const TypeInfo* find(std::uint32_t ggml_id) {
  for (const auto& i : kTypes)
    if (std::uint32_t(i.type) == ggml_id) return &i;
  return nullptr;
}

const char* ggml_type_name(std::uint32_t ggml_id) {
  if (const GgmlRow* r = ggml_row(ggml_id)) return r->name;
  thread_local std::string unknown;
  unknown = "type " + std::to_string(ggml_id);
  return unknown.c_str();
}

std::optional<BlockLayout> ggml_block_layout(std::uint32_t ggml_id) {
  if (const GgmlRow* r = ggml_row(ggml_id)) return r->layout;
  return std::nullopt;
}

std::optional<Type> parse(std::string_view name) {
  const std::string want = lower(name);
  for (const auto& i : kTypes)
    if (want == i.name) return i.type;
  return std::nullopt;
}

std::string supported_names() {
  std::string out;
  for (const auto& i : kTypes) out += (out.empty() ? "" : ", ") + std::string(i.ggml_name);
  return out;
}

std::uint64_t row_bytes(Type t, std::uint64_t n) {
  const TypeInfo& ti = info(t);
  if (n % ti.block != 0)
    throw Error(std::string(ti.name) + ": " + std::to_string(n) + " elements is not a multiple of the " + std::to_string(ti.block) +
                "-element block");
  const std::uint64_t blocks = n / ti.block;
  if (blocks > std::numeric_limits<std::uint64_t>::max() / ti.bytes)
    throw Error(std::string(ti.name) + ": " + std::to_string(n) + " elements overflow 64-bit byte counts");
  return blocks * ti.bytes;
}

void dequantize(Type t, std::span<const std::byte> src, std::span<float> dst) {
  const TypeInfo& ti = info(t);
  const std::uint64_t want = row_bytes(t, dst.size());
  if (src.size() != want)
    throw Error(std::string("dequantize ") + ti.name + ": " + std::to_string(dst.size()) + " values need " + std::to_string(want) +
                " bytes, got " + std::to_string(src.size()));
  const std::byte* p = src.data();
  switch (t) {
    case Type::f32:
      if (!dst.empty()) std::memcpy(dst.data(), p, dst.size() * 4);
      return;
    case Type::f16:
      for (std::size_t i = 0; i < dst.size(); ++i) dst[i] = half_at(p + 2 * i);
      return;
    case Type::bf16:
      for (std::size_t i = 0; i < dst.size(); ++i) dst[i] = bf16_to_float(u16_at(p + 2 * i));
      return;
    default: break;
  }
  const Decode decode = codec(t).decode;
  for (std::size_t b = 0; b < dst.size() / ti.block; ++b) decode(p + b * ti.bytes, dst.data() + b * ti.block);
}

bool can_quantize(Type t) {
  if (t == Type::f32 || t == Type::f16 || t == Type::bf16) return true;
  return std::any_of(kCodecs.begin(), kCodecs.end(), [t](const Codec& c) { return c.type == t && c.encode; });
}

void quantize(Type t, std::span<const float> src, std::span<std::byte> dst) {
  const TypeInfo& ti = info(t);
  if (!can_quantize(t)) throw Error(std::string("quantize: vkquant cannot write ") + ti.ggml_name);
  const std::uint64_t want = row_bytes(t, src.size());
  if (dst.size() != want)
    throw Error(std::string("quantize ") + ti.name + ": " + std::to_string(src.size()) + " values need " + std::to_string(want) +
                " bytes, got " + std::to_string(dst.size()));
  std::byte* p = dst.data();
  switch (t) {
    case Type::f32:
      if (!src.empty()) std::memcpy(p, src.data(), src.size() * 4);
      return;
    case Type::f16:
      for (std::size_t i = 0; i < src.size(); ++i) put_half(p + 2 * i, src[i]);
      return;
    case Type::bf16:
      for (std::size_t i = 0; i < src.size(); ++i) {
        const std::uint16_t h = float_to_bf16(src[i]);
        std::memcpy(p + 2 * i, &h, 2);
      }
      return;
    default: break;
  }
  for (std::size_t i = 0; i < src.size(); ++i)
    if (!std::isfinite(src[i]))
      throw Error(std::string("quantize ") + ti.name + ": value " + std::to_string(i) + " is not finite (" + std::to_string(src[i]) +
                  ")");
  const Encode encode = codec(t).encode;
  for (std::size_t b = 0; b < src.size() / ti.block; ++b) encode(src.data() + b * ti.block, p + b * ti.bytes);
}

void fill_random_blocks(Type t, std::span<std::byte> dst, std::uint64_t seed) {
  const TypeInfo& ti = info(t);
  if (dst.size() % ti.bytes != 0)
    throw Error(std::string("fill_random_blocks ") + ti.name + ": " + std::to_string(dst.size()) + " bytes is not a multiple of the " +
                std::to_string(ti.bytes) + "-byte block");
  std::mt19937_64 rng(seed);  // raw output only: the same bytes on every platform
  if (!is_block_quant(t)) {
    for (std::size_t i = 0; i < dst.size(); i += ti.bytes) {
      const float v = moderate_value(rng(), true);
      // f32: every mantissa bit random; bf16: the top 7 of them.
      const std::uint32_t f32 = (std::bit_cast<std::uint32_t>(v) & ~0x7fffffu) | std::uint32_t(rng() & 0x7fffffu);
      if (t == Type::f32) std::memcpy(dst.data() + i, &f32, 4);
      else if (t == Type::f16) put_half(dst.data() + i, v);
      else {
        const std::uint16_t h = std::uint16_t(f32 >> 16);
        std::memcpy(dst.data() + i, &h, 2);
      }
    }
    return;
  }
  for (std::size_t i = 0; i < dst.size(); i += 8) {
    const std::uint64_t r = rng();
    std::memcpy(dst.data() + i, &r, std::min<std::size_t>(8, dst.size() - i));
  }
  const Codec& c = codec(t);
  for (std::size_t b = 0; b < dst.size(); b += ti.bytes)
    for (std::size_t f = 0; f < 2; ++f)
      if (c.scale_at[f] >= 0) put_half(dst.data() + b + std::size_t(c.scale_at[f]), moderate_value(rng(), c.scale_signed[f]));
}

}  // namespace vkq::quant
