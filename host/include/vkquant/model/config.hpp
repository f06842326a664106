// A transformer's hyper-parameters, read from a Hugging Face config.json or a
// GGUF file's metadata, in one form for every loader and forward pass.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace vkq {

class GgufFile;

enum class Arch {
  llama,  // LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM (GGUF llama, qwen2)
  olmoe,  // OlmoeForCausalLM (GGUF olmoe): router, top-k experts, QK-norm
};

struct ModelConfig {
  Arch arch = Arch::llama;
  std::string architecture;  // as the file names it: "LlamaForCausalLM", "llama", ...
  std::uint32_t vocab = 0;
  std::uint32_t dim = 0;       // hidden size
  std::uint32_t layers = 0;
  std::uint32_t heads = 0;     // query heads
  std::uint32_t kv_heads = 0;  // key/value heads (GQA: heads % kv_heads == 0)
  std::uint32_t head_dim = 0;
  std::uint32_t ffn = 0;       // dense MLP width, or each expert's width
  std::uint32_t ctx = 0;       // max_position_embeddings / context_length
  float rms_eps = 1e-6f;
  float rope_theta = 10000.0f;
  bool tied_embeddings = false;  // no separate LM head: logits use the embedding table
  bool qkv_bias = false;         // Qwen2
  bool qk_norm = false;          // OLMoE: RMSNorm over the whole q / k projections
  std::uint32_t experts = 0;       // 0: dense MLP
  std::uint32_t experts_used = 0;  // top-k
  bool norm_topk = false;          // renormalise the top-k router weights
  std::optional<std::int32_t> bos, eos;

  std::uint32_t q_dim() const { return heads * head_dim; }
  std::uint32_t kv_dim() const { return kv_heads * head_dim; }
  bool moe() const { return experts > 0; }
  // Checks the numbers against each other and against sane bounds; throws
  // FormatError naming `file` and the offending key.
  void validate(const std::filesystem::path& file) const;
};

// From a Hugging Face config.json (already parsed strictly).
ModelConfig config_from_hf(const nlohmann::json& j, const std::filesystem::path& file);
// From GGUF metadata (general.architecture llama, qwen2 or olmoe).
ModelConfig config_from_gguf(const GgufFile& f);

const char* arch_name(Arch a);

}  // namespace vkq
