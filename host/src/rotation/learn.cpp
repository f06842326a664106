#include "vkquant/rotation/learn.hpp"

#include <Eigen/Dense>
#include <Eigen/SVD>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numbers>
#include <random>
#include <stdexcept>
#include <thread>

#include "vkquant/cpu/kernels.hpp"
#include "vkquant/rotation/row_kernels.hpp"
#include "vkquant/error.hpp"
#include "vkquant/kernels/fwht.hpp"

namespace vkq::rot {

// --- threads ------------------------------------------------------------------

namespace {
std::size_t thread_slots() { return std::clamp<std::size_t>(std::thread::hardware_concurrency(), 1, 16); }

// Runs f(begin, end) over [0, n) in fixed blocks, one per thread; the block
// layout depends only on n and the thread count, so results are reproducible.
template <class F>
void parallel_rows(std::size_t n, F&& f) {
  if (!rows_in_parallel(n)) {
    f(std::size_t(0), n, std::size_t(0));
    return;
  }
  const std::size_t threads = thread_slots();
  std::vector<std::thread> pool;
  const std::size_t block = (n + threads - 1) / threads;
  for (std::size_t t = 0; t < threads; ++t) {
    const std::size_t b = t * block, e = std::min(n, b + block);
    if (b < e) pool.emplace_back([&f, b, e, t] { f(b, e, t); });
  }
  for (auto& th : pool) th.join();
}
}  // namespace

// (Inside a parallel_for the cores are taken.)
bool rows_in_parallel(std::size_t n) { return n >= 4096 && thread_slots() > 1 && !cpu::nested(); }

// --- size limit -----------------------------------------------------------------

std::uint64_t learned_working_set_bytes(std::size_t d) { return 16 * 8 * std::uint64_t(d) * std::uint64_t(d); }

void check_learned_dim(std::size_t d) {
  if (d <= kMaxLearnedDim) return;
  const auto gib = [](std::uint64_t bytes) { return std::to_string((bytes + (std::uint64_t(1) << 29)) >> 30); };
  throw Error("learned rotations of d=" + std::to_string(d) + " need ~" + gib(learned_working_set_bytes(d)) +
              " GiB (d×d matrices); the limit is d ≤ " + std::to_string(kMaxLearnedDim) + " (~" +
              gib(learned_working_set_bytes(kMaxLearnedDim)) + " GiB)");
}

// --- SRHT ---------------------------------------------------------------------

std::uint32_t next_pow2(std::uint32_t d) {
  std::uint32_t p = 1;
  while (p < d) p <<= 1;
  return p;
}

namespace {
// In-place unnormalised Walsh–Hadamard transform of n = 2^k values.
void fwht_inplace(float* x, std::uint32_t n) {
  for (std::uint32_t h = 1; h < n; h <<= 1)
    for (std::uint32_t i = 0; i < n; i += 2 * h)
      for (std::uint32_t j = i; j < i + h; ++j) {
        const float a = x[j], b = x[j + h];
        x[j] = a + b;
        x[j + h] = a - b;
      }
}
}  // namespace

RowMat srht_rows(const RowMat& v, std::uint32_t seed) {
  const auto d = std::uint32_t(v.cols()), n = next_pow2(d);
  RowMat out = RowMat::Zero(v.rows(), n);
  const float scale = 1.0f / std::sqrt(float(n));
  std::vector<float> sign(n);
  for (std::uint32_t i = 0; i < n; ++i) sign[i] = vkq::kernels::srht_sign(seed, i);
  parallel_rows(std::size_t(v.rows()), [&](std::size_t b, std::size_t e, std::size_t) {
    for (std::size_t r = b; r < e; ++r) {
      float* y = out.data() + r * n;
      for (std::uint32_t i = 0; i < d; ++i) y[i] = v(Eigen::Index(r), i) * sign[i];
      fwht_inplace(y, n);
      for (std::uint32_t i = 0; i < n; ++i) y[i] *= scale;
    }
  });
  return out;
}

Eigen::MatrixXd srht_matrix(std::uint32_t d, std::uint32_t seed) {
  const std::uint32_t n = next_pow2(d);
  // Row i of H D / sqrt(n): H[i][j] = (-1)^popcount(i & j).
  Eigen::MatrixXd h(n, n);
  for (std::uint32_t i = 0; i < n; ++i)
    for (std::uint32_t j = 0; j < n; ++j)
      h(i, j) = ((std::popcount(i & j) & 1) ? -1.0 : 1.0) * double(vkq::kernels::srht_sign(seed, j)) / std::sqrt(double(n));
  if (n == d) return h;
  return polar_svd(h.topLeftCorner(d, d));
}

// --- split --------------------------------------------------------------------

Split split_rows(std::size_t rows, double heldout_fraction, std::uint32_t seed) {
  std::vector<std::uint32_t> order(rows);
  for (std::size_t i = 0; i < rows; ++i) order[i] = std::uint32_t(i);
  std::mt19937_64 rng(0x5eed0000ull ^ seed);
  for (std::size_t i = rows; i > 1; --i) std::swap(order[i - 1], order[rng() % i]);  // Fisher–Yates, portable
  std::size_t held = std::size_t(std::llround(double(rows) * std::clamp(heldout_fraction, 0.0, 1.0)));
  if (heldout_fraction > 0 && rows > 1) held = std::clamp<std::size_t>(held, 1, rows - 1);
  Split s;
  s.heldout.assign(order.begin(), order.begin() + std::ptrdiff_t(held));
  s.train.assign(order.begin() + std::ptrdiff_t(held), order.end());
  std::sort(s.heldout.begin(), s.heldout.end());
  std::sort(s.train.begin(), s.train.end());
  return s;
}

// --- CPU backend --------------------------------------------------------------

namespace {
class CpuRotator final : public RowRotator {
 public:
  void set_rows(const RowMat& x) override { x_ = &x; }
  void apply(const Eigen::MatrixXf& r, RowMat& y) override {
    y.resize(x_->rows(), r.rows());
    // R (n, d) column-major is Rᵀ (d, n) row-major: the kernel's b.
    const std::size_t d = std::size_t(x_->cols()), n = std::size_t(r.rows());
    parallel_rows(std::size_t(x_->rows()), [&](std::size_t b, std::size_t e, std::size_t) {
      kernels::rows_times(x_->data() + b * d, r.data(), y.data() + b * n, e - b, d, n);
    });
  }
  Eigen::MatrixXf abt(const Eigen::MatrixXf& a, const Eigen::MatrixXf& b) override { return a * b.transpose(); }

