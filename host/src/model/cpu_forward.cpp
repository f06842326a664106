#include "vkquant/model/cpu_forward.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "vkquant/error.hpp"
#include "vkquant/half.hpp"
#include "vkquant/reference/kscore.hpp"
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

double silu(double x) { return x / (1.0 + std::exp(-x)); }

}  // namespace

CpuForward::CpuForward(const HostWeights& w, std::uint32_t ctx, bool fp16_kv)
    : w_(w), ctx_(w.config.context_in_use(ctx)), fp16_kv_(fp16_kv), rope_(w.config.rope_table(ctx_)) {
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
  const std::size_t n = k.one_bit && k.rope != KRope::pre ? std::size_t(ctx_) * w_.config.kv_dim() : 0;
  sign_.assign(w_.config.layers, std::vector<float>(n));
  resid_.assign(w_.config.layers, std::vector<float>(n));
  mean_.assign(w_.config.layers, std::vector<float>(n));
}

void CpuForward::code_key(std::uint32_t l, std::vector<float>& k, float* sign_part, float* resid_part, float* mean_out) const {
  const ModelConfig& c = w_.config;
  const std::uint32_t hd = c.head_dim;
  const KLayerCalib* cal = cal_ ? &cal_->mode(kc_.rope).at(l) : nullptr;
  // The mean subtracted before coding (and added back): post-ropemean rotates the pre-RoPE mean to this position.
  std::vector<float> mean(std::size_t(c.kv_heads) * hd, 0.0f);
  if (cal) mean = cal->mean;
  if (cal && kc_.rope == KRope::ropemean)
    for (std::uint32_t h = 0; h < c.kv_heads; ++h) rope_apply(rope_, mean.data() + std::size_t(h) * hd, pos_);
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
    for (std::uint32_t i = 0; i < hd; ++i) x[i] = double(kh[i]) - mean[std::size_t(h) * hd + i];
    double l1 = 0.0;
    for (std::uint32_t i = 0; i < hd; ++i) {
      for (std::uint32_t j = 0; j < hd; ++j) v[i] += r(i, j) * x[j];
      l1 += std::abs(v[i]);
    }
    const double alpha = from_half(to_half(float(l1 / hd)));
    for (std::uint32_t i = 0; i < hd; ++i) y[i] = v[i] >= 0.0 ? alpha : -alpha;
    if (sign_part)
      for (std::uint32_t i = 0; i < hd; ++i) sign_part[std::size_t(h) * hd + i] = float(y[i]);
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
    if (resid_part)
      for (std::uint32_t i = 0; i < hd; ++i) resid_part[std::size_t(h) * hd + i] = float(y[i] - (v[i] >= 0.0 ? alpha : -alpha));
    for (std::uint32_t j = 0; j < hd; ++j) {  // k = mu + R^T y
      double acc = mean[std::size_t(h) * hd + j];
      for (std::uint32_t i = 0; i < hd; ++i) acc += r(i, j) * y[i];
      kh[j] = float(acc);
    }
  }
  if (mean_out) std::copy(mean.begin(), mean.end(), mean_out);
}

