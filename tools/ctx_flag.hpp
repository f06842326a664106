// --ctx of `ppl`, `calibrate` and `gauge`: the chunk length a text is cut
// into (ppl_plan) and the KV-cache length.
#pragma once

#include <cstdint>
#include <string>

#include "model_flags.hpp"
#include "vkquant/error.hpp"

namespace vkq::cli {

// context_for(c, requested), refusing a --ctx longer than the model's context
// (context_for alone would cut it to the model's).
inline std::uint32_t ctx_flag(const ModelConfig& c, std::uint32_t requested) {
  if (requested > c.ctx)
    throw Error("--ctx: " + std::to_string(requested) + " is longer than the model's context of " + std::to_string(c.ctx));
  return context_for(c, requested);
}

}  // namespace vkq::cli
