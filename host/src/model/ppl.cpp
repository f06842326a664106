#include "vkquant/model/ppl.hpp"

#include <algorithm>
#include <cmath>

#include "vkquant/error.hpp"
#include "vkquant/model/vk_forward.hpp"

namespace vkq {

double kl_div(std::span<const float> a, std::span<const float> b) {
  auto lse = [](std::span<const float> x) {
    double mx = -INFINITY;
    for (float v : x) mx = std::max(mx, double(v));
    double s = 0;
    for (float v : x) s += std::exp(double(v) - mx);
    return mx + std::log(s);
  };
  const double la = lse(a), lb = lse(b);
  double kl = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double lp = double(a[i]) - la, lq = double(b[i]) - lb;
    kl += std::exp(lp) * (lp - lq);
  }
  return std::max(0.0, kl);
}

std::vector<PplSums> score_ppl(const PplPlan& plan, std::span<VkForward* const> runs,
                               const std::function<void(std::uint64_t, const std::vector<PplSums>&)>& progress) {
  if (runs.empty()) throw Error("score_ppl: no configuration to score");
  const std::size_t vocab = runs[0]->config().vocab;
  for (const VkForward* r : runs)
    if (r->config().vocab != vocab) throw Error("score_ppl: the configurations' vocabularies differ");
  std::vector<PplSums> sums(runs.size());
  std::uint64_t scored = 0;
  auto row_of = [&](std::span<const float> logits, std::size_t j) { return logits.subspan(j * vocab, vocab); };
  for (const PplChunk& ch : plan.chunks) {
    if (ch.input.size() != ch.targets.size())
      throw Error("score_ppl: a chunk of " + std::to_string(ch.input.size()) + " tokens has " +
                  std::to_string(ch.targets.size()) + " targets");
    for (VkForward* r : runs) r->reset();
    const std::span<const std::int32_t> input(ch.input);
    runs[0]->forward(input, [&](std::size_t first, std::span<const float> base) {
      const std::size_t rows = base.size() / vocab;
      for (std::size_t j = 0; j < rows; ++j) sums[0].bits += bits_of(row_of(base, j), ch.targets[first + j]);
      for (std::size_t i = 1; i < runs.size(); ++i) {
        const auto logits = runs[i]->forward(input.subspan(first, rows), /*all_logits=*/true);
        for (std::size_t j = 0; j < rows; ++j) {
          const auto ref = row_of(base, j), row = row_of(logits, j);
          sums[i].bits += bits_of(row, ch.targets[first + j]);
          sums[i].kl += kl_div(ref, row);
          sums[i].agree += argmax(ref) == argmax(row);
        }
      }
      scored += rows;
      if (progress) progress(scored, sums);
    });
  }
  return sums;
}

}  // namespace vkq
