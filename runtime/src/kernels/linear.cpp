#include "vkquant/kernels/linear.hpp"

#include <algorithm>
#include <cstring>
#include <string>

#include "linear.h"
#include "vkquant/error.hpp"
#include "vkquant/half.hpp"
#include "vkquant/kernel.hpp"
#include "vkquant/quant.hpp"

namespace vkq::kernels {

static_assert(sizeof(gpu::LinearParams) == 64);

// ---- host-side packing -----------------------------------------------------------

const char* weight_type_name(WeightType t) { return quant::info(t).name; }

namespace {

bool known(WeightType t) {
  for (const quant::TypeInfo& i : quant::types())
    if (i.type == t) return true;
  return false;
}

// quant::row_bytes(t, in), with the caller's name on a bad `in`.
std::uint64_t stored_row_bytes(std::uint32_t in, WeightType t, const char* what) {
  if (!known(t)) throw Error(std::string(what) + ": unknown weight type " + std::to_string(std::uint32_t(t)));
  const quant::TypeInfo& i = quant::info(t);
  if (in == 0 || in % i.block)
    throw Error(std::string(what) + ": in = " + std::to_string(in) + " is not a positive multiple of " + i.name +
                "'s block of " + std::to_string(i.block) + " elements");
  return quant::row_bytes(t, in);
}

std::uint64_t pad16(std::uint64_t bytes) { return (bytes + 15) / 16 * 16; }

}  // namespace

std::uint64_t linear_row_bytes(std::uint32_t in, WeightType t) {
  return pad16(stored_row_bytes(in, t, "linear_row_bytes"));
}

std::vector<std::uint32_t> linear_pack(std::span<const float> w, std::uint32_t out, std::uint32_t in, WeightType t) {
  if (out == 0 || in == 0) throw Error("linear_pack: empty matrix");
  if (w.size() != std::size_t(out) * in) throw Error("linear_pack: weights are not out × in");
  const std::uint64_t stored = stored_row_bytes(in, t, "linear_pack");
  const std::size_t words = pad16(stored) / 4;
  std::vector<std::uint32_t> packed(out * words, 0u);
  for (std::size_t i = 0; i < out; ++i) {
    const float* row = &w[i * in];
    std::uint32_t* dst = &packed[i * words];
    if (t == WeightType::f32) {
      std::memcpy(dst, row, std::size_t(in) * 4);
    } else if (t == WeightType::f16) {
      for (std::uint32_t j = 0; j < in; ++j) dst[j / 2] |= std::uint32_t(to_half(row[j])) << (16 * (j % 2));
    } else {
      quant::quantize(t, std::span(row, in), std::as_writable_bytes(std::span(dst, words)).first(stored));
    }
  }
  return packed;
}

std::vector<std::uint32_t> linear_pack_raw(std::span<const std::byte> rows, std::uint32_t out, std::uint32_t in,
                                           WeightType t) {
  if (out == 0) throw Error("linear_pack_raw: empty matrix");
  const std::uint64_t stored = stored_row_bytes(in, t, "linear_pack_raw");
  if (rows.size() != out * stored)
    throw Error("linear_pack_raw: " + std::to_string(rows.size()) + " bytes are not " + std::to_string(out) +
                " rows of " + std::to_string(stored) + " bytes (" + weight_type_name(t) + ")");
  const std::size_t words = pad16(stored) / 4;
  std::vector<std::uint32_t> packed(out * words, 0u);
  for (std::size_t i = 0; i < out; ++i) std::memcpy(&packed[i * words], &rows[i * stored], stored);
  return packed;
}

// ---- variants and tuning -------------------------------------------------------

const char* linear_variant_name(LinearVariant v) {
  switch (v) {
    case LinearVariant::automatic: return "automatic";
    case LinearVariant::rows: return "rows";
    case LinearVariant::rows_shared_x: return "rows_shared_x";
    case LinearVariant::subgroup: return "subgroup";
    case LinearVariant::tiled: return "tiled";
  }
  return "?";
}

bool linear_variant_supported(const Device& device, LinearVariant v) {
  if (v == LinearVariant::rows || v == LinearVariant::tiled) return true;
  const DeviceInfo& i = device.info();
  const bool compute = i.subgroup_stages & VK_SHADER_STAGE_COMPUTE_BIT;
  if (v == LinearVariant::rows_shared_x) {
    // The smallest subgroup the driver may choose (Vulkan 1.3's
    // minSubgroupSize; subgroupSize before) must hold the 8 lanes of a block
    // of x, and every subgroup must be full (computeFullSubgroups): the
    // broadcasts read lanes 0-7.
    const VkSubgroupFeatureFlags need = VK_SUBGROUP_FEATURE_BASIC_BIT | VK_SUBGROUP_FEATURE_BALLOT_BIT;
    return (i.subgroup_ops & need) == need && compute && i.min_subgroup_size >= 8 && i.subgroup_size_control;
  }
  if (v != LinearVariant::subgroup) return false;
  const VkSubgroupFeatureFlags need = VK_SUBGROUP_FEATURE_BASIC_BIT | VK_SUBGROUP_FEATURE_ARITHMETIC_BIT;
  return (i.subgroup_ops & need) == need && compute;
}

namespace {

constexpr std::uint32_t kTiledMinBatch = 32;  // GPUs: from here the shared-memory GEMM reads the weights least
constexpr std::uint32_t kTiledLocal = 16, kTiledTm = 4, kTiledTn = 4;
constexpr std::uint32_t kTiledBm = kTiledLocal * kTiledTm, kTiledBn = kTiledLocal * kTiledTn;

}  // namespace

// fp32 / fp16 / bf16 rows: what the tiled GEMM stages as whole columns and
// rows_shared_x reads a block at a time; block types have neither form.
bool float_weights(WeightType t) { return !quant::is_block_quant(t); }

LinearVariant linear_default_variant(const Device& device, std::uint32_t batch, bool id, WeightType t) {
  if (device.info().type == VK_PHYSICAL_DEVICE_TYPE_CPU)
    return float_weights(t) && linear_variant_supported(device, LinearVariant::rows_shared_x)
               ? LinearVariant::rows_shared_x
               : LinearVariant::rows;
  if (!id && batch >= kTiledMinBatch && float_weights(t)) return LinearVariant::tiled;
  return linear_variant_supported(device, LinearVariant::subgroup) ? LinearVariant::subgroup : LinearVariant::rows;
}

namespace {

struct Tuning {
  std::uint32_t local;  // invocations per workgroup
  std::uint32_t rows;   // ROWS: rows per invocation (rows) or per subgroup pass (subgroup)
  std::uint32_t bt;     // BT: batch rows (slots) per weight read
  std::uint32_t rw;     // RW: rows per workgroup (subgroup)
};

// Batch rows per weight read: powers of two up to `cap`.
std::uint32_t batch_tile(std::uint64_t batch, std::uint32_t cap) {
  std::uint32_t bt = 1;
  while (bt < cap && bt < batch) bt *= 2;
  return bt;
}

// Block types (linear.comp, WQUANT), per 256-element group of a row:
// rows: an invocation loads BT batch rows of x once, then decodes its ROWS
// rows one after another against them in a loop that is not unrolled. On
// lavapipe every load whose address is not provably uniform is a loop over
// the lanes, x's too, so x is the cost ROWS amortises: decode ran at ~0.7x
// the read roofline with ROWS = 16 against ~0.45x with 4 (2048×4096 q4_k,
// CPU time), and ~1.0x with x taken away. The code grows with BT × 256
// unrolled multiply-adds and the x kept for them: lavapipe spent ~1.6 s
// compiling BT = 1, ~4 s BT = 2, ~14 s BT = 4 and ~60 s BT = 8, so CPU
// devices stop at BT = 2 (prefill then does about as many multiply-adds per
// second as the f16 kernel's 8 × 8 tiles). Small workgroups keep enough of
// them for every core.
// subgroup (GPUs): lanes stride over the groups, x is loaded per 32-column
// slice and ROWS rows are unrolled against it (a lane holds 32 floats of x
// per batch row), so ROWS × BT stays small.
Tuning quant_tuning(const Device& d, LinearVariant v, std::uint64_t batch) {
  const bool cpu = d.info().type == VK_PHYSICAL_DEVICE_TYPE_CPU;
  const std::uint32_t bt = batch_tile(batch, cpu ? 2 : 4);
  if (v == LinearVariant::subgroup) return {128, 2, bt, 16};
  return {16, cpu ? 16u : 4u, bt, 0};
}

// rows on CPU devices: lavapipe loads storage buffers lane by lane, so the
// cost is the number of loads, ROWS weight blocks and BT (f16: 2 BT) x blocks
// per step for ROWS × BT × (4 or 8) FMAs: 8 × 8 tiles measured 2x faster than
// 2 × 8 on lavapipe for prefill (16 × 16 and 32 × 32 a little faster still,
// but lavapipe spends 10 s to minutes compiling each such pipeline), and small
// workgroups keep enough of them for every core. Decode stays at 4 rows
// (bound by streaming the weights). rows_shared_x, the CPU default for these
// types, keeps the tiles: its x block costs one load per lane instead of
// one per lane per word, so the weights' loads are what is left (4096² f16
// on lavapipe: prefill 13.3 -> 22.3 GOP/s, decode 1.2x; docs/bench.md).
// rows elsewhere (GPUs without subgroup arithmetic) keeps ROWS × BT
// register-resident. subgroup: sized for 32/64-wide GPUs.
Tuning tuning(const Device& d, LinearVariant v, std::uint64_t batch, WeightType type) {
  if (quant::is_block_quant(type)) return quant_tuning(d, v, batch);
  if (v == LinearVariant::subgroup) {
    const std::uint32_t bt = batch_tile(batch, 8);
    return {128, bt <= 2 ? 2u : 1u, bt, 16};
  }
  if (d.info().type == VK_PHYSICAL_DEVICE_TYPE_CPU) {
    const std::uint32_t bt = batch_tile(batch, 8);
    if (bt == 1) return {64, 4, 1, 0};
    return {16, 8, bt, 0};
  }
  const std::uint32_t bt = batch_tile(batch, 8);
  return {64, bt == 1 ? 4u : bt <= 4 ? 4u : 2u, bt, 0};
}

LinearVariant resolve(const Device& d, LinearVariant v, std::uint64_t batch, bool id, WeightType t, const char* what) {
  if (v == LinearVariant::automatic)
    v = linear_default_variant(d, std::uint32_t(std::min<std::uint64_t>(batch, ~0u)), id, t);
  if (id && v == LinearVariant::tiled) throw Error(std::string(what) + ": the tiled variant has no linear_id form");
  if (v == LinearVariant::tiled && !float_weights(t))
    throw Error(std::string(what) + ": the tiled variant reads f32, f16 or bf16 weights, not " + weight_type_name(t));
  if (v == LinearVariant::rows_shared_x && !float_weights(t))
    throw Error(std::string(what) + ": the rows_shared_x variant reads f32, f16 or bf16 weights, not " +
                weight_type_name(t));
  if (!linear_variant_supported(d, v))
    throw Error(std::string(what) + ": variant " + linear_variant_name(v) +
                (v == LinearVariant::rows_shared_x ? " needs subgroup ballot in compute shaders and subgroups of >= 8 lanes"
                                                   : " needs subgroup arithmetic in compute shaders") +
                ", which " + d.info().name + " lacks");
  return v;
}

// A byte range [start, start + bytes) of a buffer bound from `start` aligned
// down to minStorageBufferOffsetAlignment; `off` locates `start` in the
// binding in units of `unit` bytes.
struct Window {
  std::uint64_t base, range;
  std::uint32_t off;
};

class Binder {
 public:
  Binder(const Device& d, const LinearOptions& o, const char* what) : what_(what) {
    align_ = std::max<std::uint64_t>(d.info().min_storage_buffer_offset_alignment, 1);
    limit_ = d.binding_chunk_bytes();
    if (o.max_binding_bytes) limit_ = std::min(limit_, o.max_binding_bytes);
  }
  // Bytes a window of `unit`-aligned data may hold so that it fits in one
  // binding whatever its start.
  std::uint64_t usable(std::uint64_t unit, std::uint64_t item_bytes) const {
    const std::uint64_t slack = align_ > unit ? align_ - unit : 0;
    const std::uint64_t u = limit_ > slack ? limit_ - slack : 0;
    if (u < item_bytes)
      throw Error(std::string(what_) + ": one item of " + std::to_string(item_bytes) + " bytes does not fit in a binding of " +
                  std::to_string(limit_) + " bytes (offset alignment " + std::to_string(align_) + ")");
    return u;
  }
  // Items of `item_bytes` per window (at least 1).
  std::uint64_t per_window(std::uint64_t unit, std::uint64_t item_bytes) const {
    return usable(unit, item_bytes) / item_bytes;
  }
  Window window(std::uint64_t start, std::uint64_t bytes, std::uint64_t unit) const {
    const std::uint64_t base = start / align_ * align_;
    return {base, start - base + bytes, std::uint32_t((start - base) / unit)};
  }

