// Linear layers y = x Wᵀ with f32, fp16, bf16 or ggml block-quantized weights
// (the transformer's matmuls) and their mixture-of-experts form (ggml's
// mul_mat_id).
//
// Memory layouts (little-endian, row-major):
//   x    (batch, in)        fp32    tightly packed rows (linear_id: (n, in), or
//                                   (n, k, in) when x is per slot)
//   y    (batch, out)       fp32    tightly packed rows (linear_id: (n, k, out))
//   W    (experts, out, rw) uint32  rw = row words: f32: `in` floats rounded up
//                                   to a multiple of 4; f16 / bf16: `in` halves
//                                   rounded up to a multiple of 8, two per word,
//                                   the lower half is the even column; block
//                                   types: the row's ggml blocks as GGUF stores
//                                   them (quant.h), zero-padded to 16 bytes.
//                                   Rows are 16-byte aligned for uvec4 loads;
//                                   padding is never used (masked or skipped).
//   ids  (n, k)             uint32  expert of slot (t, j); ids >= experts give zeros
// y[b][i] = sum_j W[i][j] x[b][j] (+ y[b][i] when accumulating).
#ifndef VKQ_LINEAR_H
#define VKQ_LINEAR_H
#include "vkq_shared.h"
VKQ_GPU_BEGIN
// Push constants of linear.comp: one dispatch covers one binding window of
// weight rows (whole experts, or rows of one expert) and one window of batch
// rows / slots. Offsets place a window inside a binding whose start was
// aligned down to minStorageBufferOffsetAlignment.
struct LinearParams {
  uint rows;        // weight rows bound per expert (output features row0 .. row0 + rows - 1)
  uint row0;        // first output feature of the window
  uint cols;        // input features (`in`, `out`: GLSL keywords)
  uint wq;          // uvec4 blocks per weight row
  uint w_off;       // uvec4 offset of the window's first row in the W binding
  uint batch;       // batch rows (linear) or slots n*k (linear_id) in the window
  uint outs;        // output features (row stride of y)
  uint x_off;       // float offset of the window's first x row in the x binding
  uint y_off;       // float offset of the window's first y row in the y binding
  uint ids_off;     // uint offset of the window's first id in the ids binding
  uint flags;       // LINEAR_ACCUMULATE | LINEAR_ZERO_INVALID | LINEAR_X_PER_SLOT
  uint e0;          // linear_id: first expert of the W window
  uint ne;          // linear_id: experts in the W window
  uint experts;     // linear_id: experts in the bank (ids >= experts are invalid)
  uint k;           // linear_id: slots per token
  uint w_end;       // uvec4 index one past the window's last weight row in the W binding
};
VKQ_GPU_END
#define LINEAR_ACCUMULATE 1u    // y += x Wᵀ
#define LINEAR_ZERO_INVALID 2u  // linear_id: this dispatch also zeroes slots with invalid ids
#define LINEAR_X_PER_SLOT 4u    // linear_id: x is (n, k, in), else (n, in)
#endif
