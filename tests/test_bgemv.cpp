// bgemv / bgemm vs its CPU reference on awkward shapes (padding bits, partial
// words, 1 row, 4097 rows or columns), batches 1/3/64, residual rank 0/8,
// every variant forced; binding chunking under a test limit; argument
// rejection; the host encoder against its definitions. (Its fp16 baseline is
// kernels::linear, tested in test_linear.cpp.)
#include <cmath>
#include <cstring>
#include <tuple>

#include "vk_test.hpp"
#include "vkquant/kernels/bgemv.hpp"
#include "vkquant/reference/bgemv.hpp"

namespace vkq::test {
namespace {

using kernels::GemvVariant;

struct Shape {
  std::uint32_t out, in;
};

// fp32 sums of up to ~4k terms against fp64: relative error ~ sqrt(n) * 2^-24.
constexpr double kMaxNmse = 1e-10;

bool skip_variant(Device& d, GemvVariant v) { return !kernels::variant_supported(d, v); }

// A binary layer on the host and on the device.
struct Layer {
  kernels::BinaryRows rows;
  std::vector<float> p, q;  // (out, rank), (in, rank)
  Buffer bits, c, alpha, pb, qb;
  kernels::BinaryLinear view(std::uint32_t rank) const {
    return {&bits, &c, &alpha, rank ? &pb : nullptr, rank ? &qb : nullptr, rows.out, rows.in, rank};
  }
};

Layer make_layer(Device& d, std::uint32_t out, std::uint32_t in, std::uint32_t rank, std::uint32_t seed) {
  Layer l;
  // Rows with an offset so that c matters.
  auto w = random_floats(std::size_t(out) * in, seed, -1.f, 1.5f);
  l.rows = kernels::bgemv_encode(w, out, in);
  l.bits = upload(d, l.rows.bits);
  l.c = upload(d, l.rows.c);
  l.alpha = upload(d, l.rows.alpha);
  if (rank) {
    l.p = random_floats(std::size_t(out) * rank, seed + 1, -0.5f, 0.5f);
    l.q = random_floats(std::size_t(in) * rank, seed + 2, -0.5f, 0.5f);
    l.pb = upload(d, l.p);
    l.qb = upload(d, l.q);
  }
  return l;
}

std::vector<float> reference(const Layer& l, std::uint32_t rank, const std::vector<float>& x, std::uint32_t batch) {
  std::vector<float> y(std::size_t(batch) * l.rows.out);
  ref::bgemv(l.rows.bits, l.rows.c, l.rows.alpha, l.p, l.q, x, y, l.rows.out, l.rows.in, l.rows.words, rank, batch);
  return y;
}

// Runs bgemv and returns y (batch, out); checks it wrote nothing past y.
std::vector<float> run_bgemv(Device& d, const Layer& l, std::uint32_t rank, const std::vector<float>& x,
                             std::uint32_t batch, const kernels::GemvOptions& o, std::uint32_t* dispatches = nullptr) {
  const auto w = l.view(rank);
  Buffer xb = upload(d, x);
  const std::uint64_t n = std::uint64_t(batch) * l.rows.out;
  Buffer y = Buffer::create(d, n * 4 + 64);
  y.fill(0x7fc00badu);
  const std::uint64_t scratch_bytes = kernels::bgemv_scratch_bytes(w, batch);
  Buffer scratch = scratch_bytes ? Buffer::create(d, scratch_bytes) : Buffer();
  Stream s = Stream::create(d);
  kernels::bgemv(s, w, xb, y, batch, scratch_bytes ? &scratch : nullptr, o);
  if (dispatches) *dispatches = s.recorded_dispatches();
  s.submit_and_wait();
  std::uint32_t tail[16];
  y.download(tail, sizeof tail, n * 4);
  for (auto t : tail) EXPECT_EQ(t, 0x7fc00badu) << "bgemv wrote past y";
  return download<float>(y, n);
}

std::string shape_name(Shape s, std::uint32_t batch) {
  return "o" + std::to_string(s.out) + "_i" + std::to_string(s.in) + "_b" + std::to_string(batch);
}

const Shape kShapes[] = {{1, 1}, {13, 100}, {127, 129}, {4097, 64}, {64, 4097}};

// ---- bgemv: every shape, batch, rank and variant --------------------------------

class Bgemv : public VulkanTest,
              public ::testing::WithParamInterface<std::tuple<Shape, std::uint32_t, std::uint32_t, GemvVariant>> {};

TEST_P(Bgemv, MatchesReference) {
  const auto [shape, batch, rank, variant] = GetParam();
  if (skip_variant(dev(), variant)) GTEST_SKIP() << "no subgroup arithmetic in compute shaders";
  const Layer l = make_layer(dev(), shape.out, shape.in, rank, 7 + shape.out + shape.in);
  const auto x = random_floats(std::size_t(batch) * shape.in, 11 + batch);
  const auto got = run_bgemv(dev(), l, rank, x, batch, {.variant = variant});
  const auto ref = reference(l, rank, x, batch);
  EXPECT_TRUE(nmse(ref, got, kMaxNmse));
  EXPECT_TRUE(close(ref, got, 1e-5 * std::sqrt(double(shape.in)), 1e-4));
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, Bgemv,
    ::testing::Combine(::testing::ValuesIn(kShapes), ::testing::Values(1u, 3u, 64u), ::testing::Values(0u, 8u),
                       ::testing::Values(GemvVariant::rows, GemvVariant::bcast, GemvVariant::subgroup)),
    [](const auto& p) {
      return shape_name(std::get<0>(p.param), std::get<1>(p.param)) + "_r" + std::to_string(std::get<2>(p.param)) +
             "_" + kernels::variant_name(std::get<3>(p.param));
    });

// ---- binding chunking -------------------------------------------------------------

class BgemvChunked : public VulkanTest, public ::testing::WithParamInterface<GemvVariant> {};

// A 1 KiB weight-binding limit splits 1000 rows of 8 words into 32 chunks.
TEST_P(BgemvChunked, SmallBindingLimit) {
  const GemvVariant variant = GetParam();
  if (skip_variant(dev(), variant)) GTEST_SKIP() << "no subgroup arithmetic in compute shaders";
  const std::uint32_t out = 1000, in = 200, batch = 3, rank = 8;
  const Layer l = make_layer(dev(), out, in, rank, 99);
  const auto x = random_floats(std::size_t(batch) * in, 100);
  std::uint32_t dispatches = 0;
  const auto got = run_bgemv(dev(), l, rank, x, batch, {.variant = variant, .max_binding_bytes = 1024}, &dispatches);
  EXPECT_GE(dispatches, 32u) << "expected the weights to be bound in chunks";
  const auto ref = reference(l, rank, x, batch);
  EXPECT_TRUE(nmse(ref, got, kMaxNmse));
  EXPECT_TRUE(close(ref, got, 1e-4, 1e-4));
}

INSTANTIATE_TEST_SUITE_P(Variants, BgemvChunked,
                         ::testing::Values(GemvVariant::rows, GemvVariant::bcast, GemvVariant::subgroup),
                         [](const auto& p) { return std::string(kernels::variant_name(p.param)); });

// ---- argument rejection -------------------------------------------------------------

TEST_F(VulkanTest, BgemvRejectsBadArguments) {
  const Layer l = make_layer(dev(), 13, 100, 8, 1);
  const auto x = random_floats(64 * 100, 2);
  Buffer xb = upload(dev(), x), y = Buffer::create(dev(), 65 * 13 * 4), small = Buffer::create(dev(), 16);
  Buffer scratch = Buffer::create(dev(), 1 << 20);
  Stream s = Stream::create(dev());
  auto w = l.view(8);
  EXPECT_THROW(kernels::bgemv(s, w, xb, y, 0, &scratch), Error);    // batch 0
  EXPECT_THROW(kernels::bgemv(s, w, xb, y, 65, &scratch), Error);   // batch > 64
  EXPECT_THROW(kernels::bgemv(s, w, small, y, 1, &scratch), Error); // x too small
  EXPECT_THROW(kernels::bgemv(s, w, xb, small, 1, &scratch), Error);// y too small
  EXPECT_THROW(kernels::bgemv(s, w, xb, y, 1, nullptr), Error);     // rank 8 needs scratch
  EXPECT_THROW(kernels::bgemv(s, w, xb, y, 1, &small), Error);      // scratch too small
  auto no_p = w;
  no_p.p = nullptr;
  EXPECT_THROW(kernels::bgemv(s, no_p, xb, y, 1, &scratch), Error);
  auto zero = w;
  zero.out = 0;
  EXPECT_THROW(kernels::bgemv(s, zero, xb, y, 1, &scratch), Error);
  auto big = w;
  big.out = 14;  // bits buffer holds 13 rows
  EXPECT_THROW(kernels::bgemv(s, big, xb, y, 1, &scratch), Error);
  EXPECT_THROW(kernels::bgemv(s, w, xb, y, 1, &scratch, {.max_binding_bytes = 8}), Error);  // not one row
  EXPECT_THROW(kernels::bgemv(s, w, xb, y, 1, &scratch, {.variant = GemvVariant(99)}), Error);
  EXPECT_EQ(s.recorded_dispatches(), 0u);

  EXPECT_THROW(kernels::bgemv_encode(random_floats(10, 1), 3, 4), Error);
}

// ---- host encoder ---------------------------------------------------------------------

// c and alpha are the row mean and mean absolute deviation, the bits the signs
// (padding 0); and decoding loses exactly ||v||² - ||v||₁²/d per row (v = w' - c),
// the optimal-scale identity of docs/design.md §1.
TEST(BgemvEncode, MatchesDefinitions) {
  const std::uint32_t out = 37, in = 129;
  const auto w = random_floats(std::size_t(out) * in, 21, -0.7f, 1.3f);
  const auto r = kernels::bgemv_encode(w, out, in);
  ASSERT_EQ(r.words, 8u);
  ASSERT_EQ(r.bits.size(), std::size_t(out) * r.words);
  const auto dec = ref::bgemv_decode(r.bits, r.c, r.alpha, out, in, r.words);
  for (std::uint32_t i = 0; i < out; ++i) {
    double mean = 0;
    for (std::uint32_t j = 0; j < in; ++j) mean += w[i * in + j];
    mean /= in;
    double l1 = 0, l2 = 0, err = 0;
    for (std::uint32_t j = 0; j < in; ++j) {
      const double v = w[i * in + j] - mean;
      l1 += std::fabs(v);
      l2 += v * v;
      const bool bit = (r.bits[i * r.words + j / 32] >> (j % 32)) & 1u;
      EXPECT_EQ(bit, v >= 0) << "row " << i << " col " << j;
      const double e = double(dec[i * in + j]) - w[i * in + j];
      err += e * e;
    }
    EXPECT_EQ(r.c[i], float(mean)) << "row " << i;
    EXPECT_EQ(r.alpha[i], float(l1 / in)) << "row " << i;
    EXPECT_NEAR(err, l2 - l1 * l1 / in, 1e-5 * l2) << "row " << i;
    for (std::uint32_t j = in; j < r.words * 32; ++j)
      EXPECT_EQ((r.bits[i * r.words + j / 32] >> (j % 32)) & 1u, 0u) << "padding bit " << j;
  }
}

}  // namespace
}  // namespace vkq::test
