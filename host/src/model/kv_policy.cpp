#include "vkquant/model/kv_policy.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "vkquant/error.hpp"
#include "vkquant/half.hpp"

namespace vkq {

const char* kpolicy_objective_name(KPolicyObjective o) {
  return o == KPolicyObjective::query ? "query" : o == KPolicyObjective::key ? "key" : "null";
}

std::vector<KResidual> policy_options(std::uint32_t hd, std::uint32_t basis_rank, bool alpha_relative) {
  std::vector<KResidual> out{{0, 16}};
  std::vector<std::uint32_t> ranks;
  for (std::uint32_t r = 1; r < hd && r <= basis_rank; r *= 2) ranks.push_back(r);
  if (basis_rank >= hd) ranks.push_back(hd);
  for (std::uint32_t r : ranks)
    for (std::uint32_t b : {4u, 8u, 16u}) {
      if ((b == 4 && r % 4) || (b == 8 && r % 2)) continue;
      out.push_back({r, b});
    }
  if (alpha_relative)
    for (std::uint32_t b : {4u, 2u, 1u}) {
      const std::uint32_t per = 16 / b;  // codes per half: the rank's granularity
      for (std::uint32_t r : ranks) {
        if (r % per) continue;
        out.push_back({r, b, true});
        const std::uint32_t mid = r + r / 2;
        if (r >= 8 && mid % per == 0 && mid < std::min(hd, basis_rank + 1)) out.push_back({mid, b, true});
      }
    }
  std::stable_sort(out.begin(), out.end(),
                   [&](const KResidual& a, const KResidual& b) { return head_bits(a, hd) < head_bits(b, hd); });
  return out;
}

const std::vector<double>& ArelStepSet::of(std::uint32_t bits) const {
  return by_width(bits, a4, a2, a1, "alpha-relative codes");
}

double head_bits(KResidual r, std::uint32_t hd) {
  return (r.tc ? 0.0 : 1.0 + 16.0 / hd) + 16.0 * KResidualLayout::record_halves(r) / hd;
}

std::vector<KResidual> tc_options(std::uint32_t hd) {
  // Steps of whole halves, coarser past head_dim 64 so that the table keeps
  // the option count of head_dim 64 (295; the artifact's reader takes <= 4096).
  const std::uint32_t g = std::max(1u, hd / 64);
  std::vector<KResidual> out;
  for (std::uint32_t n4 = 0; n4 <= hd; n4 += 4 * g)
    for (std::uint32_t n3 = 0; n4 + n3 <= hd; n3 += 16 * g)
      for (std::uint32_t n2 = 0; n4 + n3 + n2 <= hd; n2 += 8 * g)
        for (std::uint32_t n1 = 0; n4 + n3 + n2 + n1 <= hd; n1 += 16 * g) out.push_back(tc_residual(n4, n3, n2, n1));
  std::stable_sort(out.begin(), out.end(),
                   [&](const KResidual& a, const KResidual& b) { return head_bits(a, hd) < head_bits(b, hd); });
  return out;
}

const std::vector<double>& TcFit::step(std::uint32_t bits) const {
  return by_tc_width(bits, step4, step3, step2, step1, "transform codes");
}

double TcFit::loss(KResidual r) const {
  double s = 0;
  for (std::size_t j = 0; j < col_loss.size(); ++j) {
    const std::uint32_t w = j < r.rank ? tc_slot(r, std::uint32_t(j)).width : 0;
    s += col_loss[j][w == 0 ? 4 : 4 - w];
  }
  return s;
}

double plan_bits(std::span<const KResidual> heads, std::uint32_t hd) {
  double s = 0;
  for (const KResidual& r : heads) s += head_bits(r, hd);
  return heads.empty() ? 0.0 : s / double(heads.size());
}

double KPolicyTable::weight(std::size_t h) const {
  if (head_kl.empty()) return 1.0;
  const std::size_t n_opt = options.size();
  for (std::size_t o = 0; o < n_opt; ++o)
    if (options[o].rank == 0) {
      const double l0 = loss.at(h * n_opt + o);
      return l0 > 0 ? head_kl.at(h) / l0 : 0.0;
    }
  throw Error("precision policy: a measured sensitivity needs the rank-0 option");
}

KPolicyPlan solve_policy(const KPolicyTable& t, double budget) {
  const std::uint32_t hd = t.head_dim;
  const std::size_t heads = std::size_t(t.layers) * t.kv_heads, n_opt = t.options.size();
  double floor_bits = std::numeric_limits<double>::infinity();
  for (const KResidual& r : t.options) floor_bits = std::min(floor_bits, head_bits(r, hd));
  if (t.options.empty()) floor_bits = 1.0 + 16.0 / hd;
  if (!(budget >= floor_bits - 1e-12)) {
    char b[160];
    std::snprintf(b, sizeof b, "--kv-budget %.4g is below the %s (%.4g bits per key coordinate at head_dim %u)", budget,
                  t.options.empty() || !t.options[0].tc ? "1-bit code alone" : "cheapest transform code", floor_bits, hd);
    throw Error(b);
  }
  if (n_opt == 0 || t.loss.size() != heads * n_opt) throw Error("precision policy: the loss table does not match its options");
  if (!t.head_kl.empty() && t.head_kl.size() != heads)
    throw Error("precision policy: the measured sensitivities do not match the heads");
  // The losses the walk compares: each head's, times its weight.
  std::vector<double> weighted(t.loss);
  for (std::size_t h = 0; h < heads; ++h) {
    const double w = t.weight(h);
    for (std::size_t o = 0; o < n_opt; ++o) weighted[h * n_opt + o] *= w;
  }
  // Each head's lower convex hull of (bits, loss), from its cheapest option:
  // the options a greedy walk on loss per bit can stop at.
  std::vector<std::vector<std::size_t>> hull(heads);
  for (std::size_t h = 0; h < heads; ++h) {
    std::vector<std::size_t> order(n_opt);
    for (std::size_t o = 0; o < n_opt; ++o) order[o] = o;
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
      return head_bits(t.options[a], hd) < head_bits(t.options[b], hd);
    });
    auto& H = hull[h];
    const double* loss = weighted.data() + h * n_opt;
    for (std::size_t o : order) {
      const double x = head_bits(t.options[o], hd), y = loss[o];
      if (!H.empty() && y >= loss[H.back()]) continue;  // costs more, gains nothing
      if (!H.empty() && x <= head_bits(t.options[H.back()], hd)) {
        H.back() = o;  // same cost, lower loss
        continue;
      }
      while (H.size() >= 2) {
        const double x1 = head_bits(t.options[H[H.size() - 2]], hd), y1 = loss[H[H.size() - 2]];
        const double x2 = head_bits(t.options[H.back()], hd), y2 = loss[H.back()];
        // Drop the middle point when it lies on or above the chord.
        if ((y2 - y1) * (x - x1) >= (y - y1) * (x2 - x1)) H.pop_back();
        else break;
      }
      H.push_back(o);
    }
  }
  std::vector<std::size_t> at(heads, 0);  // position on each head's hull
  double spent = 0;
  for (std::size_t h = 0; h < heads; ++h) spent += head_bits(t.options[hull[h][0]], hd);
  const double limit = budget * double(heads) + 1e-9;
  for (;;) {
    std::size_t best = heads;
    double best_gain = 0;
    for (std::size_t h = 0; h < heads; ++h) {
      if (at[h] + 1 >= hull[h].size()) continue;
      const std::size_t a = hull[h][at[h]], b = hull[h][at[h] + 1];
      const double db = head_bits(t.options[b], hd) - head_bits(t.options[a], hd);
      if (spent + db > limit) continue;
      const double gain = (weighted[h * n_opt + a] - weighted[h * n_opt + b]) / db;
      if (gain > best_gain) best_gain = gain, best = h;
    }
    if (best == heads) break;
    const std::size_t a = hull[best][at[best]], b = hull[best][at[best] + 1];
    spent += head_bits(t.options[b], hd) - head_bits(t.options[a], hd);
    ++at[best];
  }
  KPolicyPlan p;
  p.heads.reserve(heads);
  for (std::size_t h = 0; h < heads; ++h) {
    const std::size_t o = hull[h][at[h]];
    p.heads.push_back(t.options[o]);
    p.loss += weighted[h * n_opt + o];
  }
  p.bits = plan_bits(p.heads, hd);
  return p;
}

