// UTF-8 decoding and the character classes the pre-tokenizer regexes use,
// from tables generated at build time out of the Unicode Character Database
// (tools/unicode/gen_unicode_tables.py, Debian's unicode-data).
#include <algorithm>

#include "internal.hpp"
#include "vkquant_unicode_tables.hpp"

namespace vkq::tok {

namespace {

template <std::size_t N>
bool in_table(const ucd::Range (&table)[N], std::uint32_t cp) {
  const ucd::Range* it = std::upper_bound(std::begin(table), std::end(table), cp,
                                          [](std::uint32_t c, const ucd::Range& r) { return c < r.lo; });
  return it != std::begin(table) && cp <= (it - 1)->hi;
}

bool is_cont(unsigned char b) { return (b & 0xC0) == 0x80; }

}  // namespace

Utf8Char next_char(std::string_view s, std::size_t i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) return {b0, 1, true};
  std::uint32_t len = 0, cp = 0, min = 0;
  if ((b0 & 0xE0) == 0xC0) {
    len = 2, cp = b0 & 0x1Fu, min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3, cp = b0 & 0x0Fu, min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4, cp = b0 & 0x07u, min = 0x10000;
  } else {
    return {b0, 1, false};
  }
  if (i + len > s.size()) return {b0, 1, false};
  for (std::uint32_t k = 1; k < len; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if (!is_cont(b)) return {b0, 1, false};
    cp = (cp << 6) | (b & 0x3Fu);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return {b0, 1, false};
  return {cp, len, true};
}

void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

bool is_letter(std::uint32_t cp) { return cp < 0x80 ? ((cp | 0x20) - 'a') < 26 : in_table(ucd::kLetters, cp); }
bool is_number(std::uint32_t cp) { return cp < 0x80 ? cp - '0' < 10 : in_table(ucd::kNumbers, cp); }
bool is_space(std::uint32_t cp) { return in_table(ucd::kWhiteSpace, cp); }
std::size_t letter_count() { return ucd::kLettersCount; }
std::size_t number_count() { return ucd::kNumbersCount; }

// GPT-2 keeps the printable bytes (! .. ~, ¡ .. ¬, ® .. ÿ) as themselves and
// maps the rest, in order, to U+0100 onwards.
namespace {
struct ByteTables {
  std::array<std::string, 256> to_unicode;
  std::array<std::uint32_t, 256> cps{};
  ByteTables() {
    std::uint32_t next = 256;
    for (std::uint32_t b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      cps[b] = printable ? b : next++;
      append_utf8(to_unicode[b], cps[b]);
    }
  }
};
const ByteTables& byte_tables() {
  static const ByteTables t;
  return t;
}
}  // namespace

const std::array<std::string, 256>& byte_to_unicode() { return byte_tables().to_unicode; }

std::optional<std::uint8_t> unicode_to_byte(std::uint32_t cp) {
  if (cp >= 0x21 && cp <= 0xFF) {
    if (cp <= 0x7E || (cp >= 0xA1 && cp <= 0xAC) || cp >= 0xAE) return std::uint8_t(cp);
    return std::nullopt;
  }
  if (cp >= 256 && cp < 256 + 68) {
    const auto& cps = byte_tables().cps;
    for (std::uint32_t b = 0; b < 256; ++b)
      if (cps[b] == cp) return std::uint8_t(b);
  }
  return std::nullopt;
}

std::optional<std::uint8_t> parse_byte_token(std::string_view t) {
  if (t.size() != 6 || t.substr(0, 3) != "<0x" || t[5] != '>') return std::nullopt;
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  const int hi = hex(t[3]), lo = hex(t[4]);
  if (hi < 0 || lo < 0) return std::nullopt;
  return std::uint8_t(hi * 16 + lo);
}

// ---- special tokens -------------------------------------------------------------

void SpecialMatcher::add(std::string text, std::int32_t id) {
  if (text.empty()) return;
  auto& bucket = by_first_[static_cast<unsigned char>(text[0])];
  has_first_[static_cast<unsigned char>(text[0])] = true;
  // Longest first; among equal lengths, in the order added. Inserted in place
  // (re-sorting the bucket on every add was quadratic: seconds for the
  // thousands of added tokens some tokenizers carry).
  const auto at = std::upper_bound(bucket.begin(), bucket.end(), text.size(),
                                   [](std::size_t size, const auto& e) { return size > e.first.size(); });
  bucket.emplace(at, std::move(text), id);
  ++count_;
}

std::optional<SpecialMatcher::Match> SpecialMatcher::find(std::string_view text, std::size_t from) const {
  for (std::size_t i = from; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (!has_first_[c]) continue;
    for (const auto& [s, id] : by_first_[c])
      if (text.compare(i, s.size(), s) == 0) return Match{i, s.size(), id};
  }
  return std::nullopt;
}

}  // namespace vkq::tok
