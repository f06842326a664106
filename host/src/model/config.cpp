#include "vkquant/model/config.hpp"

#include <cmath>
#include <limits>

#include <nlohmann/json.hpp>

#include "vkquant/gguf.hpp"
#include "vkquant/mapped_file.hpp"

namespace vkq {

const char* arch_name(Arch a) { return a == Arch::olmoe ? "olmoe" : "llama"; }

void ModelConfig::validate(const std::filesystem::path& file) const {
  auto fail = [&](const std::string& key, const std::string& what) { throw FormatError(file, key + ": " + what); };
  auto bound = [&](const char* key, std::uint64_t v, std::uint64_t lo, std::uint64_t hi) {
    if (v < lo || v > hi)
      fail(key, std::to_string(v) + " is outside " + std::to_string(lo) + ".." + std::to_string(hi));
  };
  bound("vocab_size", vocab, 1, 1u << 24);
  bound("hidden_size", dim, 1, 1u << 16);
  bound("num_hidden_layers", layers, 1, 1024);
  bound("num_attention_heads", heads, 1, 1024);
  bound("num_key_value_heads", kv_heads, 1, 1024);
  bound("head_dim", head_dim, 2, 256);
  bound("intermediate_size", ffn, 1, 1u << 20);
  bound("max_position_embeddings", ctx, 1, 1u << 22);
  if (heads % kv_heads != 0)
    fail("num_key_value_heads", std::to_string(heads) + " query heads are not a multiple of " +
                                     std::to_string(kv_heads) + " key/value heads");
  if (head_dim % 2 != 0) fail("head_dim", std::to_string(head_dim) + " is odd (RoPE rotates pairs)");
  if (!(rms_eps > 0.0f && rms_eps < 1.0f)) fail("rms_norm_eps", std::to_string(rms_eps) + " is not in (0, 1)");
  if (!(rope_theta > 1.0f && std::isfinite(rope_theta))) fail("rope_theta", std::to_string(rope_theta) + " is not > 1");
  if (experts > 0) {
    bound("num_experts", experts, 1, 256);
    bound("num_experts_per_tok", experts_used, 1, experts);
  }
  if (bos && (*bos < 0 || std::uint32_t(*bos) >= vocab)) fail("bos_token_id", std::to_string(*bos) + " is not a token id");
  if (eos && (*eos < 0 || std::uint32_t(*eos) >= vocab)) fail("eos_token_id", std::to_string(*eos) + " is not a token id");
}

// ---- config.json ----------------------------------------------------------------

namespace {

struct HfReader {
  const nlohmann::json& j;
  const std::filesystem::path& file;

