// The gauge of one vector set (docs/design.md §1): how well 1-bit codes fit it raw,
// centered, after SRHT and after a learned rotation, against a Gaussian null
// control of the same shape and covariance.
#pragma once

#include <string>

#include "vkquant/rotation/learn.hpp"

namespace vkq::rot {

struct GaugeOptions {
  LearnOptions learn;  // solver, iterations, seed, held-out fraction, backend
  int rank = 8;        // residual rank r (clamped to d)
  bool null_control = true;
};

struct GaugeReport {
  std::string name;
  std::size_t rows = 0, d = 0;
  SetStats raw, centered, srht;       // SRHT acts on the centered rows
  SetStats learned_train, learned_heldout;
  double null_train = 0, null_heldout = 0;  // learned cos1b on the Gaussian control
  Moments moments;                          // G term of this set
  int rank = 0;
  ResidualBasis residual;  // fitted on train, evaluated on held-out
  LearnResult learn;       // the solver's curves and timing
  double seconds = 0;      // the whole gauge of this set
};

// Gauges the rows of `v` (rows, d). `progress(stage, fraction)` is called as
// the stages ("learn", "null") advance.
GaugeReport gauge_vectors(const std::string& name, const RowMat& v, const GaugeOptions& options,
                          const std::function<void(const char*, double)>& progress = {});

}  // namespace vkq::rot
