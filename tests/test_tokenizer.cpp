// Tokenizers: the byte vocabulary, GGUF gpt2 (BPE) and llama (SPM)
// vocabularies, and tokenizer.json byte-level BPE. Expected ids are worked
// out by hand in the comments; the bundled model's real GGUF vocabulary is
// checked against the ids of its reference prompts.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "../host/src/tokenizer/internal.hpp"
#include "format_error.hpp"
#include "vkquant/error.hpp"
#include "vkquant/mapped_file.hpp"
#include "vkquant/tokenizer.hpp"

namespace {

namespace fs = std::filesystem;
using Ids = std::vector<std::int32_t>;

fs::path source_path(const std::string& rel) { return fs::path(VKQ_SOURCE_DIR) / rel; }

fs::path temp_dir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("vkq_tok_" + std::to_string(::getpid())) / name;
  fs::create_directories(dir);
  return dir;
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

void write_text(const fs::path& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }

// Strings every tokenizer must give back unchanged: ASCII, Latin-1, Greek,
// Cyrillic, CJK, emoji (4-byte), combining marks, whitespace runs, digits.
const std::vector<std::string> kRoundTrip = {
    "hello world",
    "In the beginning God created the heaven and the earth.",
    "  leading and trailing spaces  ",
    "tabs\tand\nnew\r\nlines\n\n\n",
    "numbers 1234567 and 3.14159, he's we'LL THEY'RE",
    "caf\xC3\xA9 na\xC3\xAFve \xCE\xB1\xCE\xB2\xCE\xB3 \xD0\xBF\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82",
    "\xE4\xB8\xAD\xE6\x96\x87\xE5\xAD\x97 \xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E",
    "emoji \xF0\x9F\x98\x80\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD!",
    "e\xCC\x81 combining, nbsp\xC2\xA0here, ideographic\xE3\x80\x80space",
    "(parens) [brackets] {braces} <angle> 'quotes' \"double\"",
};

// Invalid UTF-8: stray continuation bytes, truncated sequences, overlongs.
const std::vector<std::string> kInvalid = {
    "\xFF", "a\x80z", "trunc\xE4\xB8", "\xC0\xAF overlong", "\xED\xA0\x80 surrogate", std::string("nul\0byte", 8),
};

void expect_round_trips(const vkq::Tokenizer& t) {
  for (const auto* set : {&kRoundTrip, &kInvalid}) {
    for (const std::string& s : *set) {
      const Ids ids = t.encode(s);
      EXPECT_EQ(t.decode(ids), s) << t.kind() << ": " << s;
      for (const std::int32_t id : ids) {
        EXPECT_GE(id, 0);
        EXPECT_LT(id, t.vocab_size());
      }
    }
  }
}

template <typename F>
void expect_error(F&& f, const std::string& fragment) {
  try {
    f();
    ADD_FAILURE() << "accepted; wanted an error containing \"" << fragment << "\"";
  } catch (const vkq::Error& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos)
        << "wanted \"" << fragment << "\" in: " << e.what();
  }
}

// ---- byte tokenizer -------------------------------------------------------------

TEST(TokenizerBytes, AllBytesAndKjvTextRoundTrip) {
  const auto t = vkq::make_byte_tokenizer();
  EXPECT_EQ(t->kind(), "bytes");
  EXPECT_EQ(t->vocab_size(), 258);
  EXPECT_EQ(t->bos(), 256);
  EXPECT_EQ(t->eos(), 257);
  std::string all;
  for (int b = 0; b < 256; ++b) all += char(b);
  const Ids ids = t->encode(all);
  ASSERT_EQ(ids.size(), 256u);
  for (int b = 0; b < 256; ++b) EXPECT_EQ(ids[std::size_t(b)], b);
  EXPECT_EQ(t->decode(ids), all);
  EXPECT_EQ(t->encode("In"), (Ids{73, 110}));
  EXPECT_EQ(t->decode(Ids{256, 73, 110, 257}), "In");  // bos / eos decode to ""
  EXPECT_EQ(t->token_bytes(0xE4), "\xE4");
  EXPECT_EQ(t->token_bytes(256), "");
  const std::string kjv = read_file(source_path("tests/data/ppl-sample.txt"));
  ASSERT_GT(kjv.size(), 1000u);
  EXPECT_EQ(t->decode(t->encode(kjv)), kjv);
  expect_round_trips(*t);
  expect_error([&] { (void)t->decode(Ids{258}); }, "258");
  expect_error([&] { (void)t->token_bytes(-1); }, "-1");
  expect_error([] { (void)vkq::make_byte_tokenizer(258, 300, 257); }, "bos id 300");
  expect_error([] { (void)vkq::make_byte_tokenizer(255, std::nullopt, std::nullopt); }, "below 256");
}

// ---- byte-level BPE vocabulary shared by the GGUF gpt2 and tokenizer.json tests ----