namespace {

// Row `row` of y as the 1-bit code sees it: its fp16 alpha (the device's,
// signs v >= 0) and, in w, the residual v − alpha·s.
double code_residual(const rot::RowMat& y, Eigen::Index row, Eigen::VectorXd& w) {
  w = y.row(row).transpose().cast<double>();
  const double alpha = double(from_half(to_half(float(w.cwiseAbs().sum() / double(w.size())))));
  for (Eigen::Index i = 0; i < w.size(); ++i) w[i] -= w[i] >= 0 ? alpha : -alpha;
  return alpha;
}

// The weighted principal pair of a covariance: with W' = W + 1e-3 of its mean
// eigenvalue (W the identity when it has no energy), V the eigenvectors of
// W'^½ cov W'^½ in descending order, enc = W'^½ V and dec = W'^-½ V (full rank).
struct WeightedPair {
  Eigen::MatrixXd enc, dec;
};
WeightedPair weighted_pair(const Eigen::MatrixXd& cov, const Eigen::MatrixXd& weight) {
  const Eigen::Index d = cov.rows();
  // A weight without energy (no queries) leaves the principal directions.
  const Eigen::MatrixXd sym = (weight + weight.transpose()) / 2;
  const bool empty = !(sym.trace() > 0) || !sym.allFinite();
  const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> ws(empty ? Eigen::MatrixXd::Identity(d, d) : sym);
  const double lam = 1e-3 * ws.eigenvalues().cwiseMax(0.0).mean();
  const Eigen::VectorXd wv = ws.eigenvalues().cwiseMax(0.0).array() + lam;
  const Eigen::MatrixXd& q = ws.eigenvectors();
  const Eigen::MatrixXd half = q * wv.cwiseSqrt().asDiagonal() * q.transpose();
  const Eigen::MatrixXd inv_half = q * wv.cwiseSqrt().cwiseInverse().asDiagonal() * q.transpose();
  const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> fs(half * cov * half);
  const Eigen::MatrixXd v = fs.eigenvectors().rowwise().reverse();  // descending
  return {half * v, inv_half * v};
}

// The midrise 4-bit value of x at step s (kresidual.hpp's alpha-relative code).
double midrise(double x, double s, std::uint32_t bits) {
  const double lo = -double(1 << (bits - 1)), hi = double((1 << (bits - 1)) - 1);
  return (std::clamp(std::floor(x / s), lo, hi) + 0.5) * s;
}

// The midrise step of least squared error for the values of `col` at
// `bits` bits, searched over 0.05 .. 4 standard deviations (1 when col is all zero).
double midrise_step(const Eigen::Ref<const Eigen::VectorXd>& col, std::uint32_t bits) {
  const double sd = std::sqrt(col.squaredNorm() / double(std::max<Eigen::Index>(col.size(), 1)));
  double step = 1.0, best = std::numeric_limits<double>::infinity();
  if (!(sd > 0)) return step;
  for (int g = 1; g <= 80; ++g) {
    const double s = sd * 0.05 * g;
    double e = 0;
    for (Eigen::Index i = 0; i < col.size(); ++i) {
      const double r = col[i] - midrise(col[i], s, bits);
      e += r * r;
    }
    if (e < best) best = e, step = s;
  }
  return step;
}

// The level of x among `levels` (ascending): the nearest, ties to the larger.
std::size_t nearest_level(const std::vector<double>& levels, double x) {
  const auto it = std::lower_bound(levels.begin(), levels.end(), x);
  if (it == levels.begin()) return 0;
  if (it == levels.end()) return levels.size() - 1;
  const std::size_t i = std::size_t(it - levels.begin());
  return x - levels[i - 1] < levels[i] - x ? i - 1 : i;
}

// Lloyd's levels (ascending) of `bits`-bit codes for the values of col at
// step s, from the uniform ones; the uniform ones when an iteration would
// not keep them strictly ascending.
std::vector<double> lloyd_levels(const Eigen::Ref<const Eigen::VectorXd>& col, double s, std::uint32_t bits) {
  const std::size_t n = std::size_t(1) << bits;
  std::vector<double> lv(n);
  for (std::size_t i = 0; i < n; ++i) lv[i] = (double(i) - double(n / 2) + 0.5) * s;
  const std::vector<double> uniform = lv;
  for (int it = 0; it < 40; ++it) {
    std::vector<double> sum(n, 0.0), cnt(n, 0.0);
    for (Eigen::Index i = 0; i < col.size(); ++i) {
      const std::size_t c = nearest_level(lv, col[i]);
      sum[c] += col[i];
      cnt[c] += 1;
    }
    for (std::size_t c = 0; c < n; ++c)
      if (cnt[c] > 0) lv[c] = sum[c] / cnt[c];
  }
  for (std::size_t c = 1; c < n; ++c)
    if (!(float(lv[c] / s) > float(lv[c - 1] / s))) return uniform;
  return lv;
}

}  // namespace

