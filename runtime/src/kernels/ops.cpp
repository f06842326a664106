#include "vkquant/kernels/ops.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "ops.h"
#include "vkquant/chunk.hpp"
#include "vkquant/device.hpp"
#include "vkquant/error.hpp"

namespace vkq::kernels {

static_assert(sizeof(gpu::EmbedParams) == 32);
static_assert(sizeof(gpu::RmsnormParams) == 16);
static_assert(sizeof(gpu::RopeParams) == 32);
static_assert(sizeof(gpu::EltwiseParams) == 16);
static_assert(sizeof(gpu::MoeRouteParams) == 16);
static_assert(sizeof(gpu::MoeCombineParams) == 32);

namespace {

constexpr std::uint32_t kEltwiseLocal = 256;
constexpr std::uint32_t kEltwiseItems = 4;
constexpr std::uint32_t kMaxExperts = 256;
constexpr std::uint32_t kRouteLocal = 64;  // experts per token are shared among a workgroup

[[noreturn]] void fail(const char* fn, const std::string& what) { throw Error(std::string(fn) + ": " + what); }

void need(const char* fn, const char* name, const Buffer& b, std::uint64_t bytes) {
  if (!b) fail(fn, std::string(name) + " buffer missing");
  if (b.size() < bytes)
    fail(fn, std::string(name) + " holds " + std::to_string(b.size()) + " bytes, needs " + std::to_string(bytes));
}

// Operands bound whole must fit in one binding.
void need_whole(const char* fn, const Device& d, const char* name, const Buffer& b, std::uint64_t bytes) {
  need(fn, name, b, bytes);
  if (bytes > d.info().max_storage_buffer_range)
    fail(fn, std::string(name) + " needs " + std::to_string(bytes) + " bytes in one binding, more than " +
                 "maxStorageBufferRange " + std::to_string(d.info().max_storage_buffer_range));
}

// Rows per binding chunk: fits maxStorageBufferRange at `max_row_bytes` per
// row, and keeps every chunk offset aligned for rows of `min_row_bytes` (and
// of any multiple of it).
std::uint64_t chunk_rows(const Device& d, std::uint64_t min_row_bytes, std::uint64_t max_row_bytes) {
  const std::uint64_t align = std::max<std::uint64_t>(d.info().min_storage_buffer_offset_alignment, 4);
  const std::uint64_t granule = align / std::gcd(align, min_row_bytes);
  return rows_per_binding(d, max_row_bytes, granule);
}
std::uint64_t chunk_rows(const Device& d, std::uint64_t row_bytes) { return chunk_rows(d, row_bytes, row_bytes); }

bool is_cpu(const Device& d) { return d.info().type == VK_PHYSICAL_DEVICE_TYPE_CPU; }

const Kernel& kernel(Stream& s, const char* shader, std::array<std::uint32_t, 3> local, std::vector<std::uint32_t> constants = {}) {
  return s.device().kernel(
      {.shader = shader, .local_size = local, .constants = constants});
}

// swiglu / add share one element loop: o = f(a, b) over `count` floats.
void eltwise(Stream& s, const char* fn, const char* shader, const Buffer& a, const Buffer& b, const Buffer* o,
             std::uint64_t count) {
  need(fn, "first input", a, count * 4);
  need(fn, "second input", b, count * 4);
  if (o) need(fn, "output", *o, count * 4);
  if (count == 0) return;
  const Kernel& k = kernel(s, shader, {kEltwiseLocal, 1, 1}, {kEltwiseItems});
  for_each_chunk(count, chunk_rows(s.device(), 4), [&](std::uint64_t first, std::uint64_t n) {
    const gpu::EltwiseParams p{std::uint32_t(n), 0, 0, 0};
    const Threads th{div_up(n, kEltwiseItems)};
    if (o)
      s.dispatch(k, {{a, first * 4, n * 4}, {b, first * 4, n * 4}, {*o, first * 4, n * 4}}, p, th);
    else
      s.dispatch(k, {{a, first * 4, n * 4}, {b, first * 4, n * 4}}, p, th);
  });
}

}  // namespace

void embed(Stream& s, const Buffer& table, quant::Type type, std::uint32_t vocab, std::uint32_t dim,
           std::uint64_t row_bytes, const Buffer& ids, Buffer& out, std::uint32_t n) {
  const char* fn = "embed";
  const Device& d = s.device();
  if (vocab == 0 || dim == 0) fail(fn, "vocab and dim must be >= 1");
  const quant::TypeInfo& ti = quant::info(type);
  if (dim % ti.block)
    fail(fn, "dim = " + std::to_string(dim) + " is not a multiple of " + ti.name + "'s block of " +
                 std::to_string(ti.block) + " elements");
  if (row_bytes % 16) fail(fn, "row_bytes = " + std::to_string(row_bytes) + " is not a multiple of 16");
  const std::uint64_t data_bytes = (quant::row_bytes(type, dim) + 3) / 4 * 4;
  if (row_bytes < data_bytes)
    fail(fn, "row_bytes = " + std::to_string(row_bytes) + " is less than one row of " + std::to_string(dim) + " " +
                 ti.name + " elements (" + std::to_string(data_bytes) + " bytes)");
  need(fn, "table", table, std::uint64_t(vocab) * row_bytes);
  if (std::uint64_t(dim) * n >= (std::uint64_t(1) << 32)) fail(fn, "n * dim exceeds 2^32");
  if (n == 0) return;
  need_whole(fn, d, "ids", ids, std::uint64_t(n) * 4);
  need(fn, "out", out, std::uint64_t(n) * dim * 4);
  if (&out == &table || &out == &ids) fail(fn, "out must not alias an input");

  // An invocation writes two floats, or (block types) one group of quant.h:
  // as many blocks as fill a multiple of 16 bytes, 256 elements at most.
  const bool blocks = quant::is_block_quant(type);
  std::uint32_t per = 2;
  if (blocks) {
    per = ti.block;
    while (per < 256 && per / ti.block * ti.bytes % 16) per *= 2;
  }
  const Kernel& k = kernel(s, (std::string("ops_embed_") + ti.name).c_str(), {64, 1, 1});
  const std::uint64_t table_chunk = chunk_rows(d, row_bytes);
  for_each_chunk(n, chunk_rows(d, std::uint64_t(dim) * 4), [&](std::uint64_t t0, std::uint64_t tn) {
    for_each_chunk(vocab, table_chunk, [&](std::uint64_t r0, std::uint64_t rn) {
      const gpu::EmbedParams p{std::uint32_t(tn), std::uint32_t(t0),  dim,   std::uint32_t(row_bytes / 4),
                               std::uint32_t(r0), std::uint32_t(rn),  vocab, r0 == 0 ? 1u : 0u};
      s.dispatch(k, {{table, r0 * row_bytes, rn * row_bytes}, {ids, 0, std::uint64_t(n) * 4},
                     {out, t0 * dim * 4, tn * dim * 4}},
                 p, Threads{div_up(dim, per), tn});
    });
  });
}

void embed(Stream& s, const Buffer& table, bool is_f16, std::uint32_t vocab, std::uint32_t dim,
           std::uint64_t row_bytes, const Buffer& ids, Buffer& out, std::uint32_t n) {
  embed(s, table, is_f16 ? quant::Type::f16 : quant::Type::f32, vocab, dim, row_bytes, ids, out, n);
}

void rmsnorm(Stream& s, const Buffer& x, const Buffer& weight, Buffer& y, std::uint32_t rows, std::uint32_t d,
             float eps) {
  const char* fn = "rmsnorm";
  const Device& dev = s.device();
  if (d == 0) fail(fn, "d must be >= 1");
  if (!(eps >= 0.f) || !std::isfinite(eps)) fail(fn, "eps must be finite and >= 0");
  const std::uint64_t row_bytes = std::uint64_t(d) * 4;
  need(fn, "x", x, rows * row_bytes);
  need(fn, "y", y, rows * row_bytes);
  need_whole(fn, dev, "weight", weight, row_bytes);
  if (&y == &weight) fail(fn, "y must not alias weight");
  if (rows == 0) return;
  const std::uint32_t local = is_cpu(dev) ? 64 : 256;
  const Kernel& k = kernel(s, "ops_rmsnorm", {local, 1, 1});
  for_each_chunk(rows, chunk_rows(dev, row_bytes), [&](std::uint64_t r0, std::uint64_t rn) {
    const gpu::RmsnormParams p{std::uint32_t(rn), d, eps, 0};
    s.dispatch(k, {{x, r0 * row_bytes, rn * row_bytes}, {weight, 0, row_bytes}, {y, r0 * row_bytes, rn * row_bytes}},
               p, Threads{rn * local});
  });
}

void rope(Stream& s, Buffer& x, std::uint32_t n, std::uint32_t heads, std::uint32_t pos0,
          const RopeFreqs& rope, RopeStyle style) {
  const char* fn = "rope";
  const std::uint32_t hd = rope.hd;
  if (hd == 0 || hd % 2) fail(fn, "hd = " + std::to_string(hd) + " must be even and >= 2");
  if (heads == 0) fail(fn, "heads must be >= 1");
  if (!rope.inv_freq || !*rope.inv_freq || rope.inv_freq->size() < std::uint64_t(hd / 2) * 4)
    fail(fn, "RoPE frequency table missing or smaller than hd/2 floats");
  if (!(rope.scale > 0.f) || !std::isfinite(rope.scale)) fail(fn, "RoPE scale must be finite and > 0");
  if (std::uint64_t(pos0) + n > (std::uint64_t(1) << 32)) fail(fn, "pos0 + n exceeds 2^32");
  const std::uint64_t row_bytes = std::uint64_t(heads) * hd * 4;
  if (row_bytes >= (std::uint64_t(1) << 32)) fail(fn, "heads * hd too large");
  need(fn, "x", x, n * row_bytes);
  if (n == 0) return;
  const Kernel& k = kernel(s, "ops_rope", {32, 2, 1});
  const Binding fb(*rope.inv_freq, 0, std::uint64_t(hd / 2) * 4);
  for_each_chunk(n, chunk_rows(s.device(), row_bytes), [&](std::uint64_t t0, std::uint64_t tn) {
    const gpu::RopeParams p{std::uint32_t(tn), heads,  hd, std::uint32_t(pos0 + t0), rope.scale,
                            0,                 style == RopeStyle::neox ? 1u : 0u, 0};
    s.dispatch(k, {{x, t0 * row_bytes, tn * row_bytes}, fb}, p, Threads{hd / 2, tn});
  });
}

void swiglu(Stream& s, const Buffer& gate, const Buffer& up, Buffer& out, std::uint64_t count) {
  eltwise(s, "swiglu", "ops_swiglu", gate, up, &out, count);
}

void add(Stream& s, Buffer& x, const Buffer& y, std::uint64_t count) {
  if (&x == &y) fail("add", "x and y must be different buffers");
  eltwise(s, "add", "ops_add", x, y, nullptr, count);
}

void add_bias(Stream& s, Buffer& y, const Buffer& bias, std::uint32_t rows, std::uint32_t d) {
  const char* fn = "add_bias";
  const Device& dev = s.device();
  if (d == 0) fail(fn, "d must be >= 1");
  const std::uint64_t row_bytes = std::uint64_t(d) * 4;
  need(fn, "y", y, rows * row_bytes);
  need_whole(fn, dev, "bias", bias, row_bytes);
  if (&y == &bias) fail(fn, "y and bias must be different buffers");
  if (rows == 0) return;
  const Kernel& k =
      kernel(s, "ops_add_bias", {kEltwiseLocal, 1, 1}, {kEltwiseItems});
  for_each_chunk(rows, chunk_rows(dev, row_bytes), [&](std::uint64_t r0, std::uint64_t rn) {
    const std::uint64_t count = rn * d;
    const gpu::EltwiseParams p{std::uint32_t(count), d, 0, 0};
    s.dispatch(k, {{y, r0 * row_bytes, rn * row_bytes}, {bias, 0, row_bytes}}, p,
               Threads{div_up(count, kEltwiseItems)});
  });
}

void moe_route(Stream& s, const Buffer& logits, Buffer& ids, Buffer& weights, std::uint32_t n,
               std::uint32_t experts, std::uint32_t k, bool normalize) {
  const char* fn = "moe_route";
  const Device& d = s.device();
  if (experts == 0 || experts > kMaxExperts)
    fail(fn, "experts = " + std::to_string(experts) + " outside 1.." + std::to_string(kMaxExperts));
  if (k == 0 || k > experts) fail(fn, "k = " + std::to_string(k) + " outside 1..experts");
  if (n == 0) return;
  need_whole(fn, d, "logits", logits, std::uint64_t(n) * experts * 4);
  need_whole(fn, d, "ids", ids, std::uint64_t(n) * k * 4);
  need_whole(fn, d, "weights", weights, std::uint64_t(n) * k * 4);
  if (&ids == &weights || &ids == &logits || &weights == &logits) fail(fn, "logits, ids and weights must differ");
  const Kernel& kk = kernel(s, "ops_moe_route", {kRouteLocal, 1, 1});
  const gpu::MoeRouteParams p{n, experts, k, normalize ? 1u : 0u};
  s.dispatch(kk, {{logits, 0, std::uint64_t(n) * experts * 4}, {ids, 0, std::uint64_t(n) * k * 4},
                  {weights, 0, std::uint64_t(n) * k * 4}},
             p, Threads{std::uint64_t(n) * kRouteLocal});
}

void moe_combine(Stream& s, const Buffer& y, const Buffer& weights, Buffer& out, std::uint32_t n, std::uint32_t k,
                 std::uint32_t d, bool accumulate) {
  const char* fn = "moe_combine";
  const Device& dev = s.device();
  if (k == 0 || d == 0) fail(fn, "k and d must be >= 1");
  const std::uint64_t out_row = std::uint64_t(d) * 4, y_row = out_row * k;
  need(fn, "y", y, n * y_row);
  need(fn, "out", out, n * out_row);
  if (n == 0) return;
  need_whole(fn, dev, "weights", weights, std::uint64_t(n) * k * 4);
  if (&out == &y || &out == &weights) fail(fn, "out must not alias an input");
  const Kernel& kk = kernel(s, "ops_moe_combine", {64, 1, 1});
  for_each_chunk(n, chunk_rows(dev, out_row, y_row), [&](std::uint64_t t0, std::uint64_t tn) {
    const gpu::MoeCombineParams p{std::uint32_t(tn), std::uint32_t(t0), k, d, accumulate ? 1u : 0u, 0, 0, 0};
    s.dispatch(kk, {{y, t0 * y_row, tn * y_row}, {weights, 0, std::uint64_t(n) * k * 4}, {out, t0 * out_row, tn * out_row}},
               p, Threads{d, tn});
  });
}

}  // namespace vkq::kernels