// GPT-2's byte -> character table (the reference description, written out).
std::string mapped(unsigned char b) {
  std::uint32_t cp = b;
  const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
  if (!printable) {
    cp = 256;
    for (int x = 0; x < b; ++x) {
      const bool p = (x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || x >= 0xAE;
      if (!p) ++cp;
    }
  }
  std::string out;
  if (cp < 0x80) {
    out += char(cp);
  } else {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  }
  return out;
}
std::string mapped(std::string_view s) {
  std::string out;
  for (const char c : s) out += mapped(static_cast<unsigned char>(c));
  return out;
}

// Ids 0..255: the byte b's character. Merge r (below, as raw byte pairs) makes
// token 256 + r. Then 273 "lo" (no merge makes it), 274 <|endoftext|>
// (control/special), 275 <tool> (user-defined / added, not special).
const std::vector<std::pair<std::string, std::string>> kMerges = {
    {"h", "e"},     // 256 he
    {"l", "l"},     // 257 ll
    {"he", "ll"},   // 258 hell
    {"hell", "o"},  // 259 hello
    {" ", "w"},     // 260 " w"
    {"o", "r"},     // 261 or
    {" w", "or"},   // 262 " wor"
    {"l", "d"},     // 263 ld
    {" wor", "ld"}, // 264 " world"
    {"1", "2"},     // 265 12
    {"12", "3"},    // 266 123
    {" ", " "},     // 267 "  "
    {"\n", "\n"},   // 268 "\n\n"
    {"(", "h"},     // 269 (h
    {"'", "S"},     // 270 'S
    {"a", "\xE4"},  // 271 a + first byte of 中 (E4 B8 AD)
    {"a", "\xF0"},  // 272 a + first byte of 😀 (F0 9F 98 80)
};
constexpr std::int32_t kLo = 273, kEot = 274, kTool = 275;

vkq::GgufVocab gpt2_vocab(const std::string& pre) {
  vkq::GgufVocab v;
  v.model = "gpt2";
  v.pre = pre;
  for (int b = 0; b < 256; ++b) v.tokens.push_back(mapped(static_cast<unsigned char>(b)));
  for (const auto& [a, b] : kMerges) {
    v.tokens.push_back(mapped(a + b));
    v.merges.push_back(mapped(a) + " " + mapped(b));
  }
  v.tokens.push_back(mapped("lo"));
  v.tokens.push_back("<|endoftext|>");
  v.tokens.push_back("<tool>");
  v.types.assign(v.tokens.size(), 1);
  v.types[std::size_t(kEot)] = 3;
  v.types[std::size_t(kTool)] = 4;
  v.bos = v.eos = kEot;
  return v;
}

Ids bytes_of(std::string_view s) {
  Ids ids;
  for (const char c : s) ids.push_back(static_cast<unsigned char>(c));
  return ids;
}

// Expectations common to the GPT-2 regex (GGUF pre "" / tokenizer.json ByteLevel).
void expect_gpt2_split(const vkq::Tokenizer& t) {
  // "hello": he(r0), ll(r1), hell(r2), hello(r3). " world": " w"(r4), or(r5),
  // " wor"(r6), ld(r7), " world"(r8).
  EXPECT_EQ(t.encode("hello world"), (Ids{259, 264}));
  EXPECT_EQ(t.encode("he's"), (Ids{256, 39, 115}));  // "he" "'s"
  EXPECT_EQ(t.encode("0123"), (Ids{48, 266}));       // one word: 0 [1 2 -> 12] 3 -> 0 123
  EXPECT_EQ(t.encode("a  b"), (Ids{97, 32, 32, 98})); // "a" " " " b": \s+(?!\S) leaves one space
  EXPECT_EQ(t.encode("a  "), (Ids{97, 267}));         // trailing run stays whole
  EXPECT_EQ(t.encode("a \n\nb"), (Ids{97, 32, 10, 10, 98}));  // "a" " \n" "\n" "b"
  EXPECT_EQ(t.encode("(hi"), (Ids{40, 104, 105}));   // "(" "hi"
  EXPECT_EQ(t.encode("'S"), (Ids{39, 83}));          // contractions are lower-case only
  EXPECT_EQ(t.encode("a\xE4\xB8\xAD"), (Ids{271, 0xB8, 0xAD}));  // 中 is a letter: one word with "a"
  EXPECT_EQ(t.encode("a\xF0\x9F\x98\x80"), (Ids{97, 0xF0, 0x9F, 0x98, 0x80}));  // emoji is not
  EXPECT_EQ(t.encode("lo"), (Ids{108, 111}));        // no merge makes "lo"
  EXPECT_EQ(t.encode(""), Ids{});
}

// Llama-3 regex with ignore_merges.
void expect_llama3_split(const vkq::Tokenizer& t) {
  EXPECT_EQ(t.encode("hello world"), (Ids{259, 264}));
  EXPECT_EQ(t.encode("0123"), (Ids{48, 265, 51}));            // "012" "3"
  EXPECT_EQ(t.encode("a \n\nb"), (Ids{97, 32, 268, 98}));     // "a" " \n\n" "b"
  EXPECT_EQ(t.encode("(hi"), (Ids{269, 105}));                // "(hi" is one word
  EXPECT_EQ(t.encode("'S"), (Ids{270}));                      // case-insensitive contraction
  EXPECT_EQ(t.encode("lo"), (Ids{kLo}));                      // ignore_merges: the word is a token
  EXPECT_EQ(t.encode("a  b"), (Ids{97, 32, 32, 98}));
}

TEST(TokenizerGguf, Gpt2KnownIds) {
  const auto t = vkq::make_gguf_tokenizer(gpt2_vocab("gpt-2"));
  EXPECT_EQ(t->kind(), "gpt2");
  EXPECT_EQ(t->vocab_size(), 276);
  EXPECT_EQ(t->eos(), kEot);
  expect_gpt2_split(*t);
  // User-defined tokens are matched whole; control tokens are text.
  EXPECT_EQ(t->encode("hello<tool> world"), (Ids{259, kTool, 264}));
  EXPECT_EQ(t->encode("<|endoftext|>"), bytes_of("<|endoftext|>"));
  EXPECT_EQ(t->decode(Ids{259, kEot, 264, kTool}), "hello world<tool>");
  EXPECT_EQ(t->token_bytes(264), " world");
  EXPECT_EQ(t->token_bytes(10), "\n");
  EXPECT_EQ(t->token_bytes(kEot), "");
  expect_round_trips(*t);
}

// encode_special / find_token / token_piece / is_special / names.
TEST(TokenizerGguf, Gpt2SpecialTokenApi) {
  const auto t = vkq::make_gguf_tokenizer(gpt2_vocab("gpt-2"));
  EXPECT_EQ(t->encode_special("hi<|endoftext|>hello<tool> world"), (Ids{104, 105, kEot, 259, kTool, 264}));
  EXPECT_EQ(t->encode_special("<|endoftext|"), bytes_of("<|endoftext|"));
  EXPECT_EQ(t->find_token("<|endoftext|>"), kEot);
  EXPECT_EQ(t->find_token(mapped(" world")), 264);
  EXPECT_EQ(t->find_token(" world"), std::nullopt);  // pieces are spelled as stored
  EXPECT_EQ(t->token_piece(264), mapped(" world"));
  EXPECT_EQ(t->token_piece(kEot), "<|endoftext|>");
  EXPECT_TRUE(t->is_special(kEot));
  EXPECT_FALSE(t->is_special(kTool));
  EXPECT_FALSE(t->is_special(259));
  EXPECT_EQ(t->pre_tokenizer(), "gpt2");
  EXPECT_EQ(t->normalizer(), "none");
  expect_error([&] { (void)t->token_piece(276); }, "outside [0, 276)");
  expect_error([&] { (void)t->is_special(-1); }, "outside [0, 276)");
  EXPECT_EQ(vkq::make_gguf_tokenizer(gpt2_vocab("llama-bpe"))->pre_tokenizer(), "llama3");
  EXPECT_EQ(vkq::make_gguf_tokenizer(gpt2_vocab("qwen2"))->pre_tokenizer(), "qwen2");
}

// tokenizer.ggml.add_bos_token false (Qwen's GGUF files): no BOS before a
// text, as llama.cpp; the id stays a control token. add_eos_token true is refused.
TEST(TokenizerGguf, AddBosAndEosTokenKeys) {
  vkq::GgufVocab v = gpt2_vocab("qwen2");
  EXPECT_EQ(vkq::make_gguf_tokenizer(v)->bos(), kEot);
  v.add_bos = false;
  const auto t = vkq::make_gguf_tokenizer(v);
  EXPECT_EQ(t->bos(), std::nullopt);
  EXPECT_EQ(t->eos(), kEot);
  EXPECT_TRUE(t->is_special(kEot));
  v.add_eos = true;
  expect_error([&] { (void)vkq::make_gguf_tokenizer(v); }, "tokenizer.ggml.add_eos_token: true is not supported");
}

TEST(TokenizerGguf, UnknownPreTokenizerRefusedByName) {
  expect_error([] { (void)vkq::make_gguf_tokenizer(gpt2_vocab("xyz")); },
               "tokenizer.ggml.pre: 'xyz' is not supported (known: llama3, ");
  expect_error([] { (void)vkq::make_gguf_tokenizer(gpt2_vocab("default")); }, "'default' is not supported");
  expect_error([] { (void)vkq::make_gguf_tokenizer(gpt2_vocab("")); }, "tokenizer.ggml.pre: missing");
}

TEST(TokenizerBytes, SpecialTokenApi) {
  const auto t = vkq::make_byte_tokenizer();
  EXPECT_EQ(t->encode_special("a<bos>b<eos"), (Ids{97, 256, 98, 60, 101, 111, 115}));
  EXPECT_EQ(t->encode("a<bos>"), bytes_of("a<bos>"));
  EXPECT_EQ(t->find_token("<eos>"), 257);
  EXPECT_EQ(t->find_token("a"), 97);
  EXPECT_EQ(t->find_token("ab"), std::nullopt);
  EXPECT_EQ(t->token_piece(256), "<bos>");
  EXPECT_EQ(t->token_piece(10), "\n");
  EXPECT_TRUE(t->is_special(257));
  EXPECT_FALSE(t->is_special(255));
  EXPECT_EQ(t->pre_tokenizer(), "bytes");
  const auto u = vkq::make_byte_tokenizer(300, 256, 257);
  EXPECT_EQ(u->token_piece(299), "<special_299>");
  EXPECT_EQ(u->find_token("<special_299>"), 299);
  EXPECT_EQ(u->find_token("<special_300>"), std::nullopt);
  EXPECT_EQ(u->find_token("<special_0256>"), std::nullopt);
}

TEST(TokenizerGguf, Gpt2PreTokenizerTypes) {
  expect_llama3_split(*vkq::make_gguf_tokenizer(gpt2_vocab("llama-bpe")));
  const auto q = vkq::make_gguf_tokenizer(gpt2_vocab("qwen2"));
  EXPECT_EQ(q->encode("0123"), (Ids{48, 49, 50, 51}));  // one digit per word
  EXPECT_EQ(q->encode("(hi"), (Ids{269, 105}));
  EXPECT_EQ(q->encode("lo"), (Ids{108, 111}));         // qwen2 keeps merges
  expect_round_trips(*q);
}

TEST(TokenizerGguf, Gpt2LongWordIsFast) {
  // One 200k-character word: the merge loop is a heap, not O(n^2).
  const auto t = vkq::make_gguf_tokenizer(gpt2_vocab("gpt-2"));
  std::string s;
  for (int i = 0; i < 40000; ++i) s += "hello";
  const Ids ids = t->encode(s);
  EXPECT_EQ(ids, Ids(40000, 259));
}

// ---- SentencePiece ------------------------------------------------------------------

// 0 <unk>, 1 <s>, 2 </s>, 3..258 <0x00>..<0xFF>, then pieces with scores
// (higher merges first).
vkq::GgufVocab spm_vocab(bool add_space_prefix) {
  vkq::GgufVocab v;
  v.model = "llama";
  v.tokens = {"<unk>", "<s>", "</s>"};
  v.types = {2, 3, 3};
  static const char* hex = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) {
    v.tokens.push_back(std::string("<0x") + hex[b >> 4] + hex[b & 15] + ">");
    v.types.push_back(6);
  }
  const std::vector<std::pair<std::string, float>> pieces = {
      {"\xE2\x96\x81", -10},                // 259 ▁
      {"h", -20}, {"e", -20}, {"l", -20}, {"o", -20},  // 260..263
      {"w", -20}, {"r", -20}, {"d", -20},              // 264..266
      {"he", -3},                           // 267
      {"ll", -2},                           // 268
      {"hell", -5},                         // 269
      {"hello", -6},                        // 270
      {"\xE2\x96\x81hello", -7},            // 271 ▁hello
      {"\xE2\x96\x81w", -8},                // 272 ▁w
      {"or", -4},                           // 273
      {"\xE2\x96\x81wor", -9},              // 274 ▁wor
      {"\xE2\x96\x81world", -1},            // 275 ▁world
      {"ld", -11},                          // 276
      {"\xE4\xB8\xAD", -12},                // 277 中
  };
  v.scores.assign(v.tokens.size(), 0.0f);
  for (const auto& [p, s] : pieces) {
    v.tokens.push_back(p);
    v.scores.push_back(s);
    v.types.push_back(1);
  }
  v.tokens.push_back("<tool>");  // 278 user-defined
  v.scores.push_back(0);
  v.types.push_back(4);
  v.bos = 1;
  v.eos = 2;
  v.unk = 0;
  v.add_space_prefix = add_space_prefix;
  return v;
}
constexpr std::int32_t byte_token(int b) { return 3 + b; }

