// UTF-8 decoding and the character classes the pre-tokenizer regexes use.
// The tables are not the full Unicode database: ASCII is exact, and the
// scripts a language model meets (Latin, Greek, Cyrillic, Armenian, Hebrew,
// Arabic, the main Indic scripts, Thai, Georgian, Hangul, kana, CJK) are
// covered; anything else (emoji, symbols, unlisted scripts) is "other".
#include <algorithm>

#include "internal.hpp"

namespace vkq::tok {

namespace {

struct Range {
  std::uint32_t lo, hi;
};

// \p{L}: sorted, disjoint.
constexpr Range kLetters[] = {
    {0x41, 0x5A},       {0x61, 0x7A},       {0xAA, 0xAA},       {0xB5, 0xB5},       {0xBA, 0xBA},
    {0xC0, 0xD6},       {0xD8, 0xF6},       {0xF8, 0x2C1},      {0x2C6, 0x2D1},     {0x2E0, 0x2E4},
    {0x2EC, 0x2EC},     {0x2EE, 0x2EE},     {0x370, 0x374},     {0x376, 0x377},     {0x37A, 0x37D},
    {0x37F, 0x37F},     {0x386, 0x386},     {0x388, 0x3F5},     {0x3F7, 0x481},     {0x48A, 0x52F},
    {0x531, 0x556},     {0x559, 0x559},     {0x560, 0x588},     {0x5D0, 0x5EA},     {0x5EF, 0x5F2},
    {0x620, 0x64A},     {0x66E, 0x66F},     {0x671, 0x6D3},     {0x6D5, 0x6D5},     {0x6E5, 0x6E6},
    {0x6EE, 0x6EF},     {0x6FA, 0x6FC},     {0x6FF, 0x6FF},     {0x710, 0x710},     {0x712, 0x72F},
    {0x74D, 0x7A5},     {0x904, 0x939},     {0x93D, 0x93D},     {0x950, 0x950},     {0x958, 0x961},
    {0x971, 0x980},     {0x985, 0x9B9},     {0x9BD, 0x9BD},     {0x9CE, 0x9CE},     {0x9DC, 0x9E1},
    {0xA05, 0xA39},     {0xA85, 0xAB9},     {0xB05, 0xB39},     {0xB85, 0xBB9},     {0xC05, 0xC39},
    {0xC85, 0xCB9},     {0xD05, 0xD3A},     {0xE01, 0xE30},     {0xE32, 0xE33},     {0xE40, 0xE46},
    {0x10A0, 0x10FA},   {0x10FC, 0x10FF},   {0x1100, 0x11FF},   {0x1E00, 0x1FBC},   {0x1FC2, 0x1FCC},
    {0x1FD0, 0x1FDB},   {0x1FE0, 0x1FEC},   {0x1FF2, 0x1FFC},   {0x2071, 0x2071},   {0x207F, 0x207F},
    {0x2090, 0x209C},   {0x2102, 0x2102},   {0x2107, 0x2107},   {0x210A, 0x2113},   {0x2115, 0x2115},
    {0x2119, 0x211D},   {0x2124, 0x2124},   {0x2126, 0x2126},   {0x2128, 0x2128},   {0x212A, 0x212D},
    {0x212F, 0x2139},   {0x2C00, 0x2CE4},   {0x2D00, 0x2D25},   {0x3005, 0x3006},   {0x3031, 0x3035},
    {0x303B, 0x303C},   {0x3041, 0x3096},   {0x309D, 0x309F},   {0x30A1, 0x30FA},   {0x30FC, 0x30FF},
    {0x3105, 0x312F},   {0x3131, 0x318E},   {0x31A0, 0x31BF},   {0x31F0, 0x31FF},   {0x3400, 0x4DBF},
    {0x4E00, 0x9FFF},   {0xA000, 0xA48C},   {0xA640, 0xA66E},   {0xA680, 0xA69D},   {0xA722, 0xA788},
    {0xA78B, 0xA7CA},   {0xAC00, 0xD7A3},   {0xF900, 0xFA6D},   {0xFB00, 0xFB06},   {0xFB50, 0xFBB1},
    {0xFE70, 0xFEFC},   {0xFF21, 0xFF3A},   {0xFF41, 0xFF5A},   {0xFF66, 0xFFBE},   {0x10400, 0x1044F},
    {0x20000, 0x2A6DF}, {0x2A700, 0x2EBE0}, {0x2F800, 0x2FA1D}, {0x30000, 0x3134A},
};

// \p{N}: decimal digits of the listed scripts, super/subscripts, fractions,
// Roman numerals, circled numbers, CJK number letters.
constexpr Range kNumbers[] = {
    {0x30, 0x39},     {0xB2, 0xB3},     {0xB9, 0xB9},     {0xBC, 0xBE},     {0x660, 0x669},   {0x6F0, 0x6F9},
    {0x7C0, 0x7C9},   {0x966, 0x96F},   {0x9E6, 0x9EF},   {0xA66, 0xA6F},   {0xAE6, 0xAEF},   {0xB66, 0xB6F},
    {0xBE6, 0xBF2},   {0xC66, 0xC6F},   {0xCE6, 0xCEF},   {0xD66, 0xD78},   {0xE50, 0xE59},   {0xED0, 0xED9},
    {0xF20, 0xF33},   {0x1040, 0x1049}, {0x1369, 0x137C}, {0x16EE, 0x16F0}, {0x17E0, 0x17E9}, {0x1810, 0x1819},
    {0x2070, 0x2070}, {0x2074, 0x2079}, {0x2080, 0x2089}, {0x2150, 0x2182}, {0x2185, 0x2189}, {0x2460, 0x249B},
    {0x24EA, 0x24FF}, {0x2776, 0x2793}, {0x3007, 0x3007}, {0x3021, 0x3029}, {0x3038, 0x303A}, {0x3192, 0x3195},
    {0x3220, 0x3229}, {0x3248, 0x324F}, {0x3251, 0x325F}, {0x3280, 0x3289}, {0x32B1, 0x32BF}, {0xFF10, 0xFF19},
    {0x1D7CE, 0x1D7FF},
};

template <std::size_t N>
bool in_table(const Range (&table)[N], std::uint32_t cp) {
  const Range* it = std::upper_bound(std::begin(table), std::end(table), cp,
                                     [](std::uint32_t c, const Range& r) { return c < r.lo; });
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

bool is_letter(std::uint32_t cp) { return in_table(kLetters, cp); }
bool is_number(std::uint32_t cp) { return in_table(kNumbers, cp); }

bool is_space(std::uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
         cp == 0x3000;
}

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

// ---- special tokens -------------------------------------------------------------

void SpecialMatcher::add(std::string text, std::int32_t id) {
  if (text.empty()) return;
  auto& bucket = by_first_[static_cast<unsigned char>(text[0])];
  has_first_[static_cast<unsigned char>(text[0])] = true;
  bucket.emplace_back(std::move(text), id);
  ++count_;
  std::stable_sort(bucket.begin(), bucket.end(),
                   [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
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
