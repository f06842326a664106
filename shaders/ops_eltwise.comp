// Elementwise ops over a binding of `count` floats: swiglu (out = silu(a) *
// b), add (a += b) and add_bias (a[r, c] += b[c]). Workgroup w covers
// elements [w*WG*ITEMS, (w+1)*WG*ITEMS); invocation t touches w*WG*ITEMS +
// k*WG + t, so neighbours touch neighbouring addresses on every step. The
// output may alias an input: each element is read and written by one
// invocation.
#version 450
#extension GL_GOOGLE_include_directive : require
#include "ops.h"

layout(local_size_x_id = 0) in;
layout(constant_id = 3) const uint ITEMS = 4;
layout(push_constant) uniform PC { EltwiseParams p; };

#if defined(MODE_SWIGLU)
layout(std430, set = 0, binding = 0) readonly buffer A { float a[]; };
layout(std430, set = 0, binding = 1) readonly buffer B { float b[]; };
layout(std430, set = 0, binding = 2) writeonly buffer O { float o[]; };
#elif defined(MODE_ADD) || defined(MODE_BIAS)
layout(std430, set = 0, binding = 0) buffer A { float a[]; };
layout(std430, set = 0, binding = 1) readonly buffer B { float b[]; };
#else
#error "define MODE_SWIGLU, MODE_ADD or MODE_BIAS"
#endif

void main() {
  const uint wg = gl_WorkGroupSize.x;
  const uint first = gl_WorkGroupID.x * wg * ITEMS + gl_LocalInvocationID.x;
  for (uint k = 0; k < ITEMS; ++k) {
    const uint i = first + k * wg;
    if (i >= p.count) return;
#if defined(MODE_SWIGLU)
    const float g = a[i];
    o[i] = g / (1.0 + exp(-g)) * b[i];
#elif defined(MODE_ADD)
    a[i] += b[i];
#else
    a[i] += b[i % p.d];
#endif
  }
}