TEST(TokenizerSpm, KnownIdsAndByteFallback) {
  const auto t = vkq::make_gguf_tokenizer(spm_vocab(true));
  EXPECT_EQ(t->kind(), "llama");
  EXPECT_EQ(t->vocab_size(), 279);
  EXPECT_EQ(t->bos(), 1);
  // "▁hello▁world": ll(-2), he(-3), or(-4), hell(-5), hello(-6), ▁hello(-7),
  // ▁w(-8), ▁wor(-9), ld(-11), then ▁world(-1).
  EXPECT_EQ(t->encode("hello world"), (Ids{271, 275}));
  // "▁hi!": i and ! are no pieces -> <0x69> <0x21>.
  EXPECT_EQ(t->encode("hi!"), (Ids{259, 260, byte_token('i'), byte_token('!')}));
  // "▁中文": 中 is a piece, 文 (E6 96 87) falls back to bytes.
  EXPECT_EQ(t->encode("\xE4\xB8\xAD\xE6\x96\x87"), (Ids{259, 277, byte_token(0xE6), byte_token(0x96), byte_token(0x87)}));
  // Equal scores: the leftmost pair first, "▁" [ll] l.
  EXPECT_EQ(t->encode("lll"), (Ids{259, 268, 262}));
  // A user-defined token is matched whole; llama.cpp prefixes a space after it.
  EXPECT_EQ(t->encode("a<tool>b"), (Ids{259, byte_token('a'), 278, 259, byte_token('b')}));
  EXPECT_EQ(t->encode("<s>"), (Ids{259, byte_token('<'), byte_token('s'), byte_token('>')}));
  EXPECT_EQ(t->encode(""), Ids{});
  // Decode: ▁ -> space, the first token's prefix space dropped, bytes joined.
  EXPECT_EQ(t->decode(Ids{1, 271, 275, 2}), "hello world");
  EXPECT_EQ(t->decode(Ids{259, 277, byte_token(0xE6), byte_token(0x96), byte_token(0x87)}),
            "\xE4\xB8\xAD\xE6\x96\x87");
  EXPECT_EQ(t->token_bytes(271), " hello");  // streaming keeps the space
  EXPECT_EQ(t->token_bytes(byte_token(0xE6)), "\xE6");
  EXPECT_EQ(t->token_bytes(1), "");
  EXPECT_EQ(t->token_bytes(0), "\xE2\x96\x85");  // unknown, as llama.cpp prints it
  expect_round_trips(*t);
  // Control and unknown tokens are text to encode() and tokens to encode_special(),
  // which prefixes a space after each as llama.cpp does.
  EXPECT_EQ(t->encode_special("<s>hello</s>world<unk>"), (Ids{1, 271, 2, 275, 0}));
  EXPECT_EQ(t->find_token("\xE2\x96\x81hello"), 271);
  EXPECT_EQ(t->token_piece(byte_token(0x0A)), "<0x0A>");
  EXPECT_TRUE(t->is_special(1));
  EXPECT_FALSE(t->is_special(0));
  EXPECT_FALSE(t->is_special(278));
  EXPECT_EQ(t->pre_tokenizer(), "spm");
  EXPECT_EQ(t->normalizer(), "prepend+replace");
}