  [[noreturn]] void fail(const std::string& key, const std::string& what) const {
    throw FormatError(file, key + ": " + what);
  }
  bool has(const char* key) const { return j.contains(key) && !j.at(key).is_null(); }
  std::uint64_t uint(const char* key, std::optional<std::uint64_t> fallback = std::nullopt) const {
    if (!has(key)) {
      if (fallback) return *fallback;
      fail(key, "missing");
    }
    const auto& v = j.at(key);
    if (!v.is_number_integer() || (v.is_number_integer() && !v.is_number_unsigned() && v.get<std::int64_t>() < 0))
      fail(key, "expected a non-negative integer, got " + v.dump());
    const std::uint64_t u = v.get<std::uint64_t>();
    if (u > std::numeric_limits<std::uint32_t>::max()) fail(key, v.dump() + " is absurdly large");
    return u;
  }
  double number(const char* key, double fallback) const {
    if (!has(key)) return fallback;
    const auto& v = j.at(key);
    if (!v.is_number()) fail(key, "expected a number, got " + v.dump());
    return v.get<double>();
  }
  bool boolean(const char* key, bool fallback) const {
    if (!has(key)) return fallback;
    const auto& v = j.at(key);
    if (!v.is_boolean()) fail(key, "expected true or false, got " + v.dump());
    return v.get<bool>();
  }
  std::optional<std::int32_t> token(const char* key) const {
    if (!has(key)) return std::nullopt;
    const auto& v0 = j.at(key);
    const auto& v = v0.is_array() && !v0.empty() ? v0.at(0) : v0;  // Llama 3 lists several eos ids
    if (!v.is_number_integer()) fail(key, "expected a token id, got " + v0.dump());
    const auto x = v.get<std::int64_t>();
    if (x < 0 || x > std::numeric_limits<std::int32_t>::max()) fail(key, v0.dump() + " is not a token id");
    return std::int32_t(x);
  }
};

}  // namespace

ModelConfig config_from_hf(const nlohmann::json& j, const std::filesystem::path& file) {
  if (!j.is_object()) throw FormatError(file, "config.json is not a JSON object");
  HfReader r{j, file};
  ModelConfig c;
  if (!r.has("architectures") || !j.at("architectures").is_array() || j.at("architectures").empty() ||
      !j.at("architectures").at(0).is_string())
    r.fail("architectures", "missing or not a list of names");
  c.architecture = j.at("architectures").at(0).get<std::string>();
  if (c.architecture == "LlamaForCausalLM" || c.architecture == "MistralForCausalLM") {
    c.arch = Arch::llama;
    c.qkv_bias = r.boolean("attention_bias", false);
  } else if (c.architecture == "Qwen2ForCausalLM") {
    c.arch = Arch::llama;
    c.qkv_bias = true;
  } else if (c.architecture == "OlmoeForCausalLM") {
    c.arch = Arch::olmoe;
    c.qk_norm = true;
  } else {
    r.fail("architectures", "'" + c.architecture +
                                "' is not supported (LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, OlmoeForCausalLM)");
  }
  if (r.has("rope_scaling")) {
    const auto& rs = j.at("rope_scaling");
    const std::string type = rs.is_object() && rs.contains("rope_type") && rs.at("rope_type").is_string()
                                 ? rs.at("rope_type").get<std::string>()
                                 : (rs.is_object() && rs.contains("type") && rs.at("type").is_string()
                                        ? rs.at("type").get<std::string>()
                                        : rs.dump());
    if (type != "default") r.fail("rope_scaling", "'" + type + "' is not supported (only plain RoPE)");
  }
  if (r.has("hidden_act") && j.at("hidden_act") != "silu")
    r.fail("hidden_act", j.at("hidden_act").dump() + " is not supported (silu only)");
  c.vocab = std::uint32_t(r.uint("vocab_size"));
  c.dim = std::uint32_t(r.uint("hidden_size"));
  c.layers = std::uint32_t(r.uint("num_hidden_layers"));
  c.heads = std::uint32_t(r.uint("num_attention_heads"));
  if (c.heads == 0) r.fail("num_attention_heads", "0");
  c.kv_heads = std::uint32_t(r.uint("num_key_value_heads", c.heads));
  if (!r.has("head_dim") && c.dim % c.heads != 0)
    r.fail("num_attention_heads", std::to_string(c.heads) + " heads do not divide hidden_size " + std::to_string(c.dim));
  c.head_dim = std::uint32_t(r.uint("head_dim", c.dim / c.heads));
  c.ffn = std::uint32_t(r.uint("intermediate_size"));
  c.ctx = std::uint32_t(r.uint("max_position_embeddings", 2048));
  c.rms_eps = float(r.number("rms_norm_eps", 1e-6));
  c.rope_theta = float(r.number("rope_theta", 10000.0));
  c.tied_embeddings = r.boolean("tie_word_embeddings", false);
  if (c.arch == Arch::olmoe) {
    c.experts = std::uint32_t(r.uint("num_experts"));
    c.experts_used = std::uint32_t(r.uint("num_experts_per_tok"));
    c.norm_topk = r.boolean("norm_topk_prob", false);
    if (r.has("clip_qkv")) r.fail("clip_qkv", "is not supported");
  }
  c.bos = r.token("bos_token_id");
  c.eos = r.token("eos_token_id");
  c.validate(file);
  return c;
}

// ---- GGUF metadata ----------------------------------------------------------------

ModelConfig config_from_gguf(const GgufFile& f) {
  const auto arch = f.get_string("general.architecture");
  if (!arch) throw FormatError(f.path(), "general.architecture: missing");
  ModelConfig c;
  c.architecture = *arch;
  if (*arch == "llama" || *arch == "qwen2") {
    c.arch = Arch::llama;
  } else if (*arch == "olmoe") {
    c.arch = Arch::olmoe;
    c.qk_norm = true;
  } else {
    throw FormatError(f.path(), "general.architecture: '" + *arch + "' is not supported (llama, qwen2, olmoe)");
  }
  const std::string p = *arch + ".";
  auto need = [&](const std::string& key) -> std::uint64_t {
    const auto v = f.get_uint(p + key);
    if (!v) throw FormatError(f.path(), p + key + ": missing");
    if (*v > std::numeric_limits<std::uint32_t>::max())
      throw FormatError(f.path(), p + key + ": " + std::to_string(*v) + " is absurdly large");
    return *v;
  };
  auto opt = [&](const std::string& key, std::uint64_t fallback) {
    return f.find(p + key) ? need(key) : fallback;
  };
  c.dim = std::uint32_t(need("embedding_length"));
  c.layers = std::uint32_t(need("block_count"));
  c.heads = std::uint32_t(need("attention.head_count"));
  if (c.heads == 0) throw FormatError(f.path(), p + "attention.head_count: 0");
  c.kv_heads = std::uint32_t(opt("attention.head_count_kv", c.heads));
  // Named by the GGUF keys here (validate() below speaks config.json's names).
  if (c.kv_heads != 0 && c.heads % c.kv_heads != 0)
    throw FormatError(f.path(), p + "attention.head_count_kv: " + std::to_string(c.heads) + " query heads are not a multiple of " +
                                    std::to_string(c.kv_heads) + " key/value heads");
  if (!f.find(p + "attention.key_length") && c.dim % c.heads != 0)
    throw FormatError(f.path(), p + "attention.head_count: " + std::to_string(c.heads) +
                                    " heads do not divide embedding_length " + std::to_string(c.dim));
  c.head_dim = std::uint32_t(opt("attention.key_length", c.dim / c.heads));
  if (f.find(p + "attention.value_length") && need("attention.value_length") != c.head_dim)
    throw FormatError(f.path(), p + "attention.value_length: differs from key_length (not supported)");
  if (f.find(p + "rope.dimension_count") && need("rope.dimension_count") != c.head_dim)
    throw FormatError(f.path(), p + "rope.dimension_count: partial RoPE is not supported");
  c.ctx = std::uint32_t(opt("context_length", 2048));
  c.rms_eps = float(f.get_float(p + "attention.layer_norm_rms_epsilon").value_or(1e-5));
  c.rope_theta = float(f.get_float(p + "rope.freq_base").value_or(10000.0));
  if (c.arch == Arch::olmoe) {
    c.experts = std::uint32_t(need("expert_count"));
    c.experts_used = std::uint32_t(need("expert_used_count"));
    c.norm_topk = f.get_bool(p + "expert_weights_norm").value_or(false);
    c.ffn = std::uint32_t(opt("expert_feed_forward_length", opt("feed_forward_length", 0)));
  } else {
    c.ffn = std::uint32_t(need("feed_forward_length"));
  }
  c.qkv_bias = f.find_tensor("blk.0.attn_q.bias") != nullptr;
  c.tied_embeddings = f.find_tensor("output.weight") == nullptr;
  // Vocabulary: the metadata key, or the embedding table's rows.
  if (const auto v = f.get_uint(p + "vocab_size")) {
    c.vocab = std::uint32_t(std::min<std::uint64_t>(*v, std::numeric_limits<std::uint32_t>::max()));
  } else if (const auto* t = f.find_tensor("token_embd.weight"); t && t->ne.size() == 2) {
    c.vocab = std::uint32_t(std::min<std::uint64_t>(t->ne[1], std::numeric_limits<std::uint32_t>::max()));
  }
  auto token = [&](const char* key) -> std::optional<std::int32_t> {
    const auto v = f.get_uint(key);
    if (!v) return std::nullopt;
    if (*v > std::uint64_t(std::numeric_limits<std::int32_t>::max()))
      throw FormatError(f.path(), std::string(key) + ": " + std::to_string(*v) + " is not a token id");
    return std::int32_t(*v);
  };
  c.bos = token("tokenizer.ggml.bos_token_id");
  c.eos = token("tokenizer.ggml.eos_token_id");
  c.validate(f.path());
  return c;
}

}  // namespace vkq
