#include "vkquant/model/cpu_forward.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "vkquant/error.hpp"
#include "vkquant/half.hpp"
#include "vkquant/rotation/learn.hpp"

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

// Hugging Face rotate_half RoPE on one head (hd): pairs (i, i + hd/2).
void rope(float* v, std::uint32_t hd, std::uint32_t pos, float theta) {
  for (std::uint32_t i = 0; i < hd / 2; ++i) {
    // inv_freq in fp32 as HF computes it, the angle in fp64.
    const float inv = 1.0f / std::pow(theta, float(2 * i) / float(hd));
    const double a = double(pos) * double(inv);
    const double c = std::cos(a), s = std::sin(a);
    const double x0 = v[i], x1 = v[i + hd / 2];
    v[i] = float(x0 * c - x1 * s);
    v[i + hd / 2] = float(x1 * c + x0 * s);
  }
}

double silu(double x) { return x / (1.0 + std::exp(-x)); }

}  // namespace

CpuForward::CpuForward(const HostWeights& w, std::uint32_t ctx, bool fp16_kv)
    : w_(w), ctx_(ctx ? ctx : w.config.ctx), fp16_kv_(fp16_kv) {
  const auto& c = w.config;
  kcache_.assign(c.layers, std::vector<float>(std::size_t(ctx_) * c.kv_dim()));
  vcache_.assign(c.layers, std::vector<float>(std::size_t(ctx_) * c.kv_dim()));
}

void CpuForward::set_kcache(const KCacheConfig& k, const KCalibration* calibration) {
  if (k.one_bit && k.rotation == KRotation::learned && !calibration) throw Error("CpuForward: learned rotation needs a calibration");
  if (k.one_bit && k.rank > 0 && (!calibration || k.rotation != KRotation::learned || calibration->rank < k.rank))
    throw Error("CpuForward: residual rank needs a learned rotation calibrated with that rank");
  kc_ = k;
  cal_ = calibration;
}

void CpuForward::code_key(std::uint32_t l, std::vector<float>& k, bool pre) const {
  const ModelConfig& c = w_.config;
  const std::uint32_t hd = c.head_dim;
  const KLayerCalib* cal = cal_ ? &(pre ? cal_->pre : cal_->post).at(l) : nullptr;
  Eigen::MatrixXd srht;
  if (kc_.rotation == KRotation::srht) srht = rot::srht_matrix(hd, kc_.srht_seed);
  for (std::uint32_t h = 0; h < c.kv_heads; ++h) {
    float* kh = k.data() + std::size_t(h) * hd;
    // R (hd, hd) of this head, row-major; identity for none.
    auto r = [&](std::uint32_t i, std::uint32_t j) -> double {
      if (kc_.rotation == KRotation::none) return i == j ? 1.0 : 0.0;
      if (kc_.rotation == KRotation::srht) return srht(i, j);
      return cal->rot[(std::size_t(h) * hd + i) * hd + j];
    };
    std::vector<double> x(hd), v(hd, 0.0), y(hd);
    for (std::uint32_t i = 0; i < hd; ++i) x[i] = double(kh[i]) - (cal ? cal->mean[std::size_t(h) * hd + i] : 0.0f);
    double l1 = 0.0;
    for (std::uint32_t i = 0; i < hd; ++i) {
      for (std::uint32_t j = 0; j < hd; ++j) v[i] += r(i, j) * x[j];
      l1 += std::abs(v[i]);
    }
    const double alpha = from_half(to_half(float(l1 / hd)));
    for (std::uint32_t i = 0; i < hd; ++i) y[i] = v[i] >= 0.0 ? alpha : -alpha;
    if (kc_.rank > 0) {  // c = U_r^T (v - alpha s), stored in fp16; y += U_r c
      const std::uint32_t full = cal_->rank;
      for (std::uint32_t j = 0; j < kc_.rank; ++j) {
        double cj = 0.0;
        for (std::uint32_t i = 0; i < hd; ++i)
          cj += double(cal->basis[(std::size_t(h) * hd + i) * full + j]) * (v[i] - (v[i] >= 0.0 ? alpha : -alpha));
        cj = from_half(to_half(float(cj)));
        for (std::uint32_t i = 0; i < hd; ++i) y[i] += double(cal->basis[(std::size_t(h) * hd + i) * full + j]) * cj;
      }
    }
    for (std::uint32_t j = 0; j < hd; ++j) {  // k = mu + R^T y
      double acc = cal ? cal->mean[std::size_t(h) * hd + j] : 0.0f;
      for (std::uint32_t i = 0; i < hd; ++i) acc += r(i, j) * y[i];
      kh[j] = float(acc);
    }
  }
}

void CpuForward::block(std::uint32_t l, std::vector<float>& x) {
  const ModelConfig& c = w_.config;
  const HostLayer& L = w_.layers[l];
  const std::uint32_t d = c.dim, hd = c.head_dim, qd = c.q_dim(), kvd = c.kv_dim();
  const std::uint32_t group = c.heads / c.kv_heads;

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
  if (c.qk_norm) {
    rmsnorm(q.data(), L.q_norm, qd, c.rms_eps);
    rmsnorm(k.data(), L.k_norm, kvd, c.rms_eps);
  }
  const bool coded = kc_.one_bit && pos_ >= kc_.protect_front;
  if (coded && kc_.rope == KRope::pre) code_key(l, k, true);
  for (std::uint32_t h = 0; h < c.heads; ++h) rope(q.data() + h * hd, hd, pos_, c.rope_theta);
  for (std::uint32_t h = 0; h < c.kv_heads; ++h) rope(k.data() + h * hd, hd, pos_, c.rope_theta);
  if (coded && kc_.rope == KRope::post) code_key(l, k, false);
  if (fp16_kv_) {
    for (float& e : k) e = from_half(to_half(e));
    for (float& e : v) e = from_half(to_half(e));
  }
  std::copy(k.begin(), k.end(), kcache_[l].begin() + std::ptrdiff_t(pos_) * kvd);
  std::copy(v.begin(), v.end(), vcache_[l].begin() + std::ptrdiff_t(pos_) * kvd);

  const double scale = 1.0 / std::sqrt(double(hd));
  std::vector<double> score(pos_ + 1);
  for (std::uint32_t h = 0; h < c.heads; ++h) {
    const std::uint32_t kvh = h / group;  // GQA: query head h reads KV head h / group
    const float* qh = q.data() + h * hd;
    double mx = -INFINITY;
    for (std::uint32_t t = 0; t <= pos_; ++t) {
      const float* kt = kcache_[l].data() + std::size_t(t) * kvd + kvh * hd;
      double s = 0.0;
      for (std::uint32_t i = 0; i < hd; ++i) s += double(qh[i]) * kt[i];
      score[t] = s * scale;
      mx = std::max(mx, score[t]);
    }
    double sum = 0.0;
    for (std::uint32_t t = 0; t <= pos_; ++t) sum += (score[t] = std::exp(score[t] - mx));
    for (std::uint32_t i = 0; i < hd; ++i) {
      double acc = 0.0;
      for (std::uint32_t t = 0; t <= pos_; ++t) acc += score[t] * vcache_[l][std::size_t(t) * kvd + kvh * hd + i];
      att[h * hd + i] = float(acc / sum);
    }
  }
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
