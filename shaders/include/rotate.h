// Learned-rotation GEMM: Y = X Rᵀ (each row y = R x), fp32 accumulation.
//
// Memory layouts (little-endian, row-major):
//   X   (rows, d)           fp32    input rows
//   Y   (rows, d)           fp32    output rows, Y[t][i] = sum_j R[i][j] X[t][j]
//   R   (d, d)              fp32    the rotation, or
//   Rh  (d, ceil(d/2))      uint32  fp16 rotation: two halves per word, the
//                                   lower half is the even column; the
//                                   padding half of an odd d is ignored.
// One dispatch covers one binding chunk of rows of X and Y; R is bound whole.
#ifndef VKQ_ROTATE_H
#define VKQ_ROTATE_H
#include "vkq_shared.h"
VKQ_GPU_BEGIN
// Push constants of rotate_*.comp.
struct RotateParams {
  uint rows;  // rows of X and Y bound by this dispatch
  uint pad0;
  uint pad1;
  uint pad2;
};
VKQ_GPU_END
#endif
