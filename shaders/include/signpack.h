// Sign packing: rows of floats -> sign bits + alpha (+ mean), and back.
//
// Memory layouts (all little-endian, row-major):
//   v      (rows, d)        fp32   input, row stride d floats; or
//          (rows, H)        uint32 fp16 input, H = ceil(d / 2) words per row:
//                                  two halves per word, the lower half is the
//                                  even column; when d is odd the last word's
//                                  upper half is padding (ignored).
//   bits   (rows, W)        uint32 W = ceil(d / 32); bit j of word w is 1 iff
//                                  x[32w + j] >= 0 (+0.0 and -0.0 both give
//                                  1), x = v - mean when centering, else v.
//                                  Padding bits (columns >= d) are 0.
//   alpha  (rows)           fp32   ||x||_1 / d; or
//          (ceil(rows / 2)) uint32 fp16: two rows per word, the lower half is
//                                  the even row; an odd row count leaves the
//                                  last word's upper half 0.
//   mean   (rows)           fp32   optional: the row mean subtracted (centering).
//   out    (rows, d)        fp32   unpack: alpha * (bit ? +1 : -1) (+ mean).
#ifndef VKQ_SIGNPACK_H
#define VKQ_SIGNPACK_H
#include "vkq_shared.h"
VKQ_GPU_BEGIN
// Push constants of signpack.comp (one call covers one binding chunk of rows;
// every binding starts at the chunk's first row, which is even).
struct SignpackParams {
  uint rows;       // rows in this chunk
  uint d;          // columns per row
  uint words;      // W = ceil(d / 32)
  uint in_stride;  // input row stride: d floats (fp32) or ceil(d / 2) words (fp16)
};
// Push constants of signpack_unpack.comp.
struct SignunpackParams {
  uint rows;   // rows in this chunk
  uint d;      // columns per row
  uint words;  // W = ceil(d / 32)
  uint pad;
};
VKQ_GPU_END
#endif
