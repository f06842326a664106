#include "vkquant/kernels/bgemv.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "bgemv.h"
#include "vkquant/chunk.hpp"
#include "vkquant/error.hpp"
#include "vkquant/kernel.hpp"

namespace vkq::kernels {

static_assert(sizeof(gpu::BgemvParams) == 32);
static_assert(sizeof(gpu::BgemvQtParams) == 16);

// ---- host-side encoding ------------------------------------------------------

std::uint32_t bgemv_row_words(std::uint32_t in) { return std::uint32_t((div_up(in, 32) + 3) / 4 * 4); }

BinaryRows bgemv_encode(std::span<const float> w, std::uint32_t out, std::uint32_t in) {
  if (out == 0 || in == 0) throw Error("bgemv_encode: empty matrix");
  if (w.size() != std::size_t(out) * in) throw Error("bgemv_encode: weights are not out × in");
  BinaryRows r;
  r.out = out;
  r.in = in;
  r.words = bgemv_row_words(in);
  r.bits.assign(std::size_t(out) * r.words, 0u);
  r.c.resize(out);
  r.alpha.resize(out);
  for (std::uint32_t i = 0; i < out; ++i) {
    const float* row = &w[std::size_t(i) * in];
    double sum = 0;
    for (std::uint32_t j = 0; j < in; ++j) sum += row[j];
    const double c = sum / in;
    double abs_dev = 0;
    for (std::uint32_t j = 0; j < in; ++j) abs_dev += std::fabs(double(row[j]) - c);
    r.c[i] = float(c);
    r.alpha[i] = float(abs_dev / in);
    std::uint32_t* bits = &r.bits[std::size_t(i) * r.words];
    for (std::uint32_t j = 0; j < in; ++j)
      if (double(row[j]) - c >= 0) bits[j / 32] |= 1u << (j % 32);
  }
  return r;
}

// ---- variants and tuning -------------------------------------------------------

namespace {

constexpr std::uint32_t kMaxBatch = 64;

struct Tuning {
  std::uint32_t local;  // invocations per workgroup
  std::uint32_t rows;   // ROWS: rows per invocation (rows, bcast) or per subgroup pass (subgroup)
  std::uint32_t rw;     // RW: rows per workgroup (subgroup)
};

// rows and bcast measured on lavapipe (more rows per invocation amortise the
// x loads until registers run out, so ROWS × BT stays bounded, which also
// bounds the unrolled code lavapipe must compile); subgroup sized for
// 32/64-wide GPUs. bcast workgroups hold whole subgroups of the widest size.
Tuning tuning(const Device& d, GemvVariant v, std::uint32_t bt) {
  switch (v) {
    case GemvVariant::subgroup: return {128, bt <= 2 ? 2u : 1u, 16};
    case GemvVariant::bcast: return {std::max(64u, d.info().max_subgroup_size), std::max(4u, 16u / bt), 0};
    default: return {64, std::max(4u, 8u / bt), 0};
  }
}

// Batch columns per invocation: the weights are read once per tile.
std::uint32_t batch_tile(std::uint32_t batch) { return batch <= 1 ? 1 : batch <= 2 ? 2 : batch <= 4 ? 4 : 8; }

GemvVariant resolve(const Device& d, GemvVariant v) {
  if (v == GemvVariant::automatic) v = default_variant(d);
  if (!variant_supported(d, v))
    throw Error(std::string("bgemv: variant ") + variant_name(v) +
                " needs subgroup operations in compute shaders that " + d.info().name + " lacks");
  return v;
}

// Weight rows per binding: within the limit, and a multiple of the granule
// that keeps every chunk offset aligned.
std::uint64_t chunk_rows(const Device& d, std::uint64_t row_bytes, const GemvOptions& o, const char* what) {
  const std::uint64_t align = std::max<std::uint64_t>(d.info().min_storage_buffer_offset_alignment, 16);
  const std::uint64_t granule = align / std::gcd(align, row_bytes);
  std::uint64_t limit = d.binding_chunk_bytes();
  if (o.max_binding_bytes) limit = std::min(limit, o.max_binding_bytes);
  const std::uint64_t rows = limit / row_bytes / granule * granule;
  if (rows == 0)
    throw Error(std::string(what) + ": " + std::to_string(granule) + " weight rows of " + std::to_string(row_bytes) +
                " bytes exceed one binding (" + std::to_string(limit) + " bytes)");
  return rows;
}

void check_common(const Device& d, const char* what, std::uint32_t out, std::uint32_t in, std::uint32_t batch,
                  std::uint64_t weight_bytes, const Buffer& weights, const Buffer& x, const Buffer& y) {
  const std::string w(what);
  if (out == 0 || in == 0) throw Error(w + ": out and in must be >= 1");
  if (batch == 0 || batch > kMaxBatch) throw Error(w + ": batch " + std::to_string(batch) + " outside 1..64");
  if (weights.size() < weight_bytes) throw Error(w + ": weight buffer smaller than out × row words");
  const std::uint64_t xb = std::uint64_t(batch) * in * 4, yb = std::uint64_t(batch) * out * 4;
  if (x.size() < xb) throw Error(w + ": x buffer smaller than batch × in floats");
  if (y.size() < yb) throw Error(w + ": y buffer smaller than batch × out floats");
  if (xb > d.info().max_storage_buffer_range || yb > d.info().max_storage_buffer_range)
    throw Error(w + ": x or y exceeds maxStorageBufferRange");
}

// Groups in x for the row-walking variants, whole workgroups per RW rows for subgroup.
Threads threads(GemvVariant v, const Tuning& t, std::uint64_t rows, std::uint64_t tiles) {
  return v == GemvVariant::subgroup ? Threads{div_up(rows, t.rw) * t.local, tiles}
                                    : Threads{div_up(rows, t.rows), tiles};
}

}  // namespace

const char* variant_name(GemvVariant v) {
  switch (v) {
    case GemvVariant::automatic: return "automatic";
    case GemvVariant::rows: return "rows";
    case GemvVariant::bcast: return "bcast";
    case GemvVariant::subgroup: return "subgroup";
  }
  return "?";
}

GemvVariant default_variant(const Device& device) {
  if (device.info().type == VK_PHYSICAL_DEVICE_TYPE_CPU)
    return variant_supported(device, GemvVariant::bcast) ? GemvVariant::bcast : GemvVariant::rows;
  return variant_supported(device, GemvVariant::subgroup) ? GemvVariant::subgroup : GemvVariant::rows;
}

bool variant_supported(const Device& device, GemvVariant v) {
  VkSubgroupFeatureFlags need = VK_SUBGROUP_FEATURE_BASIC_BIT;
  if (v == GemvVariant::subgroup) need |= VK_SUBGROUP_FEATURE_ARITHMETIC_BIT;
  else if (v == GemvVariant::bcast) need |= VK_SUBGROUP_FEATURE_BALLOT_BIT;
  else return v == GemvVariant::rows;
  const DeviceInfo& i = device.info();
  return (i.subgroup_ops & need) == need && (i.subgroup_stages & VK_SHADER_STAGE_COMPUTE_BIT);
}

std::uint64_t bgemv_scratch_bytes(const BinaryLinear& w, std::uint32_t batch) {
  return std::uint64_t(batch) * w.rank * 4;
}

void bgemv(Stream& s, const BinaryLinear& w, const Buffer& x, Buffer& y, std::uint32_t batch, Buffer* scratch,
           const GemvOptions& options) {
  Device& d = s.device();
  if (!w.bits || !w.c || !w.alpha) throw Error("bgemv: bits, c and alpha buffers are required");
  if (w.rank > 0 && (!w.p || !w.q)) throw Error("bgemv: rank > 0 needs the P and Q buffers");
  const std::uint32_t words = bgemv_row_words(w.in);
  check_common(d, "bgemv", w.out, w.in, batch, std::uint64_t(w.out) * words * 4, *w.bits, x, y);
  const std::uint64_t vec_bytes = std::uint64_t(w.out) * 4, p_bytes = vec_bytes * w.rank,
                      q_bytes = std::uint64_t(w.in) * w.rank * 4;
  if (w.c->size() < vec_bytes || w.alpha->size() < vec_bytes)
    throw Error("bgemv: c or alpha holds fewer than out floats");
  if (w.rank > 0 && (w.p->size() < p_bytes || w.q->size() < q_bytes))
    throw Error("bgemv: P must hold out × rank and Q in × rank floats");
  if (std::max(p_bytes, q_bytes) > d.info().max_storage_buffer_range)
    throw Error("bgemv: P or Q exceeds maxStorageBufferRange");
  const std::uint64_t t_bytes = bgemv_scratch_bytes(w, batch);
  if (t_bytes > 0 && (!scratch || scratch->size() < t_bytes))
    throw Error("bgemv: scratch buffer needs " + std::to_string(t_bytes) + " bytes");
  const GemvVariant v = resolve(d, options.variant);
  const std::uint64_t row_bytes = std::uint64_t(words) * 4;
  const std::uint64_t rows_per_chunk = chunk_rows(d, row_bytes, options, "bgemv");

  const std::uint64_t x_bytes = std::uint64_t(batch) * w.in * 4, y_bytes = std::uint64_t(batch) * w.out * 4;
  if (w.rank > 0) {
    const Kernel& k = d.kernel({.shader = "bgemv_qt", .local_size = {64, 1, 1}});
    const gpu::BgemvQtParams pp{w.in, batch, w.rank, 0};
    s.dispatch(k, {{x, 0, x_bytes}, {*w.q, 0, q_bytes}, {*scratch, 0, t_bytes}}, pp, Threads{std::uint64_t(batch) * 64});
  }
  const std::uint32_t bt = batch_tile(batch);
  const Tuning t = tuning(d, v, bt);
  const Kernel& k = d.kernel({.shader = std::string("bgemv_") + variant_name(v), .local_size = {t.local, 1, 1},
                              .constants = {t.rows, bt, w.in % 4 == 0 ? 1u : 0u, t.rw}});
  // Without a residual, P and t are never read: bind c in their place.
  const Binding pb = w.rank ? Binding(*w.p, 0, p_bytes) : Binding(*w.c, 0, vec_bytes);
  const Binding tb = w.rank ? Binding(*scratch, 0, t_bytes) : Binding(*w.c, 0, vec_bytes);
  const std::uint64_t tiles = div_up(batch, bt);
  for_each_chunk(w.out, rows_per_chunk, [&](std::uint64_t first, std::uint64_t rows) {
    const gpu::BgemvParams pc{std::uint32_t(rows), std::uint32_t(first), w.in, words, batch, w.out, w.rank, 0};
    s.dispatch(k,
               {{*w.bits, first * row_bytes, rows * row_bytes}, {x, 0, x_bytes}, {*w.c, 0, vec_bytes},
                {*w.alpha, 0, vec_bytes}, pb, tb, {y, 0, y_bytes}},
               pc, threads(v, t, rows, tiles));
  });
}

}  // namespace vkq::kernels
