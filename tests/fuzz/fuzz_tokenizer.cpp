// libFuzzer: a tokenizer.json through load_tokenizer_json, then encode,
// encode_special and decode of a fixed text (ASCII, digits, CJK, emoji, a
// contraction, combining marks, a ligature, an invalid UTF-8 byte and the
// added tokens of the seed files), a decode, piece and lookup of every id and
// a decode of an out-of-range id.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_common.hpp"
#include "vkquant/error.hpp"
#include "vkquant/tokenizer.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto path = vkq_fuzz::write_input("tokenizer.json", data, size);
  try {
    const auto t = vkq::load_tokenizer_json(path);
    static constexpr std::string_view kText =
        "Hello world!  It's 12345 (hello)\n\n\t\xE4\xB8\xAD\xE6\x96\x87 \xF0\x9F\x98\x80 a\xFF<|endoftext|><tool> lo"
        " e\xCC\x81 \xEF\xAC\x81 <s>x</s> \xE1\x84\x80\xE1\x85\xA1";
    const auto ids = t->encode(kText);
    for (const auto id : ids)
      if (id < 0 || id >= t->vocab_size()) __builtin_trap();
    for (const auto id : t->encode_special(kText))
      if (id < 0 || id >= t->vocab_size()) __builtin_trap();
    volatile std::size_t sink = t->decode(ids).size() + t->kind().size() + t->pre_tokenizer().size() +
                                t->normalizer().size();
    const std::int32_t n = t->vocab_size();
    for (std::int32_t id = 0; id < n && id < 4096; ++id) {
      sink = sink + t->token_bytes(id).size() + t->is_special(id);
      const std::string piece = t->token_piece(id);
      const auto found = piece.empty() ? std::nullopt : t->find_token(piece);
      if (!piece.empty() && (!found || *found < 0 || *found >= n)) __builtin_trap();  // every piece is found
    }
    try {
      const std::int32_t bad[] = {n};
      (void)t->decode(bad);
      __builtin_trap();  // an id outside the vocabulary must be refused
    } catch (const vkq::Error&) {
    }
    (void)t->bos();
    (void)t->eos();
  } catch (const vkq::Error&) {
  }
  return 0;
}
