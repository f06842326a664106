// Encodes keys into the 1-bit K-cache code (docs/design.md §2): v = R_h (k - mu_h),
// bits = sign(v) (1 for v >= 0), alpha = ||v||_1 / HD in fp16, and
// c = U_{r_h}ᵀ (v - alpha_fp16 · s) as the head's residual record (fp16, or
// int8 / int4 codes with an fp16 scale: vkquant/kresidual.hpp). The
// transform code (docs/design.md §2.9) writes no bits and no alpha: c = U_{r_h}ᵀ v,
// 4/3/2/1-bit codes floor(c) (or the nearest calibrated level). MEAN_ROPE: mu_h is a pre-RoPE mean
// and v = R_h (k - RoPE_pos(mu_h)) at the key's cache position (rotate_half
// pairs (i, i + HD/2), float-float angles as kcodec_rope.h).
//
// One invocation per element e = position * n_kv + head. Its bits words are
// its own; an fp16 half whose word it shares with another element (alpha,
// and the first/last half of a record that starts or ends mid-word) is
// written with atomicAnd + atomicOr on its 16 bits only, so neighbours (in
// this dispatch or at positions outside it) are never clobbered. An 8/4-bit
// record computes its coefficients twice (the scale needs their maximum
// first): encode is not hot, and a second HD-float array would halve the
// workgroup. Loops run over chunks of 4..8
// vec4s or floats with the chunk unrolled: lavapipe stops an invocation's
// loops after ~65535 iterations in all (here <= ~13000 at HD = 256).
#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "kcodec.h"
#include "kcodec_rope.h"
#include "half.h"

layout(local_size_x_id = 0) in;
layout(push_constant) uniform PC { KCodeEncodeParams p; };

layout(std430, set = 0, binding = 0) readonly buffer K { vec4 k4[]; };        // (n, n_kv, HD)
layout(std430, set = 0, binding = 1) readonly buffer Mu { vec4 mu4[]; };      // (n_kv, HD)
layout(std430, set = 0, binding = 2) readonly buffer Rot { vec4 rot4[]; };    // (n_kv, HD, HD)
layout(std430, set = 0, binding = 3) readonly buffer Basis { float basis[]; };  // (n_kv, HD, basis_cols): the encoder's A
layout(std430, set = 0, binding = 4) writeonly buffer Bits { uint bits[]; };  // (ctx, n_kv, HD/32)
layout(std430, set = 0, binding = 5) buffer Alpha { uint alpha[]; };          // (ctx, n_kv) halves
layout(std430, set = 0, binding = 6) buffer Coef { uint coef[]; };            // (ctx, stride) halves: records
layout(std430, set = 0, binding = 7) readonly buffer F { float inv_freq[]; };  // (HD/2) RoPE table (mean-RoPE)
layout(std430, set = 0, binding = 8) readonly buffer Heads { uvec4 heads[]; };  // (n_kv) {rank, bits, offset, 0}
layout(std430, set = 0, binding = 9) readonly buffer Lv { float lv[]; };        // (n_kv, basis_cols, 16) transform-code levels (has_levels)

const uint Q = HD / 4;
const uint W = HD / 32;

// Each invocation's v (HD floats) in shared memory, interleaved across the
// workgroup; never shared between invocations, so no barriers. (Private
// arrays of this size, indexed at run time, make lavapipe's compiler crawl.)
shared float vs[HD * gl_WorkGroupSize.x];
#define V(i) vs[(i) * gl_WorkGroupSize.x + gl_LocalInvocationID.x]
#if defined(MEAN_ROPE)
// k - RoPE_pos(mu_h), likewise private to the invocation.
shared float ds[HD * gl_WorkGroupSize.x];
#define DV(i) ds[(i) * gl_WorkGroupSize.x + gl_LocalInvocationID.x]
#endif

// Coordinates 4j .. 4j+3 of the centered key of row t, head h.
vec4 centered(uint t, uint h, uint j) {
#if defined(MEAN_ROPE)
  return vec4(DV(4 * j), DV(4 * j + 1), DV(4 * j + 2), DV(4 * j + 3));
#else
  return k4[t * Q + j] - mu4[h * Q + j];
#endif
}

// Sets half g (of a packed fp16 array) to hb; other halves are untouched.
void store_shared_half(uint g, uint hb, bool is_alpha) {
  const uint shift = 16 * (g & 1);
  if (is_alpha) {
    atomicAnd(alpha[g >> 1], ~(0xffffu << shift));
    atomicOr(alpha[g >> 1], hb << shift);
  } else {
    atomicAnd(coef[g >> 1], ~(0xffffu << shift));
    atomicOr(coef[g >> 1], hb << shift);
  }
}

// Half g of this element's record [g0, g1) is hb: halves sharing a word with
// the record's own previous half are paired (pending) into one plain store.
void put_half(uint g, uint hb, uint g0, uint g1, inout uint pending) {
  if ((g & 1u) == 0u && g + 1u < g1) {
    pending = hb;
  } else if ((g & 1u) != 0u && g > g0) {
    coef[g >> 1] = pending | (hb << 16);
  } else {
    store_shared_half(g, hb, false);  // the word's other half belongs to a neighbour
  }
}

// Coefficient r: column r of U_h (basis row stride basis_cols) times V.
float coef_at(uint ub, uint r) {
  vec4 acc = vec4(0.0);
  for (uint j = 0; j < HD; j += 8) {
    [[unroll]] for (uint c = 0; c < 8; ++c) acc[c % 4] += basis[ub + (j + c) * p.basis_cols + r] * V(j + c);
  }
  return (acc.x + acc.y) + (acc.z + acc.w);
}

