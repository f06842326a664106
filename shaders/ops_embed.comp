// Embedding lookup: out[t, c] = table[ids[t], c]. Invocation (x, y) writes
// output floats 2x, 2x+1 of token y (one fp16 word, or two fp32 floats). The
// table is bound in row chunks; a dispatch writes only the tokens whose id
// falls in its chunk, and the first chunk's dispatch also zeros tokens whose
// id is out of range, so every token is written exactly once.
#version 450
#extension GL_GOOGLE_include_directive : require
#include "ops.h"

layout(local_size_x_id = 0, local_size_y_id = 1, local_size_z_id = 2) in;
layout(push_constant) uniform PC { EmbedParams p; };

layout(std430, set = 0, binding = 0) readonly buffer Table { uint table[]; };
layout(std430, set = 0, binding = 1) readonly buffer Ids { uint ids[]; };
layout(std430, set = 0, binding = 2) writeonly buffer Out { float outv[]; };

void main() {
  const uint c = gl_GlobalInvocationID.x * 2;
  const uint t = gl_GlobalInvocationID.y;
  if (c >= p.dim || t >= p.n) return;
  const uint id = ids[p.t0 + t];
  const uint o = t * p.dim + c;
  if (id >= p.vocab) {
    if (p.zero_oob != 0) {
      outv[o] = 0.0;
      if (c + 1 < p.dim) outv[o + 1] = 0.0;
    }
    return;
  }
  if (id < p.row0 || id - p.row0 >= p.rows) return;
  const uint base = (id - p.row0) * p.row_words;
#ifdef TABLE_F16
  const vec2 v = unpackHalf2x16(table[base + c / 2]);
#else
  const vec2 v = vec2(uintBitsToFloat(table[base + c]), c + 1 < p.dim ? uintBitsToFloat(table[base + c + 1]) : 0.0);
#endif
  outv[o] = v.x;
  if (c + 1 < p.dim) outv[o + 1] = v.y;
}
