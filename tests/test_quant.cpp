// The CPU reference of ggml's block formats (vkquant/quant.hpp): the type
// tables, one hand-built block per type decoded to known values, quantize →
// dequantize error bounds on Gaussian and awkward data, and bit-exactness
// against ggml itself: libggml-base.so (scripts/fetch-peer.sh) decodes
// fill_random_blocks data to the same floats bit for bit, and quantizes the
// same inputs to the same bytes.
#include <gtest/gtest.h>

#include <dlfcn.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "vkquant/error.hpp"
#include "vkquant/half.hpp"
#include "vkquant/quant.hpp"

namespace {

namespace quant = vkq::quant;
using quant::Type;
using Bytes = std::vector<std::byte>;

// --- helpers -------------------------------------------------------------------

void put_half(Bytes& b, std::size_t at, float v) {
  const vkq::half_bits h = vkq::to_half(v);
  ASSERT_EQ(vkq::from_half(h), v) << "not exact in fp16";
  std::memcpy(b.data() + at, &h, 2);
}
void put_u8(Bytes& b, std::size_t at, std::uint8_t v) { b[at] = std::byte(v); }

std::vector<float> decode(Type t, const Bytes& b) {
  const auto& ti = quant::info(t);
  std::vector<float> y(b.size() / ti.bytes * ti.block);
  quant::dequantize(t, b, y);
  return y;
}

Bytes encode(Type t, const std::vector<float>& x) {
  Bytes b(quant::row_bytes(t, x.size()));
  quant::quantize(t, x, b);
  return b;
}

// N(0, 1) by Box–Muller on mt19937_64's raw output (the same on every platform).
std::vector<float> gaussian(std::size_t n, std::uint64_t seed, float sigma = 1.0f) {
  std::mt19937_64 rng(seed);
  auto uniform = [&] { return (double(rng() >> 11) + 0.5) / 9007199254740992.0; };
  std::vector<float> x(n);
  for (std::size_t i = 0; i < n; i += 2) {
    const double r = std::sqrt(-2.0 * std::log(uniform())), a = 6.283185307179586 * uniform();
    x[i] = float(r * std::cos(a)) * sigma;
    if (i + 1 < n) x[i + 1] = float(r * std::sin(a)) * sigma;
  }
  return x;
}

// RMS of (y − x) over the RMS of x.
double relative_rmse(const std::vector<float>& x, const std::vector<float>& y) {
  double err = 0.0, ref = 0.0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    err += (double(y[i]) - x[i]) * (double(y[i]) - x[i]);
    ref += double(x[i]) * x[i];
  }
  return std::sqrt(err / ref);
}

std::string type_name(const ::testing::TestParamInfo<Type>& p) { return quant::info(p.param).name; }

std::vector<Type> all_types() {
  std::vector<Type> out;
  for (const auto& ti : quant::types()) out.push_back(ti.type);
  return out;
}
std::vector<Type> block_types() {
  std::vector<Type> out;
  for (const auto& ti : quant::types())
    if (quant::is_block_quant(ti.type) && quant::can_quantize(ti.type)) out.push_back(ti.type);
  return out;
}

// --- tables ----------------------------------------------------------------------

