// Encodes keys into the 1-bit K-cache code (DESIGN §2): v = R_h (k - mu_h),
// bits = sign(v) (1 for v >= 0), alpha = ||v||_1 / HD in fp16, and
// c = U_rᵀ (v - alpha_fp16 · s) in fp16.
//
// Invocation w owns flattened elements e = 2w, 2w+1 (e = position * n_kv +
// head). The alpha word w and the coef words [w·rank, (w+1)·rank) hold
// exactly those two elements' halves, so no two invocations share a word; a
// half belonging to an element outside the written window is read back and
// kept. Loops over coordinates have compile-time trip counts and are unrolled:
// lavapipe stops an invocation's loops after ~65535 iterations in all.
#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "kcodec.h"

layout(local_size_x_id = 0) in;
layout(push_constant) uniform PC { KCodeEncodeParams p; };

layout(std430, set = 0, binding = 0) readonly buffer K { vec4 k4[]; };        // (n, n_kv, HD)
layout(std430, set = 0, binding = 1) readonly buffer Mu { vec4 mu4[]; };      // (n_kv, HD)
layout(std430, set = 0, binding = 2) readonly buffer Rot { vec4 rot4[]; };    // (n_kv, HD, HD)
layout(std430, set = 0, binding = 3) readonly buffer Basis { float basis[]; };  // (n_kv, HD, rank)
layout(std430, set = 0, binding = 4) writeonly buffer Bits { uint bits[]; };  // (ctx, n_kv, HD/32)
layout(std430, set = 0, binding = 5) buffer Alpha { uint alpha[]; };          // (ctx, n_kv) halves
layout(std430, set = 0, binding = 6) buffer Coef { uint coef[]; };            // (ctx, n_kv, rank) halves

const uint Q = HD / 4;
const uint W = HD / 32;

// fp32 -> fp16 bits, round to nearest even (as attn_kv_store.comp and vkq::to_half).
uint to_half(float f) {
  const uint x = floatBitsToUint(f);
  const uint sign = (x >> 16) & 0x8000u;
  const uint e8 = (x >> 23) & 0xffu;
  uint mant = x & 0x7fffffu;
  if (e8 == 0xffu) return sign | 0x7c00u | (mant != 0 ? 0x200u : 0u);  // inf / nan
  const int e = int(e8) - 127 + 15;
  if (e >= 31) return sign | 0x7c00u;  // overflow -> inf
  if (e <= 0) {                        // subnormal or zero
    if (e < -10) return sign;
    mant |= 0x800000u;
    const uint shift = uint(14 - e);
    uint h = mant >> shift;
    const uint rem = mant & ((1u << shift) - 1u), halfway = 1u << (shift - 1u);
    if (rem > halfway || (rem == halfway && (h & 1u) != 0)) ++h;
    return sign | h;
  }
  uint h = (uint(e) << 10) | (mant >> 13);
  const uint rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u) != 0)) ++h;  // a carry into the exponent is still right
  return sign | h;
}

void main() {
  if (gl_GlobalInvocationID.x >= p.pairs) return;
  const uint w = p.first_pair + gl_GlobalInvocationID.x;
  const uint e_lo = p.pos0 * p.n_kv, e_hi = (p.pos0 + p.n) * p.n_kv;
  uint alpha_word = 0;
  uint pending = 0;  // low half of the coef word being assembled
  for (uint q = 0; q < 2; ++q) {
    const uint e = 2 * w + q;
    if (e < e_lo || e >= e_hi) {  // outside the window: keep this element's halves
      alpha_word |= alpha[w] & (0xffffu << (16 * q));
      for (uint r = 0; r < p.rank; ++r) {
        const uint g = e * p.rank + r;
        if ((g >> 1) < (e_lo * p.rank) / 2 || (g >> 1) > (e_hi * p.rank - 1) / 2) continue;  // no window half
        const uint hb = (coef[g >> 1] >> (16 * (g & 1))) & 0xffffu;
        if ((g & 1) == 0) pending = hb;
        else coef[g >> 1] = pending | (hb << 16);
      }
      continue;
    }
    const uint h = e % p.n_kv;
    const uint krow = (e - e_lo) * Q;
    vec4 d[Q];
    [[unroll]] for (uint j = 0; j < Q; ++j) d[j] = k4[krow + j] - mu4[h * Q + j];
    vec4 v[Q];
    if (p.has_rot != 0) {
      for (uint i = 0; i < Q; ++i) {  // v[i] = rows 4i..4i+3 of R_h times d
        vec4 acc = vec4(0.0);
        [[unroll]] for (uint c = 0; c < 4; ++c) {
          const uint row = (h * HD + 4 * i + c) * Q;
          float s = 0.0;
          [[unroll]] for (uint j = 0; j < Q; ++j) s += dot(rot4[row + j], d[j]);
          acc[c] = s;
        }
        v[i] = acc;
      }
    } else {
      [[unroll]] for (uint j = 0; j < Q; ++j) v[j] = d[j];
    }

    vec4 l1 = vec4(0.0);
    [[unroll]] for (uint j = 0; j < Q; ++j) l1 += abs(v[j]);
    [[unroll]] for (uint b = 0; b < W; ++b) {
      uint word = 0;
      [[unroll]] for (uint c = 0; c < 32; ++c)
        if (v[8 * b + c / 4][c % 4] >= 0.0) word |= 1u << c;
      bits[e * W + b] = word;
    }
    const uint ah = to_half(((l1.x + l1.y) + (l1.z + l1.w)) / float(HD));
    alpha_word |= ah << (16 * q);
    if (p.rank == 0) continue;

    const float a = unpackHalf2x16(ah).x;
    [[unroll]] for (uint j = 0; j < Q; ++j) v[j] -= mix(vec4(-a), vec4(a), greaterThanEqual(v[j], vec4(0.0)));
    const uint ub = h * HD * p.rank;
    for (uint r = 0; r < p.rank; ++r) {
      float s = 0.0;
      [[unroll]] for (uint j = 0; j < Q; ++j) {
        const uint b = ub + 4 * j * p.rank + r;
        s += dot(vec4(basis[b], basis[b + p.rank], basis[b + 2 * p.rank], basis[b + 3 * p.rank]), v[j]);
      }
      const uint g = e * p.rank + r;
      const uint hb = to_half(s);
      if ((g & 1) == 0) pending = hb;
      else coef[g >> 1] = pending | (hb << 16);
    }
  }
  alpha[w] = alpha_word;
}
