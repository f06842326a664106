// FWHT / SRHT kernels vs the CPU reference: every n = 2^6..2^14, awkward row
// counts, two SRHT seeds, forward and inverse, every variant forced, round
// trips and norms, binding chunking (forced small and a real buffer past
// maxStorageBufferRange), offsets, and argument rejection.
#include <cmath>
#include <cstring>

#include "vk_test.hpp"
#include "vkquant/error.hpp"
#include "vkquant/kernels/fwht.hpp"
#include "vkquant/reference/fwht.hpp"

namespace vkq::test {
namespace {

using kernels::FwhtOptions;
using kernels::FwhtVariant;

// Outputs are O(1) (orthonormal transform of U(-1, 1) data); fp32 butterflies
// over log2(n) <= 14 stages stay far inside these bounds.
constexpr double kAtol = 2e-5, kRtol = 1e-4;

struct Case {
  FwhtVariant variant;
  std::uint32_t n;
  std::uint64_t rows;
  bool srht;
  std::uint32_t seed;
  bool inverse;
};

std::string case_name(const Case& c) {
  std::string s = std::string(kernels::fwht_variant_name(c.variant)) + "_n" + std::to_string(c.n) + "_r" +
                  std::to_string(c.rows);
  s += c.srht ? "_srht" + std::to_string(c.seed) : "_plain";
  return s + (c.inverse ? "_inv" : "_fwd");
}

std::vector<Case> cases() {
  const std::pair<std::uint32_t, std::uint64_t> shapes[] = {{64, 4097}, {128, 13},  {256, 127}, {512, 1},
                                                            {1024, 127}, {2048, 13}, {4096, 13}, {8192, 5},
                                                            {16384, 3}};
  std::vector<Case> out;
  for (FwhtVariant v : kernels::fwht_variants()) {
    for (auto [n, rows] : shapes) out.push_back({v, n, rows, false, 0, false});
    for (std::uint32_t n : {64u, 1024u, 16384u}) {
      out.push_back({v, n, 13, true, 1, false});
      out.push_back({v, n, 13, true, 0xdeadbeefu, true});
      out.push_back({v, n, 13, false, 0, true});
    }
  }
  return out;
}

class FwhtKernel : public VulkanTest, public ::testing::WithParamInterface<Case> {};

// One call src -> dst against the reference, and the same call in place.
TEST_P(FwhtKernel, MatchesReference) {
  const Case c = GetParam();
  const std::uint64_t count = c.rows * c.n;
  auto x = random_floats(count, 11 + c.n);
  std::vector<float> ref(count);
  ref::fwht(x.data(), ref.data(), c.rows, c.n, c.srht, c.seed, c.inverse);

  FwhtOptions o{.srht = c.srht, .seed = c.seed, .inverse = c.inverse, .variant = c.variant};
  Buffer src = upload(dev(), x);
  Buffer dst = Buffer::create(dev(), count * 4 + 64);
  dst.fill(0x7fc00badu);
  Buffer data = upload(dev(), x);
  Stream s = Stream::create(dev());
  kernels::fwht(s, src, dst, c.rows, c.n, o);
  kernels::fwht(s, data, c.rows, c.n, o);
  s.submit_and_wait();
  EXPECT_TRUE(close(ref, download<float>(dst, count), kAtol, kRtol)) << "src -> dst";
  EXPECT_TRUE(close(ref, download<float>(data, count), kAtol, kRtol)) << "in place";
  EXPECT_TRUE(exact<float>(x, download<float>(src, count))) << "the source was modified";
  std::uint32_t tail[16];
  dst.download(tail, sizeof tail, count * 4);
  for (auto t : tail) EXPECT_EQ(t, 0x7fc00badu) << "wrote past the last row";
}

INSTANTIATE_TEST_SUITE_P(Fwht, FwhtKernel, ::testing::ValuesIn(cases()),
                         [](const auto& p) { return case_name(p.param); });

class FwhtVariants : public VulkanTest, public ::testing::WithParamInterface<FwhtVariant> {};

// inverse(forward(x)) == x in place, and forward preserves every row's norm.
TEST_P(FwhtVariants, RoundTripAndNorm) {
  for (std::uint32_t n : {64u, 4096u, 16384u}) {
    const std::uint64_t rows = 5;
    auto x = random_floats(rows * n, 3 + n);
    Buffer data = upload(dev(), x);
    Stream s = Stream::create(dev());
    FwhtOptions o{.srht = true, .seed = 7, .variant = GetParam()};
    kernels::fwht(s, data, rows, n, o);
    s.submit_and_wait();
    auto y = download<float>(data, rows * n);
    for (std::uint64_t r = 0; r < rows; ++r) {
      double nx = 0, ny = 0;
      for (std::uint32_t i = 0; i < n; ++i) {
        nx += double(x[r * n + i]) * x[r * n + i];
        ny += double(y[r * n + i]) * y[r * n + i];
      }
      EXPECT_NEAR(std::sqrt(ny), std::sqrt(nx), 1e-5 * std::sqrt(nx)) << "n=" << n << " row " << r;
    }
    o.inverse = true;
    kernels::fwht(s, data, rows, n, o);
    s.submit_and_wait();
    EXPECT_TRUE(close(x, download<float>(data, rows * n), kAtol, kRtol)) << "n=" << n;
  }
}

// The kernels' D is kernels::srht_sign: H is its own inverse (orthonormal,
// symmetric), so plain(forward SRHT(x)) = D x exactly up to rounding.
TEST_P(FwhtVariants, SignsAreSrhtSign) {
  const std::uint32_t n = 1024, seed = 0x12345678u;
  auto x = random_floats(n, 5, 0.5f, 1.f);
  Buffer data = upload(dev(), x);
  Stream s = Stream::create(dev());
  kernels::fwht(s, data, 1, n, {.srht = true, .seed = seed, .variant = GetParam()});
  kernels::fwht(s, data, 1, n, {.variant = GetParam()});
  s.submit_and_wait();
  std::vector<float> dx(n);
  for (std::uint32_t i = 0; i < n; ++i) dx[i] = kernels::srht_sign(seed, i) * x[i];
  EXPECT_TRUE(close(dx, download<float>(data, n), kAtol, kRtol));
}

// Small binding limits force several chunks; offsets (not multiples of the
// binding alignment) shift source and destination independently.
TEST_P(FwhtVariants, ChunkedWithOffsets) {
  for (std::uint32_t n : {128u, 16384u}) {
    const std::uint64_t rows = 13, count = rows * n;
    const std::uint64_t src_off = 48, dst_off = 272;
    auto x = random_floats(count, 9);
    std::vector<float> ref(count);
    ref::fwht(x.data(), ref.data(), rows, n, true, 3, false);
    Buffer src = Buffer::create(dev(), src_off + count * 4);
    src.upload(x.data(), count * 4, src_off);
    Buffer dst = Buffer::create(dev(), dst_off + count * 4);
    Stream s = Stream::create(dev());
    const FwhtOptions o{.srht = true,
                        .seed = 3,
                        .offset = src_off,
                        .dst_offset = dst_off,
                        .variant = GetParam(),
                        .max_binding_bytes = 3 * n * 4 + 256};
    kernels::fwht(s, src, dst, rows, n, o);
    EXPECT_GE(s.recorded_dispatches(), 5u) << "expected 5 binding chunks of 3 rows";
    s.submit_and_wait();
    std::vector<float> got(count);
    dst.download(got.data(), count * 4, dst_off);
    EXPECT_TRUE(close(ref, got, kAtol, kRtol)) << "n=" << n;
  }
}

INSTANTIATE_TEST_SUITE_P(Fwht, FwhtVariants, ::testing::ValuesIn(kernels::fwht_variants()),
                         [](const auto& p) { return std::string(kernels::fwht_variant_name(p.param)); });

using FwhtApi = VulkanTest;

// One buffer past maxStorageBufferRange, in place: bound in row chunks by the
// device limit itself.
TEST_F(FwhtApi, PastMaxStorageBufferRange) {
  const std::uint64_t range = dev().info().max_storage_buffer_range;
  const std::uint32_t n = 64;
  const std::uint64_t rows = range / (n * 4) + 4097;
  if (rows * n * 4 > (std::uint64_t(1) << 30)) GTEST_SKIP() << "maxStorageBufferRange too large to exceed in a test";
  std::vector<float> x(rows * n);
  for (std::uint64_t i = 0; i < x.size(); ++i) x[i] = float(int(i % 1999) - 999) / 1000.f;
  Buffer data = upload(dev(), x);
  Stream s = Stream::create(dev());
  kernels::fwht(s, data, rows, n, {.srht = true, .seed = 2});
  EXPECT_GE(s.recorded_dispatches(), 2u) << "expected the rows to be split across bindings";
  s.submit_and_wait();
  ref::fwht(x.data(), x.data(), rows, n, true, 2, false);
  EXPECT_TRUE(close(x, download<float>(data, rows * n), kAtol, kRtol));
}

TEST_F(FwhtApi, ReferenceMatchesDefinition) {
  for (std::uint32_t n : {64u, 256u}) {
    const std::uint64_t rows = 3;
    auto x = random_floats(rows * n, 4);
    std::vector<float> fast(rows * n), naive(rows * n), dx(rows * n);
    ref::fwht(x.data(), fast.data(), rows, n, false, 0, false);
    ref::hadamard_naive(x.data(), naive.data(), rows, n);
    EXPECT_TRUE(close(naive, fast, 1e-6, 1e-6)) << "n=" << n;
    // forward SRHT = H (D x) / sqrt(n)
    for (std::uint64_t i = 0; i < rows * n; ++i) dx[i] = kernels::srht_sign(9, std::uint32_t(i % n)) * x[i];
    ref::hadamard_naive(dx.data(), naive.data(), rows, n);
    ref::fwht(x.data(), fast.data(), rows, n, true, 9, false);
    EXPECT_TRUE(close(naive, fast, 1e-6, 1e-6)) << "srht n=" << n;
  }
}

TEST(FwhtSign, DeterministicBalancedSeeded) {
  int plus = 0, differ = 0;
  for (std::uint32_t i = 0; i < 65536; ++i) {
    const float a = kernels::srht_sign(1, i);
    ASSERT_TRUE(a == 1.f || a == -1.f);
    EXPECT_EQ(a, kernels::srht_sign(1, i));
    plus += a > 0;
    differ += a != kernels::srht_sign(2, i);
  }
  EXPECT_NEAR(plus, 32768, 1000);
  EXPECT_NEAR(differ, 32768, 1000);
}

TEST_F(FwhtApi, RejectsBadArguments) {
  Buffer b = Buffer::create(dev(), 1 << 20);
  Buffer small = Buffer::create(dev(), 4096);
  Stream s = Stream::create(dev());
  for (std::uint32_t n : {0u, 1u, 32u, 96u, 1000u, 32768u})
    EXPECT_THROW(kernels::fwht(s, b, 1, n), Error) << "n=" << n;
  EXPECT_THROW(kernels::fwht(s, small, 5, 256), Error) << "rows past the buffer";
  EXPECT_THROW(kernels::fwht(s, b, small, 5, 256), Error) << "rows past the destination";
  EXPECT_THROW(kernels::fwht(s, b, 1, 256, {.offset = 8}), Error) << "offset not a multiple of 16";
  EXPECT_THROW(kernels::fwht(s, b, 1, 256, {.offset = (1 << 20) - 512}), Error) << "offset past the end";
  EXPECT_THROW(kernels::fwht(s, b, b, 1, 256, {.offset = 0, .dst_offset = 1024}), Error) << "overlapping in place";
  EXPECT_EQ(s.recorded_dispatches(), 0u);
  kernels::fwht(s, b, 0, 256);  // zero rows: nothing to do
  EXPECT_EQ(s.recorded_dispatches(), 0u);
}

}  // namespace
}  // namespace vkq::test
