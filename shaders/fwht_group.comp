// FWHT / SRHT, one workgroup per 2^LOG2RPG rows (the GPU variant): the rows
// live in shared memory, every invocation transforms one block of M = 2^LOG2M
// vec4s per round in registers.
//
// With B = log2(n) - 2 vec4-index bits and R = ceil(B / LOG2M) rounds:
//   round 0:  global -> registers -> shared, coalesced (consecutive
//             invocations read consecutive vec4s); the two in-vec4 bits and
//             the top B0 = B - LOG2M*(R-1) vec4-index bits (M / 2^B0
//             independent groups per block);
//   round r:  LOG2M bits further down, shared -> registers -> shared;
//   out:      shared -> global, coalesced, with scale and inverse signs.
// Shared memory is padded by one vec4 per M so that blocks of M contiguous
// vec4s read by neighbouring invocations fall in different banks.
#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "fwht.h"

layout(local_size_x_id = 0) in;                 // must equal TASKS
layout(constant_id = 3) const uint LOG2N = 7;   // row length n = 2^LOG2N floats
layout(constant_id = 4) const uint LOG2RPG = 0; // rows per workgroup = 2^LOG2RPG
#ifndef LOG2M
#define LOG2M 3u
#endif
const uint M = 1u << LOG2M;
const uint N4 = (1u << LOG2N) >> 2u;
const uint B = LOG2N - 2u;
const uint R = (B + LOG2M - 1u) / LOG2M;  // rounds
const uint B0 = B - LOG2M * (R - 1u);     // vec4-index bits of round 0, in [1, LOG2M]
const uint LOG2TPR = B - LOG2M;           // log2(blocks per row)
const uint TPR = 1u << LOG2TPR;
const uint SHARED = (N4 << LOG2RPG) + ((N4 << LOG2RPG) >> LOG2M);

layout(push_constant) uniform PC { FwhtParams p; };
layout(std430, set = 0, binding = 0) readonly buffer Src { vec4 src[]; };
layout(std430, set = 0, binding = 1) writeonly buffer Dst { vec4 dst[]; };

shared vec4 sh[SHARED];

uint phys(uint i) { return i + (i >> LOG2M); }

void main() {
  const uint t = gl_LocalInvocationID.x;
  const uint lrow = t >> LOG2TPR;
  const uint g = t & (TPR - 1u);
  const uint row = (gl_WorkGroupID.x << LOG2RPG) + lrow;
  const bool valid = row < p.rows;
  const uint rb = lrow * N4;  // the row's first vec4 in shared memory
  vec4 v[M];

  // Round 0: element i = j + 2^B0 q of the block sits at
  // j * (N4 >> B0) + q * TPR + g: the top B0 bits are j.
  [[unroll]] for (uint i = 0u; i < M; ++i) {
    const uint pos = (i & ((1u << B0) - 1u)) * (N4 >> B0) + (i >> B0) * TPR + g;
    v[i] = valid ? src[p.src_base + row * N4 + pos] : vec4(0.0);
    if ((p.flags & FWHT_SIGNS_IN) != 0u) v[i] *= fwht_signs4(p.key, pos);
    v[i] = fwht4(v[i]);
  }
  FWHT_REG(v, B0)
  [[unroll]] for (uint i = 0u; i < M; ++i)
    sh[phys(rb + (i & ((1u << B0) - 1u)) * (N4 >> B0) + (i >> B0) * TPR + g)] = v[i];
  barrier();  // round 0 of every block is in shared memory

  for (uint r = 1u; r < R; ++r) {
    const uint lo = B - B0 - LOG2M * r;  // this round transforms vec4-index bits [lo, lo + LOG2M)
    const uint first = rb + (g & ((1u << lo) - 1u)) + ((g >> lo) << (lo + LOG2M));
    [[unroll]] for (uint i = 0u; i < M; ++i) v[i] = sh[phys(first + (i << lo))];
    FWHT_REG(v, LOG2M)
    [[unroll]] for (uint i = 0u; i < M; ++i) sh[phys(first + (i << lo))] = v[i];
    barrier();  // the round is complete before the next one reads other blocks' results
  }

  if (!valid) return;
  [[unroll]] for (uint i = 0u; i < M; ++i) {
    const uint pos = i * TPR + g;
    vec4 y = sh[phys(rb + pos)] * p.scale;
    if ((p.flags & FWHT_SIGNS_OUT) != 0u) y *= fwht_signs4(p.key, pos);
    dst[p.dst_base + row * N4 + pos] = y;
  }
}
