// Next-token sampling on the host (greedy, temperature, top-k, top-p, seed)
// and the perplexity protocol of `vkquant ppl`.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <string_view>
#include <vector>

#include "vkquant/tokenizer.hpp"

namespace vkq {

struct SamplerOptions {
  float temperature = 0.8f;  // 0: greedy (argmax, ties to the lower id)
  std::uint32_t top_k = 40;  // 0: no limit
  float top_p = 0.95f;       // nucleus mass in (0, 1]
  std::uint64_t seed = 0;
  // Ids >= vocab_limit are never sampled (vocabulary padding: an embedding
  // with more rows than the tokenizer has tokens, e.g. Qwen2.5's 151936 rows
  // for 151665 tokens). 0: every logit is a candidate.
  std::uint32_t vocab_limit = 0;
};

class Sampler {
 public:
  // Throws vkq::Error on a negative or non-finite temperature or top_p outside (0, 1].
  explicit Sampler(const SamplerOptions& o);
  // A token id below vocab_limit (when set). Throws vkq::Error when the
  // logits are fewer than vocab_limit or empty.
  std::int32_t sample(std::span<const float> logits);

 private:
  SamplerOptions o_;
  std::mt19937_64 rng_;
};

// Index of the largest logit (ties to the lower index).
std::int32_t argmax(std::span<const float> logits);
// -log2 softmax(logits)[target], in fp64.
double bits_of(std::span<const float> logits, std::int32_t target);

// One independent sequence of the perplexity protocol: `input` is fed from
// position 0, and the logits at position j score `targets[j]`.
struct PplChunk {
  std::vector<std::int32_t> input;
  std::vector<std::int32_t> targets;
};
struct PplPlan {
  std::vector<PplChunk> chunks;
  std::uint64_t bytes = 0;   // bytes of text the targets cover (bits/byte denominator)
  std::uint64_t tokens = 0;  // scored tokens
};
// Splits `text` into documents (trailing newlines stripped, split on blank
// lines "\n\n"; separators are not scored), tokenizes each, and cuts it into
// chunks of at most `ctx` scored tokens: input [bos, t0 .. t(m-2)] scores
// t0 .. t(m-1). Without a BOS token the first token of a chunk is context only.
PplPlan ppl_plan(std::string_view text, const Tokenizer& tok, std::uint32_t ctx);

}  // namespace vkq
