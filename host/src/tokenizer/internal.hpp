// Pieces shared by the tokenizers: a UTF-8 reader with a small Unicode
// classifier, the regex pre-tokenizers written out as scanners, GPT-2's
// byte-to-unicode table, whole-token matching of special tokens, and a base
// class that decodes from per-token pieces.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "vkquant/tokenizer.hpp"

namespace vkq::tok {

// Byte fallback: byte b's own token (byte_ids[b] >= 0), else the unknown
// token; throws vkq::Error naming the tokenizer `kind` when there is neither.
std::int32_t byte_or_unknown(const std::array<std::int32_t, 256>& byte_ids, std::optional<std::int32_t> unk, unsigned char b,
                             std::string_view kind);


// ---- Unicode ----------------------------------------------------------------

// One character of a byte string: a stray or malformed byte is a character of
// length 1 with valid == false (classified as neither letter, number nor space).
struct Utf8Char {
  std::uint32_t cp = 0;
  std::uint32_t len = 1;
  bool valid = false;
};
Utf8Char next_char(std::string_view s, std::size_t i);
void append_utf8(std::string& out, std::uint32_t cp);

bool is_letter(std::uint32_t cp);  // \p{L}
bool is_number(std::uint32_t cp);  // \p{N}
bool is_space(std::uint32_t cp);   // \s (Unicode White_Space)
std::size_t letter_count();        // code points in the \p{L} table
std::size_t number_count();        // code points in the \p{N} table

// Unicode normalization forms (UAX #15). Bytes that are not UTF-8 pass
// through unchanged and block composition across them.
enum class Form { nfc, nfd, nfkc, nfkd };
std::string normalize(std::string_view text, Form form);

// One step of a tokenizer.json normalizer.
struct NormStep {
  enum class Kind { nfc, nfd, nfkc, nfkd, prepend, replace } kind = Kind::nfc;
  std::string a, b;  // prepend: a; replace: every a becomes b
};
// The steps in order (Prepend only prepends to non-empty text).
std::string apply_normalizer(const std::vector<NormStep>& steps, std::string_view text);

// ---- pre-tokenizers -----------------------------------------------------------

enum class Split {
  gpt2,    // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  llama3,  // (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
  qwen2,   // as llama3 with \p{N} (one digit per word)
  none,    // the whole text is one word (ByteLevel with use_regex false)
};
// "gpt2", "llama3", "qwen2" or "none".
std::string split_name(Split split);
// Splits `text` into consecutive words (views into text) covering it exactly.
std::vector<std::string_view> pretokenize(std::string_view text, Split split);

// "<0xNN>" (either case of hex digit) -> NN; nullopt for other texts.
std::optional<std::uint8_t> parse_byte_token(std::string_view t);

// ---- GPT-2 byte <-> unicode ---------------------------------------------------

// UTF-8 of the printable character GPT-2 maps each byte to.
const std::array<std::string, 256>& byte_to_unicode();
// The byte a mapped character stands for; nullopt for other characters.
std::optional<std::uint8_t> unicode_to_byte(std::uint32_t cp);

// ---- special tokens -----------------------------------------------------------

// Finds tokens written whole in the text: the leftmost match, longest there.
class SpecialMatcher {
 public:
  void add(std::string text, std::int32_t id);
  bool empty() const { return count_ == 0; }
  struct Match {
    std::size_t pos = 0, len = 0;
    std::int32_t id = -1;
  };
  // The first match at or after `from`; nullopt when none.
  std::optional<Match> find(std::string_view text, std::size_t from) const;

