// Decodes 1-bit K-cache codes into the fp16 key cache (docs/design.md §2):
// k̂_h = mu_h + R_hᵀ (alpha · s + U_{r_h} ĉ) (ĉ from the head's residual
// record: fp16, or int8 / int4 codes times their fp16 scale; the transform
// code has no alpha · s and ĉ = code + 1/2), then optionally RoPE (rotate_half
// pairs (i, i + HD/2)) at the cache position, stored as fp16 (round to
// nearest even on the bits, as attn_kv_store.comp). Mean-RoPE codes (rope 2)
// add RoPE_pos(mu_h) instead of mu_h and apply no RoPE after.
//
// Invocation (element e = position * n_kv + head, group g) produces
// coordinates 8g .. 8g+7 and HD/2 + 8g .. HD/2 + 8g+7: whole cache words,
// and both coordinates of each RoPE pair. Loops run over chunks of 8
// coordinates with the chunk unrolled: lavapipe stops an invocation's loops
// after ~65535 iterations in all (here <= ~8500 at HD = 256).
//
// The RoPE angles are computed in float-float arithmetic (kcodec_rope.h).
#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "kcodec.h"
#include "kcodec_rope.h"
#include "half.h"

layout(local_size_x_id = 0) in;
layout(push_constant) uniform PC { KCodeDecodeParams p; };

layout(std430, set = 0, binding = 0) readonly buffer Mu { float mu[]; };        // (n_kv, HD)
layout(std430, set = 0, binding = 1) readonly buffer Rot { vec4 rot4[]; };      // (n_kv, HD, HD)
layout(std430, set = 0, binding = 2) readonly buffer Basis { float basis[]; };  // (n_kv, HD, basis_cols)
layout(std430, set = 0, binding = 3) readonly buffer Bits { uint bits[]; };     // (ctx, n_kv, HD/32)
layout(std430, set = 0, binding = 4) readonly buffer Alpha { uint alpha[]; };   // (ctx, n_kv) halves
layout(std430, set = 0, binding = 5) readonly buffer Coef { uint coef[]; };     // (ctx, stride) halves: records
layout(std430, set = 0, binding = 6) writeonly buffer Cache { uint cache[]; };  // (ctx, n_kv, HD) halves
layout(std430, set = 0, binding = 7) readonly buffer F { float inv_freq[]; };   // (HD/2) RoPE table
layout(std430, set = 0, binding = 8) readonly buffer Heads { uvec4 heads[]; };  // (n_kv) {rank, bits, offset, 0}
layout(std430, set = 0, binding = 9) readonly buffer Lv { float lv[]; };         // (n_kv, basis_cols, 16) transform-code levels (has_levels)

const uint W = HD / 32;
const uint Q = HD / 4;
const uint G = 8;                 // coordinate pairs per invocation
const uint GROUPS = HD / 2 / G;

// Each invocation's u (HD floats) in shared memory, interleaved across the
// workgroup; never shared between invocations, so no barriers. (Private
// arrays of this size, indexed at run time, make lavapipe's compiler crawl.)
shared float us[HD * gl_WorkGroupSize.x];
#define U(i) us[(i) * gl_WorkGroupSize.x + gl_LocalInvocationID.x]

// The `width` bits of a code whose low bit is bit `shift` of half g of the
// coefficients; a 3-bit code may run into the next half (and word).
uint code_bits(uint g, uint shift, uint width) {
  const uint off = 16u * (g & 1u) + shift;
  uint v = coef[g >> 1] >> off;
  if (off + width > 32u) v |= coef[(g >> 1) + 1u] << (32u - off);
  return v & ((1u << width) - 1u);
}

