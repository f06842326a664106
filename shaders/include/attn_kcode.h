// attn_kcode: causal GQA attention over the 1-bit K-cache code (docs/design.md §2)
// and the fp16 V cache. Layouts (f32 unless said otherwise):
//   q        (n, n_heads, hd)        post-RoPE queries (unrotated)
//   qrot     (n, n_heads, hd)        q' = R_{h/group} q (kscore's q)
//   qmu      (n, n_heads)            q·mu_{h/group} (plain mean; kscore's qmu)
//   mrope    (n, n_heads, hd/2, 2)   mean-RoPE: (A_i, B_i) = (q_i mu_i + q_{i+hd/2} mu_{i+hd/2},
//                                    q_{i+hd/2} mu_i - q_i mu_{i+hd/2}), so that
//                                    q·RoPE_p(mu) = Σ_i A_i cos(p f_i) + B_i sin(p f_i)
//   table    (positions, hd/2, 2)    (cos(p f_i), sin(p f_i)), f_i = theta^(-2i/hd)
//   scores   (nb, n_heads, kv_len)   one block of nb query rows: kscore's scores
//                                    (+ the mean-RoPE term); keys past a row's
//                                    causal end are never read
//   front    (front, n_kv, hd/2)     uint32: exact fp16 keys (kv_store layout)
//   vcache   (kv_len, n_kv, hd/2)    uint32: fp16 values (kv_store layout)
//   partial  (nb, n_heads, splits, hd + 2)  split-K partials: m, l, acc
//   out      (n, n_heads, hd)
#ifndef VKQ_ATTN_KCODE_H
#define VKQ_ATTN_KCODE_H
#include "vkq_shared.h"
VKQ_GPU_BEGIN
// attn_kcode_query.comp: one invocation per (query row, head, coordinate).
struct AttnKcodeQueryParams {
  uint rows;       // n * n_heads
  uint n_heads;
  uint group;      // n_heads / n_kv
  uint hd;
  uint has_rot;    // 0: identity (the rot binding is a placeholder)
  uint mean_rope;  // 1: write mrope instead of qmu
  uint pad0, pad1;
};
// attn_kcode_rope_table.comp: one invocation per (position, pair).
struct AttnKcodeTableParams {
  uint first;      // first position written
  uint positions;  // positions written
  uint half_hd;    // hd / 2
  uint pad0;
  float scale;     // RoPE attention factor (frequencies are a bound table)
  uint pad1, pad2, pad3;
};
// attn_kcode_mrope.comp (x: key, y: query row of the block) and
// attn_kcode_softmax.comp (one invocation per (row, GH heads of a group, key split)).
struct AttnKcodeParams {
  uint nb;         // query rows in this block
  uint row0;       // first query row of the block (of n)
  uint pos0;       // position of query row 0
  uint n_heads;
  uint n_kv;
  uint group;
  uint kv_len;     // score row stride (pos0 + n)
  uint front;      // keys < front: exact fp16 keys
  uint splits;     // softmax only
  uint split_len;  // softmax only
  float scale;     // softmax only
  uint pad0;
};
// attn_kcode_combine.comp: one invocation per output element of the block.
struct AttnKcodeCombineParams {
  uint rows;    // nb * n_heads
  uint splits;
  uint hd;
  uint out0;    // first output element of the block
};
VKQ_GPU_END
#endif
