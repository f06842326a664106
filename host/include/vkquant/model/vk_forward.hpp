// The transformer forward pass on a Vulkan device: weights uploaded once,
// one tensor at a time, as the file stores them (fp32 norms), a KV cache of
// codec objects (model/kv_cache.hpp), batched prefill and token-by-token
// decode through the kernels of runtime/kernels/{linear,ops,attn}.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <span>
#include <vector>

#include "vkquant/device.hpp"
#include "vkquant/kernels/linear.hpp"
#include "vkquant/model/kcache.hpp"
#include "vkquant/model/model_file.hpp"

namespace vkq {

// How the dense MLP matrices are stored (docs/design.md §3): fp16/fp32 as `weights`
// says, or 1-bit rows of W Rᵀ with the input rotated by R.
struct MlpConfig {
  bool one_bit = false;
  MlpRotation rotation = MlpRotation::structured;  // dense and structured need a calibration with MLP rotations
};

struct VkForwardOptions {
  // Matrices' storage on the device: unset keeps each as the file stores it
  // (F32, F16, BF16 or a ggml block type, dequantized in registers by the
  // kernels); set, every matrix is converted to it (f32 or f16) on load.
  // Norms, biases and the MoE router are fp32 either way.
  std::optional<kernels::WeightType> weights;
  std::uint32_t ctx = 0;          // KV-cache length (0: the model's context length; ModelConfig::context_in_use)
  std::uint32_t max_batch = 256;  // tokens per prefill step
  KCacheConfig kcache;            // fp16 keys (default) or the 1-bit code
  VType vcache = VType::f16;      // values: fp16, q8 or q4 (vkquant/kernels/attn.hpp)
  MlpConfig mlp;                  // 1-bit MLP matrices (dense models; MoE experts stay fp16)
  const KCalibration* calibration = nullptr;  // means, learned rotations, bases (--rotations)
  // Called after every step with each layer's keys before and after RoPE,
  // (n, kv_heads * head_dim) each: what `vkquant calibrate` measures.
  std::function<void(std::uint32_t layer, const float* pre, const float* post, std::uint32_t n)> key_tap;
  // The same for the queries, (n, heads * head_dim) each: the calibration
  // queries' second moments that the precision policy weighs key errors by.
  std::function<void(std::uint32_t layer, const float* pre, const float* post, std::uint32_t n)> query_tap;
};

class VkForward {
 public:
  // Uploads the model's weights to `device`; `progress` (optional) is called
  // with (tensors done, tensors total).
  VkForward(Device& device, const ModelFile& model, const VkForwardOptions& options = {},
            const std::function<void(std::size_t, std::size_t)>& progress = {});
  ~VkForward();
  VkForward(const VkForward&) = delete;
  VkForward& operator=(const VkForward&) = delete;

  const ModelConfig& config() const;
  std::uint32_t ctx() const;
  // Forgets the sequence: the next token is at position 0.
  void reset();
  std::uint32_t position() const;
  // Feeds `tokens` at positions position() .. position() + n - 1 (in batches
  // of max_batch) and returns the logits of every token (n, vocab) when
  // `all_logits`, else of the last one (vocab). Throws vkq::Error past the
  // context or on an out-of-range id.
  std::vector<float> forward(std::span<const std::int32_t> tokens, bool all_logits = false);
  // The same with every token's logits, handed to `each_batch` one prefill
  // batch at a time ((rows <= max_batch, vocab) from token `first`), so a long
  // sequence never holds more than max_batch rows of logits (ppl at 32k
  // positions and a 152k vocabulary: 156 MB, not 20 GB).
  void forward(std::span<const std::int32_t> tokens,
               const std::function<void(std::size_t first, std::span<const float> logits)>& each_batch);
  // For timing at a context depth without its prefill (as llama-bench -d,
  // minus the hours of prefill on a slow device): fills positions
  // position() .. depth - 1 of every layer's key and value caches with
  // pseudo-random keys and values (normal, seeded) written through each
  // cache's own store (codes, scales and decoded copies as the codec makes
  // them), and moves the position to depth. The model does not run: what is
  // generated after it is meaningless; the work per token is what a real
  // context of that depth costs. Throws vkq::Error past the context.
  void fill_synthetic(std::uint32_t depth, std::uint64_t seed = 1);
  // Bytes of device memory held (weights, KV cache, activations).
  std::uint64_t device_bytes() const;
  // Where the device bytes go.
  struct Memory {
    std::uint64_t weights = 0;       // matrices, norms, biases; 1-bit MLP codes and rotations
    std::uint64_t file_weights = 0;  // the stored bytes those were loaded from (tied embeddings once)
    std::uint64_t keys = 0;          // key_bytes()
    std::uint64_t values = 0;        // value_bytes()
    std::uint64_t other = 0;         // activations, attention scratch, RoPE tables, key taps
  };
  Memory memory() const;
  // SHA-256 (hex) of the stored weights, taken while uploading them
  // (model_sha256() of the same file); a calibration artifact must carry it.
  const std::string& model_sha256() const;
  // Seconds the constructor spent reading and uploading the weights.
  double load_seconds() const;
  // Device bytes of the key caches of every layer for the whole context (fp16
  // keys, or 1-bit codes + alpha + residual coefficients + protected front
  // tokens + codec parameters, + the decoded working copy of pre-RoPE codes),
  // and bits per key coordinate of the stored keys (codes and front only).
  std::uint64_t key_bytes() const;
  double key_bits_per_coordinate() const;
  // The same for the value caches (fp16 16, q8 8.5, q4 5 bits per coordinate).
  std::uint64_t value_bytes() const;
  double value_bits_per_coordinate() const;
  // Stored bits per MLP weight (codes, scales and rotations; 16 for fp16).
  double mlp_bits_per_weight() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vkq
