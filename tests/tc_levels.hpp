// Random calibrated-looking levels of a transform-coded layout for the codec
// tests: per (head, basis column) the column's 2^width levels, strictly
// ascending in the codes' values, gaps of 0.5 .. 1.6 steps around an offset
// (so codes are neither uniform nor symmetric), indexed by the code's bits as
// kresidual.hpp lays them out; columns past a head's rank get 4-bit levels.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "vkquant/kresidual.hpp"

namespace vkq::test {

inline std::vector<float> test_tc_levels(const KResidualLayout& layout, std::uint32_t cols, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> gap(0.5, 1.6), shift(-0.3, 0.3);
  std::vector<float> lv(std::size_t(layout.n_kv()) * cols * kTcLevels, 0.0f);
  for (std::uint32_t h = 0; h < layout.n_kv(); ++h)
    for (std::uint32_t j = 0; j < cols; ++j) {
      const KResidual r = layout.heads[h];
      const std::uint32_t w = j < r.rank ? tc_slot(r, j).width : 4, n = 1u << w, half = n / 2;
      std::vector<double> v(n);
      v[0] = 0;
      for (std::uint32_t i = 1; i < n; ++i) v[i] = v[i - 1] + gap(rng);
      const double mid = (v[half - 1] + v[half]) / 2 - shift(rng);
      for (std::uint32_t i = 0; i < n; ++i)  // level i: code value i - n/2
        lv[(std::size_t(h) * cols + j) * kTcLevels + tc_code_bits(int(i) - int(half), w)] = float(v[i] - mid);
    }
  return lv;
}

}  // namespace vkq::test
