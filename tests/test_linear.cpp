// linear / linear_id vs their CPU references: f32, f16 and bf16 weights on awkward
// shapes (1, 13, 127, 255, 4097) and batches 1..300, every variant forced,
// non-finite padding (never read), accumulate, windows of rows / experts /
// batch rows forced by a small binding limit, a real f16 weight past
// maxStorageBufferRange, MoE routing with k = 1, 2, 8 of 8 experts, shared or
// per-slot x and invalid ids; argument rejection; the packer.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <tuple>

#include "vk_test.hpp"
#include "vkquant/half.hpp"
#include "vkquant/kernels/linear.hpp"
#include "vkquant/quant.hpp"
#include "vkquant/reference/linear.hpp"

namespace vkq::test {
namespace {

using kernels::LinearVariant;
using kernels::WeightType;

// fp32 sums of up to ~4k terms against fp64 (the same weights: f16 ones
// rounded through fp16 first): relative error ~ sqrt(n) * 2^-24.
constexpr double kMaxNmse = 1e-10;
constexpr std::uint32_t kPoison = 0x7fc00badu;  // a NaN no kernel writes

struct Shape {
  std::uint32_t out, in;
};

std::string shape_name(Shape s, std::uint32_t batch) {
  return "o" + std::to_string(s.out) + "_i" + std::to_string(s.in) + "_b" + std::to_string(batch);
}

// The weights a kernel sees: f16 and bf16 round through their type.
std::vector<float> seen(const std::vector<float>& w, WeightType t) {
  if (t == WeightType::f32) return w;
  if (t == WeightType::f16) return round_to_half(w);
  std::vector<std::byte> b(quant::row_bytes(t, w.size()));
  quant::quantize(t, w, b);
  std::vector<float> r(w.size());
  quant::dequantize(t, b, r);
  return r;
}

// Packs W (experts stacked) and fills every padding value with NaN, which no
// kernel may let reach an output.
std::vector<std::uint32_t> pack_nan_padding(const std::vector<float>& w, std::uint32_t rows, std::uint32_t in,
                                            WeightType t) {
  auto packed = kernels::linear_pack(w, rows, in, t);
  const std::size_t words = kernels::linear_row_bytes(in, t) / 4;
  for (std::size_t i = 0; i < rows; ++i) {
    if (t == WeightType::f32) {
      for (std::size_t j = in; j < words; ++j) packed[i * words + j] = 0x7fc00000u;
    } else {
      const std::uint32_t nan = t == WeightType::f16 ? 0x7e00u : 0x7fc0u;  // f16 / bf16
      for (std::size_t j = in; j < 2 * words; ++j) packed[i * words + j / 2] |= nan << (16 * (j % 2));
    }
  }
  return packed;
}

struct Run {
  std::vector<float> y;
  std::uint32_t dispatches = 0;
};

// Runs linear (y starts as y0, or poison) and checks nothing was written past y.
Run run_linear(Device& d, const std::vector<std::uint32_t>& packed, WeightType t, Shape sh, const std::vector<float>& x,
               std::uint32_t batch, const kernels::LinearOptions& o, const std::vector<float>* y0 = nullptr) {
  Buffer wb = upload(d, packed), xb = upload(d, x);
  const std::uint64_t n = std::uint64_t(batch) * sh.out;
  Buffer y = Buffer::create(d, n * 4 + 64);
  y.fill(kPoison);
  if (y0) y.upload(y0->data(), n * 4);
  Stream s = Stream::create(d);
  kernels::linear(s, {&wb, t, sh.out, sh.in, 1}, xb, y, batch, y0 != nullptr, o);
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

// ---- linear: shapes, batches, types and variants -------------------------------------

struct Case {
  Shape shape;
  std::uint32_t batch;
};

// Every awkward size as out and as in; the big batches on moderate shapes.
const Case kCases[] = {{{1, 1}, 1},      {{1, 4097}, 3},   {{13, 127}, 17},  {{127, 13}, 1},   {{255, 4097}, 1},
                       {{4097, 255}, 3}, {{127, 255}, 64}, {{255, 127}, 300}, {{13, 13}, 300}, {{64, 64}, 17}};

class Linear : public VulkanTest,
               public ::testing::WithParamInterface<std::tuple<Case, WeightType, LinearVariant>> {};

TEST_P(Linear, MatchesReference) {
  const auto [c, type, variant] = GetParam();
  if (unsupported(dev(), variant)) GTEST_SKIP() << "variant not supported by this device";
  const Shape sh = c.shape;
  const auto w = random_floats(std::size_t(sh.out) * sh.in, 3 + sh.out + sh.in);
  const auto x = random_floats(std::size_t(c.batch) * sh.in, 5 + c.batch);
  const auto got = run_linear(dev(), pack_nan_padding(w, sh.out, sh.in, type), type, sh, x, c.batch,
                              {.variant = variant});
  std::vector<float> ref(std::size_t(c.batch) * sh.out);
  ref::linear(seen(w, type), x, ref, sh.out, sh.in, c.batch);
  EXPECT_TRUE(nmse(ref, got.y, kMaxNmse));
  EXPECT_TRUE(close(ref, got.y, 1e-5 * std::sqrt(double(sh.in)), 1e-4));
}

INSTANTIATE_TEST_SUITE_P(Shapes, Linear,
                         ::testing::Combine(::testing::ValuesIn(kCases),
                                            ::testing::Values(WeightType::f32, WeightType::f16, WeightType::bf16),
                                            ::testing::Values(LinearVariant::rows, LinearVariant::rows_shared_x,
                                                              LinearVariant::subgroup, LinearVariant::tiled)),
                         [](const auto& p) {
                           const Case c = std::get<0>(p.param);
                           return shape_name(c.shape, c.batch) + "_" + kernels::weight_type_name(std::get<1>(p.param)) +
                                  "_" + kernels::linear_variant_name(std::get<2>(p.param));
                         });

// ---- accumulate and binding windows ----------------------------------------------------

class LinearWindows : public VulkanTest,
                      public ::testing::WithParamInterface<std::tuple<WeightType, LinearVariant>> {};

// An Inf in x's last column (in = 13: a partial last block for every type)
// gives ±Inf, never NaN: past `in` x is zero, not the clamped last column.
TEST_P(LinearWindows, InfInTheLastColumn) {
  const auto [type, variant] = GetParam();
  if (unsupported(dev(), variant)) GTEST_SKIP() << "variant not supported by this device";
  const Shape sh{70, 13};
  const std::uint32_t batch = 3;
  const auto w = random_floats(std::size_t(sh.out) * sh.in, 81, 0.5f, 1.f);  // positive: no Inf - Inf
  auto x = random_floats(std::size_t(batch) * sh.in, 82);
  x[1 * sh.in + sh.in - 1] = INFINITY;
  const auto got = run_linear(dev(), kernels::linear_pack(w, sh.out, sh.in, type), type, sh, x, batch,
                              {.variant = variant});
  std::vector<float> ref(std::size_t(batch) * sh.out);
  ref::linear(seen(w, type), x, ref, sh.out, sh.in, batch);
  for (std::uint32_t b = 0; b < batch; ++b)
    for (std::uint32_t r = 0; r < sh.out; ++r) {
      const float g = got.y[b * sh.out + r], e = ref[b * sh.out + r];
      if (b == 1) {
        ASSERT_TRUE(std::isinf(g) && g > 0) << "row " << r << ": " << g;
      } else {
        ASSERT_NEAR(g, e, 1e-4) << "batch row " << b << ", row " << r;
      }
    }
}

// y += x Wᵀ onto a random y.
TEST_P(LinearWindows, Accumulate) {
  const auto [type, variant] = GetParam();
  if (unsupported(dev(), variant)) GTEST_SKIP() << "variant not supported by this device";
  const Shape sh{127, 255};
  const std::uint32_t batch = 17;
  const auto w = random_floats(std::size_t(sh.out) * sh.in, 41);
  const auto x = random_floats(std::size_t(batch) * sh.in, 42);
  const auto y0 = random_floats(std::size_t(batch) * sh.out, 43, -3.f, 3.f);
  const auto got = run_linear(dev(), kernels::linear_pack(w, sh.out, sh.in, type), type, sh, x, batch,
                              {.variant = variant}, &y0);
  auto ref = y0;
  ref::linear(seen(w, type), x, ref, sh.out, sh.in, batch, true);
  EXPECT_TRUE(nmse(ref, got.y, kMaxNmse));
}

// A 4 KiB binding limit (16 KiB for tiled, whose barriers are slow on CPU
// devices) splits 300 rows into windows of whole rows and 70 batch rows into
// windows of 3 (13); in = 13 puts x windows at unaligned starts (bound from an
// aligned-down offset), in = 260 keeps them vec4-aligned.
TEST_P(LinearWindows, SmallBindingLimit) {
  const auto [type, variant] = GetParam();
  if (unsupported(dev(), variant)) GTEST_SKIP() << "variant not supported by this device";
  for (const Shape sh : {Shape{300, 13}, Shape{200, 260}}) {
    const std::uint32_t batch = 70;
    const auto w = random_floats(std::size_t(sh.out) * sh.in, 51 + sh.in);
    const auto x = random_floats(std::size_t(batch) * sh.in, 52);
    const auto y0 = random_floats(std::size_t(batch) * sh.out, 53);
    const std::uint64_t limit = variant == LinearVariant::tiled ? 16384 : 4096;
    const kernels::LinearOptions o{.max_binding_bytes = limit, .variant = variant};
    const auto got = run_linear(dev(), kernels::linear_pack(w, sh.out, sh.in, type), type, sh, x, batch, o);
    const std::uint64_t row_windows = std::uint64_t(sh.out) * kernels::linear_row_bytes(sh.in, type) / limit + 1;
    const std::uint64_t batch_windows = std::uint64_t(batch) * std::max(sh.in, sh.out) * 4 / limit + 1;
    EXPECT_GE(got.dispatches, row_windows * batch_windows) << "expected windows of rows and batch rows";
    std::vector<float> ref(std::size_t(batch) * sh.out);
    ref::linear(seen(w, type), x, ref, sh.out, sh.in, batch);
    EXPECT_TRUE(nmse(ref, got.y, kMaxNmse)) << shape_name(sh, batch);
    const auto acc = run_linear(dev(), kernels::linear_pack(w, sh.out, sh.in, type), type, sh, x, batch, o, &y0);
    auto ref_acc = y0;
    ref::linear(seen(w, type), x, ref_acc, sh.out, sh.in, batch, true);
    EXPECT_TRUE(nmse(ref_acc, acc.y, kMaxNmse)) << shape_name(sh, batch) << " accumulate";
  }
}

INSTANTIATE_TEST_SUITE_P(Variants, LinearWindows,
                         ::testing::Combine(::testing::Values(WeightType::f32, WeightType::f16, WeightType::bf16),
                                            ::testing::Values(LinearVariant::rows, LinearVariant::rows_shared_x,
                                                              LinearVariant::subgroup, LinearVariant::tiled)),
                         [](const auto& p) {
                           return std::string(kernels::weight_type_name(std::get<0>(p.param))) + "_" +
                                  kernels::linear_variant_name(std::get<1>(p.param));
                         });

// A real f16 weight past maxStorageBufferRange (~8292 × 8192 halves = 136 MB on
// lavapipe's 128 MiB), batch 2: bound in two windows; rows around the window
// boundary and a sample elsewhere checked.
TEST_F(VulkanTest, LinearF16PastMaxStorageBufferRange) {
  const std::uint64_t range = dev().info().max_storage_buffer_range;
  const std::uint32_t in = 8192;
  const std::uint64_t row_bytes = kernels::linear_row_bytes(in, WeightType::f16), words = row_bytes / 4;
  const std::uint32_t out = std::uint32_t(range / row_bytes + 100);
  if (std::uint64_t(out) * in > (std::uint64_t(1) << 28)) GTEST_SKIP() << "maxStorageBufferRange too large to exceed";
  // Halves straight from a hash (no float matrix): |w| in [0.25, 0.5), both signs.
  std::vector<std::uint32_t> packed(std::size_t(out) * words);
  for (std::size_t i = 0; i < packed.size(); ++i) {
    std::uint32_t z = std::uint32_t(i) * 2654435761u;
    z ^= z >> 15;
    packed[i] = (z & 0x83ff83ffu) | 0x34003400u;
  }
  const std::uint32_t batch = 2;
  const auto x = random_floats(std::size_t(batch) * in, 4);
  const auto got = run_linear(dev(), packed, WeightType::f16, {out, in}, x, batch, {});
  EXPECT_GE(got.dispatches, 2u);
  const std::uint32_t boundary = std::uint32_t(range / row_bytes);
  std::vector<float> ref, sel;
  for (std::uint32_t i = 0; i < out; ++i) {
    if (!(i % 97 == 0 || (i + 8 >= boundary && i < boundary + 8) || i + 1 == out)) continue;
    std::vector<float> row(in);
    for (std::uint32_t j = 0; j < in; ++j) row[j] = from_half(half_bits(packed[i * words + j / 2] >> (16 * (j % 2))));
    std::vector<float> yr(batch);
    ref::linear(row, x, yr, 1, in, batch);
    for (std::uint32_t b = 0; b < batch; ++b) {
      ref.push_back(yr[b]);
      sel.push_back(got.y[std::size_t(b) * out + i]);
    }
  }
  EXPECT_TRUE(nmse(ref, sel, kMaxNmse));
}

// ---- linear_id ----------------------------------------------------------------------

struct MoeCase {
  std::uint32_t n, k;
  bool per_slot;
};

// Runs linear_id over `experts` stacked (out, in) matrices; y starts as poison.
Run run_id(Device& d, const std::vector<std::uint32_t>& packed, WeightType t, std::uint32_t experts, Shape sh,
           const std::vector<std::uint32_t>& ids, const std::vector<float>& x, bool per_slot, std::uint32_t n,
           std::uint32_t k, const kernels::LinearOptions& o) {
  Buffer wb = upload(d, packed), ib = upload(d, ids), xb = upload(d, x);
  const std::uint64_t count = std::uint64_t(n) * k * sh.out;
  Buffer y = Buffer::create(d, count * 4 + 64);
  y.fill(kPoison);
  Stream s = Stream::create(d);
  kernels::linear_id(s, {&wb, t, sh.out, sh.in, experts}, ib, xb, per_slot, y, n, k, o);
  Run r;
  r.dispatches = s.recorded_dispatches();
  s.submit_and_wait();
  std::uint32_t tail[16];
  y.download(tail, sizeof tail, count * 4);
  for (auto v : tail) EXPECT_EQ(v, kPoison) << "linear_id wrote past y";
  r.y = download<float>(y, count);
  return r;
}

// Distinct experts per token (top-k routing), from a fixed seed; every 11th
// slot gets an invalid id when `invalid`.
std::vector<std::uint32_t> route(std::uint32_t n, std::uint32_t k, std::uint32_t experts, bool invalid,
                                 std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<std::uint32_t> ids(std::size_t(n) * k);
  for (std::uint32_t t = 0; t < n; ++t) {
    std::vector<std::uint32_t> perm(experts);
    for (std::uint32_t e = 0; e < experts; ++e) perm[e] = e;
    std::shuffle(perm.begin(), perm.end(), rng);
    for (std::uint32_t j = 0; j < k; ++j) ids[std::size_t(t) * k + j] = perm[j % experts];
  }
  if (invalid)
    for (std::size_t s = 5; s < ids.size(); s += 11) ids[s] = s % 2 ? experts : 0xffffffffu;
  return ids;
}

class LinearId : public VulkanTest,
                 public ::testing::WithParamInterface<std::tuple<MoeCase, WeightType, LinearVariant>> {};

TEST_P(LinearId, MatchesReference) {
  const auto [c, type, variant] = GetParam();
  if (unsupported(dev(), variant)) GTEST_SKIP() << "variant not supported by this device";
  const std::uint32_t experts = 8;
  const Shape sh{127, 129};
  const auto w = random_floats(std::size_t(experts) * sh.out * sh.in, 61 + c.k);
  const auto ids = route(c.n, c.k, experts, c.n > 1, 62 + c.n);
  const auto x = random_floats(std::size_t(c.n) * (c.per_slot ? c.k : 1) * sh.in, 63);
  const auto got = run_id(dev(), pack_nan_padding(w, experts * sh.out, sh.in, type), type, experts, sh, ids, x,
                          c.per_slot, c.n, c.k, {.variant = variant});
  std::vector<float> ref(std::size_t(c.n) * c.k * sh.out);
  ref::linear_id(seen(w, type), ids, x, c.per_slot, ref, experts, sh.out, sh.in, c.n, c.k);
  EXPECT_TRUE(nmse(ref, got.y, kMaxNmse));
  EXPECT_TRUE(close(ref, got.y, 1e-4, 1e-4));
}

const MoeCase kMoe[] = {{1, 1, false}, {1, 8, false}, {1, 8, true}, {13, 2, false},
                        {13, 2, true}, {64, 8, false}, {17, 8, true}, {300, 2, false}};

INSTANTIATE_TEST_SUITE_P(Routing, LinearId,
                         ::testing::Combine(::testing::ValuesIn(kMoe),
                                            ::testing::Values(WeightType::f32, WeightType::f16, WeightType::bf16),
                                            ::testing::Values(LinearVariant::rows, LinearVariant::rows_shared_x,
                                                              LinearVariant::subgroup)),
                         [](const auto& p) {
                           const MoeCase c = std::get<0>(p.param);
                           return "n" + std::to_string(c.n) + "_k" + std::to_string(c.k) +
                                  (c.per_slot ? "_perslot_" : "_shared_") +
                                  kernels::weight_type_name(std::get<1>(p.param)) + "_" +
                                  kernels::linear_variant_name(std::get<2>(p.param));
                         });

class LinearIdWindows : public VulkanTest, public ::testing::WithParamInterface<LinearVariant> {};

// Binding limits that put 3 experts per window (8 experts: 3 windows), and
// one that splits each expert into windows of rows; both also split the 40
// tokens into windows. Invalid ids still come back as zeros, once.
TEST_P(LinearIdWindows, SmallBindingLimit) {
  const LinearVariant variant = GetParam();
  if (unsupported(dev(), variant)) GTEST_SKIP() << "variant not supported by this device";
  const std::uint32_t experts = 8, n = 40, k = 2;
  const Shape sh{24, 60};
  const WeightType type = WeightType::f16;
  const std::uint64_t expert_bytes = sh.out * kernels::linear_row_bytes(sh.in, type);  // 24 * 128
  const auto w = random_floats(std::size_t(experts) * sh.out * sh.in, 71);
  const auto ids = route(n, k, experts, true, 72);
  for (const bool per_slot : {false, true}) {
    const auto x = random_floats(std::size_t(n) * (per_slot ? k : 1) * sh.in, 73);
    std::vector<float> ref(std::size_t(n) * k * sh.out);
    ref::linear_id(seen(w, type), ids, x, per_slot, ref, experts, sh.out, sh.in, n, k);
    for (const std::uint64_t limit : {3 * expert_bytes + 256, expert_bytes / 3}) {
      const auto got = run_id(dev(), kernels::linear_pack(w, experts * sh.out, sh.in, type), type, experts, sh, ids,
                              x, per_slot, n, k, {.max_binding_bytes = limit, .variant = variant});
      EXPECT_GE(got.dispatches, limit > expert_bytes ? 3u * 2u : 8u * 3u * 2u) << "limit " << limit;
      EXPECT_TRUE(nmse(ref, got.y, kMaxNmse)) << "limit " << limit << (per_slot ? " per slot" : " shared x");
      for (std::size_t s = 5; s < ids.size(); s += 11)
        for (std::uint32_t i = 0; i < sh.out; ++i) ASSERT_EQ(got.y[s * sh.out + i], 0.f) << "invalid slot " << s;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Variants, LinearIdWindows,
                         ::testing::Values(LinearVariant::rows, LinearVariant::rows_shared_x, LinearVariant::subgroup),
                         [](const auto& p) { return std::string(kernels::linear_variant_name(p.param)); });

// ---- argument rejection and packing -----------------------------------------------------

TEST_F(VulkanTest, LinearRejectsBadArguments) {
  const Shape sh{13, 100};
  Buffer wb = upload(dev(), kernels::linear_pack(random_floats(13 * 100, 1), 13, 100, WeightType::f16));
  Buffer xb = upload(dev(), random_floats(4 * 100, 2)), y = Buffer::create(dev(), 4 * 13 * 4 * 8);
  Buffer small = Buffer::create(dev(), 16), ids = upload(dev(), std::vector<std::uint32_t>(8, 0));
  Stream s = Stream::create(dev());
  const kernels::LinearWeight w{&wb, WeightType::f16, sh.out, sh.in, 1};
  EXPECT_THROW(kernels::linear(s, w, xb, y, 0), Error);      // batch 0
  EXPECT_THROW(kernels::linear(s, w, xb, y, 5), Error);      // x holds 4 rows
  EXPECT_THROW(kernels::linear(s, w, xb, small, 1), Error);  // y too small
  auto tall = w;
  tall.out = 14;  // the buffer holds 13 rows
  EXPECT_THROW(kernels::linear(s, tall, xb, y, 1), Error);
  auto none = w;
  none.w = nullptr;
  EXPECT_THROW(kernels::linear(s, none, xb, y, 1), Error);
  auto bank = w;
  bank.out = 6;
  bank.experts = 2;
  EXPECT_THROW(kernels::linear(s, bank, xb, y, 1), Error);  // a bank needs linear_id
  EXPECT_THROW(kernels::linear(s, w, xb, y, 1, false, {.max_binding_bytes = 64}), Error);  // not one row
  EXPECT_THROW(kernels::linear(s, w, xb, y, 1, false, {.variant = LinearVariant(99)}), Error);
  EXPECT_THROW(kernels::linear_id(s, bank, ids, xb, false, y, 4, 2, {.variant = LinearVariant::tiled}), Error);
  EXPECT_THROW(kernels::linear_id(s, bank, ids, xb, false, y, 5, 2), Error);  // ids hold 8 slots
  EXPECT_THROW(kernels::linear_id(s, bank, ids, xb, true, y, 4, 2), Error);   // x holds 4 rows, not 8
  EXPECT_THROW(kernels::linear_id(s, bank, ids, xb, false, small, 4, 2), Error);
  EXPECT_THROW(kernels::linear_id(s, bank, ids, xb, false, y, 4, 0), Error);
  EXPECT_EQ(s.recorded_dispatches(), 0u);
  EXPECT_THROW(kernels::linear_pack(random_floats(10, 1), 3, 4, WeightType::f32), Error);
  EXPECT_THROW(kernels::linear_pack(random_floats(10, 1), 0, 10, WeightType::f16), Error);
}

// The CPU default: rows_shared_x for float weights where the device can run
// it (lavapipe can: subgroups of 8 with ballot), linear_id's too; a device
// that cannot run it gets rows.
TEST_F(VulkanTest, LinearDefaultVariantOnCpuDevices) {
  if (dev().info().type != VK_PHYSICAL_DEVICE_TYPE_CPU) GTEST_SKIP() << "not a CPU device";
  const bool shared = kernels::linear_variant_supported(dev(), LinearVariant::rows_shared_x);
  if (dev().info().name.find("llvmpipe") != std::string::npos && dev().info().min_subgroup_size >= 8) {
    EXPECT_TRUE(shared) << "lavapipe at 256 bits: full subgroups of 8 with ballot";
  }
  for (const WeightType t : {WeightType::f32, WeightType::f16, WeightType::bf16}) {
    for (const std::uint32_t batch : {1u, 64u}) {
      EXPECT_EQ(kernels::linear_default_variant(dev(), batch, false, t),
                shared ? LinearVariant::rows_shared_x : LinearVariant::rows)
          << kernels::weight_type_name(t) << " batch " << batch;
    }
  }
  EXPECT_EQ(kernels::linear_default_variant(dev(), 64, true, WeightType::f16),
            shared ? LinearVariant::rows_shared_x : LinearVariant::rows);
}

// Row sizes, f32 rows verbatim and f16 halves in order (round-to-nearest-even),
// padding zero.
TEST(LinearPack, Layout) {
  EXPECT_EQ(kernels::linear_row_bytes(1, WeightType::f32), 16u);
  EXPECT_EQ(kernels::linear_row_bytes(13, WeightType::f32), 64u);
  EXPECT_EQ(kernels::linear_row_bytes(8, WeightType::f16), 16u);
  EXPECT_EQ(kernels::linear_row_bytes(13, WeightType::f16), 32u);
  EXPECT_EQ(kernels::linear_row_bytes(13, WeightType::bf16), 32u);
  const std::uint32_t out = 3, in = 13;
  const auto w = random_floats(std::size_t(out) * in, 5, -70000.f, 70000.f);
  const auto p32 = kernels::linear_pack(w, out, in, WeightType::f32);
  const auto p16 = kernels::linear_pack(w, out, in, WeightType::f16);
  ASSERT_EQ(p32.size(), out * 16u);
  ASSERT_EQ(p16.size(), out * 8u);
  for (std::uint32_t i = 0; i < out; ++i) {
    for (std::uint32_t j = 0; j < 16; ++j) {
      float v;
      std::memcpy(&v, &p32[i * 16 + j], 4);
      EXPECT_EQ(v, j < in ? w[i * in + j] : 0.f) << "f32 row " << i << " col " << j;
      const half_bits h = half_bits(p16[i * 8 + j / 2] >> (16 * (j % 2)));
      EXPECT_EQ(h, j < in ? to_half(w[i * in + j]) : half_bits(0)) << "f16 row " << i << " col " << j;
    }
  }
}

}  // namespace
}  // namespace vkq::test
