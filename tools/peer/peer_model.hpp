// A GGUF model loaded by llama.cpp with one context on it: the KV cache, a
// batch, and decode calls that return the last position's logits.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "llama_lib.hpp"

namespace vkq::peer {

enum class Backend { vulkan, cpu };

struct LoadOptions {
  Backend backend = Backend::cpu;
  std::uint32_t n_ctx = 0;    // positions the context holds
  std::uint32_t n_batch = 0;  // the most tokens one decode takes (prompt length)
  int threads = 1;            // CPU threads (the CPU backend, and CPU-side ops under Vulkan)
};

class PeerModel {
 public:
  // Vulkan: every layer and the KV cache on the first GPU-type device ggml
  // registered; CPU: an empty device list and n_gpu_layers = 0, so nothing is
  // offloaded even with the Vulkan library.
  static std::unique_ptr<PeerModel> load(LlamaLib& lib, const std::filesystem::path& model, const LoadOptions& o);
  ~PeerModel();
  PeerModel(const PeerModel&) = delete;
  PeerModel& operator=(const PeerModel&) = delete;

  std::int32_t n_vocab() const { return n_vocab_; }
  std::uint32_t n_ctx() const;
  std::string desc() const;
  std::uint64_t size_bytes() const;
  std::uint64_t n_params() const;
  // The GPU the model runs on (none for the CPU backend).
  const std::optional<BackendDevice>& gpu() const { return gpu_; }

  // Empties the KV cache (metadata and data): the next decode starts at position 0.
  void clear();
  // Decodes `tokens` at positions pos0, pos0 + 1, ... and waits for the
  // device; returns the logits of the last token (n_vocab floats, valid until
  // the next call).
  std::span<const float> decode(std::span<const llama_token> tokens, llama_pos pos0);

 private:
  explicit PeerModel(LlamaLib& lib) : lib_(lib) {}

  LlamaLib& lib_;
  llama_model* model_ = nullptr;
  llama_context* ctx_ = nullptr;
  llama_batch batch_{};
  bool batch_allocated_ = false;
  std::uint32_t n_batch_ = 0;
  std::int32_t n_vocab_ = 0;
  std::optional<BackendDevice> gpu_;
};

// The most likely token (the first of equal logits).
llama_token argmax(std::span<const float> logits);

}  // namespace vkq::peer
