// y = x Wᵀ as a shared-memory tiled GEMM for large batches on GPUs (plain
// linear only; layouts in linear.h), f32, fp16 (WF16) or bf16 (WBF16) weights.
//
// A workgroup of (WX, WY) invocations owns BM = WY*TM batch rows by BN = WX*TN
// output features and walks `in` in steps of BK: it stages x[rows][k-step] and
// W[features][k-step] in shared memory (k-major, so the inner loop reads
// consecutive words) and each invocation accumulates TM x TN outputs, rows
// ly + WY*a and features lx + WX*b (conflict-free shared reads, coalesced
// stores). Out-of-range rows, features and columns are staged as zeros, so
// the weights are read once per BM batch rows.
#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "linear.h"

layout(local_size_x_id = 0, local_size_y_id = 1) in;
layout(constant_id = 3) const uint TM = 4;    // batch rows per invocation
layout(constant_id = 4) const uint TN = 4;    // output features per invocation
layout(constant_id = 5) const uint XVEC = 0;  // 1 when every x row of the window starts on 16 bytes
layout(push_constant) uniform PC { LinearParams p; };

#if defined(WF16) || defined(WBF16)
layout(std430, binding = 0) readonly buffer W { uvec2 w2[]; };  // 4 halves
#else
layout(std430, binding = 0) readonly buffer W { vec4 w4[]; };
#endif
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer X4 { vec4 x4[]; };
layout(std430, binding = 2) buffer Y { float y[]; };

const uint WX = gl_WorkGroupSize.x;
const uint WY = gl_WorkGroupSize.y;
const uint BM = WY * TM;
const uint BN = WX * TN;
const uint BK = 16;

shared float xs[BK][BM + 1];  // +1: staging writes of one k-row by consecutive m hit distinct banks
shared float ws[BK][BN + 1];

// Columns k .. k + 3 of window row o (k a multiple of 4, below the padded row length).
vec4 w_vec4(uint o, uint k) {
#if defined(WF16)
  const uvec2 q = w2[(p.w_off + o * p.wq) * 2 + k / 4];
  return vec4(unpackHalf2x16(q.x), unpackHalf2x16(q.y));
#elif defined(WBF16)
  const uvec2 q = w2[(p.w_off + o * p.wq) * 2 + k / 4];  // the low half of a word is the even column
  return uintBitsToFloat(uvec4(q.x << 16, q.x & 0xffff0000u, q.y << 16, q.y & 0xffff0000u));
#else
  return w4[p.w_off + o * p.wq + k / 4];
#endif
}

// Zeroes the components of columns k .. k + 3 that lie past `in`.
vec4 mask_cols(vec4 v, uint k) {
  [[unroll]] for (uint c = 0; c < 4; ++c)
    if (k + c >= p.cols) v[c] = 0.0;
  return v;
}

void main() {
  const uint lx = gl_LocalInvocationID.x, ly = gl_LocalInvocationID.y;
  const uint lin = ly * WX + lx, threads = WX * WY;
  const uint b0 = gl_WorkGroupID.y * BM, o0 = gl_WorkGroupID.x * BN;

  float acc[TM][TN];
  [[unroll]] for (uint a = 0; a < TM; ++a)
    [[unroll]] for (uint b = 0; b < TN; ++b) acc[a][b] = 0.0;

  for (uint k0 = 0; k0 < p.cols; k0 += BK) {
    for (uint e = lin; e < BM * (BK / 4); e += threads) {
      const uint m = e / (BK / 4), kq = e % (BK / 4), row = b0 + m, k = k0 + 4 * kq;
      vec4 v = vec4(0.0);
      if (row < p.batch && k < p.cols) {
        const uint i = p.x_off + row * p.cols + k;
        if (XVEC != 0) v = x4[i / 4];
        else [[unroll]] for (uint c = 0; c < 4; ++c) v[c] = k + c < p.cols ? x[i + c] : 0.0;
      }
      xs[4 * kq][m] = v.x, xs[4 * kq + 1][m] = v.y, xs[4 * kq + 2][m] = v.z, xs[4 * kq + 3][m] = v.w;
    }
    for (uint e = lin; e < BN * (BK / 4); e += threads) {
      const uint n = e / (BK / 4), kq = e % (BK / 4), o = o0 + n, k = k0 + 4 * kq;
      const vec4 v = o < p.rows && k < p.cols ? mask_cols(w_vec4(o, k), k) : vec4(0.0);
      ws[4 * kq][n] = v.x, ws[4 * kq + 1][n] = v.y, ws[4 * kq + 2][n] = v.z, ws[4 * kq + 3][n] = v.w;
    }
    barrier();  // the k-step's tiles are staged

    [[unroll]] for (uint kk = 0; kk < BK; ++kk) {
      float xv[TM], wv[TN];
      [[unroll]] for (uint a = 0; a < TM; ++a) xv[a] = xs[kk][ly + WY * a];
      [[unroll]] for (uint b = 0; b < TN; ++b) wv[b] = ws[kk][lx + WX * b];
      [[unroll]] for (uint a = 0; a < TM; ++a)
        [[unroll]] for (uint b = 0; b < TN; ++b) acc[a][b] = fma(xv[a], wv[b], acc[a][b]);
    }
    barrier();  // every invocation is done reading before the next k-step overwrites the tiles
  }

  [[unroll]] for (uint a = 0; a < TM; ++a) {
    const uint row = b0 + ly + WY * a;
    if (row >= p.batch) continue;
    [[unroll]] for (uint b = 0; b < TN; ++b) {
      const uint o = o0 + lx + WX * b;
      if (o >= p.rows) continue;
      const uint i = p.y_off + row * p.outs + p.row0 + o;
      if ((p.flags & LINEAR_ACCUMULATE) != 0) y[i] += acc[a][b];
      else y[i] = acc[a][b];
    }
  }
}
