// The fp16 KV cache and causal GQA attention over it (DESIGN §4 "reference
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

namespace vkq::kernels {

// Bytes of one cache buffer (K or V) holding ctx positions.
std::uint64_t kv_cache_bytes(std::uint32_t ctx, std::uint32_t n_kv, std::uint32_t hd);

// Writes rows t < n of src (n, n_kv*hd) f32 into cache positions pos0 + t
// (fp16, round to nearest even, bit-exact with vkq::to_half).
void kv_store(Stream& s, const Buffer& src, Buffer& cache, std::uint32_t n, std::uint32_t pos0, std::uint32_t n_kv,
              std::uint32_t hd);

// Scratch bytes attention() needs for these sizes on this device (0: none).
// Short work (few query rows x heads) over long contexts is split over keys
// and combined (flash-decoding); the scratch holds the partial softmaxes.
std::uint64_t attention_scratch_bytes(const Device& d, std::uint32_t n, std::uint32_t n_heads, std::uint32_t kv_len,
                                      std::uint32_t hd);

// Causal GQA attention over the cache: query row t (position pos0 + t), head
// h attends cached positions 0..pos0+t of KV head h / (n_heads / n_kv);
// out[t, h, :] = Σ softmax(scale · q·k) v, fp32 softmax (max-subtracted) and
// accumulation. q, out: (n, n_heads, hd) f32. The cache must already hold
// positions < pos0 + n. scratch: attention_scratch_bytes(d, n, n_heads,
// pos0 + n, hd) bytes, or nullptr when that is 0.
void attention(Stream& s, const Buffer& q, const Buffer& kcache, const Buffer& vcache, Buffer& out, std::uint32_t n,
               std::uint32_t pos0, std::uint32_t n_heads, std::uint32_t n_kv, std::uint32_t hd, float scale,
               Buffer* scratch);

}  // namespace vkq::kernels
