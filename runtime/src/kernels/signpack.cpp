#include "vkquant/kernels/signpack.hpp"

#include <algorithm>
#include <bit>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "signpack.h"
#include "vkquant/chunk.hpp"
#include "vkquant/error.hpp"
#include "vkquant/kernel.hpp"

namespace vkq::kernels {

static_assert(sizeof(gpu::SignpackParams) == 16);
static_assert(sizeof(gpu::SignunpackParams) == 16);

namespace {

constexpr std::uint32_t kInvocationLocal = 64;  // invocations per group (per-invocation variant)
constexpr std::uint32_t kUnpackLocal = 256;

constexpr VkSubgroupFeatureFlags kBallotOps =
    VK_SUBGROUP_FEATURE_BASIC_BIT | VK_SUBGROUP_FEATURE_BALLOT_BIT | VK_SUBGROUP_FEATURE_ARITHMETIC_BIT;

std::uint64_t checked_mul(std::uint64_t a, std::uint64_t b, const char* what) {
  if (a != 0 && b > std::numeric_limits<std::uint64_t>::max() / a)
    throw Error(std::string(what) + ": size overflows 64 bits");
  return a * b;
}

void need(const Buffer& b, std::uint64_t bytes, const char* fn, const char* name) {
  if (!b) throw Error(std::string(fn) + ": " + name + " is an empty buffer");
  if (b.size() < bytes)
    throw Error(std::string(fn) + ": " + name + " holds " + std::to_string(b.size()) + " bytes, needs " +
                std::to_string(bytes));
}

// Rows per dispatch: every binding (row_bytes[i] bytes per row) fits in one
// binding range, and every chunk starts at an even row whose byte offset is
// aligned in every binding.
std::uint64_t chunk_rows(const Device& dev, const std::vector<std::uint64_t>& row_bytes, std::uint64_t cap,
                         const char* fn) {
  const std::uint64_t align = std::max<std::uint64_t>(dev.info().min_storage_buffer_offset_alignment, 4);
  std::uint64_t granule = 2;
  for (std::uint64_t rb : row_bytes) granule = std::lcm(granule, align / std::gcd(align, rb));
  std::uint64_t rows = std::numeric_limits<std::uint64_t>::max();
  for (std::uint64_t rb : row_bytes) rows = std::min(rows, dev.binding_chunk_bytes() / rb);
  rows = rows / granule * granule;
  if (rows == 0)
    throw Error(std::string(fn) + ": a granule of " + std::to_string(granule) +
                " rows exceeds maxStorageBufferRange; d is too large for this device");
  if (cap) rows = std::min(rows, std::max(granule, cap / granule * granule));
  return rows;
}

// Per-invocation variant: units each invocation packs in turn. One per
// invocation on GPUs; on CPU devices (llvmpipe pays per batch of SIMD lanes)
// up to 16 while at least 64 groups remain to spread over the cores.
std::uint32_t invocation_units(const DeviceInfo& info, std::uint64_t units) {
  if (info.type != VK_PHYSICAL_DEVICE_TYPE_CPU) return 1;
  std::uint32_t k = 1;
  while (k < 16 && units / (std::uint64_t(kInvocationLocal) * 2 * k) >= 64) k *= 2;
  return k;
}

}  // namespace

bool signpack_ballot_supported(const Device& device) {
  const DeviceInfo& info = device.info();
  return (info.subgroup_ops & kBallotOps) == kBallotOps && (info.subgroup_stages & VK_SHADER_STAGE_COMPUTE_BIT) &&
         info.subgroup_size >= 4;
}

SignpackVariant signpack_auto_variant(const Device& device) {
  const DeviceInfo& info = device.info();
  if (!signpack_ballot_supported(device) || info.type == VK_PHYSICAL_DEVICE_TYPE_CPU || info.subgroup_size < 32)
    return SignpackVariant::invocation;
  return SignpackVariant::ballot;
}

const char* signpack_variant_name(SignpackVariant v) {
  switch (v) {
    case SignpackVariant::ballot: return "ballot";
    case SignpackVariant::invocation: return "invocation";
    default: return "auto";
  }
}

void signpack(Stream& s, const Buffer& v, Buffer& bits, Buffer& alpha, Buffer* mean, std::uint64_t rows,
              std::uint32_t d, const SignpackOptions& o) {
  constexpr const char* fn = "signpack";
  Device& dev = s.device();
  if (d == 0) throw Error("signpack: d must be at least 1");
  if (mean && !o.center) throw Error("signpack: a mean buffer needs options.center");
  if (&v == &bits || &v == &alpha || &bits == &alpha || (mean && (mean == &v || mean == &bits || mean == &alpha)))
    throw Error("signpack: v, bits, alpha and mean must be distinct buffers");
  const SignpackVariant variant =
      o.variant == SignpackVariant::automatic ? signpack_auto_variant(dev) : o.variant;
  if (variant == SignpackVariant::ballot && !signpack_ballot_supported(dev))
    throw Error("signpack: the ballot variant needs subgroup ballot + arithmetic in compute shaders");
  const DeviceInfo& info = dev.info();
  if (o.required_subgroup_size) {
    const std::uint32_t r = o.required_subgroup_size;
    if (variant != SignpackVariant::ballot) throw Error("signpack: required_subgroup_size applies to the ballot variant only");
    if (!std::has_single_bit(r) || r < 4 || r > 128) throw Error("signpack: required_subgroup_size must be a power of two in 4..128");
    if (!info.subgroup_size_control || r < info.min_subgroup_size || r > info.max_subgroup_size)
      throw Error("signpack: this device cannot run subgroups of " + std::to_string(r));
  }

  const std::uint32_t words = signpack_words(d);
  const std::uint64_t in_row = signpack_row_bytes(d, o.input_f16);
  need(v, checked_mul(rows, in_row, fn), fn, "v");
  need(bits, checked_mul(rows, std::uint64_t(words) * 4, fn), fn, "bits");
  need(alpha, signpack_alpha_bytes(rows, o.alpha_f16), fn, "alpha");
  if (mean) need(*mean, checked_mul(rows, 4, fn), fn, "mean");
  if (rows == 0) return;

  const std::uint32_t in_stride = o.input_f16 ? signpack_f16_row_words(d) : d;
  const bool vec = o.input_f16 ? in_stride % 4 == 0 : d % 4 == 0;
  KernelDesc desc{.constants = {o.input_f16, o.alpha_f16, o.center, mean != nullptr, vec, 1}};
  const std::uint64_t chunk =
      chunk_rows(dev, {in_row, std::uint64_t(words) * 4, o.alpha_f16 ? 2u : 4u, 4}, o.max_chunk_rows, fn);
  std::uint64_t units_per_group;
  const std::uint64_t rpu = o.alpha_f16 ? 2 : 1;
  if (variant == SignpackVariant::ballot) {
    // Groups hold whole subgroups of the widest size the driver may pick;
    // the shader counts its real subgroups, the host only needs enough groups.
    const std::uint32_t widest =
        o.required_subgroup_size ? o.required_subgroup_size : std::max(info.subgroup_size, info.max_subgroup_size);
    desc.shader = "signpack_ballot";
    desc.local_size = {std::max(64u, widest), 1, 1};
    desc.required_subgroup_size = o.required_subgroup_size;
    units_per_group = desc.local_size[0] / widest;
  } else {
    desc.shader = "signpack_invocation";
    desc.local_size = {kInvocationLocal, 1, 1};
    desc.constants[5] = invocation_units(info, (std::min(rows, chunk) + rpu - 1) / rpu);
    units_per_group = std::uint64_t(kInvocationLocal) * desc.constants[5];
  }
  const Kernel& k = dev.kernel(desc);

  for_each_chunk(rows, chunk, [&](std::uint64_t first, std::uint64_t count) {
    const gpu::SignpackParams p{std::uint32_t(count), d, words, in_stride};
    const std::uint64_t units = (count + rpu - 1) / rpu;
    const Binding alpha_b{alpha, signpack_alpha_bytes(first, o.alpha_f16), signpack_alpha_bytes(count, o.alpha_f16)};
    s.dispatch(k,
               {{v, first * in_row, count * in_row},
                {bits, first * words * 4, count * words * 4},
                alpha_b,
                mean ? Binding{*mean, first * 4, count * 4} : alpha_b},
               p, Threads{div_up(units, units_per_group) * desc.local_size[0]});
  });
}

void signunpack(Stream& s, const Buffer& bits, const Buffer& alpha, const Buffer* mean, Buffer& out,
                std::uint64_t rows, std::uint32_t d, const SignunpackOptions& o) {
  constexpr const char* fn = "signunpack";
  Device& dev = s.device();
  if (d == 0) throw Error("signunpack: d must be at least 1");
  if (&out == &bits || &out == &alpha || (mean && mean == &out))
    throw Error("signunpack: out must not alias bits, alpha or mean");
  const std::uint32_t words = signpack_words(d);
  need(bits, checked_mul(rows, std::uint64_t(words) * 4, fn), fn, "bits");
  need(alpha, signpack_alpha_bytes(rows, o.alpha_f16), fn, "alpha");
  if (mean) need(*mean, checked_mul(rows, 4, fn), fn, "mean");
  need(out, checked_mul(rows, std::uint64_t(d) * 4, fn), fn, "out");
  if (rows == 0) return;

  const Kernel& k = dev.kernel({.shader = "signpack_unpack",
                                .local_size = {kUnpackLocal, 1, 1},
                                .constants = {o.alpha_f16, mean != nullptr}});
  const std::uint64_t chunk = chunk_rows(dev, {std::uint64_t(words) * 4, o.alpha_f16 ? 2u : 4u, 4,
                                               std::uint64_t(d) * 4}, o.max_chunk_rows, fn);
  for_each_chunk(rows, chunk, [&](std::uint64_t first, std::uint64_t count) {
    const gpu::SignunpackParams p{std::uint32_t(count), d, words, 0};
    const Binding alpha_b{alpha, signpack_alpha_bytes(first, o.alpha_f16), signpack_alpha_bytes(count, o.alpha_f16)};
    s.dispatch(k,
               {{bits, first * words * 4, count * words * 4},
                alpha_b,
                mean ? Binding{*mean, first * 4, count * 4} : alpha_b,
                {out, first * std::uint64_t(d) * 4, count * std::uint64_t(d) * 4}},
               p, Threads{count * d});
  });
}

}  // namespace vkq::kernels