TEST(QuantTypes, TableFindAndNames) {
  const auto ts = quant::types();
  ASSERT_EQ(ts.size(), 15u);
  for (std::size_t i = 1; i < ts.size(); ++i) EXPECT_LT(std::uint32_t(ts[i - 1].type), std::uint32_t(ts[i].type)) << "enum order";
  for (const auto& ti : ts) {
    EXPECT_EQ(quant::find(std::uint32_t(ti.type)), &ti) << ti.name;
    EXPECT_EQ(&quant::info(ti.type), &ti);
    EXPECT_STREQ(quant::ggml_type_name(std::uint32_t(ti.type)), ti.ggml_name);
    EXPECT_EQ(quant::parse(ti.name), ti.type);
    EXPECT_EQ(quant::parse(ti.ggml_name), ti.type);
    const auto layout = quant::ggml_block_layout(std::uint32_t(ti.type));
    ASSERT_TRUE(layout.has_value());
    EXPECT_EQ(layout->block, ti.block);
    EXPECT_EQ(layout->bytes, ti.bytes);
    EXPECT_EQ(quant::is_block_quant(ti.type), ti.block > 1);
  }
  EXPECT_STREQ(quant::info(Type::q4_k).ggml_name, "Q4_K");
  EXPECT_EQ(quant::info(Type::q6_k).bytes, 210u);
  EXPECT_EQ(quant::parse("q4_K"), Type::q4_k);  // ggml's own spelling
  EXPECT_EQ(quant::parse("IQ4_xs"), Type::iq4_xs);
  EXPECT_FALSE(quant::parse("q4").has_value());
  EXPECT_FALSE(quant::parse("iq2_xxs").has_value());
  EXPECT_FALSE(quant::parse("").has_value());
  // ggml types vkquant does not read: named, sized, not found.
  EXPECT_EQ(quant::find(16), nullptr);
  EXPECT_STREQ(quant::ggml_type_name(16), "IQ2_XXS");
  EXPECT_STREQ(quant::ggml_type_name(21), "IQ3_S");
  EXPECT_STREQ(quant::ggml_type_name(34), "TQ1_0");
  EXPECT_STREQ(quant::ggml_type_name(15), "Q8_K");
  EXPECT_STREQ(quant::ggml_type_name(39), "MXFP4");
  EXPECT_STREQ(quant::ggml_type_name(4), "type 4");  // removed from ggml
  EXPECT_STREQ(quant::ggml_type_name(77), "type 77");
  EXPECT_EQ(quant::find(4), nullptr);
  EXPECT_EQ(quant::ggml_block_layout(16)->bytes, 66u);
  EXPECT_EQ(quant::ggml_block_layout(15)->bytes, 292u);
  EXPECT_FALSE(quant::ggml_block_layout(4).has_value());
  EXPECT_FALSE(quant::ggml_block_layout(0xffffffffu).has_value());
  EXPECT_EQ(quant::supported_names().rfind("F32, F16, Q4_0, Q4_1, ", 0), 0u) << quant::supported_names();
  EXPECT_THROW((void)quant::info(Type(16)), vkq::Error);
}

TEST(QuantTypes, RowBytes) {
  EXPECT_EQ(quant::row_bytes(Type::q4_k, 512), 288u);
  EXPECT_EQ(quant::row_bytes(Type::q8_0, 64), 68u);
  EXPECT_EQ(quant::row_bytes(Type::f32, 3), 12u);
  EXPECT_EQ(quant::row_bytes(Type::bf16, 0), 0u);
  EXPECT_EQ(quant::row_bytes(Type::iq4_xs, 0), 0u);
  try {
    (void)quant::row_bytes(Type::q4_k, 100);
    ADD_FAILURE() << "100 elements accepted";
  } catch (const vkq::Error& e) {
    EXPECT_NE(std::string(e.what()).find("q4_k: 100 elements is not a multiple of the 256-element block"), std::string::npos) << e.what();
  }
  EXPECT_THROW((void)quant::row_bytes(Type::q4_0, 33), vkq::Error);
  EXPECT_THROW((void)quant::row_bytes(Type::q6_k, 255), vkq::Error);
  EXPECT_THROW((void)quant::row_bytes(Type::f32, ~std::uint64_t(0)), vkq::Error);  // overflows
}

TEST(QuantTypes, SizeMismatchesAndRefusals) {
  std::vector<float> y(32);
  Bytes b(17);
  EXPECT_THROW(quant::dequantize(Type::q4_0, b, y), vkq::Error);
  EXPECT_THROW(quant::quantize(Type::q4_0, y, b), vkq::Error);
  Bytes ok(18);
  EXPECT_THROW(quant::dequantize(Type::q4_0, ok, std::span(y).first(31)), vkq::Error);
  std::vector<float> x(32, 1.0f);
  x[7] = std::nanf("");
  try {
    quant::quantize(Type::q4_0, x, ok);
    ADD_FAILURE() << "NaN quantized";
  } catch (const vkq::Error& e) {
    EXPECT_NE(std::string(e.what()).find("quantize q4_0: value 7 is not finite"), std::string::npos) << e.what();
  }
  x[7] = INFINITY;
  Bytes q8(34);
  EXPECT_THROW(quant::quantize(Type::q8_0, x, q8), vkq::Error);
  // The float types keep non-finite values.
  Bytes h(64);
  quant::quantize(Type::f16, x, h);
  std::vector<float> back(32);
  quant::dequantize(Type::f16, h, back);
  EXPECT_TRUE(std::isinf(back[7]));
}

// --- hand-built blocks -----------------------------------------------------------
//
// One block per type with chosen fields; the expected values are worked out
// by hand from the layout in quant.cpp's comments.

