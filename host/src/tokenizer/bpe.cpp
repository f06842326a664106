// Byte-level BPE (GPT-2 family): special tokens are cut out whole, the rest is
// split into words by the pre-tokenizer, each word starts as one symbol per
// byte and the adjacent pair with the lowest merge rank (leftmost on ties) is
// merged until no listed merge applies — llama.cpp's LLM_TOKENIZER_BPE and
// Hugging Face's BPE model agree on this.
#include <algorithm>
#include <queue>

#include "internal.hpp"
#include "vkquant/error.hpp"

namespace vkq::tok {

namespace {

std::uint64_t pair_key(std::int32_t a, std::int32_t b) {
  return (std::uint64_t(std::uint32_t(a)) << 32) | std::uint32_t(b);
}

class BpeTokenizer final : public VocabTokenizer {
 public:
  explicit BpeTokenizer(BpeSpec s)
      : VocabTokenizer(s.kind, s.texts, s.pieces, s.byte_values, s.bos, s.eos, s.strip_first_space),
        split_(s.split),
        ignore_merges_(s.ignore_merges),
        add_prefix_space_(s.add_prefix_space),
        prefix_each_word_(s.prefix_each_word),
        byte_level_(s.byte_level),
        byte_fallback_(s.byte_fallback),
        fuse_unk_(s.fuse_unk),
        normalizer_(std::move(s.normalizer)),
        metaspace_(std::move(s.metaspace)),
        unk_(s.unk) {
    for (std::size_t i = 0; i < s.texts.size(); ++i)
      if (s.mergeable[i]) ids_[s.texts[i]] = std::int32_t(i);  // a later duplicate wins, as in llama.cpp
    byte_ids_.fill(-1);
    for (int b = 0; b < 256; ++b) {
      if (byte_level_) {
        byte_ids_[std::size_t(b)] = lookup(byte_to_unicode()[std::size_t(b)]);
      } else {
        static const char* hex = "0123456789ABCDEF";
        byte_ids_[std::size_t(b)] = lookup(std::string("<0x") + hex[b >> 4] + hex[b & 15] + ">");
      }
    }
    merges_.reserve(s.merges.size());
    for (std::size_t r = 0; r < s.merges.size(); ++r) {
      const auto [a, b] = s.merges[r];
      merges_.try_emplace(pair_key(a, b), std::int32_t(r), lookup(text(a) + text(b)));
    }
    for (auto& [t, id] : s.specials) specials_.add(std::move(t), id);
    for (std::size_t i = 0; i < s.special.size(); ++i)
      if (s.special[i]) mark_special(std::int32_t(i));
    for (const std::int32_t id : s.controls) add_control(id);
    set_names(s.pre_name, s.norm_name);
  }

  std::vector<std::int32_t> encode(std::string_view text) const override {
    std::vector<std::int32_t> out;
    partition(
        specials_, text,
        [&](std::string_view segment) { encode_segment(segment, segment.data() == text.data(), out); },
        [&](std::int32_t id) { out.push_back(id); });
    return out;
  }

 private:
  std::int32_t lookup(const std::string& t) const {
    const auto it = ids_.find(t);
    return it == ids_.end() ? -1 : it->second;
  }

  // One stretch of text between added tokens; at_start: it begins the input.
  void encode_segment(std::string_view segment, bool at_start, std::vector<std::int32_t>& out) const {
    std::string normalized;
    if (!normalizer_.empty()) {
      normalized = apply_normalizer(normalizer_, segment);
      segment = normalized;
    }
    if (segment.empty()) return;
    if (!byte_level_) {
      encode_chars(segment, at_start, out);
      return;
    }
    std::string prefixed;
    if (add_prefix_space_ && !prefix_each_word_ && segment[0] != ' ') {
      prefixed = " " + std::string(segment);
      segment = prefixed;
    }
    for (const std::string_view word : pretokenize(segment, split_)) {
      if (add_prefix_space_ && prefix_each_word_ && word[0] != ' ') {
        encode_word(" " + std::string(word), out);
      } else {
        encode_word(word, out);
      }
    }
  }

  // SentencePiece-style BPE: the Metaspace pre-tokenizer (if any), then each
  // word merged from its UTF-8 characters.
  void encode_chars(std::string_view segment, bool at_start, std::vector<std::int32_t>& out) const {
    if (!metaspace_) {
      encode_word(segment, out);
      return;
    }
    const Metaspace& m = *metaspace_;
    std::string s;
    for (const char c : segment) {
      if (c == ' ') {
        s += m.replacement;
      } else {
        s += c;
      }
    }
    if ((m.prepend == Metaspace::Prepend::always || (m.prepend == Metaspace::Prepend::first && at_start)) &&
        !s.starts_with(m.replacement))
      s.insert(0, m.replacement);
    if (!m.split) {
      encode_word(s, out);
      return;
    }
    // Split before each replacement character (it starts the next word).
    std::size_t start = 0;
    for (std::size_t at = s.find(m.replacement, 1); at != std::string::npos; at = s.find(m.replacement, at + 1)) {
      if (at > start) encode_word(std::string_view(s).substr(start, at - start), out);
      start = at;
    }
    encode_word(std::string_view(s).substr(start), out);
  }

