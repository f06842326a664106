// Y = X Rᵀ with a register tile per invocation and no shared memory (CPU-like
// devices such as lavapipe, where barriers and shared memory are slow and the
// cache serves repeated reads). Layouts in rotate.h.
//
// Workgroup (x, y, z) owns outputs [x*TO, x*TO + TO) of block z and the
// block's rows u*blocks + z for u in [y*WG*TR, (y+1)*WG*TR); invocation l owns
// u = y*WG*TR + k*WG + l (k < TR), so every row of a workgroup shares R.
// Output blocks vary fastest across workgroups, so consecutive groups reuse
// the same X rows from the cache. lavapipe (Mesa 22) loads storage buffers lane by lane and
// component by component, uniform address or not, so the cost is the number
// of loads: each step loads TR + TO vec4s for TR*TO*4 FMAs, and large tiles
// (16x16, partly spilled) beat small register-resident ones.
#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "rotate.h"

layout(local_size_x_id = 0) in;
layout(constant_id = 3) const uint D = 128;  // the rotation size d
layout(constant_id = 4) const uint TR = 1;   // rows per invocation
layout(constant_id = 5) const uint TO = 16;  // outputs per invocation
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
layout(std430, binding = 2) writeonly buffer Y4 { vec4 y4[]; };

const bool VEC = D % 4 == 0;  // rows of X, Y and R start on 16-byte boundaries
const uint D4 = D / 4;
const uint RW = (D + 1) / 2;  // uint32 words per fp16 row

// R[i][4*j4 .. 4*j4 + 3] (VEC only).
vec4 r_vec4(uint i, uint j4) {
#if defined(FP16_R)
  const uvec2 w = r2[i * D4 + j4];
  return vec4(unpackHalf2x16(w.x), unpackHalf2x16(w.y));
#else
  return r4[i * D4 + j4];
#endif
}

// R[i][j].
float r_at(uint i, uint j) {
#if defined(FP16_R)
  return unpackHalf2x16(r1[i * RW + j / 2])[j & 1u];
#else
  return r1[i * D + j];
#endif
}

void main() {
  const uint wg = gl_WorkGroupSize.x;
  const uint o0 = gl_WorkGroupID.x * TO;
  const uint blk = gl_WorkGroupID.z, nb = p.rows / p.blocks;  // this block's rows in the chunk
  const uint u0 = gl_WorkGroupID.y * wg * TR + gl_LocalInvocationID.x;
  uint xrow[TR];  // clamped so every load stays in range; stores check the real row
  [[unroll]] for (uint k = 0; k < TR; ++k) xrow[k] = min(u0 + k * wg, nb - 1u) * p.blocks + blk;
  uint ri[TO];
  [[unroll]] for (uint o = 0; o < TO; ++o) ri[o] = blk * D + min(o0 + o, D - 1u);

  float acc[TR][TO];
  [[unroll]] for (uint k = 0; k < TR; ++k)
    [[unroll]] for (uint o = 0; o < TO; ++o) acc[k][o] = 0.0;

  if (VEC) {
    for (uint j4 = 0; j4 < D4; ++j4) {
      vec4 xv[TR];
      [[unroll]] for (uint k = 0; k < TR; ++k) xv[k] = x4[xrow[k] * D4 + j4];
      [[unroll]] for (uint o = 0; o < TO; ++o) {
        const vec4 rv = r_vec4(ri[o], j4);
        [[unroll]] for (uint k = 0; k < TR; ++k)
          acc[k][o] = fma(xv[k].w, rv.w, fma(xv[k].z, rv.z, fma(xv[k].y, rv.y, fma(xv[k].x, rv.x, acc[k][o]))));
      }
    }
  } else {
    for (uint j = 0; j < D; ++j) {
      float xv[TR];
      [[unroll]] for (uint k = 0; k < TR; ++k) xv[k] = x1[xrow[k] * D + j];
      [[unroll]] for (uint o = 0; o < TO; ++o) {
        const float rv = r_at(ri[o], j);
        [[unroll]] for (uint k = 0; k < TR; ++k) acc[k][o] = fma(xv[k], rv, acc[k][o]);
      }
    }
  }

  [[unroll]] for (uint k = 0; k < TR; ++k) {
    const uint u = u0 + k * wg;
    if (u >= nb) continue;
    const uint row = u * p.blocks + blk;
    if (VEC && TO % 4 == 0) {  // o0 is a multiple of 4 and D of 4: a vec4 is all in or all out
      [[unroll]] for (uint o = 0; o < TO; o += 4)
        if (o0 + o < D) y4[(row * D + o0 + o) / 4] = vec4(acc[k][o], acc[k][o + 1], acc[k][o + 2], acc[k][o + 3]);
    } else {
      [[unroll]] for (uint o = 0; o < TO; ++o)
        if (o0 + o < D) y1[row * D + o0 + o] = acc[k][o];
    }
  }
}