TEST(QuantDecode, FloatTypes) {
  Bytes f32(4), f16(2), bf16(2);
  const float v = -1.5f;
  std::memcpy(f32.data(), &v, 4);
  put_u8(f16, 0, 0x00), put_u8(f16, 1, 0xbe);   // fp16 -1.5
  put_u8(bf16, 0, 0xc0), put_u8(bf16, 1, 0xbf);  // bf16 -1.5
  EXPECT_EQ(decode(Type::f32, f32), std::vector<float>{-1.5f});
  EXPECT_EQ(decode(Type::f16, f16), std::vector<float>{-1.5f});
  EXPECT_EQ(decode(Type::bf16, bf16), std::vector<float>{-1.5f});
  // Round trips: f16 and bf16 round to nearest even.
  EXPECT_EQ(encode(Type::bf16, {1.00390625f})[0], std::byte{0x80});  // 1 + 2^-8: a tie, stays at 1.0 (even)
  EXPECT_EQ(encode(Type::bf16, {1.01171875f})[0], std::byte{0x82});  // 1 + 3·2^-8: a tie, rounds up to even
  EXPECT_EQ(encode(Type::f16, {65520.0f})[1], std::byte{0x7c});       // overflows to inf
}

TEST(QuantDecode, Q4_0) {
  Bytes b(18);
  put_half(b, 0, 0.5f);
  for (int j = 0; j < 16; ++j) put_u8(b, 2 + j, std::uint8_t(j | ((15 - j) << 4)));
  const auto y = decode(Type::q4_0, b);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], 0.5f * float(j - 8)) << j;
    EXPECT_EQ(y[j + 16], 0.5f * float(7 - j)) << j + 16;
  }
  EXPECT_EQ(y[0], -4.0f);
  EXPECT_EQ(y[31], -4.0f);
}

TEST(QuantDecode, Q4_1) {
  Bytes b(20);
  put_half(b, 0, 0.25f);
  put_half(b, 2, -1.0f);
  for (int j = 0; j < 16; ++j) put_u8(b, 4 + j, std::uint8_t(j | ((15 - j) << 4)));
  const auto y = decode(Type::q4_1, b);
  EXPECT_EQ(y[0], -1.0f);
  EXPECT_EQ(y[15], 2.75f);
  EXPECT_EQ(y[16], 2.75f);
  EXPECT_EQ(y[20], 1.75f);
  EXPECT_EQ(y[31], -1.0f);
}

TEST(QuantDecode, Q5_0) {
  Bytes b(22);
  put_half(b, 0, 1.0f);
  const std::uint32_t qh = 0x80000001u;  // bit 4 of elements 0 and 31
  std::memcpy(b.data() + 2, &qh, 4);
  put_u8(b, 6, 0x3f);  // element 0: 15, element 16: 3
  const auto y = decode(Type::q5_0, b);
  EXPECT_EQ(y[0], 15.0f);    // 31 - 16
  EXPECT_EQ(y[16], -13.0f);  // 3 - 16
  EXPECT_EQ(y[15], -16.0f);
  EXPECT_EQ(y[31], 0.0f);  // 16 - 16
}

TEST(QuantDecode, Q5_1) {
  Bytes b(24);
  put_half(b, 0, 0.5f);
  put_half(b, 2, 1.0f);
  const std::uint32_t qh = 0x00010000u;  // bit 4 of element 16
  std::memcpy(b.data() + 4, &qh, 4);
  put_u8(b, 8, 0x21);
  const auto y = decode(Type::q5_1, b);
  EXPECT_EQ(y[0], 1.5f);    // 1·0.5 + 1
  EXPECT_EQ(y[16], 10.0f);  // 18·0.5 + 1
  EXPECT_EQ(y[1], 1.0f);
  EXPECT_EQ(y[17], 1.0f);
}

TEST(QuantDecode, Q8_0) {
  Bytes b(34);
  put_half(b, 0, -0.25f);
  for (int j = 0; j < 32; ++j) put_u8(b, 2 + j, std::uint8_t(std::int8_t(j - 16)));
  const auto y = decode(Type::q8_0, b);
  EXPECT_EQ(y[0], 4.0f);
  EXPECT_EQ(y[16], -0.0f);
  EXPECT_EQ(y[31], -3.75f);
}

