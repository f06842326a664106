// The scoring of `vkquant ppl`: bits of every target of a plan (ppl_plan),
// and with several configurations, each one's KL divergence and top-1
// agreement against the first, in memory that does not grow with the context.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "vkquant/model/sampling.hpp"

namespace vkq {

class VkForward;

// KL(p || q) in nats for the softmax of logits a (p) and b (q), in fp64.
double kl_div(std::span<const float> a, std::span<const float> b);

// One configuration's sums over the scored tokens.
struct PplSums {
  double bits = 0;          // sum of -log2 softmax(logits)[target]
  double kl = 0;            // sum of KL(first configuration || this one), nats (0 for the first)
  std::uint64_t agree = 0;  // tokens whose argmax is the first configuration's
};

// Feeds every chunk of `plan` to each forward of `runs` (all of one model,
// each reset at a chunk's start) and sums its bits, KL and agreement against
// runs[0]. runs[0] hands its logits over one prefill batch at a time and the
// others run that same batch in lockstep, so no configuration holds more than
// a batch of logits: ctx x vocab floats would be 20 GB at 32k positions and a
// 152k vocabulary. `progress(tokens scored, sums so far)` after each batch.
std::vector<PplSums> score_ppl(const PplPlan& plan, std::span<VkForward* const> runs,
                               const std::function<void(std::uint64_t, const std::vector<PplSums>&)>& progress = {});

}  // namespace vkq
