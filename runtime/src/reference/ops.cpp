#include "vkquant/reference/ops.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <vector>

#include "vkquant/error.hpp"

namespace vkq::ref {

void embed(std::span<const float> table, std::uint32_t vocab, std::uint32_t dim, std::span<const std::uint32_t> ids,
           std::span<float> out) {
  const std::uint64_t n = ids.size();
  if (table.size() < std::uint64_t(vocab) * dim || out.size() < n * dim) throw Error("ref::embed: bad sizes");
  for (std::uint64_t t = 0; t < n; ++t) {
    float* o = out.data() + t * dim;  // (dim)
    for (std::uint32_t c = 0; c < dim; ++c) o[c] = ids[t] < vocab ? table[std::uint64_t(ids[t]) * dim + c] : 0.f;
  }
}

void rmsnorm(std::span<const float> x, std::span<const float> weight, std::span<float> y, std::uint32_t rows,
             std::uint32_t d, float eps) {
  if (x.size() < std::uint64_t(rows) * d || y.size() < std::uint64_t(rows) * d || weight.size() < d)
    throw Error("ref::rmsnorm: bad sizes");
  for (std::uint64_t r = 0; r < rows; ++r) {
    const float* xr = x.data() + r * d;  // (d)
    float* yr = y.data() + r * d;        // (d)
    double ss = 0;
    for (std::uint32_t c = 0; c < d; ++c) ss += double(xr[c]) * xr[c];
    const double inv = 1.0 / std::sqrt(ss / d + eps);
    for (std::uint32_t c = 0; c < d; ++c) yr[c] = float(xr[c] * inv * weight[c]);
  }
}

void rope(std::span<float> x, std::uint32_t n, std::uint32_t heads, std::uint32_t pos0, const RopeTable& table,
          bool neox) {
  const std::uint32_t hd = table.hd;
  if (hd % 2 || x.size() < std::uint64_t(n) * heads * hd) throw Error("ref::rope: bad sizes");
  for (std::uint64_t t = 0; t < n; ++t)
    for (std::uint32_t h = 0; h < heads; ++h)
      rope_apply(table, x.data() + (t * heads + h) * hd, double(pos0) + double(t), neox);
}

void swiglu(std::span<const float> gate, std::span<const float> up, std::span<float> out) {
  if (up.size() < gate.size() || out.size() < gate.size()) throw Error("ref::swiglu: bad sizes");
  for (std::size_t i = 0; i < gate.size(); ++i) {
    const double g = gate[i];
    out[i] = float(g / (1.0 + std::exp(-g)) * up[i]);
  }
}

void add(std::span<float> x, std::span<const float> y) {
  if (y.size() < x.size()) throw Error("ref::add: bad sizes");
  for (std::size_t i = 0; i < x.size(); ++i) x[i] += y[i];
}

void add_bias(std::span<float> y, std::span<const float> bias, std::uint32_t rows, std::uint32_t d) {
  if (y.size() < std::uint64_t(rows) * d || bias.size() < d) throw Error("ref::add_bias: bad sizes");
  for (std::uint64_t r = 0; r < rows; ++r)
    for (std::uint32_t c = 0; c < d; ++c) y[r * d + c] += bias[c];
}

void moe_route(std::span<const float> logits, std::span<std::uint32_t> ids, std::span<float> weights,
               std::uint32_t n, std::uint32_t experts, std::uint32_t k, bool normalize) {
  if (k == 0 || k > experts || logits.size() < std::uint64_t(n) * experts || ids.size() < std::uint64_t(n) * k ||
      weights.size() < std::uint64_t(n) * k)
    throw Error("ref::moe_route: bad sizes");
  std::vector<double> p(experts);
  std::vector<bool> taken(experts);
  for (std::uint64_t t = 0; t < n; ++t) {
    const float* l = logits.data() + t * experts;  // (E)
    double mx = l[0], sum = 0;
    for (std::uint32_t e = 1; e < experts; ++e) mx = std::max(mx, double(l[e]));
    for (std::uint32_t e = 0; e < experts; ++e) sum += p[e] = std::exp(l[e] - mx);
    std::fill(taken.begin(), taken.end(), false);
    double picked = 0;
    for (std::uint32_t j = 0; j < k; ++j) {
      std::uint32_t best = experts;
      for (std::uint32_t e = 0; e < experts; ++e)
        if (!taken[e] && (best == experts || l[e] > l[best])) best = e;
      taken[best] = true;
      ids[t * k + j] = best;
      picked += p[best] / sum;
    }
    for (std::uint32_t j = 0; j < k; ++j)
      weights[t * k + j] = float(p[ids[t * k + j]] / sum / (normalize ? picked : 1.0));
  }
}

void moe_combine(std::span<const float> y, std::span<const float> weights, std::span<float> out, std::uint32_t n,
                 std::uint32_t k, std::uint32_t d, bool accumulate) {
  if (y.size() < std::uint64_t(n) * k * d || weights.size() < std::uint64_t(n) * k ||
      out.size() < std::uint64_t(n) * d)
    throw Error("ref::moe_combine: bad sizes");
  for (std::uint64_t t = 0; t < n; ++t)
    for (std::uint32_t c = 0; c < d; ++c) {
      double acc = accumulate ? out[t * d + c] : 0.0;
      for (std::uint32_t j = 0; j < k; ++j) acc += double(weights[t * k + j]) * y[(t * k + j) * d + c];
      out[t * d + c] = float(acc);
    }
}

}  // namespace vkq::ref
