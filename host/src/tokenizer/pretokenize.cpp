// The GPT-2 / Llama-3 / Qwen2 pre-tokenizer regexes as hand-written scanners:
// at each position the alternatives are tried in the regex's order and the
// first that matches takes the characters (leftmost-first, as PCRE/Oniguruma).
#include "internal.hpp"

namespace vkq::tok {

namespace {

class Scanner {
 public:
  explicit Scanner(std::string_view text) {
    for (std::size_t i = 0; i < text.size();) {
      const Utf8Char c = next_char(text, i);
      offsets_.push_back(i);
      chars_.push_back(c);
      i += c.len;
    }
    offsets_.push_back(text.size());
  }
  std::size_t size() const { return chars_.size(); }
  std::size_t offset(std::size_t k) const { return offsets_[k]; }

  // Length in characters of the word starting at character k (always >= 1).
  std::size_t gpt2(std::size_t k) const {
    const std::size_t n = size();
    if (is(k, '\'') && k + 1 < n) {
      if (is(k + 1, 's') || is(k + 1, 't') || is(k + 1, 'm') || is(k + 1, 'd')) return 2;
      if (k + 2 < n && ((is(k + 1, 'r') && is(k + 2, 'e')) || (is(k + 1, 'v') && is(k + 2, 'e')) ||
                        (is(k + 1, 'l') && is(k + 2, 'l'))))
        return 3;
    }
    if (std::size_t len = run_after_space(k, &Scanner::letter)) return len;
    if (std::size_t len = run_after_space(k, &Scanner::number)) return len;
    if (std::size_t len = run_after_space(k, &Scanner::other)) return len;
    return spaces(k);
  }

  // Llama 3 with max_digits 3; Qwen2 with max_digits 1.
  std::size_t llama3(std::size_t k, std::size_t max_digits) const {
    const std::size_t n = size();
    if (is(k, '\'') && k + 1 < n) {
      if (is_ci(k + 1, 's') || is_ci(k + 1, 't') || is_ci(k + 1, 'm') || is_ci(k + 1, 'd')) return 2;
      if (k + 2 < n && ((is_ci(k + 1, 'r') && is_ci(k + 2, 'e')) || (is_ci(k + 1, 'v') && is_ci(k + 2, 'e')) ||
                        (is_ci(k + 1, 'l') && is_ci(k + 2, 'l'))))
        return 3;
    }
    {  // [^\r\n\p{L}\p{N}]?\p{L}+
      std::size_t j = k;
      if (!newline(k) && !letter(k) && !number(k) && k + 1 < n && letter(k + 1)) ++j;
      if (letter(j)) {
        while (j < n && letter(j)) ++j;
        return j - k;
      }
    }
    if (number(k)) {  // \p{N}{1,max}
      std::size_t j = k;
      while (j < n && number(j) && j - k < max_digits) ++j;
      return j - k;
    }
    {  //  ?[^\s\p{L}\p{N}]+[\r\n]*
      std::size_t j = k;
      if (is(j, ' ')) ++j;
      if (j < n && other(j)) {
        while (j < n && other(j)) ++j;
        while (j < n && newline(j)) ++j;
        return j - k;
      }
    }
    {  // \s*[\r\n]+ : through the last newline of the whitespace run
      std::size_t last_newline = n;
      for (std::size_t j = k; j < n && space(j); ++j)
        if (newline(j)) last_newline = j;
      if (last_newline < n) return last_newline + 1 - k;
    }
    return spaces(k);
  }

 private:
  bool is(std::size_t k, char c) const { return chars_[k].valid && chars_[k].cp == std::uint32_t(c); }
  bool is_ci(std::size_t k, char lower) const { return is(k, lower) || is(k, char(lower - 'a' + 'A')); }
  bool letter(std::size_t k) const { return chars_[k].valid && is_letter(chars_[k].cp); }
  bool number(std::size_t k) const { return chars_[k].valid && is_number(chars_[k].cp); }
  bool space(std::size_t k) const { return chars_[k].valid && is_space(chars_[k].cp); }
  bool other(std::size_t k) const { return !letter(k) && !number(k) && !space(k); }
  bool newline(std::size_t k) const { return is(k, '\r') || is(k, '\n'); }

  //  ?<class>+ ; 0 when it does not match
  std::size_t run_after_space(std::size_t k, bool (Scanner::*cls)(std::size_t) const) const {
    std::size_t j = k;
    if (is(j, ' ')) ++j;
    if (j >= size() || !(this->*cls)(j)) return 0;
    while (j < size() && (this->*cls)(j)) ++j;
    return j - k;
  }

  // \s+(?!\S)|\s+ at a whitespace character: a run followed by a non-space
  // leaves its last character to start the next word.
  std::size_t spaces(std::size_t k) const {
    std::size_t j = k;
    while (j < size() && space(j)) ++j;
    if (j == size()) return j - k;
    return j - k >= 2 ? j - k - 1 : 1;
  }

  std::vector<Utf8Char> chars_;
  std::vector<std::size_t> offsets_;  // byte offset of each character, plus the end
};

}  // namespace

std::string split_name(Split split) {
  switch (split) {
    case Split::gpt2: return "gpt2";
    case Split::llama3: return "llama3";
    case Split::qwen2: return "qwen2";
    case Split::none: return "none";
  }
  return "none";
}

std::vector<std::string_view> pretokenize(std::string_view text, Split split) {
  std::vector<std::string_view> words;
  if (text.empty()) return words;
  if (split == Split::none) {
    words.push_back(text);
    return words;
  }
  const Scanner sc(text);
  for (std::size_t k = 0; k < sc.size();) {
    std::size_t len = 0;
    switch (split) {
      case Split::gpt2: len = sc.gpt2(k); break;
      case Split::llama3: len = sc.llama3(k, 3); break;
      case Split::qwen2: len = sc.llama3(k, 1); break;
      case Split::none: break;
    }
    if (len == 0) len = 1;  // unreachable by construction; never loop forever
    words.push_back(text.substr(sc.offset(k), sc.offset(k + len) - sc.offset(k)));
    k += len;
  }
  return words;
}

}  // namespace vkq::tok
