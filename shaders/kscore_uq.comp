// uq[h][i] = Σ_j U[(h / group) % kv_heads][j][i] · q'[h][j], i < R (the
// basis' columns): the residual's query side, once per query head h in [first, first + q_heads)
// (layouts in kscore.h).
#version 450
#extension GL_GOOGLE_include_directive : require
#include "kscore.h"

layout(local_size_x_id = 0) in;
layout(constant_id = 3) const uint D = 128;  // head dimension

layout(push_constant) uniform PC { KscoreQueryParams p; };
layout(std430, binding = 0) readonly buffer Query { float q[]; };
layout(std430, binding = 1) readonly buffer Basis { float u[]; };
layout(std430, binding = 2) writeonly buffer Uq { float uq[]; };

void main() {
  const uint i = gl_GlobalInvocationID.x % p.cols;
  const uint m = gl_GlobalInvocationID.x / p.cols;
  if (m >= p.q_heads) return;
  const uint h = p.first + m;
  const uint ub = ((h / p.group) % p.kv_heads) * D * p.cols + i;
  float s = 0.0;
  for (uint j = 0; j < D; ++j) s += u[ub + j * p.cols] * q[h * D + j];
  uq[h * p.cols + i] = s;
}
