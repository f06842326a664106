// The fp16 KV cache and causal GQA attention over it (docs/design.md §4 "reference
// ops": the transformer baseline the 1-bit K-cache is measured against).
//
// Cache layout, one layer: K and V are separate buffers, each (ctx, n_kv, hd)
// halves, two per uint32 (low half = even column; hd even), position-major.
// Limits: hd even and <= 256; the cache prefix an attention call reads
// (kv_len = pos0 + n positions) and the window kv_store writes must each fit
// in one binding (maxStorageBufferRange, 128 MiB on lavapipe, 4 GiB on most
// GPUs): a larger cache is refused with a vkq::Error.
#pragma once

#include <cstdint>

#include "vkquant/buffer.hpp"
#include "vkquant/device.hpp"
#include "vkquant/stream.hpp"
#include "vkquant/vtype.hpp"

namespace vkq::kernels {

// Bytes of one cache buffer (K or V) holding ctx positions.
std::uint64_t kv_cache_bytes(std::uint32_t ctx, std::uint32_t n_kv, std::uint32_t hd);

// Writes rows t < n of src (n, n_kv*hd) f32 into cache positions pos0 + t
// (fp16, round to nearest even, bit-exact with vkq::to_half).
void kv_store(Stream& s, const Buffer& src, Buffer& cache, std::uint32_t n, std::uint32_t pos0, std::uint32_t n_kv,
              std::uint32_t hd);

// One layer's value cache as the attention kernels read it, in place:
//   fp16  codes (ctx, n_kv, hd) halves as kv_store writes them; no scales.
//   q8    codes (ctx, n_kv, hd) int8, four per uint32 (byte i % 4 of word
//         i / 4 = coordinate i of the row); scales (ctx, n_kv, ceil(hd/64))
//         words, two fp16 block scales per word (low = even block).
//   q4    codes (ctx, n_kv, hd) 4-bit, eight per uint32 (nibble i % 8 of word
//         i / 8, low nibble first); scales (ctx, n_kv, hd/32) words of
//         (scale, min) halves (low = scale); value = scale · code + min.
// q8 and q4 need hd % 32 == 0.
struct VCacheView {
  VType type = VType::f16;
  const Buffer* codes = nullptr;
  const Buffer* scales = nullptr;  // q8 and q4
};

// Bytes of the codes and of the scales of ctx positions.
std::uint64_t vcache_code_bytes(VType t, std::uint32_t ctx, std::uint32_t n_kv, std::uint32_t hd);
std::uint64_t vcache_scale_bytes(VType t, std::uint32_t ctx, std::uint32_t n_kv, std::uint32_t hd);

// Writes rows t < n of src (n, n_kv*hd) f32 into value-cache positions
// pos0 + t: fp16 as kv_store; q8/q4 quantized per block of 32 as
// vkq::ref::vcache_pack (bit-exact). `scales` may be nullptr for fp16.
void vcache_store(Stream& s, const Buffer& src, VType type, Buffer& codes, Buffer* scales, std::uint32_t n,
                  std::uint32_t pos0, std::uint32_t n_kv, std::uint32_t hd);

// Scratch bytes attention() needs for these sizes on this device (0: none).
// Short work (few query rows x heads) over long contexts is split over keys
// and combined (flash-decoding); the scratch holds the partial softmaxes.
std::uint64_t attention_scratch_bytes(const Device& d, std::uint32_t n, std::uint32_t n_heads, std::uint32_t n_kv,
                                      std::uint32_t kv_len, std::uint32_t hd);

// Causal GQA attention over the cache: query row t (position pos0 + t), head
// h attends cached positions 0..pos0+t of KV head h / (n_heads / n_kv);
// out[t, h, :] = Σ softmax(scale · q·k) v, fp32 softmax (max-subtracted) and
// accumulation; values read in place as v.type stores them. q, out: (n, n_heads, hd) f32. The cache must already hold
// positions < pos0 + n. scratch: attention_scratch_bytes(d, n, n_heads,
// n_kv, pos0 + n, hd) bytes, or nullptr when that is 0.
void attention(Stream& s, const Buffer& q, const Buffer& kcache, const VCacheView& v, Buffer& out, std::uint32_t n,
               std::uint32_t pos0, std::uint32_t n_heads, std::uint32_t n_kv, std::uint32_t hd, float scale,
               Buffer* scratch);
// The same over an fp16 V cache.
void attention(Stream& s, const Buffer& q, const Buffer& kcache, const Buffer& vcache, Buffer& out, std::uint32_t n,
               std::uint32_t pos0, std::uint32_t n_heads, std::uint32_t n_kv, std::uint32_t hd, float scale,
               Buffer* scratch);

}  // namespace vkq::kernels
