#include "vkquant/model/vk_forward.hpp"

#include <cmath>

#include "vkquant/buffer.hpp"
#include "vkquant/error.hpp"
#include "vkquant/kernels/attn.hpp"
#include "vkquant/kernels/ops.hpp"
#include "vkquant/stream.hpp"

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
  Buffer kcache, vcache;  // (ctx, kv_heads, head_dim) fp16
};

}  // namespace

struct VkForward::Impl {
  Device& dev;
  ModelConfig c;
  VkForwardOptions opt;
  std::uint32_t ctx = 0, pos = 0;
  std::uint64_t bytes = 0;

  DeviceMatrix embed, lm_head;  // lm_head.buffer empty when tied (embed used)
  Buffer final_norm;
  std::vector<DeviceLayer> layers;

  // Activations for up to opt.max_batch tokens.
  Buffer ids, x, xb, q, k, v, att, g, u, ydown, rlogits, eids, ew, xlast, logits, scratch;

  Impl(Device& d, const VkForwardOptions& o) : dev(d), opt(o) {}

  Buffer make(std::uint64_t n_bytes) {
    bytes += std::max<std::uint64_t>(n_bytes, 16);
    return Buffer::create(dev, std::max<std::uint64_t>(n_bytes, 16));
  }
  Buffer vector(const std::vector<float>& v) {
    Buffer b = make(v.size() * sizeof(float));
    b.upload(std::span<const float>(v));
    return b;
  }
  DeviceMatrix matrix(const std::vector<float>& w, std::uint32_t out, std::uint32_t in, std::uint32_t experts,
                      WeightType type) {
    const auto packed = kernels::linear_pack(w, out * experts, in, type);
    DeviceMatrix m;
    m.buffer = make(packed.size() * sizeof(std::uint32_t));
    m.buffer.upload(std::span<const std::uint32_t>(packed));
    m.type = type;
    m.out = out;
    m.in = in;
    m.experts = experts;
    return m;
  }
  const DeviceMatrix& head() const { return c.tied_embeddings ? embed : lm_head; }

  void step(Stream& s, std::span<const std::int32_t> tokens, bool all_logits, std::vector<float>& out);
};

VkForward::VkForward(Device& device, const ModelFile& model, const VkForwardOptions& options,
                     const std::function<void(std::size_t, std::size_t)>& progress)
    : impl_(std::make_unique<Impl>(device, options)) {
  Impl& m = *impl_;
  m.c = model.config();
  const ModelConfig& c = m.c;
  m.ctx = options.ctx ? std::min(options.ctx, c.ctx) : c.ctx;
  if (options.max_batch == 0) throw Error("VkForward: max_batch must be at least 1");
  m.opt.max_batch = std::min(options.max_batch, m.ctx);
  const WeightType wt = options.weights;
  const auto roles = layer_roles(c);
  const std::size_t total = 3 + std::size_t(c.layers) * roles.size();
  std::size_t done = 0;
  auto tick = [&] {
    if (progress) progress(++done, total);
  };

  m.embed = m.matrix(model.load(Role::embed), c.vocab, c.dim, 1, wt);
  tick();
  if (!c.tied_embeddings) m.lm_head = m.matrix(model.load(Role::lm_head), c.vocab, c.dim, 1, wt);
  tick();
  m.final_norm = m.vector(model.load(Role::final_norm));
  tick();
  m.layers.resize(c.layers);
  for (std::uint32_t l = 0; l < c.layers; ++l) {
    DeviceLayer& L = m.layers[l];
    for (Role r : roles) {
      const auto w = model.load(r, l);
      switch (r) {
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
        case Role::w_gate: L.w_gate = m.matrix(w, c.ffn, c.dim, 1, wt); break;
        case Role::w_up: L.w_up = m.matrix(w, c.ffn, c.dim, 1, wt); break;
        case Role::w_down: L.w_down = m.matrix(w, c.dim, c.ffn, 1, wt); break;
        // The router stays fp32: top-k choices flip on small perturbations.
        case Role::router: L.router = m.matrix(w, c.experts, c.dim, 1, WeightType::f32); break;
        case Role::exp_gate: L.exp_gate = m.matrix(w, c.ffn, c.dim, c.experts, wt); break;
        case Role::exp_up: L.exp_up = m.matrix(w, c.ffn, c.dim, c.experts, wt); break;
        case Role::exp_down: L.exp_down = m.matrix(w, c.dim, c.ffn, c.experts, wt); break;
        default: break;
      }
      tick();
    }
    const std::uint64_t kv = kernels::kv_cache_bytes(m.ctx, c.kv_heads, c.head_dim);
    L.kcache = m.make(kv);
    L.vcache = m.make(kv);
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
std::uint64_t VkForward::device_bytes() const { return impl_->bytes; }

void VkForward::Impl::step(Stream& s, std::span<const std::int32_t> tokens, bool all_logits, std::vector<float>& out) {
  const std::uint32_t n = std::uint32_t(tokens.size()), pos0 = pos;
  std::vector<std::uint32_t> host_ids(tokens.begin(), tokens.end());
  ids.upload(std::span<const std::uint32_t>(host_ids));
  const float scale = float(1.0 / std::sqrt(double(c.head_dim)));
  const auto rope = kernels::RopeStyle::neox;  // weights are in Hugging Face order (ModelFile undoes GGUF's permutation)

  // The split-K plan (and its scratch) depends on the query count and the
  // keys in reach: grow the scratch to what this step needs.
  const std::uint64_t need = kernels::attention_scratch_bytes(dev, n, c.heads, pos0 + n, c.head_dim);
  if (need > (scratch ? scratch.size() : 0)) {
    if (scratch) bytes -= scratch.size();
    scratch = Buffer();
    scratch = make(need);
  }

  kernels::embed(s, embed.buffer, embed.type == WeightType::f16, c.vocab, c.dim,
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
    if (c.qk_norm) {
      kernels::rmsnorm(s, q, L.q_norm, q, n, c.q_dim(), c.rms_eps);
      kernels::rmsnorm(s, k, L.k_norm, k, n, c.kv_dim(), c.rms_eps);
    }
    kernels::rope(s, q, n, c.heads, c.head_dim, pos0, c.rope_theta, rope);
    kernels::rope(s, k, n, c.kv_heads, c.head_dim, pos0, c.rope_theta, rope);
    kernels::kv_store(s, k, L.kcache, n, pos0, c.kv_heads, c.head_dim);
    kernels::kv_store(s, v, L.vcache, n, pos0, c.kv_heads, c.head_dim);
    kernels::attention(s, q, L.kcache, L.vcache, att, n, pos0, c.heads, c.kv_heads, c.head_dim, scale,
                       scratch ? &scratch : nullptr);
    kernels::linear(s, L.wo.w(), att, x, n, /*accumulate=*/true);
    // ---- MLP
    kernels::rmsnorm(s, x, L.ffn_norm, xb, n, c.dim, c.rms_eps);
    if (!c.moe()) {
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
  pos += n;
  const std::size_t rows = all_logits ? n : 1, old = out.size();
  out.resize(old + rows * c.vocab);
  logits.download(std::span<float>(out.data() + old, rows * c.vocab));
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

}  // namespace vkq