TEST(QuantDecode, Q2_K) {
  Bytes b(84);
  put_half(b, 80, 1.0f);  // d
  put_half(b, 82, 0.5f);  // dmin
  put_u8(b, 0, 0x21);     // sub-block 0 (elements 0..15): scale 1, min 2
  put_u8(b, 2, 0x13);     // sub-block 2 (32..47): scale 3, min 1
  put_u8(b, 9, 0x05);     // sub-block 9 (144..159): scale 5, min 0
  put_u8(b, 16 + 0, 0x39);        // codes of elements 0 (1), 32 (2), 64 (3), 96 (0)
  put_u8(b, 16 + 32 + 20, 0x02);  // element 148 (second half, shift 0, lane 20): 2
  const auto y = decode(Type::q2_k, b);
  EXPECT_EQ(y[0], 0.0f);    // 1·1 − 0.5·2
  EXPECT_EQ(y[1], -1.0f);   // 1·0 − 0.5·2
  EXPECT_EQ(y[32], 5.5f);   // 3·2 − 0.5·1
  EXPECT_EQ(y[33], -0.5f);  // 3·0 − 0.5·1
  EXPECT_EQ(y[64], 0.0f);   // sub-block 4: scale 0
  EXPECT_EQ(y[148], 10.0f);  // 5·2 − 0
  EXPECT_EQ(y[149], 0.0f);
}

TEST(QuantDecode, Q3_K) {
  Bytes b(110);
  put_half(b, 108, 0.5f);
  // Sub-block 0: stored 34 (low nibble 2 in scales[0], top bits 2 at bit 0 of scales[8]): 0.5·2 = 1.
  // Sub-block 9: stored 20 (low 4 in the high nibble of scales[1], top 1 at bit 4 of scales[9]): 0.5·(−12) = −6.
  // Every other sub-block: stored 0, 0.5·(−32) = −16.
  put_u8(b, 96 + 0, 0x02);
  put_u8(b, 96 + 8, 0x02);
  put_u8(b, 96 + 1, 0x40);
  put_u8(b, 96 + 9, 0x10);
  put_u8(b, 32 + 0, 0x01);       // element 0: low bits 1 ...
  put_u8(b, 0, 0x01);            // ... high bit set: code 1
  put_u8(b, 32 + 32 + 20, 0x03);  // element 148: low bits 3, high bit (hmask[20] bit 4) clear: 3 − 4
  const auto y = decode(Type::q3_k, b);
  EXPECT_EQ(y[0], 1.0f);
  EXPECT_EQ(y[1], -4.0f);    // code 0 − 4
  EXPECT_EQ(y[16], 64.0f);   // −16·(−4)
  EXPECT_EQ(y[148], 6.0f);   // −6·(−1)
  EXPECT_EQ(y[149], 24.0f);  // −6·(−4)
}

// The scales of the Q4_K/Q5_K blocks below: sub-block 0 scale 3 min 5,
// sub-block 4 scale 18 min 39 (low bits in scales[8], top bits in bits 6..7
// of scales[0] and scales[4]), the rest 0.
void put_k4_scales(Bytes& b) {
  put_half(b, 0, 0.5f);   // d
  put_half(b, 2, 0.25f);  // dmin
  put_u8(b, 4 + 0, 3 | (1 << 6));
  put_u8(b, 4 + 4, 5 | (2 << 6));
  put_u8(b, 4 + 8, 0x72);
}

TEST(QuantDecode, Q4_K) {
  Bytes b(144);
  put_k4_scales(b);
  put_u8(b, 16 + 0, 0xa9);           // element 0: 9; element 32 (sub-block 1, scale 0): 10
  put_u8(b, 16 + 64 + 3, 0x5f);      // element 131 (sub-block 4): 15; element 163 (sub-block 5): 5
  const auto y = decode(Type::q4_k, b);
  EXPECT_EQ(y[0], 12.25f);   // 0.5·3·9 − 0.25·5
  EXPECT_EQ(y[1], -1.25f);   // 0 − 0.25·5
  EXPECT_EQ(y[32], 0.0f);
  EXPECT_EQ(y[131], 125.25f);  // 0.5·18·15 − 0.25·39
  EXPECT_EQ(y[130], -9.75f);
  EXPECT_EQ(y[163], 0.0f);
}

TEST(QuantDecode, Q5_K) {
  Bytes b(176);
  put_k4_scales(b);
  put_u8(b, 48 + 0, 0x09);       // element 0: low bits 9 ...
  put_u8(b, 16 + 0, 0x01);       // ... fifth bit (qh[0] bit 0): 25
  put_u8(b, 48 + 64 + 3, 0x0f);  // element 131: low bits 15 ...
  put_u8(b, 16 + 3, 0x30);       // ... qh[3] bit 4: 31; bit 5 is element 163's (scale 0)
  const auto y = decode(Type::q5_k, b);
  EXPECT_EQ(y[0], 36.25f);     // 0.5·3·25 − 1.25
  EXPECT_EQ(y[1], -1.25f);
  EXPECT_EQ(y[131], 269.25f);  // 0.5·18·31 − 9.75
  EXPECT_EQ(y[163], 0.0f);
}

