#include "plan.hpp"

#include "vkquant/error.hpp"
#include "vkquant/gguf_convert.hpp"
#include "vkquant/mapped_file.hpp"

namespace vkq::synth {

std::uint64_t PlannedTensor::elements() const {
  std::uint64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

namespace {

using json = nlohmann::json;

struct Arch {
  const char* hf;
  const char* gguf;
  bool qkv_bias;   // Qwen2
  bool qk_norm;    // Qwen3: per-head RMSNorm of q and k
  bool fused;      // Phi-3: qkv_proj and gate_up_proj
  bool permute;    // GGUF `llama`: q/k rows permuted (convert_hf_to_gguf.py LlamaModel.permute)
};

constexpr Arch kArchs[] = {
    {"LlamaForCausalLM", "llama", false, false, false, true},
    {"MistralForCausalLM", "llama", false, false, false, true},
    {"Qwen2ForCausalLM", "qwen2", true, false, false, false},
    {"Qwen3ForCausalLM", "qwen3", false, true, false, false},
    {"Phi3ForCausalLM", "phi3", false, false, true, false},
};

struct Reader {
  const json& j;
  const std::filesystem::path& file;
  [[noreturn]] void fail(const std::string& key, const std::string& what) const { throw FormatError(file, key + ": " + what); }
  bool has(const char* key) const { return j.contains(key) && !j.at(key).is_null(); }
  std::uint32_t uint(const char* key) const {
    if (!has(key)) fail(key, "missing");
    const auto& v = j.at(key);
    if (!v.is_number_unsigned() || v.get<std::uint64_t>() == 0 || v.get<std::uint64_t>() > (1u << 24))
      fail(key, "expected a positive integer below 2^24, got " + v.dump());
    return std::uint32_t(v.get<std::uint64_t>());
  }
  double number(const char* key, double fallback) const {
    if (!has(key)) return fallback;
    if (!j.at(key).is_number()) fail(key, "expected a number, got " + j.at(key).dump());
    return j.at(key).get<double>();
  }
};

// convert_hf_to_gguf.py LlamaModel: rope_freqs.weight for rope_type llama3.
std::vector<float> llama3_rope_factors(const Reader& r, const json& rs, std::uint32_t head_dim) {
  auto num = [&](const char* k, double fallback) {
    if (!rs.contains(k)) return fallback;
    if (!rs.at(k).is_number()) r.fail(std::string("rope_scaling.") + k, "expected a number");
    return rs.at(k).get<double>();
  };
  return llama3_rope_freqs(r.number("rope_theta", 10000.0), head_dim, num("factor", 8.0), num("low_freq_factor", 1.0),
                           num("high_freq_factor", 4.0), num("original_max_position_embeddings", 8192));
}

std::vector<float> float_list(const Reader& r, const json& rs, const char* key, std::uint32_t n) {
  const std::string k = std::string("rope_scaling.") + key;
  if (!rs.contains(key) || !rs.at(key).is_array()) r.fail(k, "missing or not a list");
  std::vector<float> out;
  for (const auto& v : rs.at(key)) {
    if (!v.is_number()) r.fail(k, "holds " + v.dump());
    out.push_back(v.get<float>());
  }
  if (out.size() != n) r.fail(k, std::to_string(out.size()) + " factors, head_dim / 2 is " + std::to_string(n));
  return out;
}

}  // namespace

ModelPlan plan_model(const json& j, const std::vector<std::string>& extra_hf, const std::filesystem::path& path) {
  const Reader r{j, path};
  if (!j.is_object() || !j.contains("architectures") || !j.at("architectures").is_array() || j.at("architectures").empty() ||
      !j.at("architectures").at(0).is_string())
    r.fail("architectures", "missing or not a list of names");
  const std::string name = j.at("architectures").at(0).get<std::string>();
  const Arch* a = nullptr;
  for (const auto& row : kArchs)
    if (name == row.hf) a = &row;
  if (!a) r.fail("architectures", "'" + name + "' has no tensor plan (Llama, Mistral, Qwen2, Qwen3, Phi3 ForCausalLM)");

  ModelPlan p;
  p.hf_architecture = a->hf;
  p.gguf_architecture = a->gguf;
  p.vocab = r.uint("vocab_size");
  p.dim = r.uint("hidden_size");
  p.layers = r.uint("num_hidden_layers");
  p.heads = r.uint("num_attention_heads");
  p.kv_heads = r.has("num_key_value_heads") ? r.uint("num_key_value_heads") : p.heads;
  p.head_dim = r.has("head_dim") ? r.uint("head_dim") : p.dim / p.heads;
  p.ffn = r.uint("intermediate_size");
  p.init_std = float(r.number("initializer_range", 0.02));
  if (p.heads % p.kv_heads != 0) r.fail("num_key_value_heads", "does not divide num_attention_heads");
  if (p.head_dim % 2 != 0) r.fail("head_dim", "is odd");
  if (r.has("mlp_bias") && j.at("mlp_bias") == true) r.fail("mlp_bias", "true has no tensor plan");
  const bool tied = j.value("tie_word_embeddings", false);

  const std::uint64_t d = p.dim, q = std::uint64_t(p.heads) * p.head_dim, kv = std::uint64_t(p.kv_heads) * p.head_dim,
                      f = p.ffn;
  auto add = [&](std::string hf, std::string gguf, std::vector<std::uint64_t> shape, Fill fill = Fill::normal,
                 std::uint32_t permute = 0) {
    p.tensors.push_back({std::move(hf), std::move(gguf), std::move(shape), fill, permute, {}});
  };
  add("model.embed_tokens.weight", "token_embd.weight", {p.vocab, d});
  for (std::uint32_t l = 0; l < p.layers; ++l) {
    const std::string h = "model.layers." + std::to_string(l) + ".", g = "blk." + std::to_string(l) + ".";
    if (a->fused) {  // Phi3Attention registers o_proj before qkv_proj
      add(h + "self_attn.o_proj.weight", g + "attn_output.weight", {d, q});
      add(h + "self_attn.qkv_proj.weight", g + "attn_qkv.weight", {q + 2 * kv, d});
      add(h + "mlp.gate_up_proj.weight", g + "ffn_up.weight", {2 * f, d});
      add(h + "mlp.down_proj.weight", g + "ffn_down.weight", {d, f});
    } else {
      for (auto [proj, gname, rows, heads] : {std::tuple{"q", "attn_q", q, p.heads}, std::tuple{"k", "attn_k", kv, p.kv_heads},
                                              std::tuple{"v", "attn_v", kv, 0u}}) {
        const std::uint32_t perm = a->permute ? heads : 0;
        add(h + "self_attn." + proj + "_proj.weight", g + gname + ".weight", {rows, d}, Fill::normal, perm);
        if (a->qkv_bias) add(h + "self_attn." + proj + "_proj.bias", g + gname + ".bias", {rows}, Fill::normal, perm);
      }
      add(h + "self_attn.o_proj.weight", g + "attn_output.weight", {d, q});
      if (a->qk_norm) {
        add(h + "self_attn.q_norm.weight", g + "attn_q_norm.weight", {p.head_dim}, Fill::ones);
        add(h + "self_attn.k_norm.weight", g + "attn_k_norm.weight", {p.head_dim}, Fill::ones);
      }
      add(h + "mlp.gate_proj.weight", g + "ffn_gate.weight", {f, d});
      add(h + "mlp.up_proj.weight", g + "ffn_up.weight", {f, d});
      add(h + "mlp.down_proj.weight", g + "ffn_down.weight", {d, f});
    }
    add(h + "input_layernorm.weight", g + "attn_norm.weight", {d}, Fill::ones);
    add(h + "post_attention_layernorm.weight", g + "ffn_norm.weight", {d}, Fill::ones);
  }
  add("model.norm.weight", "output_norm.weight", {d}, Fill::ones);
  if (!tied) add("lm_head.weight", "output.weight", {p.vocab, d});
  for (const auto& e : extra_hf) {
    if (e != "lm_head.weight" || !tied) r.fail("tie_word_embeddings", "the checkpoint's extra tensor '" + e + "' has no plan");
    add("lm_head.weight", "", {p.vocab, d});  // convert_hf_to_gguf.py drops it when tied
  }

  // What llama.cpp adds for RoPE scaling: a factor per rotated pair.
  if (r.has("rope_scaling")) {
    const json& rs = j.at("rope_scaling");
    const std::string type = rs.value("rope_type", rs.value("type", std::string()));
    if (type == "llama3" && p.gguf_architecture == "llama") {
      p.tensors.push_back({"", "rope_freqs.weight", {p.head_dim / 2}, Fill::values, 0, llama3_rope_factors(r, rs, p.head_dim)});
    } else if ((type == "longrope" || type == "su") && p.gguf_architecture == "phi3") {
      p.tensors.push_back({"", "rope_factors_long.weight", {p.head_dim / 2}, Fill::values, 0,
                           float_list(r, rs, "long_factor", p.head_dim / 2)});
      p.tensors.push_back({"", "rope_factors_short.weight", {p.head_dim / 2}, Fill::values, 0,
                           float_list(r, rs, "short_factor", p.head_dim / 2)});
    }
  }
  return p;
}

}  // namespace vkq::synth
