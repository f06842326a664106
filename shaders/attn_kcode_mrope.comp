// Adds the mean-RoPE term q·RoPE_p(mu) = Σ_i A_i cos(p f_i) + B_i sin(p f_i)
// to the scores of one query block (layouts in attn_kcode.h): invocation
// (key p, block row y) reads the table row of p once for every head; keys
// below front (exact) or past the row's causal end are skipped.
#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "attn_kcode.h"

layout(local_size_x_id = 0) in;
layout(constant_id = 3) const uint HD = 128;
layout(push_constant) uniform PC { AttnKcodeParams p; };

layout(std430, binding = 0) readonly buffer Mrope { float mrope[]; };  // (n, n_heads, hd)
layout(std430, binding = 1) readonly buffer Table { float table[]; };  // (positions, hd)
layout(std430, binding = 2) buffer Scores { float scores[]; };         // (nb, n_heads, kv_len)

void main() {
  const uint j = gl_GlobalInvocationID.x;
  const uint y = gl_WorkGroupID.y;  // workgroups are 1 high
  if (j < p.front || j > p.pos0 + p.row0 + y || j >= p.kv_len) return;
  float c[HD];
  [[unroll]] for (uint i = 0; i < HD; ++i) c[i] = table[j * HD + i];
  for (uint h = 0; h < p.n_heads; ++h) {
    const uint mb = ((p.row0 + y) * p.n_heads + h) * HD;
    float a0 = 0.0, a1 = 0.0;
    [[unroll]] for (uint i = 0; i < HD; i += 2) {
      a0 += mrope[mb + i] * c[i];
      a1 += mrope[mb + i + 1] * c[i + 1];
    }
    scores[(y * p.n_heads + h) * p.kv_len + j] += a0 + a1;
  }
}
