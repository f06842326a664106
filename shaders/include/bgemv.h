// 1-bit-weight matmul (bgemv / bgemm).
//
// Memory layouts (little-endian, row-major):
//   x      (batch, in)      fp32    the rotated input x'
//   y      (batch, out)     fp32    the output
//   B      (out, words)     uint32  words = round_up(ceil(in / 32), 4) (rows are
//                                   16-byte aligned for uvec4 loads); bit j of
//                                   word w is 1 iff the sign at column 32w + j
//                                   is +1 (w' - c >= 0), else -1. Bits of
//                                   columns >= in are ignored by every kernel.
//   c      (out)            fp32    row mean of W'
//   alpha  (out)            fp32    row mean |w' - c|
//   Q      (in, r)          fp32    optional rank-r residual y += P (Q^T x')
//   P      (out, r)         fp32
//   t      (batch, r)       fp32    scratch: t = Q^T x' (bgemv_qt.comp)
// y[b][i] = c_i S_b + alpha_i sum_j s_ij x_bj + P_i . t_b,  S_b = sum_j x_bj,
// s_ij = +1 where the bit is set, else -1.
#ifndef VKQ_BGEMV_H
#define VKQ_BGEMV_H
#include "vkq_shared.h"
VKQ_GPU_BEGIN
// Push constants of bgemv.comp (one call covers one binding chunk of weight rows).
struct BgemvParams {
  uint rows;      // weight rows in this chunk
  uint row_base;  // global index of the chunk's first row (c, alpha, P, y)
  uint cols;      // input features (`in`, `out`: GLSL keywords)
  uint words;     // uint32 words per weight row
  uint batch;     // batch rows of x and y
  uint outs;      // total output features (row stride of y)
  uint rank;      // residual rank r (0: none)
  uint pad;
};
// Push constants of bgemv_qt.comp: t = Q^T x'.
struct BgemvQtParams {
  uint cols;  // input features
  uint batch;
  uint rank;
  uint pad;
};
VKQ_GPU_END
#endif