std::vector<double> CpuForward::rotation(std::uint32_t l, std::uint32_t h) const {
  const std::uint32_t hd = w_.config.head_dim;
  std::vector<double> r(std::size_t(hd) * hd, 0.0);
  if (kc_.rotation == KRotation::none) {
    for (std::uint32_t i = 0; i < hd; ++i) r[std::size_t(i) * hd + i] = 1.0;
  } else if (kc_.rotation == KRotation::srht) {
    const Eigen::MatrixXd m = rot::srht_matrix(hd, kc_.srht_seed);
    for (std::uint32_t i = 0; i < hd; ++i)
      for (std::uint32_t j = 0; j < hd; ++j) r[std::size_t(i) * hd + j] = m(i, j);
  } else {
    const auto& rot = cal_->mode(kc_.rope).at(l).rot;
    for (std::size_t i = 0; i < r.size(); ++i) r[i] = rot[std::size_t(h) * hd * hd + i];
  }
  return r;
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
  if (c.qk_norm && c.qk_norm_per_head) {  // Qwen3: each head by itself, weights (hd)
    for (std::uint32_t h = 0; h < c.heads; ++h) rmsnorm(q.data() + std::size_t(h) * hd, L.q_norm, hd, c.rms_eps);
    for (std::uint32_t h = 0; h < c.kv_heads; ++h) rmsnorm(k.data() + std::size_t(h) * hd, L.k_norm, hd, c.rms_eps);
  } else if (c.qk_norm) {  // OLMoE: the whole projection
    rmsnorm(q.data(), L.q_norm, qd, c.rms_eps);
    rmsnorm(k.data(), L.k_norm, kvd, c.rms_eps);
  }
  const bool coded = kc_.one_bit && pos_ >= kc_.protect_front;
  if (coded && kc_.rope == KRope::pre) code_key(l, k, nullptr, nullptr, nullptr);
  for (std::uint32_t h = 0; h < c.heads; ++h) rope_apply(rope_, q.data() + h * hd, pos_);
  for (std::uint32_t h = 0; h < c.kv_heads; ++h) rope_apply(rope_, k.data() + h * hd, pos_);
  // Post-RoPE codes: keep the rotated-domain parts for the popcount scores.
  const std::size_t at = std::size_t(pos_) * kvd;
  if (coded && kc_.rope != KRope::pre)
    code_key(l, k, sign_[l].data() + at, resid_[l].data() + at, mean_[l].data() + at);
  // Post-RoPE codes are scored in place from the code (no fp16 key exists);
  // pre-RoPE codes are decoded into the fp16 cache.
  const bool in_place = kc_.one_bit && kc_.rope != KRope::pre && pos_ >= kc_.protect_front;
  if (fp16_kv_) {
    if (!in_place)
      for (float& e : k) e = from_half(to_half(e));
    for (float& e : v) e = from_half(to_half(e));
  }
  std::copy(k.begin(), k.end(), kcache_[l].begin() + std::ptrdiff_t(pos_) * kvd);
  std::copy(v.begin(), v.end(), vcache_[l].begin() + std::ptrdiff_t(pos_) * kvd);

  const double scale = 1.0 / std::sqrt(double(hd));
  std::vector<double> score(pos_ + 1);
  // Popcount scoring of post-RoPE codes: q' = R q quantized to query_bits
  // planes as kscore_quantize_query does, q̃' = Δ(Q - z) against the signs.
  const bool popcount = kc_.one_bit && kc_.rope != KRope::pre && kc_.query_bits > 0;
  for (std::uint32_t h = 0; h < c.heads; ++h) {
    const std::uint32_t kvh = h / group;  // GQA: query head h reads KV head h / group
    const float* qh = q.data() + h * hd;
    std::vector<float> qr(hd), qt(hd);
    if (popcount) {
      const auto r = rotation(l, kvh);
      for (std::uint32_t i = 0; i < hd; ++i) {
        double a = 0.0;
        for (std::uint32_t j = 0; j < hd; ++j) a += r[std::size_t(i) * hd + j] * qh[j];
        qr[i] = float(a);
      }
      const ref::KscoreDims dims{.d = hd, .kv_heads = 1, .group = 1, .keys = 1, .rank = 0};
      const auto qq = ref::kscore_quantize_query(qr, dims, kc_.query_bits);
      const std::uint32_t words = dims.words();
      for (std::uint32_t i = 0; i < hd; ++i) {
        std::uint32_t level = 0;
        for (std::uint32_t p = 0; p < qq.bits; ++p) level |= ((qq.planes[std::size_t(p) * words + i / 32] >> (i % 32)) & 1u) << p;
        qt[i] = qq.consts[0].delta * (float(level) - qq.consts[0].zero);
      }
    }
    double mx = -INFINITY;
    for (std::uint32_t t = 0; t <= pos_; ++t) {
      const std::size_t row = std::size_t(t) * kvd + kvh * hd;
      double s = 0.0;
      if (popcount && t >= kc_.protect_front) {
        for (std::uint32_t i = 0; i < hd; ++i)
          s += double(qh[i]) * mean_[l][row + i] + double(qt[i]) * sign_[l][row + i] + double(qr[i]) * resid_[l][row + i];
      } else {
        const float* kt = kcache_[l].data() + row;
        for (std::uint32_t i = 0; i < hd; ++i) s += double(qh[i]) * kt[i];
      }
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