TEST(QuantDecode, Q6_K) {
  Bytes b(210);
  put_half(b, 208, 0.25f);
  put_u8(b, 192 + 0, 4);
  put_u8(b, 192 + 6, 1);
  put_u8(b, 192 + 9, std::uint8_t(std::int8_t(-2)));
  put_u8(b, 0, 0x0f);            // element 0: low bits 15 ...
  put_u8(b, 128 + 0, 0x02);      // ... high bits 2: 47 − 32 = 15
  put_u8(b, 64 + 20, 0x01);      // element 148 (second half, quarter 0, lane 20): 1 − 32
  put_u8(b, 32 + 5, 0x70);       // element 101 (quarter 3, lane 5): low bits 7 in the high nibble ...
  put_u8(b, 128 + 5, 0xc0);      // ... high bits 3 at bits 6..7: 55 − 32 = 23
  const auto y = decode(Type::q6_k, b);
  EXPECT_EQ(y[0], 15.0f);     // 0.25·4·15
  EXPECT_EQ(y[1], -32.0f);    // 0.25·4·(−32)
  EXPECT_EQ(y[148], 15.5f);   // 0.25·(−2)·(−31)
  EXPECT_EQ(y[101], 5.75f);   // 0.25·1·23
  EXPECT_EQ(y[16], 0.0f);
}

TEST(QuantDecode, IQ4_NL) {
  Bytes b(18);
  put_half(b, 0, 0.5f);
  for (int j = 0; j < 16; ++j) put_u8(b, 2 + j, std::uint8_t(j | ((15 - j) << 4)));
  const auto y = decode(Type::iq4_nl, b);
  EXPECT_EQ(y[0], -63.5f);  // 0.5·(−127)
  EXPECT_EQ(y[8], 0.5f);    // 0.5·1
  EXPECT_EQ(y[15], 56.5f);  // 0.5·113
  EXPECT_EQ(y[16], 56.5f);
  EXPECT_EQ(y[23], 0.5f);
  EXPECT_EQ(y[31], -63.5f);
}

TEST(QuantDecode, IQ4_XS) {
  Bytes b(136);
  put_half(b, 0, 0.25f);
  put_u8(b, 2, 0x42);  // scales_h: sub-block 0 top bits 2, sub-block 3 top bits 1
  put_u8(b, 4, 0x04);  // scales_l[0]: sub-block 0 low bits 4 → 36 − 32 = 4, d·4 = 1
  put_u8(b, 5, 0xf0);  // scales_l[1]: sub-block 3 low bits 15 → 31 − 32 = −1
  put_u8(b, 8 + 0, 0x0f);       // element 0: level 113; element 16: level −127
  put_u8(b, 8 + 48 + 1, 0x08);  // element 97 (sub-block 3, lane 1): level 1
  const auto y = decode(Type::iq4_xs, b);
  EXPECT_EQ(y[0], 113.0f);
  EXPECT_EQ(y[16], -127.0f);
  EXPECT_EQ(y[97], -0.25f);
  EXPECT_EQ(y[32], 1016.0f);  // sub-block 1: stored 0, 0.25·(−32)·(−127)
}

// --- quantize → dequantize errors ------------------------------------------------

struct Bound {
  Type type;
  double gaussian;  // relative RMSE on N(0, 1)
  double outlier;   // the same with one value at 40σ in each 256
};
// Measured on 64 Ki Gaussian values (seed 1; the same figures as ggml's, whose
// bytes these are), then given ~15% margin. Gaussian / with outliers:
//   f16 0.00021 / 0.00008   bf16 0.0017 / 0.0006   q8_0 0.0054 / 0.0120
//   q6_k 0.0179 / 0.0335    q5_k 0.0364 / 0.0489   q5_1 0.0382 / 0.0521
//   q5_0 0.0431 / 0.0919    q4_k 0.0721 / 0.0990   q4_1 0.0789 / 0.1077
//   iq4_xs 0.0769 / 0.1216  iq4_nl 0.0764 / 0.1188 q4_0 0.0869 / 0.1302
//   q3_k 0.153 / 0.113      q2_k 0.298 / 0.173
// (The outlier rows have a larger RMS, so the coarse types' relative error drops.)
constexpr Bound kBounds[] = {
    {Type::f16, 2.5e-4, 1e-4},   {Type::bf16, 2e-3, 7e-4},     {Type::q8_0, 0.0065, 0.014},  {Type::q6_k, 0.021, 0.039},
    {Type::q5_k, 0.042, 0.056},  {Type::q5_1, 0.044, 0.06},    {Type::q5_0, 0.05, 0.106},    {Type::q4_k, 0.083, 0.114},
    {Type::q4_1, 0.09, 0.124},   {Type::iq4_xs, 0.089, 0.14},  {Type::iq4_nl, 0.088, 0.137}, {Type::q4_0, 0.1, 0.15},
    {Type::q3_k, 0.175, 0.13},   {Type::q2_k, 0.34, 0.2},
};

