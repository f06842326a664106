// config.json -> general.* / {arch}.* keys, the llama q/k permutation, the
// RoPE factor tensors, and a model's roles as GGUF tensors
// (vkquant/gguf_convert.hpp). The vocabulary keys are in gguf_vocab_keys.cpp.
#include "vkquant/gguf_convert.hpp"

#include <cmath>
#include <numbers>

#include "vkquant/error.hpp"
#include "vkquant/json_strict.hpp"
#include "vkquant/mapped_file.hpp"
#include "vkquant/model/arch.hpp"

namespace vkq {

// ---- keys -----------------------------------------------------------------------------

GgufKeys gguf_model_keys(const GgufHparams& h, const nlohmann::json& c, const std::string& name, std::uint32_t file_type) {
  const std::string a = h.arch + ".";
  auto num = [&](const char* key, double fallback) { return c.contains(key) && c.at(key).is_number() ? c.at(key).get<double>() : fallback; };
  GgufKeys kv;
  kv.emplace_back("general.architecture", gguf_string(h.arch));
  kv.emplace_back("general.type", gguf_string("model"));
  kv.emplace_back("general.name", gguf_string(name));
  if (h.arch == "llama") kv.emplace_back(a + "vocab_size", gguf_uint(h.vocab));
  const std::uint64_t ctx = std::uint64_t(num("max_position_embeddings", 2048));
  kv.emplace_back(a + "context_length", gguf_uint(ctx));
  kv.emplace_back(a + "embedding_length", gguf_uint(h.dim));
  kv.emplace_back(a + "feed_forward_length", gguf_uint(h.ffn));
  kv.emplace_back(a + "block_count", gguf_uint(h.layers));
  kv.emplace_back(a + "attention.head_count", gguf_uint(h.heads));
  kv.emplace_back(a + "attention.head_count_kv", gguf_uint(h.kv_heads));
  kv.emplace_back(a + "rope.freq_base", gguf_float(num("rope_theta", 10000.0)));
  kv.emplace_back(a + "attention.layer_norm_rms_epsilon", gguf_float(num("rms_norm_eps", 1e-5)));
  if (c.contains("head_dim") && c.at("head_dim").is_number_unsigned()) {
    kv.emplace_back(a + "attention.key_length", gguf_uint(h.head_dim));
    kv.emplace_back(a + "attention.value_length", gguf_uint(h.head_dim));
  }
  if (h.arch == "llama" || h.arch == "phi3") kv.emplace_back(a + "rope.dimension_count", gguf_uint(h.head_dim));
  const nlohmann::json* rs = c.contains("rope_scaling") && c.at("rope_scaling").is_object() ? &c.at("rope_scaling") : nullptr;
  if (h.arch == "phi3") {
    // Phi3MiniModel: original context, LongRoPE attention factor, sliding window (0 when none).
    const double orig = num("original_max_position_embeddings", double(ctx)), scale = double(ctx) / orig;
    kv.emplace_back(a + "rope.scaling.original_context_length", gguf_uint(std::uint64_t(orig)));
    if (rs)
      kv.emplace_back(a + "rope.scaling.attn_factor",
                      gguf_float(scale <= 1.0 ? 1.0 : std::sqrt(1 + std::log(scale) / std::log(orig))));
    kv.emplace_back(a + "attention.sliding_window", gguf_uint(std::uint64_t(num("sliding_window", 0))));
  } else if (rs && rs->value("rope_type", rs->value("type", std::string())) == "linear") {
    kv.emplace_back(a + "rope.scaling.type", gguf_string("linear"));
    kv.emplace_back(a + "rope.scaling.factor", gguf_float(rs->value("factor", 1.0)));
  }
  if (h.experts > 0) {  // OlmoeModel
    kv.emplace_back(a + "expert_count", gguf_uint(h.experts));
    kv.emplace_back(a + "expert_used_count", gguf_uint(h.experts_used));
    if (h.norm_topk) kv.emplace_back(a + "expert_weights_norm", gguf_bool(true));
  }
  kv.emplace_back("general.file_type", gguf_uint(file_type));
  return kv;
}

// ---- rows and factors -------------------------------------------------------------------

std::uint64_t gguf_permuted_source_row(std::uint64_t row, std::uint64_t rows, std::uint32_t heads) {
  if (heads == 0) return row;
  const std::uint64_t hd = rows / heads, h = row / hd, within = row % hd, i = within / 2, j = within % 2;
  return h * hd + (hd / 2) * j + i;
}

std::vector<float> llama3_rope_freqs(double theta, std::uint32_t head_dim, double factor, double lo, double hi, double old_ctx) {
  const double lo_wavelen = old_ctx / lo, hi_wavelen = old_ctx / hi;
  std::vector<float> out;
  for (std::uint32_t i = 0; i < head_dim; i += 2) {
    // torch computes the frequencies in float32
    const float freq = 1.0f / std::pow(float(theta), float(i) / float(head_dim));
    const double wavelen = 2 * std::numbers::pi / double(freq);
    if (wavelen < hi_wavelen) out.push_back(1.0f);
    else if (wavelen > lo_wavelen) out.push_back(float(factor));
    else {
      const double smooth = (old_ctx / wavelen - lo) / (hi - lo);
      out.push_back(float(1.0 / ((1 - smooth) / factor + smooth)));
    }
  }
  return out;
}

// ---- a model's tensors -------------------------------------------------------------------

std::uint64_t GgufTensorPlan::elements() const {
  std::uint64_t n = 1;
  for (auto d : ne) n *= d;
  return n;
}

std::string gguf_architecture(const ModelConfig& c) {
  // Mistral's row names no GGUF architecture: convert_hf_to_gguf.py writes it as llama.
  if (!c.spec || c.spec->gguf.empty()) return "llama";
  return c.spec->gguf.front();
}

std::vector<GgufTensorPlan> gguf_tensor_plan(const ModelConfig& c) {
  std::vector<GgufTensorPlan> out;
  auto add = [&](Role r, std::uint32_t layer) {
    const TensorRef ref = tensor_ref(c, Format::gguf, r, layer);
    for (auto& t : out)
      if (t.name == ref.name) {  // a fused tensor: this role's rows follow the ones before
        t.parts.emplace_back(r, layer);
        return;
      }
    std::vector<std::uint64_t> shape = role_shape(c, r);
    if (ref.rows) shape[0] = ref.full_rows;
    GgufTensorPlan t;
    t.name = ref.name;
    t.ne.assign(shape.rbegin(), shape.rend());
    t.parts.emplace_back(r, layer);
    if (c.spec && c.spec->gguf_permuted_qk && !ref.rows && (r == Role::wq || r == Role::wk || r == Role::bq || r == Role::bk))
      t.permute_heads = (r == Role::wq || r == Role::bq) ? c.heads : c.kv_heads;
    out.push_back(std::move(t));
  };
  add(Role::embed, 0);
  for (std::uint32_t l = 0; l < c.layers; ++l)
    for (Role r : layer_roles(c)) add(r, l);
  add(Role::final_norm, 0);
  if (!c.tied_embeddings) add(Role::lm_head, 0);

  const RopeScaling& s = c.rope_scaling;
  const std::uint64_t pairs = c.head_dim / 2;
  auto factors = [&](const char* name, std::vector<float> v) {
    GgufTensorPlan t;
    t.name = name;
    t.ne = {pairs};
    t.values = std::move(v);
    out.push_back(std::move(t));
  };
  auto floats = [](const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); };
  const std::string arch = gguf_architecture(c);
  switch (s.type) {
    case RopeType::plain:
    case RopeType::linear: break;  // keys only (gguf_model_keys)
    case RopeType::llama3:
      if (arch != "llama") throw Error("rope_scaling llama3: GGUF " + arch + " has no rope_freqs.weight");
      factors("rope_freqs.weight", llama3_rope_freqs(c.rope_theta, c.head_dim, s.factor, s.low_freq_factor,
                                                     s.high_freq_factor, double(s.original_ctx)));
      break;
    case RopeType::longrope:
      if (arch != "phi3") throw Error("rope_scaling longrope: only Phi-3's GGUF carries LongRoPE factors");
      factors("rope_factors_long.weight", floats(s.long_factors));
      factors("rope_factors_short.weight", floats(s.short_factors));
      break;
    case RopeType::yarn: throw Error("rope_scaling yarn: writing its GGUF keys is not implemented");
  }
  return out;
}

