// Writes rows of src (n, n_kv*hd) f32 into the fp16 cache at positions
// pos0 + t, one word (two halves, low = even column) per invocation. The
// conversion is round-to-nearest-even done on the bits (packHalf2x16's
// rounding mode is implementation-defined), bit-exact with vkq::to_half.
#version 450
#extension GL_GOOGLE_include_directive : require
#include "attn.h"
#include "half.h"

layout(local_size_x_id = 0) in;
layout(push_constant) uniform PC { KvStoreParams p; };

layout(std430, set = 0, binding = 0) readonly buffer Src { vec2 src[]; };
layout(std430, set = 0, binding = 1) writeonly buffer Cache { uint cache[]; };

void main() {
  const uint i = gl_GlobalInvocationID.x;
  if (i >= p.n * p.row_words) return;
  const uint t = i / p.row_words, w = i - t * p.row_words;
  const vec2 v = src[i];
  cache[(p.pos0 + t) * p.row_words + w - p.base_word] = to_half(v.x) | (to_half(v.y) << 16);
}
