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

struct Plan {
  std::uint32_t splits = 1, split_len = 0;
  std::uint64_t partial_bytes = 0;  // (rows, splits, hd + 2) fp32 partials; 0 with one split
};

// Splits keys for `rows` (query row, head) pairs: enough invocations to fill
// the device (a few workgroups per core on a CPU, tens of thousands on a
// GPU), at least kMinKeysPerSplit keys per split, partials that fit one binding.
inline Plan plan(const Device& d, std::uint64_t rows, std::uint32_t kv_len, std::uint32_t hd) {
  const std::uint64_t target = d.info().type == VK_PHYSICAL_DEVICE_TYPE_CPU ? 4 * kLocal : 512 * kLocal;
  std::uint64_t splits = 1;
  if (rows && rows < target && kv_len > kMinKeysPerSplit)
    splits = std::min<std::uint64_t>({div_up(target, rows), div_up(kv_len, kMinKeysPerSplit), kMaxSplits});
  const auto bytes = [&](std::uint64_t s) { return rows * s * (hd + 2) * 4; };
  while (splits > 1 && bytes(splits) > d.binding_chunk_bytes()) splits /= 2;
  splits = std::max<std::uint64_t>(splits, div_up(kv_len, kMaxKeysPerSplit));
  Plan p;
  p.split_len = std::uint32_t(div_up(std::max<std::uint32_t>(kv_len, 1), splits));
  p.splits = std::uint32_t(div_up(std::max<std::uint32_t>(kv_len, 1), p.split_len));  // no split past kv_len
  p.partial_bytes = p.splits > 1 ? bytes(p.splits) : 0;
  return p;
}

}  // namespace vkq::kernels::attn_split
