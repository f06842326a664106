#include "vkquant/kernels/kscore.hpp"

#include <algorithm>
#include <cstddef>
#include <string>
#include <vector>

#include "kscore.h"
#include "vkquant/device.hpp"
#include "vkquant/error.hpp"
#include "vkquant/reference/kscore.hpp"

namespace vkq::kernels {

static_assert(sizeof(gpu::KscoreParams) == 92);
static_assert(sizeof(gpu::KscoreQueryParams) == 32);
static_assert(sizeof(gpu::KscoreQueryConst) == 16);
// The host twin has the device layout, so a qconst buffer downloads straight into it.
static_assert(sizeof(ref::KscoreQueryConst) == sizeof(gpu::KscoreQueryConst) &&
              offsetof(ref::KscoreQueryConst, inv_delta) == offsetof(gpu::KscoreQueryConst, inv_delta) &&
              offsetof(ref::KscoreQueryConst, sum_q) == offsetof(gpu::KscoreQueryConst, sum_q));

namespace {

constexpr std::uint64_t kMaxD = 1024;  // the kernels unroll over d: head dimensions, not model widths
constexpr std::uint64_t k2pow32 = std::uint64_t(1) << 32;
// Each path's query rows per pass and keys per invocation at one row (K is
// keys / rows, at least 1) where the tuning leaves them 0, from same-run
// measurements on lavapipe (d = 128, group 4, 32 k keys, 16-row blocks): the
// float path loads 32x more query words per key than the popcount planes and
// runs 2x faster sharing each between 4 keys, but slower over several rows;
// the fp16 path is bound by its key loads, which rows share (1.3x at 16
// rows) and keys do not; the popcount path gains 10-20% from K = 4 (its vec4
// stores), and at b = 1 (cheap arithmetic) 1.5x from sharing keys between 2
// rows, which costs b = 4, 8 more than K = 4 gains.
struct PathShape {
  std::uint32_t rows, keys;
};
constexpr PathShape kFloatShape{1, 4}, kF16Shape{4, 1};
PathShape popcount_shape(std::uint32_t b) { return b == 1 ? PathShape{2, 4} : PathShape{1, 4}; }

[[noreturn]] void fail(const char* fn, const std::string& what) { throw Error(std::string(fn) + ": " + what); }

std::uint64_t half_words_bytes(std::uint64_t halves) { return (halves + 1) / 2 * 4; }

void check_shape(const char* fn, const KscoreShape& sh) {
  if (sh.d == 0 || sh.d > kMaxD) fail(fn, "d = " + std::to_string(sh.d) + " outside 1.." + std::to_string(kMaxD));
  if (sh.kv_heads == 0) fail(fn, "kv_heads must be >= 1");
  if (sh.group == 0) fail(fn, "group must be >= 1");
  if (sh.queries == 0) fail(fn, "queries must be >= 1");
  if (std::uint64_t(sh.group) * sh.kv_heads >= k2pow32) fail(fn, "group * kv_heads overflows");
  if (sh.query_rows() * sh.q_heads() * std::max(sh.d, 8u) >= k2pow32)
    fail(fn, std::to_string(sh.query_rows()) + " query rows: a query-side array would exceed 2^32 elements");
  const std::uint64_t kvn = std::uint64_t(sh.kv_heads) * sh.keys;
  if (sh.keys >= k2pow32 || std::uint64_t(sh.queries) * sh.q_heads() * sh.keys >= k2pow32 ||
      kvn * sh.words() >= k2pow32 ||
      kvn * ((sh.d + 1) / 2) >= k2pow32 || sh.residual.halves(sh.keys) >= k2pow32)
    fail(fn, "N = " + std::to_string(sh.keys) + " keys: an array would exceed 2^32 elements");
  const KResidualView& rv = sh.residual;
  if (!rv.any()) return;
  if (rv.heads.size() != sh.kv_heads)
    fail(fn, "residual for " + std::to_string(rv.heads.size()) + " KV heads, the shape has " +
                 std::to_string(sh.kv_heads));
  if (rv.basis_cols > sh.d)
    fail(fn, "residual basis of " + std::to_string(rv.basis_cols) + " columns exceeds d = " + std::to_string(sh.d));
  if (std::uint64_t(sh.kv_heads) * sh.d * rv.basis_cols >= k2pow32 ||
      sh.query_rows() * sh.q_heads() * rv.basis_cols >= k2pow32)
    fail(fn, "residual basis of " + std::to_string(rv.basis_cols) + " columns too large");
  for (std::uint32_t h = 0; h < sh.kv_heads; ++h) {
    const KResidual r = rv.heads[h].code;
    const std::string head = "residual head " + std::to_string(h) + ": ";
    if (r.tc != rv.heads[0].code.tc) fail(fn, head + "transform-coded and sign-coded heads mixed");
    if (r.tc) {
      if (!tc_fills_halves(r))
        fail(fn, head + "transform code " + residual_label(r) + " does not fill whole halves");
    } else if (!r.arel && r.bits != 16 && r.bits != 8 && r.bits != 4) fail(fn, head + "bits must be 16, 8 or 4");
    if (!r.tc && r.arel && r.bits != 4 && r.bits != 2 && r.bits != 1)
      fail(fn, head + "alpha-relative coefficients are 4, 2 or 1 bits");
    if (!r.tc && r.bits != 16 && r.rank % (16 / r.bits))
      fail(fn, head + "rank " + std::to_string(r.rank) + " is not a multiple of " + std::to_string(16 / r.bits));
    if (r.rank > rv.basis_cols)
      fail(fn, head + "rank " + std::to_string(r.rank) + " exceeds the basis' " + std::to_string(rv.basis_cols) +
                   " columns");
  }
}

void check_buffer(const char* fn, const char* name, const Buffer* b, std::uint64_t bytes) {
  if (!b || !*b) fail(fn, std::string(name) + " buffer missing");
  if (b->size() < bytes)
    fail(fn, std::string(name) + " holds " + std::to_string(b->size()) + " bytes, needs " + std::to_string(bytes));
}

// Query-side buffers are bound whole.
void check_query_buffer(const char* fn, const Device& d, const char* name, const Buffer* b, std::uint64_t bytes) {
  check_buffer(fn, name, b, bytes);
  if (bytes > d.info().max_storage_buffer_range)
    fail(fn, std::string(name) + " needs " + std::to_string(bytes) + " bytes, more than maxStorageBufferRange");
}

void check_tuning(const char* fn, const Device& d, const KscoreTuning& t) {
  if (t.local == 0 || t.local > d.info().max_workgroup_invocations || t.local > d.info().max_workgroup_size[0])
    fail(fn, "tuning.local = " + std::to_string(t.local) + " is not a valid workgroup size here");
  if (t.max_heads_per_pass == 0) fail(fn, "tuning.max_heads_per_pass must be >= 1");
  if (t.keys_per_invocation > 8) fail(fn, "tuning.keys_per_invocation must be 0 (auto) or 1..8");
}

void check_distinct(const char* fn, const Buffer& out, std::initializer_list<const Buffer*> ins) {
  for (const Buffer* b : ins)
    if (b == &out) fail(fn, "the output buffer is also an input");
}

// Window offsets: the device's alignment, and at least 16 bytes so that the
// kernels' uvec4 key loads stay aligned (kscore.comp, key_load).
std::uint64_t align_of(const Device& d) {
  return std::max<std::uint64_t>(d.info().min_storage_buffer_offset_alignment, 16);
}

// ---- key chunking ------------------------------------------------------------

// One dispatch: KV head kv, group members [gsub0, gsub0 + g), query rows
// [y0, y0 + rows) of the call, keys [t0, t0 + count).
struct Pass {
  std::uint32_t kv, gsub0, g, y0, rows;
  std::uint64_t t0, count;
};

// A call's passes, and the row slots (Y), keys per invocation (K) and store
// width (1, or 4: every invocation's first key at a multiple of 4 elements of
// the output) of the one kernel that runs them all.
struct Plan {
  std::vector<Pass> passes;
  std::uint32_t slots, keys_per_invocation, store_width;
};

// The window of a key-major array (rows kv*N + t, `row_bytes` each) that a
// pass reads, aligned for binding; base = its first element index.
struct Window {
  std::uint64_t offset, range, base;
};

Window window(std::uint64_t first_byte, std::uint64_t end_byte, std::uint64_t elem_bytes, std::uint64_t align) {
  const std::uint64_t off = first_byte / align * align;
  const std::uint64_t end = (end_byte + 3) / 4 * 4;
  return {off, end - off, off / elem_bytes};
}

// Key rows between consecutive keys of one head, and between heads.
std::uint64_t key_stride(const KscoreShape& sh) {
  return sh.layout == KscoreLayout::position_major ? sh.kv_heads : 1;
}
std::uint64_t head_stride(const KscoreShape& sh) { return sh.layout == KscoreLayout::position_major ? 1 : sh.keys; }

Window key_window(const KscoreShape& sh, const Pass& p, std::uint64_t row_bytes, std::uint64_t elem_bytes,
                  std::uint64_t align) {
  const std::uint64_t first_row = p.kv * head_stride(sh) + p.t0 * key_stride(sh);
  const std::uint64_t end_row = first_row + (p.count - 1) * key_stride(sh) + 1;
  return window(first_row * row_bytes, end_row * row_bytes, elem_bytes, align);
}

// Score rows: (query row y, query head h) -> y * q_heads + h.
Window score_window(const KscoreShape& sh, const Pass& p, std::uint64_t align) {
  const std::uint64_t h = std::uint64_t(p.kv) * sh.group + p.gsub0;
  const std::uint64_t first = std::uint64_t(p.y0) * sh.q_heads() + h;
  const std::uint64_t last = std::uint64_t(p.y0 + p.rows - 1) * sh.q_heads() + h + p.g - 1;
  return window((first * sh.keys + p.t0) * 4, (last * sh.keys + p.t0 + p.count) * 4, 4, align);
}

// Bytes a key-side array spans per key of one KV head: `step` between
// consecutive keys, `last` for the final key's own row or record.
struct KeyBytes {
  std::uint64_t step, last;
};

// The window of the residual records of keys [t0, t0 + count) of one KV head.
// Records may start at odd halves (odd strides, heads' offsets): the window
// starts at an aligned byte, hence an even half, and the kernel keeps the
// parity of each record's first half.
Window c_window(const KResidualPlace& pl, const Pass& p, std::uint64_t align) {
  const std::uint64_t first = pl.offset + p.t0 * pl.stride;
  const std::uint64_t end = pl.offset + (p.t0 + p.count - 1) * pl.stride + KResidualLayout::record_halves(pl.code);
  return window(first * 2, end * 2, 2, align);
}

// Keys that query rows up to `last_row` of the call score.
std::uint64_t keys_in_reach(const KscoreShape& sh, std::uint64_t last_row) {
  return sh.causal ? std::min(sh.keys, sh.causal_keys + last_row) : sh.keys;
}

// Largest divisor of `group` not above `cap`.
std::uint32_t divisor_at_most(std::uint32_t group, std::uint32_t cap) {
  for (std::uint32_t g = std::min(group, cap); g > 1; --g)
    if (group % g == 0) return g;
  return 1;
}

// Splits a call into passes, one KV head and a block of at most Y query rows
// each (head and rows then come from push constants only, which lavapipe
// recognises as uniform: a row from gl_WorkGroupID.y turned every query load
// into a loop over the lanes), whose every key-side window (rows of
// `spans`, plus the scores) fits in one binding: all keys at once when
// they fit, else key chunks (and fewer rows, then group members, per pass
// only when their score rows cannot share a binding). A causal row block
// stops at the last key its last row scores.
Plan plan(const char* fn, const Device& d, const KscoreShape& sh, const std::vector<KeyBytes>& spans,
          const KscoreTuning& t, PathShape path) {
  std::uint64_t limit = d.binding_chunk_bytes();
  if (t.max_binding_bytes) limit = std::min(limit, t.max_binding_bytes);
  const std::uint64_t slack = align_of(d) + 4;
  if (limit <= slack) fail(fn, "binding limit of " + std::to_string(limit) + " bytes is too small");
  const std::uint64_t room = limit - slack;  // bytes a window may span
  const std::uint64_t n = sh.keys;
  // Score rows a window spans besides the first: the other query rows' and group members'.
  const auto spare = [&](std::uint32_t y, std::uint32_t g) { return (std::uint64_t(y) - 1) * sh.q_heads() + g - 1; };
  std::uint32_t y = std::min(sh.queries, t.max_rows_per_pass ? t.max_rows_per_pass : path.rows);
  while (y > 1 && (spare(y, 1) * n + 1) * 4 > room) --y;
  std::uint32_t g = divisor_at_most(sh.group, t.max_heads_per_pass);
  while (g > 1 && (spare(y, g) * n + 1) * 4 > room) g = divisor_at_most(sh.group, g - 1);
  std::uint64_t chunk = n;
  // (chunk - 1)·step + last bytes must fit in the room.
  for (const KeyBytes& b : spans) chunk = std::min(chunk, room >= b.last ? (room - b.last) / b.step + 1 : 0);
  chunk = std::min(chunk, room / 4 - std::min(room / 4, spare(y, g) * n));
  if (chunk == 0 && keys_in_reach(sh, sh.queries - 1) > 0)
    fail(fn, "one key row (and its scores) does not fit in a binding of " + std::to_string(limit) + " bytes");
  const std::uint32_t k = t.keys_per_invocation ? t.keys_per_invocation : std::max(1u, path.keys / y);
  // vec4 stores: score rows of N % 4 == 0 elements and chunks of whole vec4s
  // (windows start at 16-byte multiples) put every invocation's first key at
  // a multiple of 4 elements.
  const bool vec4 = k == 4 && n % 4 == 0 && chunk >= 4;
  if (vec4) chunk -= chunk % 4;
  Plan out{{}, y, k, vec4 ? 4u : 1u};
  for (std::uint32_t kv = 0; kv < sh.kv_heads; ++kv)
    for (std::uint32_t gs = 0; gs < sh.group; gs += g)
      for (std::uint32_t y0 = 0; y0 < sh.queries; y0 += y) {
        const std::uint32_t rows = std::min(y, sh.queries - y0);
        const std::uint64_t reach = keys_in_reach(sh, y0 + rows - 1);
        for (std::uint64_t t0 = 0; t0 < reach; t0 += chunk)
          out.passes.push_back({kv, gs, g, y0, rows, t0, std::min(chunk, reach - t0)});
      }
  return out;
}

gpu::KscoreParams params(const KscoreShape& sh, const Pass& p) {
  gpu::KscoreParams pc{};
  pc.n = std::uint32_t(sh.keys);
  pc.key0 = std::uint32_t(p.t0);
  pc.keys = std::uint32_t(p.count);
  pc.kv = p.kv;
  pc.group = sh.group;
  pc.gsub0 = p.gsub0;
  pc.key_stride = std::uint32_t(key_stride(sh));
  pc.head_stride = std::uint32_t(head_stride(sh));
  pc.q_heads = sh.q_heads();
  pc.query0 = sh.query0;
  pc.causal0 = sh.causal && sh.causal_keys < sh.keys ? std::uint32_t(sh.causal_keys) : 0xffffffffu;
  pc.row0 = p.y0;
  pc.rows = p.rows;
  return pc;
}

// The kernel of one pass (g heads, the plan's Y rows and K keys per invocation)
// and its thread count.
const Kernel& score_kernel(Stream& s, const char* shader, const KscoreShape& sh,
                           const Plan& pl, const Pass& p, std::uint32_t b, KResidual res,
                           const KscoreTuning& t) {
  return s.device().kernel({.shader = shader,
                            .local_size = {t.local, 1, 1},
                            .constants = {sh.d, p.g, b, res.rank, pl.slots, pl.keys_per_invocation,
                                          pl.store_width == 4 ? 1u : 0u, res.rank && !res.tc ? res.bits : 16u,
                                          res.rank && res.arel ? 1u : 0u, res.tc ? res.n4 : 0u, res.tc ? res.n2 : 0u,
                                          res.tc ? res.n3 : 0u}});
}
Threads score_threads(const Plan& pl, const Pass& p) {
  return Threads{(p.count + pl.keys_per_invocation - 1) / pl.keys_per_invocation};
}

// The common checks of the two 1-bit scoring paths.
void check_keys_and_query(const char* fn, const Device& d, const KscoreShape& sh, const KscoreKeys& keys,
                          const KscoreQuery& query, bool need_q, const Buffer& scores) {
  const std::uint64_t kvn = std::uint64_t(sh.kv_heads) * sh.keys;
  check_buffer(fn, "bits", keys.bits, kvn * sh.words() * 4);
  check_buffer(fn, "alpha", keys.alpha, half_words_bytes(kvn));
  const std::uint64_t qh = sh.query_rows() * sh.q_heads();  // query-side heads
  check_buffer(fn, "scores", &scores, std::uint64_t(sh.queries) * sh.q_heads() * sh.keys * 4);
  const bool resid = sh.residual.any();
  const std::uint64_t cols = sh.residual.basis_cols;
  if (need_q || resid) check_query_buffer(fn, d, "q", query.q, qh * sh.d * 4);
  if (query.qmu) check_query_buffer(fn, d, "qmu", query.qmu, qh * 4);
  if (resid) {
    check_buffer(fn, "c", keys.c, half_words_bytes(sh.residual.halves(sh.keys)));
    check_query_buffer(fn, d, "basis", query.basis, std::uint64_t(sh.kv_heads) * sh.d * cols * 4);
    check_query_buffer(fn, d, "uq", query.uq, qh * cols * 4);
    check_distinct(fn, *query.uq, {keys.bits, keys.alpha, keys.c, query.q, query.qmu, query.basis, &scores});
  }
  check_distinct(fn, scores, {keys.bits, keys.alpha, keys.c, query.q, query.qmu, query.basis});
}

// uq = U_Rᵀ q' per query head of the call's query rows (all R basis columns).
void residual_query(Stream& s, const KscoreShape& sh, const KscoreQuery& query) {
  const Kernel& k = s.device().kernel({.shader = "kscore_uq",
                                       .local_size = {64, 1, 1},
                                       .constants = {sh.d}});
  const std::uint64_t qh = sh.query_rows() * sh.q_heads();
  const std::uint32_t cols = sh.residual.basis_cols;
  const gpu::KscoreQueryParams pc{sh.queries * sh.q_heads(), sh.group, cols, sh.kv_heads, sh.query0 * sh.q_heads(),
                                  0, 0, 0};
  s.dispatch(k,
             {{*query.q, 0, qh * sh.d * 4},
              {*query.basis, 0, std::uint64_t(sh.kv_heads) * sh.d * cols * 4},
              {*query.uq, 0, qh * cols * 4}},
             pc, Threads{std::uint64_t(sh.queries) * sh.q_heads() * cols});
}

// Bytes per key of bits (`bits_bytes` a row), alpha and (with a residual) the
// records of the head with the widest step and record.
std::vector<KeyBytes> key_spans(const KscoreShape& sh, std::uint64_t bits_bytes) {
  const std::uint64_t ks = key_stride(sh);
  std::vector<KeyBytes> spans{{bits_bytes * ks, bits_bytes}, {2 * ks, 2}};
  KeyBytes c{0, 0};
  for (const KResidualPlace& pl : sh.residual.heads)
    if (pl.code.rank) {
      c.step = std::max(c.step, 2 * pl.stride);
      c.last = std::max<std::uint64_t>(c.last, 2 * KResidualLayout::record_halves(pl.code));
    }
  if (c.last) spans.push_back({std::max<std::uint64_t>(c.step, 1), c.last});
  return spans;
}

// The residual of a pass's KV head (rank 0 when there is none).
KResidualPlace place_of(const KscoreShape& sh, std::uint32_t kv) {
  return sh.residual.any() ? sh.residual.heads[kv] : KResidualPlace{};
}

// Binding of a query-side buffer (its required range), or the same range of
// `stand_in` (at least that large) where the kernel reads it only to discard.
Binding query_binding(const Buffer* b, std::uint64_t bytes, const Buffer& stand_in) {
  return Binding(b ? *b : stand_in, 0, std::max<std::uint64_t>(bytes, 4));
}

// What one pass of the scoring kernels binds: the windows of the key bits
// (`bits_row` bytes a key), the alphas and the scores, the push constants, and
// the residual records (`stand_in` when the head's rank is 0).
struct PassBindings {
  Window bits, alpha, scores;
  gpu::KscoreParams pc;
  Binding c;
};
PassBindings pass_bindings(const KscoreShape& sh, const Pass& p, const KscoreKeys& keys, const KscoreQuery& query,
                           std::uint64_t bits_row, std::uint64_t align, const Buffer& stand_in) {
  PassBindings b{key_window(sh, p, bits_row, 4, align), key_window(sh, p, 2, 2, align), score_window(sh, p, align),
                 params(sh, p), Binding(stand_in, 0, 4)};
  b.pc.has_qmu = query.qmu != nullptr;
  b.pc.bits_base = std::uint32_t(b.bits.base);
  b.pc.alpha_base = std::uint32_t(b.alpha.base);
  b.pc.scores_base = std::uint32_t(b.scores.base);
  b.pc.uq_stride = sh.residual.basis_cols;
  const KResidualPlace pl = place_of(sh, p.kv);
  if (pl.code.rank) {
    const Window cw = c_window(pl, p, align);
    b.pc.c_offset = std::uint32_t(pl.offset);
    b.pc.c_stride = std::uint32_t(pl.stride);
    b.pc.c_base = std::uint32_t(cw.base);
    b.c = Binding(*keys.c, cw.offset, cw.range);
  }
  return b;
}

}  // namespace

std::uint64_t kscore_planes_bytes(const KscoreShape& shape, std::uint32_t b) {
  return shape.query_rows() * shape.q_heads() * b * shape.words() * 4;
}
std::uint64_t kscore_qconst_bytes(const KscoreShape& shape) {
  return shape.query_rows() * shape.q_heads() * sizeof(gpu::KscoreQueryConst);
}

void kscore_float(Stream& s, const KscoreShape& sh, const KscoreKeys& keys, const KscoreQuery& query, Buffer& scores,
                  const KscoreTuning& t) {
  constexpr const char* fn = "kscore_float";
  Device& d = s.device();
  check_shape(fn, sh);
  check_tuning(fn, d, t);
  check_keys_and_query(fn, d, sh, keys, query, true, scores);
  if (sh.keys == 0) return;
  const std::uint64_t align = align_of(d), qh = sh.query_rows() * sh.q_heads();
  const std::uint64_t wb = std::uint64_t(sh.words()) * 4, cols = sh.residual.any() ? sh.residual.basis_cols : 0;
  const Plan pl = plan(fn, d, sh, key_spans(sh, wb), t, kFloatShape);  // may throw: before recording anything
  if (cols) residual_query(s, sh, query);
  for (const Pass& p : pl.passes) {
    const PassBindings b = pass_bindings(sh, p, keys, query, wb, align, *query.q);
    const Kernel& k = score_kernel(s, "kscore_float", sh, pl, p, 1, place_of(sh, p.kv).code, t);
    s.dispatch(k,
               {{*keys.bits, b.bits.offset, b.bits.range}, {*keys.alpha, b.alpha.offset, b.alpha.range}, b.c,
                {*query.q, 0, qh * sh.d * 4}, query_binding(query.uq, qh * cols * 4, *query.q),
                query_binding(query.qmu, qh * 4, *query.q), {scores, b.scores.offset, b.scores.range}},
               b.pc, score_threads(pl, p));
  }
}

void kscore_tc(Stream& s, const KscoreShape& sh, const Buffer* c, const KscoreQuery& query, Buffer& scores,
               const KscoreTuning& t) {
  constexpr const char* fn = "kscore_tc";
  Device& d = s.device();
  check_shape(fn, sh);
  check_tuning(fn, d, t);
  const bool resid = sh.residual.any();
  if (!sh.residual.heads.empty() && !sh.residual.heads[0].code.tc) fail(fn, "the residual heads are not transform-coded");
  const std::uint64_t qh = sh.query_rows() * sh.q_heads(), cols = resid ? sh.residual.basis_cols : 0;
  const std::uint64_t level_bytes = std::uint64_t(sh.kv_heads) * cols * kTcLevels * 4;
  check_buffer(fn, "scores", &scores, std::uint64_t(sh.queries) * sh.q_heads() * sh.keys * 4);
  check_query_buffer(fn, d, "q", query.q, qh * sh.d * 4);
  if (query.qmu) check_query_buffer(fn, d, "qmu", query.qmu, qh * 4);
  if (resid) {
    check_buffer(fn, "c", c, half_words_bytes(sh.residual.halves(sh.keys)));
    check_query_buffer(fn, d, "basis", query.basis, std::uint64_t(sh.kv_heads) * sh.d * cols * 4);
    check_query_buffer(fn, d, "uq", query.uq, qh * cols * 4);
    check_distinct(fn, *query.uq, {c, query.q, query.qmu, query.basis, &scores});
    if (query.levels)
      check_query_buffer(fn, d, "levels", query.levels, level_bytes);
  }
  check_distinct(fn, scores, {c, query.q, query.qmu, query.basis, query.levels});
  if (sh.keys == 0) return;
  const std::uint64_t align = align_of(d);
  // Only the records are key-side: their span per key, as key_spans counts it.
  std::vector<KeyBytes> spans = key_spans(sh, 0);
  spans.erase(spans.begin(), spans.begin() + 2);
  const Plan pl = plan(fn, d, sh, spans, t, kFloatShape);  // may throw: before recording anything
  if (cols) residual_query(s, sh, query);
  for (const Pass& p : pl.passes) {
    const Window sw = score_window(sh, p, align);
    gpu::KscoreParams pc = params(sh, p);
    pc.has_qmu = query.qmu != nullptr;
    pc.scores_base = std::uint32_t(sw.base);
    pc.uq_stride = sh.residual.basis_cols;
    Binding cb(*query.q, 0, 4);
    const KResidualPlace place = place_of(sh, p.kv);
    if (place.code.rank) {
      const Window cw = c_window(place, p, align);
      pc.c_offset = std::uint32_t(place.offset);
      pc.c_stride = std::uint32_t(place.stride);
      pc.c_base = std::uint32_t(cw.base);
      cb = Binding(*c, cw.offset, cw.range);
    }
    const bool lv = query.levels && place.code.rank;
    const Kernel& k = score_kernel(s, lv ? "kscore_tc_lv" : "kscore_tc", sh, pl, p, 1, place.code, t);
    const Binding ub = query_binding(query.uq, qh * cols * 4, *query.q), mb = query_binding(query.qmu, qh * 4, *query.q);
    if (lv)
      s.dispatch(k, {cb, ub, mb, {scores, sw.offset, sw.range}, {*query.levels, 0, level_bytes}}, pc, score_threads(pl, p));
    else
      s.dispatch(k, {cb, ub, mb, {scores, sw.offset, sw.range}}, pc, score_threads(pl, p));
  }
}

void kscore_quantize_query(Stream& s, const KscoreShape& sh, std::uint32_t b, const Buffer& q, Buffer& planes,
                           Buffer& qconst) {
  constexpr const char* fn = "kscore_quantize_query";
  Device& d = s.device();
  check_shape(fn, sh);
  if (b != 1 && b != 4 && b != 8) fail(fn, "b = " + std::to_string(b) + ", expected 1, 4 or 8");
  const std::uint64_t qh = sh.query_rows() * sh.q_heads(), heads = std::uint64_t(sh.queries) * sh.q_heads();
  check_query_buffer(fn, d, "q", &q, qh * sh.d * 4);
  check_query_buffer(fn, d, "planes", &planes, kscore_planes_bytes(sh, b));
  check_query_buffer(fn, d, "qconst", &qconst, kscore_qconst_bytes(sh));
  check_distinct(fn, planes, {&q, &qconst});
  check_distinct(fn, qconst, {&q});
  const std::uint32_t local = 64;  // query heads per workgroup, one per invocation
  if (heads > std::uint64_t(d.info().max_workgroup_count[0]) * local)
    fail(fn, std::to_string(heads) + " query heads: more than maxComputeWorkGroupCount[0] * 64");
  const Kernel& k = d.kernel({.shader = "kscore_quantize",
                              .local_size = {local, 1, 1},
                              .constants = {sh.d, b}});
  const gpu::KscoreQueryParams pc{std::uint32_t(heads), sh.group, 0, sh.kv_heads, sh.query0 * sh.q_heads(), 0, 0, 0};
  s.dispatch(k, {{q, 0, qh * sh.d * 4}, {planes, 0, kscore_planes_bytes(sh, b)}, {qconst, 0, kscore_qconst_bytes(sh)}},
             pc, Threads{heads});
}

namespace {
void check_quantized(const char* fn, const Device& d, const KscoreShape& sh, const KscoreQuantized& qq) {
  if (qq.bits != 1 && qq.bits != 4 && qq.bits != 8)
    fail(fn, "quantized query of b = " + std::to_string(qq.bits) + ", expected 1, 4 or 8");
  check_query_buffer(fn, d, "planes", qq.planes, kscore_planes_bytes(sh, qq.bits));
  check_query_buffer(fn, d, "qconst", qq.qconst, kscore_qconst_bytes(sh));
}
}  // namespace

void kscore_popcount(Stream& s, const KscoreShape& sh, const KscoreKeys& keys, const KscoreQuery& query,
                     const KscoreQuantized& qq, Buffer& scores, const KscoreTuning& t) {
  constexpr const char* fn = "kscore_popcount";
  Device& d = s.device();
  check_shape(fn, sh);
  check_tuning(fn, d, t);
  check_keys_and_query(fn, d, sh, keys, query, false, scores);
  check_quantized(fn, d, sh, qq);
  check_distinct(fn, scores, {qq.planes, qq.qconst});
  if (sh.keys == 0) return;
  const std::uint64_t align = align_of(d), qh = sh.query_rows() * sh.q_heads();
  const std::uint64_t wb = std::uint64_t(sh.words()) * 4, cols = sh.residual.any() ? sh.residual.basis_cols : 0;
  const Plan pl = plan(fn, d, sh, key_spans(sh, wb), t, popcount_shape(qq.bits));  // may throw: before recording anything
  if (cols) residual_query(s, sh, query);
  for (const Pass& p : pl.passes) {
    const PassBindings b = pass_bindings(sh, p, keys, query, wb, align, *qq.planes);
    const Kernel& k = score_kernel(s, "kscore_popcount", sh, pl, p, qq.bits, place_of(sh, p.kv).code, t);
    s.dispatch(k,
               {{*keys.bits, b.bits.offset, b.bits.range}, {*qq.planes, 0, kscore_planes_bytes(sh, qq.bits)},
                {*qq.qconst, 0, kscore_qconst_bytes(sh)}, {*keys.alpha, b.alpha.offset, b.alpha.range}, b.c,
                query_binding(query.uq, qh * cols * 4, *qq.planes),
                query_binding(query.qmu, qh * 4, *qq.planes), {scores, b.scores.offset, b.scores.range}},
               b.pc, score_threads(pl, p));
  }
}

void kscore_popcount_sums(Stream& s, const KscoreShape& sh, const Buffer& bits, const KscoreQuantized& qq,
                          Buffer& sums, const KscoreTuning& t) {
  constexpr const char* fn = "kscore_popcount_sums";
  Device& d = s.device();
  check_shape(fn, sh);
  check_tuning(fn, d, t);
  check_buffer(fn, "bits", &bits, std::uint64_t(sh.kv_heads) * sh.keys * sh.words() * 4);
  check_buffer(fn, "sums", &sums, std::uint64_t(sh.queries) * sh.q_heads() * sh.keys * 4);
  check_quantized(fn, d, sh, qq);
  check_distinct(fn, sums, {&bits, qq.planes, qq.qconst});
  if (sh.keys == 0) return;
  const std::uint64_t align = align_of(d), wb = std::uint64_t(sh.words()) * 4;
  const Plan pl = plan(fn, d, sh, {{wb * key_stride(sh), wb}}, t, popcount_shape(qq.bits));
  for (const Pass& p : pl.passes) {
    const Window bw = key_window(sh, p, wb, 4, align), sw = score_window(sh, p, align);
    gpu::KscoreParams pc = params(sh, p);
    pc.bits_base = std::uint32_t(bw.base);
    pc.scores_base = std::uint32_t(sw.base);
    const Kernel& k = score_kernel(s, "kscore_popcount_sums", sh, pl, p, qq.bits, KResidual{}, t);
    s.dispatch(k,
               {{bits, bw.offset, bw.range}, {*qq.planes, 0, kscore_planes_bytes(sh, qq.bits)},
                {*qq.qconst, 0, kscore_qconst_bytes(sh)}, {sums, sw.offset, sw.range}},
               pc, score_threads(pl, p));
  }
}

void kscore_f16(Stream& s, const KscoreShape& sh, const Buffer& k, const Buffer& q, Buffer& scores,
                const KscoreTuning& t) {
  constexpr const char* fn = "kscore_f16";
  Device& d = s.device();
  check_shape(fn, sh);
  check_tuning(fn, d, t);
  const std::uint64_t rb = std::uint64_t((sh.d + 1) / 2) * 4, qh = sh.query_rows() * sh.q_heads();
  check_buffer(fn, "K", &k, std::uint64_t(sh.kv_heads) * sh.keys * rb);
  check_query_buffer(fn, d, "q", &q, qh * sh.d * 4);
  check_buffer(fn, "scores", &scores, std::uint64_t(sh.queries) * sh.q_heads() * sh.keys * 4);
  check_distinct(fn, scores, {&k, &q});
  if (sh.keys == 0) return;
  const std::uint64_t align = align_of(d);
  const Plan pl = plan(fn, d, sh, {{rb * key_stride(sh), rb}}, t, kF16Shape);
  for (const Pass& p : pl.passes) {
    const Window kw = key_window(sh, p, rb, 4, align), sw = score_window(sh, p, align);
    gpu::KscoreParams pc = params(sh, p);
    pc.bits_base = std::uint32_t(kw.base);
    pc.scores_base = std::uint32_t(sw.base);
    const Kernel& kern = score_kernel(s, "kscore_f16", sh, pl, p, 1, KResidual{}, t);
    s.dispatch(kern, {{k, kw.offset, kw.range}, {q, 0, qh * sh.d * 4}, {scores, sw.offset, sw.range}}, pc,
               score_threads(pl, p));
  }
}

}  // namespace vkq::kernels
