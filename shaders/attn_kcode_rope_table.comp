// The mean-RoPE table (attn_kcode.h): table[p][i] = scale · (cos, sin)(p · inv_freq[i])
// for positions first .. first+positions-1, float-float angles (kcodec_rope.h).
#version 450
#extension GL_GOOGLE_include_directive : require
#include "attn_kcode.h"
#include "kcodec_rope.h"

layout(local_size_x_id = 0) in;
layout(push_constant) uniform PC { AttnKcodeTableParams p; };
layout(std430, binding = 0) writeonly buffer Table { vec2 table[]; };  // (positions, hd/2)
layout(std430, binding = 1) readonly buffer F { float inv_freq[]; };    // (hd/2)

void main() {
  const uint gid = gl_GlobalInvocationID.x;
  if (gid >= p.positions * p.half_hd) return;
  const uint pos = p.first + gid / p.half_hd, i = gid % p.half_hd;
  table[pos * p.half_hd + i] = rope_cos_sin(df_position(pos), inv_freq[i], p.scale);
}
