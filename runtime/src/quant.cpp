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
#include "quant_blocks.hpp"

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

// Field access, ggml's rounding and the K-quant blocks: quant_blocks.hpp.
using namespace detail;

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
