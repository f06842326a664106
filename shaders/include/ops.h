#ifndef VKQ_OPS_H
#define VKQ_OPS_H
#include "vkq_shared.h"
VKQ_GPU_BEGIN
// Push constants of ops_embed.comp. The table binding starts at row `row0`
// and holds `rows` rows of `row_words` uint32 words; ids and out start at
// token `t0` of this dispatch's `n` tokens.
struct EmbedParams {
  uint n;          // tokens of this dispatch
  uint t0;         // index of its first token in ids
  uint dim;        // output floats per token
  uint row_words;  // table row stride in words
  uint row0;       // first table row in the binding
  uint rows;       // table rows in the binding
  uint vocab;      // table rows in all; ids >= vocab give zeros
  uint zero_oob;   // 1: this dispatch also writes the zeros of out-of-range ids
};
// Push constants of ops_rmsnorm.comp (one workgroup per row).
struct RmsnormParams {
  uint rows;
  uint d;
  float eps;
  uint pad;
};
// Push constants of ops_rope.comp; the pair frequencies are a bound table
// (vkquant/rope.hpp).
struct RopeParams {
  uint n;      // tokens in this dispatch
  uint heads;
  uint hd;
  uint pos0;   // position of this dispatch's first token
  float scale; // attention factor multiplying cos and sin (1: none)
  uint pad0;
  uint neox;   // 1: pairs (i, i + hd/2); 0: pairs (2i, 2i+1)
  uint pad1;
};
// Push constants of ops_eltwise.comp (swiglu, add, add_bias).
struct EltwiseParams {
  uint count;  // elements of this dispatch's bindings
  uint d;      // add_bias: row length (bias elements)
  uint pad0;
  uint pad1;
};
// Push constants of ops_moe_route.comp (one invocation per token).
struct MoeRouteParams {
  uint n;
  uint experts;
  uint k;
  uint normalize;
};
// Push constants of ops_moe_combine.comp. y and out bindings start at token
// t0; weights is bound whole.
struct MoeCombineParams {
  uint n;   // tokens of this dispatch
  uint t0;  // its first token
  uint k;
  uint d;
  uint accumulate;
  uint pad0;
  uint pad1;
  uint pad2;
};
VKQ_GPU_END
#endif
