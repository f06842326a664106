#include "vkquant/model/vk_forward.hpp"

#include <chrono>
#include <cmath>
#include <cstring>
#include <random>

#include "vkquant/buffer.hpp"
#include "vkquant/error.hpp"
#include "vkquant/kernels/ops.hpp"
#include "vkquant/model/kv_cache.hpp"
#include "vkquant/stream.hpp"
#include "vkquant/sha256.hpp"

namespace vkq {

using kernels::LinearWeight;
using kernels::WeightType;

namespace {

// A matrix (or a stack of expert matrices) in a device buffer.
struct DeviceMatrix {
  Buffer buffer;
  WeightType type = WeightType::f16;
  std::uint32_t out = 0, in = 0, experts = 1;
  // Built on use: a LinearWeight points at the buffer, which moves with this struct.
  LinearWeight w() const { return LinearWeight{&buffer, type, out, in, experts}; }
};

struct DeviceLayer {
  Buffer attn_norm, bq, bk, bv, q_norm, k_norm, ffn_norm;  // fp32 vectors
  DeviceMatrix wq, wk, wv, wo, w_gate, w_up, w_down, router, exp_gate, exp_up, exp_down;
  std::unique_ptr<OneBitMatrix> q_gate, q_up, q_down;  // --mlp 1bit: instead of w_gate, w_up, w_down
  Buffer tap_pre, tap_post;                            // key_tap: (max_batch, kv_dim) each
  Buffer tap_qpre, tap_qpost;                          // query_tap: (max_batch, q_dim) each
};

}  // namespace

struct VkForward::Impl {
  Device& dev;
  ModelConfig c;
  VkForwardOptions opt;
  std::uint32_t ctx = 0, pos = 0;
  std::uint64_t bytes = 0, weight_bytes = 0, file_weight_bytes = 0;
  std::string model_sha256;
  double load_seconds = 0;

  DeviceMatrix embed, lm_head;  // lm_head.buffer empty when tied (embed used)
  Buffer final_norm;
  std::vector<DeviceLayer> layers;

  std::uint64_t mlp_bytes = 0, mlp_weights = 0;  // stored bytes of the MLP matrices, and their weight count
  kernels::DeviceRope rope;  // the model's RoPE frequencies at ctx (vkquant/rope.hpp)
  std::unique_ptr<DeviceKvCache> kv;  // every layer's key and value caches

  // Activations for up to opt.max_batch tokens.
  Buffer ids, x, xb, q, k, v, att, g, u, ydown, rlogits, eids, ew, xlast, logits;

  Impl(Device& d, const VkForwardOptions& o) : dev(d), opt(o) {}

