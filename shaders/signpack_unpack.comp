// Sign unpacking: out[r][c] = alpha[r] * (bit c of row r ? +1 : -1) (+ mean[r]);
// one invocation per output element of the chunk (layouts in signpack.h).
#version 450
#extension GL_GOOGLE_include_directive : require
#include "signpack.h"

layout(local_size_x_id = 0) in;
layout(constant_id = 3) const uint ALPHA_F16 = 0;  // 1: alpha packed as fp16 pairs
layout(constant_id = 4) const uint HAS_MEAN = 0;   // 1: add the row mean back
layout(push_constant) uniform PC { SignunpackParams p; };

layout(std430, binding = 0) readonly buffer Bits { uint bits[]; };
layout(std430, binding = 1) readonly buffer AlphaF { float alpha_f[]; };
layout(std430, binding = 1) readonly buffer AlphaU { uint alpha_u[]; };
layout(std430, binding = 2) readonly buffer Mean { float mean_in[]; };
layout(std430, binding = 3) writeonly buffer Out { float out_f[]; };

void main() {
  const uint i = gl_GlobalInvocationID.x;
  if (i >= p.rows * p.d) return;
  const uint row = i / p.d, c = i - row * p.d;
  float a;
  if (ALPHA_F16 != 0) {
    const uint w = alpha_u[row / 2];
    a = unpackHalf2x16((row & 1u) != 0u ? w >> 16 : w).x;
  } else {
    a = alpha_f[row];
  }
  const bool pos = ((bits[row * p.words + c / 32] >> (c & 31u)) & 1u) != 0u;
  out_f[i] = (pos ? a : -a) + (HAS_MEAN != 0 ? mean_in[row] : 0.0);
}
