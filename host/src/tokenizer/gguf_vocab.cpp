// GGUF vocabularies: tokenizer.ggml.model "gpt2" (byte-level BPE, as
// llama.cpp's LLM_TOKENIZER_BPE) and "llama" (SentencePiece, as llama.cpp's
// SPM: spaces become U+2581, adjacent symbols whose concatenation is a token
// merge highest score first, characters no token spells fall back to <0xNN>
// byte tokens, else to the unknown token).
#include <cmath>
#include <queue>

#include "internal.hpp"
#include "vkquant/error.hpp"

namespace vkq {

namespace {

using tok::Piece;

enum TokenType : std::int32_t { kUndefined = 0, kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

constexpr std::string_view kSpmSpace = "\xE2\x96\x81";

[[noreturn]] void fail(const std::string& key, const std::string& what) { throw Error(key + ": " + what); }

std::string show(std::string_view s) {
  std::string out = "'";
  out.append(s.substr(0, 64));
  if (s.size() > 64) out += "...";
  return out + "'";
}

// ---- SentencePiece ---------------------------------------------------------------

class SpmTokenizer final : public tok::VocabTokenizer {
 public:
  SpmTokenizer(std::vector<std::string> texts, const std::vector<Piece>& pieces,
               const std::vector<std::uint8_t>& byte_values, const GgufVocab& v, const std::vector<std::int32_t>& types,
               std::optional<std::int32_t> unk)
      : VocabTokenizer("llama", std::move(texts), pieces, byte_values, v.add_bos ? v.bos : std::nullopt, v.eos, v.add_space_prefix),
        add_space_prefix_(v.add_space_prefix),
        unk_(unk) {
    byte_ids_.fill(-1);
    for (std::size_t i = 0; i < types.size(); ++i) {
      const auto id = std::int32_t(i);
      switch (types[i]) {
        case kUndefined:
        case kNormal: pieces_[text(id)] = {id, v.scores.empty() ? 0.0f : v.scores[i]}; break;
        case kUserDefined:
          pieces_[text(id)] = {id, v.scores.empty() ? 0.0f : v.scores[i]};
          specials_.add(text(id), id);
          break;
        case kByte:
          if (byte_ids_[byte_values[i]] < 0) byte_ids_[byte_values[i]] = id;
          break;
        case kControl:
          mark_special(id);
          add_control(id);  // spelled only in encode_special()
          break;
        case kUnknown: add_control(id); break;
        default: break;                         // unused tokens are never spelled by text
      }
    }
    set_names("spm", add_space_prefix_ ? "prepend+replace" : "replace");
  }

  std::vector<std::int32_t> encode(std::string_view text) const override {
    std::vector<std::int32_t> out;
    bool after_special = true;  // llama.cpp prefixes a space at the start and after each special token
    tok::partition(
        specials_, text,
        [&](std::string_view segment) {
          std::string escaped;
          if (add_space_prefix_ && after_special) escaped = kSpmSpace;
          for (const char c : segment) {
            if (c == ' ') {
              escaped += kSpmSpace;
            } else {
              escaped += c;
            }
          }
          tokenize(escaped, out);
          after_special = false;
        },
        [&](std::int32_t id) {
          out.push_back(id);
          after_special = true;
        });
    return out;
  }

 private:
  struct PieceInfo {
    std::int32_t id;
    float score;
  };

  const PieceInfo* find(std::string_view s) const {
    const auto it = pieces_.find(std::string(s));
    return it == pieces_.end() ? nullptr : &it->second;
  }