  Buffer make(std::uint64_t n_bytes) {
    Buffer b = Buffer::create(dev, std::max<std::uint64_t>(n_bytes, 16));
    bytes += b.size();  // counted once the allocation succeeded
    return b;
  }
  Buffer vector(const std::vector<float>& v) {
    Buffer b = make(v.size() * sizeof(float));
    b.upload(std::span<const float>(v));
    weight_bytes += b.size();
    return b;
  }
  Buffer vector(const StoredWeight& w) { return vector(to_f32(w)); }
  // The matrix as stored (or converted to `convert`): rows of
  // linear_row_bytes(in, type). Stored rows of that size upload as they are,
  // from the file's mapping; others are padded one row at a time.
  DeviceMatrix matrix(const StoredWeight& w, std::uint32_t out, std::uint32_t in, std::uint32_t experts,
                      std::optional<WeightType> convert) {
    DeviceMatrix m;
    m.out = out;
    m.in = in;
    m.experts = experts;
    const std::uint64_t rows = std::uint64_t(out) * experts;
    if (convert && *convert != w.type) {
      const auto packed = kernels::linear_pack(to_f32(w), std::uint32_t(rows), in, *convert);
      m.type = *convert;
      m.buffer = make(packed.size() * sizeof(std::uint32_t));
      m.buffer.upload(std::span<const std::uint32_t>(packed));
    } else {
      m.type = w.type;
      const std::uint64_t stored = quant::row_bytes(w.type, in), padded = kernels::linear_row_bytes(in, w.type);
      m.buffer = make(rows * padded);
      if (stored == padded) {
        m.buffer.upload(w.bytes.data(), w.bytes.size());
      } else {
        // Padded rows, a bounded batch of them per upload.
        const std::uint64_t per = std::max<std::uint64_t>(1, (std::uint64_t(16) << 20) / padded);
        std::vector<std::byte> rowbuf;
        for (std::uint64_t r0 = 0; r0 < rows; r0 += per) {
          const std::uint64_t n = std::min(per, rows - r0);
          rowbuf.assign(n * padded, std::byte{0});
          for (std::uint64_t r = 0; r < n; ++r) std::memcpy(&rowbuf[r * padded], &w.bytes[(r0 + r) * stored], stored);
          m.buffer.upload(rowbuf.data(), rowbuf.size(), r0 * padded);
        }
      }
    }
    weight_bytes += m.buffer.size();
    return m;
  }
  // fp32 values of a stored weight (norms, biases, the router, 1-bit MLP input).
  static std::vector<float> to_f32(const StoredWeight& w) {
    std::uint64_t n = 1;
    for (auto d : w.shape) n *= d;
    std::vector<float> f(n);
    quant::dequantize(w.type, w.bytes, f);
    return f;
  }
  const DeviceMatrix& head() const { return c.tied_embeddings ? embed : lm_head; }
  // One 1-bit MLP matrix of layer l (calibration entry used for dense/structured).
  std::unique_ptr<OneBitMatrix> one_bit(const StoredWeight& w, std::uint32_t out, std::uint32_t in,
                                        const MlpCalibration* cal, std::uint32_t l, MlpMatrix which) {
    const MlpMatrixCalib* mc = cal->layers.empty() ? nullptr : &cal->layers.at(l)[which];
    auto m = std::make_unique<OneBitMatrix>(dev, to_f32(w), out, in, mc, opt.mlp.rotation, opt.max_batch);
    bytes += m->bytes();
    weight_bytes += m->bytes();
    mlp_bytes += m->bytes();
    mlp_weights += std::uint64_t(out) * in;
    return m;
  }