 private:
  std::array<std::vector<std::pair<std::string, std::int32_t>>, 256> by_first_;  // longest first
  std::array<bool, 256> has_first_{};
  std::size_t count_ = 0;
};

// Calls on_text(view) for the text between matches and on_special(id) for each match.
template <typename OnText, typename OnSpecial>
void partition(const SpecialMatcher& m, std::string_view text, OnText&& on_text, OnSpecial&& on_special) {
  std::size_t at = 0;
  while (at < text.size()) {
    const auto hit = m.empty() ? std::nullopt : m.find(text, at);
    if (!hit) {
      on_text(text.substr(at));
      return;
    }
    if (hit->pos > at) on_text(text.substr(at, hit->pos - at));
    on_special(hit->id);
    at = hit->pos + hit->len;
  }
}

// ---- decoding base --------------------------------------------------------------

// What one token contributes when decoded.
enum class Piece : std::uint8_t {
  byte_level,  // text in GPT-2's byte-to-unicode alphabet
  spm,         // SentencePiece text: U+2581 stands for a space
  raw,         // the text itself (user-defined / added non-special tokens)
  byte,        // one byte (<0xNN> tokens)
  empty,       // control / special / unused tokens
  unknown,     // the unknown token: U+2585 as llama.cpp prints it
};

// Tokenizers over a table of token texts; decodes every piece on construction.
class VocabTokenizer : public Tokenizer {
 public:
  VocabTokenizer(std::string kind, std::vector<std::string> texts, const std::vector<Piece>& pieces,
                 const std::vector<std::uint8_t>& byte_values, std::optional<std::int32_t> bos,
                 std::optional<std::int32_t> eos, bool strip_first_space);
  std::string decode(std::span<const std::int32_t> ids) const override;
  std::string token_bytes(std::int32_t id) const override;
  std::int32_t vocab_size() const override { return std::int32_t(decoded_.size()); }
  std::optional<std::int32_t> bos() const override { return bos_; }
  std::optional<std::int32_t> eos() const override { return eos_; }
  std::string kind() const override { return kind_; }
  std::vector<std::int32_t> encode_special(std::string_view text) const override;
  std::optional<std::int32_t> find_token(std::string_view piece) const override;
  std::string token_piece(std::int32_t id) const override;
  bool is_special(std::int32_t id) const override;
  std::string pre_tokenizer() const override { return pre_name_; }
  std::string normalizer() const override { return norm_name_; }

 protected:
  const std::string& text(std::int32_t id) const { return texts_[std::size_t(id)]; }
  const std::vector<std::string>& texts() const { return texts_; }
  void check_id(std::int32_t id) const;
  void set_names(std::string pre, std::string norm) {
    pre_name_ = std::move(pre);
    norm_name_ = std::move(norm);
  }
  // A control/special token (decode() drops it; is_special() says so).
  void mark_special(std::int32_t id) { special_[std::size_t(id)] = true; }
  // A token encode() leaves as text and encode_special() matches whole (not marked special).
  void add_control(std::int32_t id);

 private:
  std::string kind_;
  std::string pre_name_ = "none", norm_name_ = "none";
  std::unordered_map<std::string, std::int32_t> by_text_;  // find_token; a later duplicate wins
  std::vector<bool> special_;
  SpecialMatcher controls_;
  std::vector<std::string> texts_;    // token texts as the vocabulary spells them
  std::vector<std::string> decoded_;  // the bytes each token contributes
  std::vector<bool> strippable_;      // text tokens whose leading space decode() may drop
  std::optional<std::int32_t> bos_, eos_;
  bool strip_first_space_;
};

// ---- byte-level BPE -------------------------------------------------------------

// Hugging Face's Metaspace pre-tokenizer: spaces become `replacement`, which
// is prepended as the scheme says and, with split, starts each word.
struct Metaspace {
  enum class Prepend { always, first, never };
  std::string replacement = "\xE2\x96\x81";
  Prepend prepend = Prepend::always;
  bool split = true;
};

struct BpeSpec {
  std::string kind;                      // "gpt2" or "hf-bpe"
  // Byte-level (GPT-2): words are bytes mapped to printable characters.
  // Otherwise (SentencePiece-style BPE) words are UTF-8 characters as they
  // are; a character no token spells becomes its <0xNN> byte tokens
  // (byte_fallback) or the unknown token (consecutive ones fused with fuse_unk).
  bool byte_level = true;
  bool byte_fallback = false, fuse_unk = false;
  bool strip_first_space = false;        // decode() drops the first token's leading space
  std::vector<NormStep> normalizer;      // applied to the text between added tokens
  std::optional<Metaspace> metaspace;    // character mode only
  std::vector<std::string> texts;        // id -> token text ("" for ids no token uses)
  std::vector<Piece> pieces;             // id -> how it decodes
  std::vector<std::uint8_t> byte_values; // id -> byte, for Piece::byte
  std::vector<bool> mergeable;           // id -> takes part in BPE (looked up by text)
  std::vector<std::pair<std::int32_t, std::int32_t>> merges;  // rank order; ids of the two parts
  std::vector<std::pair<std::string, std::int32_t>> specials; // matched whole before BPE
  std::vector<std::int32_t> controls;   // matched whole by encode_special() only
  std::vector<bool> special;            // id -> control/special token (may be empty: none)
  std::string pre_name = "gpt2", norm_name = "none";  // for pre_tokenizer() / normalizer()
  Split split = Split::gpt2;
  bool ignore_merges = false;   // a word that is a token is taken whole (Llama 3)
  bool add_prefix_space = false;  // HF ByteLevel: a space before each segment/word not starting with one
  bool prefix_each_word = false;  // ByteLevel after a Split: the prefix goes on every word
  std::optional<std::int32_t> unk, bos, eos;
};
std::unique_ptr<Tokenizer> make_bpe_tokenizer(BpeSpec spec);

}  // namespace vkq::tok
