// Decoding shared by the vocabulary tokenizers, and the byte tokenizer.
#include <charconv>

#include "internal.hpp"
#include "vkquant/error.hpp"

namespace vkq {

namespace tok {

namespace {

// U+2581 LOWER ONE EIGHTH BLOCK, SentencePiece's visible space.
constexpr std::string_view kSpmSpace = "\xE2\x96\x81";

std::string decode_piece(const std::string& text, Piece piece, std::uint8_t byte_value) {
  switch (piece) {
    case Piece::byte_level: {
      // Characters outside GPT-2's alphabet are kept as they are (lenient).
      std::string out;
      for (std::size_t i = 0; i < text.size();) {
        const Utf8Char c = next_char(text, i);
        const auto b = c.valid ? unicode_to_byte(c.cp) : std::nullopt;
        if (b) {
          out += char(*b);
        } else {
          out.append(text, i, c.len);
        }
        i += c.len;
      }
      return out;
    }
    case Piece::spm: {
      std::string out;
      for (std::size_t i = 0; i < text.size();) {
        if (text.compare(i, kSpmSpace.size(), kSpmSpace) == 0) {
          out += ' ';
          i += kSpmSpace.size();
        } else {
          out += text[i++];
        }
      }
      return out;
    }
    case Piece::raw: return text;
    case Piece::byte: return std::string(1, char(byte_value));
    case Piece::empty: return {};
    case Piece::unknown: return "\xE2\x96\x85";
  }
  return {};
}

}  // namespace

VocabTokenizer::VocabTokenizer(std::string kind, std::vector<std::string> texts, const std::vector<Piece>& pieces,
                               const std::vector<std::uint8_t>& byte_values, std::optional<std::int32_t> bos,
                               std::optional<std::int32_t> eos, bool strip_first_space)
    : kind_(std::move(kind)), texts_(std::move(texts)), bos_(bos), eos_(eos), strip_first_space_(strip_first_space) {
  decoded_.resize(texts_.size());
  strippable_.resize(texts_.size());
  special_.assign(texts_.size(), false);
  by_text_.reserve(texts_.size());
  for (std::size_t i = 0; i < texts_.size(); ++i)
    if (!texts_[i].empty()) by_text_[texts_[i]] = std::int32_t(i);
  for (std::size_t i = 0; i < texts_.size(); ++i) {
    decoded_[i] = decode_piece(texts_[i], pieces[i], byte_values[i]);
    strippable_[i] = pieces[i] == Piece::spm;
  }
}

void VocabTokenizer::check_id(std::int32_t id) const {
  if (id < 0 || std::size_t(id) >= decoded_.size())
    throw Error(kind_ + " tokenizer: token id " + std::to_string(id) + " is outside [0, " +
                std::to_string(decoded_.size()) + ")");
}

std::string VocabTokenizer::token_bytes(std::int32_t id) const {
  check_id(id);
  return decoded_[std::size_t(id)];
}

void VocabTokenizer::add_control(std::int32_t id) {
  if (!texts_[std::size_t(id)].empty()) controls_.add(texts_[std::size_t(id)], id);
}

std::vector<std::int32_t> VocabTokenizer::encode_special(std::string_view text) const {
  if (controls_.empty()) return encode(text);
  std::vector<std::int32_t> out;
  partition(
      controls_, text,
      [&](std::string_view segment) {
        const auto ids = encode(segment);
        out.insert(out.end(), ids.begin(), ids.end());
      },
      [&](std::int32_t id) { out.push_back(id); });
  return out;
}

std::optional<std::int32_t> VocabTokenizer::find_token(std::string_view piece) const {
  const auto it = by_text_.find(std::string(piece));
  return it == by_text_.end() ? std::nullopt : std::optional<std::int32_t>(it->second);
}

std::string VocabTokenizer::token_piece(std::int32_t id) const {
  check_id(id);
  return texts_[std::size_t(id)];
}

bool VocabTokenizer::is_special(std::int32_t id) const {
  check_id(id);
  return special_[std::size_t(id)];
}

std::string VocabTokenizer::decode(std::span<const std::int32_t> ids) const {
  std::string out;
  bool first = true;  // no token has contributed bytes yet
  for (const std::int32_t id : ids) {
    check_id(id);
    const std::string& piece = decoded_[std::size_t(id)];
    if (piece.empty()) continue;
    if (first && strip_first_space_ && strippable_[std::size_t(id)] && piece[0] == ' ') {
      out.append(piece, 1);
    } else {
      out += piece;
    }
    first = false;
  }
  return out;
}

std::int32_t byte_or_unknown(const std::array<std::int32_t, 256>& byte_ids, std::optional<std::int32_t> unk, unsigned char b,
                             std::string_view kind) {
  if (byte_ids[b] >= 0) return byte_ids[b];
  if (unk) return *unk;
  static const char* hex = "0123456789ABCDEF";
  throw Error(std::string(kind) + " tokenizer: byte 0x" + hex[b >> 4] + hex[b & 15] +
              " has no token (no byte token, no unknown token)");
}

}  // namespace tok

// ---- byte tokenizer ------------------------------------------------------------------

namespace {

class ByteTokenizer final : public Tokenizer {
 public:
  ByteTokenizer(std::int32_t vocab_size, std::optional<std::int32_t> bos, std::optional<std::int32_t> eos)
      : vocab_size_(vocab_size), bos_(bos), eos_(eos) {}

