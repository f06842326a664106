// The normalizer, pre_tokenizer and decoder objects of a Hugging Face
// tokenizer.json, read into a BpeSpec. What changes the ids or the decoded
// bytes and is not implemented is refused by its key.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "internal.hpp"

namespace vkq::tok {

// fail(key, what) throws (a FormatError naming the file).
using HfFail = std::function<void(const std::string& key, const std::string& what)>;

// normalizer: null, NFC, NFD, NFKC, NFKD, Prepend, Replace (String pattern),
// or a Sequence of these. Sets s.normalizer and s.norm_name.
void read_hf_normalizer(const nlohmann::json* normalizer, const HfFail& fail, BpeSpec& s);

// pre_tokenizer: ByteLevel, Sequence [ByteLevel] or [Split (GPT-2 / Llama 3 /
// Qwen2 regex), ByteLevel] (byte-level BPE); null or Metaspace (SentencePiece-
// style BPE). Sets s.byte_level, split, prefixes, metaspace and s.pre_name.
void read_hf_pre_tokenizer(const nlohmann::json* pre_tokenizer, const HfFail& fail, BpeSpec& s);

// decoder: ByteLevel for byte-level BPE; else Metaspace, or a Sequence of
// Replace("▁", " "), ByteFallback, Fuse and Strip(" ", start <= 1, stop 0).
// Sets s.strip_first_space; byte_fallback models must decode with ByteFallback.
void read_hf_decoder(const nlohmann::json* decoder, const HfFail& fail, bool byte_fallback, BpeSpec& s);

}  // namespace vkq::tok
