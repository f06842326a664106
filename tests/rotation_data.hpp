// Synthetic vector sets for the rotation tests and `vkq_make_keys`: i.i.d.
// draws and planted-rotation keys. Seeded and platform-independent.
#pragma once

#include <Eigen/Dense>

#include <cmath>
#include <cstdint>
#include <numbers>
#include <random>

#include "vkquant/rotation/metrics.hpp"

namespace vkq::testdata {

// Raw 64-bit draws turned into distributions by hand: <random>'s
// distributions differ between standard libraries.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : g_(seed * 0x9e3779b97f4a7c15ull + 1) {}
  double uniform() { return (double(g_() >> 11) + 0.5) * (1.0 / 9007199254740992.0); }  // (0, 1)
  double normal() { return std::sqrt(-2 * std::log(uniform())) * std::cos(2 * std::numbers::pi * uniform()); }
  double laplace() {
    const double u = uniform() - 0.5;
    return u < 0 ? std::log(1 + 2 * u) : -std::log(1 - 2 * u);
  }
  float sign() { return (g_() >> 63) ? 1.0f : -1.0f; }

 private:
  std::mt19937_64 g_;
};

enum class Dist { gaussian, laplace, uniform };

// (rows, d) i.i.d. draws of `dist`.
inline rot::RowMat iid(Eigen::Index rows, Eigen::Index d, Dist dist, std::uint64_t seed) {
  Rng rng(seed);
  rot::RowMat v(rows, d);
  for (Eigen::Index i = 0; i < v.size(); ++i)
    v.data()[i] = float(dist == Dist::gaussian ? rng.normal() : dist == Dist::laplace ? rng.laplace() : 2 * rng.uniform() - 1);
  return v;
}

// A random orthogonal (d, d): Q of the QR of a Gaussian matrix, signs fixed.
inline Eigen::MatrixXd random_orthogonal(Eigen::Index d, std::uint64_t seed) {
  Rng rng(seed);
  Eigen::MatrixXd g(d, d);
  for (Eigen::Index i = 0; i < g.size(); ++i) g.data()[i] = rng.normal();
  Eigen::HouseholderQR<Eigen::MatrixXd> qr(g);
  Eigen::MatrixXd q = qr.householderQ();
  for (Eigen::Index i = 0; i < d; ++i)
    if (qr.matrixQR()(i, i) < 0) q.col(i) = -q.col(i);
  return q;
}

// Planted keys: k_t = R_true^T (alpha_t s_t) + noise + mu, s_t random signs,
// alpha_t in [0.5, 1.5], noise N(0, (noise alpha_t)^2), mu N(0, mean_scale^2).
// The ideal rotation is R_true (cos1b near 1 after centering).
inline rot::RowMat planted_keys(Eigen::Index rows, Eigen::Index d, std::uint64_t seed, double noise = 0.05,
                                double mean_scale = 1.0, Eigen::MatrixXd* r_true = nullptr) {
  const Eigen::MatrixXf r = random_orthogonal(d, seed ^ 0xabcdefull).cast<float>();
  if (r_true) *r_true = r.cast<double>();
  Rng rng(seed);
  Eigen::RowVectorXf mu(d);
  for (Eigen::Index i = 0; i < d; ++i) mu(i) = float(mean_scale * rng.normal());
  rot::RowMat v(rows, d);
  Eigen::RowVectorXf s(d);
  for (Eigen::Index t = 0; t < rows; ++t) {
    const double alpha = 0.5 + rng.uniform();
    for (Eigen::Index i = 0; i < d; ++i) s(i) = float(alpha) * rng.sign();
    v.row(t) = s * r;
    for (Eigen::Index i = 0; i < d; ++i) v(t, i) += float(noise * alpha * rng.normal()) + mu(i);
  }
  return v;
}

}  // namespace vkq::testdata
