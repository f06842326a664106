// Learned-rotation GEMM: Y = X Rᵀ (each row y = R x), fp32 accumulation.
//
// Memory layouts (little-endian, row-major):
//   X   (rows, d)           fp32    input rows
//   Y   (rows, d)           fp32    output rows, Y[t][i] = sum_j R[i][j] X[t][j]
//   R   (blocks, d, d)      fp32    the rotation(s), or
//   Rh  (blocks, d, ceil(d/2)) uint32 fp16 rotation(s): two halves per word,
//                                   the lower half is the even column; the
//                                   padding half of an odd d is ignored.
// Block-diagonal form: row t of X uses block t % blocks (X (n, blocks*d)
// viewed as (n*blocks, d) rows); blocks = 1 is a plain dense rotation.
// One dispatch covers one binding chunk of rows of X and Y (a multiple of
// blocks rows, starting on a multiple of blocks); R is bound whole.
#ifndef VKQ_ROTATE_H
#define VKQ_ROTATE_H
#include "vkq_shared.h"
VKQ_GPU_BEGIN
// Push constants of rotate_*.comp.
struct RotateParams {
  uint rows;    // rows of X and Y bound by this dispatch (a multiple of blocks)
  uint blocks;  // rotation blocks; workgroup z picks the block
  uint pad1;
  uint pad2;
};
// Push constants of rotate_pad.comp: Y (rows, dout) = X rows (din) zero-padded.
struct RotatePadParams {
  uint rows;   // rows of Y
  uint din;    // columns read from X
  uint dout;   // columns of Y (>= din)
  uint first;  // float index of X's first row in the binding
};
VKQ_GPU_END
#endif
