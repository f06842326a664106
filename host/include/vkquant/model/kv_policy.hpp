// The per-(layer, KV head) precision policy of the 1-bit K-cache
// (docs/design.md §2.8): each head's keys are the 1-bit code plus a residual
// of its own rank and coefficient bits (vkquant/kresidual.hpp), chosen to
// minimise a measured loss under an average bit budget.
//
// The loss of a head and an option is measured on the calibration's held-out
// keys: the reconstruction error e = k − k̂ of the codec with that residual
// (coefficients quantized as the device stores them), weighted
//   query: E[(q·e)²] / hd, q over the calibration queries of the head's GQA
//          group (the attention logits' error variance before softmax);
//   key:   E[‖e‖²] (no queries: every direction counts the same).
// The policy is greedy on marginal loss per bit over each head's lower convex
// hull of (bits, loss): the optimum of the continuous relaxation, rounded down
// to whole options at the budget.
//
// Measured sensitivity (optional, calibrate --kv-sensitivity-chunks): the KL
// of the model's output to fp16 keys when only that head is coded (1-bit, no
// residual; every other head exact), on calibration text. It rescales the
// head's loss curve so that its rank-0 point is that KL: the predicted losses
// keep each head's shape over the options, the measurement sets how much the
// head matters to the output (softmax sharpness, what later layers make of it).
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <Eigen/Dense>

#include "vkquant/error.hpp"
#include "vkquant/kresidual.hpp"
#include "vkquant/rotation/metrics.hpp"

