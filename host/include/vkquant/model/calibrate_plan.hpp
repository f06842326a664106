// What `vkquant calibrate` learns besides the keys, decided before any work.
// The keys' rotations are d x d for a head dimension of 64-256; the dense
// MLP matrices' rotations are P x P for P up to 16,384 (the padded input of
// W_down) and learning them grows as P^3 per solver iteration: minutes for a
// 0.5B model's 72 matrices where its keys take seconds. So by default they are
// learned only for small models (docs/design.md §5).
#pragma once

#include <cstdint>
#include <string>

#include "vkquant/model/config.hpp"

namespace vkq {

// Above this many parameters `--mlp auto` skips the MLP rotations.
inline constexpr std::uint64_t kMlpAutoMaxParameters = 100'000'000;

// Parameters of a model with config `c`: the elements of every weight its
// file must hold (embedding, each layer's roles, final norm, the LM head
// unless tied).
std::uint64_t model_parameters(const ModelConfig& c);

// "3.1 M", "494 M", "8.0 B": a parameter count for a message.
std::string parameters_label(std::uint64_t n);

enum class MlpWhen { automatic, on, off };

// The spellings of `calibrate --mlp`: auto, on, off.
const char* mlp_when_name(MlpWhen w);

struct MlpDecision {
  bool learn = false;
  // Why, for the user: "skipped (model has 494 M parameters > 100 M; --mlp on
  // to learn them)".
  std::string reason;
};

// Whether to learn the dense MLP rotations of a model with config `c` when
// asked `when` (automatic: only at kMlpAutoMaxParameters parameters or fewer).
// An MoE model has none to learn (its experts stay fp16); `learn` then
// follows `when` all the same, as calibrate_mlp returns no layers for it.
MlpDecision decide_mlp(MlpWhen when, const ModelConfig& c);

}  // namespace vkq
