// The transformer forward pass in plain C++ (llama2.c style, fp64 sums): the
// reference the Vulkan forward is tested against. Slow; for tests and small
// models.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "vkquant/model/kcache.hpp"
#include "vkquant/model/model_file.hpp"

namespace vkq {

class CpuForward {
 public:
  // `ctx`: KV-cache length (0: the model's context length, capped at its
  // sliding window; ModelConfig::context_in_use refuses more). `fp16_kv`: round
  // cached keys and values to fp16, as the Vulkan forward stores them.
  explicit CpuForward(const HostWeights& w, std::uint32_t ctx = 0, bool fp16_kv = false);
  // Keys through the 1-bit codec of DESIGN §2 (encode, then decode at use),
  // as the Vulkan forward does; `calibration` as for VkForwardOptions.
  void set_kcache(const KCacheConfig& k, const KCalibration* calibration);

  // Forgets the sequence: the next token is at position 0.
  void reset() { pos_ = 0; }
  std::uint32_t position() const { return pos_; }
  // Feeds `tokens` at positions position() .. position() + n - 1 and returns
  // their logits (n, vocab). Throws vkq::Error past the context or on an
  // out-of-range token id.
  std::vector<float> forward(std::span<const std::int32_t> tokens);

 private:
  void block(std::uint32_t l, std::vector<float>& x);
  // The key the cache holds for `k` (kv_dim) of layer l at position pos_
  // (pre-RoPE for --kcache-rope pre, else post-RoPE); optionally the code's
  // rotated-domain parts alpha·s and U_r c, and the mean used (kv_dim each).
  void code_key(std::uint32_t l, std::vector<float>& k, float* sign_part, float* resid_part, float* mean_out) const;
  // R (hd, hd) row-major of KV head h in layer l (identity for none).
  std::vector<double> rotation(std::uint32_t l, std::uint32_t h) const;
  const HostWeights& w_;
  std::uint32_t ctx_ = 0, pos_ = 0;
  bool fp16_kv_ = false;
  RopeTable rope_;  // at ctx_
  KCacheConfig kc_;
  const KCalibration* cal_ = nullptr;
  std::vector<std::vector<float>> kcache_, vcache_;  // per layer (ctx, kv_dim)
  std::vector<std::vector<float>> sign_, resid_, mean_;  // post-RoPE codes: per layer (ctx, kv_dim)
};

}  // namespace vkq
