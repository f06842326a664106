#include "vkquant/rotation/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

namespace vkq::rot {

double cos1b(std::span<const float> v) {
  // Scaled by max |x| first, so a vector on the sign lattice sums to exact
  // integers and comes out exactly 1.
  double m = 0;
  for (float x : v) m = std::max(m, std::fabs(double(x)));
  if (m == 0 || v.empty()) return 0;
  double l1 = 0, l2 = 0;
  for (float x : v) {
    const double y = double(x) / m;
    l1 += std::fabs(y);
    l2 += y * y;
  }
  return std::min(1.0, l1 / std::sqrt(double(v.size()) * l2));
}

SetStats measure(const RowMat& v, std::span<const std::uint32_t> rows) {
  SetStats s;
  s.rows = rows.size();
  if (rows.empty() || v.cols() == 0) return s;
  double sum_cos = 0, sum_cos2 = 0, sum_abs = 0, sum_sq = 0;
  const auto d = std::size_t(v.cols());
  for (auto r : rows) {
    const std::span<const float> row(v.data() + std::size_t(r) * d, d);
    const double c = cos1b(row);
    sum_cos += c;
    sum_cos2 += c * c;
    for (float x : row) {
      sum_abs += std::fabs(double(x));
      sum_sq += double(x) * double(x);
    }
  }
  const double n = double(rows.size()), coords = n * double(d);
  s.cos1b = sum_cos / n;
  s.energy_kept = sum_cos2 / n;
  s.beta = sum_sq > 0 ? (sum_abs / coords) * (sum_abs / coords) / (sum_sq / coords) : 0;
  return s;
}

SetStats measure(const RowMat& v) {
  std::vector<std::uint32_t> all(std::size_t(v.rows()));
  std::iota(all.begin(), all.end(), 0u);
  return measure(v, all);
}

Eigen::VectorXf row_mean(const RowMat& v) {
  Eigen::VectorXd sum = Eigen::VectorXd::Zero(v.cols());
  for (Eigen::Index r = 0; r < v.rows(); ++r) sum += v.row(r).transpose().cast<double>();
  if (v.rows() > 0) sum /= double(v.rows());
  return sum.cast<float>();
}

RowMat centered(const RowMat& v, const Eigen::VectorXf& mu) { return v.rowwise() - mu.transpose(); }

Moments phase_moments(const RowMat& v) {
  Moments m;
  if (v.size() == 0) return m;
  const Eigen::VectorXf mu = row_mean(v);
  double s2 = 0, s4 = 0;
  for (Eigen::Index r = 0; r < v.rows(); ++r)
    for (Eigen::Index c = 0; c < v.cols(); ++c) {
      const double x = double(v(r, c)) - double(mu(c));
      s2 += x * x;
      s4 += x * x * x * x;
    }
  const double n = double(v.size());
  m.variance = s2 / n;
  if (m.variance > 0) {
    m.excess_kurtosis = (s4 / n) / (m.variance * m.variance) - 3.0;
    m.gauge = std::max(0.0, m.excess_kurtosis / m.variance);
  }
  return m;
}

}  // namespace vkq::rot
