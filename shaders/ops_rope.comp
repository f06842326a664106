// Rotary position embedding, in place on x (n, heads, hd). Invocation (i, t)
// rotates pair i of token t in every head with one angle.
//
// Accuracy: pos * freq at positions up to 1e6 needs more than fp32 (an fp32
// product is off by up to ~0.06 rad there). The angle is formed in
// float-float arithmetic from the model's frequency table (kcodec_rope.h),
// reduced modulo 2π; only the reduced angle goes through fp32 cos/sin.
#version 450
#extension GL_GOOGLE_include_directive : require
#include "ops.h"
#include "kcodec_rope.h"

layout(local_size_x_id = 0, local_size_y_id = 1, local_size_z_id = 2) in;
layout(push_constant) uniform PC { RopeParams p; };

layout(std430, set = 0, binding = 0) buffer X { float x[]; };
layout(std430, set = 0, binding = 1) readonly buffer F { float inv_freq[]; };  // (hd/2)

void main() {
  const uint half_hd = p.hd / 2;
  const uint i = gl_GlobalInvocationID.x;
  const uint t = gl_GlobalInvocationID.y;
  if (i >= half_hd || t >= p.n) return;

  const vec2 cs = rope_cos_sin(df_position(p.pos0 + t), inv_freq[i], p.scale);
  const uint stride = p.neox != 0 ? half_hd : 1;
  const uint off = p.neox != 0 ? i : 2 * i;
  for (uint h = 0; h < p.heads; ++h) {
    const uint j = (t * p.heads + h) * p.hd + off;
    const float x0 = x[j], x1 = x[j + stride];
    x[j] = x0 * cs.x - x1 * cs.y;
    x[j + stride] = x0 * cs.y + x1 * cs.x;
  }
}
