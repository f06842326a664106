// Sign packing vs the CPU reference: bits exact, alpha and mean close, on
// awkward d (1 .. 4097, not multiples of 32) and row counts, fp16 input and
// alpha, centering, both variants forced, every subgroup size the device can
// be asked for, binding chunking (capped, and a real buffer past
// maxStorageBufferRange), signed zeros, unpack round trips and bad arguments.
#include <cmath>
#include <cstring>
#include <optional>

#include "vk_test.hpp"
#include "vkquant/error.hpp"
#include "vkquant/half.hpp"
#include "vkquant/kernels/signpack.hpp"
#include "vkquant/reference/signpack.hpp"

namespace vkq::test {
namespace {

using kernels::SignpackOptions;
using kernels::SignpackVariant;

constexpr std::uint32_t kPoison = 0x7fc00badu;  // a NaN no kernel writes
constexpr std::uint64_t kTail = 64;             // bytes past every output that must stay poisoned

// Rows of uniform [-1, 1) values plus a per-row offset, so centering matters.
std::vector<float> test_rows(std::uint64_t rows, std::uint32_t d, std::uint32_t seed) {
  std::vector<float> v = random_floats(rows * d, seed);
  for (std::uint64_t r = 0; r < rows; ++r)
    for (std::uint32_t c = 0; c < d; ++c) v[r * d + c] += 0.25f * float(int(r % 7) - 3);
  return v;
}

// Uploads v as fp32 or fp16 rows; in the fp16 case v is rounded in place to
// what the kernel sees.
Buffer upload_rows(Device& dev, std::vector<float>& v, std::uint64_t rows, std::uint32_t d, bool f16) {
  if (!f16) return upload(dev, v);
  v = round_to_half(v);
  return upload(dev, ref::pack_half_rows(v, rows, d));
}

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

// The GPU's outputs, alpha as floats whatever its storage.
struct Packed {
  std::vector<std::uint32_t> bits;
  std::vector<float> alpha, mean;
};

Packed run_signpack(Device& dev, const Buffer& v, std::uint64_t rows, std::uint32_t d, const SignpackOptions& o,
                    bool with_mean, std::uint32_t* dispatches = nullptr) {
  const std::uint64_t bits_bytes = kernels::signpack_bits_bytes(rows, d);
  const std::uint64_t alpha_bytes = kernels::signpack_alpha_bytes(rows, o.alpha_f16);
  Buffer bits = poisoned(dev, bits_bytes), alpha = poisoned(dev, alpha_bytes), mean = poisoned(dev, rows * 4);
  Stream s = Stream::create(dev);
  kernels::signpack(s, v, bits, alpha, with_mean ? &mean : nullptr, rows, d, o);
  if (dispatches) *dispatches = s.recorded_dispatches();
  s.submit_and_wait();
  EXPECT_TRUE(tail_intact(bits, bits_bytes)) << "bits";
  EXPECT_TRUE(tail_intact(alpha, alpha_bytes)) << "alpha";
  Packed p;
  p.bits = download<std::uint32_t>(bits, bits_bytes / 4);
  if (o.alpha_f16) {
    const auto words = download<std::uint32_t>(alpha, alpha_bytes / 4);
    if (rows % 2) {
      EXPECT_EQ(words.back() >> 16, 0u) << "odd row count: the last alpha word's upper half must be 0";
    }
    p.alpha = ref::unpack_half_pairs(words, rows);
  } else {
    p.alpha = download<float>(alpha, rows);
  }
  if (with_mean) {
    EXPECT_TRUE(tail_intact(mean, rows * 4)) << "mean";
    p.mean = download<float>(mean, rows);
  }
  return p;
}

// Checks `got` against the reference on v (what the kernel saw). Centered bits
// are compared given the GPU's own mean (ties at x == 0 then agree exactly);
// that mean is itself checked against the fp64 reference.
void expect_matches_reference(const std::vector<float>& v, std::uint64_t rows, std::uint32_t d,
                              const SignpackOptions& o, const Packed& got) {
  if (o.center) {
    std::vector<float> mean(rows);
    ref::row_mean(v, rows, d, mean);
    EXPECT_TRUE(close(mean, got.mean, 2e-5, 1e-5)) << "mean";
  }
  std::vector<std::uint32_t> bits(rows * kernels::signpack_words(d));
  std::vector<float> alpha(rows);
  ref::signpack(v, rows, d, o.center ? std::span<const float>(got.mean) : std::span<const float>(), bits, alpha);
  EXPECT_TRUE(exact<std::uint32_t>(bits, got.bits)) << "bits";
  // fp32 sums of d terms; fp16 alpha adds half an fp16 ulp (2^-11 relative).
  if (o.alpha_f16) {
    EXPECT_TRUE(close(alpha, got.alpha, 1e-7, 1.5e-3)) << "alpha (fp16)";
  } else {
    EXPECT_TRUE(close(alpha, got.alpha, 1e-7, 1e-4)) << "alpha";
  }
}

bool skip_variant(Device& dev, SignpackVariant v) {
  return v == SignpackVariant::ballot && !kernels::signpack_ballot_supported(dev);
}

// ---- the main sweep ----------------------------------------------------------

struct Shape {
  std::uint32_t d;
  std::uint64_t rows;
  SignpackVariant variant;
  bool in16, a16, center;
};

std::string shape_name(const Shape& p) {
  std::string n = "d" + std::to_string(p.d) + "_n" + std::to_string(p.rows) + "_" +
                  kernels::signpack_variant_name(p.variant);
  if (p.in16) n += "_f16in";
  if (p.a16) n += "_f16alpha";
  if (p.center) n += "_center";
  return n;
}

void PrintTo(const Shape& p, std::ostream* os) { *os << shape_name(p); }

std::vector<Shape> shapes() {
  std::vector<Shape> out;
  for (SignpackVariant var : {SignpackVariant::ballot, SignpackVariant::invocation}) {
    for (std::uint32_t d : {1u, 13u, 100u, 127u, 128u, 129u, 4097u})
      for (bool center : {false, true}) out.push_back({d, 13, var, false, false, center});
    for (std::uint64_t rows : {1ull, 127ull, 4097ull}) out.push_back({128, rows, var, false, false, true});
    out.push_back({129, 4097, var, false, true, false});
    for (std::uint32_t d : {1u, 13u, 128u, 129u, 4097u}) out.push_back({d, 127, var, true, false, true});
    for (std::uint64_t rows : {1ull, 13ull, 127ull}) out.push_back({100, rows, var, true, true, rows != 13});
    out.push_back({13, 65537, var, false, true, true});  // CPU devices: several units per invocation
  }
  out.push_back({256, 127, SignpackVariant::automatic, false, false, true});
  return out;
}

class Signpack : public VulkanTest, public ::testing::WithParamInterface<Shape> {};

TEST_P(Signpack, MatchesReference) {
  const Shape& p = GetParam();
  if (skip_variant(dev(), p.variant)) GTEST_SKIP() << "no subgroup ballot + arithmetic";
  std::vector<float> v = test_rows(p.rows, p.d, 1000 + p.d);
  Buffer buf = upload_rows(dev(), v, p.rows, p.d, p.in16);
  const SignpackOptions o{.input_f16 = p.in16, .alpha_f16 = p.a16, .center = p.center, .variant = p.variant};
  const Packed got = run_signpack(dev(), buf, p.rows, p.d, o, p.center);
  expect_matches_reference(v, p.rows, p.d, o, got);
}

INSTANTIATE_TEST_SUITE_P(Shapes, Signpack, ::testing::ValuesIn(shapes()),
                         [](const auto& p) { return shape_name(p.param); });

// ---- focused cases -------------------------------------------------------------

class SignpackCase : public VulkanTest {};

constexpr SignpackVariant kVariants[] = {SignpackVariant::ballot, SignpackVariant::invocation};

// +0.0 and -0.0 both give bit 1 (-0.0 >= 0 is true); tiny values keep their
// sign. Expected bits come from the pattern itself, not from the reference.
TEST_F(SignpackCase, SignedZeros) {
  const std::uint32_t d = 70;
  const std::uint64_t rows = 3;
  for (bool f16 : {false, true}) {
    const float tiny = f16 ? 1e-3f : 1e-30f;  // normal numbers in either format
    const float pattern[5] = {0.0f, -0.0f, -tiny, tiny, -2.5f};
    const bool expect_bit[5] = {true, true, false, true, false};
    std::vector<float> v(rows * d);
    std::vector<std::uint32_t> want(rows * kernels::signpack_words(d), 0);
    for (std::uint64_t r = 0; r < rows; ++r)
      for (std::uint32_t c = 0; c < d; ++c) {
        v[r * d + c] = pattern[(c + r) % 5];
        if (expect_bit[(c + r) % 5]) want[r * 3 + c / 32] |= 1u << (c % 32);
      }
    std::vector<float> seen = v;
    Buffer buf = upload_rows(dev(), seen, rows, d, f16);
    ASSERT_EQ(std::signbit(seen[1]), true) << "-0.0 must survive the fp16 rounding";
    for (SignpackVariant var : kVariants) {
      if (skip_variant(dev(), var)) continue;
      SCOPED_TRACE(std::string(kernels::signpack_variant_name(var)) + (f16 ? " fp16" : " fp32"));
      const SignpackOptions o{.input_f16 = f16, .variant = var};
      const Packed got = run_signpack(dev(), buf, rows, d, o, false);
      EXPECT_TRUE(exact<std::uint32_t>(want, got.bits));
      expect_matches_reference(seen, rows, d, o, got);
    }
  }
}

// Centering a constant row: every centered value is the same float, so all
// bits agree with the reference given the GPU's mean (all 1 when the mean is
// exact, as 0.75 is on an exact divider).
TEST_F(SignpackCase, CenteredConstantRows) {
  const std::uint32_t d = 100;
  const std::uint64_t rows = 5;
  std::vector<float> v(rows * d);
  for (std::uint64_t r = 0; r < rows; ++r)
    for (std::uint32_t c = 0; c < d; ++c) v[r * d + c] = 0.75f * float(r) - 1.0f;
  Buffer buf = upload(dev(), v);
  for (SignpackVariant var : kVariants) {
    if (skip_variant(dev(), var)) continue;
    SCOPED_TRACE(kernels::signpack_variant_name(var));
    const SignpackOptions o{.center = true, .variant = var};
    const Packed got = run_signpack(dev(), buf, rows, d, o, true);
    expect_matches_reference(v, rows, d, o, got);
    for (std::uint64_t r = 0; r < rows; ++r) EXPECT_LE(got.alpha[r], 1e-6f) << "row " << r;
  }
}

// Centering without a mean buffer gives the same bits and alpha as with one.
TEST_F(SignpackCase, CenterWithoutMeanOutput) {
  const std::uint32_t d = 129;
  const std::uint64_t rows = 33;
  std::vector<float> v = test_rows(rows, d, 7);
  Buffer buf = upload(dev(), v);
  for (SignpackVariant var : kVariants) {
    if (skip_variant(dev(), var)) continue;
    SCOPED_TRACE(kernels::signpack_variant_name(var));
    const SignpackOptions o{.center = true, .variant = var};
    const Packed with = run_signpack(dev(), buf, rows, d, o, true);
    const Packed without = run_signpack(dev(), buf, rows, d, o, false);
    EXPECT_TRUE(exact<std::uint32_t>(with.bits, without.bits));
    EXPECT_TRUE(exact<float>(with.alpha, without.alpha));
  }
}

// The ballot variant at every subgroup size the device can be asked for.
TEST_F(SignpackCase, BallotAtEverySubgroupSize) {
  const DeviceInfo& info = dev().info();
  if (!kernels::signpack_ballot_supported(dev())) GTEST_SKIP() << "no subgroup ballot + arithmetic";
  if (!info.subgroup_size_control) GTEST_SKIP() << "no subgroup size control";
  int tried = 0;
  for (std::uint32_t size = std::max(4u, info.min_subgroup_size); size <= std::min(128u, info.max_subgroup_size);
       size *= 2) {
    for (std::uint32_t d : {13u, 100u, 129u, 300u}) {
      SCOPED_TRACE("subgroup " + std::to_string(size) + " d" + std::to_string(d));
      const std::uint64_t rows = 13;
      std::vector<float> v = test_rows(rows, d, 40 + d);
      Buffer buf = upload_rows(dev(), v, rows, d, d == 100);
      const SignpackOptions o{.input_f16 = d == 100, .alpha_f16 = d == 129, .center = d != 300,
                              .variant = SignpackVariant::ballot, .required_subgroup_size = size};
      expect_matches_reference(v, rows, d, o, run_signpack(dev(), buf, rows, d, o, o.center));
    }
    ++tried;
  }
  EXPECT_GE(tried, 1);
}

// A cap on rows per dispatch splits the work into chunks whose bindings start
// mid-buffer (even rows, aligned offsets, fp16 alpha words shared by no two).
TEST_F(SignpackCase, ChunkedRows) {
  const std::uint32_t d = 129;
  const std::uint64_t rows = 4097;
  std::vector<float> v = test_rows(rows, d, 11);
  Buffer buf = upload_rows(dev(), v, rows, d, true);
  for (SignpackVariant var : kVariants) {
    if (skip_variant(dev(), var)) continue;
    SCOPED_TRACE(kernels::signpack_variant_name(var));
    const SignpackOptions o{.input_f16 = true, .alpha_f16 = true, .center = true, .variant = var,
                            .max_chunk_rows = 1000};
    std::uint32_t dispatches = 0;
    const Packed got = run_signpack(dev(), buf, rows, d, o, true, &dispatches);
    EXPECT_GE(dispatches, 5u) << "expected one dispatch per chunk of <= 1000 rows";
    expect_matches_reference(v, rows, d, o, got);
  }
}

// One input larger than maxStorageBufferRange: bound in chunks for real.
TEST_F(SignpackCase, InputPastMaxStorageBufferRange) {
  const std::uint32_t d = 1000;
  const std::uint64_t range = dev().info().max_storage_buffer_range;
  const std::uint64_t rows = range / (d * 4) + 13;
  if (rows * d * 4 > (std::uint64_t(1) << 30)) GTEST_SKIP() << "maxStorageBufferRange too large to exceed in a test";
  std::vector<float> v = test_rows(rows, d, 3);
  Buffer buf = upload(dev(), v);
  const SignpackOptions o{.center = true};
  std::uint32_t dispatches = 0;
  const Packed got = run_signpack(dev(), buf, rows, d, o, true, &dispatches);
  EXPECT_GE(dispatches, 2u) << "expected the input to be split across bindings";
  expect_matches_reference(v, rows, d, o, got);
}

// Unpack reproduces alpha * (+-1) (+ mean) exactly as the reference does, and
// re-packing an uncentered unpack gives back the same bits and alpha.
TEST_F(SignpackCase, UnpackRoundTrip) {
  for (std::uint32_t d : {1u, 13u, 129u, 4097u})
    for (bool a16 : {false, true})
      for (bool center : {false, true}) {
        const std::uint64_t rows = d == 4097 ? 13 : 127;
        SCOPED_TRACE("d" + std::to_string(d) + (a16 ? " f16alpha" : "") + (center ? " center" : ""));
        std::vector<float> v = test_rows(rows, d, 5 + d);
        Buffer vbuf = upload(dev(), v);
        const std::uint64_t bits_bytes = kernels::signpack_bits_bytes(rows, d);
        const std::uint64_t alpha_bytes = kernels::signpack_alpha_bytes(rows, a16);
        Buffer bits = Buffer::create(dev(), bits_bytes), alpha = Buffer::create(dev(), alpha_bytes),
               mean = Buffer::create(dev(), rows * 4), out = poisoned(dev(), rows * d * 4);
        Stream s = Stream::create(dev());
        kernels::signpack(s, vbuf, bits, alpha, center ? &mean : nullptr, rows, d,
                          {.alpha_f16 = a16, .center = center});
        kernels::signunpack(s, bits, alpha, center ? &mean : nullptr, out, rows, d,
                            {.alpha_f16 = a16, .max_chunk_rows = 50});
        s.submit_and_wait();
        EXPECT_TRUE(tail_intact(out, rows * d * 4));
        const auto gbits = download<std::uint32_t>(bits, bits_bytes / 4);
        const auto galpha = a16 ? ref::unpack_half_pairs(download<std::uint32_t>(alpha, alpha_bytes / 4), rows)
                                : download<float>(alpha, rows);
        const auto gmean = center ? download<float>(mean, rows) : std::vector<float>();
        std::vector<float> want(rows * d);
        ref::signunpack(gbits, galpha, gmean, rows, d, want);
        const auto got = download<float>(out, rows * d);
        EXPECT_TRUE(close(want, got, 0, 0)) << "unpack";
        if (center) continue;
        // Re-pack the decoded rows: the signs and the scale survive.
        const Packed again = run_signpack(dev(), out, rows, d, {}, false);
        EXPECT_TRUE(exact<std::uint32_t>(gbits, again.bits)) << "re-packed bits";
        EXPECT_TRUE(close(galpha, again.alpha, 1e-7, 1e-5)) << "re-packed alpha";
      }
}

TEST_F(SignpackCase, AutoVariantFollowsTheDevice) {
  const DeviceInfo& info = dev().info();
  const SignpackVariant v = kernels::signpack_auto_variant(dev());
  EXPECT_NE(v, SignpackVariant::automatic);
  if (info.type == VK_PHYSICAL_DEVICE_TYPE_CPU || info.subgroup_size < 32 || !kernels::signpack_ballot_supported(dev()))
    EXPECT_EQ(v, SignpackVariant::invocation);
  else
    EXPECT_EQ(v, SignpackVariant::ballot);
}

TEST_F(SignpackCase, ZeroRowsRecordNothing) {
  Buffer v = Buffer::create(dev(), 64), bits = Buffer::create(dev(), 64), alpha = Buffer::create(dev(), 64),
         out = Buffer::create(dev(), 64);
  Stream s = Stream::create(dev());
  kernels::signpack(s, v, bits, alpha, nullptr, 0, 128);
  kernels::signunpack(s, bits, alpha, nullptr, out, 0, 128);
  EXPECT_EQ(s.recorded_dispatches(), 0u);
}

TEST_F(SignpackCase, RejectsBadArguments) {
  const std::uint32_t d = 100;
  const std::uint64_t rows = 10;
  Buffer v = Buffer::create(dev(), rows * d * 4), bits = Buffer::create(dev(), rows * 4 * 4),
         alpha = Buffer::create(dev(), rows * 4), mean = Buffer::create(dev(), rows * 4),
         small = Buffer::create(dev(), 16), out = Buffer::create(dev(), rows * d * 4);
  Stream s = Stream::create(dev());
  using kernels::signpack;
  using kernels::signunpack;
  EXPECT_THROW(signpack(s, v, bits, alpha, nullptr, rows, 0), Error) << "d == 0";
  EXPECT_THROW(signpack(s, small, bits, alpha, nullptr, rows, d), Error) << "v too small";
  EXPECT_THROW(signpack(s, v, small, alpha, nullptr, rows, d), Error) << "bits too small";
  EXPECT_THROW(signpack(s, v, bits, small, nullptr, rows, d), Error) << "alpha too small";
  EXPECT_THROW(signpack(s, v, bits, alpha, &small, rows, d, {.center = true}), Error) << "mean too small";
  EXPECT_THROW(signpack(s, v, bits, alpha, &mean, rows, d), Error) << "mean without centering";
  EXPECT_THROW(signpack(s, v, bits, bits, nullptr, rows, d), Error) << "bits aliases alpha";
  EXPECT_THROW(signpack(s, v, bits, alpha, nullptr, std::uint64_t(1) << 62, d), Error) << "size overflow";
  EXPECT_THROW(signpack(s, v, bits, alpha, nullptr, rows, d,
                        {.variant = SignpackVariant::invocation, .required_subgroup_size = 32}),
               Error)
      << "subgroup size for the per-invocation variant";
  EXPECT_THROW(signpack(s, v, bits, alpha, nullptr, rows, d,
                        {.variant = SignpackVariant::ballot, .required_subgroup_size = 24}),
               Error)
      << "subgroup size not a power of two";
  EXPECT_THROW(signunpack(s, bits, alpha, nullptr, small, rows, d), Error) << "out too small";
  EXPECT_THROW(signunpack(s, bits, alpha, nullptr, out, rows, 0), Error) << "d == 0";
  EXPECT_THROW(signunpack(s, bits, alpha, nullptr, bits, rows, 1), Error) << "out aliases bits";
  EXPECT_EQ(s.recorded_dispatches(), 0u);
}

}  // namespace
}  // namespace vkq::test
