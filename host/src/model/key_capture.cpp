#include "vkquant/model/key_capture.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>

#include <Eigen/Dense>
#include <cstdio>
#include <string_view>

#include "vkquant/cpu/kernels.hpp"
#include "vkquant/error.hpp"
#include "vkquant/half.hpp"
#include "vkquant/model/kcache.hpp"
#include "vkquant/quant.hpp"
#include "vkquant/reference/ops.hpp"
#include "vkquant/sha256.hpp"
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

// "capturing keys: 512 / 32768 tokens, 24.3 tokens/s, 7 min 05 s left"
std::string progress_label(const std::string& what, std::uint64_t fed, std::uint64_t want, double spent) {
  const double rate = spent > 0 ? double(fed) / spent : 0.0;
  std::string label = what + ": " + std::to_string(fed) + " / " + std::to_string(want) + " tokens";
  if (rate > 0) {
    char r[32];
    std::snprintf(r, sizeof r, "%.1f", rate);
    label += std::string(", ") + r + " tokens/s, " + duration_label(double(want - fed) / rate) + " left";
  }
  return label;
}

// The chunks to feed, as `vkquant ppl` cuts the text: each cut to the tokens
// still wanted (the keys of a prefix do not depend on what follows it).
struct CapturePlan {
  std::uint32_t ctx = 0;
  std::uint64_t want = 0;
  std::vector<std::vector<std::int32_t>> chunks;
};
CapturePlan capture_plan(const ModelFile& model, const std::filesystem::path& text, const KeyCaptureOptions& o) {
  const ModelConfig& c = model.config();
  CapturePlan p;
  p.ctx = c.context_in_use(o.ctx);
  const auto tok = model.tokenizer();
  const auto text_file = MappedFile::open(text);
  auto plan = ppl_plan(std::string_view(reinterpret_cast<const char*>(text_file.bytes().data()), text_file.size()),
                       *tok, p.ctx);
  if (plan.tokens == 0) throw Error(text.string() + ": no text to capture keys from");
  // plan.tokens counts targets, one per fed token.
  p.want = std::min(o.tokens, plan.tokens);
  std::uint64_t fed = 0;
  for (PplChunk& ch : plan.chunks) {
    if (fed >= p.want) break;
    const std::size_t n = std::size_t(std::min<std::uint64_t>(ch.input.size(), p.want - fed));
    ch.input.resize(n);
    p.chunks.push_back(std::move(ch.input));
    fed += n;
  }
  return p;
}

// --- on the device ---------------------------------------------------------------

CapturedKeys capture_on_device(Device& device, const ModelFile& model, const CapturePlan& plan,
                               const KeyCaptureOptions& o,
                               const std::function<void(const std::string&, double)>& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  const ModelConfig& c = model.config();
  const std::uint32_t ctx = plan.ctx;
  const std::uint64_t want = plan.want;

  CapturedKeys k;
  k.ran_on = "device";
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
    progress(progress_label("capturing keys", fed, want, spent), double(fed) / double(want));
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
  for (const auto& ch : plan.chunks) {
    fwd.reset();
    fwd.forward(ch);
    for (std::size_t t = 0; t < ch.size(); ++t) k.positions.push_back(std::uint32_t(t));
    k.tokens += ch.size();
  }
  for (auto* side : {&k.q2_pre, &k.q2_post})
    for (auto& m : *side)
      for (double& x : m) x /= double(std::max<std::uint64_t>(q_rows, 1));
  k.model_sha256 = fwd.model_sha256();
  k.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return k;
}

// --- on the host CPU -----------------------------------------------------------
//
// Layer by layer over every captured token (all chunks side by side as rows),
// driven by one pass over the file in the model hash's order
// (ModelFile::for_each_stored): each weight is read once, hashed (the
// artifact binding), dequantized to fp32 if the capture needs it (rounded to
// fp16 with --weights f16, as the device would store it) and its file pages
// dropped; a layer runs when its last weight has arrived, so one layer's
// weights are in memory at a time. The products run as cpu::kernels GEMMs
// over blocks of rows on every core. The same forward as CpuForward (the
// reference; its rmsnorm, bias and MoE routing are vkq::ref's), in fp32
// with a causal softmax per chunk; the last layer stops at its keys (and
// queries).

