#include "vkquant/model/config.hpp"

#include <cmath>
#include <limits>

#include <nlohmann/json.hpp>

#include "vkquant/gguf.hpp"
#include "vkquant/model/arch.hpp"
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
  // The RoPE table must build for every context up to the model's own.
  try {
    (void)rope_table(ctx);
    if (rope_scaling.type == RopeType::longrope) (void)rope_table(1);
  } catch (const Error& e) {
    fail("rope_scaling", std::string(e.what()).substr(std::string("rope_table: ").size()));
  }
}

std::uint32_t ModelConfig::context_in_use(std::uint32_t requested) const {
  std::uint32_t fallback = sliding_window ? std::min(ctx, sliding_window) : ctx;
  // LongRoPE picks its factors by the context in use: Hugging Face uses the
  // short ones while a sequence fits the original context, so the default does too.
  if (rope_scaling.type == RopeType::longrope && rope_scaling.original_ctx)
    fallback = std::min(fallback, rope_scaling.original_ctx);
  const std::uint32_t want = requested ? std::min(requested, ctx) : fallback;
  // Keys past the window are masked by the model; vkquant's attention reads
  // every cached key, which agrees exactly while the context fits the window.
  if (sliding_window && want > sliding_window)
    throw Error("sliding_window: " + std::to_string(sliding_window) + " is smaller than the context in use (" +
                std::to_string(want) + " positions); sliding-window attention is not implemented, use a context <= " +
                std::to_string(sliding_window));
  return want;
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

// rope_scaling of config.json, as Hugging Face's modeling_rope_utils reads it.
// Every key must be one the type uses: an unknown one may change the math.
RopeScaling hf_rope_scaling(const HfReader& top, std::uint32_t max_positions) {
  const auto& rs = top.j.at("rope_scaling");
  if (!rs.is_object()) top.fail("rope_scaling", "expected an object, got " + rs.dump());
  const HfReader r{rs, top.file};
  auto key = [](const char* k) { return std::string("rope_scaling.") + k; };
  const char* type_key = r.has("rope_type") ? "rope_type" : "type";
  if (!r.has(type_key)) top.fail(key("rope_type"), "missing");
  if (!rs.at(type_key).is_string()) top.fail(key(type_key), "expected a name, got " + rs.at(type_key).dump());
  const std::string type = rs.at(type_key).get<std::string>();
  RopeScaling s;
  std::vector<std::string> allowed = {"rope_type", "type"};
  auto number = [&](const char* k, double fallback, bool required = false) {
    allowed.push_back(k);
    if (!r.has(k)) {
      if (required) top.fail(key(k), "missing (rope_type '" + type + "' needs it)");
      return fallback;
    }
    const auto& v = rs.at(k);
    if (!v.is_number()) top.fail(key(k), "expected a number, got " + v.dump());
    const double x = v.get<double>();
    if (!std::isfinite(x) || x <= 0.0) top.fail(key(k), v.dump() + " is not a positive number");
    return x;
  };
  auto factors = [&](const char* k) {
    allowed.push_back(k);
    if (!r.has(k) || !rs.at(k).is_array()) top.fail(key(k), "missing or not a list of numbers");
    std::vector<double> out;
    for (const auto& v : rs.at(k)) {
      if (!v.is_number() || !(v.get<double>() > 0.0) || !std::isfinite(v.get<double>()))
        top.fail(key(k), "holds " + v.dump() + ", not a positive number");
      out.push_back(v.get<double>());
    }
    return out;
  };
  auto original = [&](bool required) -> std::uint32_t {
    allowed.push_back("original_max_position_embeddings");
    if (r.has("original_max_position_embeddings")) return std::uint32_t(r.uint("original_max_position_embeddings"));
    if (top.has("original_max_position_embeddings")) return std::uint32_t(top.uint("original_max_position_embeddings"));
    if (required) top.fail(key("original_max_position_embeddings"), "missing (rope_type '" + type + "' needs it)");
    return max_positions;
  };
  if (type == "default") {
  } else if (type == "linear") {
    s.type = RopeType::linear;
    s.factor = number("factor", 1.0, true);
  } else if (type == "llama3") {
    s.type = RopeType::llama3;
    s.factor = number("factor", 1.0, true);
    s.low_freq_factor = number("low_freq_factor", 1.0, true);
    s.high_freq_factor = number("high_freq_factor", 4.0, true);
    s.original_ctx = original(true);
    if (!(s.high_freq_factor > s.low_freq_factor))
      top.fail(key("high_freq_factor"), "must be larger than low_freq_factor");
  } else if (type == "yarn") {
    s.type = RopeType::yarn;
    s.factor = number("factor", 1.0, true);
    s.original_ctx = original(false);
    s.beta_fast = number("beta_fast", 32.0);
    s.beta_slow = number("beta_slow", 1.0);
    s.attention_factor = number("attention_factor", 0.0);
    s.mscale = number("mscale", 0.0);
    s.mscale_all_dim = number("mscale_all_dim", 0.0);
    allowed.push_back("truncate");
    s.truncate = r.boolean("truncate", true);
  } else if (type == "longrope" || type == "su") {  // "su": its name in early Phi-3 configs
    s.type = RopeType::longrope;
    s.original_ctx = original(true);
    s.long_factors = factors("long_factor");
    s.short_factors = factors("short_factor");
    s.attention_factor = number("attention_factor", 0.0);
    allowed.push_back("factor");  // Hugging Face derives it from the two context lengths
    s.factor = double(max_positions) / double(s.original_ctx);
  } else {
    top.fail(key(type_key), "'" + type + "' is not supported (default, linear, llama3, yarn, longrope)" +
                                (type == "dynamic" ? "; dynamic NTK rescales by the running sequence length" : ""));
  }
  for (const auto& [k, v] : rs.items())
    if (std::find(allowed.begin(), allowed.end(), k) == allowed.end() && !v.is_null())
      top.fail(key(k.c_str()), v.dump() + " is not understood for rope_type '" + type + "'");
  return s;
}

}  // namespace