TEST(TokenizerSpm, NoSpacePrefixAndUnknownFallback) {
  const auto t = vkq::make_gguf_tokenizer(spm_vocab(false));
  EXPECT_EQ(t->encode("hello world"), (Ids{270, 275}));  // "hello▁world"
  EXPECT_EQ(t->decode(Ids{272}), " w");                  // nothing to strip without the prefix
  expect_round_trips(*t);
  // Without byte tokens a missing character becomes <unk>.
  vkq::GgufVocab v;
  v.model = "llama";
  v.tokens = {"<unk>", "a", "\xE2\x96\x81"};
  v.types = {2, 1, 1};
  v.unk = 0;
  const auto u = vkq::make_gguf_tokenizer(v);
  EXPECT_EQ(u->encode("a b\xC3\xA9"), (Ids{2, 1, 2, 0, 0, 0}));  // ▁a▁bé: b, then é's two bytes
}

// The bundled model's own vocabulary (models/kjv-llama.gguf, written by
// tools/train/export.py), read here with a minimal GGUF key reader, against
// the token ids of its PyTorch reference prompts.
vkq::GgufVocab read_gguf_vocab(const fs::path& path) {
  const auto f = vkq::MappedFile::open(path);
  const auto* p = reinterpret_cast<const unsigned char*>(f.bytes().data());
  std::size_t at = 0;
  auto need = [&](std::size_t n) {
    if (at + n > f.size()) throw std::runtime_error("truncated GGUF");
  };
  auto u32 = [&] { need(4); std::uint32_t v; std::memcpy(&v, p + at, 4); at += 4; return v; };
  auto u64 = [&] { need(8); std::uint64_t v; std::memcpy(&v, p + at, 8); at += 8; return v; };
  auto str = [&] { const auto n = u64(); need(n); std::string s(reinterpret_cast<const char*>(p + at), n); at += n; return s; };
  const std::size_t sizes[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
  if (u32() != 0x46554747) throw std::runtime_error("not GGUF");
  (void)u32();
  (void)u64();
  const auto n_kv = u64();
  vkq::GgufVocab v;
  for (std::uint64_t k = 0; k < n_kv; ++k) {
    const std::string key = str();
    const auto type = u32();
    auto scalar_i = [&](std::uint32_t t) -> std::int64_t {
      need(sizes[t]);
      std::int64_t r = 0;
      if (t == 4) { std::uint32_t x; std::memcpy(&x, p + at, 4); r = x; }
      if (t == 5) { std::int32_t x; std::memcpy(&x, p + at, 4); r = x; }
      if (t == 7) r = p[at];
      at += sizes[t];
      return r;
    };
    if (type == 8) {
      const std::string s = str();
      if (key == "tokenizer.ggml.model") v.model = s;
    } else if (type == 9) {
      const auto et = u32();
      const auto n = u64();
      for (std::uint64_t i = 0; i < n; ++i) {
        if (et == 8) {
          const std::string s = str();
          if (key == "tokenizer.ggml.tokens") v.tokens.push_back(s);
        } else if (et == 6) {
          need(4);
          float x;
          std::memcpy(&x, p + at, 4);
          at += 4;
          if (key == "tokenizer.ggml.scores") v.scores.push_back(x);
        } else {
          const auto x = scalar_i(et);
          if (key == "tokenizer.ggml.token_type") v.types.push_back(std::int32_t(x));
        }
      }
    } else {
      if (type > 12) throw std::runtime_error("bad GGUF type");
      const auto x = scalar_i(type);
      if (key == "tokenizer.ggml.bos_token_id") v.bos = std::int32_t(x);
      if (key == "tokenizer.ggml.eos_token_id") v.eos = std::int32_t(x);
      if (key == "tokenizer.ggml.add_space_prefix") v.add_space_prefix = x != 0;
    }
  }
  return v;
}

TEST(TokenizerSpm, BundledModelVocabularyGivesBytes) {
  const vkq::GgufVocab v = read_gguf_vocab(source_path("models/kjv-llama.gguf"));
  ASSERT_EQ(v.tokens.size(), 258u);
  EXPECT_FALSE(v.add_space_prefix);
  const auto t = vkq::make_gguf_tokenizer(v);
  EXPECT_EQ(t->bos(), 256);
  EXPECT_EQ(t->eos(), 257);
  const auto ref = nlohmann::json::parse(read_file(source_path("tests/data/kjv-llama.logits.json")));
  ASSERT_FALSE(ref.at("prompts").empty());
  for (const auto& prompt : ref.at("prompts")) {
    const std::string text = prompt.at("text");
    const Ids ids = prompt.at("ids");  // [bos] + bytes
    EXPECT_EQ(ids.front(), *t->bos());
    EXPECT_EQ(t->encode(text), Ids(ids.begin() + 1, ids.end())) << text;
    EXPECT_EQ(t->decode(ids), text);
  }
  // On this vocabulary the SPM tokenizer and the byte tokenizer agree on any input.
  const auto bytes = vkq::make_byte_tokenizer();
  const std::string kjv = read_file(source_path("tests/data/ppl-sample.txt")).substr(0, 20000);
  EXPECT_EQ(t->encode(kjv), bytes->encode(kjv));
  for (const auto* set : {&kRoundTrip, &kInvalid})
    for (const std::string& s : *set) EXPECT_EQ(t->encode(s), bytes->encode(s)) << s;
  expect_round_trips(*t);
}

TEST(TokenizerGguf, RefusesHostileVocabularies) {
  auto make = [](vkq::GgufVocab v) { return [v] { (void)vkq::make_gguf_tokenizer(v); }; };
  {
    auto v = gpt2_vocab("gpt-2");
    v.merges[12] = mapped("h") + " x\xC4\xB0zz";
    expect_error(make(v), "tokenizer.ggml.merges[12]: unknown token 'x\xC4\xB0zz'");
  }
  {
    auto v = gpt2_vocab("gpt-2");
    v.merges[3] = "nospace";
    expect_error(make(v), "tokenizer.ggml.merges[3]: expected two tokens");
  }
  {
    auto v = gpt2_vocab("gpt-2");
    v.bos = 276;
    expect_error(make(v), "tokenizer.ggml.bos_token_id: 276 is outside [0, 276)");
  }
  {
    auto v = spm_vocab(true);
    v.eos = -1;
    expect_error(make(v), "tokenizer.ggml.eos_token_id");
  }
  {
    auto v = spm_vocab(true);
    v.scores.pop_back();
    expect_error(make(v), "tokenizer.ggml.scores: 278 entries for 279 tokens");
  }
  {
    auto v = spm_vocab(true);
    v.scores[5] = std::nanf("");
    expect_error(make(v), "tokenizer.ggml.scores[5]: not a number");
  }
  {
    auto v = spm_vocab(true);
    v.types[7] = 9;
    expect_error(make(v), "tokenizer.ggml.token_type[7]: unknown token type 9");
  }
  {
    auto v = spm_vocab(true);
    v.tokens[3] = "<0xZZ>";
    expect_error(make(v), "tokenizer.ggml.tokens[3]: byte token '<0xZZ>'");
  }
  {
    auto v = spm_vocab(true);
    v.model = "bert";
    expect_error(make(v), "tokenizer.ggml.model: unsupported tokenizer 'bert'");
  }
  {
    vkq::GgufVocab v;
    v.model = "gpt2";
    expect_error(make(v), "tokenizer.ggml.tokens: no tokens");
  }
  {
    // No byte token for "!" and no unknown token: a clear error, not a crash.
    vkq::GgufVocab v;
    v.model = "llama";
    v.tokens = {"a"};
    v.add_space_prefix = false;
    const auto t = vkq::make_gguf_tokenizer(v);
    expect_error([&] { (void)t->encode("!"); }, "byte 0x21 has no token");
  }
}

// ---- tokenizer.json -----------------------------------------------------------------

const char* kLlama3Regex =
    R"re((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";

// A tokenizer.json over the same vocabulary as gpt2_vocab.
nlohmann::json hf_json(bool llama3, bool pair_merges) {
  using nlohmann::json;
  const vkq::GgufVocab v = gpt2_vocab("gpt-2");
  json vocab = json::object();
  for (std::size_t i = 0; i + 1 < v.tokens.size(); ++i) vocab[v.tokens[i]] = i;  // <tool> only as an added token
  json merges = json::array();
  for (const auto& [a, b] : kMerges)
    merges.push_back(pair_merges ? json::array({mapped(a), mapped(b)}) : json(mapped(a) + " " + mapped(b)));
  json j = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"added_tokens",
       json::array({{{"id", kEot}, {"content", "<|endoftext|>"}, {"special", true}},
                    {{"id", kTool}, {"content", "<tool>"}, {"special", false}}})},
      {"normalizer", nullptr},
      {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
      {"model",
       {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", ""},
        {"end_of_word_suffix", ""}, {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", llama3},
        {"vocab", vocab}, {"merges", merges}}},
  };
  const json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true},
                           {"use_regex", !llama3}};
  if (llama3) {
    j["pre_tokenizer"] = {
        {"type", "Sequence"},
        {"pretokenizers",
         json::array({{{"type", "Split"}, {"pattern", {{"Regex", kLlama3Regex}}}, {"behavior", "Isolated"},
                       {"invert", false}},
                      byte_level})}};
  } else {
    j["pre_tokenizer"] = byte_level;
  }
  return j;
}

