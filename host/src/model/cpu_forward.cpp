#include "vkquant/model/cpu_forward.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "vkquant/error.hpp"
#include "vkquant/half.hpp"

namespace vkq {

namespace {

// y (out) = W (out, in) · x (in)
void matvec(const std::vector<float>& W, const float* x, float* y, std::uint64_t out, std::uint64_t in,
            std::uint64_t w_offset = 0) {
  for (std::uint64_t i = 0; i < out; ++i) {
    const float* row = W.data() + w_offset + i * in;
    double acc = 0.0;
    for (std::uint64_t j = 0; j < in; ++j) acc += double(row[j]) * x[j];
    y[i] = float(acc);
  }
}

// x (d) ← x / sqrt(mean(x²) + eps) ⊙ w (d)
void rmsnorm(float* x, const std::vector<float>& w, std::uint64_t d, float eps) {
  double ss = 0.0;
  for (std::uint64_t i = 0; i < d; ++i) ss += double(x[i]) * x[i];
  const double r = 1.0 / std::sqrt(ss / double(d) + double(eps));
  for (std::uint64_t i = 0; i < d; ++i) x[i] = float(double(x[i]) * r * w[i]);
}

double silu(double x) { return x / (1.0 + std::exp(-x)); }

}  // namespace

CpuForward::CpuForward(const HostWeights& w, std::uint32_t ctx, bool fp16_kv)
    : w_(w), ctx_(w.config.context_in_use(ctx)), fp16_kv_(fp16_kv), rope_(w.config.rope_table(ctx_)) {
  set_kcache(KCacheConfig{}, nullptr);
}

void CpuForward::set_kcache(const KCacheConfig& k, const KCalibration* calibration, VType v) {
  kv_ = std::make_unique<HostKvCache>(w_.config, ctx_, k, v, calibration, rope_, fp16_kv_);
  pos_ = 0;
}

void CpuForward::block(std::uint32_t l, std::vector<float>& x) {
  const ModelConfig& c = w_.config;
  const HostLayer& L = w_.layers[l];
  const std::uint32_t d = c.dim, hd = c.head_dim, qd = c.q_dim(), kvd = c.kv_dim();

  // ---- attention
  std::vector<float> xb(x), q(qd), k(kvd), v(kvd), att(qd);
  rmsnorm(xb.data(), L.attn_norm, d, c.rms_eps);
  matvec(L.wq, xb.data(), q.data(), qd, d);
  matvec(L.wk, xb.data(), k.data(), kvd, d);
  matvec(L.wv, xb.data(), v.data(), kvd, d);
  if (c.qkv_bias)
    for (std::uint32_t i = 0; i < qd; ++i) q[i] += L.bq[i];
  if (c.qkv_bias)
    for (std::uint32_t i = 0; i < kvd; ++i) k[i] += L.bk[i], v[i] += L.bv[i];
  if (c.qk_norm && c.qk_norm_per_head) {  // Qwen3: each head by itself, weights (hd)
    for (std::uint32_t h = 0; h < c.heads; ++h) rmsnorm(q.data() + std::size_t(h) * hd, L.q_norm, hd, c.rms_eps);
    for (std::uint32_t h = 0; h < c.kv_heads; ++h) rmsnorm(k.data() + std::size_t(h) * hd, L.k_norm, hd, c.rms_eps);
  } else if (c.qk_norm) {  // OLMoE: the whole projection
    rmsnorm(q.data(), L.q_norm, qd, c.rms_eps);
    rmsnorm(k.data(), L.k_norm, kvd, c.rms_eps);
  }
  const std::vector<float> k_pre = k;
  for (std::uint32_t h = 0; h < c.heads; ++h) rope_apply(rope_, q.data() + h * hd, pos_);
  for (std::uint32_t h = 0; h < c.kv_heads; ++h) rope_apply(rope_, k.data() + h * hd, pos_);
  kv_->store(l, pos_, k_pre, k, v);
  kv_->attend(l, pos_, q, att);
  std::vector<float> o(d);
  matvec(L.wo, att.data(), o.data(), d, qd);
  for (std::uint32_t i = 0; i < d; ++i) x[i] += o[i];

  // ---- MLP
  xb = x;
  rmsnorm(xb.data(), L.ffn_norm, d, c.rms_eps);
  const std::uint32_t f = c.ffn;
  std::vector<float> g(f), u(f), down(d);
  auto expert_mlp = [&](const std::vector<float>& wg, const std::vector<float>& wu, const std::vector<float>& wd,
                        std::uint32_t e, double weight) {
    matvec(wg, xb.data(), g.data(), f, d, std::uint64_t(e) * f * d);
    matvec(wu, xb.data(), u.data(), f, d, std::uint64_t(e) * f * d);
    for (std::uint32_t i = 0; i < f; ++i) g[i] = float(silu(g[i]) * u[i]);
    matvec(wd, g.data(), down.data(), d, f, std::uint64_t(e) * d * f);
    for (std::uint32_t i = 0; i < d; ++i) x[i] = float(x[i] + weight * down[i]);
  };
  if (!c.moe()) {
    expert_mlp(L.w_gate, L.w_up, L.w_down, 0, 1.0);
    return;
  }
  // Router: softmax over experts, top-k (ties to the lower index), optional renormalisation.
  std::vector<float> logits(c.experts);
  matvec(L.router, xb.data(), logits.data(), c.experts, d);
  const double mx = *std::max_element(logits.begin(), logits.end());
  std::vector<double> p(c.experts);
  double sum = 0.0;
  for (std::uint32_t e = 0; e < c.experts; ++e) sum += (p[e] = std::exp(double(logits[e]) - mx));
  for (double& pe : p) pe /= sum;
  std::vector<std::uint32_t> order(c.experts);
  std::iota(order.begin(), order.end(), 0u);
  std::stable_sort(order.begin(), order.end(), [&](std::uint32_t a, std::uint32_t b) { return p[a] > p[b]; });
  double topsum = 0.0;
  for (std::uint32_t j = 0; j < c.experts_used; ++j) topsum += p[order[j]];
  for (std::uint32_t j = 0; j < c.experts_used; ++j) {
    const std::uint32_t e = order[j];
    expert_mlp(L.exp_gate, L.exp_up, L.exp_down, e, c.norm_topk ? p[e] / topsum : p[e]);
  }
}

std::vector<float> CpuForward::forward(std::span<const std::int32_t> tokens) {
  const ModelConfig& c = w_.config;
  std::vector<float> logits(tokens.size() * c.vocab);
  for (std::size_t t = 0; t < tokens.size(); ++t) {
    if (pos_ >= ctx_) throw Error("CpuForward: position " + std::to_string(pos_) + " is past the context of " + std::to_string(ctx_));
    const std::int32_t id = tokens[t];
    if (id < 0 || std::uint32_t(id) >= c.vocab) throw Error("CpuForward: token id " + std::to_string(id) + " out of range");
    std::vector<float> x(w_.embed.begin() + std::ptrdiff_t(id) * c.dim, w_.embed.begin() + std::ptrdiff_t(id + 1) * c.dim);
    for (std::uint32_t l = 0; l < c.layers; ++l) block(l, x);
    rmsnorm(x.data(), w_.final_norm, c.dim, c.rms_eps);
    matvec(w_.lm_head, x.data(), logits.data() + t * c.vocab, c.vocab, c.dim);
    ++pos_;
  }
  return logits;
}

}  // namespace vkq