  void tokenize(const std::string& s, std::vector<std::int32_t>& out) const {
    // Symbols: one per UTF-8 character (a stray byte is a character).
    std::vector<std::size_t> start, len;
    for (std::size_t i = 0; i < s.size();) {
      const auto c = tok::next_char(s, i);
      start.push_back(i);
      len.push_back(c.len);
      i += c.len;
    }
    const std::size_t n = start.size();
    std::vector<std::int32_t> prev(n), next(n);
    for (std::size_t i = 0; i < n; ++i) {
      prev[i] = std::int32_t(i) - 1;
      next[i] = i + 1 < n ? std::int32_t(i + 1) : -1;
    }
    struct Candidate {
      float score;
      std::int32_t left;
      std::size_t left_len, right_len;
    };
    auto worse = [](const Candidate& a, const Candidate& b) {
      return a.score < b.score || (a.score == b.score && a.left > b.left);
    };
    std::priority_queue<Candidate, std::vector<Candidate>, decltype(worse)> queue(worse);
    auto consider = [&](std::int32_t l) {
      if (l < 0) return;
      const std::int32_t r = next[std::size_t(l)];
      if (r < 0) return;
      const auto li = std::size_t(l), ri = std::size_t(r);
      if (const PieceInfo* p = find(std::string_view(s).substr(start[li], len[li] + len[ri])))
        queue.push({p->score, l, len[li], len[ri]});
    };
    for (std::size_t i = 0; i + 1 < n; ++i) consider(std::int32_t(i));
    while (!queue.empty()) {
      const Candidate c = queue.top();
      queue.pop();
      const auto l = std::size_t(c.left);
      const std::int32_t r = next[l];
      if (r < 0 || len[l] != c.left_len || len[std::size_t(r)] != c.right_len) continue;
      len[l] += len[std::size_t(r)];
      len[std::size_t(r)] = 0;
      next[l] = next[std::size_t(r)];
      if (next[l] >= 0) prev[std::size_t(next[l])] = c.left;
      consider(prev[l]);
      consider(c.left);
    }
    for (std::int32_t sym = n ? 0 : -1; sym >= 0; sym = next[std::size_t(sym)]) {
      const auto i = std::size_t(sym);
      if (const PieceInfo* p = find(std::string_view(s).substr(start[i], len[i]))) {
        out.push_back(p->id);
        continue;
      }
      for (std::size_t k = start[i]; k < start[i] + len[i]; ++k) {  // byte fallback
        out.push_back(tok::byte_or_unknown(byte_ids_, unk_, static_cast<unsigned char>(s[k]), "llama"));
      }
    }
  }