  void step(Stream& s, std::span<const std::int32_t> tokens, bool all_logits, std::vector<float>& out);
};

VkForward::VkForward(Device& device, const ModelFile& model, const VkForwardOptions& options,
                     const std::function<void(std::size_t, std::size_t)>& progress)
    : impl_(std::make_unique<Impl>(device, options)) {
  Impl& m = *impl_;
  m.c = model.config();
  const ModelConfig& c = m.c;
  m.ctx = c.context_in_use(options.ctx);
  m.rope = kernels::DeviceRope::create(device, c.rope_table(m.ctx));
  m.bytes += m.rope.buffer.size();
  if (options.max_batch == 0) throw Error("VkForward: max_batch must be at least 1");
  // The KV cache's rules first: a refused mode costs no weight upload.
  options.kcache.validate(c, options.calibration);
  validate_vcache(options.vcache, c);
  m.opt.max_batch = std::min(options.max_batch, m.ctx);
  const std::optional<WeightType> wt = options.weights;
  // --mlp 1bit: dense models only; learned rotations come from the artifact.
  const MlpCalibration* mlp_calib = nullptr;
  static const MlpCalibration no_calibration;  // none / srht need no learned rotation
  if (options.mlp.one_bit) {
    if (c.moe())
      throw Error("--mlp 1bit: this is an MoE model; its experts stay fp16 (docs/design.md §3: one rotation does not fit an expert bank)");
    const MlpRotation r = options.mlp.rotation;
    mlp_calib = &no_calibration;
    if (r == MlpRotation::dense || r == MlpRotation::structured) {
      if (!options.calibration || !options.calibration->mlp || options.calibration->mlp->layers.size() != c.layers)
        throw Error(std::string("--mlp-rotation ") + mlp_rotation_name(r) +
                    " needs --rotations FILE with MLP rotations (written by `vkquant calibrate`)");
      mlp_calib = &*options.calibration->mlp;
    }
  }
  const auto roles = layer_roles(c);
  const std::size_t total = 2 + std::size_t(!c.tied_embeddings) + std::size_t(c.layers) * roles.size();
  std::size_t done = 0;
  auto tick = [&] {
    if (progress) progress(++done, total);
  };

  // One pass over the file: each weight is read as stored, hashed (the
  // artifact binding) and uploaded before the next is touched.
  const auto t0 = std::chrono::steady_clock::now();
  Sha256 hash;
  m.layers.resize(c.layers);
  model.for_each_stored([&](Role r, std::uint32_t l, const StoredWeight& w) {
    model_sha256_update(hash, w);
    m.file_weight_bytes += w.bytes.size();
    DeviceLayer& L = m.layers[l];  // l is 0 for embed, final_norm and lm_head
    // Stored bits of the MLP matrices (mlp_bits_per_weight).
    auto mlp = [&](const DeviceMatrix& d) {
      m.mlp_bytes += d.buffer.size();
      m.mlp_weights += std::uint64_t(d.out) * d.in * d.experts;
    };
    switch (r) {
      case Role::embed: m.embed = m.matrix(w, c.vocab, c.dim, 1, wt); break;
      case Role::lm_head: m.lm_head = m.matrix(w, c.vocab, c.dim, 1, wt); break;
      case Role::final_norm: m.final_norm = m.vector(w); break;
      case Role::attn_norm: L.attn_norm = m.vector(w); break;
      case Role::bq: L.bq = m.vector(w); break;
      case Role::bk: L.bk = m.vector(w); break;
      case Role::bv: L.bv = m.vector(w); break;
      case Role::q_norm: L.q_norm = m.vector(w); break;
      case Role::k_norm: L.k_norm = m.vector(w); break;
      case Role::ffn_norm: L.ffn_norm = m.vector(w); break;
      case Role::wq: L.wq = m.matrix(w, c.q_dim(), c.dim, 1, wt); break;
      case Role::wk: L.wk = m.matrix(w, c.kv_dim(), c.dim, 1, wt); break;
      case Role::wv: L.wv = m.matrix(w, c.kv_dim(), c.dim, 1, wt); break;
      case Role::wo: L.wo = m.matrix(w, c.dim, c.q_dim(), 1, wt); break;
      case Role::w_gate:
        if (mlp_calib) L.q_gate = m.one_bit(w, c.ffn, c.dim, mlp_calib, l, MlpMatrix::gate);
        else mlp(L.w_gate = m.matrix(w, c.ffn, c.dim, 1, wt));
        break;
      case Role::w_up:
        if (mlp_calib) L.q_up = m.one_bit(w, c.ffn, c.dim, mlp_calib, l, MlpMatrix::up);
        else mlp(L.w_up = m.matrix(w, c.ffn, c.dim, 1, wt));
        break;
      case Role::w_down:
        if (mlp_calib) L.q_down = m.one_bit(w, c.dim, c.ffn, mlp_calib, l, MlpMatrix::down);
        else mlp(L.w_down = m.matrix(w, c.dim, c.ffn, 1, wt));
        break;
      // The router stays fp32: top-k choices flip on small perturbations.
      case Role::router: L.router = m.matrix(w, c.experts, c.dim, 1, WeightType::f32); break;
      case Role::exp_gate: mlp(L.exp_gate = m.matrix(w, c.ffn, c.dim, c.experts, wt)); break;
      case Role::exp_up: mlp(L.exp_up = m.matrix(w, c.ffn, c.dim, c.experts, wt)); break;
      case Role::exp_down: mlp(L.exp_down = m.matrix(w, c.dim, c.ffn, c.experts, wt)); break;
    }
    tick();
  });
  m.model_sha256 = hash.hex();
  m.load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (options.calibration) check_model_binding(*options.calibration, m.model_sha256);
  m.kv = std::make_unique<DeviceKvCache>(device, c, m.ctx, options.kcache, options.vcache, options.calibration, m.rope);
  for (std::uint32_t l = 0; l < c.layers; ++l) {
    DeviceLayer& L = m.layers[l];
    if (options.key_tap) {
      L.tap_pre = m.make(std::uint64_t(m.opt.max_batch) * c.kv_dim() * sizeof(float));
      L.tap_post = m.make(std::uint64_t(m.opt.max_batch) * c.kv_dim() * sizeof(float));
    }
    if (options.query_tap) {
      L.tap_qpre = m.make(std::uint64_t(m.opt.max_batch) * c.q_dim() * sizeof(float));
      L.tap_qpost = m.make(std::uint64_t(m.opt.max_batch) * c.q_dim() * sizeof(float));
    }
  }

  const std::uint64_t B = m.opt.max_batch, f4 = sizeof(float);
  const std::uint64_t slots = c.moe() ? c.experts_used : 1;
  m.ids = m.make(B * sizeof(std::uint32_t));
  m.x = m.make(B * c.dim * f4);
  m.xb = m.make(B * c.dim * f4);
  m.q = m.make(B * c.q_dim() * f4);
  m.k = m.make(B * c.kv_dim() * f4);
  m.v = m.make(B * c.kv_dim() * f4);
  m.att = m.make(B * c.q_dim() * f4);
  m.g = m.make(B * slots * c.ffn * f4);
  m.u = m.make(B * slots * c.ffn * f4);
  if (c.moe()) {
    m.ydown = m.make(B * slots * c.dim * f4);
    m.rlogits = m.make(B * c.experts * f4);
    m.eids = m.make(B * slots * sizeof(std::uint32_t));
    m.ew = m.make(B * slots * f4);
  }
  m.xlast = m.make(c.dim * f4);
  m.logits = m.make(B * c.vocab * f4);
}

VkForward::~VkForward() = default;

const ModelConfig& VkForward::config() const { return impl_->c; }
std::uint32_t VkForward::ctx() const { return impl_->ctx; }
void VkForward::reset() { impl_->pos = 0; }
std::uint32_t VkForward::position() const { return impl_->pos; }
std::uint64_t VkForward::device_bytes() const {
  const Impl& m = *impl_;
  return m.bytes + m.kv->key_bytes() + m.kv->value_bytes() + m.kv->other_bytes();
}
VkForward::Memory VkForward::memory() const {
  const Impl& m = *impl_;
  Memory r;
  r.weights = m.weight_bytes;
  r.file_weights = m.file_weight_bytes;
  r.keys = m.kv->key_bytes();
  r.values = m.kv->value_bytes();
  r.other = m.bytes - r.weights + m.kv->other_bytes();
  return r;
}
const std::string& VkForward::model_sha256() const { return impl_->model_sha256; }
double VkForward::load_seconds() const { return impl_->load_seconds; }
std::uint64_t VkForward::key_bytes() const { return impl_->kv->key_bytes(); }
std::uint64_t VkForward::value_bytes() const { return impl_->kv->value_bytes(); }
double VkForward::value_bits_per_coordinate() const { return impl_->kv->value_bits_per_coordinate(); }
double VkForward::mlp_bits_per_weight() const {
  const Impl& m = *impl_;
  if (!m.opt.mlp.one_bit) return double(m.mlp_bytes) * 8.0 / double(m.mlp_weights);
  return double(m.mlp_bytes) * 8.0 / double(m.mlp_weights);
}
double VkForward::key_bits_per_coordinate() const { return impl_->kv->key_bits_per_coordinate(); }

void VkForward::Impl::step(Stream& s, std::span<const std::int32_t> tokens, bool all_logits, std::vector<float>& out) {
  const std::uint32_t n = std::uint32_t(tokens.size()), pos0 = pos;
  std::vector<std::uint32_t> host_ids(tokens.begin(), tokens.end());
  ids.upload(std::span<const std::uint32_t>(host_ids));
  const auto style = kernels::RopeStyle::neox;  // weights are in Hugging Face order (ModelFile undoes GGUF's permutation)

  kernels::embed(s, embed.buffer, embed.type, c.vocab, c.dim,
                 kernels::linear_row_bytes(c.dim, embed.type), ids, x, n);
  for (std::uint32_t l = 0; l < c.layers; ++l) {
    DeviceLayer& L = layers[l];
    // ---- attention
    kernels::rmsnorm(s, x, L.attn_norm, xb, n, c.dim, c.rms_eps);
    kernels::linear(s, L.wq.w(), xb, q, n);
    kernels::linear(s, L.wk.w(), xb, k, n);
    kernels::linear(s, L.wv.w(), xb, v, n);
    if (c.qkv_bias) {
      kernels::add_bias(s, q, L.bq, n, c.q_dim());
      kernels::add_bias(s, k, L.bk, n, c.kv_dim());
      kernels::add_bias(s, v, L.bv, n, c.kv_dim());
    }
    if (c.qk_norm && c.qk_norm_per_head) {  // Qwen3: rows of one head, weights (hd)
      kernels::rmsnorm(s, q, L.q_norm, q, n * c.heads, c.head_dim, c.rms_eps);
      kernels::rmsnorm(s, k, L.k_norm, k, n * c.kv_heads, c.head_dim, c.rms_eps);
    } else if (c.qk_norm) {  // OLMoE: the whole projection
      kernels::rmsnorm(s, q, L.q_norm, q, n, c.q_dim(), c.rms_eps);
      kernels::rmsnorm(s, k, L.k_norm, k, n, c.kv_dim(), c.rms_eps);
    }
    const std::uint64_t kv_rows = std::uint64_t(n) * c.kv_dim() * sizeof(float);
    const std::uint64_t q_rows = std::uint64_t(n) * c.q_dim() * sizeof(float);
    if (opt.key_tap) s.copy(k, L.tap_pre, kv_rows);
    if (opt.query_tap) s.copy(q, L.tap_qpre, q_rows);
    kv->before_rope(s, l, k, n, pos0);
    kernels::rope(s, q, n, c.heads, pos0, this->rope.freqs(), style);
    kernels::rope(s, k, n, c.kv_heads, pos0, this->rope.freqs(), style);
    if (opt.key_tap) s.copy(k, L.tap_post, kv_rows);
    if (opt.query_tap) s.copy(q, L.tap_qpost, q_rows);
    kv->store(s, l, k, v, n, pos0);
    kv->attend(s, l, q, att, n, pos0);
    kernels::linear(s, L.wo.w(), att, x, n, /*accumulate=*/true);
    // ---- MLP
    kernels::rmsnorm(s, x, L.ffn_norm, xb, n, c.dim, c.rms_eps);
    if (!c.moe() && L.q_gate) {
      L.q_gate->apply(s, xb, g, n, false);
      L.q_up->apply(s, xb, u, n, false);
      kernels::swiglu(s, g, u, g, std::uint64_t(n) * c.ffn);
      L.q_down->apply(s, g, x, n, /*accumulate=*/true);
    } else if (!c.moe()) {
      kernels::linear(s, L.w_gate.w(), xb, g, n);
      kernels::linear(s, L.w_up.w(), xb, u, n);
      kernels::swiglu(s, g, u, g, std::uint64_t(n) * c.ffn);
      kernels::linear(s, L.w_down.w(), g, x, n, /*accumulate=*/true);
    } else {
      const std::uint32_t k_used = c.experts_used;
      kernels::linear(s, L.router.w(), xb, rlogits, n);
      kernels::moe_route(s, rlogits, eids, ew, n, c.experts, k_used, c.norm_topk);
      kernels::linear_id(s, L.exp_gate.w(), eids, xb, /*x_per_slot=*/false, g, n, k_used);
      kernels::linear_id(s, L.exp_up.w(), eids, xb, false, u, n, k_used);
      kernels::swiglu(s, g, u, g, std::uint64_t(n) * k_used * c.ffn);
      kernels::linear_id(s, L.exp_down.w(), eids, g, /*x_per_slot=*/true, ydown, n, k_used);
      kernels::moe_combine(s, ydown, ew, x, n, k_used, c.dim, /*accumulate=*/true);
    }
  }
  if (all_logits) {
    kernels::rmsnorm(s, x, final_norm, xb, n, c.dim, c.rms_eps);
    kernels::linear(s, head().w(), xb, logits, n);
  } else {
    s.copy(x, xlast, std::uint64_t(c.dim) * sizeof(float), std::uint64_t(n - 1) * c.dim * sizeof(float));
    kernels::rmsnorm(s, xlast, final_norm, xlast, 1, c.dim, c.rms_eps);
    kernels::linear(s, head().w(), xlast, logits, 1);
  }
  s.submit_and_wait();
  if (opt.key_tap) {
    std::vector<float> pre(std::size_t(n) * c.kv_dim()), post(pre.size());
    for (std::uint32_t l = 0; l < c.layers; ++l) {
      layers[l].tap_pre.download(std::span<float>(pre));
      layers[l].tap_post.download(std::span<float>(post));
      opt.key_tap(l, pre.data(), post.data(), n);
    }
  }
  if (opt.query_tap) {
    std::vector<float> pre(std::size_t(n) * c.q_dim()), post(pre.size());
    for (std::uint32_t l = 0; l < c.layers; ++l) {
      layers[l].tap_qpre.download(std::span<float>(pre));
      layers[l].tap_qpost.download(std::span<float>(post));
      opt.query_tap(l, pre.data(), post.data(), n);
    }
  }
  pos += n;
  const std::size_t rows = all_logits ? n : 1, old = out.size();
  out.resize(old + rows * c.vocab);
  logits.download(std::span<float>(out.data() + old, rows * c.vocab));
}

void VkForward::fill_synthetic(std::uint32_t depth, std::uint64_t seed) {
  Impl& m = *impl_;
  if (depth > m.ctx)
    throw Error("VkForward::fill_synthetic: depth " + std::to_string(depth) + " is past the context of " + std::to_string(m.ctx));
  if (depth < m.pos)
    throw Error("VkForward::fill_synthetic: depth " + std::to_string(depth) + " is below the position " + std::to_string(m.pos));
  const std::uint32_t rows = m.opt.max_batch, kvd = m.c.kv_dim();
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<float> host(std::size_t(rows) * kvd);
  for (float& x : host) x = normal(rng);
  m.k.upload(std::span<const float>(host));
  for (float& x : host) x = normal(rng);
  m.v.upload(std::span<const float>(host));
  Stream s = Stream::create(m.dev);
  for (std::uint32_t p = m.pos; p < depth;) {
    const std::uint32_t n = std::min(rows, depth - p);
    for (std::uint32_t l = 0; l < m.c.layers; ++l) {
      m.kv->before_rope(s, l, m.k, n, p);
      m.kv->store(s, l, m.k, m.v, n, p);
    }
    s.submit_and_wait();
    p += n;
  }
  m.pos = depth;
}

std::vector<float> VkForward::forward(std::span<const std::int32_t> tokens, bool all_logits) {
  Impl& m = *impl_;
  if (tokens.empty()) throw Error("VkForward::forward: no tokens");
  if (tokens.size() > m.ctx - m.pos)
    throw Error("VkForward::forward: " + std::to_string(tokens.size()) + " tokens at position " + std::to_string(m.pos) +
                " run past the context of " + std::to_string(m.ctx));
  for (std::int32_t id : tokens)
    if (id < 0 || std::uint32_t(id) >= m.c.vocab)
      throw Error("VkForward::forward: token id " + std::to_string(id) + " is outside the vocabulary of " +
                  std::to_string(m.c.vocab));
  Stream s = Stream::create(m.dev);
  std::vector<float> out;
  for (std::size_t i = 0; i < tokens.size(); i += m.opt.max_batch) {
    const auto batch = tokens.subspan(i, std::min<std::size_t>(m.opt.max_batch, tokens.size() - i));
    const bool last = i + batch.size() == tokens.size();
    if (all_logits || last) m.step(s, batch, all_logits, out);
    else {
      std::vector<float> unused;
      m.step(s, batch, false, unused);
    }
  }
  return out;
}

void VkForward::forward(std::span<const std::int32_t> tokens,
                        const std::function<void(std::size_t first, std::span<const float> logits)>& each_batch) {
  Impl& m = *impl_;
  std::vector<float> part;
  for (std::size_t i = 0; i < tokens.size(); i += m.opt.max_batch) {
    const auto batch = tokens.subspan(i, std::min<std::size_t>(m.opt.max_batch, tokens.size() - i));
    part = forward(batch, /*all_logits=*/true);
    each_batch(i, part);
  }
}

}  // namespace vkq
