// A transformer's hyper-parameters, read from a Hugging Face config.json or a
// GGUF file's metadata, in one form for every loader and forward pass.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "vkquant/rope.hpp"

namespace vkq {

class GgufFile;

// The forward pass's family; which checkpoints belong to it, their tensor
// names and options, are the tables of vkquant/model/arch.hpp.
enum class Arch {
  llama,  // dense: Llama 1-3.x, Mistral, Qwen2/2.5, Qwen3, Phi-3/3.5, SmolLM2, TinyLlama
  olmoe,  // OlmoeForCausalLM (GGUF olmoe): router, top-k experts, QK-norm
};
struct ArchSpec;

struct ModelConfig {
  Arch arch = Arch::llama;
  std::string architecture;  // as the file names it: "LlamaForCausalLM", "llama", ...
  const ArchSpec* spec = nullptr;  // its row of the architecture table
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
  RopeScaling rope_scaling;        // rope_scaling / GGUF rope.scaling.* (and rope_freqs.weight)
  std::uint32_t sliding_window = 0;  // keys further back than this are not attended (0: none)
  bool tied_embeddings = false;  // no separate LM head: logits use the embedding table
  bool qkv_bias = false;         // Qwen2
  bool qk_norm = false;          // RMSNorm of q and k before RoPE: OLMoE over the whole projection,
  bool qk_norm_per_head = false;  // Qwen3 over each head (weights (hd))
  std::uint32_t experts = 0;       // 0: dense MLP
  std::uint32_t experts_used = 0;  // top-k
  bool norm_topk = false;          // renormalise the top-k router weights
  std::optional<std::int32_t> bos, eos;

  std::uint32_t q_dim() const { return heads * head_dim; }
  std::uint32_t kv_dim() const { return kv_heads * head_dim; }
  bool moe() const { return experts > 0; }
  // The context a forward pass uses when asked for `requested` positions (0:
  // the model's own, capped at the sliding window and, for LongRoPE, at the
  // original context, where Hugging Face uses the short factors). Throws vkq::Error naming
  // the config key when the request needs what is not implemented (a context
  // past the sliding window).
  std::uint32_t context_in_use(std::uint32_t requested) const;
  // The RoPE frequency table at a context of `ctx` positions.
  RopeTable rope_table(std::uint32_t ctx) const { return vkq::rope_table(rope_theta, head_dim, rope_scaling, ctx); }
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
