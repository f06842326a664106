// The split-K plan of the softmax·V pass that attention() and
// attention_kcode() share (private to runtime/src/kernels).
#pragma once

#include <algorithm>
#include <cstdint>

#include "vkquant/stream.hpp"
#include "vkquant/device.hpp"

namespace vkq::kernels::attn_split {

constexpr std::uint32_t kLocal = 64;  // workgroup size of the attention passes
constexpr std::uint32_t kMinKeysPerSplit = 64;
constexpr std::uint32_t kMaxSplits = 256;
// Keys one invocation may loop over: lavapipe stops an invocation's loops
// after 65535 iterations in all (one per key, the hd loops unrolled).
constexpr std::uint32_t kMaxKeysPerSplit = 32768;

// Query heads one softmax·V invocation owns (the GH specialization constant
// of attn.comp and attn_kcode_softmax.comp), so that each key and value row
// is loaded and decoded once per chunk of a GQA group instead of once per
// head. On a CPU a group in chunks of at most kGroupCoords / hd heads (the
// unrolled accumulators and queries of GH heads take 4 * GH * hd floats; at
// 8 heads of hd 256 a test's dispatch ran past the 300 s fence timeout on
// lavapipe, most likely in llvmpipe's compile of the unrolled code); on a
// GPU one head (parallelism matters more there). A device
// opened with DeviceOptions::attention_group_heads caps it instead.
constexpr std::uint32_t kGroupCoords = 512;
inline std::uint32_t group_heads(const Device& d, std::uint32_t group, std::uint32_t hd) {
  std::uint32_t most = d.attention_group_heads();
  if (most == 0)
    most = d.info().type == VK_PHYSICAL_DEVICE_TYPE_CPU ? kGroupCoords / std::max<std::uint32_t>(hd, 1) : 1;
  if (group <= 1 || most <= 1) return 1;
  const std::uint32_t chunks = (group + most - 1) / most;
  return (group + chunks - 1) / chunks;  // balanced: 12 heads at most 8 -> 6 + 6, not 8 + 4
}

struct Plan {
  std::uint32_t group_heads = 1;  // GH: query heads per invocation
  std::uint64_t lanes = 0;        // invocations per key split: query rows x n_kv x chunks of GH heads
  std::uint32_t splits = 1, split_len = 0;
  std::uint64_t partial_bytes = 0;  // (rows x heads, splits, hd + 2) fp32 partials; 0 with one split
};

// The softmax·V layout of `rows` query rows of n_heads heads over kv_len keys:
// group_heads heads per invocation, and keys split so that there are enough
// invocations to fill the device (a few workgroups per core on a CPU, tens
// of thousands on a GPU), at least kMinKeysPerSplit keys per split, partials
// that fit one binding. n_heads must be a multiple of n_kv.
inline Plan plan(const Device& d, std::uint64_t rows, std::uint32_t n_heads, std::uint32_t n_kv, std::uint32_t kv_len,
                 std::uint32_t hd) {
  Plan p;
  const std::uint32_t group = n_heads / n_kv;
  p.group_heads = group_heads(d, group, hd);
  p.lanes = rows * n_kv * div_up(group, p.group_heads);
  const std::uint64_t target = d.info().type == VK_PHYSICAL_DEVICE_TYPE_CPU ? 4 * kLocal : 512 * kLocal;
  std::uint64_t splits = 1;
  if (p.lanes && p.lanes < target && kv_len > kMinKeysPerSplit)
    splits = std::min<std::uint64_t>({div_up(target, p.lanes), div_up(kv_len, kMinKeysPerSplit), kMaxSplits});
  const auto bytes = [&](std::uint64_t s) { return rows * n_heads * s * (hd + 2) * 4; };
  while (splits > 1 && bytes(splits) > d.binding_chunk_bytes()) splits /= 2;
  splits = std::max<std::uint64_t>(splits, div_up(kv_len, kMaxKeysPerSplit));
  p.split_len = std::uint32_t(div_up(std::max<std::uint32_t>(kv_len, 1), splits));
  p.splits = std::uint32_t(div_up(std::max<std::uint32_t>(kv_len, 1), p.split_len));  // no split past kv_len
  p.partial_bytes = p.splits > 1 ? bytes(p.splits) : 0;
  return p;
}

}  // namespace vkq::kernels::attn_split
