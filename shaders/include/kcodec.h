#ifndef VKQ_KCODEC_H
#define VKQ_KCODEC_H
#include "vkq_shared.h"
VKQ_GPU_BEGIN
// Push constants of kcodec_encode.comp: one invocation per (position, head).
struct KCodeEncodeParams {
  uint n;           // rows of k (positions pos0 .. pos0 + n - 1)
  uint pos0;        // cache position of row 0
  uint n_kv;
  uint stride;      // residual record halves per position (0: no residual)
  uint has_rot;     // 0: identity rotation (the rot binding is a placeholder)
  uint mean_rope;   // 1: subtract RoPE_pos(mu) (mean-RoPE variant only)
  float scale;      // RoPE attention factor (mean-RoPE; frequencies are a bound table)
  uint basis_cols;  // columns of the residual basis (its row stride)
};
// Push constants of kcodec_decode.comp: one invocation per (position, head,
// group of 8 coordinate pairs (i, i + hd/2)).
struct KCodeDecodeParams {
  uint first;    // first cache position to decode
  uint len;      // positions
  uint n_kv;
  uint stride;      // residual record halves per position (0: no residual)
  uint has_rot;
  uint rope;        // 1: apply RoPE at the cache position; 2: add RoPE_pos(mu) instead of mu
  float scale;      // RoPE attention factor (frequencies are a bound table)
  uint basis_cols;  // columns of the residual basis (its row stride)
};
// Per KV head, a row of the residual table both kernels read (binding 8):
// uvec4 {rank, bits (16, 8 or 4), offset of the head's record within a
// position in halves, 1 if alpha-relative} (vkquant/kresidual.hpp).
VKQ_GPU_END
#endif
