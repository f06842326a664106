// libFuzzer: a K-cache calibration artifact (*.vkq.safetensors) through
// read_kcache_artifact against a tiny model written once per process
// (kcache_model.hpp; the seeds are calibrations of that model). An accepted
// artifact must hold every tensor at the size its metadata promises, and
// policy tables and plans of its heads that the policy can solve.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "fuzz_common.hpp"
#include "kcache_model.hpp"
#include "vkquant/error.hpp"
#include "vkquant/model/kcache.hpp"
#include "vkquant/model/kv_policy.hpp"
#include "vkquant/model/model_file.hpp"

namespace {

const vkq::ModelFile& model() {
  static const vkq::ModelFile m = [] {
    const auto dir = vkq_fuzz::scratch_dir() / "model";
    vkq_fuzz::write_fuzz_model(dir);
    return vkq::ModelFile::open(dir);
  }();
  return m;
}

// One rope mode of an accepted artifact: a layer each, every tensor full size.
void check_mode(const std::vector<vkq::KLayerCalib>& mode, const vkq::KCalibration& k) {
  if (mode.size() != k.layers) __builtin_trap();
  const std::size_t kv = k.kv_heads, hd = k.head_dim;
  for (const auto& L : mode)
  {
    if (L.mean.size() != kv * hd || L.rot.size() != kv * hd * hd || L.basis.size() != (k.rank ? kv * hd * k.rank : 0))
      __builtin_trap();
    for (const std::uint32_t b : {4u, 2u, 1u})  // each width's steps: none, or one per (head, column), all > 0
      if (!L.arel_step(b).empty() &&
          (L.arel_step(b).size() != kv * k.rank ||
           std::any_of(L.arel_step(b).begin(), L.arel_step(b).end(), [](float x) { return !(x > 0); })))
        __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const vkq::ModelFile& m = model();
  const auto path = vkq_fuzz::write_input("input.vkq.safetensors", data, size);
  try {
    const auto k = vkq::read_kcache_artifact(path, m);
    const auto& c = m.config();
    if (k.layers != c.layers || k.kv_heads != c.kv_heads || k.head_dim != c.head_dim || k.rank > k.head_dim)
      __builtin_trap();
    check_mode(k.post, k);
    check_mode(k.pre, k);
    if (!k.ropemean.empty()) check_mode(k.ropemean, k);  // absent in format version 1
    const std::size_t heads = std::size_t(k.layers) * k.kv_heads;
    for (const auto& [rope, t] : k.policy) {
      if (t.loss.size() != heads * t.options.size() || (!t.head_kl.empty() && t.head_kl.size() != heads)) __builtin_trap();
      for (const auto& o : t.options)
        if (o.rank > k.rank) __builtin_trap();
      const auto p = vkq::solve_policy(t, 1.0 + 16.0 / k.head_dim + 0.5);
      if (p.heads.size() != heads) __builtin_trap();
    }
    for (const auto& [rope, plan] : k.plans) {
      if (plan.size() != heads) __builtin_trap();
      for (const auto& r : plan)
        if (r.rank > k.rank) __builtin_trap();
    }
  } catch (const vkq::Error&) {
  }
  return 0;
}