fs::path write_json(const std::string& dir, const nlohmann::json& j) {
  const fs::path p = temp_dir(dir) / "tokenizer.json";
  write_text(p, j.dump(1));
  return p;
}

TEST(TokenizerHfJson, Gpt2StyleKnownIds) {
  const fs::path p = write_json("gpt2", hf_json(false, false));
  const auto t = vkq::load_tokenizer_json(p);
  EXPECT_EQ(t->kind(), "hf-bpe");
  EXPECT_EQ(t->vocab_size(), 276);
  EXPECT_EQ(t->bos(), std::nullopt);  // no config: found by name, and GPT-2 has no BOS name
  EXPECT_EQ(t->eos(), kEot);
  expect_gpt2_split(*t);
  // Added tokens, special or not, are matched whole; special ones decode to "".
  EXPECT_EQ(t->encode("hi<|endoftext|>hello<tool> world"), (Ids{104, 105, kEot, 259, kTool, 264}));
  EXPECT_EQ(t->decode(Ids{104, 105, kEot, 259, kTool, 264}), "hihello<tool> world");
  expect_round_trips(*t);
}

TEST(TokenizerHfJson, Llama3StyleWithConfig) {
  const fs::path p = write_json("llama3", hf_json(true, true));
  write_text(p.parent_path() / "tokenizer_config.json",
             R"({"bos_token": {"content": "<tool>", "lstrip": false}, "eos_token": "<|endoftext|>"})");
  const auto t = vkq::load_tokenizer_json(p);
  EXPECT_EQ(t->bos(), kTool);
  EXPECT_EQ(t->eos(), kEot);
  expect_llama3_split(*t);
  expect_round_trips(*t);
  write_text(p.parent_path() / "tokenizer_config.json", R"({"bos_token": null, "eos_token": "<missing>"})");
  expect_error([&] { (void)vkq::load_tokenizer_json(p); }, "eos_token: '<missing>' is not a token");
  write_text(p.parent_path() / "tokenizer_config.json", R"({"bos_token": null})");
  EXPECT_EQ(vkq::load_tokenizer_json(p)->bos(), std::nullopt);  // null in the config means none
  // add_bos_token false: the token exists but is not put before a text.
  write_text(p.parent_path() / "tokenizer_config.json", R"({"bos_token": "<tool>", "add_bos_token": false})");
  EXPECT_EQ(vkq::load_tokenizer_json(p)->bos(), std::nullopt);
  write_text(p.parent_path() / "tokenizer_config.json", R"({"bos_token": "<tool>", "add_bos_token": true})");
  EXPECT_EQ(vkq::load_tokenizer_json(p)->bos(), kTool);
  write_text(p.parent_path() / "tokenizer_config.json", R"({"add_eos_token": true})");
  expect_error([&] { (void)vkq::load_tokenizer_json(p); }, "add_eos_token: true is not supported");
}

