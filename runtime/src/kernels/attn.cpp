#include "vkquant/kernels/attn.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>

#include "attn.h"
#include "attn_split.hpp"
#include "checks.hpp"
#include "vkquant/error.hpp"

namespace vkq::kernels {

static_assert(sizeof(gpu::KvStoreParams) == 16);
static_assert(sizeof(gpu::AttnParams) == 32);
static_assert(sizeof(gpu::AttnCombineParams) == 16);
static_assert(sizeof(gpu::VStoreParams) == 16);
static_assert(std::uint32_t(VType::f16) == VKQ_V_F16 && std::uint32_t(VType::q8) == VKQ_V_Q8 &&
              std::uint32_t(VType::q4) == VKQ_V_Q4 && kVBlock == VKQ_V_BLOCK);

namespace {

constexpr std::uint32_t kMaxHd = 256;
using attn_split::kLocal;
constexpr std::uint64_t k2pow32 = std::uint64_t(1) << 32;

using check::fail;
void need(const char* fn, const Device& d, const char* name, const Buffer* b, std::uint64_t bytes) {
  (void)check::need(fn, d, name, b, bytes, "larger caches are not supported");
}

void check_head(const char* fn, std::uint32_t n_kv, std::uint32_t hd) {
  if (hd == 0 || hd % 2 || hd > kMaxHd)
    fail(fn, "hd = " + std::to_string(hd) + " must be even and in 2.." + std::to_string(kMaxHd));
  if (n_kv == 0) fail(fn, "n_kv must be >= 1");
}

void check_vtype(const char* fn, VType t, std::uint32_t hd) {
  if (t != VType::f16 && t != VType::q8 && t != VType::q4) fail(fn, "unknown value type");
  if (t != VType::f16 && hd % kVBlock)
    fail(fn, std::string("--vcache ") + vtype_name(t) + " needs hd to be a multiple of 32, not " + std::to_string(hd));
}

// The bindings of a value cache's first kv_len positions (scales: the codes again for fp16).
std::pair<Binding, Binding> vbindings(const char* fn, const Device& d, const VCacheView& v, std::uint32_t kv_len,
                                      std::uint32_t n_kv, std::uint32_t hd) {
  check_vtype(fn, v.type, hd);
  const Binding cb = check::need(fn, d, "vcache", v.codes, vcache_code_bytes(v.type, kv_len, n_kv, hd),
                                 "larger caches are not supported");
  if (v.type == VType::f16) return {cb, cb};
  return {cb, check::need(fn, d, "vcache scales", v.scales, vcache_scale_bytes(v.type, kv_len, n_kv, hd))};
}

}  // namespace

std::uint64_t vcache_code_bytes(VType t, std::uint32_t ctx, std::uint32_t n_kv, std::uint32_t hd) {
  return std::uint64_t(ctx) * n_kv * vtype_code_words(t, hd) * 4;
}
std::uint64_t vcache_scale_bytes(VType t, std::uint32_t ctx, std::uint32_t n_kv, std::uint32_t hd) {
  return std::uint64_t(ctx) * n_kv * vtype_scale_words(t, hd) * 4;
}

void vcache_store(Stream& s, const Buffer& src, VType type, Buffer& codes, Buffer* scales, std::uint32_t n,
                  std::uint32_t pos0, std::uint32_t n_kv, std::uint32_t hd) {
  const char* fn = "vcache_store";
  check_head(fn, n_kv, hd);
  check_vtype(fn, type, hd);
  if (type == VType::f16) return kv_store(s, src, codes, n, pos0, n_kv, hd);
  Device& d = s.device();
  const std::uint64_t rows0 = std::uint64_t(pos0) * n_kv, rows1 = (std::uint64_t(pos0) + n) * n_kv;
  const std::uint64_t cw = vtype_code_words(type, hd), sw = vtype_scale_words(type, hd);
  if (!codes) fail(fn, "codes buffer missing");
  if (!scales || !*scales) fail(fn, "scales buffer missing");
  if (codes.size() < rows1 * cw * 4 || scales->size() < rows1 * sw * 4)
    fail(fn, "cache holds " + std::to_string(std::min(codes.size() / (cw * 4), scales->size() / (sw * 4)) / n_kv) +
                 " positions, needs " + std::to_string(std::uint64_t(pos0) + n));
  if (rows1 * cw >= k2pow32) fail(fn, "cache of more than 2^32 words");
  if (n == 0) return;
  if (&src == &codes || &src == scales || &codes == scales) fail(fn, "src, codes and scales must be distinct");
  const std::uint64_t src_bytes = std::uint64_t(n) * n_kv * hd * 4;
  need(fn, d, "src", &src, src_bytes);
  const std::uint64_t align = std::max<std::uint64_t>(d.info().min_storage_buffer_offset_alignment, 4);
  const std::uint64_t coff = rows0 * cw * 4 / align * align, soff = rows0 * sw * 4 / align * align;
  if (rows1 * cw * 4 - coff > d.info().max_storage_buffer_range)
    fail(fn, "storing " + std::to_string(n) + " positions spans more than maxStorageBufferRange");
  const Kernel& k = d.kernel({.shader = "attn_vstore",
                              .local_size = {kLocal, 1, 1},
                              .constants = {hd, std::uint32_t(type)}});
  const gpu::VStoreParams p{std::uint32_t(rows1 - rows0), std::uint32_t(rows0), std::uint32_t(coff / 4),
                            std::uint32_t(soff / 4)};
  s.dispatch(k, {{src, 0, src_bytes}, {codes, coff, rows1 * cw * 4 - coff}, {*scales, soff, rows1 * sw * 4 - soff}}, p,
             Threads{rows1 - rows0});
}

std::uint64_t kv_cache_bytes(std::uint32_t ctx, std::uint32_t n_kv, std::uint32_t hd) {
  return std::uint64_t(ctx) * n_kv * hd * 2;
}

void kv_store(Stream& s, const Buffer& src, Buffer& cache, std::uint32_t n, std::uint32_t pos0, std::uint32_t n_kv,
              std::uint32_t hd) {
  const char* fn = "kv_store";
  const Device& d = s.device();
  check_head(fn, n_kv, hd);
  const std::uint64_t row_words = std::uint64_t(n_kv) * hd / 2, row_bytes = row_words * 4;
  const std::uint64_t end_bytes = (std::uint64_t(pos0) + n) * row_bytes;
  if (!cache) fail(fn, "cache buffer missing");
  if (cache.size() < end_bytes)
    fail(fn, "cache holds " + std::to_string(cache.size() / row_bytes) + " positions, needs " +
                 std::to_string(std::uint64_t(pos0) + n));
  if (end_bytes / 4 >= k2pow32) fail(fn, "cache of more than 2^32 words");
  if (n == 0) return;
  if (&src == &cache) fail(fn, "src must not be the cache");
  const std::uint64_t src_bytes = n * row_words * 8;  // f32: two floats per cache word
  need(fn, d, "src", &src, src_bytes);
  const std::uint64_t align = std::max<std::uint64_t>(d.info().min_storage_buffer_offset_alignment, 4);
  const std::uint64_t off = std::uint64_t(pos0) * row_bytes / align * align;
  if (end_bytes - off > d.info().max_storage_buffer_range)
    fail(fn, "storing " + std::to_string(n) + " positions spans more than maxStorageBufferRange");
  const Kernel& k = s.device().kernel(
      {.shader = "attn_kv_store", .local_size = {kLocal, 1, 1}});
  const gpu::KvStoreParams p{n, std::uint32_t(row_words), pos0, std::uint32_t(off / 4)};
  s.dispatch(k, {{src, 0, src_bytes}, {cache, off, end_bytes - off}}, p, Threads{n * row_words});
}

std::uint64_t attention_scratch_bytes(const Device& d, std::uint32_t n, std::uint32_t n_heads, std::uint32_t n_kv,
                                      std::uint32_t kv_len, std::uint32_t hd) {
  if (n_kv == 0 || n_heads % n_kv)
    fail("attention_scratch_bytes", "n_heads = " + std::to_string(n_heads) + " is not a multiple of n_kv = " +
                                        std::to_string(n_kv));
  return attn_split::plan(d, n, n_heads, n_kv, kv_len, hd).partial_bytes;
}

void attention(Stream& s, const Buffer& q, const Buffer& kcache, const Buffer& vcache, Buffer& out, std::uint32_t n,
               std::uint32_t pos0, std::uint32_t n_heads, std::uint32_t n_kv, std::uint32_t hd, float scale,
               Buffer* scratch) {
  attention(s, q, kcache, VCacheView{VType::f16, &vcache, nullptr}, out, n, pos0, n_heads, n_kv, hd, scale, scratch);
}

void attention(Stream& s, const Buffer& q, const Buffer& kcache, const VCacheView& v, Buffer& out, std::uint32_t n,
               std::uint32_t pos0, std::uint32_t n_heads, std::uint32_t n_kv, std::uint32_t hd, float scale,
               Buffer* scratch) {
  const char* fn = "attention";
  const Device& d = s.device();
  check_head(fn, n_kv, hd);
  if (n_heads == 0 || n_heads % n_kv)
    fail(fn, "n_heads = " + std::to_string(n_heads) + " is not a multiple of n_kv = " + std::to_string(n_kv));
  if (!std::isfinite(scale)) fail(fn, "scale must be finite");
  if (std::uint64_t(pos0) + n >= k2pow32) fail(fn, "pos0 + n exceeds 2^32");
  if (n == 0) return;
  const std::uint32_t kv_len = pos0 + n;
  const std::uint64_t act_bytes = std::uint64_t(n) * n_heads * hd * 4;
  const std::uint64_t cache_bytes = kv_cache_bytes(kv_len, n_kv, hd);
  need(fn, d, "q", &q, act_bytes);
  need(fn, d, "out", &out, act_bytes);
  need(fn, d, "kcache", &kcache, cache_bytes);
  const auto [vb, vsb] = vbindings(fn, d, v, kv_len, n_kv, hd);
  if (&out == &q || &out == &kcache || &out == v.codes || &out == v.scales) fail(fn, "out must not alias an input");

  const attn_split::Plan pl = attn_split::plan(d, n, n_heads, n_kv, kv_len, hd);
  if (pl.partial_bytes) {
    need(fn, d, "scratch (attention_scratch_bytes)", scratch, pl.partial_bytes);
    if (scratch == &out || scratch == &q || scratch == &kcache || scratch == v.codes || scratch == v.scales)
      fail(fn, "scratch must not alias another operand");
  }
  const Kernel& k = s.device().kernel({.shader = "attn_fwd",
                                       .local_size = {kLocal, 1, 1},
                                       .constants = {hd, std::uint32_t(v.type), pl.group_heads}});
  const gpu::AttnParams p{n, pos0, n_heads, n_kv, n_heads / n_kv, pl.splits, pl.split_len, scale};
  const Buffer& part = pl.partial_bytes ? *scratch : out;  // unused with one split
  const std::uint64_t part_bytes = pl.partial_bytes ? pl.partial_bytes : act_bytes;
  s.dispatch(k, {{q, 0, act_bytes}, {kcache, 0, cache_bytes}, vb, {out, 0, act_bytes}, {part, 0, part_bytes}, vsb},
             p, Threads{pl.lanes * pl.splits});
  if (pl.splits == 1) return;
  const Kernel& c = s.device().kernel({.shader = "attn_combine",
                                       .local_size = {kLocal, 1, 1}});
  const gpu::AttnCombineParams cp{n * n_heads, pl.splits, hd, 0};
  s.dispatch(c, {{*scratch, 0, pl.partial_bytes}, {out, 0, act_bytes}}, cp, Threads{std::uint64_t(n) * n_heads * hd});
}

}  // namespace vkq::kernels
