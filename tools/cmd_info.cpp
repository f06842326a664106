// `vkquant info FILE`: what a safetensors file (or sharded index or model
// directory), a GGUF file or a calibration artifact holds: tensors, metadata,
// and, when it is a model vkquant can run, its architecture.
#include <fmt/core.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <memory>

#include "commands.hpp"
#include "vkquant/chat.hpp"
#include "vkquant/gguf.hpp"
#include "vkquant/json_strict.hpp"
#include "vkquant/mapped_file.hpp"
#include "vkquant/model/arch.hpp"
#include "vkquant/model/model_file.hpp"
#include "vkquant/safetensors_index.hpp"

namespace vkq::cli {

namespace {

struct InfoFlags {
  std::string file;
  bool json = false;
};

struct Listing {
  std::string format;
  std::vector<std::tuple<std::string, std::string, std::vector<std::uint64_t>>> tensors;  // name, dtype, shape
  std::vector<std::pair<std::string, std::string>> metadata;
};

// A directory is a safetensors model; anything else must be a regular file
// (MappedFile refuses a FIFO or device, naming it, without blocking on it).
bool is_gguf(const std::filesystem::path& p) {
  std::error_code ec;
  if (std::filesystem::is_directory(p, ec)) return false;
  return MappedFile::open(p).starts_with("GGUF");
}

Listing list(const std::filesystem::path& p) {
  Listing out;
  if (is_gguf(p)) {
    const auto g = GgufFile::open(p);
    out.format = "gguf v" + std::to_string(g.version());
    for (const auto& t : g.tensors())
      out.tensors.emplace_back(t.name, ggml_type_name(t.type), std::vector<std::uint64_t>(t.ne.rbegin(), t.ne.rend()));
    for (const auto& [k, v] : g.metadata()) out.metadata.emplace_back(k, gguf_value_summary(v));
    return out;
  }
  const auto st = SafetensorsModel::open(p);
  out.format = st.shards().size() > 1 ? "safetensors (" + std::to_string(st.shards().size()) + " shards)" : "safetensors";
  for (const auto& shard : st.shards()) {
    for (const auto& t : shard.tensors()) out.tensors.emplace_back(t.name, dtype_name(t.dtype), t.shape);
    for (const auto& [k, v] : shard.metadata()) out.metadata.emplace_back(k, v);
  }
  return out;
}

std::string shape_str(const std::vector<std::uint64_t>& s) {
  std::string r = "[";
  for (std::size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

// RoPE scaling as one line: "llama3 (factor 32, original context 8192, ...)".
std::string rope_summary(const ModelConfig& c) {
  const RopeScaling& s = c.rope_scaling;
  std::string out = rope_type_name(s.type);
  switch (s.type) {
    case RopeType::plain: break;
    case RopeType::linear: out += fmt::format(" (factor {:g})", s.factor); break;
    case RopeType::llama3:
      out += fmt::format(" (factor {:g}, original context {}, low/high frequency factors {:g}/{:g})", s.factor, s.original_ctx,
                         s.low_freq_factor, s.high_freq_factor);
      break;
    case RopeType::yarn:
      out += fmt::format(" (factor {:g}, original context {}, beta fast/slow {:g}/{:g})", s.factor, s.original_ctx,
                         s.beta_fast, s.beta_slow);
      break;
    case RopeType::longrope:
      out += fmt::format(" ({} short / {} long factors, original context {})", s.short_factors.size(), s.long_factors.size(),
                         s.original_ctx);
      break;
  }
  if (!s.freq_factors.empty()) out += fmt::format(", {} frequency factors", s.freq_factors.size());
  const RopeTable t = c.rope_table(c.context_in_use(0));
  if (t.scale != 1.0f) out += fmt::format(", attention factor {:.6g}", t.scale);
  return out;
}

nlohmann::ordered_json config_json(const ModelConfig& c) {
  nlohmann::ordered_json j{{"architecture", c.architecture},
                           {"arch", c.spec ? c.spec->name : "?"},
                           {"family", arch_name(c.arch)},
                           {"vocab_size", c.vocab},
                           {"hidden_size", c.dim},
                           {"layers", c.layers},
                           {"heads", c.heads},
                           {"kv_heads", c.kv_heads},
                           {"head_dim", c.head_dim},
                           {"ffn", c.ffn},
                           {"context", c.ctx},
                           {"rms_norm_eps", c.rms_eps},
                           {"rope_theta", c.rope_theta},
                           {"tied_embeddings", c.tied_embeddings},
                           {"qkv_bias", c.qkv_bias},
                           {"qk_norm", c.qk_norm ? (c.qk_norm_per_head ? "per_head" : "whole") : "none"},
                           {"rope_scaling", rope_summary(c)},
                           {"sliding_window", c.sliding_window ? nlohmann::ordered_json(c.sliding_window) : nlohmann::ordered_json(nullptr)},
                           {"default_context", c.context_in_use(0)}};
  if (c.moe()) {
    j["experts"] = c.experts;
    j["experts_used"] = c.experts_used;
    j["norm_topk_prob"] = c.norm_topk;
  }
  j["bos_token_id"] = c.bos ? nlohmann::ordered_json(*c.bos) : nlohmann::ordered_json(nullptr);
  j["eos_token_id"] = c.eos ? nlohmann::ordered_json(*c.eos) : nlohmann::ordered_json(nullptr);
  return j;
}

// The tokenizer of a runnable model: kind, sizes, BOS/EOS, pre-tokenizer,
// normalizer and chat template. A tokenizer or template that fails to load is
// reported in the object ("error"), not fatal: info still describes the file.
nlohmann::ordered_json tokenizer_json(const ModelFile& model) {
  nlohmann::ordered_json j;
  try {
    const auto tok = model.tokenizer();
    auto special = [&](std::optional<std::int32_t> id) {
      return id ? nlohmann::ordered_json{{"id", *id}, {"piece", tok->token_piece(*id)}} : nlohmann::ordered_json(nullptr);
    };
    j = {{"kind", tok->kind()},
         {"vocab_size", tok->vocab_size()},
         {"padded_rows", std::max<std::int64_t>(0, std::int64_t(model.config().vocab) - tok->vocab_size())},
         {"bos", special(tok->bos())},
         {"eos", special(tok->eos())},
         {"pre_tokenizer", tok->pre_tokenizer()},
         {"normalizer", tok->normalizer()}};
  } catch (const Error& e) {
    return {{"error", e.what()}};
  }
  try {
    const auto t = load_chat_template(model);
    j["chat_template"] = t ? nlohmann::ordered_json{{"family", t->family()}, {"source", t->source().string()}, {"key", t->key()}}
                           : nlohmann::ordered_json(nullptr);
  } catch (const Error& e) {
    j["chat_template"] = {{"error", e.what()}};
  }
  return j;
}

void print_tokenizer(const nlohmann::ordered_json& t) {
  if (t.contains("error")) {
    fmt::print("tokenizer: cannot load: {}\n", t["error"].get<std::string>());
    return;
  }
  auto special = [](const nlohmann::ordered_json& s) {
    return s.is_null() ? std::string("none") : fmt::format("{} '{}'", s["id"].get<std::int64_t>(), escape_bytes(s["piece"].get<std::string>()));
  };
  fmt::print("tokenizer: {}, vocab {}", t["kind"].get<std::string>(), t["vocab_size"].get<std::int64_t>());
  if (const auto pad = t["padded_rows"].get<std::int64_t>(); pad > 0) fmt::print(" (+{} padded embedding rows, never sampled)", pad);
  fmt::print(", bos {}, eos {}, pre-tokenizer {}, normalizer {}\n", special(t["bos"]), special(t["eos"]),
             t["pre_tokenizer"].get<std::string>(), t["normalizer"].get<std::string>());
  const auto& ct = t["chat_template"];
  if (ct.is_null()) fmt::print("chat template: none\n");
  else if (ct.contains("error")) fmt::print("chat template: cannot use: {}\n", ct["error"].get<std::string>());
  else fmt::print("chat template: {} ({}: {})\n", ct["family"].get<std::string>(), ct["source"].get<std::string>(), ct["key"].get<std::string>());
}

void info(const InfoFlags& f) {
  const Listing l = list(f.file);
  // A file that lists fine but is not a model (an artifact, a key set) is
  // still described; why it does not run is said.
  std::optional<ModelConfig> config;
  nlohmann::ordered_json tokenizer;
  std::string not_model;
  std::uint64_t params = 0;
  const bool artifact = std::any_of(l.metadata.begin(), l.metadata.end(), [](const auto& kv) {
    return kv.first == "format" && kv.second == "vkquant-kcache";
  });
  if (artifact) {
    not_model = "a vkquant K-cache calibration artifact (vkquant calibrate); use it with --rotations";
  } else {
    try {
      const auto model = ModelFile::open(f.file);
      config = model.config();
      tokenizer = tokenizer_json(model);
    } catch (const FormatError& e) {
      not_model = e.what();
    }
  }
  std::uint64_t total = 0;
  for (const auto& t : l.tensors) {
    std::uint64_t n = 1;
    for (auto d : std::get<2>(t)) n *= d;
    total += n;
  }
  params = total;
  if (f.json) {
    nlohmann::ordered_json j{{"file", f.file}, {"format", l.format}};
    j["model"] = config ? config_json(*config) : nlohmann::ordered_json(nullptr);
    if (!config) j["not_a_model"] = not_model;
    if (config) j["tokenizer"] = tokenizer;
    j["parameters"] = params;
    auto& tensors = j["tensors"] = nlohmann::ordered_json::array();
    for (const auto& [name, dtype, shape] : l.tensors) tensors.push_back({{"name", name}, {"dtype", dtype}, {"shape", shape}});
    auto& meta = j["metadata"] = nlohmann::ordered_json::object();
    for (const auto& [k, v] : l.metadata) meta[k] = v;
    std::printf("%s\n", j.dump(2).c_str());
    return;
  }
  fmt::print("{}: {}, {} tensors, {} parameters\n", f.file, l.format, l.tensors.size(), params);
  if (config) {
    const ModelConfig& c = *config;
    fmt::print("model: {} ({}), vocab {}, hidden {}, {} layers, {} heads / {} KV heads x {}, ffn {}, context {}\n",
               c.architecture, c.spec ? c.spec->name : arch_name(c.arch), c.vocab, c.dim, c.layers, c.heads, c.kv_heads, c.head_dim, c.ffn, c.ctx);
    fmt::print("       rms_eps {:g}, rope_theta {:g}, tied {}, qkv bias {}, qk norm {}", c.rms_eps, c.rope_theta,
               c.tied_embeddings, c.qkv_bias, c.qk_norm ? (c.qk_norm_per_head ? "per head" : "whole projection") : "none");
    if (c.moe()) fmt::print(", {} experts, top-{}{}", c.experts, c.experts_used, c.norm_topk ? " (renormalised)" : "");
    fmt::print("\n       rope {}", rope_summary(c));
    if (c.sliding_window) fmt::print(", sliding window {}", c.sliding_window);
    if (c.context_in_use(0) != c.ctx) fmt::print(", default context {}", c.context_in_use(0));
    fmt::print("\n");
    print_tokenizer(tokenizer);
  } else {
    fmt::print("not a runnable model: {}\n", not_model);
  }
  fmt::print("\nmetadata:\n");
  for (const auto& [k, v] : l.metadata) fmt::print("  {:<40} {}\n", k, v);
  fmt::print("\ntensors:\n");
  for (const auto& [name, dtype, shape] : l.tensors) fmt::print("  {:<48} {:<6} {}\n", name, dtype, shape_str(shape));
}

}  // namespace

void add_info(CLI::App& app) {
  auto f = std::make_shared<InfoFlags>();
  auto* cmd = app.add_subcommand("info", "Tensors and metadata of a safetensors, GGUF or artifact file, and its model");
  cmd->add_option("file", f->file, "a .gguf or .safetensors file, an index .json or a model directory")->required();
  cmd->add_flag("--json", f->json, "print JSON");
  cmd->callback([f] { info(*f); });
}

}  // namespace vkq::cli
