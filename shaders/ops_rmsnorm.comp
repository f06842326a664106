// RMSNorm, one workgroup per row: y = x / sqrt(mean(x²) + eps) * weight.
// Each invocation sums the squares of a strided slice, the partial sums meet
// in shared memory, and every invocation adds them all up itself (one
// barrier; no subgroup operations, so any subgroup size works). y may alias x:
// each invocation rewrites only the elements it read.
#version 450
#extension GL_GOOGLE_include_directive : require
#include "ops.h"

layout(local_size_x_id = 0) in;
layout(push_constant) uniform PC { RmsnormParams p; };

layout(std430, set = 0, binding = 0) readonly buffer X { float x[]; };
layout(std430, set = 0, binding = 1) readonly buffer W { float w[]; };
layout(std430, set = 0, binding = 2) writeonly buffer Y { float y[]; };

shared float partial[gl_WorkGroupSize.x];

void main() {
  const uint row = gl_WorkGroupID.x;
  const uint lid = gl_LocalInvocationID.x;
  const uint wg = gl_WorkGroupSize.x;
  const bool live = row < p.rows;  // no early return: every invocation must reach the barrier
  const uint base = row * p.d;
  float ss = 0.0;
  if (live)
    for (uint c = lid; c < p.d; c += wg) ss += x[base + c] * x[base + c];
  partial[lid] = ss;
  barrier();  // every invocation's partial sum is in shared memory
  float total = 0.0;
  for (uint i = 0; i < wg; ++i) total += partial[i];
  if (!live) return;
  const float inv = inversesqrt(total / float(p.d) + p.eps);
  for (uint c = lid; c < p.d; c += wg) y[base + c] = x[base + c] * inv * w[c];
}