 private:
  const RowMat* x_ = nullptr;
};
}  // namespace

std::unique_ptr<RowRotator> cpu_rotator() { return std::make_unique<CpuRotator>(); }

// --- polar factor -------------------------------------------------------------

Eigen::MatrixXd polar_svd(const Eigen::MatrixXd& m) {
  Eigen::BDCSVD<Eigen::MatrixXd> svd(m, Eigen::ComputeFullU | Eigen::ComputeFullV);
  return svd.matrixU() * svd.matrixV().transpose();
}

Eigen::MatrixXd polar_newton_schulz(const Eigen::MatrixXd& m, RowRotator& rot, int max_iters, double tol) {
  const double norm = m.norm();
  if (norm == 0) throw Error("polar factor of a zero matrix is undefined");
  // ||M||_F bounds the largest singular value, so X0's lie in (0, 1]: inside
  // the iteration's basin (0, sqrt(3)).
  Eigen::MatrixXf x = (m / norm).cast<float>();
  const Eigen::MatrixXf eye = Eigen::MatrixXf::Identity(m.rows(), m.cols());
  for (int it = 0; it < max_iters; ++it) {
    const Eigen::MatrixXf xxt = rot.abt(x, x);     // X X^T (symmetric)
    const Eigen::MatrixXf xt = x.transpose();
    const Eigen::MatrixXf xxtx = rot.abt(xxt, xt);  // (X X^T) X
    x = 1.5f * x - 0.5f * xxtx;
    if ((xxt - eye).cwiseAbs().maxCoeff() < tol) break;
  }
  // One step in fp64 tidies the fp32 iterate's orthogonality.
  Eigen::MatrixXd xd = x.cast<double>();
  xd = 1.5 * xd - 0.5 * xd * xd.transpose() * xd;
  return xd;
}

// --- objective ----------------------------------------------------------------

RowMat unit_rows(const RowMat& v) {
  RowMat u = v;
  for (Eigen::Index r = 0; r < u.rows(); ++r) {
    const double n = u.row(r).cast<double>().norm();
    if (n > 0) u.row(r) /= float(n);
  }
  return u;
}

namespace {
RowMat gather(const RowMat& v, std::span<const std::uint32_t> rows) {
  RowMat out(Eigen::Index(rows.size()), v.cols());
  for (std::size_t i = 0; i < rows.size(); ++i) out.row(Eigen::Index(i)) = v.row(rows[i]);
  return out;
}

// Mean over rows of ||y||_1 / sqrt(d) for unit rows y: mean cos1b.
double mean_l1(const RowMat& y) {
  if (y.rows() == 0) return 0;
  std::vector<double> part(thread_slots(), 0.0);
  parallel_rows(std::size_t(y.rows()), [&](std::size_t b, std::size_t e, std::size_t t) {
    double s = 0;
    for (std::size_t r = b; r < e; ++r)
      for (Eigen::Index c = 0; c < y.cols(); ++c) s += std::fabs(double(y(Eigen::Index(r), c)));
    part[t] = s;
  });
  double s = 0;
  for (double p : part) s += p;
  return s / (double(y.rows()) * std::sqrt(double(y.cols())));
}

// M = sum_t sign(y_t) u_t^T: the Procrustes target and the Euclidean
// gradient of sum_t <sign(R u_t), R u_t> with respect to R.
Eigen::MatrixXd sign_cross(const RowMat& y, const RowMat& u) {
  const std::size_t slots = thread_slots(), n = std::size_t(y.cols()), d = std::size_t(u.cols());
  std::vector<RowMat> part(slots, RowMat::Zero(y.cols(), u.cols()));
  parallel_rows(std::size_t(y.rows()), [&](std::size_t b, std::size_t e, std::size_t t) {
    kernels::cross_accumulate(y.data() + b * n, u.data() + b * d, e - b, n, d, kernels::Weight::sign, part[t].data(),
                              nullptr);
  });
  Eigen::MatrixXd m = Eigen::MatrixXd::Zero(y.cols(), u.cols());
  for (const auto& p : part) m += p.cast<double>();
  return m;
}

Eigen::MatrixXd skew(const Eigen::MatrixXd& a) { return 0.5 * (a - a.transpose()); }

Eigen::MatrixXd cayley(const Eigen::MatrixXd& w) {
  const Eigen::MatrixXd eye = Eigen::MatrixXd::Identity(w.rows(), w.cols());
  return (eye - 0.5 * w).partialPivLu().solve(eye + 0.5 * w);
}

Eigen::MatrixXd qr_retract(const Eigen::MatrixXd& a) {
  Eigen::HouseholderQR<Eigen::MatrixXd> qr(a);
  Eigen::MatrixXd q = qr.householderQ();
  const Eigen::MatrixXd r = qr.matrixQR().triangularView<Eigen::Upper>();
  for (Eigen::Index i = 0; i < q.cols(); ++i)
    if (r(i, i) < 0) q.col(i) = -q.col(i);  // unique Q with positive diag(R): continuous in a
  return q;
}

// FastICA's symmetric fixed point with the kurtosis contrast, run on the unit
// rows as if they were white: W <- E[u y^3] - 3 E[y^2]^2 R, then R = polar(W).
// Sign codes are sub-Gaussian sources, which this finds from starts where the
// sign/polar alternation stalls; the solver keeps it only if it scores better.
struct WarmStart {
  Eigen::MatrixXd r;            // the best iterate
  double start = 0, best = -1;  // mean cos1b (training rows) of the start and of r
};
WarmStart kurtosis_fixed_point(const RowMat& u, Eigen::MatrixXd r, RowRotator& rot, int iters) {
  RowMat y;
  WarmStart best{r};
  int best_it = 0;
  for (int it = 0; it <= iters; ++it) {
    rot.apply(r.cast<float>(), y);
    // The fixed point does not climb cos1b monotonically: keep the best
    // iterate, and stop once 15 iterations brought no gain (no structure).
    const double score = mean_l1(y);
    if (it == 0) best.start = score;
    if (score > best.best + 1e-5) {
      best.best = score;
      best.r = r;
      best_it = it;
    } else if (it - best_it >= 15) {
      break;
    }
    if (it == iters) break;
    const std::size_t slots = thread_slots(), yc = std::size_t(y.cols()), uc = std::size_t(u.cols());
    std::vector<RowMat> part(slots, RowMat::Zero(y.cols(), u.cols()));
    std::vector<Eigen::VectorXd> sq(slots, Eigen::VectorXd::Zero(y.cols()));
    parallel_rows(std::size_t(y.rows()), [&](std::size_t b, std::size_t e, std::size_t t) {
      kernels::cross_accumulate(y.data() + b * yc, u.data() + b * uc, e - b, yc, uc, kernels::Weight::cube,
                                part[t].data(), sq[t].data());
    });
    Eigen::MatrixXd w = Eigen::MatrixXd::Zero(y.cols(), u.cols());
    Eigen::VectorXd s2 = Eigen::VectorXd::Zero(y.cols());
    for (std::size_t t = 0; t < slots; ++t) {
      w += part[t].cast<double>();
      s2 += sq[t];
    }
    const double n = double(y.rows());
    w /= n;
    s2 /= n;
    w -= 3.0 * s2.cwiseProduct(s2).asDiagonal() * r;
    if (!w.allFinite() || w.norm() == 0) break;
    const Eigen::MatrixXd next = polar_svd(w);
    const double moved = (next - r).cwiseAbs().maxCoeff();
    r = next;
    if (moved < 1e-6) {  // converged: score it once more
      rot.apply(r.cast<float>(), y);
      const double last = mean_l1(y);
      if (last > best.best) {
        best.r = r;
        best.best = last;
      }
      break;
    }
  }
  return best;
}
}  // namespace

double mean_cos1b(const RowMat& v, const Eigen::MatrixXd& r, std::span<const std::uint32_t> rows) {
  const RowMat u = unit_rows(gather(v, rows));
  const RowMat y = u * r.cast<float>().transpose();
  return mean_l1(y);
}

// --- solvers -------------------------------------------------------------------

LearnResult learn_rotation(const RowMat& v, const LearnOptions& o) {
  check_learned_dim(std::size_t(v.cols()));  // before any d x d allocation
  const auto t0 = std::chrono::steady_clock::now();
  const auto d = std::uint32_t(v.cols());
  if (d == 0 || v.rows() < 2) throw Error("learned rotation needs at least 2 vectors of dimension >= 1");
  LearnResult res;
  res.split = split_rows(std::size_t(v.rows()), o.heldout, o.seed);
  const RowMat train = unit_rows(gather(v, res.split.train));
  const RowMat held = unit_rows(gather(v, res.split.heldout));
  auto host = cpu_rotator();
  RowRotator& rot = o.backend ? *o.backend : *host;
  auto held_rot = cpu_rotator();  // the held-out set is small: host
  held_rot->set_rows(held);

  Eigen::MatrixXd r = srht_matrix(d, o.seed);
  if (o.warm_start_iters > 0) {
    rot.set_rows(train);
    // The scores come from the fixed point's own products (the start is its
    // iteration 0), not from two more of them.
    const WarmStart ica = kurtosis_fixed_point(train, r, rot, o.warm_start_iters);
    res.warm_start_gain = ica.best - ica.start;
    if (res.warm_start_gain > 0) r = ica.r;
  }
  const int iters = o.iters > 0 ? o.iters : (o.solver == Solver::procrustes ? 30 : 200);
  RowMat y, yh;
  auto held_score = [&] {
    if (held.rows() == 0) return 0.0;
    held_rot->apply(r.cast<float>(), yh);
    return mean_l1(yh);
  };

  // The full training objective and the held-out one at `it`, for the curves.
  auto record = [&](int it, const RowMat* y_full) {
    if (!y_full) {
      rot.set_rows(train);
      rot.apply(r.cast<float>(), y);
      y_full = &y;
    }
    res.curve_iters.push_back(it);
    res.train_curve.push_back(mean_l1(*y_full));
    res.heldout_curve.push_back(held_score());
  };

  if (o.solver == Solver::procrustes) {
    rot.set_rows(train);
    const bool svd = o.polar == Polar::svd || (o.polar == Polar::automatic && d <= 1024);
    for (int it = 0; it <= iters; ++it) {
      rot.apply(r.cast<float>(), y);
      record(it, &y);
      if (it > 0 && o.progress) o.progress(it, iters, res.train_curve.back());
      if (it == iters) break;
      // Sign step then polar step: neither can lower the objective.
      const Eigen::MatrixXd m = sign_cross(y, train);
      r = svd ? polar_svd(m) : polar_newton_schulz(m, rot);
      rot.set_rows(train);
    }
  } else {
    // Riemannian RAdam on O(d), left-trivialised: R <- retract(W) R with W
    // skew, so Adam's moments live in the fixed space so(d). Minibatches are
    // consecutive windows of the (already shuffled) training rows.
    const auto n = std::size_t(train.rows());
    const std::size_t batch = std::min<std::size_t>(o.batch ? o.batch : n, n);
    const double lr0 = o.lr > 0 ? o.lr : 0.02, b1 = 0.9, b2 = 0.999, eps = 1e-8;
    const double rho_inf = 2.0 / (1.0 - b2) - 1.0;
    const int eval_every = std::max(1, iters / 20);
    Eigen::MatrixXd m1 = Eigen::MatrixXd::Zero(d, d), m2 = Eigen::MatrixXd::Zero(d, d);
    std::size_t cursor = 0;
    RowMat xb, yb;
    record(0, nullptr);
    for (int it = 1; it <= iters; ++it) {
      if (cursor + batch > n) cursor = 0;
      xb = train.middleRows(Eigen::Index(cursor), Eigen::Index(batch));
      cursor += batch;
      rot.set_rows(xb);
      rot.apply(r.cast<float>(), yb);
      const Eigen::MatrixXd g = sign_cross(yb, xb) / (double(batch) * std::sqrt(double(d)));
      const Eigen::MatrixXd w = skew(g * r.transpose());  // ascent direction in so(d)
      m1 = b1 * m1 + (1 - b1) * w;
      m2 = b2 * m2 + (1 - b2) * w.cwiseProduct(w);
      const double t = double(it), b1t = 1 - std::pow(b1, t), b2t = 1 - std::pow(b2, t);
      const double lr = lr0 * (0.1 + 0.9 * 0.5 * (1 + std::cos(std::numbers::pi * (t - 1) / iters)));
      const double rho = rho_inf - 2 * t * std::pow(b2, t) / b2t;
      Eigen::MatrixXd step = m1 / b1t;
      if (rho > 4) {  // RAdam: the variance estimate is trusted, rectified
        const double rect = std::sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho));
        step = rect * step.array() / ((m2 / b2t).array().sqrt() + eps);
      }
      step = skew(lr * step);  // exact skew symmetry against rounding
      r = o.retraction == Retraction::cayley ? Eigen::MatrixXd(cayley(step) * r)
                                             : qr_retract((Eigen::MatrixXd::Identity(d, d) + step) * r);
      if (it % eval_every == 0 || it == iters) record(it, nullptr);
      if (o.progress) o.progress(it, iters, mean_l1(yb));
    }
  }
  res.iters = iters;
  res.r = r;
  res.init_train = res.train_curve.front();
  res.init_heldout = res.heldout_curve.front();
  res.train = res.train_curve.back();
  res.heldout = res.heldout_curve.back();
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

