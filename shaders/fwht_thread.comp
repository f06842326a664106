// FWHT / SRHT, one invocation per row (the CPU-device variant: no shared
// memory, no barriers, all arithmetic on vec4 register blocks).
//
// The row's n/4 vec4s are transformed in passes over the destination row
// (which stays in cache between passes). With B = log2(n) - 2 vec4-index
// bits and blocks of M = 2^LOG2M vec4s:
//   pass 0:  blocks of M contiguous vec4s from src; the two in-vec4 bits
//            (fwht4) and the low B0 = B - LOG2M*(P-1) vec4-index bits;
//   pass p:  LOG2M more bits, M vec4s at a stride of 2^(B0 + LOG2M*(p-1)).
// Forward signs are applied on the first load, scale and inverse signs on the
// last store.
#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "fwht.h"

layout(local_size_x_id = 0) in;
layout(constant_id = 3) const uint LOG2N = 7;  // row length n = 2^LOG2N floats
#ifndef LOG2M
#define LOG2M 3u
#endif
const uint M = 1u << LOG2M;
const uint N4 = (1u << LOG2N) >> 2u;
const uint B = LOG2N - 2u;
const uint P = (B + LOG2M - 1u) / LOG2M;  // passes
const uint B0 = B - LOG2M * (P - 1u);     // vec4-index bits of pass 0, in [1, LOG2M]

layout(push_constant) uniform PC { FwhtParams p; };
layout(std430, set = 0, binding = 0) readonly buffer Src { vec4 src[]; };
layout(std430, set = 0, binding = 1) buffer Dst { vec4 dst[]; };

void main() {
  const uint row = gl_GlobalInvocationID.x;
  if (row >= p.rows) return;
  const uint sb = p.src_base + row * N4;
  const uint db = p.dst_base + row * N4;
  const bool signs_in = (p.flags & FWHT_SIGNS_IN) != 0u;
  const bool signs_out = (p.flags & FWHT_SIGNS_OUT) != 0u;

  for (uint blk = 0u; blk < N4 / M; ++blk) {
    vec4 v[M];
    [[unroll]] for (uint i = 0u; i < M; ++i) v[i] = src[sb + blk * M + i];
    if (signs_in)
      [[unroll]] for (uint i = 0u; i < M; ++i) v[i] *= fwht_signs4(p.key, blk * M + i);
    [[unroll]] for (uint i = 0u; i < M; ++i) v[i] = fwht4(v[i]);
    FWHT_REG(v, B0)
    if (P == 1u) {
      [[unroll]] for (uint i = 0u; i < M; ++i) v[i] *= p.scale;
      if (signs_out)
        [[unroll]] for (uint i = 0u; i < M; ++i) v[i] *= fwht_signs4(p.key, blk * M + i);
    }
    [[unroll]] for (uint i = 0u; i < M; ++i) dst[db + blk * M + i] = v[i];
  }

  for (uint pass = 1u; pass < P; ++pass) {
    const uint lo = B0 + LOG2M * (pass - 1u);  // this pass transforms vec4-index bits [lo, lo + LOG2M)
    const uint stride = 1u << lo;
    const bool last = pass == P - 1u;
    for (uint g = 0u; g < N4 / M; ++g) {
      const uint first = (g & (stride - 1u)) + ((g >> lo) << (lo + LOG2M));
      vec4 v[M];
      [[unroll]] for (uint i = 0u; i < M; ++i) v[i] = dst[db + first + i * stride];
      FWHT_REG(v, LOG2M)
      if (last) {
        [[unroll]] for (uint i = 0u; i < M; ++i) v[i] *= p.scale;
        if (signs_out)
          [[unroll]] for (uint i = 0u; i < M; ++i) v[i] *= fwht_signs4(p.key, first + i * stride);
      }
      [[unroll]] for (uint i = 0u; i < M; ++i) dst[db + first + i * stride] = v[i];
    }
  }
}
