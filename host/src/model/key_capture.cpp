#include "vkquant/model/key_capture.hpp"

#include <algorithm>
#include <chrono>

#include <Eigen/Dense>
#include <cstdio>
#include <string_view>

#include "vkquant/error.hpp"
#include "vkquant/mapped_file.hpp"
#include "vkquant/model/sampling.hpp"
#include "vkquant/model/vk_forward.hpp"

namespace vkq {

namespace {
// "42 s", "7 min 05 s", "2 h 41 min": a time left, for a progress line.
std::string duration_label(double seconds) {
  const auto s = static_cast<long long>(seconds + 0.5);
  char buf[32];
  if (s < 60) std::snprintf(buf, sizeof buf, "%lld s", s);
  else if (s < 3600) std::snprintf(buf, sizeof buf, "%lld min %02lld s", s / 60, s % 60);
  else std::snprintf(buf, sizeof buf, "%lld h %02lld min", s / 3600, s / 60 % 60);
  return buf;
}
}  // namespace

CapturedKeys capture_keys(Device& device, const ModelFile& model, const std::filesystem::path& text,
                          const KeyCaptureOptions& o, const std::function<void(const std::string&, double)>& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  const ModelConfig& c = model.config();
  const std::uint32_t ctx = c.context_in_use(o.ctx);
  const auto tok = model.tokenizer();
  const auto text_file = MappedFile::open(text);
  const auto plan = ppl_plan(std::string_view(reinterpret_cast<const char*>(text_file.bytes().data()), text_file.size()),
                             *tok, ctx);
  if (plan.tokens == 0) throw Error(text.string() + ": no text to capture keys from");
  // plan.tokens counts targets, one per fed token.
  const std::uint64_t want = std::min(o.tokens, plan.tokens);

  CapturedKeys k;
  const std::size_t kvd = c.kv_dim(), row_values = std::size_t(want) * kvd;
  k.pre.resize(c.layers);
  k.post.resize(c.layers);
  for (std::uint32_t l = 0; l < c.layers; ++l) {
    k.pre[l].reserve(row_values);
    k.post[l].reserve(row_values);
  }
  k.positions.reserve(std::size_t(want));
  VkForwardOptions fo;
  fo.weights = o.weights;
  fo.ctx = ctx;
  std::chrono::steady_clock::time_point t1;  // the capture's start, after loading
  // After every prefill batch (the tap of the last layer ends one): a chunk
  // of 4,096 tokens is minutes of work on a CPU driver.
  fo.key_tap = [&](std::uint32_t l, const float* p, const float* q, std::uint32_t n) {
    k.pre[l].insert(k.pre[l].end(), p, p + std::size_t(n) * kvd);
    k.post[l].insert(k.post[l].end(), q, q + std::size_t(n) * kvd);
    if (!progress || l + 1 != c.layers) return;
    const std::uint64_t fed = k.post[l].size() / kvd;
    const double spent = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
    const double rate = spent > 0 ? double(fed) / spent : 0.0;
    std::string label = "capturing keys: " + std::to_string(fed) + " / " + std::to_string(want) + " tokens";
    if (rate > 0) {
      char r[32];
      std::snprintf(r, sizeof r, "%.1f", rate);
      label += std::string(", ") + r + " tokens/s, " + duration_label(double(want - fed) / rate) + " left";
    }
    progress(label, double(fed) / double(want));
  };
  // Σ q qᵀ per (layer, KV head), summed per prefill batch as one product.
  const std::uint32_t hd = c.head_dim, group = c.heads / c.kv_heads;
  std::uint64_t q_rows = 0;
  if (o.queries) {
    k.q2_pre.assign(c.layers, std::vector<double>(std::size_t(c.kv_heads) * hd * hd, 0.0));
    k.q2_post = k.q2_pre;
    fo.query_tap = [&](std::uint32_t l, const float* p, const float* q, std::uint32_t n) {
      if (l == 0) q_rows += std::uint64_t(n) * group;
      for (int side = 0; side < 2; ++side) {
        const float* src = side == 0 ? p : q;
        auto& dst = side == 0 ? k.q2_pre[l] : k.q2_post[l];
        for (std::uint32_t g = 0; g < c.kv_heads; ++g) {
          Eigen::MatrixXd rows(Eigen::Index(n) * group, hd);
          for (std::uint32_t t = 0; t < n; ++t)
            for (std::uint32_t m = 0; m < group; ++m)
              for (std::uint32_t i = 0; i < hd; ++i)
                rows(Eigen::Index(t) * group + m, i) = src[(std::size_t(t) * c.heads + g * group + m) * hd + i];
          Eigen::Map<Eigen::MatrixXd> acc(dst.data() + std::size_t(g) * hd * hd, hd, hd);
          acc.noalias() += rows.transpose() * rows;
        }
      }
    };
  }
  VkForward fwd(device, model, fo, [&](std::size_t done, std::size_t total) {
    if (progress) progress("loading the model", double(done) / double(total));
  });
  k.load_seconds = fwd.load_seconds();
  t1 = std::chrono::steady_clock::now();
  if (progress) progress("capturing keys: 0 / " + std::to_string(want) + " tokens", 0.0);
  for (const PplChunk& ch : plan.chunks) {
    if (k.tokens >= want) break;
    // Only the tokens still wanted: the keys of a prefix do not depend on what follows it.
    const std::size_t n = std::size_t(std::min<std::uint64_t>(ch.input.size(), want - k.tokens));
    fwd.reset();
    fwd.forward(std::span<const std::int32_t>(ch.input).first(n));
    for (std::size_t t = 0; t < n; ++t) k.positions.push_back(std::uint32_t(t));
    k.tokens += n;
  }
  for (auto* side : {&k.q2_pre, &k.q2_post})
    for (auto& m : *side)
      for (double& x : m) x /= double(std::max<std::uint64_t>(q_rows, 1));
  k.model_sha256 = fwd.model_sha256();
  k.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return k;
}

}  // namespace vkq
