// Rotations for 1-bit codes (docs/design.md §1): seeded SRHT, learned rotations by
// alternating Procrustes or Riemannian Adam/RAdam on O(d), the rank-r
// residual basis, and the Gaussian null control.
#pragma once

#include <Eigen/Core>

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "vkquant/rotation/metrics.hpp"

namespace vkq {
class Device;
}

namespace vkq::rot {

// --- size limit ----------------------------------------------------------------

// The widest vectors a rotation is learned for (and a residual basis or null
// control fitted). The solvers hold about 16 d x d fp64 matrices at once (the
// rotation, the SRHT start, the polar step's SVD or Newton–Schulz iterates,
// per-thread cross products, covariances): ~128 d^2 bytes, 8 GiB at d = 8192,
// and each iteration costs O(d^3). Head dims are 64–256 and hidden sizes to
// 8192; wider MLP rows (d = 11008, 14336, ...) would need 15–25 GiB.
inline constexpr std::size_t kMaxLearnedDim = 8192;
// Bytes the learned-rotation working set of dimension d takes, roughly.
std::uint64_t learned_working_set_bytes(std::size_t d);
// Throws vkq::Error unless d <= kMaxLearnedDim, saying what d would need:
// "learned rotations of d=16384 need ~32 GiB (d×d matrices); the limit is d ≤ 8192".
void check_learned_dim(std::size_t d);

// Rows scaled to unit norm (zero rows stay zero and count as cos1b 0).
RowMat unit_rows(const RowMat& v);

// --- SRHT ------------------------------------------------------------------

// Smallest power of two >= d.
std::uint32_t next_pow2(std::uint32_t d);
// SRHT of every row, zero-padded to next_pow2(d) columns: (rows, pow2).
RowMat srht_rows(const RowMat& v, std::uint32_t seed);
// A d x d orthogonal start for the solvers: H D / sqrt(d) when d is a power of
// two, else the polar factor of the leading d x d block of the padded SRHT.
Eigen::MatrixXd srht_matrix(std::uint32_t d, std::uint32_t seed);

// --- train / held-out split -------------------------------------------------

struct Split {
  std::vector<std::uint32_t> train, heldout;
};
// A seeded shuffle of [0, rows) cut into train and held-out (held-out gets
// round(rows * fraction) rows, at least 1 when rows > 1 and fraction > 0).
Split split_rows(std::size_t rows, double heldout_fraction, std::uint32_t seed);

// --- backends ---------------------------------------------------------------

// Computes Y = X R^T for a fixed set of rows X and changing R: the only
// O(rows d^2) step of every solver, so it is the one a device takes over.
class RowRotator {
 public:
  virtual ~RowRotator() = default;
  // Fixes the rows X: (rows, d).
  virtual void set_rows(const RowMat& x) = 0;
  // Y = X R^T: (rows, d).
  virtual void apply(const Eigen::MatrixXf& r, RowMat& y) = 0;
  // One-off product A B^T for square d x d matrices (Newton–Schulz steps).
  virtual Eigen::MatrixXf abt(const Eigen::MatrixXf& a, const Eigen::MatrixXf& b) = 0;
};
// Eigen on the host, rows split across threads (deterministic).
std::unique_ptr<RowRotator> cpu_rotator();
// The rotate kernel on `device` (rows bound in chunks as the kernel allows).
std::unique_ptr<RowRotator> device_rotator(Device& device);

// --- polar factor -----------------------------------------------------------

// U V^T of M = U S V^T by SVD (Eigen).
Eigen::MatrixXd polar_svd(const Eigen::MatrixXd& m);
// The same by Newton–Schulz iterations X <- 1.5 X - 0.5 X X^T X (GEMMs only,
// on `rot`'s backend); stops when ||X^T X - I||_max < tol or after max_iters.
Eigen::MatrixXd polar_newton_schulz(const Eigen::MatrixXd& m, RowRotator& rot, int max_iters = 100,
                                    double tol = 1e-6);

// --- learned rotations --------------------------------------------------------

enum class Solver { procrustes, radam };
enum class Polar { automatic, svd, newton_schulz };
enum class Retraction { cayley, qr };

struct LearnOptions {
  Solver solver = Solver::procrustes;
  int iters = 0;  // 0: the solver's default (procrustes 30, radam 200)
  std::uint32_t seed = 0;
  double heldout = 0.1;
  Polar polar = Polar::automatic;  // procrustes: SVD up to d = 1024, Newton–Schulz above
  Retraction retraction = Retraction::cayley;
  double lr = 0.0;  // radam: 0 picks 0.02 (cosine-decayed to a tenth)
  std::size_t batch = 8192;  // radam: rows per step (all when fewer)
  // Most iterations of a kurtosis fixed point (FastICA) from the SRHT start,
  // kept when it raises the training cos1b; 0 disables it.
  int warm_start_iters = 100;
  RowRotator* backend = nullptr;  // null: the host
  // Called after every iteration with (iteration, iterations, train cos1b).
  std::function<void(int, int, double)> progress;
};

struct LearnResult {
  Eigen::MatrixXd r;  // (d, d) orthogonal; the code of v is sign(R v)
  Split split;
  double init_train = 0, init_heldout = 0;  // mean cos1b where the solver started (after the warm start)
  double warm_start_gain = 0;               // train cos1b the warm start added to SRHT's (<= 0: not used)
  double train = 0, heldout = 0;            // mean cos1b at the end
  std::vector<int> curve_iters;             // iterations the curves were taken at (0: the start)
  std::vector<double> train_curve;          // mean cos1b of all training rows there
  std::vector<double> heldout_curve;        // mean cos1b of the held-out rows there
  int iters = 0;
  double seconds = 0;
};

// Whether the solvers' loops over n rows run on several threads: n >= 4096
// rows, more than one core, and not inside a cpu::parallel_for (serially
// otherwise; a caller may then run independent learners side by side).
bool rows_in_parallel(std::size_t n);

// Learns R in O(d) maximising mean cos1b(R v) over the training rows of `v`
// (rows, d), starting from srht_matrix(d, seed). Deterministic for a seed.
LearnResult learn_rotation(const RowMat& v, const LearnOptions& options);

// Mean cos1b of the rows of V R^T (all rows, or the listed ones).
double mean_cos1b(const RowMat& v, const Eigen::MatrixXd& r, std::span<const std::uint32_t> rows);

// --- residual basis ----------------------------------------------------------

struct ResidualBasis {
  Eigen::MatrixXf u;           // (d, r): top-r principal directions of e = y - alpha sign(y)
  double gamma = 0;            // residual energy fraction the basis captures (fit rows)
  double cos1b = 0;            // mean cos1b of the evaluation rows (no residual)
  double cos1b_eff_pred = 0;   // sqrt(1 - (1 - cos1b^2)(1 - gamma))
  double cos1b_eff = 0;        // measured: mean cosine of y and alpha s + U U^T e (evaluation rows)
};
// Fits U on rows `fit` of the rotated vectors `y` (rows, d) and evaluates on
// rows `eval`.
ResidualBasis residual_basis(const RowMat& y, int rank, std::span<const std::uint32_t> fit,
                             std::span<const std::uint32_t> eval);

// --- null control ----------------------------------------------------------

// Gaussian rows with the same count, mean and covariance as `v`.
RowMat gaussian_like(const RowMat& v, std::uint32_t seed);

}  // namespace vkq::rot
