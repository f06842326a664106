// The tensors of a checkpoint, planned from its config.json: Hugging Face and
// GGUF names, shapes, how each is filled, in the module order the real
// checkpoint's state_dict has (which decides where its shards split).
// Architectures are rows of tables here, not branches of the writers.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace vkq::synth {

enum class Fill {
  normal,  // N(0, initializer_range), rows seeded by name: matrices, embeddings, biases
  ones,    // RMSNorm weights
  values,  // given values (GGUF RoPE factor tensors)
};

struct PlannedTensor {
  std::string hf;    // Hugging Face name; empty for GGUF-only tensors
  std::string gguf;  // GGUF name; empty for tensors llama.cpp does not write
  std::vector<std::uint64_t> shape;  // row-major, outermost first
  Fill fill = Fill::normal;
  std::uint32_t permute_heads = 0;  // GGUF `llama`: q/k rows permuted for adjacent-pair RoPE over this many heads
  std::vector<float> values;        // Fill::values
  std::uint64_t elements() const;
};

struct ModelPlan {
  std::string hf_architecture;    // "LlamaForCausalLM", ...
  std::string gguf_architecture;  // "llama", "qwen2", "qwen3", "phi3"
  std::uint32_t layers = 0, heads = 0, kv_heads = 0, head_dim = 0, dim = 0, ffn = 0, vocab = 0;
  float init_std = 0.02f;         // config's initializer_range
  std::vector<PlannedTensor> tensors;  // state_dict order, then GGUF-only tensors
};

// Plans every tensor of the model `config` describes (its num_hidden_layers
// as given); `extra_hf` names tensors the real checkpoint ships beyond the
// config (Qwen3-0.6B's lm_head.weight next to tied embeddings). Throws
// vkq::FormatError(config_path, "key: problem") for an architecture or a key
// it cannot plan.
ModelPlan plan_model(const nlohmann::json& config, const std::vector<std::string>& extra_hf,
                     const std::filesystem::path& config_path);

}  // namespace vkq::synth