  std::vector<std::int32_t> encode(std::string_view text) const override {
    std::vector<std::int32_t> ids(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) ids[i] = static_cast<unsigned char>(text[i]);
    return ids;
  }
  std::string decode(std::span<const std::int32_t> ids) const override {
    std::string out;
    out.reserve(ids.size());
    for (const std::int32_t id : ids) {
      check(id);
      if (id < 256) out += char(id);
    }
    return out;
  }
  std::string token_bytes(std::int32_t id) const override {
    check(id);
    return id < 256 ? std::string(1, char(id)) : std::string();
  }
  std::int32_t vocab_size() const override { return vocab_size_; }
  std::optional<std::int32_t> bos() const override { return bos_; }
  std::optional<std::int32_t> eos() const override { return eos_; }
  std::string kind() const override { return "bytes"; }
  std::vector<std::int32_t> encode_special(std::string_view text) const override {
    std::vector<std::int32_t> out;
    for (std::size_t i = 0; i < text.size();) {
      std::optional<std::int32_t> hit;
      for (const std::int32_t id : {bos_.value_or(-1), eos_.value_or(-1)})
        if (id >= 0 && text.substr(i).starts_with(special_name(id))) hit = id;
      if (hit) {
        out.push_back(*hit);
        i += special_name(*hit).size();
      } else {
        out.push_back(static_cast<unsigned char>(text[i++]));
      }
    }
    return out;
  }
  std::optional<std::int32_t> find_token(std::string_view piece) const override {
    if (piece.size() == 1) return static_cast<unsigned char>(piece[0]);
    for (const auto id : {bos_, eos_})
      if (id && piece == special_name(*id)) return id;
    constexpr std::string_view kPrefix = "<special_";
    if (!piece.starts_with(kPrefix) || !piece.ends_with('>')) return std::nullopt;
    std::int32_t id = 0;
    const char* first = piece.data() + kPrefix.size();
    const char* last = piece.data() + piece.size() - 1;
    const auto [end, ec] = std::from_chars(first, last, id);
    if (ec != std::errc() || end != last || id < 256 || id >= vocab_size_ || special_name(id) != piece)
      return std::nullopt;
    return id;
  }
  // Bytes are their own piece; ids from 256 on are <bos>, <eos> or <special_N>.
  std::string token_piece(std::int32_t id) const override {
    check(id);
    return id < 256 ? std::string(1, char(id)) : special_name(id);
  }
  bool is_special(std::int32_t id) const override {
    check(id);
    return id >= 256;
  }
  std::string pre_tokenizer() const override { return "bytes"; }
  std::string normalizer() const override { return "none"; }

 private:
  std::string special_name(std::int32_t id) const {
    if (bos_ && id == *bos_) return "<bos>";
    if (eos_ && id == *eos_) return "<eos>";
    return "<special_" + std::to_string(id) + ">";
  }
  void check(std::int32_t id) const {
    if (id < 0 || id >= vocab_size_)
      throw Error("bytes tokenizer: token id " + std::to_string(id) + " is outside [0, " +
                  std::to_string(vocab_size_) + ")");
  }
  std::int32_t vocab_size_;
  std::optional<std::int32_t> bos_, eos_;
};

}  // namespace

std::unique_ptr<Tokenizer> make_byte_tokenizer(std::int32_t vocab_size, std::optional<std::int32_t> bos,
                                               std::optional<std::int32_t> eos) {
  if (vocab_size < 256)
    throw Error("bytes tokenizer: vocab_size " + std::to_string(vocab_size) + " is below 256");
  auto check = [&](const char* name, std::optional<std::int32_t> id) {
    if (id && (*id < 256 || *id >= vocab_size))
      throw Error(std::string("bytes tokenizer: ") + name + " id " + std::to_string(*id) + " is outside [256, " +
                  std::to_string(vocab_size) + ")");
  };
  check("bos", bos);
  check("eos", eos);
  return std::make_unique<ByteTokenizer>(vocab_size, bos, eos);
}

}  // namespace vkq