namespace vkq {

// null: the query objective's tables dealt to the (layer, head)s in a seeded
// random order, the control that shows what measuring each head is worth.
enum class KPolicyObjective { query, key, null };
const char* kpolicy_objective_name(KPolicyObjective o);  // "query", "key", "null"

// The options a head may take at head_dim hd with a basis of `basis_rank`
// columns: rank 0, then ranks 1, 2, 4, ... up to min(hd, basis_rank) (and
// hd itself) at 4, 8 and 16 bits where the layout allows (kresidual.hpp),
// and with `alpha_relative` the alpha-relative codes where the layout allows
// them: 4-bit at those ranks and their midpoints (12, 24, 48, ...), 2-bit and
// 1-bit likewise from ranks 8 and 16 (more coefficients for the same bits:
// what a residual spread over many directions needs); in increasing bits.
std::vector<KResidual> policy_options(std::uint32_t hd, std::uint32_t basis_rank, bool alpha_relative = false);

// The alpha-relative step of each column of u (hd, R; orthonormal columns)
// for `bits`-bit codes (4, 2 or 1) and keys y (rows, rotated and centered):
// the uniform step, in units of each key's fp16 alpha, that minimises the
// squared error of c_j / alpha (c = uᵀ(y − alpha·s)) under the midrise code
// of kresidual.hpp, searched over 0.05 .. 4 standard deviations of c_j /
// alpha (at most 8192 rows used).
// u: the encoder's columns (c = uᵀ(y − alpha·s)).
std::vector<double> arel_steps(const rot::RowMat& y, const Eigen::MatrixXf& u, std::uint32_t bits = 4);

// The query-weighted residual bases of keys y (rows, rotated and centered)
// under the weight W (hd, hd; the query objective's R Σ_q Rᵀ / hd): with
// e = y − alpha·s, the leading `rank` eigenvectors V of W^½ E[eeᵀ] W^½
// (descending) give the encoder A = W^½ V and the decoder B = W^-½ V (AᵀB = I):
// ê = B Aᵀ e is the rank-r reconstruction of least E[(e − ê)ᵀ W (e − ê)].
// W is regularized by 1e-3 of its mean eigenvalue (B stays bounded where the
// queries have no energy); a W of no energy (trace 0) counts as the identity.
struct ResidualPair {
  Eigen::MatrixXf enc, dec;  // (hd, rank) each
};
ResidualPair query_weighted_basis(const rot::RowMat& y, const Eigen::MatrixXd& weight, std::uint32_t rank);

// The one of a {4, 2, 1}-bit triple that `bits` names; throws vkq::Error
// ("<what> are 4, 2 or 1 bits, not <bits>") otherwise.
template <class T>
T& by_width(std::uint32_t bits, T& b4, T& b2, T& b1, const char* what) {
  if (bits == 4) return b4;
  if (bits == 2) return b2;
  if (bits == 1) return b1;
  throw Error(std::string(what) + " are 4, 2 or 1 bits, not " + std::to_string(bits));
}
// The same for the transform code's widths 4, 3, 2 and 1.
template <typename T>
T& by_tc_width(std::uint32_t bits, T& b4, T& b3, T& b2, T& b1, const char* what) {
  if (bits == 3) return b3;
  if (bits == 4 || bits == 2 || bits == 1) return by_width(bits, b4, b2, b1, what);
  throw Error(std::string(what) + " are 4, 3, 2 or 1 bits, not " + std::to_string(bits));
}

// The alpha-relative steps of each code width, one per basis column (empty:
// that width not calibrated).
struct ArelStepSet {
  std::vector<double> a4, a2, a1;
  // The steps of `bits`-bit codes (4, 2 or 1; throws vkq::Error otherwise).
  const std::vector<double>& of(std::uint32_t bits) const;
};

// Bits per key coordinate of a head with residual r: the 1-bit code
// (1 + 16/hd for sign bits and alpha) plus the record (KResidualLayout); a
// transform-coded head's record alone.
double head_bits(KResidual r, std::uint32_t hd);

// The transform code's options at head_dim hd (docs/design.md §2.9): every
// (n4, n3, n2, n1) with n4 % 4g, n3 % 16g, n2 % 8g, n1 % 16g == 0 (g =
// max(1, hd / 64)) and n4 + n3 + n2 + n1 <= hd, the empty code (the mean
// alone) first; in increasing bits.
std::vector<KResidual> tc_options(std::uint32_t hd);

// One head's transform code, fitted on training keys and measured on held-out
// ones (rows: centered keys in the codec's space; weight W the query
// objective's Σ_q / hd there, or the identity). With W' = W + 1e-3·mean
// eigenvalue, V the eigenvectors of W'^½ E[yyᵀ] W'^½ (descending), the
// encoder is A = W'^½ V and the decoder B = W'^-½ V (AᵀB = I, BᵀW'B = I): c =
// Aᵀy, ŷ = B ĉ, and the weighted error (y − ŷ)ᵀ W' (y − ŷ) is Σ_j (c_j − ĉ_j)²,
// so an option's loss is the sum of its columns'. steps[w] (w: 4, 3, 2, 1
// bits) is each column's absolute midrise step of least squared error on the
// training keys (0.05 .. 4 standard deviations); col_loss[j][w] the held-out
// mean of (c_j − ĉ_j)² at width 4, 3, 2, 1 and 0 (ĉ = 0).
struct TcFit {
  Eigen::MatrixXf enc, dec;                    // (hd, hd)
  std::vector<double> step4, step3, step2, step1;  // (hd) each
  // Each column's levels at 4, 3 and 2 bits in units of its step, indexed by
  // the code's bits (hd·16, hd·8 and hd·4; kresidual.hpp): Lloyd's on the
  // training coefficients, started from the uniform levels.
  std::vector<float> lv4, lv3, lv2;
  std::vector<std::array<double, 5>> col_loss;  // (hd): widths 4, 3, 2, 1, 0
  // Loss of option r (tc_options): the sum of its columns' held-out losses.
  double loss(KResidual r) const;
  const std::vector<double>& step(std::uint32_t bits) const;
};
TcFit tc_fit(const rot::RowMat& train, const rot::RowMat& heldout, const Eigen::MatrixXd& weight);
// Mean of head_bits over a plan's heads.
double plan_bits(std::span<const KResidual> heads, std::uint32_t hd);

// One codec's (rope mode's) losses: loss[(layer·kv_heads + head)·options + o].
struct KPolicyTable {
  std::uint32_t layers = 0, kv_heads = 0, head_dim = 0;
  KPolicyObjective objective = KPolicyObjective::query;
  std::vector<KResidual> options;
  std::vector<double> loss;
  // Measured KL per (layer, head) with only that head coded; empty: not
  // measured (every head's weight is 1).
  std::vector<double> head_kl;
  double at(std::uint32_t layer, std::uint32_t head, std::size_t option) const {
    return loss[(std::size_t(layer) * kv_heads + head) * options.size() + option];
  }
  // What the policy multiplies head h's losses by: head_kl[h] over its
  // rank-0 loss (1 when not measured, 0 when the code alone loses nothing).
  double weight(std::size_t h) const;
};

struct KPolicyPlan {
  std::vector<KResidual> heads;  // (layers, kv_heads)
  double bits = 0;               // mean bits per key coordinate
  double loss = 0;               // sum of the chosen options' losses (weighted: KPolicyTable::weight)
};

// The plan of least summed loss whose mean bits per key coordinate stay
// within `budget`. Throws vkq::Error naming --kv-budget when the budget is
// below the table's cheapest option (the 1-bit code alone, 1 + 16/hd; a
// transform code's empty code, 0).
KPolicyPlan solve_policy(const KPolicyTable& t, double budget);

// Loss of every option for one head: y are the head's rotated, centered keys
// (rows), u the residual basis (hd, >= every option's rank), weight the
// quadratic form in the rotated space (R Σ_q Rᵀ / hd for the query objective,
// the identity for the key objective).
// u is the decoder's basis, enc the encoder's (nullptr: u). Alpha-relative
// b-bit options code along the encoder's columns divided by steps.of(b) (R
// values; needed when an option is arel) and decode along the decoder's times them.
std::vector<double> head_option_losses(const rot::RowMat& y, const Eigen::MatrixXf& u, const Eigen::MatrixXd& weight,
                                       std::span<const KResidual> options, const ArelStepSet& steps = {},
                                       const Eigen::MatrixXf* enc = nullptr);

}  // namespace vkq