class QuantRoundTrip : public ::testing::TestWithParam<Bound> {};

TEST_P(QuantRoundTrip, GaussianAndOutliers) {
  const Bound& bd = GetParam();
  auto x = gaussian(65536, 1);
  const double e = relative_rmse(x, decode(bd.type, encode(bd.type, x)));
  std::printf("[ measured ] %-6s relative RMSE %.5f (Gaussian)", quant::info(bd.type).name, e);
  EXPECT_LE(e, bd.gaussian);
  for (std::size_t i = 37; i < x.size(); i += 256) x[i] = 40.0f;
  const double eo = relative_rmse(x, decode(bd.type, encode(bd.type, x)));
  std::printf(", %.5f (outliers)\n", eo);
  EXPECT_LE(eo, bd.outlier);
}

INSTANTIATE_TEST_SUITE_P(Quant, QuantRoundTrip, ::testing::ValuesIn(kBounds),
                         [](const auto& p) { return std::string(quant::info(p.param.type).name); });

class QuantAwkward : public ::testing::TestWithParam<Type> {};

TEST_P(QuantAwkward, ZerosConstantsAndTinyScales) {
  const Type t = GetParam();
  const std::size_t n = 1024;
  // All zeros come back as zeros.
  for (float v : decode(t, encode(t, std::vector<float>(n, 0.0f)))) ASSERT_EQ(v, 0.0f);
  // Constant rows (positive and negative) come back within 2%; at 1e-3 the
  // q6_k and iq4_xs super-scales (~2e-7) are fp16 subnormals: within 5%
  // (measured 2.3% and 3.1%).
  for (const float c : {0.7f, -3.1f, 1e-3f}) {
    const double tol = std::fabs(c) * (c == 1e-3f ? 0.05 : 0.02);
    const auto y = decode(t, encode(t, std::vector<float>(n, c)));
    for (std::size_t i = 0; i < n; ++i) ASSERT_NEAR(y[i], c, tol) << "constant " << c << ", element " << i;
  }
  // Scales in fp16's subnormal range: values ~1e-4 give d ~1e-5 (q8_0) to
  // ~1e-6 (k-quant sub-scales); the reconstruction loses fp16's subnormal
  // precision but stays finite and close.
  const auto tiny = gaussian(n, 5, 1e-4f);
  const auto yt = decode(t, encode(t, tiny));
  for (float v : yt) ASSERT_TRUE(std::isfinite(v));
  const double et = relative_rmse(tiny, yt);
  std::printf("[ measured ] %-6s relative RMSE %.4f (values ~1e-4)\n", quant::info(t).name, et);
  // Measured: 0.01 (q8_0) to 0.28 (q2_k); q6_k 0.13 and iq4_xs 0.23, whose
  // super-scales (~4e-7) have few bits left as fp16 subnormals.
  EXPECT_LE(et, 0.33) << "values ~1e-4";
  // Far below fp16's range every scale rounds to 0: zeros, never NaN.
  const auto denormal = gaussian(n, 6, 1e-30f);
  for (float v : decode(t, encode(t, denormal))) ASSERT_EQ(v, 0.0f);
  // A single non-zero value in a block of zeros comes back close to itself
  // (absmax formats map it exactly, up to fp16); the zeros beside it within
  // 1% of it (the affine formats' minimum, IQ4's smallest level 1/127).
  std::vector<float> one(n, 0.0f);
  one[300] = -2.5f;
  const auto y1 = decode(t, encode(t, one));
  EXPECT_NEAR(y1[300], -2.5f, 2.5 * 0.02);
  EXPECT_NEAR(y1[301], 0.0f, 2.5 * 0.01);
}

INSTANTIATE_TEST_SUITE_P(Quant, QuantAwkward, ::testing::ValuesIn(block_types()), type_name);

