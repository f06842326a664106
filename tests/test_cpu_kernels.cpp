// The host CPU kernels (vkquant/cpu/kernels.hpp) of every instruction set
// this CPU supports against plain double loops, on sizes that are not
// multiples of any vector or block width, strided operands, and the causal
// attention on row blocks inside a sequence.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <limits>
#include <random>
#include <stdexcept>
#include <vector>

#include "vkquant/cpu/kernels.hpp"
#include "vkquant/error.hpp"

namespace vkq::cpu {
namespace {

std::vector<float> randn(std::size_t n, std::uint32_t seed, float sd = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, sd);
  std::vector<float> v(n);
  for (float& x : v) x = nd(rng);
  return v;
}

class CpuKernels : public ::testing::TestWithParam<Isa> {};

std::string isa_label(const ::testing::TestParamInfo<Isa>& i) { return isa_name(i.param); }

TEST_P(CpuKernels, GemmNtStridedEdges) {
  const Kernels& K = kernels(GetParam());
  EXPECT_EQ(K.isa, GetParam());
  struct Size {
    std::size_t m, n, k;
  };
  for (const Size s : {Size{1, 1, 1}, Size{7, 13, 5}, Size{33, 65, 129}, Size{257, 31, 96}, Size{70, 600, 48}}) {
    const std::size_t lda = s.k + 3, ldb = s.k + 1, ldc = s.n + 5;
    const auto a = randn(s.m * lda, 1), b = randn(s.n * ldb, 2), c0 = randn(s.m * ldc, 3);
    for (float beta : {0.0f, 1.0f}) {
      std::vector<float> c = c0;
      // With beta 0, C is not read: NaN there must not leak.
      if (beta == 0.0f)
        for (std::size_t i = 0; i < s.m; ++i)
          for (std::size_t j = 0; j < s.n; ++j) c[i * ldc + j] = std::numeric_limits<float>::quiet_NaN();
      K.gemm_nt(s.m, s.n, s.k, a.data(), lda, b.data(), ldb, c.data(), ldc, beta);
      double worst = 0;
      for (std::size_t i = 0; i < s.m; ++i)
        for (std::size_t j = 0; j < s.n; ++j) {
          double want = beta * double(c0[i * ldc + j]);
          for (std::size_t p = 0; p < s.k; ++p) want += double(a[i * lda + p]) * b[j * ldb + p];
          worst = std::max(worst, std::abs(want - c[i * ldc + j]) / (1.0 + std::sqrt(double(s.k))));
        }
      EXPECT_LT(worst, 1e-5) << s.m << "x" << s.n << "x" << s.k << " beta " << beta;
      // The padding between rows is untouched.
      for (std::size_t i = 0; i < s.m; ++i)
        for (std::size_t j = s.n; j < ldc; ++j) ASSERT_EQ(c[i * ldc + j], c0[i * ldc + j]);
    }
  }
}

TEST_P(CpuKernels, GemmTnAccumulatesInDouble) {
  const Kernels& K = kernels(GetParam());
  // 2,500 rows: past the 1,024-row float blocks; strided columns.
  const std::size_t m = 9, n = 11, k = 2500, lda = 20, ldb = 13, ldc = 12;
  const auto a = randn(k * lda, 4), b = randn(k * ldb, 5);
  std::vector<double> c(m * ldc, 0.5);
  K.gemm_tn_acc(m, n, k, a.data(), lda, b.data(), ldb, c.data(), ldc);
  K.gemm_tn_acc(m, n, k, a.data(), lda, b.data(), ldb, c.data(), ldc);
  for (std::size_t i = 0; i < m; ++i)
    for (std::size_t j = 0; j < n; ++j) {
      double want = 0.5;
      for (std::size_t p = 0; p < k; ++p) want += 2.0 * double(a[p * lda + i]) * b[p * ldb + j];
      EXPECT_NEAR(c[i * ldc + j], want, 1e-3) << i << "," << j;
    }
  for (std::size_t i = 0; i < m; ++i)
    for (std::size_t j = n; j < ldc; ++j) ASSERT_EQ(c[i * ldc + j], 0.5);
}

// out[t, j] = Σ_{s ≤ t} softmax(q[t, j]·k[s] · scale) v[s], in double.
std::vector<double> attention_ref(std::size_t n, std::size_t group, std::size_t hd, const std::vector<float>& q,
                                  std::size_t ldq, const std::vector<float>& k, const std::vector<float>& v,
                                  std::size_t ldk, double scale) {
  std::vector<double> out(n * group * hd);
  for (std::size_t t = 0; t < n; ++t)
    for (std::size_t j = 0; j < group; ++j) {
      std::vector<double> s(t + 1);
      double mx = -1e300;
      for (std::size_t r = 0; r <= t; ++r) {
        double dot = 0;
        for (std::size_t i = 0; i < hd; ++i) dot += double(q[t * ldq + j * hd + i]) * k[r * ldk + i];
        mx = std::max(mx, s[r] = dot * scale);
      }
      double sum = 0;
      for (double& x : s) sum += (x = std::exp(x - mx));
      for (std::size_t i = 0; i < hd; ++i) {
        double acc = 0;
        for (std::size_t r = 0; r <= t; ++r) acc += s[r] * v[r * ldk + i];
        out[(t * group + j) * hd + i] = acc / sum;
      }
    }
  return out;
}

TEST_P(CpuKernels, AttendCausalRowBlocks) {
  const Kernels& K = kernels(GetParam());
  struct Case {
    std::size_t n, group, hd;
  };
  for (const Case cs : {Case{150, 1, 8}, Case{150, 3, 64}, Case{70, 7, 12}}) {
    // q and out: (n, heads) rows of another head's columns around the group
    // (ldq wider than group·hd); k, v: a KV row wider than hd.
    const std::size_t ldq = cs.group * cs.hd + 16, ldk = cs.hd + 24;
    const auto q = randn(cs.n * ldq, 6, 2.0f), k = randn(cs.n * ldk, 7, 2.0f), v = randn(cs.n * ldk, 8);
    const double scale = 1.0 / std::sqrt(double(cs.hd));
    const auto want = attention_ref(cs.n, cs.group, cs.hd, q, ldq, k, v, ldk, scale);
    std::vector<float> out(cs.n * ldq, -7.0f);
    // Blocks of 64 rows in reverse order (each block only reads, and writes its own rows).
    for (std::size_t r0 = (cs.n - 1) / 64 * 64 + 64; r0 > 0;) {
      r0 -= 64;
      K.attend_causal(r0, std::min(cs.n, r0 + 64), cs.group, cs.hd, q.data(), ldq, k.data(), v.data(), ldk, out.data(),
                      float(scale));
    }
    double worst = 0;
    for (std::size_t t = 0; t < cs.n; ++t) {
      for (std::size_t j = 0; j < cs.group; ++j)
        for (std::size_t i = 0; i < cs.hd; ++i)
          worst = std::max(worst, std::abs(want[(t * cs.group + j) * cs.hd + i] - out[t * ldq + j * cs.hd + i]));
      for (std::size_t i = cs.group * cs.hd; i < ldq; ++i) ASSERT_EQ(out[t * ldq + i], -7.0f) << "row " << t;
    }
    EXPECT_LT(worst, 2e-5) << "n " << cs.n << " group " << cs.group << " hd " << cs.hd;
  }
}

TEST_P(CpuKernels, SiluMul) {
  const Kernels& K = kernels(GetParam());
  for (std::size_t n : {1u, 17u, 1000u}) {
    auto g = randn(n, 9, 4.0f);
    const auto g0 = g, u = randn(n, 10);
    K.silu_mul(n, g.data(), u.data());
    for (std::size_t i = 0; i < n; ++i) {
      const double want = double(g0[i]) / (1.0 + std::exp(-double(g0[i]))) * u[i];
      EXPECT_NEAR(g[i], want, 2e-6 * (1.0 + std::abs(want))) << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Isas, CpuKernels, ::testing::ValuesIn(supported_isas()), isa_label);

TEST(CpuIsa, ParseNamesTheVariableAndTheSet) {
  const auto have = supported_isas();
  ASSERT_EQ(have.front(), Isa::generic);
  EXPECT_EQ(parse_isa("generic", have), Isa::generic);
  EXPECT_EQ(parse_isa(nullptr, have), have.back());
  EXPECT_EQ(parse_isa("", have), have.back());
  const std::vector<Isa> generic_only{Isa::generic};
  EXPECT_EQ(parse_isa(nullptr, generic_only), Isa::generic);
  try {
    (void)parse_isa("avx512", generic_only);
    FAIL() << "an unsupported set was accepted";
  } catch (const UsageError& e) {
    EXPECT_STREQ(e.what(), "VKQ_CPU_ISA=avx512: this CPU (or build) does not support it");
  }
  for (const char* bad : {"avx", "AVX2", "sse4"}) {
    try {
      (void)parse_isa(bad, have);
      FAIL() << bad << " was accepted";
    } catch (const UsageError& e) {
      EXPECT_EQ(std::string(e.what()), std::string("VKQ_CPU_ISA=") + bad + ": not an instruction set (generic, avx2 or avx512)");
    }
  }
}

TEST(CpuParallelFor, EveryIndexOnceAndTheFirstErrorRethrown) {
  std::vector<std::atomic<int>> hits(1000);
  parallel_for(hits.size(), [&](std::size_t i) { hits[i]++; }, 4);
  for (const auto& h : hits) ASSERT_EQ(h.load(), 1);
  parallel_for(0, [&](std::size_t) { FAIL(); });
  try {
    parallel_for(100, [&](std::size_t i) {
      if (i == 37) throw std::runtime_error("index 37");
    }, 3);
    FAIL() << "the error was lost";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "index 37");
  }
}

}  // namespace
}  // namespace vkq::cpu