constexpr std::size_t kRowBlock = 256;  // rows per projection task
constexpr std::size_t kAttnBlock = 64;  // query rows per attention task

// Matrices the device stores as --weights asks (the router stays fp32).
bool rounded_with_weights(Role r) {
  switch (r) {
    case Role::embed: case Role::wq: case Role::wk: case Role::wv: case Role::wo: case Role::w_gate:
    case Role::w_up: case Role::w_down: case Role::exp_gate: case Role::exp_up: case Role::exp_down:
      return true;
    default:
      return false;
  }
}

CapturedKeys capture_on_host(const ModelFile& model, const CapturePlan& plan, const KeyCaptureOptions& o,
                             const std::function<void(const std::string&, double)>& progress) {
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  const ModelConfig& c = model.config();
  const cpu::Kernels& K = cpu::kernels();
  const std::size_t d = c.dim, hd = c.head_dim, qd = c.q_dim(), kvd = c.kv_dim(), f = c.ffn;
  const std::size_t group = c.heads / c.kv_heads;
  const bool f16 = o.weights && *o.weights == kernels::WeightType::f16;
  CapturedKeys k;
  k.ran_on = std::string("host (") + cpu::isa_name(K.isa) + ")";

  // Rows: the chunks one after another; starts[i] is chunk i's first row.
  std::vector<std::size_t> starts;
  std::vector<std::int32_t> ids;
  for (const auto& ch : plan.chunks) {
    starts.push_back(ids.size());
    ids.insert(ids.end(), ch.begin(), ch.end());
    for (std::size_t t = 0; t < ch.size(); ++t) k.positions.push_back(std::uint32_t(t));
  }
  const std::size_t T = ids.size();
  k.tokens = T;
  starts.push_back(T);
  k.pre.resize(c.layers);
  k.post.resize(c.layers);

  const RopeTable rope = c.rope_table(plan.ctx);
  const std::size_t blocks = (T + kRowBlock - 1) / kRowBlock;
  auto block_rows = [&](std::size_t b) { return std::min(kRowBlock, T - b * kRowBlock); };
  // y (T, n) (+)= a (T, in) · W (n, in)ᵀ over row blocks on every core.
  auto project = [&](const float* a, std::size_t lda, const cpu::Buffer& w, std::size_t n, std::size_t in,
                     float* y, std::size_t ldy, float beta) {
    cpu::parallel_for(blocks, [&](std::size_t b) {
      const std::size_t r = b * kRowBlock;
      K.gemm_nt(block_rows(b), n, in, a + r * lda, lda, w.data(), in, y + r * ldy, ldy, beta);
    });
  };
  // rows of x (each d wide, contiguous) ← rmsnorm(x) ⊙ w, over row blocks.
  auto rmsnorm = [&](float* x, std::size_t per_token, std::size_t dd, const cpu::Buffer& w) {
    cpu::parallel_for(blocks, [&](std::size_t b) {
      const std::size_t rows = block_rows(b) * per_token;
      float* p = x + b * kRowBlock * per_token * dd;
      ref::rmsnorm({p, rows * dd}, w, {p, rows * dd}, std::uint32_t(rows), std::uint32_t(dd), c.rms_eps);
    });
  };

  cpu::Buffer x(T * d);  // the residual stream
  // xb: the normed input (row stride d), then the attention output (row
  // stride qd, which exceeds d in e.g. Qwen3-0.6B: 16 heads of 128 at dim 1024).
  cpu::Buffer xb(T * std::max(d, qd)), q(T * qd), kk(T * kvd), v(T * kvd);
  if (o.queries) {
    k.q2_pre.assign(c.layers, std::vector<double>(c.kv_heads * hd * hd, 0.0));
    k.q2_post = k.q2_pre;
  }
  // Σ q qᵀ of the queries `src` (T, qd) per KV head's group into dst.
  auto query_moments = [&](const float* src, std::vector<double>& dst) {
    cpu::parallel_for(c.kv_heads, [&](std::size_t g) {
      for (std::size_t j = 0; j < group; ++j) {
        const float* a = src + (g * group + j) * hd;
        K.gemm_tn_acc(hd, hd, T, a, qd, a, qd, dst.data() + g * hd * hd, hd);
      }
    });
  };

  std::map<Role, cpu::Buffer> W;  // the layer's weights as the capture uses them
  auto run_layer = [&](std::uint32_t l) {
    // ---- attention: q, k, v
    std::copy(x.begin(), x.end(), xb.begin());
    rmsnorm(xb.data(), 1, d, W.at(Role::attn_norm));
    project(xb.data(), d, W.at(Role::wq), qd, d, q.data(), qd, 0.0f);
    project(xb.data(), d, W.at(Role::wk), kvd, d, kk.data(), kvd, 0.0f);
    const bool last = l + 1 == c.layers;  // nothing reads the last layer's values or output
    if (!last) project(xb.data(), d, W.at(Role::wv), kvd, d, v.data(), kvd, 0.0f);
    if (c.qkv_bias) {
      ref::add_bias(q, W.at(Role::bq), std::uint32_t(T), std::uint32_t(qd));
      ref::add_bias(kk, W.at(Role::bk), std::uint32_t(T), std::uint32_t(kvd));
      if (!last) ref::add_bias(v, W.at(Role::bv), std::uint32_t(T), std::uint32_t(kvd));
    }
    if (c.qk_norm && c.qk_norm_per_head) {  // Qwen3: each head by itself, weights (hd)
      rmsnorm(q.data(), c.heads, hd, W.at(Role::q_norm));
      rmsnorm(kk.data(), c.kv_heads, hd, W.at(Role::k_norm));
    } else if (c.qk_norm) {  // OLMoE: the whole projection
      rmsnorm(q.data(), 1, qd, W.at(Role::q_norm));
      rmsnorm(kk.data(), 1, kvd, W.at(Role::k_norm));
    }
    k.pre[l].assign(kk.begin(), kk.end());
    if (o.queries) query_moments(q.data(), k.q2_pre[l]);
    cpu::parallel_for(blocks, [&](std::size_t b) {
      for (std::size_t t = b * kRowBlock, e = t + block_rows(b); t < e; ++t) {
        const double pos = k.positions[t];
        for (std::size_t h = 0; h < c.heads; ++h) rope_apply(rope, q.data() + t * qd + h * hd, pos);
        for (std::size_t h = 0; h < c.kv_heads; ++h) rope_apply(rope, kk.data() + t * kvd + h * hd, pos);
      }
    });
    k.post[l].assign(kk.begin(), kk.end());
    if (o.queries) query_moments(q.data(), k.q2_post[l]);
    if (last) return;

    // ---- attention: causal softmax per chunk and KV head, into xb
    struct Task {
      std::size_t chunk, g, r0, r1;
    };
    std::vector<Task> tasks;
    for (std::size_t ch = 0; ch + 1 < starts.size(); ++ch)
      for (std::size_t g = 0; g < c.kv_heads; ++g)
        for (std::size_t r = 0, n = starts[ch + 1] - starts[ch]; r < n; r += kAttnBlock)
          tasks.push_back({ch, g, r, std::min(n, r + kAttnBlock)});
    // The longest rows first: the tail of the schedule is short tasks.
    std::stable_sort(tasks.begin(), tasks.end(), [](const Task& a, const Task& b) { return a.r1 > b.r1; });
    const float scale = float(1.0 / std::sqrt(double(hd)));
    cpu::parallel_for(tasks.size(), [&](std::size_t i) {
      const Task& tk = tasks[i];
      const std::size_t s = starts[tk.chunk];
      K.attend_causal(tk.r0, tk.r1, group, hd, q.data() + s * qd + tk.g * group * hd, qd,
                      kk.data() + s * kvd + tk.g * hd, v.data() + s * kvd + tk.g * hd, kvd,
                      xb.data() + s * qd + tk.g * group * hd, scale);
    });
    project(xb.data(), qd, W.at(Role::wo), d, qd, x.data(), d, 1.0f);

    // ---- MLP, over tiles of rows
    const cpu::Buffer& norm = W.at(Role::ffn_norm);
    if (!c.moe()) {
      const cpu::Buffer &wg = W.at(Role::w_gate), &wu = W.at(Role::w_up), &wd = W.at(Role::w_down);
      cpu::parallel_for(blocks, [&](std::size_t b) {
        const std::size_t r = b * kRowBlock, n = block_rows(b);
        cpu::Buffer h(n * d), g(n * f), u(n * f);
        ref::rmsnorm({x.data() + r * d, n * d}, norm, h, std::uint32_t(n), std::uint32_t(d), c.rms_eps);
        K.gemm_nt(n, f, d, h.data(), d, wg.data(), d, g.data(), f, 0.0f);
        K.gemm_nt(n, f, d, h.data(), d, wu.data(), d, u.data(), f, 0.0f);
        K.silu_mul(n * f, g.data(), u.data());
        K.gemm_nt(n, d, f, g.data(), f, wd.data(), f, x.data() + r * d, d, 1.0f);
      });
      return;
    }
    const cpu::Buffer &router = W.at(Role::router), &wg = W.at(Role::exp_gate), &wu = W.at(Role::exp_up),
                      &wd = W.at(Role::exp_down);
    const std::size_t E = c.experts, top = c.experts_used;
    cpu::parallel_for(blocks, [&](std::size_t b) {
      const std::size_t r = b * kRowBlock, n = block_rows(b);
      cpu::Buffer h(n * d), logits(n * E);
      ref::rmsnorm({x.data() + r * d, n * d}, norm, h, std::uint32_t(n), std::uint32_t(d), c.rms_eps);
      K.gemm_nt(n, E, d, h.data(), d, router.data(), d, logits.data(), E, 0.0f);
      std::vector<std::uint32_t> chosen(n * top);
      std::vector<float> weights(n * top);
      ref::moe_route(logits, chosen, weights, std::uint32_t(n), std::uint32_t(E), std::uint32_t(top), c.norm_topk);
      // Per expert: the tile's rows routed to it, gathered, and their outputs added back weighted.
      std::vector<std::vector<std::size_t>> routed(E);  // indices into chosen / weights
      for (std::size_t i = 0; i < n * top; ++i) routed[chosen[i]].push_back(i);
      cpu::Buffer xe, g, u, out;
      for (std::size_t e = 0; e < E; ++e) {
        const std::size_t ne = routed[e].size();
        if (ne == 0) continue;
        xe.resize(ne * d), g.resize(ne * f), u.resize(ne * f), out.resize(ne * d);
        for (std::size_t i = 0; i < ne; ++i) std::copy_n(h.data() + routed[e][i] / top * d, d, xe.data() + i * d);
        K.gemm_nt(ne, f, d, xe.data(), d, wg.data() + e * f * d, d, g.data(), f, 0.0f);
        K.gemm_nt(ne, f, d, xe.data(), d, wu.data() + e * f * d, d, u.data(), f, 0.0f);
        K.silu_mul(ne * f, g.data(), u.data());
        K.gemm_nt(ne, d, f, g.data(), f, wd.data() + e * d * f, f, out.data(), d, 0.0f);
        for (std::size_t i = 0; i < ne; ++i) {
          float* dst = x.data() + (r + routed[e][i] / top) * d;
          const double w = weights[routed[e][i]];
          for (std::size_t j = 0; j < d; ++j) dst[j] = float(dst[j] + w * out[i * d + j]);
        }
      }
    });
  };

  // Roles the last layer needs (its keys and queries).
  auto needed = [&](Role r, std::uint32_t l) {
    if (l + 1 < c.layers) return true;
    switch (r) {
      case Role::attn_norm: case Role::wq: case Role::wk: case Role::bq: case Role::bk: case Role::q_norm:
      case Role::k_norm:
        return true;
      default:
        return false;
    }
  };
  const Role last_role = layer_roles(c).back();
  Sha256 hash;
  double compute_seconds = 0;
  auto t1 = Clock::now();
  model.for_each_stored([&](Role r, std::uint32_t l, const StoredWeight& w) {
    model_sha256_update(hash, w);
    if (r == Role::embed) {  // the residual stream: the tokens' rows
      const std::uint64_t rb = quant::row_bytes(w.type, d);
      for (std::size_t t = 0; t < T; ++t) {
        if (ids[t] < 0 || std::uint64_t(ids[t]) >= c.vocab)
          throw Error("capture: token id " + std::to_string(ids[t]) + " out of range");
        quant::dequantize(w.type, w.bytes.subspan(std::size_t(ids[t]) * rb, rb), std::span<float>(x.data() + t * d, d));
      }
    } else if (r == Role::final_norm || r == Role::lm_head) {
      return;  // hashed only
    } else if (needed(r, l)) {
      std::uint64_t count = 1;
      for (auto s : w.shape) count *= s;
      cpu::Buffer& dst = W[r];
      dst.resize(count);
      // Whole rows per task (a block type's row is whole blocks).
      const std::uint64_t rows = w.rows(), per = count / rows, rb = w.bytes.size() / rows, step = 64;
      cpu::parallel_for((rows + step - 1) / step, [&](std::size_t i) {
        const std::uint64_t r0 = i * step, n = std::min(step, rows - r0);
        quant::dequantize(w.type, w.bytes.subspan(r0 * rb, n * rb), std::span<float>(dst.data() + r0 * per, n * per));
      });
    }
    if (f16 && rounded_with_weights(r) && W.count(r))
      for (float& y : W[r]) y = from_half(to_half(y));
    if (f16 && r == Role::embed)
      for (float& y : x) y = from_half(to_half(y));
    if (r != last_role || l >= c.layers) return;
    const auto t2 = Clock::now();
    run_layer(l);
    W.clear();
    compute_seconds += std::chrono::duration<double>(Clock::now() - t2).count();
    if (progress) {
      const std::uint64_t fed = std::uint64_t(T) * (l + 1) / c.layers;  // token-layers, in tokens
      progress(progress_label(std::string("capturing keys on the CPU (") + cpu::isa_name(K.isa) + ", layer " +
                                  std::to_string(l + 1) + " / " + std::to_string(c.layers) + ")",
                              fed, T, std::chrono::duration<double>(Clock::now() - t1).count()),
               double(l + 1) / double(c.layers));
    }
  });
  k.model_sha256 = hash.hex();
  if (o.queries)
    for (auto* side : {&k.q2_pre, &k.q2_post})
      for (auto& m : *side)
        for (double& y : m) y /= double(std::uint64_t(T) * group);
  k.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  k.load_seconds = k.seconds - compute_seconds;  // reading, hashing and dequantizing the weights
  return k;
}

}  // namespace

CapturedKeys capture_keys(Device& device, const ModelFile& model, const std::filesystem::path& text,
                          const KeyCaptureOptions& o, const std::function<void(const std::string&, double)>& progress) {
  const auto plan = capture_plan(model, text, o);
  const bool host = o.on == KeyCaptureOptions::On::host ||
                    (o.on == KeyCaptureOptions::On::automatic && device.info().type == VK_PHYSICAL_DEVICE_TYPE_CPU);
  return host ? capture_on_host(model, plan, o, progress) : capture_on_device(device, model, plan, o, progress);
}

}  // namespace vkq