std::vector<double> arel_steps(const rot::RowMat& y, const Eigen::MatrixXf& u, std::uint32_t bits) {
  const Eigen::Index d = y.cols(), big = u.cols();
  const Eigen::Index rows = std::min<Eigen::Index>(y.rows(), 8192);
  Eigen::MatrixXd c(rows, big);  // c_j / alpha per row
  Eigen::Index used = 0;
  const Eigen::MatrixXd ud = u.cast<double>();
  Eigen::VectorXd w(d);
  for (Eigen::Index row = 0; row < rows; ++row) {
    const double alpha = code_residual(y, row, w);
    if (!(alpha > 0)) continue;
    c.row(used++) = (ud.transpose() * w).transpose() / alpha;
  }
  std::vector<double> steps(std::size_t(big), 1.0);
  for (Eigen::Index j = 0; j < big && used > 0; ++j) steps[std::size_t(j)] = midrise_step(c.col(j).head(used), bits);
  return steps;
}

ResidualPair query_weighted_basis(const rot::RowMat& y, const Eigen::MatrixXd& weight, std::uint32_t rank) {
  const Eigen::Index d = y.cols();
  if (Eigen::Index(rank) > d || weight.rows() != d || weight.cols() != d)
    throw Error("query_weighted_basis: rank or weight does not fit head_dim " + std::to_string(d));
  Eigen::MatrixXd cov = Eigen::MatrixXd::Zero(d, d);
  Eigen::VectorXd w(d);
  for (Eigen::Index row = 0; row < y.rows(); ++row) {
    (void)code_residual(y, row, w);
    cov.noalias() += w * w.transpose();
  }
  cov /= double(std::max<Eigen::Index>(y.rows(), 1));
  const WeightedPair p = weighted_pair(cov, weight);
  return {p.enc.leftCols(Eigen::Index(rank)).cast<float>(), p.dec.leftCols(Eigen::Index(rank)).cast<float>()};
}

