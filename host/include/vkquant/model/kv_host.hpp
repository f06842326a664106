// The host twin of DeviceKvCache (model/kv_cache.hpp) for the CPU forward
// pass: the same key-cache spec and value type, built from the vkq::ref
// functions the kernels are tested against (ref::kcode_encode/decode,
// ref::attention_kcode, ref::vcache_pack, ref::attention), one position at a
// time. CpuForward calls store / attend and knows no modes.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "vkquant/half.hpp"
#include "vkquant/model/kcache.hpp"
#include "vkquant/model/kv_cache.hpp"
#include "vkquant/reference/kcodec.hpp"
#include "vkquant/rope.hpp"

namespace vkq {

class HostKvCache {
 public:
  // `fp16`: fp16 keys and values are rounded to fp16 as the device stores
  // them (else kept in fp32: the exact reference). Validates the spec.
  HostKvCache(const ModelConfig& c, std::uint32_t ctx, const KCacheConfig& keys, VType values,
              const KCalibration* calibration, const RopeTable& rope, bool fp16);
  // Layer l's key before and after RoPE and its value (kv_dim each) at position pos.
  void store(std::uint32_t l, std::uint32_t pos, std::span<const float> k_pre, std::span<const float> k_post,
             std::span<const float> v);
  // out (heads * hd) = causal GQA attention of q (heads * hd, post-RoPE) at
  // position pos over positions 0..pos of layer l.
  void attend(std::uint32_t l, std::uint32_t pos, std::span<const float> q, std::span<float> out) const;

 private:
  struct Layer {
    KLayerParams params;
    std::vector<float> keys;  // (ctx, kv_dim): fp16 keys, decoded pre-RoPE keys or exact front keys
    std::vector<float> values;
    std::vector<std::uint32_t> bits;  // in-place scored codes: (ctx, kv, hd/32)
    std::vector<half_bits> alpha, coef;
  };
  ref::KCodec codec(const Layer& L) const;
  std::uint32_t ctx_, kv_, hd_, heads_;
  KCacheConfig k_;
  VType v_;
  bool fp16_;
  const RopeTable* rope_;
  std::vector<Layer> layers_;
};

}  // namespace vkq
