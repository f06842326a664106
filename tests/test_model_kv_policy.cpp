// The per-(layer, KV head) precision policy (docs/design.md §2.8): its options
// and bits, the greedy plan under a budget, the measured losses, the artifact
// that stores them, and the forward passes honouring mixed heads — Vulkan
// against the CPU codec, bits per key coordinate from the buffers' sizes.
// The transform code (§2.9): its fit, options, tables, plans, artifact and
// forward passes likewise.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "model_data.hpp"
#include "vk_test.hpp"
#include "vkquant/model/cpu_forward.hpp"
#include "vkquant/model/kcache.hpp"
#include "vkquant/model/kv_cache.hpp"
#include "vkquant/model/kv_policy.hpp"
#include "vkquant/model/vk_forward.hpp"
#include "vkquant/rotation/learn.hpp"
#include "vkquant/safetensors.hpp"

namespace vkq::test {
namespace {

using kernels::WeightType;

TEST(KvPolicy, OptionsAndTheirBits) {
  const auto o = policy_options(64, 64);
  ASSERT_FALSE(o.empty());
  EXPECT_EQ(o.front(), (KResidual{0, 16}));
  EXPECT_EQ(o.back(), (KResidual{64, 16}));
  for (std::size_t i = 1; i < o.size(); ++i) EXPECT_LE(head_bits(o[i - 1], 64), head_bits(o[i], 64));
  auto has = [&](KResidual r) { return std::find(o.begin(), o.end(), r) != o.end(); };
  EXPECT_TRUE(has({1, 16}));
  EXPECT_TRUE(has({2, 8}));
  EXPECT_TRUE(has({4, 4}));
  EXPECT_TRUE(has({32, 8}));
  EXPECT_FALSE(has({1, 8}));  // a byte code needs an even rank
  EXPECT_FALSE(has({2, 4}));  // a nibble code needs a multiple of 4
  // 1 + 16/64 for signs and alpha; the record: rank halves, or a scale half + codes.
  EXPECT_DOUBLE_EQ(head_bits({0, 16}, 64), 1.25);
  EXPECT_DOUBLE_EQ(head_bits({1, 16}, 64), 1.5);
  EXPECT_DOUBLE_EQ(head_bits({4, 4}, 64), 1.75);
  EXPECT_DOUBLE_EQ(head_bits({8, 4}, 64), 2.0);
  EXPECT_DOUBLE_EQ(head_bits({4, 8}, 64), 2.0);
  EXPECT_DOUBLE_EQ(head_bits({8, 8}, 64), 2.5);
  EXPECT_DOUBLE_EQ(head_bits({8, 16}, 64), 3.25);
  // The basis bounds the ranks offered.
  for (const KResidual& r : policy_options(64, 8)) EXPECT_LE(r.rank, 8u);
  // Alpha-relative 4-bit codes: no scale half (r8: 32 bits, 0.5 per coordinate at d = 64).
  EXPECT_FALSE(has({8, 4, true}));
  const auto a = policy_options(64, 64, true);
  auto has_a = [&](KResidual r) { return std::find(a.begin(), a.end(), r) != a.end(); };
  for (const std::uint32_t r : {4u, 8u, 12u, 16u, 24u, 32u, 48u, 64u}) EXPECT_TRUE(has_a({r, 4, true})) << r;
  EXPECT_FALSE(has_a({2, 4, true}));
  // 2- and 1-bit codes: more coefficients for the bits (r16 a2 = r8 a4 = r32 a1: 32 bits).
  for (const std::uint32_t r : {8u, 16u, 24u, 32u, 48u, 64u}) EXPECT_TRUE(has_a({r, 2, true})) << r;
  for (const std::uint32_t r : {16u, 32u, 48u, 64u}) EXPECT_TRUE(has_a({r, 1, true})) << r;
  EXPECT_FALSE(has_a({4, 2, true}));
  EXPECT_FALSE(has_a({8, 1, true}));
  EXPECT_FALSE(has_a({24, 1, true}));
  EXPECT_DOUBLE_EQ(head_bits({16, 2, true}, 64), 1.75);
  EXPECT_DOUBLE_EQ(head_bits({32, 1, true}, 64), 1.75);
  for (std::size_t i = 1; i < a.size(); ++i) EXPECT_LE(head_bits(a[i - 1], 64), head_bits(a[i], 64));
  EXPECT_DOUBLE_EQ(head_bits({4, 4, true}, 64), 1.5);
  EXPECT_DOUBLE_EQ(head_bits({8, 4, true}, 64), 1.75);
  EXPECT_DOUBLE_EQ(head_bits({12, 4, true}, 64), 2.0);
  for (const KResidual& r : policy_options(64, 8, true)) EXPECT_LE(r.rank, 8u);
}

// Four heads, a loss that halves with every extra bit per coordinate, at
// different scales: the plan spends on the heads with the most to gain.
KPolicyTable synthetic_table() {
  KPolicyTable t;
  t.layers = 2, t.kv_heads = 2, t.head_dim = 32;
  t.options = policy_options(32, 32);
  const double scale[4] = {8.0, 1.0, 0.25, 4.0};
  for (int h = 0; h < 4; ++h)
    for (const KResidual& r : t.options) t.loss.push_back(scale[h] * std::exp2(-2.0 * (head_bits(r, 32) - 1.5)));
  return t;
}

TEST(KvPolicy, PlanStaysWithinTheBudgetAndImprovesWithIt) {
  const KPolicyTable t = synthetic_table();
  double last = 1e300;
  for (double budget = 1.5; budget <= 20; budget += 0.25) {
    const KPolicyPlan p = solve_policy(t, budget);
    ASSERT_EQ(p.heads.size(), 4u);
    EXPECT_LE(p.bits, budget + 1e-9);
    EXPECT_DOUBLE_EQ(p.bits, plan_bits(p.heads, 32));
    EXPECT_LE(p.loss, last + 1e-12) << budget;
    last = p.loss;
  }
  // At the floor every head is the 1-bit code alone; at a budget above every
  // option, each head takes its least-loss option.
  for (const KResidual& r : solve_policy(t, 1.5).heads) EXPECT_EQ(r.rank, 0u);
  for (const KResidual& r : solve_policy(t, 64).heads) EXPECT_EQ(r, t.options.back());
  // In between, the heads with more to gain get more bits.
  const KPolicyPlan mid = solve_policy(t, 2.5);
  EXPECT_GT(head_bits(mid.heads[0], 32), head_bits(mid.heads[2], 32));
  EXPECT_GT(head_bits(mid.heads[3], 32), head_bits(mid.heads[1], 32));
}

// A measured sensitivity rescales each head's curve to its measured KL at
// rank 0: two heads of the same predicted losses split by what they cost the
// output.
TEST(KvPolicy, MeasuredSensitivityWeighsTheHeads) {
  KPolicyTable t = synthetic_table();
  for (std::size_t h = 0; h < 4; ++h)  // every head the same predicted curve (head 1's)
    for (std::size_t o = 0; o < t.options.size(); ++o) t.loss[h * t.options.size() + o] = t.loss[1 * t.options.size() + o];
  const KPolicyPlan flat = solve_policy(t, 2.0);
  for (const KResidual& r : flat.heads) EXPECT_EQ(head_bits(r, 32), head_bits(flat.heads[0], 32));
  t.head_kl = {0.001, 0.02, 0.0, 0.004};
  EXPECT_DOUBLE_EQ(t.weight(1), 0.02 / t.at(0, 1, 0));
  const KPolicyPlan w = solve_policy(t, 2.0);
  EXPECT_LE(w.bits, 2.0 + 1e-9);
  EXPECT_GT(head_bits(w.heads[1], 32), head_bits(w.heads[3], 32));
  EXPECT_GT(head_bits(w.heads[3], 32), head_bits(w.heads[0], 32));
  EXPECT_EQ(w.heads[2].rank, 0u);  // costs the output nothing: no bits
  // The plan's loss is in the measured units: at the floor, the KLs' sum.
  EXPECT_NEAR(solve_policy(t, 1.5).loss, 0.025, 1e-12);
  t.head_kl.pop_back();
  EXPECT_THROW(solve_policy(t, 2.0), Error);
}

TEST(KvPolicy, BudgetBelowTheCodeIsRefusedByName) {
  try {
    (void)solve_policy(synthetic_table(), 1.4);
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--kv-budget 1.4 is below the 1-bit code alone (1.5 bits"), std::string::npos) << e.what();
  }
}

// The transform code's fit (docs/design.md §2.9): an oblique pair with AᵀB = I,
// per-column losses whose sums are the options' measured held-out errors
// (coded as the device codes: floor(c / step) clamped, ĉ = (code + 1/2)·step
// along B), falling with bits, and query weighting that spends the bits where
// the queries look.
TEST(KvPolicy, TransformCodeFit) {
  const std::uint32_t d = 32;
  std::mt19937 rng(9);
  std::normal_distribution<float> g;
  auto keys = [&](Eigen::Index n) {
    rot::RowMat y(n, d);
    for (Eigen::Index i = 0; i < n; ++i)
      for (Eigen::Index j = 0; j < d; ++j) y(i, j) = g(rng) * (0.2f + float(j % 8));
    return y;
  };
  const rot::RowMat train = keys(2000), held = keys(700);
  Eigen::MatrixXd w = Eigen::MatrixXd::Identity(d, d);
  for (Eigen::Index j = 0; j < d; ++j) w(j, j) = j < 4 ? 4.0 : 0.25;  // queries look along the first 4 axes
  const TcFit f = tc_fit(train, held, w);
  EXPECT_TRUE(((f.enc.transpose() * f.dec).cast<double>() - Eigen::MatrixXd::Identity(d, d)).cwiseAbs().maxCoeff() < 1e-4);
  // Levels: each column's ascending in its codes' values (bits (i + n/2) mod n for value i - n/2).
  for (std::uint32_t wd : {4u, 3u, 2u}) {
    const std::vector<float>& lv = by_tc_width(wd, f.lv4, f.lv3, f.lv2, f.lv2, "test");
    const std::uint32_t n = 1u << wd;
    ASSERT_EQ(lv.size(), std::size_t(d) * n);
    for (std::uint32_t j = 0; j < d; ++j)
      for (std::uint32_t i = 1; i < n; ++i)
        EXPECT_LT(lv[j * n + (i - 1 + n / 2) % n], lv[j * n + (i + n / 2) % n]) << wd << "-bit column " << j;
  }
  // The held-out weighted error of coding `held` with option r: each code
  // the nearest level (levels) or floor (uniform midrise), as pack_residual.
  const auto measured = [&](KResidual r, bool levels) {
    std::vector<float> lv(std::size_t(r.rank) * kTcLevels);
    for (std::uint32_t j = 0; j < r.rank; ++j) {
      const std::uint32_t wd = tc_slot(r, j).width;
      for (std::uint32_t u = 0; u < (1u << wd); ++u)
        lv[j * kTcLevels + u] =
            wd == 1 ? float(tc_uniform_level(1, u)) : by_tc_width(wd, f.lv4, f.lv3, f.lv2, f.lv2, "test")[j * (1u << wd) + u];
    }
    double e = 0;
    std::vector<half_bits> rec(KResidualLayout::record_halves(r) + 1);
    for (Eigen::Index i = 0; i < held.rows(); ++i) {
      Eigen::VectorXd y = held.row(i).transpose().cast<double>(), yhat = Eigen::VectorXd::Zero(d);
      std::vector<double> c(r.rank);
      for (std::uint32_t j = 0; j < r.rank; ++j)
        c[j] = f.enc.col(j).cast<double>().dot(y) / double(float(f.step(tc_slot(r, j).width)[j]));
      pack_residual(r, c, rec, 0, levels ? std::span<const float>(lv) : std::span<const float>());
      const std::vector<double> ch = unpack_residual(r, rec, 0, levels ? std::span<const float>(lv) : std::span<const float>());
      for (std::uint32_t j = 0; j < r.rank; ++j)
        yhat += ch[j] * double(float(f.step(tc_slot(r, j).width)[j])) * f.dec.col(j).cast<double>();
      const Eigen::VectorXd err = y - yhat;
      e += err.dot(w * err);
    }
    return e / double(held.rows());
  };
  double last = std::numeric_limits<double>::infinity();
  for (const KResidual r : {tc_residual(0, 0, 0, 0), tc_residual(0, 0, 0, 16), tc_residual(4, 0, 8, 0), tc_residual(8, 0, 8, 16),
                            tc_residual(4, 16, 8, 0), tc_residual(8, 16, 8, 0), tc_residual(32, 0, 0, 0)}) {
    const double want = measured(r, true), got = f.loss(r);
    EXPECT_NEAR(got, want, 0.02 * want) << residual_label(r);  // W + 1e-3·mean eigenvalue vs W
    EXPECT_LT(got, last) << residual_label(r);
    last = got;
  }
  // Every column at 4 bits loses a small part of the empty code's loss.
  EXPECT_LT(f.loss(tc_residual(32, 0, 0, 0)), 0.02 * f.loss(tc_residual(0, 0, 0, 0)));
  // Lloyd's levels beat the uniform ones on held-out Gaussian coefficients
  // (by ~18 % at 4 bits, ~1 % at 2) and never lose.
  EXPECT_LT(measured(tc_residual(32, 0, 0, 0), true), 0.92 * measured(tc_residual(32, 0, 0, 0), false));
  EXPECT_LE(measured(tc_residual(0, 0, 32, 0), true), measured(tc_residual(0, 0, 32, 0), false) * (1 + 1e-3));
  // At 3 bits between the two (Max's Gaussian optimum: ~8 % below the best uniform grid).
  EXPECT_LT(measured(tc_residual(0, 32, 0, 0), true), 0.97 * measured(tc_residual(0, 32, 0, 0), false));
  // Query weighting: at 16 bits per key the weighted fit beats the unweighted one on the weighted error.
  const TcFit flat = tc_fit(train, held, Eigen::MatrixXd::Identity(d, d));
  const auto weighted_loss = [&](const TcFit& fit, KResidual r) {
    double e = 0;
    for (Eigen::Index i = 0; i < held.rows(); ++i) {
      Eigen::VectorXd y = held.row(i).transpose().cast<double>(), yhat = Eigen::VectorXd::Zero(d);
      for (std::uint32_t j = 0; j < r.rank; ++j) {
        const double st = double(float(fit.step(4)[j]));
        const double c = fit.enc.col(j).cast<double>().dot(y);
        yhat += (std::clamp(std::floor(c / st), -8.0, 7.0) + 0.5) * st * fit.dec.col(j).cast<double>();
      }
      const Eigen::VectorXd err = y - yhat;
      e += err.dot(w * err);
    }
    return e;
  };
  EXPECT_LT(weighted_loss(f, tc_residual(4, 0, 0, 0)), 0.9 * weighted_loss(flat, tc_residual(4, 0, 0, 0)));
  EXPECT_THROW(tc_fit(train, held, Eigen::MatrixXd::Identity(d + 1, d + 1)), Error);
  // Options: whole halves, within head_dim, the empty code first.
  const auto opts = tc_options(d);
  EXPECT_EQ(opts.front(), tc_residual(0, 0, 0, 0));
  for (const KResidual& r : opts) {
    EXPECT_EQ(r.n4 % 4 + r.n3 % 16 + r.n2 % 8 + r.n1() % 16, 0u);
    EXPECT_LE(r.rank, d);
  }
  EXPECT_NE(std::find(opts.begin(), opts.end(), tc_residual(4, 0, 8, 16)), opts.end());
  EXPECT_NE(std::find(opts.begin(), opts.end(), tc_residual(4, 16, 8, 0)), opts.end());
  // Larger heads take coarser steps: the table stays within what the artifact's reader takes.
  EXPECT_EQ(tc_options(64).size(), 295u);
  for (std::uint32_t hd : {96u, 128u, 256u}) {
    const auto big = tc_options(hd);
    EXPECT_LE(big.size(), 4096u) << hd;
    EXPECT_EQ(big.back().rank, hd) << hd;
    for (const KResidual& r : big) EXPECT_NO_THROW(KResidualLayout::make({r})) << residual_label(r);
  }
}

TEST(KvPolicy, LossesOfTheOptions) {
  const std::uint32_t d = 32;
  std::mt19937 rng(5);
  std::normal_distribution<float> g;
  rot::RowMat y(300, d);
  for (Eigen::Index i = 0; i < y.rows(); ++i)
    for (Eigen::Index j = 0; j < d; ++j) y(i, j) = g(rng) * (1.0f + float(j % 4));
  Eigen::MatrixXf a(d, d);
  for (Eigen::Index i = 0; i < d; ++i)
    for (Eigen::Index j = 0; j < d; ++j) a(i, j) = g(rng);
  const Eigen::MatrixXf u = Eigen::HouseholderQR<Eigen::MatrixXf>(a).householderQ();
  const std::vector<KResidual> opts = {{0, 16}, {8, 4}, {8, 8}, {8, 16}, {32, 16}};
  const auto key = head_option_losses(y, u, Eigen::MatrixXd::Identity(d, d), opts);
  EXPECT_GT(key[0], 0.0);
  EXPECT_LT(key[1], key[0]);
  EXPECT_LT(key[2], key[1]);   // finer codes of the same coefficients
  EXPECT_LT(key[3], key[2]);
  EXPECT_LT(key[4], 1e-5 * key[0]);  // full rank in fp16: the key back, up to fp16 rounding
  // A weight that counts one direction only: options are judged on it alone.
  Eigen::MatrixXd w = Eigen::MatrixXd::Zero(d, d);
  w(3, 3) = 1;
  const auto q = head_option_losses(y, u, w, opts);
  EXPECT_LT(q[0], key[0]);
  EXPECT_GT(q[0], 0.0);
  // Rank beyond the basis is refused.
  EXPECT_THROW(head_option_losses(y, u.leftCols(4), Eigen::MatrixXd::Identity(d, d), opts), Error);
  // Alpha-relative codes at the fitted steps: between no residual and fp16
  // coefficients, no worse than the per-key-scaled 4-bit code of the same
  // rank (a step per column fits better than one scale per key), and better
  // with a finer step than with a coarse one.
  const std::vector<double> steps = arel_steps(y, u);
  ASSERT_EQ(steps.size(), std::size_t(d));
  for (double s : steps) EXPECT_GT(s, 0.0);
  const std::vector<KResidual> aopts = {{0, 16}, {8, 4, true}, {8, 4}, {8, 16}};
  const auto al = head_option_losses(y, u, Eigen::MatrixXd::Identity(d, d), aopts, ArelStepSet{steps});
  EXPECT_LT(al[1], al[0]);
  EXPECT_GT(al[1], al[3]);
  EXPECT_LE(al[1], al[2] * 1.05);
  std::vector<double> coarse = steps;
  for (double& s : coarse) s *= 4;
  EXPECT_GT(head_option_losses(y, u, Eigen::MatrixXd::Identity(d, d), aopts, ArelStepSet{coarse})[1], al[1]);
  EXPECT_THROW(head_option_losses(y, u, Eigen::MatrixXd::Identity(d, d), aopts), Error);  // no steps
  // 2- and 1-bit codes at their own steps: coarser levels want a wider step
  // (per column: 1 bit > 2 bits > 4 bits), each width's loss falls with rank,
  // and at equal bits per key a wider rank of coarser codes wins on these
  // keys (their energy is spread over every direction: j % 4 scales only).
  const ArelStepSet all{steps, arel_steps(y, u, 2), arel_steps(y, u, 1)};
  for (std::size_t j = 0; j < steps.size(); ++j) {
    EXPECT_GT(all.a2[j], all.a4[j]) << j;
    EXPECT_GT(all.a1[j], all.a2[j]) << j;
  }
  const std::vector<KResidual> wide = {{0, 16}, {8, 4, true}, {16, 2, true}, {32, 1, true}, {16, 1, true}, {8, 2, true}};
  const auto wl = head_option_losses(y, u, Eigen::MatrixXd::Identity(d, d), wide, all);
  EXPECT_LT(wl[5], wl[0]);
  EXPECT_LT(wl[4], wl[0]);
  EXPECT_LT(wl[2], wl[5]);  // rank 16 over 8 at two bits
  EXPECT_LT(wl[3], wl[4]);  // rank 32 over 16 at one bit
  EXPECT_LT(wl[3], wl[1]);  // 32 bits: r32 a1 below r8 a4
  EXPECT_LT(wl[2], wl[1]);  //          r16 a2 below r8 a4
  // Steps of one width do not stand in for another's.
  EXPECT_THROW(head_option_losses(y, u, Eigen::MatrixXd::Identity(d, d), wide, ArelStepSet{steps}), Error);
}

// The query-weighted pair: biorthogonal (AᵀB = I), the principal directions
// when the weight is the identity, and under a weight that counts a few
// directions a lower weighted loss than the principal directions at every
// rank (the reconstruction B Aᵀ e is the weighted optimum).
TEST(KvPolicy, QueryWeightedBasis) {
  const std::uint32_t d = 32;
  std::mt19937 rng(9);
  std::normal_distribution<float> g;
  rot::RowMat y(600, d);
  for (Eigen::Index i = 0; i < y.rows(); ++i)
    for (Eigen::Index j = 0; j < d; ++j) y(i, j) = g(rng) * (1.0f + 0.2f * float(j % 7));
  Eigen::MatrixXd w = Eigen::MatrixXd::Identity(d, d) * 0.01;
  Eigen::MatrixXd m(d, d);
  for (Eigen::Index i = 0; i < d; ++i)
    for (Eigen::Index j = 0; j < d; ++j) m(i, j) = g(rng);
  const Eigen::MatrixXd qd = Eigen::HouseholderQR<Eigen::MatrixXd>(m).householderQ();
  for (Eigen::Index j = 0; j < 4; ++j) w += 10.0 * qd.col(j) * qd.col(j).transpose();  // queries live in 4 directions
  for (const std::uint32_t rank : {4u, 8u, 32u}) {
    const ResidualPair p = query_weighted_basis(y, w, rank);
    ASSERT_EQ(p.enc.cols(), Eigen::Index(rank));
    EXPECT_LT((p.enc.transpose() * p.dec - Eigen::MatrixXf::Identity(rank, rank)).cwiseAbs().maxCoeff(), 1e-3f) << rank;
  }
  const ResidualPair id = query_weighted_basis(y, Eigen::MatrixXd::Identity(d, d), 8);
  // W = I: one orthonormal basis, up to the regularization's 1e-3 (A = √1.001 V, B = V/√1.001).
  EXPECT_LT((id.enc - id.dec).cwiseAbs().maxCoeff(), 2e-3f);
  EXPECT_LT((id.dec.transpose() * id.dec - Eigen::MatrixXf::Identity(8, 8)).cwiseAbs().maxCoeff(), 2e-3f);
  // Weighted losses (fp16 coefficients): the pair against the key's principal directions.
  std::vector<std::uint32_t> rows(std::size_t(y.rows()));
  for (std::size_t i = 0; i < rows.size(); ++i) rows[i] = std::uint32_t(i);
  const auto pca = rot::residual_basis(y, int(d), rows, rows);
  const ResidualPair full = query_weighted_basis(y, w, d);
  for (const std::uint32_t rank : {4u, 8u}) {
    const std::vector<KResidual> opt = {{rank, 16}};
    const Eigen::MatrixXf enc = full.enc.leftCols(rank), dec = full.dec.leftCols(rank), u = pca.u.leftCols(rank);
    const double weighted = head_option_losses(y, dec, w, opt, {}, &enc)[0];
    const double principal = head_option_losses(y, u, w, opt)[0];
    EXPECT_LT(weighted, 0.8 * principal) << "rank " << rank;
  }
  EXPECT_THROW(query_weighted_basis(y, w, d + 1), Error);
  // No query energy: the principal directions, finite.
  const ResidualPair none = query_weighted_basis(y, Eigen::MatrixXd::Zero(d, d), 8);
  EXPECT_TRUE(none.enc.allFinite() && none.dec.allFinite());
  EXPECT_LT((none.enc - id.enc).cwiseAbs().maxCoeff(), 1e-5f);
}

// ---- the model level

TinyModel policy_model() { return TinyModel{.vocab = 300, .dim = 64, .layers = 2, .heads = 4, .kv_heads = 2, .head_dim = 32, .ffn = 48, .ctx = 96}; }

std::vector<std::int32_t> tokens(std::size_t n, std::uint32_t seed, std::uint32_t vocab) {
  std::mt19937 rng(seed);
  std::vector<std::int32_t> t(n);
  for (auto& x : t) x = std::int32_t(rng() % vocab);
  return t;
}

// Keys and queries of 16 random sequences of 96 tokens; the policy measured
// at full rank with the query objective and a plan stored at 2.25 bits.
const KCalibration& policy_calibration(Device& dev, const ModelFile& f) {
  static std::optional<KCalibration> cal;
  if (cal) return *cal;
  const ModelConfig& c = f.config();
  const std::uint32_t hd = c.head_dim, group = c.heads / c.kv_heads;
  std::vector<std::vector<float>> pre(c.layers), post(c.layers);
  std::vector<std::vector<double>> q2[2];
  for (auto& s : q2) s.assign(c.layers, std::vector<double>(std::size_t(c.kv_heads) * hd * hd, 0.0));
  std::vector<std::uint32_t> positions;
  std::uint64_t rows = 0;
  VkForwardOptions o;
  o.weights = WeightType::f32;
  o.key_tap = [&](std::uint32_t l, const float* p, const float* q, std::uint32_t n) {
    pre[l].insert(pre[l].end(), p, p + std::size_t(n) * c.kv_dim());
    post[l].insert(post[l].end(), q, q + std::size_t(n) * c.kv_dim());
    if (l == 0)
      for (std::uint32_t t = 0; t < n; ++t) positions.push_back(std::uint32_t(positions.size() % 96));
  };
  o.query_tap = [&](std::uint32_t l, const float* p, const float* q, std::uint32_t n) {
    if (l == 0) rows += std::uint64_t(n) * group;
    for (int side = 0; side < 2; ++side)
      for (std::uint32_t t = 0; t < n; ++t)
        for (std::uint32_t h = 0; h < c.heads; ++h) {
          const float* x = (side ? q : p) + (std::size_t(t) * c.heads + h) * hd;
          double* m = q2[side][l].data() + std::size_t(h / group) * hd * hd;
          for (std::uint32_t i = 0; i < hd; ++i)
            for (std::uint32_t j = 0; j < hd; ++j) m[i * hd + j] += double(x[i]) * x[j];
        }
  };
  VkForward fwd(dev, f, o);
  for (std::uint32_t s = 0; s < 16; ++s) {
    fwd.reset();
    fwd.forward(tokens(96, s, c.vocab));
  }
  for (auto& side : q2)
    for (auto& m : side)
      for (double& x : m) x /= double(rows);
  CalibrateOptions co{.rank = hd, .solver = "procrustes", .seed = 1, .iters = 6, .warm_start = 10};
  co.policy = true;
  co.budget = 2.25;
  cal = calibrate_keys(c, pre, post, positions, co, {}, &q2[0], &q2[1]);
  cal->model_sha256 = model_sha256(f);
  return *cal;
}

// The spec k refused on a model of config c with `calibration`, naming `what`.
void expect_refused(const ModelConfig& c, const KCacheConfig& k, const KCalibration* calibration, const std::string& what) {
  try {
    k.validate(c, calibration);
    ADD_FAILURE() << "accepted; expected: " << what;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
  }
}

// An artifact's tensors re-written with one metadata key changed: expect()
// replaces `from` by `to` in key `key` and checks that the reader refuses the
// file naming "__metadata__.<key>: <what>".
class HostileMetadata {
 public:
  HostileMetadata(const std::filesystem::path& artifact, std::filesystem::path dir)
      : f_(SafetensorsFile::open(artifact)), dir_(std::move(dir)) {
    for (const auto& info : f_.tensors()) values_.push_back(f_.to_float(info));
    for (std::size_t i = 0; i < values_.size(); ++i)
      t_.push_back(f32_tensor(f_.tensors()[i].name, f_.tensors()[i].shape, values_[i]));
  }
  // The same tensors less `tensor`, metadata unchanged: refused naming `what`.
  void expect_without(const ModelFile& model, const std::string& tensor, const std::string& what) const {
    std::vector<TensorWrite> kept;
    for (const TensorWrite& w : t_)
      if (w.name != tensor) kept.push_back(w);
    ASSERT_EQ(kept.size() + 1, t_.size()) << tensor;
    refused(model, kept, f_.metadata(), what, "without " + tensor);
  }
  // The same tensors plus `tensor` (a copy of the first one's values under a
  // new name): refused naming it.
  void expect_with_extra(const ModelFile& model, const std::string& tensor) const {
    std::vector<TensorWrite> more = t_;
    more.push_back(f32_tensor(tensor, f_.tensors()[0].shape, values_[0]));
    refused(model, more, f_.metadata(), "tensor '" + tensor + "': not read", "an unread " + tensor);
  }
  void expect(const ModelFile& model, const std::string& key, const std::string& from, const std::string& to,
              const std::string& what) const {
    auto meta = f_.metadata();
    std::string j = meta.at(key);
    const auto at = j.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    j.replace(at, from.size(), to);
    meta[key] = j;
    refused(model, t_, meta, "__metadata__." + key + ": " + what, to);
  }

 private:
  // Writes `tensors` with `meta` and checks that the reader refuses the file
  // naming `what` (`change` says what was changed, should it be accepted).
  void refused(const ModelFile& model, const std::vector<TensorWrite>& tensors,
               const std::map<std::string, std::string>& meta, const std::string& what, const std::string& change) const {
    const auto bad = dir_ / "bad.vkq.safetensors";
    write_safetensors(bad, tensors, meta);
    try {
      (void)read_kcache_artifact(bad, model);
      ADD_FAILURE() << "accepted: " << change;
    } catch (const FormatError& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  }
  SafetensorsFile f_;
  std::filesystem::path dir_;
  std::vector<std::vector<float>> values_;
  std::vector<TensorWrite> t_;
};

struct PolicyCase {
  const char* name;
  KCacheConfig k;
  double nmse;
  // Non-empty: replaces the stored plan of k.rope ((layers, kv_heads)).
  std::vector<KResidual> plan = {};
};

class ModelKvPolicy : public VulkanTest, public ::testing::WithParamInterface<PolicyCase> {};

TEST_P(ModelKvPolicy, VulkanMatchesCpuAndBitsAreTheBudgets) {
  const auto dir = temp_dir("m");
  write_tiny_model(dir, policy_model());
  const auto f = ModelFile::open(dir);
  KCalibration cal = policy_calibration(dev(), f);
  const KCacheConfig& k = GetParam().k;
  if (!GetParam().plan.empty()) (k.transform ? cal.tc_plans : cal.plans)[k.rope] = GetParam().plan;
  const auto host = load_host_weights(f);
  CpuForward cpu(host, 0, /*fp16_kv=*/true);
  cpu.set_kcache(k, &cal, VType::f16);
  VkForward gpu(dev(), f, VkForwardOptions{.weights = WeightType::f32, .ctx = 0, .max_batch = 16, .kcache = k, .calibration = &cal});
  const auto ids = tokens(60, 7, 300);
  const std::span<const std::int32_t> prompt(ids.data(), 44), rest(ids.data() + 44, 16);
  EXPECT_TRUE(nmse(cpu.forward(prompt), gpu.forward(prompt, true), GetParam().nmse));
  for (std::int32_t id : rest) {
    const std::span<const std::int32_t> one(&id, 1);
    ASSERT_TRUE(nmse(cpu.forward(one), gpu.forward(one), GetParam().nmse)) << "position " << gpu.position();
  }
  // Bits per key coordinate from the buffers' sizes are the plan's, within the budget asked for.
  const ModelConfig& c = f.config();
  const auto plan = k.residual_plan(c, &cal);
  double want = 0;
  for (const auto& layer : plan) want += plan_bits(layer, c.head_dim) / double(plan.size());
  EXPECT_NEAR(gpu.key_bits_per_coordinate(), want, 1e-9);
  EXPECT_NEAR(k.bits_per_coordinate(c, &cal), want, 1e-9);
  const double budget = k.budget == KCacheConfig::kBudgetArtifact ? cal.budget : k.budget;
  if (budget > 0) {
    EXPECT_LE(gpu.key_bits_per_coordinate(), budget + 1e-9);
  }
  if (k.budget > 0 && k.budget > 1.5) {
    // A budget above the code alone is spent: some head has a residual.
    bool any = false;
    for (const auto& layer : plan)
      for (const KResidual& r : layer) any |= r.rank > 0;
    EXPECT_TRUE(any);
  }
}

KCacheConfig budgeted(KRope rope, double budget, std::uint32_t query_bits = 0) {
  KCacheConfig k{true, rope, KRotation::learned, 0, 0, 0, query_bits};
  k.budget = budget;
  return k;
}
// The transform code at `budget` (docs/design.md §2.9).
KCacheConfig tc_budgeted(KRope rope, double budget) {
  KCacheConfig k = budgeted(rope, budget);
  k.transform = true;
  return k;
}
KCacheConfig uniform(KRope rope, std::uint32_t rank, std::uint32_t bits, std::uint32_t query_bits = 0, bool arel = false) {
  KCacheConfig k{true, rope, KRotation::learned, rank, 0, 0, query_bits};
  k.coef_bits = bits;
  k.coef_arel = arel;
  return k;
}

INSTANTIATE_TEST_SUITE_P(
    Plans, ModelKvPolicy,
    ::testing::Values(PolicyCase{"post_budget_2", budgeted(KRope::post, 2.0), 1e-5},
                      PolicyCase{"post_budget_3_pop8", budgeted(KRope::post, 3.0, 8), 1e-4},
                      PolicyCase{"ropemean_budget_2_5", budgeted(KRope::ropemean, 2.5), 1e-5},
                      PolicyCase{"pre_budget_2", budgeted(KRope::pre, 2.0), 1e-5},
                      PolicyCase{"pre_budget_artifact", budgeted(KRope::pre, KCacheConfig::kBudgetArtifact), 1e-5},
                      PolicyCase{"post_r8_int4", uniform(KRope::post, 8, 4), 1e-5},
                      PolicyCase{"ropemean_r4_int8_pop8", uniform(KRope::ropemean, 4, 8, 8), 1e-4},
                      PolicyCase{"pre_r6_int8", uniform(KRope::pre, 6, 8), 1e-5},
                      PolicyCase{"pre_r12_int4", uniform(KRope::pre, 12, 4), 1e-5},
                      // Alpha-relative 4-bit codes, uniform and mixed with the others. The
                      // device's fp32 c/(alpha·‖u‖²) may land a code one step from the fp64
                      // twin's where it falls within rounding of a level boundary: 1e-4.
                      PolicyCase{"pre_r8_a4", uniform(KRope::pre, 8, 4, 0, true), 1e-4},
                      PolicyCase{"post_r12_a4_pop8", uniform(KRope::post, 12, 4, 8, true), 1e-4},
                      PolicyCase{"ropemean_r4_a4", uniform(KRope::ropemean, 4, 4, 0, true), 1e-4},
                      PolicyCase{"ropemean_r16_a1_pop8", uniform(KRope::ropemean, 16, 1, 8, true), 1e-4},
                      PolicyCase{"pre_r16_a2", uniform(KRope::pre, 16, 2, 0, true), 1e-4},
                      PolicyCase{"pre_mixed_a4", budgeted(KRope::pre, KCacheConfig::kBudgetArtifact), 1e-4,
                                 {{4, 4, true}, {0, 16}, {4, 4}, {8, 4, true}}},
                      // Layers of different widths (none, then rank 8 on one head): the layers
                      // of a step share the attention scratch within one command buffer.
                      PolicyCase{"post_layers_differ", budgeted(KRope::post, KCacheConfig::kBudgetArtifact), 1e-5,
                                 {{0, 16}, {0, 16}, {8, 4}, {0, 16}}},
                      PolicyCase{"ropemean_layers_differ_pop8",
                                 budgeted(KRope::ropemean, KCacheConfig::kBudgetArtifact, 8), 1e-4,
                                 {{0, 16}, {0, 16}, {0, 16}, {16, 4}}},
                      // The transform code: scored in place (post, post-ropemean) and
                      // decoded (pre); the fp32 device code may land one step from the
                      // fp64 twin's at a level boundary: 1e-4. A stored plan with empty
                      // heads and an empty layer.
                      PolicyCase{"tc_pre_1_5", tc_budgeted(KRope::pre, 1.5), 1e-4},
                      PolicyCase{"tc_ropemean_1_75", tc_budgeted(KRope::ropemean, 1.75), 1e-4},
                      PolicyCase{"tc_post_1", tc_budgeted(KRope::post, 1.0), 1e-4},
                      PolicyCase{"tc_ropemean_empty_heads", tc_budgeted(KRope::ropemean, KCacheConfig::kBudgetArtifact), 1e-4,
                                 {tc_residual(0, 0, 0, 0), tc_residual(0, 0, 0, 0), tc_residual(4, 0, 8, 16), tc_residual(0, 0, 0, 0)}},
                      // Stored plans with 3-bit codes (a code across two halves), decoded and in place.
                      PolicyCase{"tc_pre_3bit", tc_budgeted(KRope::pre, KCacheConfig::kBudgetArtifact), 1e-4,
                                 {tc_residual(4, 16, 0, 0), tc_residual(0, 16, 0, 0), tc_residual(0, 16, 8, 0), tc_residual(0, 32, 0, 0)}},
                      PolicyCase{"tc_ropemean_3bit", tc_budgeted(KRope::ropemean, KCacheConfig::kBudgetArtifact), 1e-4,
                                 {tc_residual(4, 16, 0, 0), tc_residual(0, 16, 0, 0), tc_residual(0, 16, 8, 0), tc_residual(0, 32, 0, 0)}}),
    [](const auto& param_info) { return std::string(param_info.param.name); });

TEST_F(VulkanTest, ModelKvPolicyArtifactRoundTripAndRefusals) {
  const auto dir = temp_dir("m");
  write_tiny_model(dir, policy_model());
  const auto f = ModelFile::open(dir);
  const auto& cal = policy_calibration(dev(), f);
  ASSERT_EQ(cal.policy.size(), 3u);
  ASSERT_EQ(cal.plans.size(), 3u);
  bool mixed = false;  // heads of one plan differ: what the forward tests exercise
  for (const auto& [rope, plan] : cal.plans) {
    EXPECT_LE(plan_bits(plan, 32), 2.25 + 1e-9) << krope_name(rope);
    for (const KResidual& r : plan) mixed |= !(r == plan.front());
  }
  EXPECT_TRUE(mixed);
  const auto path = dir / "m.vkq.safetensors";
  KCalibration measured = cal;  // with a measured sensitivity on one codec
  measured.policy.at(KRope::pre).head_kl = {0.5, 0.25, 0.125, 1.0};
  write_kcache_artifact(path, measured, "test");
  const auto back = read_kcache_artifact(path, f);
  EXPECT_EQ(back.policy.at(KRope::pre).head_kl, measured.policy.at(KRope::pre).head_kl);
  EXPECT_TRUE(back.policy.at(KRope::post).head_kl.empty());
  EXPECT_EQ(back.budget, 2.25);
  for (KRope r : {KRope::post, KRope::pre, KRope::ropemean}) {
    EXPECT_EQ(back.policy.at(r).loss, cal.policy.at(r).loss) << krope_name(r);
    EXPECT_EQ(back.policy.at(r).options, cal.policy.at(r).options);
    EXPECT_EQ(back.plans.at(r), cal.plans.at(r));
    for (std::uint32_t l = 0; l < cal.layers; ++l) {
      for (std::uint32_t b : {4u, 2u, 1u}) {
        ASSERT_FALSE(cal.mode(r)[l].arel_step(b).empty()) << b;
        EXPECT_EQ(back.mode(r)[l].arel_step(b), cal.mode(r)[l].arel_step(b)) << krope_name(r) << " layer " << l << " bits " << b;
      }
      ASSERT_FALSE(cal.mode(r)[l].enc_basis.empty());  // the query objective: a weighted pair
      EXPECT_EQ(back.mode(r)[l].enc_basis, cal.mode(r)[l].enc_basis) << krope_name(r) << " layer " << l;
    }
  }
  EXPECT_NE(std::find(cal.policy.at(KRope::pre).options.begin(), cal.policy.at(KRope::pre).options.end(),
                      KResidual{8, 4, true}),
            cal.policy.at(KRope::pre).options.end());
  // A cache folds each head's steps of its own width into the bases.
  for (const std::uint32_t b : {4u, 2u, 1u}) {
    const KCacheConfig k = uniform(KRope::pre, 16, b, 0, true);
    const KLayerParams p = key_layer_params(k, f.config(), &cal, 1);
    const KLayerCalib& L = cal.pre[1];
    const std::uint32_t hd = cal.head_dim, full = cal.rank, r = p.basis_cols;
    ASSERT_EQ(r, 16u);
    for (std::uint32_t h = 0; h < cal.kv_heads; ++h)
      for (std::uint32_t i = 0; i < hd; i += 7)
        for (std::uint32_t j = 0; j < r; j += 5) {
          const std::size_t at = (std::size_t(h) * hd + i) * r + j, src = (std::size_t(h) * hd + i) * full + j;
          const float s = L.arel_step(b)[std::size_t(h) * full + j];
          EXPECT_FLOAT_EQ(p.basis[at], L.basis[src] * s) << "bits " << b;
          EXPECT_FLOAT_EQ(p.enc_basis[at], L.enc_basis[src] / s) << "bits " << b;
        }
  }
  // Steps that are not > 0, or in some layers only, are refused naming the tensor.
  auto step_refused = [&](KCalibration bad, const std::string& what) {
    const auto p = dir / "steps.vkq.safetensors";
    write_kcache_artifact(p, bad, "test");
    try {
      (void)read_kcache_artifact(p, f);
      ADD_FAILURE() << "accepted; expected: " << what;
    } catch (const FormatError& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  KCalibration zero_step = cal;
  zero_step.pre[1].step[3] = 0.0f;
  step_refused(zero_step, "tensor layers.1.k_pre_resid_step: element 3 is not > 0");
  KCalibration half_steps = cal;
  half_steps.pre[1].step.clear();
  step_refused(half_steps, "tensor layers.1.k_pre_resid_step: absent while layer 0's is present");
  KCalibration half_enc = cal;
  half_enc.post[1].enc_basis.clear();
  step_refused(half_enc, "tensor layers.1.k_resid_enc_basis: absent while layer 0's is present");
  KCalibration no_step_tensors = cal;  // alpha-relative options in the table, no steps for the codec
  for (auto& l : no_step_tensors.pre) l.step.clear();
  step_refused(no_step_tensors, "modes.pre: alpha-relative 4-bit options, but the artifact has no resid_step tensors");
  KCalibration no_a1_steps = cal;
  for (auto& l : no_a1_steps.post) l.step_a1.clear();
  step_refused(no_a1_steps, "modes.post: alpha-relative 1-bit options, but the artifact has no resid_step_a1 tensors");
  KCalibration zero_a2 = cal;
  zero_a2.ropemean[0].step_a2[1] = -1.0f;
  step_refused(zero_a2, "tensor layers.0.k_rm_resid_step_a2: element 1 is not > 0");
  // The spec's refusals, by flag.
  auto refused = [&](const KCacheConfig& k, const KCalibration* c, const std::string& what) {
    expect_refused(f.config(), k, c, what);
  };
  refused(uniform(KRope::pre, 3, 8), &cal, "--residual-bits 8 needs a --residual-rank that is a multiple of 2");
  refused(uniform(KRope::pre, 6, 4), &cal, "--residual-bits 4 needs a --residual-rank that is a multiple of 4");
  refused(uniform(KRope::pre, 0, 8), &cal, "--residual-bits applies to --residual-rank r > 0");
  refused(budgeted(KRope::pre, 1.25), &cal, "--kv-budget 1.25 is below the 1-bit code alone");
  KCacheConfig both = budgeted(KRope::pre, 2.0);
  both.rank = 4;
  refused(both, &cal, "--kv-budget chooses every head's residual rank and bits");
  KCalibration no_policy = cal;
  no_policy.policy.clear();
  no_policy.plans.clear();
  refused(budgeted(KRope::pre, 2.0), &no_policy, "has no precision-policy table for --kcache-rope pre");
  KCalibration no_plan = cal;
  no_plan.plans.clear();
  refused(budgeted(KRope::pre, KCacheConfig::kBudgetArtifact), &no_plan, "holds no stored plan for --kcache-rope pre");
  KCacheConfig fp16;
  fp16.budget = 2.0;
  refused(fp16, &cal, "apply to --kcache 1bit");
  // Alpha-relative codes without the artifact's steps.
  KCalibration no_steps = cal;
  for (auto* m : {&no_steps.post, &no_steps.pre, &no_steps.ropemean})
    for (auto& l : *m) l.step.clear();
  refused(uniform(KRope::pre, 8, 4, 0, true), &no_steps,
          "--residual-bits a4: alpha-relative 4-bit residual codes need an artifact with their steps");
  no_steps.plans[KRope::pre] = {{8, 4, true}, {0, 16}, {0, 16}, {0, 16}};
  refused(budgeted(KRope::pre, KCacheConfig::kBudgetArtifact), &no_steps, "--kv-budget: alpha-relative 4-bit residual codes need");
  for (auto* m : {&no_steps.post, &no_steps.pre, &no_steps.ropemean})
    for (auto& l : *m) l.step_a2.clear();
  refused(uniform(KRope::post, 16, 2, 8, true), &no_steps,
          "--residual-bits a2: alpha-relative 2-bit residual codes need an artifact with their steps");
  refused(uniform(KRope::pre, 8, 1, 0, true), &cal, "--residual-bits a1 needs a --residual-rank that is a multiple of 16");
  refused(uniform(KRope::pre, 16, 3, 0, true), &cal, "--residual-bits a3: alpha-relative codes are 4, 2 or 1 bits");
  EXPECT_EQ(uniform(KRope::pre, 8, 4, 0, true).label(), "1bit learned pre r8 a4");
  EXPECT_EQ(uniform(KRope::post, 32, 1, 8, true).label(), "1bit learned post r32 a1 pop8");
  EXPECT_EQ(budgeted(KRope::pre, 1.75).label(), "1bit learned pre kv-budget 1.75");
  EXPECT_EQ(uniform(KRope::post, 8, 4, 8).label(), "1bit learned post r8 int4 pop8");

  // Hostile policy metadata: one error naming the key and the problem.
  const HostileMetadata meta(path, dir);
  auto hostile = [&](const std::string& from, const std::string& to, const std::string& what) {
    meta.expect(f, "kv_policy", from, to, what);
  };
  hostile("\"objective\":\"query\"", "\"objective\":\"both\"", "objective is not");
  hostile("[[0,16],", "[[0,5],", "options[0]: bits 5 is not 16, 8 or 4");
  hostile("[[0,16],", "[[33,16],", "options[0]: rank 33 exceeds the basis' 32 columns");
  hostile("[[0,16],", "[[8,8,\"alpha\"],", "options[0]: alpha-relative codes are 4, 2 or 1 bits, not 8");
  hostile("[[0,16],", "[[8,1,\"alpha\"],", "options[0]: rank 8 does not fit 1-bit codes");
  hostile("[[0,16],", "[[8,4,\"beta\"],", "options[0] is not a [rank, bits] pair");
  hostile("\"loss\":[", "\"loss\":[-1,", "modes.post.loss does not hold");
  hostile("\"budget\":2.25", "\"budget\":-2", "budget is not a number >= 0");
  hostile("\"post\":", "\"sideways\":", "modes.sideways is not a codec");
  hostile("\"head_kl\":[0.5,", "\"head_kl\":[", "modes.pre.head_kl does not hold 4 numbers");
  hostile("\"head_kl\":[0.5,", "\"head_kl\":[-0.5,", "modes.pre.head_kl[0] is not a finite number >= 0");
  hostile("\"head_kl\":[0.5,", "\"head_kI\":[0.5,", "modes.pre: unknown key \"head_kI\"");
  hostile("\"budget\":2.25", "\"budget\":2.25,\"sensitivity\":1", "unknown key \"sensitivity\"");
}

TEST_F(VulkanTest, ModelKvPolicyTransformCodeArtifactAndRefusals) {
  const auto dir = temp_dir("m");
  write_tiny_model(dir, policy_model());
  const auto f = ModelFile::open(dir);
  const auto& cal = policy_calibration(dev(), f);
  const std::uint32_t hd = cal.head_dim;
  ASSERT_EQ(cal.tc_policy.size(), 3u);
  ASSERT_EQ(cal.tc_plans.size(), 3u);
  for (const auto& [rope, plan] : cal.tc_plans) {
    EXPECT_LE(plan_bits(plan, hd), 2.25 + 1e-9) << krope_name(rope);
    EXPECT_GT(plan_bits(plan, hd), 2.25 - 0.5) << krope_name(rope);  // spent (the options are 1/hd·16 apart)
    for (const KResidual& r : plan) EXPECT_TRUE(r.tc);
  }
  // Bits: the record alone; the options grow in bits and start at the empty code.
  const auto& opts = cal.tc_policy.at(KRope::pre).options;
  EXPECT_EQ(opts.front(), tc_residual(0, 0, 0, 0));
  EXPECT_EQ(head_bits(tc_residual(8, 0, 16, 16), 32), 16.0 * (2 + 2 + 1) / 32);
  EXPECT_EQ(head_bits(tc_residual(0, 16, 0, 16), 32), 16.0 * (3 + 1) / 32);
  for (std::size_t i = 1; i < opts.size(); ++i) EXPECT_LE(head_bits(opts[i - 1], hd), head_bits(opts[i], hd));
  // Each table's losses fall from the empty code to the richest option.
  const KPolicyTable& t = cal.tc_policy.at(KRope::ropemean);
  for (std::size_t h = 0; h < std::size_t(t.layers) * t.kv_heads; ++h)
    EXPECT_LT(t.loss[h * t.options.size() + t.options.size() - 1], t.loss[h * t.options.size()]) << h;
  // Round trip.
  const auto path = dir / "tc.vkq.safetensors";
  write_kcache_artifact(path, cal, "test");
  const auto back = read_kcache_artifact(path, f);
  for (KRope r : {KRope::post, KRope::pre, KRope::ropemean}) {
    EXPECT_EQ(back.tc_policy.at(r).loss, cal.tc_policy.at(r).loss);
    EXPECT_EQ(back.tc_policy.at(r).options, cal.tc_policy.at(r).options);
    EXPECT_EQ(back.tc_plans.at(r), cal.tc_plans.at(r));
    for (std::uint32_t l = 0; l < cal.layers; ++l) {
      EXPECT_EQ(back.mode(r)[l].tc_enc, cal.mode(r)[l].tc_enc);
      EXPECT_EQ(back.mode(r)[l].tc_dec, cal.mode(r)[l].tc_dec);
      for (std::uint32_t b : {4u, 3u, 2u, 1u}) EXPECT_EQ(back.mode(r)[l].tc_step(b), cal.mode(r)[l].tc_step(b));
      EXPECT_EQ(back.mode(r)[l].tc_lv4, cal.mode(r)[l].tc_lv4);
      EXPECT_EQ(back.mode(r)[l].tc_lv3, cal.mode(r)[l].tc_lv3);
      EXPECT_EQ(cal.mode(r)[l].tc_lv3.size(), std::size_t(cal.kv_heads) * hd * 8);
      EXPECT_EQ(back.mode(r)[l].tc_lv2, cal.mode(r)[l].tc_lv2);
      EXPECT_EQ(cal.mode(r)[l].tc_lv4.size(), std::size_t(cal.kv_heads) * hd * 16);
    }
  }
  // A cache folds each column's step of its width into the pair, no rotation.
  {
    KCalibration planned = cal;
    planned.tc_plans[KRope::pre] = {tc_residual(4, 0, 8, 16), tc_residual(0, 0, 0, 0), tc_residual(0, 0, 0, 16), tc_residual(8, 0, 0, 0)};
    planned.tc_plans[KRope::pre][0] = tc_residual(4, 16, 8, 0);  // head 0: 4, 3 and 2 bits
    const KLayerParams p = key_layer_params(tc_budgeted(KRope::pre, KCacheConfig::kBudgetArtifact), f.config(), &planned, 0);
    const KLayerCalib& L = cal.pre[0];
    EXPECT_TRUE(p.transform);
    EXPECT_TRUE(p.rot.empty());
    ASSERT_EQ(p.basis_cols, 28u);
    for (std::uint32_t i = 0; i < hd; i += 5)
      for (std::uint32_t j : {0u, 3u, 4u, 11u, 19u, 20u, 27u}) {
        const std::uint32_t w = j < 4 ? 4 : j < 20 ? 3 : 2;
        const float st = L.tc_step(w)[j];
        EXPECT_FLOAT_EQ(p.basis[std::size_t(i) * 28 + j], L.tc_dec[std::size_t(i) * hd + j] * st) << i << " " << j;
        EXPECT_FLOAT_EQ(p.enc_basis[std::size_t(i) * 28 + j], L.tc_enc[std::size_t(i) * hd + j] / st) << i << " " << j;
      }
    // ... and carries each column's levels of its width (head 0, basis columns 28).
    ASSERT_EQ(p.levels.size(), std::size_t(cal.kv_heads) * 28 * kTcLevels);
    for (std::uint32_t j : {0u, 3u, 4u, 11u, 19u, 20u, 27u}) {
      const std::uint32_t w = j < 4 ? 4 : j < 20 ? 3 : 2;
      for (std::uint32_t u = 0; u < (1u << w); ++u)
        EXPECT_EQ(p.levels[std::size_t(j) * kTcLevels + u],
                  w == 1 ? (u ? -0.5f : 0.5f) : L.tc_levels(w)[std::size_t(j) * (1u << w) + u])
            << j << " " << u;
    }
  }
  // The spec's refusals, by flag.
  auto refused = [&](const KCacheConfig& k, const KCalibration* c, const std::string& what) {
    expect_refused(f.config(), k, c, what);
  };
  refused(tc_budgeted(KRope::pre, 0), &cal, "--kcache tc needs --kv-budget");
  KCacheConfig ranked = tc_budgeted(KRope::pre, 1.5);
  ranked.rank = 4;
  refused(ranked, &cal, "drop --residual-rank and --residual-bits");
  KCacheConfig pop = tc_budgeted(KRope::post, 1.5);
  pop.query_bits = 8;
  refused(pop, &cal, "--kscore and --kscore-bits do not apply");
  refused(tc_budgeted(KRope::pre, 1.5), nullptr, "--kcache tc needs --rotations FILE");
  KCalibration no_tc = cal;
  no_tc.tc_policy.clear();
  no_tc.tc_plans.clear();
  refused(tc_budgeted(KRope::pre, 1.5), &no_tc, "has no transform-code table for --kcache-rope pre");
  KCalibration no_tc_plan = cal;
  no_tc_plan.tc_plans.clear();
  refused(tc_budgeted(KRope::pre, KCacheConfig::kBudgetArtifact), &no_tc_plan, "holds no stored plan for --kcache-rope pre");
  KCalibration no_tensors = cal;
  for (auto& l : no_tensors.ropemean) l.tc_enc.clear();
  refused(tc_budgeted(KRope::ropemean, 1.5), &no_tensors, "has no transform code for --kcache-rope post-ropemean");
  EXPECT_EQ(tc_budgeted(KRope::ropemean, 1.75).label(), "tc post-ropemean kv-budget 1.75");
  // Hostile transform-code metadata, and tensors in some layers only.
  const HostileMetadata meta(path, dir);
  auto hostile = [&](const std::string& from, const std::string& to, const std::string& what) {
    meta.expect(f, "kv_policy_tc", from, to, what);
  };
  // Each of a layer's nine transform tensors goes with tc_enc.
  meta.expect_without(f, "layers.0.k_pre_tc_dec", "tensor layers.0.k_pre_tc_dec: absent while tc_enc is present");
  meta.expect_without(f, "layers.0.k_pre_tc_lv4", "tensor layers.0.k_pre_tc_lv4: absent while tc_enc is present");
  meta.expect_without(f, "layers.1.k_tc_lv2", "tensor layers.1.k_tc_lv2: absent while layer 0's is present");
  meta.expect_without(f, "layers.0.k_rm_tc_lv3", "tensor layers.0.k_rm_tc_lv3: absent while tc_enc is present");
  meta.expect_without(f, "layers.1.k_pre_tc_step3", "tensor layers.1.k_pre_tc_step3: absent while layer 0's is present");
  // A tensor no reader takes (a 1-bit level table this version does not
  // have, a layer past the model's, an unknown name): refused by name.
  meta.expect_with_extra(f, "layers.0.k_tc_lv1");
  meta.expect_with_extra(f, "layers.9.k_rot");
  meta.expect_with_extra(f, "extra");
  meta.expect_without(f, "layers.1.k_rm_tc_step1", "tensor layers.1.k_rm_tc_step1: absent while layer 0's is present");
  meta.expect_without(f, "layers.0.k_tc_enc", "tensor layers.0.k_tc_dec: present while tc_enc is absent");
  hostile("[[0,0,0,0,\"tc\"],", "[[0,0,0,0,\"tk\"],", "options[0] is not an [n4, n3, n2, n1, \"tc\"] quintuple");
  hostile("[[0,0,0,0,\"tc\"],", "[[0,0,0,\"tc\"],", "options[0] is not an [n4, n3, n2, n1, \"tc\"] quintuple");
  hostile("[[0,0,0,0,\"tc\"],", "[[0,0,0,0,\"tc\",0],", "options[0] is not an [n4, n3, n2, n1, \"tc\"] quintuple");
  hostile("[[0,0,0,0,\"tc\"],", "[[2,0,0,0,\"tc\"],", "options[0]: 2/0/0/0 is not a transform code of head_dim 32");
  hostile("[[0,0,0,0,\"tc\"],", "[[0,8,0,0,\"tc\"],", "options[0]: 0/8/0/0 is not a transform code of head_dim 32");
  hostile("[[0,0,0,0,\"tc\"],", "[[32,0,0,16,\"tc\"],", "options[0]: 32/0/0/16 is not a transform code");
  // Counts whose 64-bit sum and 32-bit truncations both wrap to a valid code (16 3-bit codes).
  hostile("[[0,0,0,0,\"tc\"],", "[[0,18446744069414584336,0,4294967296,\"tc\"],",
          "options[0]: 0/18446744069414584336/0/4294967296 is not a transform code");
  KCalibration zero_tc = cal;
  zero_tc.pre[1].tc_step4[3] = 0.0f;
  const auto pz = dir / "zero.vkq.safetensors";
  write_kcache_artifact(pz, zero_tc, "test");
  try {
    (void)read_kcache_artifact(pz, f);
    ADD_FAILURE() << "accepted a transform step of 0";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("tensor layers.1.k_pre_tc_step4: element 3 is not > 0"), std::string::npos) << e.what();
  }
  // Levels out of order: a column's two middle 4-bit levels swapped (NaN
  // levels the artifact writer and reader refuse for every tensor).
  {
    KCalibration bad = cal;
    float* col = bad.ropemean[1].tc_lv4.data() + 16 * 5;  // column 5 of head 0
    std::swap(col[0], col[15]);                           // bits 0 (value 0) and 15 (value -1)
    const auto pb = dir / "levels.vkq.safetensors";
    write_kcache_artifact(pb, bad, "test");
    try {
      (void)read_kcache_artifact(pb, f);
      ADD_FAILURE() << "accepted levels out of order";
    } catch (const FormatError& e) {
      EXPECT_NE(std::string(e.what()).find("tensor layers.1.k_rm_tc_lv4: column 5's levels are not ascending"),
                std::string::npos)
          << e.what();
    }
  }
  KCalibration half_tc = cal;
  half_tc.pre[1].tc_enc.clear();
  half_tc.pre[1].tc_dec.clear();
  const auto p = dir / "half.vkq.safetensors";
  write_kcache_artifact(p, half_tc, "test");
  try {
    (void)read_kcache_artifact(p, f);
    ADD_FAILURE() << "accepted an artifact with transform codes in some layers only";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("tensor layers.1.k_pre_tc_enc: absent while layer 0's is present"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace vkq::test