ModelConfig config_from_hf(const nlohmann::json& j, const std::filesystem::path& file) {
  if (!j.is_object()) throw FormatError(file, "config.json is not a JSON object");
  HfReader r{j, file};
  ModelConfig c;
  if (!r.has("architectures") || !j.at("architectures").is_array() || j.at("architectures").empty() ||
      !j.at("architectures").at(0).is_string())
    r.fail("architectures", "missing or not a list of names");
  c.architecture = j.at("architectures").at(0).get<std::string>();
  c.spec = find_arch_hf(c.architecture);
  if (!c.spec) r.fail("architectures", "'" + c.architecture + "' is not supported (" + arch_names_hf() + ")");
  const ArchSpec& a = *c.spec;
  c.arch = a.family;
  c.qkv_bias = a.qkv_bias;
  c.qk_norm = a.qk_norm || a.qk_norm_per_head;
  c.qk_norm_per_head = a.qk_norm_per_head;
  // Llama's attention_bias puts a bias on q, k, v and o; o's is not implemented.
  if (r.boolean("attention_bias", false))
    r.fail("attention_bias", "true is not supported (biases on the q/k/v/o projections)");
  if (r.boolean("mlp_bias", false)) r.fail("mlp_bias", "true is not supported (biases on the MLP projections)");
  if (r.has("partial_rotary_factor") && r.number("partial_rotary_factor", 1.0) != 1.0)
    r.fail("partial_rotary_factor", j.at("partial_rotary_factor").dump() + " is not supported (RoPE on every coordinate only)");
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
  if (r.has("rope_scaling")) c.rope_scaling = hf_rope_scaling(r, c.ctx);
  // Sliding window: Mistral and Phi-3 apply it when set; Qwen2/3 only with use_sliding_window.
  if (r.has("sliding_window") && (!a.window_gated || r.boolean("use_sliding_window", false))) {
    c.sliding_window = std::uint32_t(r.uint("sliding_window"));
    if (c.sliding_window == 0) r.fail("sliding_window", "0 is not a window");
  }
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

namespace {

// A GGUF tensor of per-frequency factors (rope_freqs.weight,
// rope_factors_{long,short}.weight): F32/F16, hd/2 positive values.
std::vector<double> gguf_factors(const GgufFile& f, const GgufTensorInfo& t, std::uint32_t head_dim) {
  if (t.elements() != head_dim / 2)
    throw FormatError(f.path(), "tensor '" + t.name + "': " + std::to_string(t.elements()) + " factors, heads of " +
                                    std::to_string(head_dim) + " need " + std::to_string(head_dim / 2));
  std::vector<double> out;
  for (float v : f.to_float(t)) {
    if (!(std::isfinite(v) && v > 0.0f))
      throw FormatError(f.path(), "tensor '" + t.name + "': holds " + std::to_string(v) + ", not a positive factor");
    out.push_back(v);
  }
  return out;
}

// {arch}.rope.scaling.* keys and the factor tensors, as llama.cpp reads them.
void gguf_rope_scaling(const GgufFile& f, const std::string& p, ModelConfig& c) {
  RopeScaling& s = c.rope_scaling;
  const std::string type = f.get_string(p + "rope.scaling.type").value_or("none");
  auto positive = [&](const std::string& key, double fallback) {
    const auto v = f.get_float(key);
    if (!v) return fallback;
    if (!(std::isfinite(*v) && *v > 0.0)) throw FormatError(f.path(), key + ": " + std::to_string(*v) + " is not positive");
    return *v;
  };
  const double factor = positive(p + "rope.scaling.factor", 1.0);
  const auto original = f.get_uint(p + "rope.scaling.original_context_length");
  // Keys llama.cpp reads that change the math and are not implemented here.
  for (const char* k : {"rope.scaling.yarn_log_multiplier", "rope.dimension_sections"})
    if (f.find(p + k)) throw FormatError(f.path(), p + k + ": is not supported");
  if (const auto ext = f.get_float(p + "rope.scaling.yarn_ext_factor"); ext && *ext >= 0.0 && *ext != 1.0)
    throw FormatError(f.path(), p + "rope.scaling.yarn_ext_factor: " + std::to_string(*ext) + " is not supported (1 only)");
  if (type == "none") {
    if (factor != 1.0 && !f.find_tensor("rope_freqs.weight"))
      throw FormatError(f.path(), p + "rope.scaling.factor: " + std::to_string(factor) + " without a scaling type");
  } else if (type == "linear") {
    s.type = RopeType::linear;
    s.factor = factor;
  } else if (type == "yarn") {
    s.type = RopeType::yarn;
    s.factor = factor;
    s.original_ctx = std::uint32_t(std::min<std::uint64_t>(original.value_or(c.ctx), std::numeric_limits<std::uint32_t>::max()));
    s.beta_fast = positive(p + "rope.scaling.yarn_beta_fast", 32.0);
    s.beta_slow = positive(p + "rope.scaling.yarn_beta_slow", 1.0);
    // llama.cpp: attention factor = attn_factor · (1 + 0.1 ln(factor)).
    if (const auto af = f.get_float(p + "rope.scaling.attn_factor"))
      s.attention_factor = positive(p + "rope.scaling.attn_factor", 1.0) * (factor > 1.0 ? 1.0 + 0.1 * std::log(factor) : 1.0);
  } else if (type != "longrope") {
    throw FormatError(f.path(), p + "rope.scaling.type: '" + type + "' is not supported (none, linear, yarn, longrope)");
  }
  // Llama 3.1 in GGUF: the frequency divisors as a tensor.
  if (const auto* t = f.find_tensor("rope_freqs.weight")) s.freq_factors = gguf_factors(f, *t, c.head_dim);
  // Phi-3 LongRoPE: both factor lists as tensors.
  const auto* lf = f.find_tensor("rope_factors_long.weight");
  const auto* sf = f.find_tensor("rope_factors_short.weight");
  if (lf || sf || type == "longrope") {
    if (!lf || !sf) throw FormatError(f.path(), "rope_factors_long.weight / rope_factors_short.weight: LongRoPE needs both");
    if (!original) throw FormatError(f.path(), p + "rope.scaling.original_context_length: missing (LongRoPE needs it)");
    s.type = RopeType::longrope;
    s.original_ctx = std::uint32_t(std::min<std::uint64_t>(*original, std::numeric_limits<std::uint32_t>::max()));
    s.long_factors = gguf_factors(f, *lf, c.head_dim);
    s.short_factors = gguf_factors(f, *sf, c.head_dim);
    s.factor = s.original_ctx ? double(c.ctx) / double(s.original_ctx) : 1.0;
    if (f.find(p + "rope.scaling.attn_factor")) s.attention_factor = positive(p + "rope.scaling.attn_factor", 1.0);
  }
}

}  // namespace

ModelConfig config_from_gguf(const GgufFile& f) {
  const auto arch = f.get_string("general.architecture");
  if (!arch) throw FormatError(f.path(), "general.architecture: missing");
  ModelConfig c;
  c.architecture = *arch;
  c.spec = find_arch_gguf(*arch);
  if (!c.spec)
    throw FormatError(f.path(), "general.architecture: '" + *arch + "' is not supported (" + arch_names_gguf() + ")");
  c.arch = c.spec->family;
  c.qk_norm = c.spec->qk_norm || c.spec->qk_norm_per_head;
  c.qk_norm_per_head = c.spec->qk_norm_per_head;
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
  gguf_rope_scaling(f, p, c);
  if (const auto w = f.get_uint(p + "attention.sliding_window"); w && *w > 0)
    c.sliding_window = std::uint32_t(std::min<std::uint64_t>(*w, std::numeric_limits<std::uint32_t>::max()));
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
