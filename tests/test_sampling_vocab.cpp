// Vocabulary padding: ids at or past SamplerOptions::vocab_limit are never
// sampled, even when a padded row holds the largest logit.
#include <gtest/gtest.h>

#include <vector>

#include "vkquant/error.hpp"
#include "vkquant/model/sampling.hpp"

namespace vkq {
namespace {

// 16 logits, the tokenizer knows 12: the padded ids 12..15 hold the largest
// values, id 7 is the largest real one.
std::vector<float> padded_logits() {
  std::vector<float> l(16);
  for (std::size_t i = 0; i < l.size(); ++i) l[i] = float(i % 5) * 0.1f;
  l[7] = 1.0f;
  for (std::size_t i = 12; i < 16; ++i) l[i] = 9.0f;
  return l;
}

TEST(SamplerVocabLimit, greedy_limit12_of16) {
  const auto l = padded_logits();
  EXPECT_EQ(Sampler(SamplerOptions{.temperature = 0.0f}).sample(l), 12);  // control: unmasked picks padding
  EXPECT_EQ(Sampler(SamplerOptions{.temperature = 0.0f, .vocab_limit = 12}).sample(l), 7);
}

TEST(SamplerVocabLimit, temp2_topk0_topp1_limit12_of16_2000draws) {
  const auto l = padded_logits();
  Sampler unmasked(SamplerOptions{.temperature = 2.0f, .top_k = 0, .top_p = 1.0f, .seed = 3});
  Sampler masked(SamplerOptions{.temperature = 2.0f, .top_k = 0, .top_p = 1.0f, .seed = 3, .vocab_limit = 12});
  int padded_unmasked = 0, padded_masked = 0;
  std::vector<int> seen(16, 0);
  for (int i = 0; i < 2000; ++i) {
    padded_unmasked += unmasked.sample(l) >= 12;
    const auto id = masked.sample(l);
    padded_masked += id >= 12;
    ++seen[std::size_t(id)];
  }
  EXPECT_GT(padded_unmasked, 1900);  // control: padding would dominate
  EXPECT_EQ(padded_masked, 0);
  EXPECT_GT(seen[7], seen[0]);  // the masked draw still follows the real logits
}

TEST(SamplerVocabLimit, temp08_topk40_topp095_limit12_of16) {
  const auto l = padded_logits();
  Sampler s(SamplerOptions{.temperature = 0.8f, .top_k = 40, .top_p = 0.95f, .seed = 11, .vocab_limit = 12});
  for (int i = 0; i < 500; ++i) EXPECT_LT(s.sample(l), 12);
}

TEST(SamplerVocabLimit, limit17_of16_throws) {
  const auto l = padded_logits();
  Sampler s(SamplerOptions{.temperature = 0.0f, .vocab_limit = 17});
  EXPECT_THROW(s.sample(l), Error);
}

}  // namespace
}  // namespace vkq
