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
  uint transform;   // 1: transform code (no bits, no alpha; the bits and alpha bindings are placeholders)
  uint has_levels;  // 1: the transform code's calibrated levels (binding 9); 0: uniform (a placeholder)
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
  uint transform;   // 1: transform code (no bits, no alpha)
  uint has_levels;  // 1: the transform code's calibrated levels (binding 9); 0: uniform (a placeholder)
};
// Per KV head, a row of the residual table both kernels read (binding 8):
// uvec4 {rank, bits (16, 8 or 4), offset of the head's record within a
// position in halves, 1 if alpha-relative} (vkquant/kresidual.hpp); a
// transform-coded head: {rank, n4 | n3 << 10 | n2 << 20, offset, 2}.
VKQ_GPU_END
#endif

#ifndef __cplusplus
// Code r of a transform-coded record of n4 4-bit, n3 3-bit and n2 2-bit
// codes (then 1-bit ones): its width, the half holding its low bit (from the
// record's first) and that bit's shift; a 3-bit code at shift 14 or 15 runs
// into the next half (kresidual.hpp's tc_slot).
uvec3 tc_slot(uint n4, uint n3, uint n2, uint r) {
  if (r < n4) return uvec3(4u, r / 4u, 4u * (r % 4u));
  uint h0 = n4 / 4u;
  r -= n4;
  if (r < n3) return uvec3(3u, h0 + 3u * r / 16u, 3u * r % 16u);
  h0 += 3u * n3 / 16u;
  r -= n3;
  if (r < n2) return uvec3(2u, h0 + r / 8u, 2u * (r % 8u));
  h0 += n2 / 8u;
  r -= n2;
  return uvec3(1u, h0 + r / 16u, r % 16u);
}
// A transform-coded head's table row's y: n4 | n3 << 10 | n2 << 20.
uvec3 kcodec_tc_counts(uvec4 hr) { return uvec3(hr.y & 0x3ffu, (hr.y >> 10) & 0x3ffu, hr.y >> 20); }
// The same for code r of any record: hr is the head's table row; cb, per and
// lead describe a sign-coded head's 8/4-bit or alpha-relative codes.
uvec3 kcodec_slot(uvec4 hr, uint r, uint cb, uint per, uint lead) {
  if (hr.w == 2u) {
    const uvec3 n = kcodec_tc_counts(hr);
    return tc_slot(n.x, n.y, n.z, r);
  }
  return uvec3(cb, lead + r / per, cb * (r % per));
}
// Halves of a transform-coded head's record.
uint kcodec_tc_halves(uvec4 hr) {
  const uvec3 n = kcodec_tc_counts(hr);
  return n.x / 4u + 3u * n.y / 16u + n.z / 8u + (hr.x - n.x - n.y - n.z) / 16u;
}
#endif
