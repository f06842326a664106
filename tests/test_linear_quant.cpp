// linear / linear_id / embed on every weight type of quant.hpp (f32, f16,
// bf16 and ggml's block formats, read as stored and dequantized in
// registers) vs the CPU reference on the same bytes (ref::linear on
// TypedRows, quant::dequantize): random blocks from quant::fill_random_blocks,
// rows and subgroup variants, batches 1, 3, 8, 33, `in` of one block, seven
// blocks (a partial group of the 32-element types) and 768 (three K-quant
// blocks), out not a multiple of any tile, windows of rows and batch rows
// forced small, accumulate, MoE routing with invalid ids, a weight past
// maxStorageBufferRange; embed of every type bit for bit; packing and refusals.
//
// Tolerance: the decoded weights are identical, only the fp32 summation order
// differs, so |got - ref| <= 1e-5 · sum_j |w_ij x_j| per output.
#include <algorithm>
#include <cstring>
#include <tuple>

#include "vk_test.hpp"
#include "vkquant/error.hpp"
#include "vkquant/kernels/linear.hpp"
#include "vkquant/kernels/ops.hpp"
#include "vkquant/quant.hpp"
#include "vkquant/reference/linear.hpp"

namespace vkq::test {
namespace {

using kernels::LinearVariant;
using kernels::WeightType;

constexpr std::uint32_t kPoison = 0x7fc00badu;  // a NaN no kernel writes
constexpr double kRelTol = 1e-5;                // of sum |w x| per output

const WeightType kTypes[] = {WeightType::f32,  WeightType::f16,  WeightType::bf16, WeightType::q4_0,   WeightType::q4_1,
                             WeightType::q5_0, WeightType::q5_1, WeightType::q8_0, WeightType::q2_k,   WeightType::q3_k,
                             WeightType::q4_k, WeightType::q5_k, WeightType::q6_k, WeightType::iq4_nl, WeightType::iq4_xs};

std::uint32_t block(WeightType t) { return quant::info(t).block; }

// Every type with the rows and subgroup variants.
using TypeVariant = std::tuple<WeightType, LinearVariant>;
std::vector<TypeVariant> type_variants() {
  std::vector<TypeVariant> v;
  for (const WeightType t : kTypes)
    for (const LinearVariant var : {LinearVariant::rows, LinearVariant::subgroup}) v.emplace_back(t, var);
  return v;
}
std::string tv_name(const TypeVariant& tv) {
  return std::string(kernels::weight_type_name(std::get<0>(tv))) + "_" + kernels::linear_variant_name(std::get<1>(tv));
}

// `rows` rows of random blocks (every bit random, scales moderate), packed
// as the kernels read them, with NaN bytes in the row padding, which no
// kernel may read into an output.
std::vector<std::uint32_t> random_rows(WeightType t, std::uint32_t rows, std::uint32_t in, std::uint64_t seed) {
  const std::uint64_t stored = quant::row_bytes(t, in);
  std::vector<std::byte> raw(rows * stored);
  quant::fill_random_blocks(t, raw, seed);
  auto packed = kernels::linear_pack_raw(raw, rows, in, t);
  const std::uint64_t stride = kernels::linear_row_bytes(in, t);
  auto* bytes = reinterpret_cast<std::uint8_t*>(packed.data());
  for (std::uint64_t r = 0; r < rows; ++r)
    for (std::uint64_t b = stored; b < stride; ++b) bytes[r * stride + b] = 0xff;
  return packed;
}

ref::TypedRows typed(const std::vector<std::uint32_t>& packed, WeightType t, std::uint32_t in) {
  return {std::as_bytes(std::span(packed)), t, kernels::linear_row_bytes(in, t)};
}

// Per output of y (batch, out) = x · Wᵀ: sum_j |w_ij x_j| (the scale of its rounding error).
std::vector<double> abs_scale(const std::vector<float>& w, const std::vector<float>& x, std::uint32_t out,
                              std::uint32_t in, std::uint32_t batch) {
  std::vector<double> s(std::size_t(batch) * out);
  for (std::uint32_t b = 0; b < batch; ++b)
    for (std::uint32_t i = 0; i < out; ++i) {
      double a = 0;
      for (std::uint32_t j = 0; j < in; ++j) a += std::fabs(double(w[std::size_t(i) * in + j]) * x[std::size_t(b) * in + j]);
      s[std::size_t(b) * out + i] = a;
    }
  return s;
}

// |got - ref| <= kRelTol · scale elementwise; names the first mismatches.
::testing::AssertionResult within(const std::vector<float>& ref, const std::vector<float>& got,
                                  const std::vector<double>& scale) {
  if (ref.size() != got.size()) return ::testing::AssertionFailure() << "size " << got.size() << " != " << ref.size();
  std::size_t bad = 0;
  std::string first;
  double worst = 0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    const double err = std::fabs(double(got[i]) - ref[i]), lim = kRelTol * scale[i] + 1e-30;
    worst = std::max(worst, err / (scale[i] + 1e-30));
    if (err <= lim) continue;  // NaN fails here too
    if (++bad <= 5) first += " [" + std::to_string(i) + "] " + std::to_string(got[i]) + " vs " + std::to_string(ref[i]);
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << bad << " of " << ref.size() << " outside " << kRelTol
                                       << " · sum|wx| (worst " << worst << "):" << first;
}

struct Run {
  std::vector<float> y;
  std::uint32_t dispatches = 0;
};

// linear on packed rows; y starts as y0 (accumulate) or poison; nothing past y is written.
Run run_linear(Device& d, const std::vector<std::uint32_t>& packed, WeightType t, std::uint32_t out, std::uint32_t in,
               const std::vector<float>& x, std::uint32_t batch, const kernels::LinearOptions& o,
               const std::vector<float>* y0 = nullptr) {
  Buffer wb = upload(d, packed), xb = upload(d, x);
  const std::uint64_t n = std::uint64_t(batch) * out;
  Buffer y = Buffer::create(d, n * 4 + 64);
  y.fill(kPoison);
  if (y0) y.upload(y0->data(), n * 4);
  Stream s = Stream::create(d);
  kernels::linear(s, {&wb, t, out, in, 1}, xb, y, batch, y0 != nullptr, o);
  Run r;
  r.dispatches = s.recorded_dispatches();
  s.submit_and_wait();
  std::uint32_t tail[16];
  y.download(tail, sizeof tail, n * 4);
  for (auto v : tail) EXPECT_EQ(v, kPoison) << "linear wrote past y";
  r.y = download<float>(y, n);
  return r;
}

bool unsupported(Device& d, LinearVariant v) { return !kernels::linear_variant_supported(d, v); }

// ---- linear: every type × variant × in, batches 1, 3, 8, 33 ------------------------------

// In as a number of blocks: one, seven (a partial group), or 768 elements.
enum class In { one, seven, k768 };
std::uint32_t in_of(WeightType t, In i) {
  return i == In::one ? block(t) : i == In::seven ? 7 * block(t) : 768;
}
const char* in_name(In i) { return i == In::one ? "in1block" : i == In::seven ? "in7blocks" : "in768"; }

class LinearQuant : public VulkanTest, public ::testing::WithParamInterface<std::tuple<TypeVariant, In>> {};

TEST_P(LinearQuant, MatchesReference) {
  const auto [tv, in_kind] = GetParam();
  const auto [type, variant] = tv;
  if (unsupported(dev(), variant)) GTEST_SKIP() << kernels::linear_variant_name(variant) << " needs subgroup operations this device lacks";
  const std::uint32_t in = in_of(type, in_kind);
  const std::uint32_t out = in_kind == In::k768 ? 67 : 13;  // not a multiple of ROWS, RW or the workgroup
  const auto packed = random_rows(type, out, in, 100 + in);
  const auto w = ref::dequantize_rows(typed(packed, type, in), 0, out, in);
  for (const std::uint32_t batch : {1u, 3u, 8u, 33u}) {
    const auto x = random_floats(std::size_t(batch) * in, 7 + batch);
    const auto got = run_linear(dev(), packed, type, out, in, x, batch, {.variant = variant});
    std::vector<float> ref(std::size_t(batch) * out);
    ref::linear(typed(packed, type, in), x, ref, out, in, batch);
    EXPECT_TRUE(within(ref, got.y, abs_scale(w, x, out, in, batch))) << "batch " << batch;
  }
}

INSTANTIATE_TEST_SUITE_P(Types, LinearQuant,
                         ::testing::Combine(::testing::ValuesIn(type_variants()),
                                            ::testing::Values(In::one, In::seven, In::k768)),
                         [](const auto& p) { return tv_name(std::get<0>(p.param)) + "_" + in_name(std::get<1>(p.param)); });

// ---- windows and accumulate -----------------------------------------------------------------

class LinearQuantWindows : public VulkanTest, public ::testing::WithParamInterface<TypeVariant> {};

// A binding limit of 3 weight rows or one x row (whichever is more) splits
// 40 rows into windows of whole rows and 20 batch rows into windows too; with
// and without accumulate.
TEST_P(LinearQuantWindows, SmallBindingLimitAndAccumulate) {
  const auto [type, variant] = GetParam();
  if (unsupported(dev(), variant)) GTEST_SKIP() << kernels::linear_variant_name(variant) << " needs subgroup operations this device lacks";
  const std::uint32_t out = 40, in = 3 * 256, batch = 20;
  const std::uint64_t row_bytes = kernels::linear_row_bytes(in, type);
  const std::uint64_t limit = std::max<std::uint64_t>(3 * row_bytes, in * 4) + 16;
  const auto packed = random_rows(type, out, in, 31);
  const auto w = ref::dequantize_rows(typed(packed, type, in), 0, out, in);
  const auto x = random_floats(std::size_t(batch) * in, 32);
  const auto y0 = random_floats(std::size_t(batch) * out, 33, -3.f, 3.f);
  const kernels::LinearOptions o{.max_binding_bytes = limit, .variant = variant};
  const auto scale = abs_scale(w, x, out, in, batch);
  std::vector<float> ref(std::size_t(batch) * out);
  ref::linear(typed(packed, type, in), x, ref, out, in, batch);
  const auto got = run_linear(dev(), packed, type, out, in, x, batch, o);
  EXPECT_GE(got.dispatches, (out * row_bytes / limit + 1) * 2) << "expected windows of rows and of batch rows";
  EXPECT_TRUE(within(ref, got.y, scale));
  auto ref_acc = y0;
  ref::linear(typed(packed, type, in), x, ref_acc, out, in, batch, true);
  const auto acc = run_linear(dev(), packed, type, out, in, x, batch, o, &y0);
  std::vector<double> scale_acc(scale);
  for (std::size_t i = 0; i < scale_acc.size(); ++i) scale_acc[i] += std::fabs(y0[i]);
  EXPECT_TRUE(within(ref_acc, acc.y, scale_acc)) << "accumulate";
}

INSTANTIATE_TEST_SUITE_P(Types, LinearQuantWindows, ::testing::ValuesIn(type_variants()),
                         [](const auto& p) { return tv_name(p.param); });

// ---- linear_id --------------------------------------------------------------------------------

class LinearQuantId : public VulkanTest, public ::testing::WithParamInterface<TypeVariant> {};

// 5 experts of (19, 2 blocks); 9 tokens × top-3 with every 4th slot an
// invalid id (zeros), shared and per-slot x; then a binding limit that
// splits each expert into windows of rows.
TEST_P(LinearQuantId, MatchesReferenceWithInvalidIds) {
  const auto [type, variant] = GetParam();
  if (unsupported(dev(), variant)) GTEST_SKIP() << kernels::linear_variant_name(variant) << " needs subgroup operations this device lacks";
  const std::uint32_t experts = 5, out = 19, in = 2 * std::max(block(type), 32u), n = 9, k = 3;
  const auto packed = random_rows(type, experts * out, in, 41);
  const auto w = ref::dequantize_rows(typed(packed, type, in), 0, experts * out, in);
  std::vector<std::uint32_t> ids(n * k);
  for (std::uint32_t s = 0; s < n * k; ++s) ids[s] = s % 4 == 3 ? (s % 8 == 3 ? experts : 0xffffffffu) : (s * 7 + s / k) % experts;
  const std::uint64_t row_bytes = kernels::linear_row_bytes(in, type);
  for (const bool per_slot : {false, true}) {
    const auto x = random_floats(std::size_t(n) * (per_slot ? k : 1) * in, 42 + per_slot);
    std::vector<float> ref(std::size_t(n) * k * out);
    ref::linear_id(typed(packed, type, in), ids, x, per_slot, ref, experts, out, in, n, k);
    std::vector<double> scale(ref.size(), 0.0);
    for (std::uint32_t s = 0; s < n * k; ++s) {
      if (ids[s] >= experts) continue;
      const std::size_t xr = per_slot ? s : s / k;
      for (std::uint32_t i = 0; i < out; ++i)
        for (std::uint32_t j = 0; j < in; ++j)
          scale[std::size_t(s) * out + i] += std::fabs(double(w[(std::size_t(ids[s]) * out + i) * in + j]) * x[xr * in + j]);
    }
    // 0: the device's limit; else 5 rows or a token's 3 x rows, whichever is more.
    for (const std::uint64_t limit : {std::uint64_t(0), std::max<std::uint64_t>(5 * row_bytes, 3 * in * 4) + 16}) {
      Buffer wb = upload(dev(), packed), ib = upload(dev(), ids), xb = upload(dev(), x);
      const std::uint64_t count = std::uint64_t(n) * k * out;
      Buffer y = Buffer::create(dev(), count * 4 + 64);
      y.fill(kPoison);
      Stream s = Stream::create(dev());
      kernels::linear_id(s, {&wb, type, out, in, experts}, ib, xb, per_slot, y, n, k,
                         {.max_binding_bytes = limit, .variant = variant});
      s.submit_and_wait();
      const auto got = download<float>(y, count);
      EXPECT_TRUE(within(ref, got, scale)) << (per_slot ? "per-slot x" : "shared x") << ", limit " << limit;
      for (std::uint32_t sl = 3; sl < n * k; sl += 4)
        for (std::uint32_t i = 0; i < out; ++i) ASSERT_EQ(got[std::size_t(sl) * out + i], 0.f) << "invalid slot " << sl;
      std::uint32_t tail[16];
      y.download(tail, sizeof tail, count * 4);
      for (auto v : tail) EXPECT_EQ(v, kPoison) << "linear_id wrote past y";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Types, LinearQuantId, ::testing::ValuesIn(type_variants()),
                         [](const auto& p) { return tv_name(p.param); });

// ---- past maxStorageBufferRange ------------------------------------------------------------------

// A q4_k weight of in = 4096 just past maxStorageBufferRange (~58 k rows of
// 2304 bytes on lavapipe), batch 2, bound in windows the device's own limit
// sets: rows around the window boundary and a sample elsewhere checked.
TEST_F(VulkanTest, LinearQuantPastMaxStorageBufferRange) {
  const WeightType type = WeightType::q4_k;
  const std::uint64_t range = dev().info().max_storage_buffer_range;
  const std::uint32_t in = 4096;
  const std::uint64_t row_bytes = kernels::linear_row_bytes(in, type);
  const std::uint32_t out = std::uint32_t(range / row_bytes + 100);
  if (std::uint64_t(out) * row_bytes > (std::uint64_t(1) << 28)) GTEST_SKIP() << "maxStorageBufferRange too large to exceed";
  const auto packed = random_rows(type, out, in, 51);
  const std::uint32_t batch = 2;
  const auto x = random_floats(std::size_t(batch) * in, 52);
  const auto got = run_linear(dev(), packed, type, out, in, x, batch, {});
  EXPECT_GE(got.dispatches, 2u);
  const std::uint32_t boundary = std::uint32_t(range / row_bytes);
  std::vector<float> ref, sel;
  std::vector<double> scale;
  for (std::uint32_t i = 0; i < out; ++i) {
    if (!(i % 997 == 0 || (i + 4 >= boundary && i < boundary + 4) || i + 1 == out)) continue;
    const auto row = ref::dequantize_rows(typed(packed, type, in), i, 1, in);
    std::vector<float> yr(batch);
    ref::linear(row, x, yr, 1, in, batch);
    const auto sc = abs_scale(row, x, 1, in, batch);
    for (std::uint32_t b = 0; b < batch; ++b) {
      ref.push_back(yr[b]);
      scale.push_back(sc[b]);
      sel.push_back(got.y[std::size_t(b) * out + i]);
    }
  }
  EXPECT_TRUE(within(ref, sel, scale));
}

// ---- embed ---------------------------------------------------------------------------------------

class EmbedQuant : public VulkanTest, public ::testing::WithParamInterface<WeightType> {};

// Rows of every type gathered bit for bit as quant::dequantize decodes them;
// out-of-range ids give zeros; dim = 7 blocks (a partial group) and 768.
TEST_P(EmbedQuant, MatchesDequantize) {
  const WeightType type = GetParam();
  const std::uint32_t vocab = 29;
  for (const std::uint32_t dim : {7 * block(type), 768u}) {
    const auto packed = random_rows(type, vocab, dim, 61 + dim);
    const std::uint64_t row_bytes = kernels::linear_row_bytes(dim, type);
    const std::vector<std::uint32_t> ids{0, 28, 5, 29, 5, 0xffffffffu, 1, 13, 27, 1000, 17};
    Buffer tb = upload(dev(), packed), ib = upload(dev(), ids);
    const std::uint64_t out_bytes = ids.size() * dim * 4ull;
    Buffer out = Buffer::create(dev(), out_bytes + 64);
    out.fill(kPoison);
    Stream s = Stream::create(dev());
    kernels::embed(s, tb, type, vocab, dim, row_bytes, ib, out, std::uint32_t(ids.size()));
    s.submit_and_wait();
    std::vector<float> ref(ids.size() * dim, 0.f);
    for (std::size_t t = 0; t < ids.size(); ++t) {
      if (ids[t] >= vocab) continue;
      const auto row = ref::dequantize_rows(typed(packed, type, dim), ids[t], 1, dim);
      std::copy(row.begin(), row.end(), ref.begin() + std::ptrdiff_t(t * dim));
    }
    const auto got = download<float>(out, ref.size());
    // Bitwise: exact<float> would let -0 == +0 pass.
    std::vector<std::uint32_t> rb(ref.size()), gb(got.size());
    std::memcpy(rb.data(), ref.data(), ref.size() * 4);
    std::memcpy(gb.data(), got.data(), got.size() * 4);
    EXPECT_TRUE(exact<std::uint32_t>(rb, gb)) << "dim " << dim;
    std::uint32_t tail[16];
    out.download(tail, sizeof tail, out_bytes);
    for (auto v : tail) EXPECT_EQ(v, kPoison) << "embed wrote past out";
  }
}

INSTANTIATE_TEST_SUITE_P(Types, EmbedQuant, ::testing::ValuesIn(kTypes),
                         [](const auto& p) { return std::string(kernels::weight_type_name(p.param)); });

// A q8_0 table past maxStorageBufferRange (dim 4096: 4352-byte rows) is bound in row chunks.
TEST_F(VulkanTest, EmbedQuantTablePastMaxStorageBufferRange) {
  const WeightType type = WeightType::q8_0;
  const std::uint64_t range = dev().info().max_storage_buffer_range;
  const std::uint32_t dim = 4096;
  const std::uint64_t row_bytes = kernels::linear_row_bytes(dim, type);
  const std::uint32_t vocab = std::uint32_t(range / row_bytes + 50);
  if (std::uint64_t(vocab) * row_bytes > (std::uint64_t(1) << 28)) GTEST_SKIP() << "maxStorageBufferRange too large to exceed";
  const auto packed = random_rows(type, vocab, dim, 71);
  const std::uint32_t edge = std::uint32_t(range / row_bytes);
  const std::vector<std::uint32_t> ids{0, vocab - 1, vocab, edge - 1, edge, edge + 1, 12345};
  Buffer tb = upload(dev(), packed), ib = upload(dev(), ids);
  Buffer out = Buffer::create(dev(), ids.size() * dim * 4);
  Stream s = Stream::create(dev());
  kernels::embed(s, tb, type, vocab, dim, row_bytes, ib, out, std::uint32_t(ids.size()));
  EXPECT_GE(s.recorded_dispatches(), 2u) << "expected the table to be bound in chunks";
  s.submit_and_wait();
  std::vector<float> ref(ids.size() * dim, 0.f);
  for (std::size_t t = 0; t < ids.size(); ++t) {
    if (ids[t] >= vocab) continue;
    const auto row = ref::dequantize_rows(typed(packed, type, dim), ids[t], 1, dim);
    std::copy(row.begin(), row.end(), ref.begin() + std::ptrdiff_t(t * dim));
  }
  EXPECT_TRUE(exact<float>(ref, download<float>(out, ref.size())));
}

// ---- packing and refusals ----------------------------------------------------------------------

// Rows are the stored bytes padded with zeros to 16; aligned rows upload byte for byte.
TEST(LinearQuantPack, RawRows) {
  EXPECT_EQ(kernels::linear_row_bytes(256, WeightType::q4_k), 144u);
  EXPECT_EQ(kernels::linear_row_bytes(4096, WeightType::q6_k), 3360u);  // 16 × 210
  EXPECT_EQ(kernels::linear_row_bytes(32, WeightType::q4_0), 32u);      // 18 -> 32
  EXPECT_EQ(kernels::linear_row_bytes(256, WeightType::q4_0), 144u);    // 8 × 18
  EXPECT_EQ(kernels::linear_row_bytes(7, WeightType::bf16), 16u);
  EXPECT_EQ(kernels::linear_row_bytes(13, WeightType::f32), 64u);
  for (const WeightType t : kTypes) {
    const std::uint32_t in = 7 * block(t), out = 3;
    const std::uint64_t stored = quant::row_bytes(t, in), stride = kernels::linear_row_bytes(in, t);
    EXPECT_EQ(stride % 16, 0u);
    EXPECT_LT(stride - stored, 16u);
    std::vector<std::byte> raw(out * stored);
    quant::fill_random_blocks(t, raw, 3);
    const auto packed = kernels::linear_pack_raw(raw, out, in, t);
    ASSERT_EQ(packed.size() * 4, out * stride) << kernels::weight_type_name(t);
    const auto* bytes = reinterpret_cast<const std::byte*>(packed.data());
    for (std::uint32_t r = 0; r < out; ++r) {
      EXPECT_EQ(std::memcmp(bytes + r * stride, raw.data() + r * stored, stored), 0) << kernels::weight_type_name(t);
      for (std::uint64_t b = stored; b < stride; ++b) EXPECT_EQ(bytes[r * stride + b], std::byte{0});
    }
  }
}

// linear_pack of floats quantizes each row with quant::quantize.
TEST(LinearQuantPack, FromFloats) {
  const std::uint32_t out = 3, in = 512;
  const auto w = random_floats(std::size_t(out) * in, 9);
  for (const WeightType t : {WeightType::q8_0, WeightType::q4_k, WeightType::bf16}) {
    const auto packed = kernels::linear_pack(w, out, in, t);
    const std::uint64_t stored = quant::row_bytes(t, in);
    std::vector<std::byte> row(stored);
    quant::quantize(t, std::span(w).first(in), row);
    EXPECT_EQ(std::memcmp(packed.data(), row.data(), stored), 0) << kernels::weight_type_name(t);
  }
}

TEST_F(VulkanTest, LinearQuantRefusals) {
  EXPECT_THROW(kernels::linear_row_bytes(100, WeightType::q4_k), Error);  // not a multiple of 256
  EXPECT_THROW(kernels::linear_row_bytes(0, WeightType::q8_0), Error);
  EXPECT_THROW(kernels::linear_pack_raw(std::vector<std::byte>(100), 2, 32, WeightType::q4_0), Error);  // not 2 × 18
  try {
    kernels::linear_row_bytes(48, WeightType::q4_0);
    ADD_FAILURE() << "in = 48 accepted for q4_0";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("q4_0"), std::string::npos) << e.what();
  }
  const std::uint32_t out = 4, in = 256;
  Buffer wb = upload(dev(), random_rows(WeightType::q4_k, out, in, 1));
  Buffer xb = upload(dev(), random_floats(64 * in, 2)), y = Buffer::create(dev(), 64 * out * 4);
  Stream s = Stream::create(dev());
  const kernels::LinearWeight w{&wb, WeightType::q4_k, out, in, 1};
  try {
    kernels::linear(s, w, xb, y, 64, false, {.variant = LinearVariant::tiled});
    ADD_FAILURE() << "tiled accepted q4_k";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("q4_k"), std::string::npos) << e.what();
  }
  auto odd = w;
  odd.in = 100;
  EXPECT_THROW(kernels::linear(s, odd, xb, y, 1), Error);
  auto tall = w;
  tall.out = 5;  // the buffer holds 4 rows
  EXPECT_THROW(kernels::linear(s, tall, xb, y, 1), Error);
  auto bad = w;
  bad.type = WeightType(77);
  EXPECT_THROW(kernels::linear(s, bad, xb, y, 1), Error);
  Buffer ib = upload(dev(), std::vector<std::uint32_t>{0, 1});
  EXPECT_THROW(kernels::embed(s, wb, WeightType::q4_k, out, 100, 144, ib, y, 2), Error);  // dim not a multiple of 256
  EXPECT_THROW(kernels::embed(s, wb, WeightType::q4_k, out, 256, 128, ib, y, 2), Error);  // row shorter than a block
  EXPECT_EQ(s.recorded_dispatches(), 0u);
  try {
    kernels::linear(s, w, xb, y, 64, false, {.variant = LinearVariant::rows_shared_x});
    ADD_FAILURE() << "rows_shared_x accepted q4_k";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("rows_shared_x variant reads f32, f16 or bf16 weights, not q4_k"),
              std::string::npos)
        << e.what();
  }
  EXPECT_EQ(s.recorded_dispatches(), 0u);
  // automatic never picks tiled or rows_shared_x for block types, even where it would for f16.
  for (const std::uint32_t batch : {1u, 256u}) {
    EXPECT_NE(kernels::linear_default_variant(dev(), batch, false, WeightType::q4_k), LinearVariant::tiled);
    EXPECT_NE(kernels::linear_default_variant(dev(), batch, false, WeightType::q4_k), LinearVariant::rows_shared_x);
  }
}

}  // namespace
}  // namespace vkq::test