// --- residual basis ---------------------------------------------------------------

ResidualBasis residual_basis(const RowMat& y, int rank, std::span<const std::uint32_t> fit,
                             std::span<const std::uint32_t> eval) {
  check_learned_dim(std::size_t(y.cols()));  // the d x d residual covariance
  const auto d = y.cols();
  if (rank < 0 || rank > d) throw Error("residual rank " + std::to_string(rank) + " is outside [0, " + std::to_string(d) + "]");
  auto residual = [&](std::uint32_t row, Eigen::VectorXd& e, Eigen::VectorXd& s, double& alpha) {
    const Eigen::VectorXd v = y.row(row).transpose().cast<double>();
    alpha = v.cwiseAbs().sum() / double(d);
    s = v.unaryExpr([](double x) { return x >= 0 ? 1.0 : -1.0; });
    e = v - alpha * s;
  };
  Eigen::MatrixXd cov = Eigen::MatrixXd::Zero(d, d);
  Eigen::VectorXd e, s;
  double alpha = 0;
  for (auto row : fit) {
    residual(row, e, s, alpha);
    cov.selfadjointView<Eigen::Lower>().rankUpdate(e);
  }
  cov = cov.selfadjointView<Eigen::Lower>();
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(cov);
  ResidualBasis out;
  const Eigen::VectorXd lambda = eig.eigenvalues().reverse();  // descending
  const Eigen::MatrixXd vecs = eig.eigenvectors().rowwise().reverse();
  const double total = lambda.sum();
  out.u = vecs.leftCols(rank).cast<float>();
  out.gamma = total > 0 ? lambda.head(rank).sum() / total : 0;
  const Eigen::MatrixXd u = vecs.leftCols(rank);
  double sum_cos = 0, sum_eff = 0;
  for (auto row : eval) {
    residual(row, e, s, alpha);
    const Eigen::VectorXd v = y.row(row).transpose().cast<double>();
    const Eigen::VectorXd approx = alpha * s + u * (u.transpose() * e);
    const double nv = v.norm(), na = approx.norm();
    sum_cos += nv > 0 ? v.cwiseAbs().sum() / (std::sqrt(double(d)) * nv) : 0;
    sum_eff += nv > 0 && na > 0 ? v.dot(approx) / (nv * na) : 0;
  }
  const double n = eval.empty() ? 1 : double(eval.size());
  out.cos1b = sum_cos / n;
  out.cos1b_eff = sum_eff / n;
  out.cos1b_eff_pred = std::sqrt(1 - (1 - out.cos1b * out.cos1b) * (1 - out.gamma));
  return out;
}