void main() {
  const uint t = gl_GlobalInvocationID.x;  // element of the window
  if (t >= p.n * p.n_kv) return;
  const uint e = p.pos0 * p.n_kv + t;
  const uint h = e % p.n_kv;

#if defined(MEAN_ROPE)
  {
    const vec2 posf = df_position(e / p.n_kv);
    for (uint i = 0; i < HD / 2; ++i) {
      const vec2 cs = rope_cos_sin(posf, inv_freq[i], p.scale);
      const float m0 = mu4[h * Q + i / 4][i % 4], m1 = mu4[h * Q + (i + HD / 2) / 4][i % 4];
      DV(i) = k4[t * Q + i / 4][i % 4] - (m0 * cs.x - m1 * cs.y);
      DV(i + HD / 2) = k4[t * Q + (i + HD / 2) / 4][i % 4] - (m0 * cs.y + m1 * cs.x);
    }
  }
#endif

  if (p.has_rot != 0) {
    for (uint i = 0; i < HD; ++i) {  // v_i = row i of R_h times (k - mu_h)
      const uint row = (h * HD + i) * Q;
      vec4 acc = vec4(0.0);
      for (uint j = 0; j < Q; j += 4) {
        [[unroll]] for (uint c = 0; c < 4; ++c) acc += rot4[row + j + c] * centered(t, h, j + c);
      }
      V(i) = (acc.x + acc.y) + (acc.z + acc.w);
    }
  } else {
    for (uint j = 0; j < Q; ++j) {
      const vec4 d = centered(t, h, j);
      [[unroll]] for (uint c = 0; c < 4; ++c) V(4 * j + c) = d[c];
    }
  }

  float a = 0.0;  // the key's alpha (the transform code has none)
  if (p.transform == 0u) {
    float l1 = 0.0;
    for (uint b = 0; b < W; ++b) {
      uint word = 0;
      [[unroll]] for (uint c = 0; c < 32; ++c) {
        const float x = V(32 * b + c);
        l1 += abs(x);
        if (x >= 0.0) word |= 1u << c;
      }
      bits[e * W + b] = word;
    }
    const uint ah = to_half(l1 / float(HD));
    store_shared_half(e, ah, true);
    a = unpackHalf2x16(ah).x;
  }
  if (p.stride == 0) return;
  const uvec4 hr = heads[h];  // rank, bits, record offset, alpha-relative (transform code: rank, n4 | n3 << 10 | n2 << 20, offset, 2)
  const bool tc = hr.w == 2u;
  const uint rank = hr.x, cb = tc ? 4u : hr.y;
  const bool arel = hr.w == 1u;
  if (rank == 0) return;

  if (!tc)
    for (uint j = 0; j < HD; ++j) V(j) -= V(j) >= 0.0 ? a : -a;
  const uint ub = h * HD * p.basis_cols;
  const uint per = 16u / cb;  // codes per half (1: fp16)
  const uint g0 = (e / p.n_kv) * p.stride + hr.z;
  const uint lead = arel || tc || cb == 16u ? 0u : 1u;  // the scale half
  const uint g1 = g0 + (tc ? kcodec_tc_halves(hr) : cb == 16u ? rank : lead + rank / per);  // this element's halves [g0, g1)
  uint pending = 0;                                             // low half of the word being assembled
  float sigma = 0.0, top = cb == 8u ? 127.0 : 7.0;
  if (lead != 0u) {  // the scale: fp16(max |c| / top), used as rounded
    float m = 0.0;
    for (uint r = 0; r < rank; ++r) m = max(m, abs(coef_at(ub, r)));
    const uint sb = to_half(m / top);
    sigma = unpackHalf2x16(sb).x;
    put_half(g0, sb, g0, g1, pending);
  }
  uint codes = 0;  // the half of codes being assembled
  for (uint r = 0; r < rank; ++r) {
    const float c = coef_at(ub, r);
    if (cb == 16u) {
      put_half(g0 + r, to_half(c), g0, g1, pending);
      continue;
    }
    const uvec3 slot = kcodec_slot(hr, r, cb, per, lead);  // width, half, shift
    int code;
    if (tc) {  // floor(c) in [-2^(w-1), 2^(w-1) - 1]: the step is in the encoder's column
      const float half_levels = float(1u << (slot.x - 1u));
      if (p.has_levels != 0u) {  // the nearest calibrated level, ascending codes, ties to the larger
        const uint lb = (h * p.basis_cols + r) * 16u, mask = (1u << slot.x) - 1u;
        float best = 1.0 / 0.0;
        code = 0;
        for (int v = -int(half_levels); v < int(half_levels); ++v) {
          const float dd = abs(c - lv[lb + (uint(v) & mask)]);
          if (dd <= best) {
            best = dd;
            code = v;
          }
        }
        if (isnan(c)) code = 0;
      } else {
        code = isnan(c) ? 0 : int(clamp(floor(c), -half_levels, half_levels - 1.0));
      }
    } else if (arel) {  // floor(c / alpha) in [-2^(cb-1), 2^(cb-1) - 1]: the step is in the encoder's column
      const float half_levels = float(1u << (cb - 1u));
      code = a > 0.0 ? int(clamp(floor(c / a), -half_levels, half_levels - 1.0)) : 0;
    } else {
      code = sigma == 0.0 ? 0 : int(clamp(roundEven(c / sigma), -top, top));
    }
    codes |= (uint(code) & ((1u << slot.x) - 1u)) << slot.z;  // a 3-bit code may run past the half
    if (slot.z + slot.x >= 16u) {
      put_half(g0 + slot.y, codes & 0xffffu, g0, g1, pending);
      codes >>= 16u;  // the bits that run into the next half
    }
  }
}
