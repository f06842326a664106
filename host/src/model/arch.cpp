#include "vkquant/model/arch.hpp"

#include "vkquant/model/model_file.hpp"

namespace vkq {

const std::vector<ArchSpec>& arch_table() {
  static const std::vector<ArchSpec> table = {
      {.name = "llama",
       .hf = {"LlamaForCausalLM"},
       .gguf = {"llama"},
       .family = Arch::llama,
       .bias_key = true,
       .gguf_permuted_qk = true},
      // Mistral's GGUF files say "llama" (convert_hf_to_gguf.py writes them so).
      {.name = "mistral", .hf = {"MistralForCausalLM"}, .gguf = {}, .family = Arch::llama, .gguf_permuted_qk = true},
      {.name = "qwen2",
       .hf = {"Qwen2ForCausalLM"},
       .gguf = {"qwen2"},
       .family = Arch::llama,
       .qkv_bias = true,
       .window_gated = true},
      {.name = "qwen3",
       .hf = {"Qwen3ForCausalLM"},
       .gguf = {"qwen3"},
       .family = Arch::llama,
       .qk_norm_per_head = true,
       .window_gated = true},
      {.name = "phi3",
       .hf = {"Phi3ForCausalLM"},
       .gguf = {"phi3"},
       .family = Arch::llama,
       .fused_qkv = true,
       .fused_gate_up = true},
      {.name = "olmoe", .hf = {"OlmoeForCausalLM"}, .gguf = {"olmoe"}, .family = Arch::olmoe, .qk_norm = true},
  };
  return table;
}

namespace {

template <typename Field>
const ArchSpec* find(std::string_view name, Field field) {
  for (const ArchSpec& a : arch_table())
    for (const char* n : a.*field)
      if (name == n) return &a;
  return nullptr;
}

template <typename Field>
std::string names(Field field) {
  std::string out;
  for (const ArchSpec& a : arch_table())
    for (const char* n : a.*field) out += (out.empty() ? "" : ", ") + std::string(n);
  return out;
}

// Hugging Face names; experts take the expert index.
std::string hf_name(Role r, const std::string& l, const std::string& ex) {
  switch (r) {
    case Role::embed: return "model.embed_tokens.weight";
    case Role::attn_norm: return l + "input_layernorm.weight";
    case Role::wq: return l + "self_attn.q_proj.weight";
    case Role::wk: return l + "self_attn.k_proj.weight";
    case Role::wv: return l + "self_attn.v_proj.weight";
    case Role::wo: return l + "self_attn.o_proj.weight";
    case Role::bq: return l + "self_attn.q_proj.bias";
    case Role::bk: return l + "self_attn.k_proj.bias";
    case Role::bv: return l + "self_attn.v_proj.bias";
    case Role::q_norm: return l + "self_attn.q_norm.weight";
    case Role::k_norm: return l + "self_attn.k_norm.weight";
    case Role::ffn_norm: return l + "post_attention_layernorm.weight";
    case Role::w_gate: return l + "mlp.gate_proj.weight";
    case Role::w_up: return l + "mlp.up_proj.weight";
    case Role::w_down: return l + "mlp.down_proj.weight";
    case Role::router: return l + "mlp.gate.weight";
    case Role::exp_gate: return ex + "gate_proj.weight";
    case Role::exp_up: return ex + "up_proj.weight";
    case Role::exp_down: return ex + "down_proj.weight";
    case Role::final_norm: return "model.norm.weight";
    case Role::lm_head: return "lm_head.weight";
  }
  return {};
}

// llama.cpp's names (LLM_TENSOR_NAMES).
std::string gguf_name(Role r, const std::string& l) {
  switch (r) {
    case Role::embed: return "token_embd.weight";
    case Role::attn_norm: return l + "attn_norm.weight";
    case Role::wq: return l + "attn_q.weight";
    case Role::wk: return l + "attn_k.weight";
    case Role::wv: return l + "attn_v.weight";
    case Role::wo: return l + "attn_output.weight";
    case Role::bq: return l + "attn_q.bias";
    case Role::bk: return l + "attn_k.bias";
    case Role::bv: return l + "attn_v.bias";
    case Role::q_norm: return l + "attn_q_norm.weight";
    case Role::k_norm: return l + "attn_k_norm.weight";
    case Role::ffn_norm: return l + "ffn_norm.weight";
    case Role::w_gate: return l + "ffn_gate.weight";
    case Role::w_up: return l + "ffn_up.weight";
    case Role::w_down: return l + "ffn_down.weight";
    case Role::router: return l + "ffn_gate_inp.weight";
    case Role::exp_gate: return l + "ffn_gate_exps.weight";
    case Role::exp_up: return l + "ffn_up_exps.weight";
    case Role::exp_down: return l + "ffn_down_exps.weight";
    case Role::final_norm: return "output_norm.weight";
    case Role::lm_head: return "output.weight";
  }
  return {};
}

}  // namespace

const ArchSpec* find_arch_hf(std::string_view name) { return find(name, &ArchSpec::hf); }
const ArchSpec* find_arch_gguf(std::string_view name) { return find(name, &ArchSpec::gguf); }
std::string arch_names_hf() { return names(&ArchSpec::hf); }
std::string arch_names_gguf() { return names(&ArchSpec::gguf); }

TensorRef tensor_ref(const ModelConfig& c, Format format, Role role, std::uint32_t layer, std::uint32_t expert) {
  const bool st = format == Format::safetensors;
  const std::string l = st ? "model.layers." + std::to_string(layer) + "." : "blk." + std::to_string(layer) + ".";
  TensorRef t;
  t.name = st ? hf_name(role, l, l + "mlp.experts." + std::to_string(expert) + ".") : gguf_name(role, l);
  const ArchSpec* a = c.spec;
  // Fused projections (Phi-3): q, k, v rows of one tensor; gate then up rows of another.
  if (a && a->fused_qkv && (role == Role::wq || role == Role::wk || role == Role::wv)) {
    t.name = st ? l + "self_attn.qkv_proj.weight" : l + "attn_qkv.weight";
    t.full_rows = std::uint64_t(c.q_dim()) + 2ull * c.kv_dim();
    t.row0 = role == Role::wq ? 0 : role == Role::wk ? c.q_dim() : std::uint64_t(c.q_dim()) + c.kv_dim();
    t.rows = role == Role::wq ? c.q_dim() : c.kv_dim();
  }
  if (a && a->fused_gate_up && (role == Role::w_gate || role == Role::w_up)) {
    t.name = st ? l + "mlp.gate_up_proj.weight" : l + "ffn_up.weight";
    t.full_rows = 2ull * c.ffn;
    t.row0 = role == Role::w_gate ? 0 : c.ffn;
    t.rows = c.ffn;
  }
  return t;
}

}  // namespace vkq
