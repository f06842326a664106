// Y = X Rᵀ as a shared-memory tiled GEMM (GPUs). Layouts in rotate.h.
//
// A workgroup (x, y, z) of (WX, WY) invocations owns a tile of BM = WY*TM rows
// of block z (rows u*blocks + z, u in [y*BM, (y+1)*BM)) by BN = WX*TN outputs and walks d in steps of BK: it stages X[rows][k-step] and
// R[outputs][k-step] in shared memory (transposed, k-major, so the inner loop
// reads consecutive words) and each invocation accumulates TM x TN outputs,
// rows ly + WY*a and outputs lx + WX*b (strided: conflict-free shared reads,
// coalesced stores). Out-of-range rows, outputs and k are staged as zeros.
#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "rotate.h"

layout(local_size_x_id = 0, local_size_y_id = 1) in;
layout(constant_id = 3) const uint D = 128;  // the rotation size d
layout(constant_id = 4) const uint TM = 4;   // rows per invocation
layout(constant_id = 5) const uint TN = 4;   // outputs per invocation
layout(push_constant) uniform PC { RotateParams p; };

layout(std430, binding = 0) readonly buffer X1 { float x1[]; };
layout(std430, binding = 0) readonly buffer X4 { vec4 x4[]; };
#if defined(FP16_R)
layout(std430, binding = 1) readonly buffer R1 { uint r1[]; };
layout(std430, binding = 1) readonly buffer R2 { uvec2 r2[]; };
#else
layout(std430, binding = 1) readonly buffer R1 { float r1[]; };
layout(std430, binding = 1) readonly buffer R4 { vec4 r4[]; };
#endif
layout(std430, binding = 2) writeonly buffer Y1 { float y1[]; };

const uint WX = gl_WorkGroupSize.x;
const uint WY = gl_WorkGroupSize.y;
const uint BM = WY * TM;
const uint BN = WX * TN;
const uint BK = 16;
const bool VEC = D % 4 == 0;
const uint D4 = D / 4;
const uint RW = (D + 1) / 2;  // uint32 words per fp16 row

shared float xs[BK][BM + 1];  // +1: staging writes of one k-row by consecutive m hit distinct banks
shared float rs[BK][BN + 1];

vec4 r_vec4(uint i, uint j4) {
#if defined(FP16_R)
  const uvec2 w = r2[i * D4 + j4];
  return vec4(unpackHalf2x16(w.x), unpackHalf2x16(w.y));
#else
  return r4[i * D4 + j4];
#endif
}

float r_at(uint i, uint j) {
#if defined(FP16_R)
  return unpackHalf2x16(r1[i * RW + j / 2])[j & 1u];
#else
  return r1[i * D + j];
#endif
}

void main() {
  const uint lx = gl_LocalInvocationID.x, ly = gl_LocalInvocationID.y;
  const uint lin = ly * WX + lx, threads = WX * WY;
  const uint row0 = gl_WorkGroupID.y * BM, o0 = gl_WorkGroupID.x * BN;  // row0: in block-row units u
  const uint blk = gl_WorkGroupID.z, nb = p.rows / p.blocks, rb = blk * D;  // rb: block blk's first row of R

  float acc[TM][TN];
  [[unroll]] for (uint a = 0; a < TM; ++a)
    [[unroll]] for (uint b = 0; b < TN; ++b) acc[a][b] = 0.0;

  for (uint k0 = 0; k0 < D; k0 += BK) {
    if (VEC) {
      for (uint e = lin; e < BM * (BK / 4); e += threads) {
        const uint m = e / (BK / 4), kq = e % (BK / 4), u = row0 + m, k = k0 + 4 * kq;
        const vec4 v = u < nb && k < D ? x4[(u * p.blocks + blk) * D4 + k / 4] : vec4(0.0);
        xs[4 * kq][m] = v.x, xs[4 * kq + 1][m] = v.y, xs[4 * kq + 2][m] = v.z, xs[4 * kq + 3][m] = v.w;
      }
      for (uint e = lin; e < BN * (BK / 4); e += threads) {
        const uint n = e / (BK / 4), kq = e % (BK / 4), o = o0 + n, k = k0 + 4 * kq;
        const vec4 v = o < D && k < D ? r_vec4(rb + o, k / 4) : vec4(0.0);
        rs[4 * kq][n] = v.x, rs[4 * kq + 1][n] = v.y, rs[4 * kq + 2][n] = v.z, rs[4 * kq + 3][n] = v.w;
      }
    } else {
      for (uint e = lin; e < BM * BK; e += threads) {
        const uint m = e / BK, kk = e % BK, u = row0 + m, k = k0 + kk;
        xs[kk][m] = u < nb && k < D ? x1[(u * p.blocks + blk) * D + k] : 0.0;
      }
      for (uint e = lin; e < BN * BK; e += threads) {
        const uint n = e / BK, kk = e % BK, o = o0 + n, k = k0 + kk;
        rs[kk][n] = o < D && k < D ? r_at(rb + o, k) : 0.0;
      }
    }
    barrier();  // the k-step's tiles are staged

    [[unroll]] for (uint kk = 0; kk < BK; ++kk) {
      float xv[TM], rv[TN];
      [[unroll]] for (uint a = 0; a < TM; ++a) xv[a] = xs[kk][ly + WY * a];
      [[unroll]] for (uint b = 0; b < TN; ++b) rv[b] = rs[kk][lx + WX * b];
      [[unroll]] for (uint a = 0; a < TM; ++a)
        [[unroll]] for (uint b = 0; b < TN; ++b) acc[a][b] = fma(xv[a], rv[b], acc[a][b]);
    }
    barrier();  // every invocation is done reading before the next k-step overwrites the tiles
  }

  [[unroll]] for (uint a = 0; a < TM; ++a) {
    const uint u = row0 + ly + WY * a;
    if (u >= nb) continue;
    const uint row = u * p.blocks + blk;
    [[unroll]] for (uint b = 0; b < TN; ++b) {
      const uint o = o0 + lx + WX * b;
      if (o < D) y1[row * D + o] = acc[a][b];
    }
  }
}
