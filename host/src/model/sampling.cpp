#include "vkquant/model/sampling.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "vkquant/error.hpp"

namespace vkq {

Sampler::Sampler(const SamplerOptions& o) : o_(o), rng_(o.seed) {
  if (!(o.temperature >= 0.0f) || !std::isfinite(o.temperature))
    throw Error("temperature must be a finite number >= 0, got " + std::to_string(o.temperature));
  if (!(o.top_p > 0.0f && o.top_p <= 1.0f)) throw Error("top-p must be in (0, 1], got " + std::to_string(o.top_p));
}

std::int32_t argmax(std::span<const float> logits) {
  if (logits.empty()) throw Error("argmax: no logits");
  return std::int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

std::int32_t Sampler::sample(std::span<const float> logits) {
  if (o_.vocab_limit > 0) {
    if (logits.size() < o_.vocab_limit)
      throw Error("sampler: " + std::to_string(logits.size()) + " logits, fewer than the vocabulary limit of " +
                  std::to_string(o_.vocab_limit));
    logits = logits.first(o_.vocab_limit);  // padded rows are never candidates
  }
  if (o_.temperature == 0.0f) return argmax(logits);
  // Candidates by descending logit (ties to the lower id), cut by top-k.
  std::vector<std::int32_t> idx(logits.size());
  std::iota(idx.begin(), idx.end(), 0);
  const std::size_t k = o_.top_k ? std::min<std::size_t>(o_.top_k, idx.size()) : idx.size();
  auto before = [&](std::int32_t a, std::int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  std::partial_sort(idx.begin(), idx.begin() + std::ptrdiff_t(k), idx.end(), before);
  idx.resize(k);
  std::vector<double> p(k);
  const double mx = logits[idx[0]];
  double sum = 0.0;
  for (std::size_t i = 0; i < k; ++i) sum += (p[i] = std::exp((double(logits[idx[i]]) - mx) / o_.temperature));
  // Nucleus: the shortest prefix whose mass reaches top_p.
  double mass = 0.0;
  std::size_t keep = k;
  for (std::size_t i = 0; i < k; ++i) {
    mass += p[i] / sum;
    if (mass >= o_.top_p) {
      keep = i + 1;
      break;
    }
  }
  const double total = std::accumulate(p.begin(), p.begin() + std::ptrdiff_t(keep), 0.0);
  double r = std::uniform_real_distribution<double>(0.0, total)(rng_);
  for (std::size_t i = 0; i < keep; ++i) {
    if (r < p[i]) return idx[i];
    r -= p[i];
  }
  return idx[keep - 1];
}

double bits_of(std::span<const float> logits, std::int32_t target) {
  const double mx = *std::max_element(logits.begin(), logits.end());
  double sum = 0.0;
  for (float l : logits) sum += std::exp(double(l) - mx);
  return -((double(logits[std::size_t(target)]) - mx) - std::log(sum)) / std::log(2.0);
}

PplPlan ppl_plan(std::string_view text, const Tokenizer& tok, std::uint32_t ctx) {
  if (ctx < 2) throw Error("ppl: the context must be at least 2 tokens");
  PplPlan plan;
  while (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  const auto bos = tok.bos();
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t end = text.find("\n\n", start);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view doc = text.substr(start, end - start);
    start = end + 2;
    if (doc.empty()) continue;
    const auto ids = tok.encode(doc);
    if (ids.empty()) continue;
    plan.bytes += doc.size();
    // With BOS every token is scored; without it each chunk's first token is context.
    const std::size_t step = bos ? ctx : ctx - 1;
    for (std::size_t i = 0; i < ids.size(); i += step) {
      PplChunk ch;
      if (bos) {
        const std::size_t m = std::min<std::size_t>(ctx, ids.size() - i);
        ch.input.push_back(*bos);
        ch.input.insert(ch.input.end(), ids.begin() + std::ptrdiff_t(i), ids.begin() + std::ptrdiff_t(i + m - 1));
        ch.targets.assign(ids.begin() + std::ptrdiff_t(i), ids.begin() + std::ptrdiff_t(i + m));
      } else {
        const std::size_t m = std::min<std::size_t>(ctx, ids.size() - i);
        if (m < 2) break;
        ch.input.assign(ids.begin() + std::ptrdiff_t(i), ids.begin() + std::ptrdiff_t(i + m - 1));
        ch.targets.assign(ids.begin() + std::ptrdiff_t(i + 1), ids.begin() + std::ptrdiff_t(i + m));
      }
      plan.tokens += ch.targets.size();
      plan.chunks.push_back(std::move(ch));
    }
  }
  return plan;
}

}  // namespace vkq
