// Writing a planned model: safetensors shards split where save_pretrained
// splits them (plus model.safetensors.index.json), and a GGUF file laid out as
// llama.cpp's convert_hf_to_gguf.py lays it out.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "plan.hpp"
#include "weights.hpp"
#include "vkquant/gguf.hpp"

namespace vkq::synth {

// Tells how far a write got: (bytes written, bytes in all).
using Progress = std::function<void(std::uint64_t, std::uint64_t)>;

// save_pretrained's split (transformers' shard_checkpoint): tensors in state_dict
// order, a new shard when the next tensor would take the current one past
// `max_shard_size`. Indices into plan.tensors (Hugging Face tensors only).
std::vector<std::vector<std::size_t>> plan_shards(const ModelPlan& plan, std::optional<std::uint64_t> max_shard_size);

// The files write_safetensors_model writes, with their sizes in bytes
// (headers included), without writing anything.
std::vector<std::pair<std::string, std::uint64_t>> safetensors_layout(const ModelPlan& plan, std::optional<std::uint64_t> max_shard_size);

// Writes model.safetensors, or model-0000i-of-0000n.safetensors and
// model.safetensors.index.json when there is more than one shard; BF16 as
// the real checkpoints. Returns the files written and their sizes.
std::vector<std::pair<std::string, std::uint64_t>> write_safetensors_model(const ModelPlan& plan, const std::filesystem::path& dir,
                                                                          std::optional<std::uint64_t> max_shard_size,
                                                                          std::uint64_t seed, const Progress& progress);

// The {arch}.* and general.* keys convert_hf_to_gguf.py writes for `config`
// (vkq::gguf_model_keys with the plan's numbers; general.file_type from `matrices`).
std::vector<std::pair<std::string, GgufValue>> gguf_model_keys(const ModelPlan& plan, const nlohmann::json& config,
                                                              const std::string& name, Storage matrices);

// Writes the GGUF file: matrices in `matrices` (F16 or BF16), 1-D tensors F32,
// q/k rows permuted for `llama`; `metadata` = gguf_model_keys + the vocabulary's.
std::uint64_t write_gguf_model(const ModelPlan& plan, const std::vector<std::pair<std::string, GgufValue>>& metadata,
                               const std::filesystem::path& path, Storage matrices, std::uint64_t seed, const Progress& progress);

}  // namespace vkq::synth