TEST(TokenizerHfJson, RefusesMalformedFiles) {
  auto expect_refused = [](const std::string& name, const std::string& text, const std::string& fragment) {
    const fs::path p = temp_dir("bad_" + name) / "tokenizer.json";
    write_text(p, text);
    try {
      (void)vkq::load_tokenizer_json(p);
      ADD_FAILURE() << name << " was accepted";
    } catch (const vkq::FormatError& e) {
      EXPECT_NE(std::string(e.what()).find(p.string()), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << "wanted \"" << fragment << "\" in: " << e.what();
    }
  };
  expect_refused("array", "[1, 2]", "not a JSON object");
  expect_refused("syntax", "{\"model\": ", "");
  expect_refused("dup", R"({"model": {}, "model": {}})", "duplicate JSON key");
  auto edit = [](auto f) {
    nlohmann::json j = hf_json(false, false);
    f(j);
    return j.dump();
  };
  expect_refused("wordpiece", edit([](auto& j) { j["model"]["type"] = "WordPiece"; }), "model.type: unsupported model \"WordPiece\"");
  expect_refused("nomodel", edit([](auto& j) { j.erase("model"); }), "model: missing");
  expect_refused("merge", edit([](auto& j) { j["model"]["merges"][4] = "\xC4\xA0 zz"; }), "model.merges[4]: unknown token 'zz'");
  expect_refused("merge_result", edit([](auto& j) { j["model"]["merges"][4] = "z z"; }), "model.merges[4]: merged token 'zz'");
  expect_refused("vocab_id", edit([](auto& j) { j["model"]["vocab"]["h"] = -3; }), "model.vocab['h']: token id -3");
  expect_refused("vocab_dup", edit([](auto& j) { j["model"]["vocab"]["h"] = 0; }), "is also");
  expect_refused("sparse", edit([](auto& j) { j["model"]["vocab"]["far"] = 100000000; }), "token ids up to 100000000");
  expect_refused("added", edit([](auto& j) { j["added_tokens"][0]["id"] = 5; }), "added_tokens[0]");
  expect_refused("pre", edit([](auto& j) { j["pre_tokenizer"] = {{"type", "Whitespace"}}; }), "pre_tokenizer.type");
  expect_refused("decoder", edit([](auto& j) { j["decoder"] = {{"type", "Metaspace"}}; }), "decoder");
  expect_refused("normalizer", edit([](auto& j) { j["normalizer"] = {{"type", "Lowercase"}}; }), "normalizer");
  expect_refused("prefix", edit([](auto& j) { j["model"]["continuing_subword_prefix"] = "##"; }), "model.continuing_subword_prefix");
  const fs::path cfg_dir = temp_dir("bad_cfg");
  write_text(cfg_dir / "tokenizer.json", hf_json(false, false).dump());
  write_text(cfg_dir / "tokenizer_config.json", R"({"eos_token": 7})");
  expect_error([&] { (void)vkq::load_tokenizer_json(cfg_dir / "tokenizer.json"); }, "tokenizer_config.json: eos_token");
  expect_error([] { (void)vkq::load_tokenizer_json("/nonexistent/tokenizer.json"); }, "cannot open");
}

// ---- hostile tokenizer files: one test per case, each error naming the
// file, the key (or the JSON problem) and the byte offset where one is known ----

// load_tokenizer_json(`p`) throws a FormatError for `file` holding `fragment`
// and `key`, at byte `at` (kNoOffset: none known).
void expect_tokenizer_refused(const fs::path& p, const fs::path& file, const std::string& fragment, const std::string& key,
                              std::uint64_t at) {
  vkq::test::expect_format_error([&] { (void)vkq::load_tokenizer_json(p); }, file, fragment, key, at);
}

fs::path tokenizer_file(const std::string& dir, const std::string& text) {
  const fs::path p = temp_dir("hostile_" + dir) / "tokenizer.json";
  write_text(p, text);
  return p;
}

TEST(TokenizerHfJson, TruncatedFile) {
  const std::string full = hf_json(false, false).dump();
  const std::string cut = full.substr(0, full.find("\"model\":") + 8);  // ends right after "model":
  const fs::path p = tokenizer_file("truncated", cut);
  expect_tokenizer_refused(p, p, "invalid JSON", "unexpected end of input", cut.size());
}

TEST(TokenizerHfJson, EmptyFile) {
  const fs::path p = tokenizer_file("empty", "");
  expect_tokenizer_refused(p, p, "invalid JSON", "unexpected end of input", 0);
}

TEST(TokenizerHfJson, InvalidUtf8) {
  // 0xff at byte 22, inside a vocabulary key.
  const fs::path p = tokenizer_file("utf8", "{\"model\": {\"vocab\": {\"\xff\": 0}}}");
  expect_tokenizer_refused(p, p, "invalid JSON", "ill-formed UTF-8", 22);
}

TEST(TokenizerHfJson, DuplicateVocabKey) {
  // Two ids for one token text, which a plain JSON parser would silently merge.
  std::string text = hf_json(false, false).dump();
  const std::string vocab = "\"vocab\":{";
  text.insert(text.find(vocab) + vocab.size(), "\"h\":5,");
  const fs::path p = tokenizer_file("dup_vocab", text);
  expect_tokenizer_refused(p, p, "duplicate JSON key", "\"h\"", vkq::FormatError::kNoOffset);
}

TEST(TokenizerHfJson, NestedTenThousandDeep) {
  nlohmann::json j = hf_json(false, false);
  std::string text = j.dump();
  text.insert(1, "\"deep\":" + std::string(10000, '[') + std::string(10000, ']') + ",");
  const fs::path p = tokenizer_file("deep", text);
  expect_tokenizer_refused(p, p, "nested deeper than 64 levels", "JSON", vkq::FormatError::kNoOffset);
}

TEST(TokenizerHfJson, AbsurdTokenIdNamesTheKey) {
  // An id near 2^31 would size the id table by the id: refused by the key.
  nlohmann::json j = hf_json(false, false);
  j["added_tokens"][0]["id"] = 2147483647;
  const fs::path p = tokenizer_file("absurd_id", j.dump());
  expect_tokenizer_refused(p, p, "token ids up to 2147483647 for only", "model.vocab", vkq::FormatError::kNoOffset);
  j["added_tokens"][0]["id"] = std::uint64_t(1) << 63;
  write_text(p, j.dump());
  expect_tokenizer_refused(p, p, "token id 9223372036854775808 is outside [0, 2^31)", "added_tokens[0].id", vkq::FormatError::kNoOffset);
}

TEST(TokenizerHfJson, HostileConfigNamesTheConfigFile) {
  // tokenizer_config.json beside the file is parsed just as strictly.
  const fs::path p = tokenizer_file("cfg_hostile", hf_json(false, false).dump());
  const fs::path cfg = p.parent_path() / "tokenizer_config.json";
  write_text(cfg, R"({"eos_token": "<|endoftext|>", "eos_token": "</s>"})");
  expect_tokenizer_refused(p, cfg, "duplicate JSON key", "\"eos_token\"", vkq::FormatError::kNoOffset);
  write_text(cfg, "{\"bos_token\": \"\xc0\xaf\"}");  // an overlong '/', at byte 15
  expect_tokenizer_refused(p, cfg, "invalid JSON", "ill-formed UTF-8", 15);
  write_text(cfg, "[]");
  expect_tokenizer_refused(p, cfg, "not a JSON object", cfg.string(), vkq::FormatError::kNoOffset);
}

}  // namespace