std::vector<double> head_option_losses(const rot::RowMat& y, const Eigen::MatrixXf& u, const Eigen::MatrixXd& weight,
                                       std::span<const KResidual> options, const ArelStepSet& steps,
                                       const Eigen::MatrixXf* enc) {
  if (enc && (enc->rows() != u.rows() || enc->cols() != u.cols()))
    throw Error("precision policy: the encoder's basis differs in shape from the decoder's");
  const Eigen::Index d = y.cols(), big = u.cols();
  for (const KResidual& o : options) {
    if (Eigen::Index(o.rank) > big)
      throw Error("precision policy: option rank " + std::to_string(o.rank) + " exceeds the basis' " + std::to_string(big) +
                  " columns");
    if (o.arel && steps.of(o.bits).size() < o.rank)
      throw Error("precision policy: alpha-relative " + std::to_string(o.bits) + "-bit options need the basis' steps");
  }
  const Eigen::MatrixXd ud = u.cast<double>(), ue = enc ? enc->cast<double>() : ud;
  // Each code width's bases: the encoder's columns over its steps, the decoder's times them.
  struct Scaled {
    Eigen::MatrixXd dec, enc;
    Eigen::VectorXd c;
  };
  Scaled scaled[3];  // 4, 2, 1 bits
  const std::uint32_t widths[3] = {4, 2, 1};
  for (int i = 0; i < 3; ++i) {
    const std::vector<double>& st = steps.of(widths[i]);
    if (st.empty()) continue;
    scaled[i].dec = ud;
    scaled[i].enc = ue;
    for (Eigen::Index j = 0; j < big && std::size_t(j) < st.size(); ++j) {
      scaled[i].dec.col(j) *= st[std::size_t(j)];
      scaled[i].enc.col(j) /= st[std::size_t(j)];
    }
  }
  auto width = [](std::uint32_t bits) { return bits == 4 ? 0 : bits == 2 ? 1 : 2; };
  std::vector<double> loss(options.size(), 0.0);
  Eigen::VectorXd w(d), e(d);
  std::vector<half_bits> record(std::size_t(d) + 1);
  for (Eigen::Index row = 0; row < y.rows(); ++row) {
    const double alpha = code_residual(y, row, w);
    const Eigen::VectorXd c = ue.transpose() * w;
    for (Scaled& sc : scaled)
      if (sc.enc.size()) sc.c = sc.enc.transpose() * w;
    for (std::size_t o = 0; o < options.size(); ++o) {
      const KResidual r = options[o];
      e = w;
      if (r.rank > 0) {
        const std::uint32_t halves = KResidualLayout::record_halves(r);
        const Scaled* sc = r.arel ? &scaled[width(r.bits)] : nullptr;
        const Eigen::MatrixXd& basis = sc ? sc->dec : ud;
        pack_residual(r, std::span<const double>((sc ? sc->c : c).data(), r.rank), std::span<half_bits>(record.data(), halves),
                      alpha);
        const std::vector<double> ch = unpack_residual(r, std::span<const half_bits>(record.data(), halves), alpha);
        for (std::uint32_t j = 0; j < r.rank; ++j) e -= ch[j] * basis.col(Eigen::Index(j));
      }
      loss[o] += e.dot(weight * e);
    }
  }
  for (double& x : loss) x /= double(std::max<Eigen::Index>(y.rows(), 1));
  return loss;
}