  bool add_space_prefix_;
  std::optional<std::int32_t> unk_;
  std::unordered_map<std::string, PieceInfo> pieces_;  // normal and user-defined tokens by text
  std::array<std::int32_t, 256> byte_ids_{};           // <0xNN> token of each byte, -1 if none
  tok::SpecialMatcher specials_;
};

// ---- validation ---------------------------------------------------------------------

void check_id(const char* key, std::optional<std::int32_t> id, std::size_t n) {
  if (id && (*id < 0 || std::size_t(*id) >= n))
    fail(key, std::to_string(*id) + " is outside [0, " + std::to_string(n) + ")");
}

// The pre-tokenizer llama.cpp applies for tokenizer.ggml.pre (its names,
// grouped by the regex they select); any other name, llama.cpp's "default"
// (several regexes in turn) and a missing key are refused by name.
struct PreType {
  std::string_view name;
  tok::Split split;
  bool ignore_merges;
};
constexpr PreType kPreTypes[] = {
    {"llama3", tok::Split::llama3, true},     {"llama-v3", tok::Split::llama3, true},
    {"llama-bpe", tok::Split::llama3, true},  {"falcon3", tok::Split::llama3, true},
    {"dbrx", tok::Split::llama3, false},      {"smaug-bpe", tok::Split::llama3, false},
    {"qwen2", tok::Split::qwen2, false},      {"deepseek-r1-qwen", tok::Split::qwen2, false},
    {"gpt-2", tok::Split::gpt2, false},       {"phi-2", tok::Split::gpt2, false},
    {"jina-es", tok::Split::gpt2, false},     {"jina-de", tok::Split::gpt2, false},
    {"gigachat", tok::Split::gpt2, false},    {"jina-v2-es", tok::Split::gpt2, false},
    {"jina-v2-de", tok::Split::gpt2, false},
};

tok::Split split_for_pre(const std::string& pre, bool& ignore_merges) {
  for (const PreType& t : kPreTypes) {
    if (t.name != pre) continue;
    ignore_merges = t.ignore_merges;
    return t.split;
  }
  std::string known;
  for (const PreType& t : kPreTypes) known += (known.empty() ? "" : ", ") + std::string(t.name);
  if (pre.empty()) fail("tokenizer.ggml.pre", "missing (llama.cpp's 'default' pre-tokenizer is not supported; known: " + known + ")");
  fail("tokenizer.ggml.pre", show(pre) + " is not supported (known: " + known + ")");
}

}  // namespace

std::unique_ptr<Tokenizer> make_gguf_tokenizer(const GgufVocab& v) {
  const bool spm = v.model == "llama";
  if (!spm && v.model != "gpt2")
    fail("tokenizer.ggml.model", "unsupported tokenizer " + show(v.model) + " (expected \"gpt2\" or \"llama\")");
  const std::size_t n = v.tokens.size();
  if (n == 0) fail("tokenizer.ggml.tokens", "no tokens");
  if (n > std::size_t(INT32_MAX)) fail("tokenizer.ggml.tokens", std::to_string(n) + " tokens is too many");
  if (!v.scores.empty() && v.scores.size() != n)
    fail("tokenizer.ggml.scores", std::to_string(v.scores.size()) + " entries for " + std::to_string(n) + " tokens");
  if (!v.types.empty() && v.types.size() != n)
    fail("tokenizer.ggml.token_type",
         std::to_string(v.types.size()) + " entries for " + std::to_string(n) + " tokens");
  for (std::size_t i = 0; i < v.scores.size(); ++i)
    if (std::isnan(v.scores[i])) fail("tokenizer.ggml.scores[" + std::to_string(i) + "]", "not a number");
  if (v.add_eos) fail("tokenizer.ggml.add_eos_token", "true is not supported (EOS after every text)");
  check_id("tokenizer.ggml.bos_token_id", v.bos, n);
  check_id("tokenizer.ggml.eos_token_id", v.eos, n);
  check_id("tokenizer.ggml.unknown_token_id", v.unk, n);

  // Token types; without the key every token is normal except the named
  // specials (and, for SPM, <0xNN> tokens are bytes as SentencePiece writes them).
  std::vector<std::int32_t> types(n, kNormal);
  if (!v.types.empty()) {
    for (std::size_t i = 0; i < n; ++i) {
      if (v.types[i] < kUndefined || v.types[i] > kByte)
        fail("tokenizer.ggml.token_type[" + std::to_string(i) + "]", "unknown token type " + std::to_string(v.types[i]));
      types[i] = v.types[i];
    }
  } else {
    if (spm)
      for (std::size_t i = 0; i < n; ++i)
        if (tok::parse_byte_token(v.tokens[i])) types[i] = kByte;
    if (v.bos) types[std::size_t(*v.bos)] = kControl;
    if (v.eos) types[std::size_t(*v.eos)] = kControl;
    if (v.unk) types[std::size_t(*v.unk)] = kUnknown;
  }
  std::optional<std::int32_t> unk = v.unk;
  for (std::size_t i = 0; i < n && !unk; ++i)
    if (types[i] == kUnknown) unk = std::int32_t(i);

  std::vector<Piece> pieces(n);
  std::vector<std::uint8_t> byte_values(n, 0);
  for (std::size_t i = 0; i < n; ++i) {
    switch (types[i]) {
      case kUndefined:
      case kNormal: pieces[i] = spm ? Piece::spm : Piece::byte_level; break;
      case kUnknown: pieces[i] = Piece::unknown; break;
      case kUserDefined: pieces[i] = Piece::raw; break;
      case kByte: {
        const auto b = tok::parse_byte_token(v.tokens[i]);
        if (!b)
          fail("tokenizer.ggml.tokens[" + std::to_string(i) + "]",
               "byte token " + show(v.tokens[i]) + " is not of the form <0xNN>");
        pieces[i] = Piece::byte;
        byte_values[i] = *b;
        break;
      }
      default: pieces[i] = Piece::empty; break;  // control, unused
    }
  }

  if (spm) return std::make_unique<SpmTokenizer>(v.tokens, pieces, byte_values, v, types, unk);

  tok::BpeSpec s;
  s.kind = "gpt2";
  s.texts = v.tokens;
  s.pieces = std::move(pieces);
  s.byte_values = std::move(byte_values);
  s.mergeable.resize(n);
  std::unordered_map<std::string_view, std::int32_t> ids;  // every token, a later duplicate winning as in llama.cpp
  for (std::size_t i = 0; i < n; ++i) {
    ids[v.tokens[i]] = std::int32_t(i);
    s.mergeable[i] = types[i] == kNormal || types[i] == kUndefined;
    if (types[i] == kUserDefined) s.specials.emplace_back(v.tokens[i], std::int32_t(i));
  }
  s.merges.reserve(v.merges.size());
  for (std::size_t r = 0; r < v.merges.size(); ++r) {
    const std::string& m = v.merges[r];
    const std::string key = "tokenizer.ggml.merges[" + std::to_string(r) + "]";
    const std::size_t sp = m.size() > 1 ? m.find(' ', 1) : std::string::npos;
    if (sp == std::string::npos) fail(key, "expected two tokens separated by a space, got " + show(m));
    const std::string_view a = std::string_view(m).substr(0, sp), b = std::string_view(m).substr(sp + 1);
    const auto ia = ids.find(a), ib = ids.find(b);
    if (ia == ids.end()) fail(key, "unknown token " + show(a));
    if (ib == ids.end()) fail(key, "unknown token " + show(b));
    s.merges.emplace_back(ia->second, ib->second);
  }
  s.split = split_for_pre(v.pre, s.ignore_merges);
  s.pre_name = tok::split_name(s.split);
  s.special.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    s.special[i] = types[i] == kControl;
    if (types[i] == kControl || types[i] == kUnknown) s.controls.push_back(std::int32_t(i));
  }
  s.unk = unk;
  s.bos = v.add_bos ? v.bos : std::nullopt;
  s.eos = v.eos;
  return tok::make_bpe_tokenizer(std::move(s));
}

}  // namespace vkq
