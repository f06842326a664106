#include "write_model.hpp"

#include <algorithm>
#include <cstdio>
#include <map>

#include "vkquant/atomic_file.hpp"
#include "vkquant/error.hpp"
#include "vkquant/gguf_convert.hpp"
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
  GgufHparams h;
  h.arch = p.gguf_architecture;
  h.vocab = p.vocab;
  h.dim = p.dim;
  h.ffn = p.ffn;
  h.layers = p.layers;
  h.heads = p.heads;
  h.kv_heads = p.kv_heads;
  h.head_dim = p.head_dim;
  return vkq::gguf_model_keys(h, c, name, matrices == Storage::bf16 ? gguf_ftype::bf16 : gguf_ftype::f16);
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
  kv.emplace_back("general.quantization_version", gguf_uint(kGgufQuantizationVersion));
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