// --- test blocks -----------------------------------------------------------------

TEST(QuantRandomBlocks, FiniteDeterministicAndSized) {
  for (const auto& ti : quant::types()) {
    Bytes a(ti.bytes * 40), b(ti.bytes * 40), c(ti.bytes * 40);
    quant::fill_random_blocks(ti.type, a, 7);
    quant::fill_random_blocks(ti.type, b, 7);
    quant::fill_random_blocks(ti.type, c, 8);
    EXPECT_EQ(a, b) << ti.name;
    EXPECT_NE(a, c) << ti.name;
    const auto y = decode(ti.type, a);
    float amax = 0.0f;
    bool negative = false;
    for (float v : y) {
      ASSERT_TRUE(std::isfinite(v)) << ti.name;
      amax = std::max(amax, std::fabs(v));
      negative |= v < 0.0f;
    }
    EXPECT_GT(amax, 0.0f) << ti.name;
    EXPECT_TRUE(negative) << ti.name;
    if (!quant::is_block_quant(ti.type)) {
      for (float v : y) EXPECT_TRUE(std::fabs(v) >= 0x1p-10f && std::fabs(v) <= 0x1p-2f) << ti.name << " " << v;
    }
    Bytes odd(ti.bytes + 1);
    EXPECT_THROW(quant::fill_random_blocks(ti.type, odd, 1), vkq::Error) << ti.name;
  }
  // The scale fields: |d| in [2^-10, 2^-2].
  Bytes q(18 * 64);
  quant::fill_random_blocks(Type::q4_0, q, 3);
  for (std::size_t b = 0; b < 64; ++b) {
    std::uint16_t h;
    std::memcpy(&h, q.data() + 18 * b, 2);
    const float d = std::fabs(vkq::from_half(h));
    EXPECT_TRUE(d >= 0x1p-10f && d <= 0x1p-2f) << d;
  }
}

// --- bit-exactness against ggml -----------------------------------------------------

// The pieces of ggml.h the comparison needs (struct ggml_type_traits, in
// declaration order; ggml_quantize_chunk), declared here so the test does
// not depend on ggml's headers.
struct GgmlTypeTraits {
  const char* type_name;
  std::int64_t blck_size;
  std::int64_t blck_size_interleave;
  std::size_t type_size;
  bool is_quantized;
  void (*to_float)(const void* x, float* y, std::int64_t k);
  void (*from_float_ref)(const float* x, void* y, std::int64_t k);
};
using GetTraits = const GgmlTypeTraits* (*)(int type);
using QuantizeChunk = std::size_t (*)(int type, const float* src, void* dst, std::int64_t start, std::int64_t nrows,
                                      std::int64_t n_per_row, const float* imatrix);

struct Ggml {
  void* handle = nullptr;
  GetTraits traits = nullptr;
  QuantizeChunk quantize_chunk = nullptr;
  std::string error;
};

const Ggml& ggml() {
  static const Ggml g = [] {
    Ggml r;
    const std::filesystem::path lib = std::filesystem::path(VKQ_SOURCE_DIR) / "third_party/llamacpp/lib/cpu/libggml-base.so";
    r.handle = ::dlopen(lib.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!r.handle) {
      const char* why = ::dlerror();
      r.error = lib.string() + " cannot be loaded (" + (why ? why : "?") + "): run scripts/fetch-peer.sh first";
      return r;
    }
    r.traits = reinterpret_cast<GetTraits>(::dlsym(r.handle, "ggml_get_type_traits"));
    r.quantize_chunk = reinterpret_cast<QuantizeChunk>(::dlsym(r.handle, "ggml_quantize_chunk"));
    if (!r.traits || !r.quantize_chunk) r.error = lib.string() + " lacks ggml_get_type_traits or ggml_quantize_chunk";
    return r;
  }();
  return g;
}

