// docs/design.md §1 metrics of vector sets: 1-bit cosine, moment ratio, kept energy
// and the phase-collapse gauge. Sums are fp64.
#pragma once

#include <Eigen/Core>

#include <cstddef>
#include <cstdint>
#include <span>

namespace vkq::rot {

// A set of vectors, one per row: (rows, d).
using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// cos1b(v) = ||v||_1 / (sqrt(d) ||v||_2); 0 for the zero vector.
double cos1b(std::span<const float> v);

struct SetStats {
  std::size_t rows = 0;
  double cos1b = 0;        // mean over rows of cos1b
  double beta = 0;         // (E|x|)^2 / E[x^2] over every coordinate
  double energy_kept = 0;  // mean over rows of cos1b^2: energy a 1-bit code keeps
};

// Metrics of the rows of `v`; with `rows` given, of those rows only.
SetStats measure(const RowMat& v);
SetStats measure(const RowMat& v, std::span<const std::uint32_t> rows);

// Per-coordinate mean over rows: (d).
Eigen::VectorXf row_mean(const RowMat& v);
// v - mu for every row.
RowMat centered(const RowMat& v, const Eigen::VectorXf& mu);

struct Moments {
  double variance = 0;         // sigma^2 of the centered coordinates (pooled)
  double excess_kurtosis = 0;  // kappa = E[x^4] / sigma^4 - 3
  double gauge = 0;            // max(0, kappa / sigma^2): one head's term of G
};
// Moments of the per-channel-centered coordinates of `v` (one head's keys).
Moments phase_moments(const RowMat& v);

}  // namespace vkq::rot
