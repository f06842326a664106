// The solvers' row kernels (vkquant/rotation/row_kernels.hpp) against naive
// loops that sum in the order the header promises: on x86-64, where GCC's
// baseline has no fused multiply-add, bit for bit (whichever clone, AVX-512,
// AVX2 or SSE2, the CPU picked); elsewhere within a few fp32 ulps. Awkward
// sizes cover every tail: rows not a multiple of 4 or of the 128-row block,
// widths not a multiple of 16 lanes or of the 4-row tile.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "rotation_data.hpp"
#include "vkquant/rotation/learn.hpp"
#include "vkquant/rotation/row_kernels.hpp"

namespace {

using namespace vkq::rot;

struct Shape {
  std::size_t rows, d, n;
};
std::string shape_name(const testing::TestParamInfo<Shape>& p) {
  return "rows" + std::to_string(p.param.rows) + "_d" + std::to_string(p.param.d) + "_n" + std::to_string(p.param.n);
}
const Shape kShapes[] = {{1, 1, 1},     {3, 5, 7},     {13, 16, 16},  {127, 64, 64},
                         {130, 96, 17}, {257, 33, 48}, {300, 64, 100}, {4099, 64, 64}};

std::vector<float> normal(std::size_t count, std::uint64_t seed) {
  vkq::testdata::Rng rng(seed);
  std::vector<float> v(count);
  for (auto& x : v) x = float(rng.normal());
  return v;
}

// Equal to the bit where the naive loop rounds as the kernels do (x86-64: no
// FMA in the baseline); else relatively close.
void expect_same(const std::vector<float>& got, const std::vector<float>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
#if defined(__x86_64__)
    ASSERT_EQ(got[i], want[i]) << what << " element " << i;
#else
    ASSERT_NEAR(got[i], want[i], 1e-5f * (1.0f + std::fabs(want[i]))) << what << " element " << i;
#endif
  }
}

class RowKernels : public testing::TestWithParam<Shape> {};

TEST_P(RowKernels, RowsTimesSumsInOrder) {
  const auto [rows, d, n] = GetParam();
  const auto x = normal(rows * d, 1), b = normal(d * n, 2);
  std::vector<float> y(rows * n, -7.0f), want(rows * n);
  kernels::rows_times(x.data(), b.data(), y.data(), rows, d, n);
  for (std::size_t r = 0; r < rows; ++r)  // y (rows, n) = x (rows, d) · b (d, n)
    for (std::size_t j = 0; j < n; ++j) {
      float s = 0;
      for (std::size_t k = 0; k < d; ++k) s += x[r * d + k] * b[k * n + j];
      want[r * n + j] = s;
    }
  expect_same(y, want, "y");
}

TEST_P(RowKernels, CrossAccumulatesBlocksInOrder) {
  const auto [rows, n, d] = GetParam();  // y (rows, n), u (rows, d), m (n, d)
  const auto y = normal(rows * n, 3), u = normal(rows * d, 4), m0 = normal(n * d, 5);
  for (kernels::Weight w : {kernels::Weight::sign, kernels::Weight::cube}) {
    const bool cube = w == kernels::Weight::cube;
    std::vector<float> m = m0, want = m0;
    std::vector<double> sq(n, 0.5), sq_want(n, 0.5);
    kernels::cross_accumulate(y.data(), u.data(), rows, n, d, w, m.data(), cube ? sq.data() : nullptr);
    for (std::size_t r0 = 0; r0 < rows; r0 += 128)
      for (std::size_t i = 0; i < n; ++i)
        for (std::size_t j = 0; j < d; ++j) {
          float s = 0;
          for (std::size_t r = r0; r < std::min(rows, r0 + 128); ++r) {
            const float v = y[r * n + i], f = cube ? v * v * v : (v >= 0 ? 1.0f : -1.0f);
            s += f * u[r * d + j];
          }
          want[i * d + j] += s;
        }
    expect_same(m, want, cube ? "m (cube)" : "m (sign)");
    if (!cube) continue;
    for (std::size_t r = 0; r < rows; ++r)
      for (std::size_t i = 0; i < n; ++i) sq_want[i] += double(y[r * n + i]) * double(y[r * n + i]);
    for (std::size_t i = 0; i < n; ++i) EXPECT_DOUBLE_EQ(sq[i], sq_want[i]) << "sq " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, RowKernels, testing::ValuesIn(kShapes), shape_name);

// The host backend of the solvers is the kernel: Y = X Rᵀ for a column-major R.
TEST(RowKernels, CpuRotatorAppliesTheKernel) {
  const std::size_t rows = 5000, d = 48;
  const auto xv = normal(rows * d, 6);
  const RowMat x = Eigen::Map<const RowMat>(xv.data(), Eigen::Index(rows), Eigen::Index(d));
  const Eigen::MatrixXf r = Eigen::Map<const RowMat>(normal(d * d, 7).data(), Eigen::Index(d), Eigen::Index(d));
  auto rot = cpu_rotator();
  rot->set_rows(x);
  RowMat y;
  rot->apply(r, y);
  std::vector<float> want(rows * d);
  kernels::rows_times(xv.data(), r.data(), want.data(), rows, d, d);
  expect_same(std::vector<float>(y.data(), y.data() + y.size()), want, "Y");
  EXPECT_LT((y - x * r.transpose()).cwiseAbs().maxCoeff(), 1e-4f);
}

}  // namespace