// --- null control ---------------------------------------------------------------

RowMat gaussian_like(const RowMat& v, std::uint32_t seed) {
  const auto n = v.rows(), d = v.cols();
  check_learned_dim(std::size_t(d));  // the d x d covariance and its eigenvectors
  const Eigen::VectorXd mu = row_mean(v).cast<double>();
  Eigen::MatrixXd cov = Eigen::MatrixXd::Zero(d, d);
  for (Eigen::Index r = 0; r < n; ++r) {
    const Eigen::VectorXd x = v.row(r).transpose().cast<double>() - mu;
    cov.selfadjointView<Eigen::Lower>().rankUpdate(x);
  }
  cov = cov.selfadjointView<Eigen::Lower>();
  if (n > 1) cov /= double(n - 1);
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(cov);
  const Eigen::MatrixXd root =
      eig.eigenvectors() * eig.eigenvalues().cwiseMax(0.0).cwiseSqrt().asDiagonal();  // cov = root root^T
  std::mt19937_64 rng(0x9a55ull ^ (std::uint64_t(seed) << 20));
  // Box–Muller from raw 53-bit uniforms: the same numbers on every platform.
  auto uniform = [&] { return (double(rng() >> 11) + 0.5) * (1.0 / 9007199254740992.0); };
  RowMat out(n, d);
  Eigen::VectorXd g(d);
  for (Eigen::Index r = 0; r < n; ++r) {
    for (Eigen::Index c = 0; c < d; c += 2) {
      const double a = std::sqrt(-2 * std::log(uniform())), b = 2 * std::numbers::pi * uniform();
      g(c) = a * std::cos(b);
      if (c + 1 < d) g(c + 1) = a * std::sin(b);
    }
    out.row(r) = (mu + root * g).transpose().cast<float>();
  }
  return out;
}

}  // namespace vkq::rot