 private:
  const char* what_;
  std::uint64_t align_ = 1, limit_ = 0;
};

const Kernel& get_kernel(Device& d, const std::string& name, LinearVariant v, const Tuning& t, bool xvec) {
  if (v == LinearVariant::tiled)
    return d.kernel({.shader = name, .local_size = {kTiledLocal, kTiledLocal, 1}, .constants = {kTiledTm, kTiledTn, xvec ? 1u : 0u}});
  return d.kernel({.shader = name, .local_size = {t.local, 1, 1}, .constants = {t.rows, t.bt, xvec ? 1u : 0u, t.rw},
                   .full_subgroups = v == LinearVariant::rows_shared_x});
}

// Invocations in x for `rows` weight rows.
std::uint64_t row_threads(LinearVariant v, const Tuning& t, std::uint64_t rows) {
  if (v == LinearVariant::subgroup) return div_up(rows, t.rw) * t.local;
  if (v == LinearVariant::tiled) return div_up(rows, kTiledBn) * kTiledLocal;
  return div_up(rows, t.rows);
}

void check_weight(const LinearWeight& w, const char* what) {
  const std::string s(what);
  if (!w.w) throw Error(s + ": no weight buffer");
  if (w.out == 0 || w.in == 0 || w.experts == 0) throw Error(s + ": out, in and experts must be >= 1");
  const std::uint64_t need = std::uint64_t(w.experts) * w.out * pad16(stored_row_bytes(w.in, w.type, what));
  if (w.w->size() < need)
    throw Error(s + ": weight buffer holds " + std::to_string(w.w->size()) + " bytes, experts × out × row bytes need " +
                std::to_string(need));
}

// The block-type kernels read x as vec4s: `in` is a multiple of 32 and every
// window starts at a multiple of 128 bytes, so x rows always start on 16.
void need_xvec(const LinearWeight& w, bool xvec, const char* what) {
  if (quant::is_block_quant(w.type) && !xvec)
    throw Error(std::string(what) + ": internal: an x window of " + weight_type_name(w.type) +
                " weights does not start on 16 bytes");
}

}  // namespace

// ---- linear -------------------------------------------------------------------------

void linear(Stream& s, const LinearWeight& w, const Buffer& x, Buffer& y, std::uint32_t batch, bool accumulate,
            const LinearOptions& o) {
  Device& d = s.device();
  check_weight(w, "linear");
  if (w.experts != 1) throw Error("linear: a bank of " + std::to_string(w.experts) + " experts needs linear_id");
  if (batch == 0) throw Error("linear: batch must be >= 1");
  if (x.size() < std::uint64_t(batch) * w.in * 4) throw Error("linear: x buffer smaller than batch × in floats");
  if (y.size() < std::uint64_t(batch) * w.out * 4) throw Error("linear: y buffer smaller than batch × out floats");
  const LinearVariant v = resolve(d, o.variant, batch, false, w.type, "linear");
  const Tuning t = tuning(d, v, batch, w.type);
  const std::string name = std::string("linear_") + linear_variant_name(v) + "_" + weight_type_name(w.type);

  const Binder bind(d, o, "linear");
  const std::uint64_t row_bytes = linear_row_bytes(w.in, w.type);
  const std::uint64_t rows_per = std::min<std::uint64_t>(bind.per_window(16, row_bytes), w.out);
  // Batch windows keep x and y rows within a binding; whole batch tiles where possible.
  const std::uint64_t tile = v == LinearVariant::tiled ? kTiledBm : t.bt;
  std::uint64_t batch_per = bind.per_window(4, std::uint64_t(std::max(w.in, w.out)) * 4);
  if (batch_per >= tile) batch_per = batch_per / tile * tile;

  for (std::uint64_t b0 = 0; b0 < batch; b0 += batch_per) {
    const std::uint64_t nb = std::min<std::uint64_t>(batch_per, batch - b0);
    const Window xw = bind.window(b0 * w.in * 4, nb * w.in * 4, 4);
    const Window yw = bind.window(b0 * w.out * 4, nb * w.out * 4, 4);
    const bool xvec = w.in % 4 == 0 && xw.off % 4 == 0;
    need_xvec(w, xvec, "linear");
    const Kernel& k = get_kernel(d, name, v, t, xvec);
    const std::uint64_t groups_y =
        v == LinearVariant::tiled ? div_up(nb, kTiledBm) * kTiledLocal : div_up(nb, t.bt);
    for (std::uint64_t r0 = 0; r0 < w.out; r0 += rows_per) {
      const std::uint64_t nr = std::min<std::uint64_t>(rows_per, w.out - r0);
      const Window ww = bind.window(r0 * row_bytes, nr * row_bytes, 16);
      gpu::LinearParams pc{};
      pc.rows = std::uint32_t(nr);
      pc.row0 = std::uint32_t(r0);
      pc.cols = w.in;
      pc.wq = std::uint32_t(row_bytes / 16);
      pc.w_off = ww.off;
      pc.batch = std::uint32_t(nb);
      pc.outs = w.out;
      pc.x_off = xw.off;
      pc.y_off = yw.off;
      pc.flags = accumulate ? LINEAR_ACCUMULATE : 0u;
      pc.w_end = std::uint32_t(ww.off + nr * pc.wq);
      pc.ne = 1;
      pc.experts = 1;
      pc.k = 1;
      s.dispatch(k, {{*w.w, ww.base, ww.range}, {x, xw.base, xw.range}, {y, yw.base, yw.range}}, pc,
                 Threads{row_threads(v, t, nr), groups_y});
    }
  }
}

// ---- linear_id ----------------------------------------------------------------------

void linear_id(Stream& s, const LinearWeight& w, const Buffer& ids, const Buffer& x, bool x_per_slot, Buffer& y,
               std::uint32_t n, std::uint32_t k, const LinearOptions& o) {
  Device& d = s.device();
  check_weight(w, "linear_id");
  if (n == 0 || k == 0) throw Error("linear_id: n and k must be >= 1");
  const std::uint64_t slots = std::uint64_t(n) * k;
  if (slots > 0xffffffffull) throw Error("linear_id: n × k exceeds 2^32 slots");
  const std::uint64_t x_rows = x_per_slot ? slots : n;
  if (ids.size() < slots * 4) throw Error("linear_id: ids buffer smaller than n × k uint32");
  if (x.size() < x_rows * w.in * 4)
    throw Error(std::string("linear_id: x buffer smaller than ") + (x_per_slot ? "n × k × in" : "n × in") + " floats");
  if (y.size() < slots * w.out * 4) throw Error("linear_id: y buffer smaller than n × k × out floats");
  // Slots per expert on average decide the batch tile.
  const std::uint64_t per_expert = div_up(slots, w.experts);
  const LinearVariant v = resolve(d, o.variant, per_expert, true, w.type, "linear_id");
  const Tuning t = tuning(d, v, per_expert, w.type);
  const std::string name = std::string("linear_id_") + linear_variant_name(v) + "_" + weight_type_name(w.type);

  const Binder bind(d, o, "linear_id");
  const std::uint64_t row_bytes = linear_row_bytes(w.in, w.type), expert_bytes = row_bytes * w.out;
  // Weight windows: whole experts where one fits, else rows of one expert.
  struct WWin {
    std::uint64_t e0, ne, r0, nr;
  };
  std::vector<WWin> wins;
  const std::uint64_t usable = bind.usable(16, row_bytes);
  if (expert_bytes <= usable) {
    const std::uint64_t per = usable / expert_bytes;
    for (std::uint64_t e0 = 0; e0 < w.experts; e0 += per) wins.push_back({e0, std::min(per, w.experts - e0), 0, w.out});
  } else {
    const std::uint64_t per = usable / row_bytes;
    for (std::uint64_t e = 0; e < w.experts; ++e)
      for (std::uint64_t r0 = 0; r0 < w.out; r0 += per) wins.push_back({e, 1, r0, std::min(per, w.out - r0)});
  }
  // Token windows keep each token's ids, x and y rows within a binding.
  const std::uint64_t token_bytes = std::max({k * std::uint64_t(4), (x_per_slot ? k : 1) * std::uint64_t(w.in) * 4,
                                              std::uint64_t(k) * w.out * 4});
  const std::uint64_t tokens_per = bind.per_window(4, token_bytes);

  for (std::uint64_t t0 = 0; t0 < n; t0 += tokens_per) {
    const std::uint64_t nt = std::min<std::uint64_t>(tokens_per, n - t0);
    const std::uint64_t xr = x_per_slot ? k : 1;
    const Window iw = bind.window(t0 * k * 4, nt * k * 4, 4);
    const Window xw = bind.window(t0 * xr * w.in * 4, nt * xr * w.in * 4, 4);
    const Window yw = bind.window(t0 * k * w.out * 4, nt * k * w.out * 4, 4);
    const bool xvec = w.in % 4 == 0 && xw.off % 4 == 0;
    need_xvec(w, xvec, "linear_id");
    const Kernel& kern = get_kernel(d, name, v, t, xvec);
    for (const WWin& ww : wins) {
      // The windows of expert 0 (together all rows) also zero the slots with invalid ids.
      const bool zero_invalid = ww.e0 == 0;
      const Window wb = bind.window((ww.e0 * w.out + ww.r0) * row_bytes,
                                    ((ww.ne - 1) * w.out + ww.nr) * row_bytes, 16);
      gpu::LinearParams pc{};
      pc.rows = std::uint32_t(ww.nr);
      pc.row0 = std::uint32_t(ww.r0);
      pc.cols = w.in;
      pc.wq = std::uint32_t(row_bytes / 16);
      pc.w_off = wb.off;
      pc.batch = std::uint32_t(nt * k);
      pc.outs = w.out;
      pc.x_off = xw.off;
      pc.y_off = yw.off;
      pc.ids_off = iw.off;
      pc.flags = (zero_invalid ? LINEAR_ZERO_INVALID : 0u) | (x_per_slot ? LINEAR_X_PER_SLOT : 0u);
      pc.w_end = std::uint32_t(wb.off + ((ww.ne - 1) * w.out + ww.nr) * pc.wq);
      pc.e0 = std::uint32_t(ww.e0);
      pc.ne = std::uint32_t(ww.ne);
      pc.experts = w.experts;
      pc.k = k;
      s.dispatch(kern,
                 {{*w.w, wb.base, wb.range}, {x, xw.base, xw.range}, {y, yw.base, yw.range}, {ids, iw.base, iw.range}},
                 pc, Threads{row_threads(v, t, ww.nr), ww.ne + (zero_invalid ? 1 : 0)});
    }
  }
}

}  // namespace vkq::kernels
