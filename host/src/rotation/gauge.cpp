#include "vkquant/rotation/gauge.hpp"

#include <Eigen/Dense>

#include <chrono>

namespace vkq::rot {

GaugeReport gauge_vectors(const std::string& name, const RowMat& v, const GaugeOptions& o,
                          const std::function<void(const char*, double)>& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  GaugeReport g;
  g.name = name;
  g.rows = std::size_t(v.rows());
  g.d = std::size_t(v.cols());
  g.raw = measure(v);
  const RowMat c = centered(v, row_mean(v));
  g.centered = measure(c);
  g.srht = measure(srht_rows(c, o.learn.seed));
  g.moments = phase_moments(v);

  LearnOptions lo = o.learn;
  lo.progress = [&](int it, int iters, double) {
    if (progress) progress("learn", double(it) / iters);
  };
  // The rotation is learned on the centered rows, as the codec uses it; the
  // mean is taken over all rows (a per-head calibration statistic).
  g.learn = learn_rotation(c, lo);
  const RowMat y = c * g.learn.r.cast<float>().transpose();
  g.learned_train = measure(y, g.learn.split.train);
  g.learned_heldout = measure(y, g.learn.split.heldout);
  g.rank = std::clamp(o.rank, 0, int(g.d));
  g.residual = residual_basis(y, g.rank, g.learn.split.train, g.learn.split.heldout);

  if (o.null_control) {
    const RowMat z = gaussian_like(v, o.learn.seed ^ 0x6e756c6cu);
    const RowMat zc = centered(z, row_mean(z));
    lo.progress = [&](int it, int iters, double) {
      if (progress) progress("null", double(it) / iters);
    };
    const LearnResult nl = learn_rotation(zc, lo);
    g.null_train = nl.train;
    g.null_heldout = nl.heldout;
  }
  g.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return g;
}

}  // namespace vkq::rot
