#ifndef VKQ_ATTN_H
#define VKQ_ATTN_H
#include "vkq_shared.h"
VKQ_GPU_BEGIN
// Push constants of attn_kv_store.comp. The cache binding starts at word
// `base_word` of the cache; src is bound whole.
struct KvStoreParams {
  uint n;          // tokens
  uint row_words;  // words per cache position: n_kv * hd / 2
  uint pos0;       // position of token 0
  uint base_word;  // first cache word in the binding
};
// Push constants of attn.comp (invocation per query row, GH heads of a group and key split).
struct AttnParams {
  uint n;          // query rows
  uint pos0;       // position of query row 0
  uint n_heads;
  uint n_kv;
  uint group;      // n_heads / n_kv
  uint splits;     // key splits per (row, head); 1: write out directly
  uint split_len;  // keys per split
  float scale;     // softmax scale, pre-multiplied into q
};
// Push constants of attn_combine.comp: merges `splits` partial softmaxes per
// (row, head) into out.
struct AttnCombineParams {
  uint rows;  // n * n_heads
  uint splits;
  uint hd;
  uint pad;
};
// Value-cache storage types (the attention kernels' VT specialization
// constant; vkquant/kernels/attn.hpp VType): fp16, or blocks of 32
// coordinates of one (position, KV head) row in int8 with an fp16 scale, or
// in 4 bits with an fp16 scale and min.
#define VKQ_V_F16 0u
#define VKQ_V_Q8 1u
#define VKQ_V_Q4 2u
#define VKQ_V_BLOCK 32u
// Push constants of attn_vstore.comp (invocation per cached row = position
// and KV head). Codes and scales are bound from their first touched word.
struct VStoreParams {
  uint rows;         // n * n_kv
  uint row0;         // first cache row written: pos0 * n_kv
  uint code_base;    // first code word in the binding
  uint scale_base;   // first scale word in the binding
};
VKQ_GPU_END
#endif
