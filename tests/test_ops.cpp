// Transformer ops vs the CPU reference: embedding (f32 and f16 tables, padded
// rows, out-of-range ids, a table past maxStorageBufferRange, > 65535
// workgroups), RMSNorm (awkward rows/d, in place), RoPE (both styles, far
// positions), SwiGLU (in place), add (a buffer past maxStorageBufferRange),
// bias, MoE routing (ties, normalize on/off) and combine (accumulate on/off).
#include <cmath>
#include <cstring>

#include "vk_test.hpp"
#include "vkquant/error.hpp"
#include "vkquant/half.hpp"
#include "vkquant/kernels/ops.hpp"
#include "vkquant/reference/ops.hpp"

namespace vkq::test {
namespace {

constexpr std::uint32_t kPoison = 0x7fc00badu;  // a NaN no kernel writes
constexpr std::uint64_t kTail = 64;

Buffer poisoned(Device& dev, std::uint64_t bytes) {
  Buffer b = Buffer::create(dev, bytes + kTail);
  b.fill(kPoison);
  return b;
}

::testing::AssertionResult tail_intact(const Buffer& b, std::uint64_t bytes) {
  std::uint32_t tail[kTail / 4];
  b.download(tail, kTail, bytes);
  for (std::uint32_t t : tail)
    if (t != kPoison) return ::testing::AssertionFailure() << "written past the end (" << bytes << " bytes)";
  return ::testing::AssertionSuccess();
}

// ---- embed -------------------------------------------------------------------

struct EmbedCase {
  bool f16;
  std::uint32_t dim;
};

class OpsEmbed : public VulkanTest, public ::testing::WithParamInterface<EmbedCase> {};

TEST_P(OpsEmbed, MatchesReference) {
  const auto [f16, dim] = GetParam();
  const std::uint32_t vocab = 37;
  // Rows padded to 16 bytes (plus one spare word) the way linear weights are.
  const std::uint64_t row_bytes = (f16 ? (dim + 1) / 2 * 4 : dim * 4ull) / 16 * 16 + 16;
  std::vector<float> table = random_floats(std::uint64_t(vocab) * dim, 11);
  if (f16) table = round_to_half(table);
  std::vector<std::uint32_t> words(vocab * row_bytes / 4, kPoison);  // padding poisoned
  for (std::uint32_t r = 0; r < vocab; ++r)
    for (std::uint32_t c = 0; c < dim; ++c) {
      const std::uint64_t w = r * row_bytes / 4;
      if (!f16) {
        std::memcpy(&words[w + c], &table[std::uint64_t(r) * dim + c], 4);
      } else {
        std::uint32_t& word = words[w + c / 2];
        if (c % 2 == 0) word = 0;
        word |= std::uint32_t(to_half(table[std::uint64_t(r) * dim + c])) << (16 * (c % 2));
      }
    }
  const std::vector<std::uint32_t> ids{0, 36, 5, 37, 5, 0xffffffffu, 1, 2, 3, 30, 31, 1000, 17};
  Buffer tb = upload(dev(), words), ib = upload(dev(), ids);
  const std::uint64_t out_bytes = ids.size() * dim * 4ull;
  Buffer out = poisoned(dev(), out_bytes);
  Stream s = Stream::create(dev());
  kernels::embed(s, tb, f16, vocab, dim, row_bytes, ib, out, std::uint32_t(ids.size()));
  s.submit_and_wait();
  std::vector<float> ref(ids.size() * dim);
  ref::embed(table, vocab, dim, ids, ref);
  EXPECT_TRUE(exact<float>(ref, download<float>(out, ref.size())));
  EXPECT_TRUE(tail_intact(out, out_bytes));
}

INSTANTIATE_TEST_SUITE_P(Shapes, OpsEmbed,
                         ::testing::Values(EmbedCase{false, 1}, EmbedCase{false, 13}, EmbedCase{false, 4097},
                                           EmbedCase{true, 1}, EmbedCase{true, 13}, EmbedCase{true, 128},
                                           EmbedCase{true, 4097}),
                         [](const auto& p) {
                           return std::string(p.param.f16 ? "f16" : "f32") + "_dim" + std::to_string(p.param.dim);
                         });

// > 65535 tokens: the workgroups in y are split across dispatches.
TEST_F(VulkanTest, OpsEmbedManyTokens) {
  const std::uint32_t vocab = 300, dim = 4, n = 70001;
  std::vector<float> table = random_floats(vocab * dim, 12);
  std::vector<std::uint32_t> ids(n);
  for (std::uint32_t t = 0; t < n; ++t) ids[t] = (t * 7919u) % (vocab + 3);  // a few out of range
  Buffer tb = upload(dev(), table), ib = upload(dev(), ids), out = poisoned(dev(), n * dim * 4ull);
  Stream s = Stream::create(dev());
  kernels::embed(s, tb, false, vocab, dim, dim * 4, ib, out, n);
  EXPECT_GE(s.recorded_dispatches(), 2u);
  s.submit_and_wait();
  std::vector<float> ref(n * dim);
  ref::embed(table, vocab, dim, ids, ref);
  EXPECT_TRUE(exact<float>(ref, download<float>(out, ref.size())));
}

// An fp16 table past maxStorageBufferRange is bound in row chunks.
TEST_F(VulkanTest, OpsEmbedTablePastMaxStorageBufferRange) {
  const std::uint64_t range = dev().info().max_storage_buffer_range;
  const std::uint32_t dim = 1024;
  const std::uint64_t row_bytes = dim * 2;
  const std::uint64_t vocab = range / row_bytes + 1000;
  if (vocab * row_bytes > (std::uint64_t(1) << 30)) GTEST_SKIP() << "maxStorageBufferRange too large to exceed";
  // Value of (row, col): a small integer, exact in fp16.
  const auto value = [](std::uint64_t r, std::uint32_t c) { return float(int((r * 31 + c) % 2001) - 1000); };
  std::vector<std::uint32_t> words(vocab * dim / 2);
  for (std::uint64_t r = 0; r < vocab; ++r)
    for (std::uint32_t c = 0; c < dim; c += 2)
      words[(r * dim + c) / 2] = to_half(value(r, c)) | (std::uint32_t(to_half(value(r, c + 1))) << 16);
  std::vector<std::uint32_t> ids{0, std::uint32_t(vocab - 1), std::uint32_t(vocab), 12345, std::uint32_t(vocab / 2),
                                 std::uint32_t(range / row_bytes), std::uint32_t(range / row_bytes - 1)};
  Buffer tb = upload(dev(), words), ib = upload(dev(), ids);
  words = {};
  Buffer out = poisoned(dev(), ids.size() * dim * 4);
  Stream s = Stream::create(dev());
  kernels::embed(s, tb, true, std::uint32_t(vocab), dim, row_bytes, ib, out, std::uint32_t(ids.size()));
  EXPECT_GE(s.recorded_dispatches(), 2u) << "expected the table to be bound in chunks";
  s.submit_and_wait();
  std::vector<float> ref(ids.size() * dim);
  for (std::size_t t = 0; t < ids.size(); ++t)
    for (std::uint32_t c = 0; c < dim; ++c) ref[t * dim + c] = ids[t] < vocab ? value(ids[t], c) : 0.f;
  EXPECT_TRUE(exact<float>(ref, download<float>(out, ref.size())));
}

TEST_F(VulkanTest, OpsEmbedRejectsBadRows) {
  Buffer tb = Buffer::create(dev(), 1024), ib = Buffer::create(dev(), 16), out = Buffer::create(dev(), 1024);
  Stream s = Stream::create(dev());
  EXPECT_THROW(kernels::embed(s, tb, false, 4, 8, 24, ib, out, 1), Error);   // not a multiple of 16
  EXPECT_THROW(kernels::embed(s, tb, false, 4, 8, 16, ib, out, 1), Error);   // shorter than a row
  EXPECT_THROW(kernels::embed(s, tb, false, 64, 8, 32, ib, out, 1), Error);  // table too small
}

// ---- rmsnorm -----------------------------------------------------------------

struct RowsCase {
  std::uint32_t rows, d;
};
std::string rows_name(const ::testing::TestParamInfo<RowsCase>& p) {
  return "rows" + std::to_string(p.param.rows) + "_d" + std::to_string(p.param.d);
}
const auto kRowShapes = ::testing::Values(RowsCase{1, 1}, RowsCase{1, 4097}, RowsCase{13, 7}, RowsCase{13, 64},
                                          RowsCase{127, 13}, RowsCase{127, 896}, RowsCase{3, 4097});

class OpsRows : public VulkanTest, public ::testing::WithParamInterface<RowsCase> {};

TEST_P(OpsRows, Rmsnorm) {
  const auto [rows, d] = GetParam();
  std::vector<float> x = random_floats(std::uint64_t(rows) * d, 21, -2.f, 2.f);
  std::vector<float> w = random_floats(d, 22, 0.5f, 1.5f);
  const float eps = 1e-5f;
  std::vector<float> ref(x.size());
  ref::rmsnorm(x, w, ref, rows, d, eps);
  Buffer xb = upload(dev(), x), wb = upload(dev(), w), yb = poisoned(dev(), x.size() * 4);
  Stream s = Stream::create(dev());
  kernels::rmsnorm(s, xb, wb, yb, rows, d, eps);
  kernels::rmsnorm(s, xb, wb, xb, rows, d, eps);  // in place
  s.submit_and_wait();
  // fp32 sums of d squares vs fp64: relative error well below 1e-5.
  EXPECT_TRUE(close(ref, download<float>(yb, x.size()), 1e-6, 1e-5));
  EXPECT_TRUE(close(ref, download<float>(xb, x.size()), 1e-6, 1e-5)) << "in place";
  EXPECT_TRUE(tail_intact(yb, x.size() * 4));
}

TEST_P(OpsRows, AddBias) {
  const auto [rows, d] = GetParam();
  std::vector<float> y = random_floats(std::uint64_t(rows) * d, 23), b = random_floats(d, 24);
  Buffer yb = upload(dev(), y), bb = upload(dev(), b);
  Stream s = Stream::create(dev());
  kernels::add_bias(s, yb, bb, rows, d);
  s.submit_and_wait();
  ref::add_bias(y, b, rows, d);
  EXPECT_TRUE(exact<float>(y, download<float>(yb, y.size())));
}

INSTANTIATE_TEST_SUITE_P(Shapes, OpsRows, kRowShapes, rows_name);

// One workgroup per row: more rows than maxComputeWorkGroupCount[0] split the
// workgroups across dispatches (65535 on lavapipe; 2^31 - 1 on NVIDIA, too
// many rows to test).
TEST_F(VulkanTest, OpsRmsnormManyRows) {
  const std::uint64_t most = dev().info().max_workgroup_count[0];
  if (most > (1u << 20)) GTEST_SKIP() << "maxComputeWorkGroupCount[0] = " << most << " too large to exceed in a test";
  const std::uint32_t rows = std::uint32_t(most) + 4465, d = 3;  // 70000 on lavapipe
  std::vector<float> x = random_floats(std::uint64_t(rows) * d, 25), w = random_floats(d, 26);
  std::vector<float> ref(x.size());
  ref::rmsnorm(x, w, ref, rows, d, 1e-6f);
  Buffer xb = upload(dev(), x), wb = upload(dev(), w);
  Stream s = Stream::create(dev());
  kernels::rmsnorm(s, xb, wb, xb, rows, d, 1e-6f);
  EXPECT_GE(s.recorded_dispatches(), 2u);
  s.submit_and_wait();
  EXPECT_TRUE(close(ref, download<float>(xb, x.size()), 1e-6, 1e-5));
}

// ---- rope --------------------------------------------------------------------

struct RopeCase {
  bool neox;
  std::uint32_t hd, pos0;
  bool scaled = false;  // test_rope's YaRN table (attention factor != 1) instead of plain RoPE
};

class OpsRope : public VulkanTest, public ::testing::WithParamInterface<RopeCase> {};

// Accuracy: the float-float angle makes the GPU agree with the fp64
// reference within 2e-6 absolute (|x| <= 1) even at position 1e6, where a
// plain fp32 angle (HF's inv_freq * t) is off by up to ~0.03 rad.
TEST_P(OpsRope, MatchesFp64Reference) {
  const auto [neox, hd, pos0, scaled_case] = GetParam();
  const std::uint32_t n = 13, heads = 3;
  std::vector<float> x = random_floats(std::uint64_t(n) * heads * hd, 31);
  Buffer xb = upload(dev(), x);
  Stream s = Stream::create(dev());
  const float theta = pos0 >= 1000000 ? 1000000.f : 10000.f;
  const TestRope scaled = test_rope(dev(), hd, theta);
  const RopeTable table = scaled_case ? scaled.host : rope_table_plain(theta, hd);
  const kernels::DeviceRope rope = kernels::DeviceRope::create(dev(), table);
  kernels::rope(s, xb, n, heads, pos0, rope.freqs(), neox ? kernels::RopeStyle::neox : kernels::RopeStyle::adjacent);
  s.submit_and_wait();
  ref::rope(x, n, heads, pos0, table, neox);
  EXPECT_TRUE(close(x, download<float>(xb, x.size()), 2e-6, 0));
}

INSTANTIATE_TEST_SUITE_P(Styles, OpsRope,
                         ::testing::Values(RopeCase{true, 64, 0}, RopeCase{true, 128, 100000},
                                           RopeCase{true, 80, 0}, RopeCase{true, 2, 100000},
                                           RopeCase{false, 64, 100000}, RopeCase{false, 128, 0},
                                           RopeCase{false, 80, 100000}, RopeCase{false, 2, 0},
                                           RopeCase{true, 128, 1000000}, RopeCase{false, 64, 999990},
                                           RopeCase{true, 96, 0, true}, RopeCase{true, 128, 100000, true},
                                           RopeCase{false, 80, 999990, true}),
                         [](const auto& p) {
                           return std::string(p.param.neox ? "neox" : "adjacent") + "_hd" +
                                  std::to_string(p.param.hd) + "_pos" + std::to_string(p.param.pos0) +
                                  (p.param.scaled ? "_yarn" : "");
                         });

// The two styles pair different elements: neox on an interleaved copy equals adjacent.
TEST_F(VulkanTest, OpsRopeStylesArePermutations) {
  const std::uint32_t hd = 64, n = 5;
  std::vector<float> a = random_floats(n * hd, 32), b(a.size());
  for (std::uint32_t t = 0; t < n; ++t)
    for (std::uint32_t i = 0; i < hd / 2; ++i) {
      b[t * hd + 2 * i] = a[t * hd + i];
      b[t * hd + 2 * i + 1] = a[t * hd + i + hd / 2];
    }
  Buffer ab = upload(dev(), a), bb = upload(dev(), b);
  Stream s = Stream::create(dev());
  const TestRope rope = test_rope(dev(), hd);
  kernels::rope(s, ab, n, 1, 7, rope.freqs(), kernels::RopeStyle::neox);
  kernels::rope(s, bb, n, 1, 7, rope.freqs(), kernels::RopeStyle::adjacent);
  s.submit_and_wait();
  a = download<float>(ab, a.size());
  b = download<float>(bb, b.size());
  std::vector<float> a_as_b(a.size());
  for (std::uint32_t t = 0; t < n; ++t)
    for (std::uint32_t i = 0; i < hd / 2; ++i) {
      a_as_b[t * hd + 2 * i] = a[t * hd + i];
      a_as_b[t * hd + 2 * i + 1] = a[t * hd + i + hd / 2];
    }
  EXPECT_TRUE(exact<float>(a_as_b, b));
}

TEST_F(VulkanTest, OpsRopeRejectsOddHd) {
  Buffer xb = Buffer::create(dev(), 1024);
  Stream s = Stream::create(dev());
  const TestRope rope = test_rope(dev(), 4);
  kernels::RopeFreqs odd = rope.freqs();
  odd.hd = 5;
  EXPECT_THROW(kernels::rope(s, xb, 1, 1, 0, odd, kernels::RopeStyle::neox), Error);
  kernels::RopeFreqs wide = rope.freqs();
  wide.hd = 8;  // the table holds 2 frequencies, not 4
  EXPECT_THROW(kernels::rope(s, xb, 1, 1, 0, wide, kernels::RopeStyle::neox), Error);
  kernels::RopeFreqs none = rope.freqs();
  none.inv_freq = nullptr;
  EXPECT_THROW(kernels::rope(s, xb, 1, 1, 0, none, kernels::RopeStyle::neox), Error);
}

// ---- swiglu, add ---------------------------------------------------------------

class OpsElementwise : public VulkanTest, public ::testing::WithParamInterface<std::uint64_t> {};

TEST_P(OpsElementwise, Swiglu) {
  const std::uint64_t count = GetParam();
  std::vector<float> g = random_floats(count, 41, -12.f, 12.f), u = random_floats(count, 42);
  std::vector<float> ref(count);
  ref::swiglu(g, u, ref);
  Buffer gb = upload(dev(), g), ub = upload(dev(), u), ob = poisoned(dev(), count * 4);
  Stream s = Stream::create(dev());
  kernels::swiglu(s, gb, ub, ob, count);
  kernels::swiglu(s, gb, ub, gb, count);  // in place
  s.submit_and_wait();
  EXPECT_TRUE(close(ref, download<float>(ob, count), 1e-6, 1e-5));
  EXPECT_TRUE(close(ref, download<float>(gb, count), 1e-6, 1e-5)) << "in place";
  EXPECT_TRUE(tail_intact(ob, count * 4));
}

TEST_P(OpsElementwise, Add) {
  const std::uint64_t count = GetParam();
  std::vector<float> x = random_floats(count, 43), y = random_floats(count, 44);
  Buffer xb = Buffer::create(dev(), count * 4 + kTail), yb = upload(dev(), y);
  xb.fill(kPoison);
  xb.upload(x.data(), count * 4);
  Stream s = Stream::create(dev());
  kernels::add(s, xb, yb, count);
  s.submit_and_wait();
  ref::add(x, y);
  EXPECT_TRUE(exact<float>(x, download<float>(xb, count)));
  EXPECT_TRUE(tail_intact(xb, count * 4));
}

INSTANTIATE_TEST_SUITE_P(Counts, OpsElementwise, ::testing::Values(1, 13, 1027, 4097, 1000003),
                         [](const auto& p) { return "n" + std::to_string(p.param); });

// A residual stream past maxStorageBufferRange is bound in chunks.
TEST_F(VulkanTest, OpsAddPastMaxStorageBufferRange) {
  const std::uint64_t range = dev().info().max_storage_buffer_range;
  const std::uint64_t count = range / 4 + 4099;
  if (count * 4 > (std::uint64_t(1) << 30)) GTEST_SKIP() << "maxStorageBufferRange too large to exceed";
  std::vector<float> x(count), y(count);
  for (std::uint64_t i = 0; i < count; ++i) {
    x[i] = float(i % 1000);
    y[i] = float(i % 7) - 3.f;
  }
  Buffer xb = upload(dev(), x), yb = upload(dev(), y);
  Stream s = Stream::create(dev());
  kernels::add(s, xb, yb, count);
  EXPECT_GE(s.recorded_dispatches(), 2u);
  s.submit_and_wait();
  const std::vector<float> got = download<float>(xb, count);
  std::uint64_t wrong = 0;
  for (std::uint64_t i = 0; i < count; ++i) wrong += got[i] != x[i] + y[i];
  EXPECT_EQ(wrong, 0u);
}

// ---- MoE ---------------------------------------------------------------------

struct RouteCase {
  std::uint32_t experts, k;
  bool normalize;
};

class OpsMoeRoute : public VulkanTest, public ::testing::WithParamInterface<RouteCase> {};

TEST_P(OpsMoeRoute, TiesAndWeights) {
  const auto [experts, k, normalize] = GetParam();
  const std::uint32_t n = 37;
  // Logits on a coarse grid: many exact ties, which must go to the lower index.
  std::vector<float> logits = random_floats(std::uint64_t(n) * experts, 51, -3.f, 3.f);
  for (float& l : logits) l = std::round(l * 2.f) / 2.f;
  for (std::uint32_t e = 0; e < experts; ++e) logits[e] = 1.f;  // token 0: all tied
  std::vector<std::uint32_t> ref_ids(n * k);
  std::vector<float> ref_w(n * k);
  ref::moe_route(logits, ref_ids, ref_w, n, experts, k, normalize);
  Buffer lb = upload(dev(), logits), ib = poisoned(dev(), n * k * 4), wb = poisoned(dev(), n * k * 4);
  Stream s = Stream::create(dev());
  kernels::moe_route(s, lb, ib, wb, n, experts, k, normalize);
  s.submit_and_wait();
  EXPECT_TRUE(exact<std::uint32_t>(ref_ids, download<std::uint32_t>(ib, n * k)));
  EXPECT_TRUE(close(ref_w, download<float>(wb, n * k), 1e-7, 1e-5));
  EXPECT_TRUE(tail_intact(ib, n * k * 4));
  EXPECT_TRUE(tail_intact(wb, n * k * 4));
  for (std::uint32_t j = 0; j < k; ++j) EXPECT_EQ(ref_ids[j], j) << "all-tied token";
}

INSTANTIATE_TEST_SUITE_P(Shapes, OpsMoeRoute,
                         ::testing::Values(RouteCase{1, 1, true}, RouteCase{8, 2, false}, RouteCase{8, 2, true},
                                           RouteCase{64, 8, false}, RouteCase{64, 8, true},
                                           RouteCase{60, 4, true}, RouteCase{256, 8, true},
                                           RouteCase{256, 256, false}),
                         [](const auto& p) {
                           return "E" + std::to_string(p.param.experts) + "_k" + std::to_string(p.param.k) +
                                  (p.param.normalize ? "_norm" : "_raw");
                         });

struct CombineCase {
  std::uint32_t n, k, d;
};

class OpsMoeCombine : public VulkanTest, public ::testing::WithParamInterface<CombineCase> {};

TEST_P(OpsMoeCombine, SetAndAccumulate) {
  const auto [n, k, d] = GetParam();
  std::vector<float> y = random_floats(std::uint64_t(n) * k * d, 61), w = random_floats(std::uint64_t(n) * k, 62, 0.f, 1.f);
  std::vector<float> base = random_floats(std::uint64_t(n) * d, 63);
  Buffer yb = upload(dev(), y), wb = upload(dev(), w), set = poisoned(dev(), n * d * 4ull), acc = upload(dev(), base);
  Stream s = Stream::create(dev());
  kernels::moe_combine(s, yb, wb, set, n, k, d, false);
  kernels::moe_combine(s, yb, wb, acc, n, k, d, true);
  s.submit_and_wait();
  std::vector<float> ref_set(n * d), ref_acc = base;
  ref::moe_combine(y, w, ref_set, n, k, d, false);
  ref::moe_combine(y, w, ref_acc, n, k, d, true);
  EXPECT_TRUE(close(ref_set, download<float>(set, ref_set.size()), 1e-6, 1e-5));
  EXPECT_TRUE(close(ref_acc, download<float>(acc, ref_acc.size()), 1e-6, 1e-5)) << "accumulate";
  EXPECT_TRUE(tail_intact(set, n * d * 4ull));
}

INSTANTIATE_TEST_SUITE_P(Shapes, OpsMoeCombine,
                         ::testing::Values(CombineCase{1, 1, 1}, CombineCase{1, 8, 4097}, CombineCase{13, 2, 13},
                                           CombineCase{127, 8, 64}, CombineCase{13, 4, 1027}),
                         [](const auto& p) {
                           return "n" + std::to_string(p.param.n) + "_k" + std::to_string(p.param.k) + "_d" +
                                  std::to_string(p.param.d);
                         });

TEST_F(VulkanTest, OpsMoeRejectsBadK) {
  Buffer a = Buffer::create(dev(), 4096), b = Buffer::create(dev(), 4096), c = Buffer::create(dev(), 4096);
  Stream s = Stream::create(dev());
  EXPECT_THROW(kernels::moe_route(s, a, b, c, 1, 8, 9, true), Error);
  EXPECT_THROW(kernels::moe_route(s, a, b, c, 1, 257, 2, true), Error);
  EXPECT_THROW(kernels::moe_route(s, a, b, c, 1, 8, 0, true), Error);
}

}  // namespace
}  // namespace vkq::test
