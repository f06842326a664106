// Busy work of a chosen length: out[i] = xorshift32 applied 16 * iters times
// to (seed ^ i) | 1. Used to keep a queue busy on purpose (the real in-flight
// work of the fence-timeout tests); the loop bound is a push constant and
// each step depends on the last, so no compiler can shorten it. Long runs
// come from many invocations, not long loops: llvmpipe (lavapipe) quietly
// ends every loop of an invocation after 65535 trips in all, so each trip
// does 16 steps and spin::record caps iters at 4096.
#version 450
#extension GL_GOOGLE_include_directive : require
#include "spin.h"

layout(local_size_x_id = 0) in;
layout(push_constant) uniform PC { SpinParams p; };
layout(std430, set = 0, binding = 0) writeonly buffer Out { uint outs[]; };

#define STEP x ^= x << 13; x ^= x >> 17; x ^= x << 5;
#define STEP4 STEP STEP STEP STEP

void main() {
  const uint i = gl_GlobalInvocationID.x;
  if (i >= p.n) return;
  uint x = (p.seed ^ i) | 1u;
  for (uint k = 0; k < p.iters; ++k) {
    STEP4 STEP4 STEP4 STEP4
  }
  outs[i] = x;
}