TcFit tc_fit(const rot::RowMat& train, const rot::RowMat& heldout, const Eigen::MatrixXd& weight) {
  const Eigen::Index d = train.cols();
  if (heldout.cols() != d || weight.rows() != d || weight.cols() != d)
    throw Error("tc_fit: keys and weight differ in head_dim");
  if (train.rows() == 0 || heldout.rows() == 0) throw Error("tc_fit: no training or held-out keys");
  const Eigen::MatrixXd yt = train.cast<double>(), yh = heldout.cast<double>();
  const WeightedPair p = weighted_pair(yt.transpose() * yt / double(yt.rows()), weight);
  TcFit f;
  f.enc = p.enc.cast<float>();
  f.dec = p.dec.cast<float>();
  // Coefficients as the device computes them: from the fp32 encoder.
  const Eigen::MatrixXd ef = f.enc.cast<double>();
  const Eigen::Index rows = std::min<Eigen::Index>(yt.rows(), 8192);
  const Eigen::MatrixXd ct = yt.topRows(rows) * ef, ch = yh * ef;
  f.col_loss.resize(std::size_t(d));
  const std::uint32_t widths[4] = {4, 3, 2, 1};
  for (std::vector<double>* st : {&f.step4, &f.step3, &f.step2, &f.step1}) st->assign(std::size_t(d), 1.0);
  f.lv4.assign(std::size_t(d) * 16, 0.0f);
  f.lv3.assign(std::size_t(d) * 8, 0.0f);
  f.lv2.assign(std::size_t(d) * 4, 0.0f);
  for (Eigen::Index j = 0; j < d; ++j) {
    for (int w = 0; w < 4; ++w) {
      std::vector<double>& st = by_tc_width(widths[w], f.step4, f.step3, f.step2, f.step1, "transform codes");
      st[std::size_t(j)] = midrise_step(ct.col(j), widths[w]);
      // The device folds the step into fp32 bases: measure with the step it
      // uses, and the fp32 levels it reads (in steps).
      const double s = double(float(st[std::size_t(j)]));
      std::vector<double> lv;
      if (widths[w] > 1) {
        lv = lloyd_levels(ct.col(j), s, widths[w]);
        const std::size_t n = lv.size();
        std::vector<float>& out = by_tc_width(widths[w], f.lv4, f.lv3, f.lv2, f.lv2, "transform codes");
        for (std::size_t i = 0; i < n; ++i) {
          const float x = float(lv[i] / s);
          out[std::size_t(j) * n + tc_code_bits(int(i) - int(n / 2), widths[w])] = x;  // level i: code value i - n/2
          lv[i] = double(x) * s;
        }
      }
      double e = 0;
      for (Eigen::Index i = 0; i < ch.rows(); ++i) {
        const double r = ch(i, j) - (lv.empty() ? midrise(ch(i, j), s, widths[w]) : lv[nearest_level(lv, ch(i, j))]);
        e += r * r;
      }
      f.col_loss[std::size_t(j)][std::size_t(w)] = e / double(ch.rows());
    }
    f.col_loss[std::size_t(j)][4] = ch.col(j).squaredNorm() / double(ch.rows());
  }
  return f;
}

}  // namespace vkq