std::vector<float> gguf_tensor_values(const ModelFile& model, const GgufTensorPlan& t) {
  if (t.parts.empty()) return t.values;
  std::vector<float> v;
  for (const auto& [role, layer] : t.parts) {
    std::vector<float> part = model.load(role, layer);
    if (v.empty()) v = std::move(part);
    else v.insert(v.end(), part.begin(), part.end());
  }
  if (t.permute_heads == 0) return v;
  const std::uint64_t cols = t.ne.size() < 2 ? 1 : t.ne[0], rows = v.size() / cols;
  std::vector<float> out(v.size());
  for (std::uint64_t r = 0; r < rows; ++r) {
    const std::uint64_t from = gguf_permuted_source_row(r, rows, t.permute_heads);
    std::copy_n(v.begin() + std::ptrdiff_t(from * cols), cols, out.begin() + std::ptrdiff_t(r * cols));
  }
  return out;
}

// ---- metadata of a safetensors model ------------------------------------------------------

GgufKeys gguf_metadata_from_hf(const ModelFile& model, std::uint32_t file_type) {
  namespace fs = std::filesystem;
  const ModelConfig& c = model.config();
  fs::path config_path, tokenizer_path, tokenizer_config_path;
  for (const auto& f : model.files()) {
    if (f.filename() == "config.json") config_path = f;
    if (f.filename() == "tokenizer.json") tokenizer_path = f;
    if (f.filename() == "tokenizer_config.json") tokenizer_config_path = f;
  }
  if (config_path.empty()) throw FormatError(model.path(), "config.json: missing (the GGUF keys are written from it)");
  const nlohmann::json config = read_json_file(config_path, "config.json");
  GgufHparams h;
  h.arch = gguf_architecture(c);
  h.vocab = c.vocab;
  h.dim = c.dim;
  h.ffn = c.ffn;
  h.layers = c.layers;
  h.heads = c.heads;
  h.kv_heads = c.kv_heads;
  h.head_dim = c.head_dim;
  h.experts = c.experts;
  h.experts_used = c.experts_used;
  h.norm_topk = c.norm_topk;
  const fs::path dir = config_path.parent_path();
  const std::string name = fs::absolute(dir).lexically_normal().filename().string();
  GgufKeys kv = gguf_model_keys(h, config, name.empty() ? "model" : name, file_type);

  GgufKeys vocab;
  if (tokenizer_path.empty()) {
    (void)model.tokenizer();  // a model without tokenizer.json must be byte-level: refused naming the file otherwise
    vocab = gguf_byte_vocab_keys(c.vocab, c.bos, c.eos);
  } else {
    const nlohmann::json tok = read_json_file(tokenizer_path, "tokenizer.json");
    const nlohmann::json tcfg =
        tokenizer_config_path.empty() ? nlohmann::json::object() : read_json_file(tokenizer_config_path, "tokenizer_config.json");
    // Byte-level BPE (no byte_fallback) needs llama.cpp's name of its regex;
    // SentencePiece-style BPE is written as "llama" with pre "default".
    std::string pre = "default";
    const bool spm = tok.contains("model") && tok.at("model").is_object() && tok.at("model").value("byte_fallback", false);
    if (!spm) {
      const std::string split = model.tokenizer()->pre_tokenizer();
      const auto p = gguf_pre_for_split(split);
      if (!p) throw FormatError(tokenizer_path, "pre_tokenizer: '" + split + "' has no llama.cpp tokenizer.ggml.pre name (gpt2, llama3, qwen2 have)");
      pre = *p;
    }
    vocab = gguf_vocab_keys(tok, tcfg, config, c.vocab, pre, tokenizer_path);
  }
  kv.insert(kv.end(), vocab.begin(), vocab.end());
  return kv;
}

}  // namespace vkq
