#include "vkquant/model/calibrate_plan.hpp"

#include <cstdio>

#include "vkquant/model/model_file.hpp"

namespace vkq {

std::uint64_t model_parameters(const ModelConfig& c) {
  auto elements = [&](Role r) {
    std::uint64_t n = 1;
    for (std::uint64_t s : role_shape(c, r)) n *= s;
    return n;
  };
  std::uint64_t per_layer = 0;
  for (Role r : layer_roles(c)) per_layer += elements(r);
  std::uint64_t n = elements(Role::embed) + std::uint64_t(c.layers) * per_layer + elements(Role::final_norm);
  if (!c.tied_embeddings) n += elements(Role::lm_head);
  return n;
}

std::string parameters_label(std::uint64_t n) {
  char buf[32];
  const double m = double(n) / 1e6;
  if (m >= 1000) std::snprintf(buf, sizeof buf, "%.1f B", m / 1000);
  else if (m >= 10) std::snprintf(buf, sizeof buf, "%.0f M", m);
  else std::snprintf(buf, sizeof buf, "%.1f M", m);
  return buf;
}

const char* mlp_when_name(MlpWhen w) { return w == MlpWhen::on ? "on" : w == MlpWhen::off ? "off" : "auto"; }

MlpDecision decide_mlp(MlpWhen when, const ModelConfig& c) {
  MlpDecision d;
  if (when != MlpWhen::automatic) {
    d.learn = when == MlpWhen::on;
    d.reason = std::string(d.learn ? "learned" : "skipped") + " (--mlp " + mlp_when_name(when) + ")";
  } else {
    const std::uint64_t n = model_parameters(c);
    const std::string limit = parameters_label(kMlpAutoMaxParameters);
    d.learn = n <= kMlpAutoMaxParameters;
    d.reason = d.learn ? "learned (model has " + parameters_label(n) + " parameters <= " + limit + "; --mlp off to skip them)"
                       : "skipped (model has " + parameters_label(n) + " parameters > " + limit + "; --mlp on to learn them)";
  }
  if (c.moe() && d.learn) d.reason = "none to learn (MoE experts stay fp16)";
  return d;
}

}  // namespace vkq
