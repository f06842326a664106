// tokenizer.json + tokenizer_config.json + config.json -> the tokenizer.ggml.*
// keys llama.cpp's convert_hf_to_gguf.py writes: "gpt2" (byte-level BPE,
// _set_vocab_gpt2) or "llama" (SentencePiece, _set_vocab_sentencepiece; the
// scores, which tokenizer.json does not keep, rebuilt as -rank).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "vkquant/gguf.hpp"

namespace vkq::synth {

// `vocab_size` (the config's, the embedding's rows) pads the token list with
// "[PAD<i>]" UNUSED tokens as llama.cpp does. `pre`: tokenizer.ggml.pre for
// byte-level BPE. Throws vkq::FormatError naming `tokenizer_path` and the key.
std::vector<std::pair<std::string, GgufValue>> gguf_vocab_keys(const nlohmann::json& tokenizer, const nlohmann::json& tokenizer_config,
                                                              const nlohmann::json& config, std::uint32_t vocab_size,
                                                              const std::string& pre, const std::filesystem::path& tokenizer_path);

}  // namespace vkq::synth
