#include "vkquant/kernels/attn_kcode.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "attn_kcode.h"
#include "attn_split.hpp"
#include "checks.hpp"
#include "vkquant/error.hpp"
#include "vkquant/kernels/attn.hpp"

namespace vkq::kernels {

static_assert(sizeof(gpu::AttnKcodeQueryParams) == 32);
static_assert(sizeof(gpu::AttnKcodeTableParams) == 32);
static_assert(sizeof(gpu::AttnKcodeParams) == 48);
static_assert(sizeof(gpu::AttnKcodeCombineParams) == 16);

namespace {

using attn_split::kLocal;
constexpr std::uint64_t kDefaultMaxScoreBytes = std::uint64_t(64) << 20;
constexpr std::uint64_t k2pow32 = std::uint64_t(1) << 32;

using check::check_codec;
using check::fail;
using check::need;

// Query rows per block: a block's scores are one kscore score window.
std::uint32_t block_rows(const char* fn, const Device& d, std::uint32_t n, std::uint32_t n_heads,
                         std::uint32_t kv_len, const AttnKcodeOptions& o) {
  std::uint64_t limit = d.binding_chunk_bytes();
  if (o.tuning.max_binding_bytes) limit = std::min(limit, o.tuning.max_binding_bytes);
  const std::uint64_t slack = std::max<std::uint64_t>(d.info().min_storage_buffer_offset_alignment, 4) + 8;
  std::uint64_t cap = o.max_score_bytes ? o.max_score_bytes : kDefaultMaxScoreBytes;
  cap = std::min(cap, limit > slack ? limit - slack : 0);
  const std::uint64_t row = std::uint64_t(n_heads) * kv_len * 4;
  if (row > cap)
    fail(fn, "the scores of one query row (" + std::to_string(row) + " bytes) exceed the cap of " +
                 std::to_string(cap) + " bytes");
  return std::uint32_t(std::min<std::uint64_t>(n, cap / row));
}

KscoreShape score_shape(const KCodec& c, std::uint32_t n_heads, std::uint32_t kv_len) {
  KscoreShape sh;
  sh.d = c.hd;
  sh.kv_heads = c.n_kv;
  sh.group = n_heads / c.n_kv;
  sh.keys = kv_len;
  if (c.coef_stride()) sh.residual = KResidualView::position_major(c.residual->layout(), c.basis_cols);
  sh.layout = KscoreLayout::position_major;
  return sh;
}

}  // namespace

AttnKcodeScratch AttnKcodeScratch::create(Device& d, const AttnKcodeScratchBytes& b) {
  AttnKcodeScratch s;
  s.q = Buffer::create(d, b.q);
  s.qmu = Buffer::create(d, b.qmu);
  s.mrope = Buffer::create(d, b.mrope);
  s.uq = Buffer::create(d, b.uq);
  s.planes = Buffer::create(d, b.planes);
  s.qconst = Buffer::create(d, b.qconst);
  s.scores = Buffer::create(d, b.scores);
  s.partial = Buffer::create(d, b.partial);
  return s;
}

bool AttnKcodeScratch::holds(const AttnKcodeScratchBytes& b) const {
  const auto ok = [](const Buffer& buf, std::uint64_t bytes) { return buf && buf.size() >= bytes; };
  return ok(q, b.q) && ok(qmu, b.qmu) && ok(mrope, b.mrope) && ok(uq, b.uq) && ok(planes, b.planes) &&
         ok(qconst, b.qconst) && ok(scores, b.scores) && ok(partial, b.partial);
}

AttnKcodeScratchBytes attention_kcode_scratch_bytes(const Device& d, const KCodec& c, std::uint32_t n,
                                                    std::uint32_t n_heads, std::uint32_t kv_len,
                                                    const AttnKcodeOptions& o) {
  constexpr const char* fn = "attention_kcode_scratch_bytes";
  check_codec(fn, c);
  if (n_heads == 0 || n_heads % c.n_kv) fail(fn, "n_heads must be a positive multiple of n_kv");
  AttnKcodeScratchBytes b;
  if (n == 0) return b;
  const std::uint64_t rows = std::uint64_t(n) * n_heads, hd = c.hd;
  const bool mean_rope = c.mean_rope.inv_freq != nullptr;
  b.q = rows * hd * 4;
  if (!mean_rope) b.qmu = rows * 4;
  if (mean_rope) b.mrope = rows * hd * 4;
  if (c.coef_stride()) b.uq = rows * c.basis_cols * 4;
  if (o.path == KcodePath::popcount && !c.transform) {
    b.planes = rows * o.query_bits * (hd / 32) * 4;
    b.qconst = rows * 16;
  }
  const std::uint32_t nb = block_rows(fn, d, n, n_heads, kv_len, o);
  b.scores = std::uint64_t(nb) * n_heads * kv_len * 4;
  b.partial =
      std::max<std::uint64_t>({4, attn_split::plan(d, nb, n_heads, c.n_kv, kv_len, c.hd).partial_bytes,
                               n % nb ? attn_split::plan(d, n % nb, n_heads, c.n_kv, kv_len, c.hd).partial_bytes : 0});
  return b;
}

std::uint64_t attn_kcode_rope_table_bytes(std::uint32_t positions, std::uint32_t hd) {
  return std::uint64_t(positions) * hd * 4;
}

void attn_kcode_rope_table(Stream& s, const RopeFreqs& rope, Buffer& table, std::uint32_t first, std::uint32_t count) {
  constexpr const char* fn = "attn_kcode_rope_table";
  const Device& d = s.device();
  const std::uint32_t hd = rope.hd;
  if (hd == 0 || hd % 2 || hd > 1024) fail(fn, "hd = " + std::to_string(hd) + " must be even and <= 1024");
  const Binding fb = check::rope_freqs(fn, "rope", rope, hd);
  if ((std::uint64_t(first) + count) * hd >= k2pow32) fail(fn, "table of more than 2^32 floats");
  if (count == 0) return;
  const Binding tb = need(fn, d, "table", &table, attn_kcode_rope_table_bytes(first + count, hd));
  gpu::AttnKcodeTableParams p{};
  p.first = first;
  p.positions = count;
  p.half_hd = hd / 2;
  p.scale = rope.scale;
  const Kernel& k = s.device().kernel({.shader = "attn_kcode_rope_table",
                                       .local_size = {kLocal, 1, 1}});
  s.dispatch(k, {tb, fb}, p, Threads{std::uint64_t(count) * (hd / 2)});
}

void attention_kcode(Stream& s, const Buffer& q, const KcodeKeys& keys, const Buffer& vcache, Buffer& out,
                     std::uint32_t n, std::uint32_t pos0, std::uint32_t n_heads, float scale,
                     AttnKcodeScratch& scratch, const AttnKcodeOptions& o) {
  attention_kcode(s, q, keys, VCacheView{VType::f16, &vcache, nullptr}, out, n, pos0, n_heads, scale, scratch, o);
}

void attention_kcode(Stream& s, const Buffer& q, const KcodeKeys& keys, const VCacheView& v, Buffer& out,
                     std::uint32_t n, std::uint32_t pos0, std::uint32_t n_heads, float scale,
                     AttnKcodeScratch& scratch, const AttnKcodeOptions& o) {
  constexpr const char* fn = "attention_kcode";
  Device& d = s.device();
  const KCodec& c = keys.codec;
  check_codec(fn, c);
  if (n_heads == 0 || n_heads % c.n_kv)
    fail(fn, "n_heads = " + std::to_string(n_heads) + " is not a multiple of n_kv = " + std::to_string(c.n_kv));
  if (!std::isfinite(scale)) fail(fn, "scale must be finite");
  if (o.path == KcodePath::popcount && o.query_bits != 1 && o.query_bits != 4 && o.query_bits != 8)
    fail(fn, "query_bits = " + std::to_string(o.query_bits) + ", expected 1, 4 or 8");
  if (std::uint64_t(pos0) + n >= k2pow32) fail(fn, "pos0 + n exceeds 2^32");
  if (n == 0) return;
  const std::uint32_t kv_len = pos0 + n, hd = c.hd, group = n_heads / c.n_kv;
  const bool mean_rope = c.mean_rope.inv_freq != nullptr;
  const std::uint64_t act_bytes = std::uint64_t(n) * n_heads * hd * 4;

  const Binding qb = need(fn, d, "q", &q, act_bytes);
  const Binding ob = need(fn, d, "out", &out, act_bytes);
  if (v.type != VType::f16 && v.type != VType::q8 && v.type != VType::q4) fail(fn, "unknown value type");
  if (v.type != VType::f16 && hd % kVBlock) fail(fn, "q8/q4 values need hd to be a multiple of 32");
  const Binding vb = need(fn, d, "vcache", v.codes, vcache_code_bytes(v.type, kv_len, c.n_kv, hd));
  const Binding vsb =
      v.type == VType::f16 ? vb : need(fn, d, "vcache scales", v.scales, vcache_scale_bytes(v.type, kv_len, c.n_kv, hd));
  const Binding mub = need(fn, d, "mu", c.mu, std::uint64_t(c.n_kv) * hd * 4);
  const Binding rotb = c.rot ? need(fn, d, "rot", c.rot, std::uint64_t(c.n_kv) * hd * hd * 4) : mub;
  const std::uint32_t front = std::min(keys.front, kv_len);
  const Binding fb = front ? need(fn, d, "front_keys", keys.front_keys, kv_cache_bytes(front, c.n_kv, hd)) : qb;
  const Binding tb =
      mean_rope ? need(fn, d, "rope_table", keys.rope_table, attn_kcode_rope_table_bytes(kv_len, hd)) : qb;
  const bool resid = c.coef_stride() != 0;
  if (resid && !keys.coef) fail(fn, "a residual needs a coef buffer");
  const AttnKcodeScratchBytes sb = attention_kcode_scratch_bytes(d, c, n, n_heads, kv_len, o);
  if (!scratch.holds(sb))
    fail(fn, "scratch is smaller than attention_kcode_scratch_bytes (" + std::to_string(sb.total()) + " bytes)");
  for (const Buffer* in : {&q, v.codes, v.scales, c.mu, c.rot, c.basis, keys.bits, keys.alpha, keys.coef, keys.front_keys,
                           keys.rope_table})
    if (in == &out) fail(fn, "out must not alias an input");
  for (const Buffer* sc : {&scratch.q, &scratch.qmu, &scratch.mrope, &scratch.uq, &scratch.planes, &scratch.qconst,
                           &scratch.scores, &scratch.partial})
    if (sc == &out) fail(fn, "out must not be a scratch buffer");
  const std::uint32_t nb = block_rows(fn, d, n, n_heads, kv_len, o);

  // q' = R q, and q·mu or the mean-RoPE pairs.
  {
    const std::uint64_t rows = std::uint64_t(n) * n_heads;
    const gpu::AttnKcodeQueryParams p{std::uint32_t(rows), n_heads, group, hd, c.rot ? 1u : 0u,
                                      mean_rope ? 1u : 0u, 0, 0};
    const Kernel& k = d.kernel({.shader = "attn_kcode_query",
                                .local_size = {kLocal, 1, 1}});
    s.dispatch(k,
               {qb, mub, rotb, Binding(scratch.q, 0, sb.q), Binding(scratch.qmu, 0, sb.qmu),
                Binding(scratch.mrope, 0, sb.mrope)},
               p, Threads{rows * hd});
  }

  const KscoreKeys kk{keys.bits, keys.alpha, resid ? keys.coef : nullptr};
  const KscoreQuery kq{&scratch.q, mean_rope ? nullptr : &scratch.qmu, resid ? c.basis : nullptr,
                       resid ? &scratch.uq : nullptr, resid ? c.levels : nullptr};
  const KscoreQuantized qq{o.query_bits, &scratch.planes, &scratch.qconst};
  const KscoreShape shape = score_shape(c, n_heads, kv_len);
  for (std::uint32_t row0 = 0; row0 < n; row0 += nb) {
    const std::uint32_t rows = std::min(nb, n - row0);
    KscoreShape sh = shape;
    sh.queries = rows;
    sh.query0 = row0;
    sh.causal = true;
    sh.causal_keys = std::uint64_t(pos0) + row0 + 1;
    if (c.transform) {
      kscore_tc(s, sh, resid ? keys.coef : nullptr, kq, scratch.scores, o.tuning);
    } else if (o.path == KcodePath::popcount) {
      // One workgroup per query head: quantize in pieces of at most maxComputeWorkGroupCount heads.
      const std::uint32_t step = std::max<std::uint32_t>(1, d.info().max_workgroup_count[0] / n_heads);
      for (std::uint32_t r = 0; r < rows; r += step) {
        KscoreShape qs = sh;
        qs.queries = std::min(step, rows - r);
        qs.query0 = row0 + r;
        kscore_quantize_query(s, qs, o.query_bits, scratch.q, scratch.planes, scratch.qconst);
      }
      kscore_popcount(s, sh, kk, kq, qq, scratch.scores, o.tuning);
    } else {
      kscore_float(s, sh, kk, kq, scratch.scores, o.tuning);
    }
    const std::uint64_t score_bytes = std::uint64_t(rows) * n_heads * kv_len * 4;
    gpu::AttnKcodeParams p{};
    p.nb = rows;
    p.row0 = row0;
    p.pos0 = pos0;
    p.n_heads = n_heads;
    p.n_kv = c.n_kv;
    p.group = group;
    p.kv_len = kv_len;
    p.front = front;
    p.scale = scale;
    if (mean_rope) {
      const Kernel& k = d.kernel({.shader = "attn_kcode_mrope",
                                  .local_size = {kLocal, 1, 1},
                                  .constants = {hd}});
      s.dispatch(k, {Binding(scratch.mrope, 0, sb.mrope), tb, Binding(scratch.scores, 0, score_bytes)}, p,
                 Threads{kv_len, rows});
    }
    const attn_split::Plan sp = attn_split::plan(d, rows, n_heads, c.n_kv, kv_len, hd);
    p.splits = sp.splits;
    p.split_len = sp.split_len;
    const Kernel& k = d.kernel({.shader = "attn_kcode_softmax",
                                .local_size = {kLocal, 1, 1},
                                .constants = {hd, std::uint32_t(v.type), sp.group_heads}});
    const Binding part = sp.splits > 1 ? Binding(scratch.partial, 0, sp.partial_bytes) : ob;
    s.dispatch(k, {qb, Binding(scratch.scores, 0, score_bytes), fb, vb, ob, part, vsb}, p,
               Threads{sp.lanes * sp.splits});
    if (sp.splits == 1) continue;
    const Kernel& ck = d.kernel({.shader = "attn_kcode_combine",
                                 .local_size = {kLocal, 1, 1}});
    const gpu::AttnKcodeCombineParams cp{rows * n_heads, sp.splits, hd, row0 * n_heads * hd};
    s.dispatch(ck, {Binding(scratch.partial, 0, sp.partial_bytes), ob}, cp,
               Threads{std::uint64_t(rows) * n_heads * hd});
  }
}

}  // namespace vkq::kernels
