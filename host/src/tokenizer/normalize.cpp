// Unicode normalization (UAX #15): full canonical or compatibility
// decomposition, canonical reordering of combining marks, then canonical
// composition for NFC/NFKC. Hangul syllables are decomposed and composed
// algorithmically; the rest comes from tables generated out of the Unicode
// Character Database at build time.
#include <algorithm>

#include "internal.hpp"
#include "vkquant_unicode_tables.hpp"

namespace vkq::tok {

namespace {

// A byte that is not UTF-8 travels as kRaw | byte: class 0, composes with nothing.
constexpr std::uint32_t kRaw = 0x80000000u;

constexpr std::uint32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr std::uint32_t kLCount = 19, kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount,
                        kSCount = kLCount * kNCount;

std::uint8_t combining_class(std::uint32_t cp) {
  if (cp < 0x300 || (cp & kRaw)) return 0;
  const auto* end = std::end(ucd::kCcc);
  const auto* it = std::lower_bound(std::begin(ucd::kCcc), end, cp,
                                    [](const ucd::Ccc& e, std::uint32_t c) { return e.cp < c; });
  return it != end && it->cp == cp ? it->ccc : 0;
}

template <std::size_t N, std::size_t M>
bool decompose_from(const ucd::Decomp (&table)[N], const std::uint32_t (&data)[M], std::uint32_t cp,
                    std::vector<std::uint32_t>& out) {
  const auto* end = std::end(table);
  const auto* it = std::lower_bound(std::begin(table), end, cp,
                                    [](const ucd::Decomp& e, std::uint32_t c) { return e.cp < c; });
  if (it == end || it->cp != cp) return false;
  out.insert(out.end(), data + it->start, data + it->start + it->len);
  return true;
}

void decompose(std::uint32_t cp, bool compat, std::vector<std::uint32_t>& out) {
  if (cp >= kSBase && cp < kSBase + kSCount) {
    const std::uint32_t s = cp - kSBase;
    out.push_back(kLBase + s / kNCount);
    out.push_back(kVBase + (s % kNCount) / kTCount);
    if (s % kTCount) out.push_back(kTBase + s % kTCount);
    return;
  }
  if (cp < 0xA0 || (cp & kRaw)) {
    out.push_back(cp);
    return;
  }
  if (compat ? decompose_from(ucd::kCompat, ucd::kCompatData, cp, out)
             : decompose_from(ucd::kCanonical, ucd::kCanonicalData, cp, out))
    return;
  out.push_back(cp);
}

// The primary composite of a starter and the next character; 0 when none.
std::uint32_t compose(std::uint32_t a, std::uint32_t b) {
  if ((a | b) & kRaw) return 0;
  if (a >= kLBase && a < kLBase + kLCount && b >= kVBase && b < kVBase + kVCount)
    return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
  if (a >= kSBase && a < kSBase + kSCount && (a - kSBase) % kTCount == 0 && b > kTBase && b < kTBase + kTCount)
    return a + (b - kTBase);
  const auto* end = std::end(ucd::kComposites);
  const auto* it = std::lower_bound(std::begin(ucd::kComposites), end, std::pair{a, b},
                                    [](const ucd::Composite& e, const std::pair<std::uint32_t, std::uint32_t>& k) {
                                      return e.first < k.first || (e.first == k.first && e.second < k.second);
                                    });
  return it != end && it->first == a && it->second == b ? it->composite : 0;
}

}  // namespace

std::string normalize(std::string_view text, Form form) {
  if (std::all_of(text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; }))
    return std::string(text);  // ASCII is invariant under every form
  const bool compat = form == Form::nfkc || form == Form::nfkd;
  std::vector<std::uint32_t> cps;
  cps.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    const Utf8Char c = next_char(text, i);
    decompose(c.valid ? c.cp : kRaw | static_cast<unsigned char>(text[i]), compat, cps);
    i += c.len;
  }
  // Canonical ordering: each run of non-starters sorted stably by class.
  for (std::size_t i = 0; i < cps.size();) {
    if (combining_class(cps[i]) == 0) {
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j < cps.size() && combining_class(cps[j]) != 0) ++j;
    std::stable_sort(cps.begin() + std::ptrdiff_t(i), cps.begin() + std::ptrdiff_t(j),
                     [](std::uint32_t a, std::uint32_t b) { return combining_class(a) < combining_class(b); });
    i = j;
  }
  if (form == Form::nfc || form == Form::nfkc) {
    // Canonical composition: a character joins the last starter unless a
    // character between them has class 0 or a class >= its own (blocked).
    std::vector<std::uint32_t> out;
    out.reserve(cps.size());
    std::ptrdiff_t starter = -1;
    std::uint8_t last_class = 0;
    for (const std::uint32_t cp : cps) {
      const std::uint8_t cc = combining_class(cp);
      if (starter >= 0 && (std::ptrdiff_t(out.size()) - 1 == starter || last_class < cc)) {
        if (const std::uint32_t c = compose(out[std::size_t(starter)], cp)) {
          out[std::size_t(starter)] = c;
          continue;
        }
      }
      if (cc == 0) starter = std::ptrdiff_t(out.size());
      last_class = cc;
      out.push_back(cp);
    }
    cps = std::move(out);
  }
  std::string result;
  result.reserve(text.size());
  for (const std::uint32_t cp : cps) {
    if (cp & kRaw) {
      result += char(cp & 0xFF);
    } else {
      append_utf8(result, cp);
    }
  }
  return result;
}

std::string apply_normalizer(const std::vector<NormStep>& steps, std::string_view text) {
  std::string s(text);
  for (const NormStep& step : steps) {
    switch (step.kind) {
      case NormStep::Kind::nfc: s = normalize(s, Form::nfc); break;
      case NormStep::Kind::nfd: s = normalize(s, Form::nfd); break;
      case NormStep::Kind::nfkc: s = normalize(s, Form::nfkc); break;
      case NormStep::Kind::nfkd: s = normalize(s, Form::nfkd); break;
      case NormStep::Kind::prepend:
        if (!s.empty()) s.insert(0, step.a);
        break;
      case NormStep::Kind::replace: {
        if (step.a.empty()) break;  // refused when the file is read
        std::string out;
        for (std::size_t i = 0; i < s.size();) {
          if (s.compare(i, step.a.size(), step.a) == 0) {
            out += step.b;
            i += step.a.size();
          } else {
            out += s[i++];
          }
        }
        s = std::move(out);
        break;
      }
    }
  }
  return s;
}

}  // namespace vkq::tok
