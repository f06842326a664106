// Architectures as data (in the spirit of llama.cpp's tensor-name tables):
// one row per architecture with its names in config.json ("architectures")
// and GGUF (general.architecture), its options, and where each role's tensor
// lives in either file format. A new architecture is a row here plus, where
// its math differs, one small function in the forward passes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "vkquant/model/config.hpp"

namespace vkq {

enum class Role;
enum class Format;

struct ArchSpec {
  const char* name;                     // short name: "llama", "qwen2", ...
  std::vector<const char*> hf;          // config.json architectures[0] values
  std::vector<const char*> gguf;        // general.architecture values
  Arch family;                          // the forward pass it runs on
  bool qkv_bias = false;                // q/k/v projections always have biases (Qwen2)
  bool bias_key = false;                // config.json attention_bias decides (Llama)
  bool qk_norm = false;                 // RMSNorm of the whole q / k projections (OLMoE)
  bool qk_norm_per_head = false;        // RMSNorm of each q / k head, weights (hd) (Qwen3)
  bool gguf_permuted_qk = false;        // GGUF q/k rows are in adjacent-pair order (llama)
  bool fused_qkv = false;               // one qkv_proj / attn_qkv tensor: q, k, v rows (Phi-3)
  bool fused_gate_up = false;           // one gate_up_proj / ffn_up tensor: gate, up rows (Phi-3)
  bool window_gated = false;            // sliding_window applies only with use_sliding_window (Qwen2/3)
};

// Every supported architecture, in documentation order.
const std::vector<ArchSpec>& arch_table();
// The row whose hf (or gguf) names include `name`; nullptr when none.
const ArchSpec* find_arch_hf(std::string_view name);
const ArchSpec* find_arch_gguf(std::string_view name);
// "A, B, C": every name of the kind, for "not supported (...)" messages.
std::string arch_names_hf();
std::string arch_names_gguf();

// Where a role's weight is: a tensor name, and for fused tensors the rows it
// takes (row0 .. row0+rows of a [full_rows, ...] tensor); rows == 0: whole.
struct TensorRef {
  std::string name;
  std::uint64_t row0 = 0, rows = 0, full_rows = 0;
};
// The tensor of `role` in layer `layer` (expert `expert` for per-expert
// safetensors) under config `c` stored in `format`.
TensorRef tensor_ref(const ModelConfig& c, Format format, Role role, std::uint32_t layer, std::uint32_t expert = 0);

}  // namespace vkq
