#include "vkquant/kernels/kcodec.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "checks.hpp"
#include "kcodec.h"
#include "vkquant/device.hpp"
#include "vkquant/error.hpp"

namespace vkq::kernels {

static_assert(sizeof(gpu::KCodeEncodeParams) == 40);
static_assert(sizeof(gpu::KCodeDecodeParams) == 40);

namespace {

constexpr std::uint32_t kPairsPerDecodeInvocation = 8;  // G in kcodec_decode.comp
constexpr std::uint64_t k2pow32 = std::uint64_t(1) << 32;

using check::check_codec;
using check::fail;
// Bindings past maxStorageBufferRange are refused.
Binding need(const char* fn, const Device& d, const char* name, const Buffer* b, std::uint64_t bytes) {
  return check::need(fn, d, name, b, bytes, "larger code caches are not supported");
}

// Workgroup size: each invocation keeps hd floats in shared memory, so the
// group's share stays at 16 KiB (Vulkan's guaranteed minimum).
std::uint32_t local_size(std::uint32_t hd) { return hd <= 64 ? 64 : hd <= 128 ? 32 : 16; }

// The codec's parameter bindings: mu, rot (mu as a placeholder for the
// identity), basis and the residual table (mu as placeholders without a residual).
struct Params {
  Binding mu, rot, basis, table, enc_basis, levels;
};

Params params(const char* fn, const Device& d, const KCodec& c) {
  const std::uint64_t hd = c.hd;
  const Binding mu = need(fn, d, "mu", c.mu, c.n_kv * hd * 4);
  const Binding rot = c.rot ? need(fn, d, "rot", c.rot, c.n_kv * hd * hd * 4) : mu;
  if (c.levels && !c.transform) fail(fn, "levels belong to the transform code");
  if (!c.coef_stride()) return {mu, rot, mu, mu, mu, mu};
  if (!c.basis) fail(fn, "a residual needs a basis buffer");
  const Binding basis = need(fn, d, "basis", c.basis, c.n_kv * hd * c.basis_cols * 4);
  const Binding enc = c.enc_basis ? need(fn, d, "enc_basis", c.enc_basis, c.n_kv * hd * c.basis_cols * 4) : basis;
  const Binding table = need(fn, d, "residual table", &c.residual->buffer(), std::uint64_t(c.n_kv) * 16);
  const Binding lv = c.levels ? need(fn, d, "levels", c.levels, std::uint64_t(c.n_kv) * c.basis_cols * kTcLevels * 4) : mu;
  return {mu, rot, basis, table, enc, lv};
}

}  // namespace

std::uint64_t kcode_bits_bytes(std::uint32_t ctx, std::uint32_t n_kv, std::uint32_t hd) {
  return std::uint64_t(ctx) * n_kv * (hd / 32) * 4;
}

std::uint64_t kcode_alpha_bytes(std::uint32_t ctx, std::uint32_t n_kv) {
  return (std::uint64_t(ctx) * n_kv + 1) / 2 * 4;
}

std::uint64_t kcode_coef_bytes(std::uint32_t ctx, const KCodec& c) {
  return c.residual ? c.residual->layout().bytes(ctx) : 0;
}

KResidualTable KResidualTable::create(Device& d, KResidualLayout layout) {
  // The layout's rules are checked (and its offsets recomputed) in one place: KResidualLayout::make.
  if (!(KResidualLayout::make(layout.heads) == layout))
    throw Error("KResidualTable: the layout's offsets or stride do not follow from its heads (use KResidualLayout::make)");
  KResidualTable t;
  std::vector<std::uint32_t> rows;
  for (std::size_t h = 0; h < layout.heads.size(); ++h) {
    const KResidual& r = layout.heads[h];
    if (r.tc) rows.insert(rows.end(), {r.rank, r.n4 | r.n3 << 10 | r.n2 << 20, layout.offset[h], 2u});  // rank < 1024 (make)
    else rows.insert(rows.end(), {r.rank, r.bits, layout.offset[h], r.arel ? 1u : 0u});
  }
  if (rows.empty()) rows.assign(4, 0u);
  t.table_ = Buffer::create(d, rows.size() * 4);
  t.table_.upload(std::span<const std::uint32_t>(rows));
  t.layout_ = std::move(layout);
  return t;
}

void kcode_encode(Stream& s, const KCodec& c, const Buffer& k, Buffer& bits, Buffer& alpha, Buffer* coef,
                  std::uint32_t n, std::uint32_t pos0) {
  const char* fn = "kcode_encode";
  const Device& d = s.device();
  check_codec(fn, c);
  const std::uint64_t end = std::uint64_t(pos0) + n;
  if (end * std::max(c.n_kv, c.coef_stride()) >= k2pow32) fail(fn, "pos0 + n positions exceed 2^32 code elements");
  if (n == 0) return;
  const Params pr = params(fn, d, c);
  const Binding kb = need(fn, d, "k", &k, std::uint64_t(n) * c.n_kv * c.hd * 4);
  const std::uint32_t ctx = std::uint32_t(end);
  const Binding bb = c.transform ? pr.mu : need(fn, d, "bits", &bits, kcode_bits_bytes(ctx, c.n_kv, c.hd));
  const Binding ab = c.transform ? pr.mu : need(fn, d, "alpha", &alpha, kcode_alpha_bytes(ctx, c.n_kv));
  const std::uint32_t stride = c.coef_stride();
  if (stride && !coef) fail(fn, "a residual needs a coef buffer");
  if (c.transform && !stride) return;  // nothing to store: every head's code is empty
  const Binding cb = stride ? need(fn, d, "coef", coef, kcode_coef_bytes(ctx, c)) : ab;
  if (!c.transform && (&bits == &alpha || (stride && (coef == &bits || coef == &alpha))))
    fail(fn, "bits, alpha and coef must be distinct buffers");

  const bool mr = c.mean_rope.inv_freq != nullptr;
  const Binding fb = mr ? check::rope_freqs(fn, "mean_rope", c.mean_rope, c.hd) : pr.mu;
  // The mean-RoPE encoder keeps a second hd floats per invocation in shared memory.
  const Kernel& kern = s.device().kernel({.shader = std::string(mr ? "kcodec_encode_mr_d" : "kcodec_encode_d") +
                                                    std::to_string(c.hd),
                                          .local_size = {local_size(c.hd) / (mr ? 2 : 1), 1, 1}});
  const gpu::KCodeEncodeParams p{n,          pos0, c.n_kv, stride, c.rot ? 1u : 0u, mr ? 1u : 0u, mr ? c.mean_rope.scale : 1.f,
                                  c.basis_cols, c.transform ? 1u : 0u, c.levels ? 1u : 0u};
  s.dispatch(kern, {kb, pr.mu, pr.rot, pr.enc_basis, bb, ab, cb, fb, pr.table, pr.levels}, p,
             Threads{std::uint64_t(n) * c.n_kv});
}

void kcode_decode(Stream& s, const KCodec& c, const Buffer& bits, const Buffer& alpha, const Buffer* coef,
                  Buffer& kcache, std::uint32_t first, std::uint32_t len, const RopeFreqs* rope) {
  const char* fn = "kcode_decode";
  const Device& d = s.device();
  check_codec(fn, c);
  const bool mr = c.mean_rope.inv_freq != nullptr;
  if (rope && mr) fail(fn, "mean-RoPE codes hold post-RoPE keys: decode them without a RoPE table");
  const std::uint64_t end = std::uint64_t(first) + len;
  if (end * std::max(c.n_kv, c.coef_stride()) >= k2pow32) fail(fn, "first + len positions exceed 2^32 code elements");
  if (len == 0) return;
  const Params pr = params(fn, d, c);
  const std::uint32_t ctx = std::uint32_t(end);
  const Binding bb = c.transform ? pr.mu : need(fn, d, "bits", &bits, kcode_bits_bytes(ctx, c.n_kv, c.hd));
  const Binding ab = c.transform ? pr.mu : need(fn, d, "alpha", &alpha, kcode_alpha_bytes(ctx, c.n_kv));
  const std::uint32_t stride = c.coef_stride();
  if (stride && !coef) fail(fn, "a residual needs a coef buffer");
  const Binding cb = stride ? need(fn, d, "coef", coef, kcode_coef_bytes(ctx, c)) : ab;
  const Binding kc = need(fn, d, "kcache", &kcache, end * c.n_kv * c.hd * 2);
  if ((!c.transform && (&kcache == &bits || &kcache == &alpha)) || &kcache == coef || &kcache == c.mu ||
      &kcache == c.rot || &kcache == c.basis)
    fail(fn, "kcache must not alias an input");

  const RopeFreqs* table = mr ? &c.mean_rope : rope;
  const Binding fb = table ? check::rope_freqs(fn, mr ? "mean_rope" : "rope", *table, c.hd) : pr.mu;
  const Kernel& kern = s.device().kernel({.shader = "kcodec_decode_d" + std::to_string(c.hd),
                                          .local_size = {local_size(c.hd), 1, 1}});
  const std::uint32_t mode = mr ? 2u : rope ? 1u : 0u;
  const gpu::KCodeDecodeParams p{first,        len, c.n_kv, stride, c.rot ? 1u : 0u, mode, table ? table->scale : 1.f,
                                  c.basis_cols, c.transform ? 1u : 0u, c.levels ? 1u : 0u};
  const std::uint64_t groups = c.hd / 2 / kPairsPerDecodeInvocation;
  s.dispatch(kern, {pr.mu, pr.rot, pr.basis, bb, ab, cb, kc, fb, pr.table, pr.levels}, p,
             Threads{std::uint64_t(len) * c.n_kv * groups});
}

}  // namespace vkq::kernels
