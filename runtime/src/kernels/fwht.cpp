#include "vkquant/kernels/fwht.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <string>

#include "fwht.h"
#include "vkquant/chunk.hpp"
#include "vkquant/device.hpp"
#include "vkquant/error.hpp"

namespace vkq::kernels {

static_assert(sizeof(gpu::FwhtParams) == 32);

namespace {

constexpr std::uint32_t kGroupLog2M = 3;  // LOG2M of fwht_group (fwht.cmake)
constexpr std::uint32_t kThreadLocal = 64;
constexpr std::uint32_t kColLocal = 64;
constexpr std::uint32_t kColMaxLog2 = 4;
constexpr std::uint32_t kLanesMaxLog2M = 7;  // fwht_lanes keeps 2^7 vec4s per invocation at most  // fwht_col keeps 2^4 vec4s per invocation at most

std::uint32_t log2u(std::uint64_t v) { return std::uint32_t(std::bit_width(v) - 1); }

// Shape of fwht_group for rows of n floats: 2^log2rpg rows per workgroup.
struct GroupShape {
  std::uint32_t log2n = 0, log2rpg = 0, local = 0;
  std::uint64_t shared_bytes() const {
    const std::uint64_t vec4s = (std::uint64_t(1) << (log2n - 2)) << log2rpg;
    return (vec4s + (vec4s >> kGroupLog2M)) * 16;
  }
};

bool fits(const Device& d, const GroupShape& g) {
  const auto& info = d.info();
  return g.shared_bytes() <= info.max_shared_memory && g.local <= info.max_workgroup_invocations &&
         g.local <= info.max_workgroup_size[0];
}

// Rows per workgroup grow until a group has 64 invocations (small n), as long
// as it fits in shared memory.
GroupShape group_shape(const Device& d, std::uint32_t log2n) {
  GroupShape g{log2n, 0, 1u << (log2n - 2 - kGroupLog2M)};
  while (g.local < 64) {
    GroupShape bigger{log2n, g.log2rpg + 1, g.local * 2};
    if (!fits(d, bigger)) break;
    g = bigger;
  }
  return g;
}

// Binding window of rows [first, first + count) at byte `offset` of a buffer
// whose rows are `row_bytes` long: an aligned binding plus the vec4 index of
// row `first` inside it.
struct Window {
  std::uint64_t offset, range;
  std::uint32_t base;
};

Window window(const Device& d, std::uint64_t offset, std::uint64_t row_bytes, std::uint64_t first,
              std::uint64_t count) {
  const std::uint64_t align = std::max<std::uint64_t>(d.info().min_storage_buffer_offset_alignment, 1);
  const std::uint64_t start = offset + first * row_bytes;
  const std::uint64_t bound = start / align * align;
  return {bound, start - bound + count * row_bytes, std::uint32_t((start - bound) / 16)};
}

void check_args(const Buffer& src, const Buffer& dst, std::uint64_t rows, std::uint32_t n, const FwhtOptions& o) {
  if (n < 64 || n > 16384 || !std::has_single_bit(n))
    throw Error("fwht: n = " + std::to_string(n) + " must be a power of two in [64, 16384]");
  if (o.offset % 16 || o.dst_offset % 16) throw Error("fwht: offsets must be multiples of 16 bytes");
  const std::uint64_t bytes = rows * n * 4;
  if (rows > (std::uint64_t(1) << 40) / n) throw Error("fwht: rows = " + std::to_string(rows) + " is too large");
  if (o.offset > src.size() || bytes > src.size() - o.offset)
    throw Error("fwht: " + std::to_string(rows) + " rows of " + std::to_string(n) + " floats from byte " +
                std::to_string(o.offset) + " exceed the source buffer (" + std::to_string(src.size()) + " bytes)");
  if (o.dst_offset > dst.size() || bytes > dst.size() - o.dst_offset)
    throw Error("fwht: " + std::to_string(rows) + " rows of " + std::to_string(n) + " floats from byte " +
                std::to_string(o.dst_offset) + " exceed the destination buffer (" + std::to_string(dst.size()) +
                " bytes)");
  if (&src == &dst && o.offset != o.dst_offset)
    throw Error("fwht: in place (src == dst) needs equal source and destination offsets");
}

}  // namespace

float srht_sign(std::uint32_t seed, std::uint32_t i) { return gpu::fwht_sign(gpu::fwht_key(seed), i); }

FwhtVariant fwht_auto_variant(const Device& device) {
  return device.info().type == VK_PHYSICAL_DEVICE_TYPE_CPU ? FwhtVariant::lanes : FwhtVariant::group;
}

const char* fwht_variant_name(FwhtVariant v) {
  switch (v) {
    case FwhtVariant::automatic: return "auto";
    case FwhtVariant::thread: return "thread";
    case FwhtVariant::group: return "group";
    case FwhtVariant::lanes: return "lanes";
  }
  return "?";
}

std::vector<FwhtVariant> fwht_variants() { return {FwhtVariant::thread, FwhtVariant::group, FwhtVariant::lanes}; }

void fwht(Stream& s, const Buffer& src, Buffer& dst, std::uint64_t rows, std::uint32_t n, const FwhtOptions& o) {
  check_args(src, dst, rows, n, o);
  if (rows == 0) return;
  Device& d = s.device();
  const FwhtVariant variant = o.variant == FwhtVariant::automatic ? fwht_auto_variant(d) : o.variant;
  const std::uint32_t log2n = log2u(n);
  const std::uint64_t row_bytes = std::uint64_t(n) * 4;

  const std::uint64_t align = std::max<std::uint64_t>(d.info().min_storage_buffer_offset_alignment, 1);
  const std::uint64_t pad = std::max(o.offset % align, o.dst_offset % align);
  std::uint64_t limit = d.binding_chunk_bytes();
  if (o.max_binding_bytes) limit = std::min(limit, o.max_binding_bytes);
  if (limit < pad + row_bytes) throw Error("fwht: one row of " + std::to_string(row_bytes) + " bytes exceeds the binding limit");
  const std::uint64_t chunk_rows = (limit - pad) / row_bytes;

  gpu::FwhtParams base{};
  base.key = gpu::fwht_key(o.seed);
  base.scale = float(1.0 / std::sqrt(double(n)));
  const std::uint32_t sign_flag = !o.srht ? 0u : o.inverse ? FWHT_SIGNS_OUT : FWHT_SIGNS_IN;

  // Records `kernel` over rows [first, first + count): src window -> dst window.
  auto run = [&](const Kernel& k, const Buffer& from, std::uint64_t from_off, std::uint64_t first,
                 std::uint64_t count, gpu::FwhtParams p, Threads threads) {
    const Window ws = window(d, from_off, row_bytes, first, count);
    const Window wd = window(d, o.dst_offset, row_bytes, first, count);
    p.src_base = ws.base;
    p.dst_base = wd.base;
    s.dispatch(k, {{from, ws.offset, ws.range}, {dst, wd.offset, wd.range}}, p, threads);
  };

  if (variant == FwhtVariant::lanes) {
    // 2^log2l lanes per row, at most the smallest subgroup size (a row's lanes
    // share one subgroup), in workgroups that are a multiple of the largest.
    const auto& info = d.info();
    const std::uint32_t min_sg = info.min_subgroup_size ? info.min_subgroup_size : info.subgroup_size;
    const bool shuffle = (info.subgroup_ops & VK_SUBGROUP_FEATURE_SHUFFLE_BIT) &&
                         (info.subgroup_stages & VK_SHADER_STAGE_COMPUTE_BIT) && min_sg > 0;
    std::uint32_t log2l = std::min(log2u(std::max<std::uint32_t>(min_sg, 1)), log2n - 2);
    // Two rows per lane group where a row is short (more work per invocation).
    const std::uint32_t log2r = log2n - 2 - log2l <= 3 ? 1 : 0;
    if (shuffle && log2n - 2 - log2l <= kLanesMaxLog2M) {
      const std::uint32_t local = std::max<std::uint32_t>(64, info.max_subgroup_size ? info.max_subgroup_size : 64);
      const Kernel& k = d.kernel({.shader = "fwht_lanes", .local_size = {local, 1, 1}, .constants = {log2n, log2l, log2r}});
      for_each_chunk(rows, chunk_rows, [&](std::uint64_t first, std::uint64_t count) {
        gpu::FwhtParams p = base;
        p.rows = std::uint32_t(count);
        p.flags = sign_flag;
        const std::uint64_t lanes = div_up(count, std::uint64_t(1) << log2r) << log2l;
        run(k, src, o.offset, first, count, p, {div_up(lanes, std::uint64_t(local)) * local});
      });
      return;
    }
  }

  if (variant == FwhtVariant::thread || variant == FwhtVariant::lanes) {
    // Register blocks of 16 vec4s where they save a pass over the row (each
    // pass reloads every element), else 8 (fewer registers).
    const std::uint32_t b = log2n - 2;
    const char* shader = (b + 3) / 4 < (b + 2) / 3 ? "fwht_thread_m16" : "fwht_thread";
    const Kernel& k = d.kernel({.shader = shader, .local_size = {kThreadLocal, 1, 1}, .constants = {log2n}});
    for_each_chunk(rows, chunk_rows, [&](std::uint64_t first, std::uint64_t count) {
      gpu::FwhtParams p = base;
      p.rows = std::uint32_t(count);
      p.flags = sign_flag;
      run(k, src, o.offset, first, count, p, {count});
    });
    return;
  }

  // group: the whole row in shared memory where it fits, else sub-rows of
  // n2 = n / n1 there and the top log2(n1) bits in fwht_col.
  std::uint32_t log2n2 = log2n;
  while (log2n2 > 5 + kGroupLog2M && !fits(d, {log2n2, 0, 1u << (log2n2 - 2 - kGroupLog2M)})) --log2n2;
  const GroupShape g = group_shape(d, log2n2);
  if (!fits(d, g) || log2n - log2n2 > kColMaxLog2)
    throw Error("fwht: the group variant cannot fit rows of " + std::to_string(n) + " floats in " +
                std::to_string(d.info().max_shared_memory) + " bytes of shared memory");
  const Kernel& kg = d.kernel({.shader = "fwht_group", .local_size = {g.local, 1, 1}, .constants = {log2n2, g.log2rpg}});
  const std::uint32_t log2n1 = log2n - log2n2;
  const std::uint64_t sub = std::uint64_t(1) << log2n1;  // sub-rows per row
  auto group_pass = [&](const Buffer& from, std::uint64_t from_off, std::uint64_t first, std::uint64_t count,
                        std::uint32_t flags, float scale) {
    gpu::FwhtParams p = base;
    p.rows = std::uint32_t(count * sub);
    p.flags = flags;
    p.scale = scale;
    const std::uint64_t groups = div_up(count * sub, std::uint64_t(1) << g.log2rpg);
    run(kg, from, from_off, first, count, p, {groups * g.local});
  };
  if (log2n1 == 0) {
    for_each_chunk(rows, chunk_rows, [&](std::uint64_t first, std::uint64_t count) {
      group_pass(src, o.offset, first, count, sign_flag, base.scale);
    });
    return;
  }
  const Kernel& kc = d.kernel({.shader = "fwht_col", .local_size = {kColLocal, 1, 1}, .constants = {log2n, log2n1}});
  const std::uint64_t cols = std::uint64_t(n) / 4 >> log2n1;  // vec4 columns per row
  auto col_pass = [&](const Buffer& from, std::uint64_t from_off, std::uint64_t first, std::uint64_t count,
                      std::uint32_t flags, float scale) {
    gpu::FwhtParams p = base;
    p.rows = std::uint32_t(count);
    p.flags = flags;
    p.scale = scale;
    run(kc, from, from_off, first, count, p, {count * cols});
  };
  for_each_chunk(rows, chunk_rows, [&](std::uint64_t first, std::uint64_t count) {
    if (!o.inverse) {  // signs on the first load, scale on the last store
      col_pass(src, o.offset, first, count, sign_flag, 1.0f);
      group_pass(dst, o.dst_offset, first, count, 0, base.scale);
    } else {
      group_pass(src, o.offset, first, count, 0, 1.0f);
      col_pass(dst, o.dst_offset, first, count, sign_flag, base.scale);
    }
  });
}

void fwht(Stream& s, Buffer& data, std::uint64_t rows, std::uint32_t n, const FwhtOptions& opts) {
  FwhtOptions o = opts;
  o.dst_offset = o.offset;
  fwht(s, data, data, rows, n, o);
}

}  // namespace vkq::kernels
