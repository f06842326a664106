// Causal GQA attention over the 1-bit K-cache code (docs/design.md §2) and the fp16
// V cache: the post-RoPE key at position p is scored from its code as
//   q·k̂_p = q·m_p + alpha_p·(q'·s_p) + Σ_{i<r_g} (U_Rᵀ q')_i ĉ_{p,i},   q' = R_{h/group} q,
// (the transform code, KCodec::transform: no alpha_p·(q'·s_p) term, q' = q;
// kscore_tc; keys.bits and keys.alpha are not read),
// m_p = mu (plain mean) or RoPE_p(mu_pre) (mean-RoPE variant, KCodec::
// a mean-RoPE table), with q'·s_p in fp32 (float path) or from popcounts of
// a b-bit quantized q' (popcount path); positions p < front use the exact
// fp16 keys. The scores come from the kscore kernels (vkquant/kernels/
// kscore.hpp) over the position-major code cache, then softmax(scale·score)
// times V as attention() (vkquant/kernels/attn.hpp) does it.
//
// Layouts: q, out (n, n_heads, hd) f32; code cache as kcodec.hpp
// (bits (ctx, n_kv, hd/32), alpha (ctx, n_kv) fp16, coef (ctx, stride) halves
// of per-head residual records, vkquant/kresidual.hpp); front keys and V cache as kv_store writes them ((ctx, n_kv, hd)
// fp16); the mean-RoPE table (positions, hd/2, 2) f32 (cos, sin). Scratch
// layouts: shaders/include/attn_kcode.h.
// Limits: hd in {32, 64, 96, 128, 256}; every buffer range a call reads must
// fit in one binding except the code cache (bound in key chunks); long
// prefills are scored in blocks of query rows whose scores fit the cap.
#pragma once

#include <cstdint>

#include "vkquant/buffer.hpp"
#include "vkquant/device.hpp"
#include "vkquant/kernels/attn.hpp"
#include "vkquant/kernels/kcodec.hpp"
#include "vkquant/kernels/kscore.hpp"
#include "vkquant/stream.hpp"

namespace vkq::kernels {

// How q'·s is computed.
enum class KcodePath {
  float_signs,  // fp32 sign-select accumulate (kscore_float)
  popcount,     // popcounts of the b-bit quantized q' (kscore_quantize_query + kscore_popcount)
};

// One layer's 1-bit key cache as kcode_encode writes it, and its exact front.
struct KcodeKeys {
  KCodec codec;                        // mu (pre-RoPE mu with a mean-RoPE table), rot, basis, n_kv, hd, residual
  const Buffer* bits = nullptr;        // (ctx, n_kv, hd/32) uint32
  const Buffer* alpha = nullptr;       // (ctx, n_kv) fp16
  const Buffer* coef = nullptr;        // (ctx, stride) residual records; required iff codec.coef_stride() > 0
  std::uint32_t front = 0;             // positions < front are scored with exact keys
  const Buffer* front_keys = nullptr;  // (>= min(front, kv_len), n_kv, hd) fp16; required iff front > 0
  const Buffer* rope_table = nullptr;  // (>= kv_len, hd/2, 2) f32 from attn_kcode_rope_table(codec.mean_rope)
                                       // at positions 0..; required iff a mean-RoPE table
};

struct AttnKcodeOptions {
  KcodePath path = KcodePath::popcount;
  std::uint32_t query_bits = 8;       // popcount path: b = 1, 4 or 8
  std::uint64_t max_score_bytes = 0;  // scores per query block (0: 64 MiB); tests lower it to force blocks
  KscoreTuning tuning = {};           // passed to the kscore kernels
};

// Scratch bytes of each part (4 where a part is unused).
struct AttnKcodeScratchBytes {
  std::uint64_t q = 4;        // (n, n_heads, hd) f32: q'
  std::uint64_t qmu = 4;      // (n, n_heads) f32
  std::uint64_t mrope = 4;    // (n, n_heads, hd) f32: mean-RoPE (A, B) pairs
  std::uint64_t uq = 4;       // (n, n_heads, basis_cols) f32
  std::uint64_t planes = 4;   // (n, n_heads, b, hd/32) uint32
  std::uint64_t qconst = 4;   // (n, n_heads) 16-byte query constants
  std::uint64_t scores = 4;   // (nb, n_heads, kv_len) f32, nb = query rows per block
  std::uint64_t partial = 4;  // split-K partials of one block
  std::uint64_t total() const { return q + qmu + mrope + uq + planes + qconst + scores + partial; }
};

// The scratch buffers of attention_kcode.
struct AttnKcodeScratch {
  Buffer q, qmu, mrope, uq, planes, qconst, scores, partial;
  // Device-local buffers of the given sizes.
  static AttnKcodeScratch create(Device& d, const AttnKcodeScratchBytes& bytes);
  // Whether every buffer is at least as large as `bytes` says.
  bool holds(const AttnKcodeScratchBytes& bytes) const;
};

// Scratch sizes attention_kcode needs for n query rows over kv_len = pos0 + n
// keys on this device.
AttnKcodeScratchBytes attention_kcode_scratch_bytes(const Device& d, const KCodec& codec, std::uint32_t n,
                                                    std::uint32_t n_heads, std::uint32_t kv_len,
                                                    const AttnKcodeOptions& options = {});

// Bytes of a mean-RoPE table of `positions` positions.
std::uint64_t attn_kcode_rope_table_bytes(std::uint32_t positions, std::uint32_t hd);

// Writes rows first .. first+count-1 of the mean-RoPE table:
// table[p][i] = scale · (cos, sin)(p · inv_freq_i) (angles reduced in
// float-float). Depends on the RoPE table only: build it once per model for the context.
void attn_kcode_rope_table(Stream& s, const RopeFreqs& rope, Buffer& table, std::uint32_t first, std::uint32_t count);

// Causal GQA attention of query rows t < n (position pos0 + t, q (n, n_heads,
// hd) post-RoPE, unrotated) over code positions 0..pos0+t and the V cache
// (fp16, q8 or q4 as vkquant/kernels/attn.hpp lays it out, read in place); out[t, h, :] = Σ_p softmax_p(scale · score) v_p,
// fp32 softmax and accumulation. The code cache (and front keys) must hold
// positions < pos0 + n. scratch: at least attention_kcode_scratch_bytes(...).
void attention_kcode(Stream& s, const Buffer& q, const KcodeKeys& keys, const VCacheView& v, Buffer& out,
                     std::uint32_t n, std::uint32_t pos0, std::uint32_t n_heads, float scale,
                     AttnKcodeScratch& scratch, const AttnKcodeOptions& options = {});
// The same over an fp16 V cache.
void attention_kcode(Stream& s, const Buffer& q, const KcodeKeys& keys, const Buffer& vcache, Buffer& out,
                     std::uint32_t n, std::uint32_t pos0, std::uint32_t n_heads, float scale,
                     AttnKcodeScratch& scratch, const AttnKcodeOptions& options = {});

}  // namespace vkq::kernels
