// Every layer's keys, before and after RoPE, from a model's forward pass over
// a text: what `vkquant calibrate` learns the K-cache codec from and what
// `vkquant gauge MODEL` measures (one capture for both).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "vkquant/kernels/linear.hpp"
#include "vkquant/model/model_file.hpp"

namespace vkq {

class Device;

struct KeyCaptureOptions {
  // Keys to capture: exactly this many (fewer only when the text has fewer
  // tokens). Only that many tokens are fed: the last chunk is cut short.
  std::uint64_t tokens = 32768;
  // Chunk length and KV-cache length (0: ModelConfig::context_in_use(0)).
  // The text is cut as `vkquant ppl` cuts it (ppl_plan): each chunk starts at
  // position 0 with BOS.
  std::uint32_t ctx = 0;
  // Matrix storage on the device (VkForwardOptions::weights; unset: as stored).
  std::optional<kernels::WeightType> weights;
  // Also sum the queries' second moments (CapturedKeys::q2_pre, q2_post):
  // what the precision policy's query-weighted objective needs.
  bool queries = false;
  // Where the forward passes run: on `device` through VkForward, or on the
  // host CPU (layer by layer over all captured tokens, cpu::kernels; one
  // layer's weights in fp32 at a time). auto: the host when the device is a
  // CPU (lavapipe), where the native kernels are several times faster.
  enum class On { automatic, device, host };
  On on = On::automatic;
};

struct CapturedKeys {
  std::vector<std::vector<float>> pre, post;  // per layer: (tokens, kv_heads * head_dim)
  std::vector<std::uint32_t> positions;       // (tokens): the position of each key in its chunk
  std::uint64_t tokens = 0;
  // With KeyCaptureOptions::queries, per layer: the second moment of the
  // queries that score each KV head's keys, E[q qᵀ] over the captured tokens
  // and the head's GQA group, (kv_heads, hd, hd) row-major, before and after
  // RoPE (the spaces of the pre-RoPE and the post-RoPE key codes).
  std::vector<std::vector<double>> q2_pre, q2_post;
  std::string model_sha256;                   // VkForward::model_sha256, taken while loading
  double seconds = 0;                         // loading and the forward passes
  double load_seconds = 0;                    // of those, reading and uploading the weights
  std::string ran_on;                         // "device" or "host (avx512)": where the forward passes ran
};

// Runs `model` over the text file `text` on `device` (or the host CPU, see
// KeyCaptureOptions::on) and keeps every layer's keys. `progress(label,
// fraction)` reports loading, then capturing after every prefill batch
// (VkForwardOptions::max_batch tokens; on the host after every layer) with
// the tokens per second so far and the time left. Throws vkq::Error when the
// text holds no tokens.
CapturedKeys capture_keys(Device& device, const ModelFile& model, const std::filesystem::path& text,
                          const KeyCaptureOptions& o,
                          const std::function<void(const std::string&, double)>& progress = {});

}  // namespace vkq
