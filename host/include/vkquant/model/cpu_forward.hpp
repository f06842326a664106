// The transformer forward pass in plain C++ (llama2.c style, fp64 sums): the
// reference the Vulkan forward is tested against. Slow; for tests and small
// models.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include <memory>

#include "vkquant/model/kcache.hpp"
#include "vkquant/model/kv_host.hpp"
#include "vkquant/model/model_file.hpp"

namespace vkq {

class CpuForward {
 public:
  // `ctx`: KV-cache length (0: the model's context length, capped at its
  // sliding window; ModelConfig::context_in_use refuses more). `fp16_kv`: round
  // cached keys and values to fp16, as the Vulkan forward stores them.
  explicit CpuForward(const HostWeights& w, std::uint32_t ctx = 0, bool fp16_kv = false);
  // Keys through the key-cache spec `k` and values stored as `v`, as the
  // Vulkan forward does (the host twin, model/kv_host.hpp); `calibration` as
  // for VkForwardOptions. Forgets the cached sequence.
  void set_kcache(const KCacheConfig& k, const KCalibration* calibration, VType v = VType::f16);

  // Forgets the sequence: the next token is at position 0.
  void reset() { pos_ = 0; }
  std::uint32_t position() const { return pos_; }
  // Feeds `tokens` at positions position() .. position() + n - 1 and returns
  // their logits (n, vocab). Throws vkq::Error past the context or on an
  // out-of-range token id.
  std::vector<float> forward(std::span<const std::int32_t> tokens);

 private:
  void block(std::uint32_t l, std::vector<float>& x);
  const HostWeights& w_;
  std::uint32_t ctx_ = 0, pos_ = 0;
  bool fp16_kv_ = false;
  RopeTable rope_;  // at ctx_
  std::unique_ptr<HostKvCache> kv_;
};

}  // namespace vkq
