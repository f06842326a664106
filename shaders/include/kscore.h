// kscore: query vectors against N 1-bit keys (docs/design.md §2), and the fp16 q·Kᵀ
// baseline.
//
// Memory layouts (little-endian, row-major; "fp16" = two halves per uint32
// word, the lower half holds the even element; W = ceil(d / 32)):
//   bits    (kv_heads, N, W)       uint32  bit j of word w is 1 iff the rotated
//                                          key coordinate 32w + j is >= 0 (s = +1),
//                                          else s = -1. Padding bits (>= d) are
//                                          ignored whatever their value.
//   alpha   (kv_heads, N)          fp16    flat: element kv*N + t, no per-head
//                                          padding (buffer: ceil(kv_heads*N/2) words)
//   c       halves                         residual records (vkquant/kresidual.hpp):
//                                          key t of KV head kv at half c_offset + t·c_stride
//                                          (the head's offset and stride; optional)
//   U       (kv_heads, d, R)       fp32    residual basis U_R, R = uq_stride (optional)
//   q       (q_heads, d)           fp32    rotated queries q' = R q; query head h
//                                          uses KV head h / group (Llama GQA)
//   qmu     (q_heads)              fp32    optional q·mu, added to every score
//   uq      (q_heads, R)           fp32    scratch: U_Rᵀ q' (kscore_uq.comp)
//   planes  (q_heads, b, W)        uint32  popcount path: bit-plane p of the
//                                          quantized query Q; padding bits are 0
//   qconst  (q_heads)              KscoreQueryConst  per-head Δ, z, 1/Δ, Σ Q_i
//   scores  (q_heads, N)           fp32    score[h][t] = qmu[h] + alpha[t]·(q'_h·s_t)
//                                          + Σ_{i<r_kv} (Uᵀq'_h)_i ĉ_{t,i}
//   sums    (q_heads, N)           int32   popcount_sums: Σ_i s_i Q_i (exact)
//   K       (kv_heads, N, ceil(d/2)) fp16  fp16 baseline keys; an odd d's padding
//                                          half is ignored
//
// Popcount path: Q = clamp(roundEven(q'·(1/Δ) + z), 0, 2^b - 1) with
// Δ = (max q' - min q') / (2^b - 1), z = -min q' / Δ (b = 4, 8), so that
// q' ≈ Δ(Q - z). For b = 1, Q = (q' >= 0), Δ = 2·mean|q'|, z = 1/2, i.e. the
// sign-of-query form q' ≈ mean|q'|·sign(q'). Then
//   Σ s_i Q_i = 2·Σ_p 2^p popcount(Q_p & bits) - Σ Q_i,
//   q'·s ≈ Δ·(Σ s_i Q_i - z·Σ s_i),  Σ s_i = 2·popcount(bits) - d.
//
// Generalised layouts (attention over a position-major code cache): key t of
// KV head kv is key row kv*head_stride + t*key_stride of bits and alpha
// (key-major: head_stride = N, key_stride = 1; position-major, i.e. the
// kcodec cache (N, kv_heads, ...): head_stride = 1, key_stride = kv_heads).
// Several query rows per call: q, qmu, uq, planes and qconst hold rows
// (query row, q_heads), scores (query rows of the call, q_heads, N); query row
// y of the call reads query-side row query0 + y. A dispatch scores rows
// [row0, row0 + rows) (taken from push constants, never from gl_WorkGroupID,
// so that query addresses stay provably uniform). Causal: query row y writes
// only keys t < causal0 + y (the others keep their contents).
//
// Every scoring dispatch covers one KV head, query rows [row0, row0 + rows),
// keys [key0, key0 + keys) and query-head members [gsub0, gsub0 + G) of its
// group (head and rows come from push constants so that query addresses are
// provably uniform); buffers over
// maxStorageBufferRange are bound as windows, and each *_base below is the
// global element index where the bound window starts (the kernel subtracts
// it from global indices).
#ifndef VKQ_KSCORE_H
#define VKQ_KSCORE_H
#include "vkq_shared.h"
VKQ_GPU_BEGIN
// Push constants of kscore.comp (float, popcount, popcount sums, fp16).
struct KscoreParams {
  uint n;            // keys per KV head (N): row stride of alpha, c, scores
  uint key0;         // first key of this dispatch
  uint keys;         // keys in this dispatch
  uint kv;           // the KV head
  uint group;        // query heads per KV head
  uint gsub0;        // first group member this dispatch scores (G of them)
  uint c_offset;     // first half of this KV head's key-0 record in c (residual rank: the constant R)
  uint has_qmu;      // 1: add qmu[h]
  uint bits_base;    // window start, in words, of bits (or K for fp16)
  uint alpha_base;   // window start, in halves, of alpha (even)
  uint c_base;       // window start, in halves, of c (even)
  uint c_stride;     // halves between the records of consecutive keys of this KV head
  uint scores_base;  // window start, in elements, of scores / sums
  uint key_stride;   // key rows between consecutive keys of one KV head
  uint head_stride;  // key rows between KV heads
  uint q_heads;      // query heads per query row
  uint query0;       // query-side row of the call's query row 0
  uint causal0;      // query row y scores keys < causal0 + y (0xffffffff: all)
  uint row0;         // first query row of the call this dispatch scores
  uint rows;         // query rows it scores, 1..Y (the kernel's row slots)
  uint uq_stride;    // uq floats per query head (the basis' columns R)
  uint pad0, pad1;
};
// Push constants of kscore_quantize.comp and kscore_uq.comp.
struct KscoreQueryParams {
  uint q_heads;   // query heads to process (rows x heads per row)
  uint group;
  uint cols;      // uq only: the basis' columns R (uq's row stride)
  uint kv_heads;  // uq only: the basis of query head m is (m / group) % kv_heads
  uint first;     // first query head processed (global index m)
  uint pad0, pad1, pad2;
};
// Per query head constants written by kscore_quantize.comp.
struct KscoreQueryConst {
  float delta;      // Δ
  float zero;       // z
  float inv_delta;  // 1/Δ as used for quantizing
  uint sum_q;       // Σ_i Q_i
};
VKQ_GPU_END
#endif
