// Tokenizers (docs/design.md §5): the bundled models' byte vocabulary, GGUF
// vocabularies (BPE "gpt2" as llama.cpp's LLM_TOKENIZER_BPE, SentencePiece
// "llama" as llama.cpp's SPM) and Hugging Face tokenizer.json byte-level BPE
// (GPT-2, Llama 3, Qwen2 style).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace vkq {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Token ids of `text` (any bytes; invalid UTF-8 never throws). Never adds
  // BOS/EOS; control tokens written in the text are not recognised, while
  // user-defined (GGUF) and added (tokenizer.json) tokens are matched whole.
  virtual std::vector<std::int32_t> encode(std::string_view text) const = 0;
  // Concatenated bytes of the tokens; special/control tokens give "". SPM
  // with add_space_prefix drops the one leading space of the first text
  // token (the one encode() added), as llama.cpp's detokenizer does.
  // Throws vkq::Error on an id outside [0, vocab_size()).
  virtual std::string decode(std::span<const std::int32_t> ids) const = 0;
  // The raw bytes one token contributes, for streaming (a UTF-8 character may
  // span tokens; no leading-space removal). Throws vkq::Error when out of range.
  virtual std::string token_bytes(std::int32_t id) const = 0;
  virtual std::int32_t vocab_size() const = 0;
  virtual std::optional<std::int32_t> bos() const = 0;
  virtual std::optional<std::int32_t> eos() const = 0;
  // "bytes", "gpt2", "llama" or "hf-bpe".
  virtual std::string kind() const = 0;

  // As encode(), but every special/control/added token written literally in
  // the text (e.g. "<|start_header_id|>", "<s>") is matched whole and emitted
  // as its id (llama.cpp's parse_special = true): for rendered chat templates.
  virtual std::vector<std::int32_t> encode_special(std::string_view text) const = 0;
  // The id of a vocabulary entry or special token spelled exactly `piece`
  // (e.g. "<|eot_id|>"); nullopt when there is none.
  virtual std::optional<std::int32_t> find_token(std::string_view piece) const = 0;
  // The vocabulary's string for the id as stored ("Ġthe", "▁the", "<0x0A>",
  // "<|eot_id|>"). Throws vkq::Error when out of range.
  virtual std::string token_piece(std::int32_t id) const = 0;
  // True for control/special tokens (those decode() drops). Throws vkq::Error when out of range.
  virtual bool is_special(std::int32_t id) const = 0;
  // Short name of the pre-tokenization: "bytes", "gpt2", "llama3", "qwen2",
  // "metaspace", "spm", "none".
  virtual std::string pre_tokenizer() const = 0;
  // Short name of the normalizer: "none", "NFC", "NFKC", "prepend+replace", ...
  virtual std::string normalizer() const = 0;
};

// Bytes 0..255 are tokens 0..255; ids from 256 on are specials that decode to
// "" (the bundled models: 256 <bos>, 257 <eos>, vocab 258). Throws vkq::Error
// when vocab_size < 256 or bos/eos lie outside [256, vocab_size).
std::unique_ptr<Tokenizer> make_byte_tokenizer(std::int32_t vocab_size = 258, std::optional<std::int32_t> bos = 256,
                                               std::optional<std::int32_t> eos = 257);

// The tokenizer.ggml.* keys of a GGUF file.
struct GgufVocab {
  std::string model;                // tokenizer.ggml.model: "gpt2" or "llama"
  std::string pre;                  // tokenizer.ggml.pre ("default", "llama-bpe", "qwen2", ...; may be empty)
  std::vector<std::string> tokens;  // tokenizer.ggml.tokens
  std::vector<float> scores;        // tokenizer.ggml.scores (SPM; may be empty for gpt2)
  std::vector<std::int32_t> types;  // tokenizer.ggml.token_type (1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte; may be empty)
  std::vector<std::string> merges;  // tokenizer.ggml.merges ("a b"; gpt2 only)
  std::optional<std::int32_t> bos, eos, unk;
  bool add_space_prefix = true;  // tokenizer.ggml.add_space_prefix (SPM)
  // tokenizer.ggml.add_bos_token: false keeps the BOS id out of bos() (what
  // run/ppl put before a text), as llama.cpp does (Qwen's GGUF files);
  // tokenizer.ggml.add_eos_token true (EOS after every text) is refused.
  bool add_bos = true, add_eos = false;
};

// Validates the vocabulary (ids in range, merges naming known tokens, array
// sizes consistent, finite scores, known token types) and builds its
// tokenizer; throws vkq::Error naming the key, e.g.
// "tokenizer.ggml.merges[12]: unknown token 'x'".
std::unique_ptr<Tokenizer> make_gguf_tokenizer(const GgufVocab& vocab);

// A Hugging Face tokenizer.json whose model.type is "BPE" with a ByteLevel
// pre-tokenizer (alone, or after a Split regex) and a ByteLevel decoder.
// added_tokens are matched whole in the input before BPE; special ones decode
// to "". bos/eos come from a sibling tokenizer_config.json's bos_token /
// eos_token when that file exists (null there means none), else from the
// added tokens by name (<|begin_of_text|>, <s>, <|startoftext|> /
// <|end_of_text|>, <|endoftext|>, </s>). Throws vkq::FormatError naming the
// file and the key for anything malformed or unsupported.
std::unique_ptr<Tokenizer> load_tokenizer_json(const std::filesystem::path& path);

}  // namespace vkq