void main() {
  const uint gid = gl_GlobalInvocationID.x;
  if (gid >= p.len * p.n_kv * GROUPS) return;
  const uint e = p.first * p.n_kv + gid / GROUPS;
  const uint i0 = (gid % GROUPS) * G;
  const uint h = e % p.n_kv;

  // u = alpha · s + U_{r_h} ĉ (the transform code: U_{r_h} ĉ)
  float a = 0.0;
  if (p.transform == 0u) {
    a = unpackHalf2x16(alpha[e >> 1])[e & 1];
    for (uint b = 0; b < W; ++b) {
      const uint word = bits[e * W + b];
      [[unroll]] for (uint c = 0; c < 32; ++c) U(32 * b + c) = ((word >> c) & 1u) != 0 ? a : -a;
    }
  } else {
    for (uint j = 0; j < HD; ++j) U(j) = 0.0;
  }
  if (p.stride != 0) {
    const uvec4 hr = heads[h];  // rank, bits, record offset, alpha-relative (transform code: rank, n4 | n3 << 10 | n2 << 20, offset, 2)
    const bool tc = hr.w == 2u;
    const uint rank = hr.x, cb = tc ? 4u : hr.y, per = 16u / cb;
    const bool arel = hr.w == 1u;
    const uint lead = arel || tc ? 0u : 1u;          // the scale half of 8/4-bit records
    const uint g0 = (e / p.n_kv) * p.stride + hr.z;  // the record's first half
    const uint ub = h * HD * p.basis_cols;
    // arel: ĉ = alpha·(code + 1/2), tc: code + 1/2 or its calibrated level, along the step-scaled column
    const float sigma = tc ? 1.0 : arel ? a : cb != 16u && rank > 0u ? unpackHalf2x16(coef[g0 >> 1])[g0 & 1] : 1.0;
    const float mid = arel || tc ? 0.5 : 0.0;
    for (uint r = 0; r < rank; ++r) {
      float c;
      if (cb == 16u && !tc) {
        const uint g = g0 + r;
        c = unpackHalf2x16(coef[g >> 1])[g & 1];
      } else {
        const uvec3 slot = kcodec_slot(hr, r, cb, per, lead);  // width, half, shift
        const uint u = code_bits(g0 + slot.y, slot.z, slot.x);
        if (tc && p.has_levels != 0u)  // the calibrated level of the code's bits
          c = lv[(h * p.basis_cols + r) * 16u + u];
        else  // bitfieldExtract sign-extends the code
          c = sigma * (float(bitfieldExtract(int(u), 0, int(slot.x))) + mid);
      }
      for (uint j = 0; j < HD; j += 8) {
        [[unroll]] for (uint q = 0; q < 8; ++q) U(j + q) += basis[ub + (j + q) * p.basis_cols + r] * c;
      }
    }
  }

  // x = mu + R_hᵀ u at coordinates i0 .. i0+7 (lo) and HD/2 + i0 .. (hi)
  vec4 lo0 = vec4(0.0), lo1 = vec4(0.0), hi0 = vec4(0.0), hi1 = vec4(0.0);
  if (p.has_rot != 0) {
    const uint base = h * HD * Q + i0 / 4;
    for (uint j = 0; j < HD; ++j) {
      const uint row = base + j * Q;
      lo0 += rot4[row] * U(j);
      lo1 += rot4[row + 1] * U(j);
      hi0 += rot4[row + Q / 2] * U(j);
      hi1 += rot4[row + Q / 2 + 1] * U(j);
    }
  } else {
    [[unroll]] for (uint c = 0; c < 4; ++c) {
      lo0[c] = U(i0 + c);
      lo1[c] = U(i0 + 4 + c);
      hi0[c] = U(HD / 2 + i0 + c);
      hi1[c] = U(HD / 2 + i0 + 4 + c);
    }
  }
  // (cos, sin) of the pairs' angles at the cache position: for RoPE of the
  // decoded key (rope 1) or of the pre-RoPE mean (rope 2).
  vec2 cs[G];
  if (p.rope != 0) {
    const vec2 posf = df_position(e / p.n_kv);
    [[unroll]] for (uint o = 0; o < G; ++o) cs[o] = rope_cos_sin(posf, inv_freq[i0 + o], p.scale);
  }
  float x0[G], x1[G];
  [[unroll]] for (uint c = 0; c < 4; ++c) {
    x0[c] = lo0[c];
    x0[4 + c] = lo1[c];
    x1[c] = hi0[c];
    x1[4 + c] = hi1[c];
  }
  [[unroll]] for (uint o = 0; o < G; ++o) {
    const uint m = h * HD + i0 + o;
    float m0 = mu[m], m1 = mu[m + HD / 2];
    if (p.rope == 2u) {
      const float y0 = m0, y1 = m1;
      m0 = y0 * cs[o].x - y1 * cs[o].y;
      m1 = y0 * cs[o].y + y1 * cs[o].x;
    }
    x0[o] += m0;
    x1[o] += m1;
  }
  if (p.rope == 1u) {
    [[unroll]] for (uint o = 0; o < G; ++o) {
      const float y0 = x0[o], y1 = x1[o];
      x0[o] = y0 * cs[o].x - y1 * cs[o].y;
      x1[o] = y0 * cs[o].y + y1 * cs[o].x;
    }
  }

  const uint dst = e * (HD / 2) + i0 / 2;
  [[unroll]] for (uint o = 0; o < G; o += 2) {
    cache[dst + o / 2] = to_half(x0[o]) | (to_half(x0[o + 1]) << 16);
    cache[dst + HD / 4 + o / 2] = to_half(x1[o]) | (to_half(x1[o + 1]) << 16);
  }
}
