// The KV cache of the Vulkan forward pass as codec objects (docs/design.md
// §2): per layer, a key cache built from the key-cache spec (KCacheConfig)
// and a value cache of a VType, each owning its buffers and byte count; the
// forward pass calls before_rope / store / attend and knows no modes. The
// one place a mode picks an implementation is make_key_cache().
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "vkquant/buffer.hpp"
#include "vkquant/device.hpp"
#include "vkquant/kernels/attn.hpp"
#include "vkquant/kernels/attn_kcode.hpp"
#include "vkquant/kernels/rope_freqs.hpp"
#include "vkquant/model/kcache.hpp"
#include "vkquant/stream.hpp"

namespace vkq {

// One layer's key-codec parameters as host arrays: mu (kv, hd) (the
// artifact's mean of the spec's rope mode, or zeros), rot (kv, hd, hd) R_h
// (SRHT, learned, or empty for none), basis (kv, hd, R) U_R (the leading R
// columns of the artifact's basis, R the largest rank of the layer's plan),
// enc_basis (the same shape: the encoder's A of a query-weighted pair; empty:
// basis), both with an alpha-relative head's steps folded in (kresidual.hpp).
// Shared by the device caches and the host twin (model/kv_host.hpp).
struct KLayerParams {
  std::vector<float> mu, rot, basis, enc_basis;
  KResidualLayout residual;     // each KV head's residual (KCacheConfig::residual_plan); stride 0: none
  std::uint32_t basis_cols = 0;  // columns of basis: the largest rank of the layout
  // The transform code (KCacheConfig::transform): rot empty, basis/enc_basis
  // each head's leading columns of the artifact's pair with the steps folded in.
  bool transform = false;
  // Its calibrated levels (n_kv, basis_cols, kTcLevels), each column's
  // width's levels from the artifact (kresidual.hpp); empty: uniform.
  std::vector<float> levels;
};
KLayerParams key_layer_params(const KCacheConfig& k, const ModelConfig& c, const KCalibration* calibration,
                              std::uint32_t layer);

// Scratch the attention calls of every layer share, grown to what a step needs.
class AttnWorkspace {
 public:
  explicit AttnWorkspace(Device& d) : dev_(&d) {}
  // The split-K partials of attention() (nullptr when `bytes` is 0).
  Buffer* split_k(std::uint64_t bytes);
  // attention_kcode()'s scratch, at least `need`.
  kernels::AttnKcodeScratch& kcode(const kernels::AttnKcodeScratchBytes& need);
  std::uint64_t bytes() const { return split_bytes_ + kcode_bytes_; }

 private:
  Device* dev_;
  Buffer split_;
  kernels::AttnKcodeScratch kcode_;
  std::uint64_t split_bytes_ = 0, kcode_bytes_ = 0;
};

// One layer's value cache: fp16, q8 or q4 (vkquant/kernels/attn.hpp), read in
// place by the attention kernels.
class DeviceValueCache {
 public:
  DeviceValueCache(Device& d, VType type, std::uint32_t ctx, std::uint32_t n_kv, std::uint32_t hd);
  // Stores rows t < n of v (n, n_kv*hd) f32 at positions pos0 + t.
  void store(Stream& s, const Buffer& v, std::uint32_t n, std::uint32_t pos0);
  kernels::VCacheView view() const { return {type_, &codes_, scales_ ? &scales_ : nullptr}; }
  std::uint64_t bytes() const { return codes_.size() + (scales_ ? scales_.size() : 0); }

 private:
  VType type_;
  std::uint32_t n_kv_, hd_;
  Buffer codes_, scales_;
};

// One layer's key cache.
class DeviceKeyCache {
 public:
  virtual ~DeviceKeyCache() = default;
  // The layer's keys (n, kv_dim) f32 before RoPE (codes of pre-RoPE keys are taken here).
  virtual void before_rope(Stream&, const Buffer& /*k*/, std::uint32_t /*n*/, std::uint32_t /*pos0*/) {}
  // The same keys after RoPE, at positions pos0 .. pos0 + n - 1.
  virtual void store(Stream& s, const Buffer& k, std::uint32_t n, std::uint32_t pos0) = 0;
  // Causal GQA attention of q (n, heads, hd) post-RoPE over positions
  // 0 .. pos0 + t and `values`, into out (n, heads, hd).
  virtual void attend(Stream& s, const Buffer& q, const DeviceValueCache& values, Buffer& out, std::uint32_t n,
                      std::uint32_t pos0, AttnWorkspace& ws) = 0;
  // Device bytes held (codes, codec parameters, exact front keys, working copies).
  virtual std::uint64_t bytes() const = 0;
  // Bytes of the stored keys themselves (what bits per key coordinate counts).
  virtual std::uint64_t code_bytes() const = 0;
};

// Every layer's key and value caches for `ctx` positions, and what they share
// (the attention workspace, the mean-RoPE table of the post-ropemean mode).
class DeviceKvCache {
 public:
  // Validates the spec (KCacheConfig::validate, validate_vcache) and allocates.
  DeviceKvCache(Device& d, const ModelConfig& c, std::uint32_t ctx, const KCacheConfig& keys, VType values,
                const KCalibration* calibration, const kernels::DeviceRope& rope);
  ~DeviceKvCache();
  DeviceKvCache(const DeviceKvCache&) = delete;
  DeviceKvCache& operator=(const DeviceKvCache&) = delete;

  void before_rope(Stream& s, std::uint32_t layer, const Buffer& k, std::uint32_t n, std::uint32_t pos0);
  // Stores layer `layer`'s post-RoPE keys and its values (n, kv_dim) each.
  void store(Stream& s, std::uint32_t layer, const Buffer& k, const Buffer& v, std::uint32_t n, std::uint32_t pos0);
  void attend(Stream& s, std::uint32_t layer, const Buffer& q, Buffer& out, std::uint32_t n, std::uint32_t pos0);

  std::uint64_t key_bytes() const;    // every layer's key caches (including working copies)
  std::uint64_t value_bytes() const;  // every layer's value caches
  std::uint64_t other_bytes() const;  // the workspace and shared tables
  double key_bits_per_coordinate() const;
  double value_bits_per_coordinate() const;

 private:
  std::uint32_t ctx_, kv_dim_;
  AttnWorkspace ws_;
  Buffer mean_rope_table_;
  std::vector<std::unique_ptr<DeviceKeyCache>> keys_;
  std::vector<DeviceValueCache> values_;
};

}  // namespace vkq
