// Residual projection of bgemv: t[b][k] = sum_j Q[j][k] x[b][j] for k < r.
// One workgroup per batch row; invocations stride over j with KC
// accumulators and reduce through shared memory (no subgroup assumption).
// The workgroup size must be a power of two.
#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "bgemv.h"

layout(local_size_x_id = 0) in;
layout(push_constant) uniform PC { BgemvQtParams p; };
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer Q { float qmat[]; };
layout(std430, binding = 2) writeonly buffer T { float t[]; };

const uint KC = 8;  // residual columns per pass
shared float red[KC][gl_WorkGroupSize.x];

void main() {
  const uint b = gl_WorkGroupID.x, tid = gl_LocalInvocationID.x, wg = gl_WorkGroupSize.x;
  for (uint k0 = 0; k0 < p.rank; k0 += KC) {
    float acc[KC];
    [[unroll]] for (uint kk = 0; kk < KC; ++kk) acc[kk] = 0.0;
    for (uint j = tid; j < p.cols; j += wg) {
      const float xv = x[b * p.cols + j];
      [[unroll]] for (uint kk = 0; kk < KC; ++kk)
        if (k0 + kk < p.rank) acc[kk] += qmat[j * p.rank + k0 + kk] * xv;
    }
    [[unroll]] for (uint kk = 0; kk < KC; ++kk) red[kk][tid] = acc[kk];
    barrier();  // every partial sum is in shared memory
    for (uint h = wg / 2; h > 0; h /= 2) {
      if (tid < h) [[unroll]] for (uint kk = 0; kk < KC; ++kk) red[kk][tid] += red[kk][tid + h];
      barrier();  // this tree level is complete before the next reads it
    }
    if (tid < KC && k0 + tid < p.rank) t[b * p.rank + k0 + tid] = red[tid][0];
    barrier();  // red is reused by the next pass
  }
}
