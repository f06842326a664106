// MoE combine: out[t, c] (+)= Σ_j weights[t, j] · y[t, j, c]. Invocation
// (c, t) owns one output element. y and out are bound from token t0 on.
#version 450
#extension GL_GOOGLE_include_directive : require
#include "ops.h"

layout(local_size_x_id = 0, local_size_y_id = 1, local_size_z_id = 2) in;
layout(push_constant) uniform PC { MoeCombineParams p; };

layout(std430, set = 0, binding = 0) readonly buffer Y { float y[]; };
layout(std430, set = 0, binding = 1) readonly buffer W { float weights[]; };
layout(std430, set = 0, binding = 2) buffer Out { float outv[]; };

void main() {
  const uint c = gl_GlobalInvocationID.x;
  const uint t = gl_GlobalInvocationID.y;
  if (c >= p.d || t >= p.n) return;
  float acc = 0.0;
  for (uint j = 0; j < p.k; ++j) acc += weights[(p.t0 + t) * p.k + j] * y[(t * p.k + j) * p.d + c];
  const uint o = t * p.d + c;
  outv[o] = p.accumulate != 0 ? outv[o] + acc : acc;
}
