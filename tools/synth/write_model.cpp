#include "write_model.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

#include "vkquant/atomic_file.hpp"
#include "vkquant/error.hpp"
#include "vkquant/tensor_stream.hpp"

namespace vkq::synth {

namespace {

std::string shard_name(std::size_t i, std::size_t n) {
  char b[64];
  std::snprintf(b, sizeof b, "model-%05zu-of-%05zu.safetensors", i + 1, n);
  return b;
}

}  // namespace

std::vector<std::vector<std::size_t>> plan_shards(const ModelPlan& plan, std::optional<std::uint64_t> max) {
  std::vector<std::vector<std::size_t>> shards(1);
  std::uint64_t last = 0;
  for (std::size_t i = 0; i < plan.tensors.size(); ++i) {
    const auto& t = plan.tensors[i];
    if (t.hf.empty()) continue;
    const std::uint64_t bytes = t.elements() * 2;
    if (max && last + bytes > *max && !shards.back().empty()) {
      shards.emplace_back();
      last = 0;
    }
    shards.back().push_back(i);
    last += bytes;
  }
  return shards;
}

namespace {

// One shard's tensors as the safetensors library writes them: sorted by name.
std::vector<SafetensorsSpec> shard_specs(const ModelPlan& plan, std::vector<std::size_t>& order) {
  std::sort(order.begin(), order.end(), [&](auto a, auto b) { return plan.tensors[a].hf < plan.tensors[b].hf; });
  std::vector<SafetensorsSpec> specs;
  for (auto i : order) specs.push_back({plan.tensors[i].hf, DType::BF16, plan.tensors[i].shape});
  return specs;
}

const std::map<std::string, std::string> kPtMetadata = {{"format", "pt"}};

}  // namespace

std::vector<std::pair<std::string, std::uint64_t>> safetensors_layout(const ModelPlan& plan, std::optional<std::uint64_t> max) {
  auto shards = plan_shards(plan, max);
  std::vector<std::pair<std::string, std::uint64_t>> out;
  for (std::size_t k = 0; k < shards.size(); ++k) {
    std::uint64_t bytes = safetensors_header_bytes(shard_specs(plan, shards[k]), kPtMetadata);
    for (auto i : shards[k]) bytes += plan.tensors[i].elements() * 2;
    out.emplace_back(shards.size() == 1 ? "model.safetensors" : shard_name(k, shards.size()), bytes);
  }
  return out;
}

std::vector<std::pair<std::string, std::uint64_t>> write_safetensors_model(const ModelPlan& plan, const std::filesystem::path& dir,
                                                                          std::optional<std::uint64_t> max, std::uint64_t seed,
                                                                          const Progress& progress) {
  const auto shards = plan_shards(plan, max);
  std::uint64_t total = 0, done = 0;
  for (const auto& s : shards)
    for (auto i : s) total += plan.tensors[i].elements() * 2;
  std::vector<std::pair<std::string, std::uint64_t>> out;
  nlohmann::json weight_map = nlohmann::json::object();
  for (std::size_t k = 0; k < shards.size(); ++k) {
    const std::string file = shards.size() == 1 ? "model.safetensors" : shard_name(k, shards.size());
    std::vector<std::size_t> order = shards[k];
    auto specs = shard_specs(plan, order);
    for (auto i : order) weight_map[plan.tensors[i].hf] = file;
    auto w = SafetensorsStreamWriter::open(dir / file, std::move(specs), kPtMetadata);
    for (auto i : order)
      emit_tensor(plan.tensors[i], Storage::bf16, false, seed, plan.init_std, [&](std::span<const std::byte> b) {
        w.write(b);
        done += b.size();
        if (progress) progress(done, total);
      });
    w.commit();
    out.emplace_back(file, w.file_bytes());
  }
  if (shards.size() > 1) {
    const nlohmann::json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
    write_file_atomic(dir / "model.safetensors.index.json", index.dump(2) + "\n");
    out.emplace_back("model.safetensors.index.json", std::filesystem::file_size(dir / "model.safetensors.index.json"));
  }
  return out;
}

std::vector<std::pair<std::string, GgufValue>> gguf_model_keys(const ModelPlan& p, const nlohmann::json& c, const std::string& name,
                                                              Storage matrices) {
  const std::string a = p.gguf_architecture + ".";
  auto num = [&](const char* key, double fallback) { return c.contains(key) && c.at(key).is_number() ? c.at(key).get<double>() : fallback; };
  std::vector<std::pair<std::string, GgufValue>> kv;
  kv.emplace_back("general.architecture", gguf_string(p.gguf_architecture));
  kv.emplace_back("general.type", gguf_string("model"));
  kv.emplace_back("general.name", gguf_string(name));
  if (p.gguf_architecture == "llama") kv.emplace_back(a + "vocab_size", gguf_uint(p.vocab));
  const std::uint64_t ctx = std::uint64_t(num("max_position_embeddings", 2048));
  kv.emplace_back(a + "context_length", gguf_uint(ctx));
  kv.emplace_back(a + "embedding_length", gguf_uint(p.dim));
  kv.emplace_back(a + "feed_forward_length", gguf_uint(p.ffn));
  kv.emplace_back(a + "block_count", gguf_uint(p.layers));
  kv.emplace_back(a + "attention.head_count", gguf_uint(p.heads));
  kv.emplace_back(a + "attention.head_count_kv", gguf_uint(p.kv_heads));
  kv.emplace_back(a + "rope.freq_base", gguf_float(num("rope_theta", 10000.0)));
  kv.emplace_back(a + "attention.layer_norm_rms_epsilon", gguf_float(num("rms_norm_eps", 1e-5)));
  if (c.contains("head_dim") && c.at("head_dim").is_number_unsigned()) {
    kv.emplace_back(a + "attention.key_length", gguf_uint(p.head_dim));
    kv.emplace_back(a + "attention.value_length", gguf_uint(p.head_dim));
  }
  if (p.gguf_architecture == "llama" || p.gguf_architecture == "phi3") kv.emplace_back(a + "rope.dimension_count", gguf_uint(p.head_dim));
  if (p.gguf_architecture == "phi3") {
    // Phi3MiniModel: original context, LongRoPE attention factor, sliding window (0 when none).
    const double orig = num("original_max_position_embeddings", double(ctx)), scale = double(ctx) / orig;
    kv.emplace_back(a + "rope.scaling.original_context_length", gguf_uint(std::uint64_t(orig)));
    if (c.contains("rope_scaling") && c.at("rope_scaling").is_object())
      kv.emplace_back(a + "rope.scaling.attn_factor",
                      gguf_float(scale <= 1.0 ? 1.0 : std::sqrt(1 + std::log(scale) / std::log(orig))));
    kv.emplace_back(a + "attention.sliding_window", gguf_uint(std::uint64_t(num("sliding_window", 0))));
  }
  kv.emplace_back("general.file_type", gguf_uint(matrices == Storage::bf16 ? 32 : 1));  // MOSTLY_BF16 / MOSTLY_F16
  return kv;
}

std::uint64_t write_gguf_model(const ModelPlan& plan, const std::vector<std::pair<std::string, GgufValue>>& metadata,
                               const std::filesystem::path& path, Storage matrices, std::uint64_t seed, const Progress& progress) {
  std::vector<GgufSpec> specs;
  std::vector<std::size_t> order;
  std::uint64_t total = 0, done = 0;
  for (std::size_t i = 0; i < plan.tensors.size(); ++i) {
    const auto& t = plan.tensors[i];
    if (t.gguf.empty()) continue;
    const bool matrix = t.shape.size() >= 2;
    const Storage s = matrix ? matrices : Storage::f32;
    const std::uint32_t type = s == Storage::f32 ? 0 : (s == Storage::f16 ? 1 : 30);
    specs.push_back({t.gguf, type, std::vector<std::uint64_t>(t.shape.rbegin(), t.shape.rend())});
    order.push_back(i);
    total += t.elements() * storage_bytes(s);
  }
  auto kv = metadata;
  kv.emplace_back("general.quantization_version", gguf_uint(2));
  auto w = GgufStreamWriter::open(path, kv, std::move(specs));
  for (auto i : order) {
    const auto& t = plan.tensors[i];
    const Storage s = t.shape.size() >= 2 ? matrices : Storage::f32;
    emit_tensor(t, s, plan.gguf_architecture == "llama", seed, plan.init_std, [&](std::span<const std::byte> b) {
      w.write(b);
      done += b.size();
      if (progress) progress(done, total);
    });
  }
  w.commit();
  return w.file_bytes();
}

}  // namespace vkq::synth