std::string lower(std::string s) {
  for (auto& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// ggml's traits of t, checked against our table (which also checks the
// struct layout declared above).
const GgmlTypeTraits* ggml_traits(Type t) {
  const GgmlTypeTraits* tr = ggml().traits(int(t));
  const auto& ti = quant::info(t);
  EXPECT_EQ(lower(tr->type_name), ti.name);
  EXPECT_EQ(tr->blck_size, std::int64_t(ti.block));
  EXPECT_EQ(tr->type_size, std::size_t(ti.bytes));
  EXPECT_EQ(tr->is_quantized, quant::is_block_quant(t));
  return tr;
}

class QuantVsGgml : public ::testing::TestWithParam<Type> {};

// ggml's to_float and quant::dequantize give the same float bits for random
// blocks (every code, both signs of scale), so quant::dequantize is a
// faithful stand-in for ggml in the kernel tests.
TEST_P(QuantVsGgml, DecodeIsBitIdentical) {
  ASSERT_TRUE(ggml().error.empty()) << ggml().error;
  const Type t = GetParam();
  const auto& ti = quant::info(t);
  const std::size_t blocks = ti.block == 1 ? 4096 : 8192 / ti.block * 4;
  Bytes b(blocks * ti.bytes);
  quant::fill_random_blocks(t, b, 11);
  const auto ours = decode(t, b);
  std::vector<float> theirs(ours.size());
  const GgmlTypeTraits* tr = ggml_traits(t);
  if (t == Type::f32) {
    ASSERT_EQ(tr->to_float, nullptr);  // ggml has no converter for f32: the bytes are the floats
    std::memcpy(theirs.data(), b.data(), b.size());
  } else {
    ASSERT_NE(tr->to_float, nullptr);
    tr->to_float(b.data(), theirs.data(), std::int64_t(theirs.size()));
  }
  std::size_t mismatches = 0;
  for (std::size_t i = 0; i < ours.size(); ++i)
    if (std::bit_cast<std::uint32_t>(ours[i]) != std::bit_cast<std::uint32_t>(theirs[i]) && ++mismatches <= 5)
      ADD_FAILURE() << ti.name << " element " << i << ": ours " << ours[i] << ", ggml " << theirs[i];
  EXPECT_EQ(mismatches, 0u);
}

// Rows for the quantizer comparison: Gaussian, Gaussian with outliers,
// constant, zeros, small (~1e-4) values and a ramp, 4096 values each.
std::vector<std::vector<float>> comparison_rows() {
  std::vector<std::vector<float>> rows;
  for (std::uint64_t seed = 20; seed < 24; ++seed) rows.push_back(gaussian(4096, seed));
  auto outliers = gaussian(4096, 30);
  for (std::size_t i = 5; i < outliers.size(); i += 97) outliers[i] *= 30.0f;
  rows.push_back(outliers);
  rows.push_back(std::vector<float>(4096, 0.7f));
  rows.push_back(std::vector<float>(4096, -0.3f));
  rows.push_back(std::vector<float>(4096, 0.0f));
  rows.push_back(gaussian(4096, 31, 1e-4f));
  auto half_zero = gaussian(4096, 32);  // every other 16-value group zero
  for (std::size_t i = 0; i < half_zero.size(); ++i)
    if ((i / 16) % 2) half_zero[i] = 0.0f;
  rows.push_back(half_zero);
  std::vector<float> ramp(4096);
  for (std::size_t i = 0; i < ramp.size(); ++i) ramp[i] = float(i % 256) / 64.0f - 1.5f;
  rows.push_back(ramp);
  auto positive = gaussian(4096, 33);  // all positive: the k-quant minimum clamps to 0
  for (auto& v : positive) v = std::fabs(v) + 0.25f;
  rows.push_back(positive);
  return rows;
}

// quant::quantize writes the bytes ggml_quantize_chunk writes (no importance
// matrix: quantize_row_*_ref, and for iq4_nl/iq4_xs ggml's 7-try search).
TEST_P(QuantVsGgml, QuantizeIsByteIdentical) {
  ASSERT_TRUE(ggml().error.empty()) << ggml().error;
  const Type t = GetParam();
  (void)ggml_traits(t);
  const auto rows = comparison_rows();
  for (std::size_t r = 0; r < rows.size(); ++r) {
    const auto& x = rows[r];
    const Bytes ours = encode(t, x);
    Bytes theirs(ours.size());
    const std::size_t written = ggml().quantize_chunk(int(t), x.data(), theirs.data(), 0, 1, std::int64_t(x.size()), nullptr);
    ASSERT_EQ(written, theirs.size());
    std::size_t first = ours.size();
    for (std::size_t i = 0; i < ours.size(); ++i)
      if (ours[i] != theirs[i]) {
        first = i;
        break;
      }
    EXPECT_EQ(first, ours.size()) << quant::info(t).name << " row " << r << ": first differing byte " << first << " (block "
                                  << first / quant::info(t).bytes << ")";
  }
}

INSTANTIATE_TEST_SUITE_P(Quant, QuantVsGgml, ::testing::ValuesIn(all_types()), type_name);

}  // namespace
