// A GGUF model loaded by llama.cpp with one context on it: the KV cache, a
// batch, and decode calls that return the last position's logits.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "llama_lib.hpp"

namespace vkq::peer {

enum class Backend { vulkan, cpu };

struct LoadOptions {
  Backend backend = Backend::cpu;
  std::uint32_t n_ctx = 0;    // positions the context holds
  std::uint32_t n_batch = 0;  // the most tokens one decode takes (prompt length)
  int threads = 1;            // CPU threads (the CPU backend, and CPU-side ops under Vulkan)
  ggml_type type_k = GGML_TYPE_F16, type_v = GGML_TYPE_F16;            // the KV cache's types
  llama_flash_attn_type flash_attn = LLAMA_FLASH_ATTN_TYPE_AUTO;      // llama.cpp's default
};

// A saved sequence state (llama_state_seq_get_data of sequence 0) taken
// apart: llama.cpp's own layout of this library version (magic, sequence id,
// one stream, its cells' positions, then per layer the K rows and the V rows
// or, with v_trans, the V elements column by column), read strictly.
struct SeqState {
  std::uint32_t magic = 0;
  std::int32_t seq_id = 0;
  std::uint32_t cells = 0;
  bool v_trans = false;
  struct Layer {
    std::int32_t k_type = 0, v_type = 0;
    std::uint64_t k_row = 0, v_row = 0;  // bytes per cell (v_trans: v_el bytes per element, v_dim elements)
    std::uint32_t v_el = 0, v_dim = 0;
    std::vector<std::uint8_t> k, v;      // cells × k_row; cells × v_row, or v_dim × cells × v_el
  };
  std::vector<Layer> layers;

  // Throws PeerError naming what does not parse (a layout this harness does not know).
  static SeqState parse(std::span<const std::uint8_t> blob);
  std::vector<std::uint8_t> serialize() const;
  // The same layers at `cells` cells, positions 0 .. cells - 1, cell i holding
  // the rows of cell i mod this->cells: a deep cache without computing it.
  SeqState replicated(std::uint32_t cells) const;
  // K and V bytes per cell, every layer.
  std::uint64_t kv_bytes_per_cell() const;
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
  // Sequence 0's state (llama_state_seq_get_data), and setting it back.
  std::vector<std::uint8_t> save_state();
  void load_state(std::span<const std::uint8_t> blob);

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