  void encode_word(std::string_view word, std::vector<std::int32_t>& out) const {
    if (word.empty()) return;
    if (ignore_merges_) {
      std::string mapped;
      if (byte_level_) {
        for (const char c : word) mapped += byte_to_unicode()[static_cast<unsigned char>(c)];
      } else {
        mapped = word;
      }
      if (const std::int32_t id = lookup(mapped); id >= 0) {
        out.push_back(id);
        return;
      }
    }
    // Symbols: a doubly linked list over byte ranges of the word, one per
    // byte (byte-level) or per UTF-8 character (a stray byte is a character).
    std::vector<std::size_t> start, len;
    std::vector<std::int32_t> id;
    for (std::size_t i = 0; i < word.size();) {
      const std::size_t l = byte_level_ ? 1 : next_char(word, i).len;
      start.push_back(i);
      len.push_back(l);
      id.push_back(byte_level_ ? byte_ids_[static_cast<unsigned char>(word[i])] : lookup(std::string(word.substr(i, l))));
      i += l;
    }
    const std::size_t n = start.size();
    std::vector<std::int32_t> prev(n), next(n);
    for (std::size_t i = 0; i < n; ++i) {
      prev[i] = std::int32_t(i) - 1;
      next[i] = i + 1 < n ? std::int32_t(i + 1) : -1;
    }
    struct Candidate {
      std::int32_t rank, left, result;
      std::size_t left_len, right_len;  // to recognise candidates made stale by other merges
    };
    auto worse = [](const Candidate& a, const Candidate& b) {
      return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
    };
    std::priority_queue<Candidate, std::vector<Candidate>, decltype(worse)> queue(worse);
    auto consider = [&](std::int32_t l) {
      if (l < 0) return;
      const std::int32_t r = next[std::size_t(l)];
      if (r < 0 || id[std::size_t(l)] < 0 || id[std::size_t(r)] < 0) return;
      const auto it = merges_.find(pair_key(id[std::size_t(l)], id[std::size_t(r)]));
      if (it == merges_.end()) return;
      queue.push({it->second.first, l, it->second.second, len[std::size_t(l)], len[std::size_t(r)]});
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
      id[l] = c.result;
      next[l] = next[std::size_t(r)];
      if (next[l] >= 0) prev[std::size_t(next[l])] = c.left;
      consider(prev[l]);
      consider(c.left);
    }
    bool last_unk = false;  // the previous output is an unknown token this word produced
    for (std::int32_t s = n ? 0 : -1; s >= 0; s = next[std::size_t(s)]) {
      const auto i = std::size_t(s);
      if (id[i] >= 0) {
        out.push_back(id[i]);
        last_unk = false;
        continue;
      }
      // A symbol no token spells: its bytes' tokens when all exist (byte-level
      // vocabularies per byte), else the unknown token.
      const std::string_view bytes = word.substr(start[i], len[i]);
      const bool all_bytes = (byte_level_ || byte_fallback_) &&
                             std::all_of(bytes.begin(), bytes.end(), [&](char b) {
                               return byte_ids_[static_cast<unsigned char>(b)] >= 0;
                             });
      if (all_bytes) {
        for (const char b : bytes) out.push_back(byte_ids_[static_cast<unsigned char>(b)]);
        last_unk = false;
      } else if (byte_level_) {
        for (const char b : bytes) push_byte_or_unk(static_cast<unsigned char>(b), out);
      } else if (unk_) {
        if (!(fuse_unk_ && last_unk)) out.push_back(*unk_);
        last_unk = true;
      } else {
        throw Error(kind() + " tokenizer: " + show_bytes(bytes) + " has no token and the vocabulary has no unknown token");
      }
    }
  }

  void push_byte_or_unk(unsigned char byte, std::vector<std::int32_t>& out) const {
    out.push_back(byte_or_unknown(byte_ids_, unk_, byte, kind()));
  }

  static std::string show_bytes(std::string_view bytes) {
    static const char* hex = "0123456789ABCDEF";
    std::string out;
    for (const char c : bytes) {
      const auto b = static_cast<unsigned char>(c);
      out += (out.empty() ? "byte" + std::string(bytes.size() > 1 ? "s" : "") + " 0x" : " 0x");
      out += hex[b >> 4];
      out += hex[b & 15];
    }
    return out;
  }

  std::unordered_map<std::string, std::int32_t> ids_;  // text -> id of mergeable tokens
  std::array<std::int32_t, 256> byte_ids_{};  // each byte's token (its GPT-2 character or <0xNN>), -1 if none
  std::unordered_map<std::uint64_t, std::pair<std::int32_t, std::int32_t>> merges_;  // (a, b) -> (rank, result id)
  SpecialMatcher specials_;
  Split split_;
  bool ignore_merges_, add_prefix_space_, prefix_each_word_, byte_level_, byte_fallback_, fuse_unk_;
  std::vector<NormStep> normalizer_;
  std::optional<Metaspace> metaspace_;
  std::optional<std::int32_t> unk_;
};

}  // namespace

std::unique_ptr<Tokenizer> make_bpe_tokenizer(BpeSpec spec) { return std::make_unique<BpeTokenizer>(std::move(spec)); }

}  // namespace vkq::tok
