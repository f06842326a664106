#ifndef VKQ_KCODEC_H
#define VKQ_KCODEC_H
#include "vkq_shared.h"
VKQ_GPU_BEGIN
// Push constants of kcodec_encode.comp: one invocation per (position, head).
struct KCodeEncodeParams {
  uint n;           // rows of k (positions pos0 .. pos0 + n - 1)
  uint pos0;        // cache position of row 0
  uint n_kv;
  uint rank;        // residual basis columns (0: none)
  uint has_rot;     // 0: identity rotation (the rot binding is a placeholder)
  uint mean_rope;   // 1: subtract RoPE_pos(mu) (mean-RoPE variant only)
  float scale;      // RoPE attention factor (mean-RoPE; frequencies are a bound table)
  uint pad;
};
// Push constants of kcodec_decode.comp: one invocation per (position, head,
// group of 8 coordinate pairs (i, i + hd/2)).
struct KCodeDecodeParams {
  uint first;    // first cache position to decode
  uint len;      // positions
  uint n_kv;
  uint rank;
  uint has_rot;
  uint rope;     // 1: apply RoPE at the cache position; 2: add RoPE_pos(mu) instead of mu
  float scale;   // RoPE attention factor (frequencies are a bound table)
  uint pad;
};
VKQ_GPU_END
#endif
