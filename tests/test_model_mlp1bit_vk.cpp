// OneBitMatrix (device) vs the CPU reference of the 1-bit matrix codec for
// every rotation: in a power of two (256) and not (688 -> 1024 padded),
// batches 1, 13 and 100 (> 64: several bgemv passes), plain and accumulating
// outputs, a small max_batch, stored bytes, and refused arguments.
#include <map>
#include <tuple>

#include "vk_test.hpp"
#include "vkquant/error.hpp"
#include "vkquant/kernels/bgemv.hpp"
#include "vkquant/model/mlp1bit.hpp"

namespace vkq::test {
namespace {

constexpr double kMaxNmse = 1e-9;  // same bits on both sides; x' in fp32 vs fp64 sums

// A calibration of an (out, in) matrix with random (not learned) rotations:
// the codec's equivalence does not need R orthogonal, and learning a
// 1024 x 1024 R here would only cost time.
const MlpMatrixCalib& test_calib(std::uint32_t out, std::uint32_t in) {
  static std::map<std::pair<std::uint32_t, std::uint32_t>, MlpMatrixCalib> cache;
  MlpMatrixCalib& c = cache[{out, in}];
  if (c.out == 0) {
    c.out = out, c.in = in, c.padded_in = mlp_padded_in(in), c.seed = 17, c.block = 64;
    const std::uint32_t p = c.padded_in;
    const float s = 1.f / std::sqrt(float(p)), sb = 1.f / std::sqrt(float(c.block));
    c.dense_rot = random_floats(std::size_t(p) * p, 100 + in, -s * 1.7f, s * 1.7f);
    c.blocks = random_floats(std::size_t(p) * c.block, 200 + in, -sb * 1.7f, sb * 1.7f);
  }
  return c;
}

using Param = std::tuple<MlpRotation, std::uint32_t, std::uint32_t,
                         bool>;  // rotation, in, n, accumulate

class OneBitMlp : public VulkanTest, public ::testing::WithParamInterface<Param> {};

TEST_P(OneBitMlp, MatchesReference) {
  const auto [rotation, in, n, accumulate] = GetParam();
  const std::uint32_t out = 72;
  const MlpMatrixCalib& c = test_calib(out, in);
  const auto w = random_floats(std::size_t(out) * in, 7 + in);
  const auto x = random_floats(std::size_t(n) * in, 9 + n);
  const auto y0 = random_floats(std::size_t(n) * out, 13 + n);

  OneBitMatrix m(dev(), w, out, in, &c, rotation, 64);
  Buffer bx = upload(dev(), x), by = upload(dev(), y0);
  Stream s = Stream::create(dev());
  m.apply(s, bx, by, n, accumulate);
  s.submit_and_wait();

  const kernels::BinaryRows code = mlp_encode(w, out, in, &c, rotation);
  std::vector<float> want = y0;
  mlp_reference(code, &c, rotation, x, want, n, in, accumulate);
  EXPECT_TRUE(nmse(want, download<float>(by, want.size()), kMaxNmse));

  const std::uint32_t width = mlp_rotated_width(in, rotation);
  EXPECT_EQ(m.width(), width);
  EXPECT_EQ(m.weight_bytes(), std::uint64_t(out) * (kernels::bgemv_row_words(width) + 2) * 4);
  const std::uint64_t p = c.padded_in;
  EXPECT_EQ(m.rotation_bytes(), rotation == MlpRotation::dense        ? p * p * 4
                                : rotation == MlpRotation::structured ? p * c.block * 4
                                                                      : 0);
}

std::string param_name(const ::testing::TestParamInfo<Param>& p) {
  const auto [rotation, in, n, accumulate] = p.param;
  return std::string(mlp_rotation_name(rotation)) + "_in" + std::to_string(in) + "_n" + std::to_string(n) +
         (accumulate ? "_acc" : "_set");
}

INSTANTIATE_TEST_SUITE_P(Sizes, OneBitMlp,
                         ::testing::Combine(::testing::Values(MlpRotation::none, MlpRotation::srht, MlpRotation::dense,
                                                              MlpRotation::structured),
                                            ::testing::Values(256u, 688u), ::testing::Values(1u, 13u, 100u),
                                            ::testing::Bool()),
                         param_name);

class OneBitMlpFixture : public VulkanTest {};

// A small max_batch: every pass but the first goes through the offset copies.
TEST_F(OneBitMlpFixture, SmallMaxBatch) {
  const std::uint32_t out = 40, in = 688, n = 23;
  const MlpMatrixCalib& c = test_calib(out, in);
  const auto w = random_floats(std::size_t(out) * in, 3), x = random_floats(std::size_t(n) * in, 4);
  for (MlpRotation r : {MlpRotation::none, MlpRotation::structured})
    for (bool acc : {false, true}) {
      const auto y0 = random_floats(std::size_t(n) * out, 5);
      OneBitMatrix m(dev(), w, out, in, &c, r, 5);
      Buffer bx = upload(dev(), x), by = upload(dev(), y0);
      Stream s = Stream::create(dev());
      m.apply(s, bx, by, n, acc);
      s.submit_and_wait();
      std::vector<float> want = y0;
      mlp_reference(mlp_encode(w, out, in, &c, r), &c, r, x, want, n, in, acc);
      EXPECT_TRUE(nmse(want, download<float>(by, want.size()), kMaxNmse)) << mlp_rotation_name(r) << " acc " << acc;
    }
}

// A learned calibration end to end: the codec with the learned R keeps more
// of W x than without a rotation on a matrix with hidden structure.
TEST_F(OneBitMlpFixture, LearnedCalibrationOnDevice) {
  const std::uint32_t out = 200, in = 64, n = 9;
  // Rows c_i + small Laplace-like noise along a few directions: sign codes of
  // the raw rows keep little, rotated ones more.
  auto w = random_floats(std::size_t(out) * in, 21);
  for (std::uint32_t i = 0; i < out; ++i)
    for (std::uint32_t j = 0; j < in; ++j) w[i * in + j] *= j < 4 ? 8.f : 0.2f;
  MlpCalibrateOptions o;
  o.iters = 10;
  o.null_control = false;
  const MlpMatrixCalib c = calibrate_mlp_matrix(w, out, in, o);
  const auto x = random_floats(std::size_t(n) * in, 22);
  std::vector<float> exact_y(std::size_t(n) * out, 0.f);  // (n, out) = W x
  for (std::uint32_t t = 0; t < n; ++t)
    for (std::uint32_t i = 0; i < out; ++i)
      for (std::uint32_t j = 0; j < in; ++j) exact_y[t * out + i] += w[i * in + j] * x[t * in + j];
  std::map<MlpRotation, double> err;
  for (MlpRotation r : {MlpRotation::none, MlpRotation::dense, MlpRotation::structured}) {
    OneBitMatrix m(dev(), w, out, in, &c, r, 16);
    Buffer bx = upload(dev(), x), by = Buffer::create(dev(), exact_y.size() * 4);
    Stream s = Stream::create(dev());
    m.apply(s, bx, by, n, false);
    s.submit_and_wait();
    const auto got = download<float>(by, exact_y.size());
    double e = 0, ref = 0;
    for (std::size_t i = 0; i < got.size(); ++i) {
      e += (got[i] - exact_y[i]) * (got[i] - exact_y[i]);
      ref += exact_y[i] * exact_y[i];
    }
    err[r] = e / ref;
  }
  EXPECT_LT(err[MlpRotation::dense], err[MlpRotation::none]);
  EXPECT_LT(err[MlpRotation::structured], err[MlpRotation::none]);
  EXPECT_GT(c.dense.heldout, c.none.heldout);
}

TEST_F(OneBitMlpFixture, RejectsBadArguments) {
  const std::uint32_t out = 8, in = 256;
  const auto w = random_floats(std::size_t(out) * in, 1);
  EXPECT_THROW(OneBitMatrix(dev(), w, out, in, nullptr, MlpRotation::dense), Error);
  EXPECT_THROW(OneBitMatrix(dev(), w, out, in, &test_calib(out + 1, in), MlpRotation::structured), Error);
  EXPECT_THROW(OneBitMatrix(dev(), w, out, in - 1, nullptr, MlpRotation::none), Error);
  EXPECT_THROW(OneBitMatrix(dev(), w, out, in, nullptr, MlpRotation::none, 0), Error);
  OneBitMatrix m(dev(), w, out, in, nullptr, MlpRotation::srht);
  EXPECT_EQ(m.rotation_bytes(), 0u);
  EXPECT_NEAR(m.bits_per_weight(), 1.0 + 64.0 / in,
              1e-12);  // bits + fp32 c and alpha per row
  Buffer x = Buffer::create(dev(), 4 * in * 4), y = Buffer::create(dev(), 4 * out * 4);
  Stream s = Stream::create(dev());
  EXPECT_THROW(m.apply(s, x, y, 5, false), Error);  // x too small
  EXPECT_THROW(m.apply(s, x, x, 1, false), Error);  // aliasing
}

}  // namespace
}  // namespace vkq::test