// ---- tokenizer.json: SentencePiece-style BPE ---------------------------------------

// <unk> <s> </s>, <0x00>..<0xFF> (3..258), then ▁ h e l o ▁h ll ▁hell ▁hello
// (259..267) with merges in that order of rank.
nlohmann::json spm_json() {
  using nlohmann::json;
  json vocab = json::object();
  vocab["<unk>"] = 0;
  vocab["<s>"] = 1;
  vocab["</s>"] = 2;
  static const char* hex = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) vocab[std::string("<0x") + hex[b >> 4] + hex[b & 15] + ">"] = 3 + b;
  const std::string sp = "\xE2\x96\x81";
  const std::vector<std::string> pieces = {sp, "h", "e", "l", "o", sp + "h", "ll", sp + "he", sp + "hell", sp + "hello"};
  for (std::size_t i = 0; i < pieces.size(); ++i) vocab[pieces[i]] = 259 + i;
  const json merges = json::array({json::array({sp, "h"}), json::array({"l", "l"}), json::array({sp + "h", "e"}),
                                   json::array({sp + "he", "ll"}), json::array({sp + "hell", "o"})});
  return {
      {"added_tokens", json::array({{{"id", 0}, {"content", "<unk>"}, {"special", true}},
                                    {{"id", 1}, {"content", "<s>"}, {"special", true}},
                                    {{"id", 2}, {"content", "</s>"}, {"special", true}}})},
      {"normalizer",
       {{"type", "Sequence"},
        {"normalizers", json::array({{{"type", "Prepend"}, {"prepend", sp}},
                                     {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", sp}}})}}},
      {"pre_tokenizer", nullptr},
      {"decoder",
       {{"type", "Sequence"},
        {"decoders", json::array({{{"type", "Replace"}, {"pattern", {{"String", sp}}}, {"content", " "}},
                                  {{"type", "ByteFallback"}},
                                  {{"type", "Fuse"}},
                                  {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}})}}},
      {"model",
       {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", "<unk>"}, {"fuse_unk", true}, {"byte_fallback", true},
        {"vocab", vocab}, {"merges", merges}}},
  };
}
constexpr std::int32_t kSp = 259, kSpHello = 268;

TEST(TokenizerHfJson, SentencePieceByteFallback) {
  const auto t = vkq::load_tokenizer_json(write_json("spm", spm_json()));
  EXPECT_EQ(t->pre_tokenizer(), "none");
  EXPECT_EQ(t->normalizer(), "prepend+replace");
  EXPECT_EQ(t->encode("hello"), (Ids{kSpHello}));
  // "▁hello▁hello▁x": x has no piece -> <0x78>; é -> its two bytes.
  EXPECT_EQ(t->encode("hello hello x\xC3\xA9"),
            (Ids{kSpHello, kSpHello, kSp, byte_token('x'), byte_token(0xC3), byte_token(0xA9)}));
  // Added tokens split the text; Prepend applies to each stretch.
  EXPECT_EQ(t->encode("<s>hello</s>"), (Ids{1, kSpHello, 2}));
  EXPECT_EQ(t->decode(t->encode("hello hello x\xC3\xA9")), "hello hello x\xC3\xA9");  // Strip drops the prepended space
  EXPECT_EQ(t->token_piece(byte_token(0x0A)), "<0x0A>");
  EXPECT_EQ(t->token_bytes(byte_token(0x0A)), "\n");
  expect_round_trips(*t);
  // Without byte tokens, characters without a piece become one fused <unk>.
  nlohmann::json j = spm_json();
  for (int b = 0; b < 256; ++b) {
    static const char* hex = "0123456789ABCDEF";
    j["model"]["vocab"].erase(std::string("<0x") + hex[b >> 4] + hex[b & 15] + ">");
  }
  j["model"]["byte_fallback"] = false;
  j["decoder"]["decoders"].erase(1);
  const auto u = vkq::load_tokenizer_json(write_json("spm_unk", j));
  EXPECT_EQ(u->encode("hello xyz"), (Ids{kSpHello, kSp, 0}));
  j["model"]["fuse_unk"] = false;
  EXPECT_EQ(vkq::load_tokenizer_json(write_json("spm_unk2", j))->encode("hello xyz"), (Ids{kSpHello, kSp, 0, 0, 0}));
}

TEST(TokenizerHfJson, MetaspacePrependSchemes) {
  nlohmann::json j = spm_json();
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}, {"prepend_scheme", "first"}, {"split", true}};
  const auto first = vkq::load_tokenizer_json(write_json("meta_first", j));
  EXPECT_EQ(first->pre_tokenizer(), "metaspace");
  EXPECT_EQ(first->encode("hello hello"), (Ids{kSpHello, kSpHello}));
  EXPECT_EQ(first->encode("hello<s>hello"), (Ids{kSpHello, 1, 260, 261, 265, 263}));  // no ▁ after <s>: h e ll o
  j["pre_tokenizer"]["prepend_scheme"] = "always";
  EXPECT_EQ(vkq::load_tokenizer_json(write_json("meta_always", j))->encode("hello<s>hello"), (Ids{kSpHello, 1, kSpHello}));
  j["pre_tokenizer"]["prepend_scheme"] = "never";
  EXPECT_EQ(vkq::load_tokenizer_json(write_json("meta_never", j))->encode("hello"), (Ids{260, 261, 265, 263}));
}

TEST(TokenizerHfJson, RefusesUnsupportedPipeline) {
  auto refused = [](const std::string& name, const nlohmann::json& j, const std::string& fragment) {
    const fs::path p = write_json("unsup_" + name, j);
    try {
      (void)vkq::load_tokenizer_json(p);
      ADD_FAILURE() << name << " was accepted";
    } catch (const vkq::FormatError& e) {
      EXPECT_NE(std::string(e.what()).find(p.string()), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << "wanted \"" << fragment << "\" in: " << e.what();
    }
  };
  auto llama3 = [](auto f) {
    nlohmann::json j = hf_json(true, true);
    f(j);
    return j;
  };
  auto spm = [](auto f) {
    nlohmann::json j = spm_json();
    f(j);
    return j;
  };
  refused("regex", llama3([](auto& j) { j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "\\w+"; }),
          "pre_tokenizer.pretokenizers[0].pattern.Regex: '\\w+' is not supported");
  refused("behavior", llama3([](auto& j) { j["pre_tokenizer"]["pretokenizers"][0]["behavior"] = "Removed"; }),
          "pre_tokenizer.pretokenizers[0].behavior");
  refused("two_regex", llama3([](auto& j) { j["pre_tokenizer"]["pretokenizers"][1]["use_regex"] = true; }),
          "pre_tokenizer.pretokenizers[1].use_regex");
  refused("lowercase", llama3([](auto& j) { j["normalizer"] = {{"type", "Lowercase"}}; }),
          "normalizer.type: \"Lowercase\" is not supported");
  refused("nested", spm([](auto& j) { j["normalizer"]["normalizers"].push_back({{"type", "Strip"}}); }),
          "normalizer.normalizers[2].type: \"Strip\" is not supported");
  refused("replace_regex", spm([](auto& j) { j["normalizer"]["normalizers"][1]["pattern"] = {{"Regex", " +"}}; }),
          "normalizer.normalizers[1].pattern.Regex");
  refused("scheme", spm([](auto& j) {
            j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}, {"prepend_scheme", "odd"}};
          }),
          "pre_tokenizer.prepend_scheme");
  refused("lstrip", spm([](auto& j) { j["added_tokens"][1]["lstrip"] = true; }), "added_tokens[1].lstrip: true is not supported");
  refused("normalized", spm([](auto& j) { j["added_tokens"][1]["normalized"] = true; }), "added_tokens[1].normalized");
  refused("fallback_bytelevel", llama3([](auto& j) { j["model"]["byte_fallback"] = true; }), "model.byte_fallback");
  refused("no_byte_decoder", spm([](auto& j) { j["decoder"]["decoders"].erase(1); }), "ByteFallback");
  refused("decoder_step", spm([](auto& j) { j["decoder"]["decoders"].push_back({{"type", "CTC"}}); }),
          "decoder.decoders[4].type: \"CTC\"");
  refused("dropout", spm([](auto& j) { j["model"]["dropout"] = 0.1; }), "model.dropout");
  // NFC is applied: a decomposed é and the precomposed one give the same ids.
  nlohmann::json nfc = hf_json(false, false);
  nfc["normalizer"] = {{"type", "NFC"}};
  const auto t = vkq::load_tokenizer_json(write_json("nfc", nfc));
  EXPECT_EQ(t->normalizer(), "NFC");
  EXPECT_EQ(t->encode("e\xCC\x81"), t->encode("\xC3\xA9"));
  EXPECT_EQ(t->encode("e\xCC\x81"), (Ids{0xC3, 0xA9}));
}

// ---- Unicode tables and normalization ------------------------------------------------

TEST(TokenizerUnicode, ClassesFromTheDatabase) {
  using namespace vkq::tok;
  for (std::uint32_t cp : {0x41u, 0xE9u, 0x1780u /* Khmer KA */, 0x1200u /* Ethiopic HA */, 0x1000u /* Myanmar KA */,
                           0x1401u /* Canadian syllabics E */, 0x1D400u /* math bold A */, 0x13000u /* hieroglyph */,
                           0x20000u, 0x13A0u /* Cherokee */})
    EXPECT_TRUE(is_letter(cp)) << std::hex << cp;
  for (std::uint32_t cp : {0x30u, 0x17E0u /* Khmer 0 */, 0x1369u /* Ethiopic 1 */, 0x1040u /* Myanmar 0 */,
                           0x1D7CEu /* math bold 0 */, 0x2160u /* Roman I */, 0x2460u /* circled 1 */, 0xBDu})
    EXPECT_TRUE(is_number(cp)) << std::hex << cp;
  for (std::uint32_t cp : {0x20u, 0x85u, 0xA0u, 0x1680u, 0x2028u, 0x3000u}) EXPECT_TRUE(is_space(cp)) << std::hex << cp;
  for (std::uint32_t cp : {0x1F600u, 0x200Bu, 0x301u, 0x2Du, 0xFEFFu}) {
    EXPECT_FALSE(is_letter(cp)) << std::hex << cp;
    EXPECT_FALSE(is_number(cp)) << std::hex << cp;
    EXPECT_FALSE(is_space(cp)) << std::hex << cp;
  }
  EXPECT_GT(letter_count(), 130000u);  // the old hand tables had 110340
  EXPECT_GT(number_count(), 1800u);    // and 561
}

TEST(TokenizerUnicode, NormalizationForms) {
  using vkq::tok::Form;
  using vkq::tok::normalize;
  EXPECT_EQ(normalize("e\xCC\x81", Form::nfc), "\xC3\xA9");                // e + U+0301 -> é
  EXPECT_EQ(normalize("\xC3\xA9", Form::nfd), "e\xCC\x81");
  EXPECT_EQ(normalize("\xEF\xAC\x81", Form::nfkc), "fi");                  // ﬁ
  EXPECT_EQ(normalize("\xEF\xAC\x81", Form::nfc), "\xEF\xAC\x81");         // compatibility only
  EXPECT_EQ(normalize("\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8", Form::nfc), "\xEA\xB0\x81");  // ᄀ ᅡ ᆨ -> 각
  EXPECT_EQ(normalize("\xEA\xB0\x81", Form::nfd), "\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8");
  // Reordering: dot below (220) before dot above (230), then q has no composite.
  EXPECT_EQ(normalize("q\xCC\x87\xCC\xA3", Form::nfc), "q\xCC\xA3\xCC\x87");
  // ... while d + dot above + dot below composes to ḍ (U+1E0D) + dot above.
  EXPECT_EQ(normalize("d\xCC\x87\xCC\xA3", Form::nfc), "\xE1\xB8\x8D\xCC\x87");
  EXPECT_EQ(normalize("\xE2\x84\xAB", Form::nfc), "\xC3\x85");             // Angstrom sign -> Å (singleton)
  EXPECT_EQ(normalize("x\xC2\xB2 \xE2\x91\xA0", Form::nfkc), "x2 1");     // superscript, circled
  EXPECT_EQ(normalize("a\xFF\xCC\x81", Form::nfc), "a\xFF\xCC\x81");       // invalid byte blocks composition
  EXPECT_EQ(normalize("plain ascii", Form::nfkd), "plain ascii");
}
