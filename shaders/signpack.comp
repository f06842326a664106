// Sign packing: bits[r][w] bit j = (x[r][32w + j] >= 0), alpha[r] = ||x_r||_1 / d,
// x = v - mean(v_r) when CENTER, else v (layouts in signpack.h). A "unit" is
// one row, or a pair of rows when alpha is fp16 (both halves of an alpha word
// come from the same owner, so no two owners write one word).
//
// VARIANT_INVOCATION (CPU-like devices, narrow subgroups): one invocation owns
//   UNITS consecutive units and builds every word itself from 8-column octets
//   (two vec4s); nothing is shared and no subgroup op is used.
// VARIANT_BALLOT (wide subgroups): one subgroup owns a unit; lane l reads
//   column c0 + l on each step and subgroupBallot collects the signs. Any
//   gl_SubgroupSize from 4 to 128 works: below 32 a word is OR-ed together
//   over 32 / S steps, from 32 up each step yields S / 32 whole words.
#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#if defined(VARIANT_BALLOT)
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_ballot : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#elif !defined(VARIANT_INVOCATION)
#error "define VARIANT_BALLOT or VARIANT_INVOCATION"
#endif
#include "signpack.h"

layout(local_size_x_id = 0) in;
layout(constant_id = 3) const uint IN_F16 = 0;      // 1: v holds fp16 pairs
layout(constant_id = 4) const uint ALPHA_F16 = 0;   // 1: alpha packed as fp16 pairs
layout(constant_id = 5) const uint CENTER = 0;      // 1: subtract the row mean
layout(constant_id = 6) const uint WRITE_MEAN = 0;  // 1: store the row mean
layout(constant_id = 7) const uint VEC = 0;         // 1: fp32 d % 4 == 0 / fp16 in_stride % 4 == 0
layout(constant_id = 8) const uint UNITS = 1;       // per-invocation: consecutive units per invocation
const uint RPU = 1 + ALPHA_F16;                     // rows per unit
layout(push_constant) uniform PC { SignpackParams p; };

layout(std430, binding = 0) readonly buffer VF { float vf[]; };
layout(std430, binding = 0) readonly buffer VF4 { vec4 vf4[]; };
layout(std430, binding = 0) readonly buffer VU { uint vu[]; };
layout(std430, binding = 0) readonly buffer VU4 { uvec4 vu4[]; };
layout(std430, binding = 1) writeonly buffer Bits { uint bits[]; };
layout(std430, binding = 2) writeonly buffer AlphaF { float alpha_f[]; };
layout(std430, binding = 2) writeonly buffer AlphaU { uint alpha_u[]; };
layout(std430, binding = 3) writeonly buffer Mean { float mean_out[]; };

// Column c of the row starting at element/word `base`.
float load1(uint base, uint c) {
  if (IN_F16 != 0) {
    const uint w = vu[base + (c >> 1)];
    return unpackHalf2x16((c & 1u) != 0u ? w >> 16 : w).x;
  }
  return vf[base + c];
}

#if defined(VARIANT_INVOCATION)
// fp16 -> fp32 with integer ops only (exact for every half, subnormals and
// inf/NaN included): llvmpipe runs unpackHalf2x16 lane by lane, this vectorises.
vec4 halves(uvec4 h) {
  const uvec4 mag = h & 0x7fffu;
  // Rebias the exponent by 127 - 15 (by twice that for inf/NaN, exponent 31 -> 255).
  uvec4 r = (mag << 13) + mix(uvec4(0x38000000u), uvec4(0x70000000u), greaterThanEqual(mag, uvec4(0x7c00u)));
  r = mix(r, floatBitsToUint(vec4(mag) * 5.9604645e-8), lessThan(mag, uvec4(0x400u)));  // subnormal: 2^-24 per unit
  return uintBitsToFloat(r | ((h & 0x8000u) << 16));
}

// Columns c..c+7 (c % 8 == 0, c + 8 <= d) as two vec4s in column order.
void load8(uint base, uint c, out vec4 lo, out vec4 hi) {
  if (IN_F16 != 0) {
    uvec4 u;
    if (VEC != 0) {
      u = vu4[(base + c / 2) / 4];
    } else {
      const uint i = base + c / 2;
      u = uvec4(vu[i], vu[i + 1], vu[i + 2], vu[i + 3]);
    }
    lo = halves(uvec4(u.x, u.x >> 16, u.y, u.y >> 16) & 0xffffu);
    hi = halves(uvec4(u.z, u.z >> 16, u.w, u.w >> 16) & 0xffffu);
  } else if (VEC != 0) {
    const uint i = (base + c) / 4;
    lo = vf4[i];
    hi = vf4[i + 1];
  } else {
    const uint i = base + c;
    lo = vec4(vf[i], vf[i + 1], vf[i + 2], vf[i + 3]);
    hi = vec4(vf[i + 4], vf[i + 5], vf[i + 6], vf[i + 7]);
  }
}

uint sign_nibble(vec4 x) {
  const uvec4 b = uvec4(greaterThanEqual(x, vec4(0.0)));
  return b.x | (b.y << 1) | (b.z << 2) | (b.w << 3);
}

float row_sum(uint base) {
  vec4 s = vec4(0.0);
  const uint d8 = p.d & ~7u;
  for (uint c = 0; c < d8; c += 8) {
    vec4 lo, hi;
    load8(base, c, lo, hi);
    s += lo + hi;
  }
  float t = 0.0;
  for (uint c = d8; c < p.d; ++c) t += load1(base, c);
  return (s.x + s.y) + (s.z + s.w) + t;
}

// The full word of columns [c0, c0 + 32); adds |x| to l1.
uint pack_word(uint base, uint c0, float mean, inout vec4 l1) {
  uint word = 0;
  [[unroll]] for (uint o = 0; o < 32; o += 8) {
    vec4 lo, hi;
    load8(base, c0 + o, lo, hi);
    lo -= mean;
    hi -= mean;
    l1 += abs(lo) + abs(hi);
    word |= (sign_nibble(lo) | (sign_nibble(hi) << 4)) << o;
  }
  return word;
}

// The last, partial word: columns [c0, d), bits past d stay 0.
uint pack_tail(uint base, uint c0, float mean, inout vec4 l1) {
  const uint n = p.d - c0, n8 = n & ~7u;
  uint word = 0;
  for (uint o = 0; o < n8; o += 8) {
    vec4 lo, hi;
    load8(base, c0 + o, lo, hi);
    lo -= mean;
    hi -= mean;
    l1 += abs(lo) + abs(hi);
    word |= (sign_nibble(lo) | (sign_nibble(hi) << 4)) << o;
  }
  for (uint j = n8; j < n; ++j) {
    const float x = load1(base, c0 + j) - mean;
    l1.x += abs(x);
    word |= uint(x >= 0.0) << j;
  }
  return word;
}

// Packs one row; returns its alpha.
float pack_row(uint row) {
  const uint base = row * p.in_stride;
  float mean = 0.0;
  if (CENTER != 0) {
    mean = row_sum(base) / float(p.d);
    if (WRITE_MEAN != 0) mean_out[row] = mean;
  }
  vec4 l1 = vec4(0.0);
  const uint out_base = row * p.words;
  const uint full = p.d / 32;
  for (uint w = 0; w < full; ++w) bits[out_base + w] = pack_word(base, 32 * w, mean, l1);
  if (full < p.words) bits[out_base + full] = pack_tail(base, 32 * full, mean, l1);
  return ((l1.x + l1.y) + (l1.z + l1.w)) / float(p.d);
}

void main() {
  for (uint u = 0; u < UNITS; ++u) {
    const uint first = (gl_GlobalInvocationID.x * UNITS + u) * RPU;
    if (first >= p.rows) return;
    const float a0 = pack_row(first);
    if (ALPHA_F16 != 0) {
      const float a1 = first + 1 < p.rows ? pack_row(first + 1) : 0.0;
      alpha_u[first / 2] = packHalf2x16(vec2(a0, a1));
    } else {
      alpha_f[first] = a0;
    }
  }
}

#else  // VARIANT_BALLOT

// Packs one row with the whole subgroup (called in subgroup-uniform control
// flow); returns its alpha in every lane.
float pack_row(uint row) {
  const uint S = gl_SubgroupSize, lane = gl_SubgroupInvocationID;
  const uint base = row * p.in_stride;
  float mean = 0.0;
  if (CENTER != 0) {
    float s = 0.0;
    for (uint c = lane; c < p.d; c += S) s += load1(base, c);
    mean = subgroupAdd(s) / float(p.d);
    if (WRITE_MEAN != 0 && lane == 0) mean_out[row] = mean;
  }
  const uint out_base = row * p.words;
  float l1 = 0.0;
  uint acc = 0;  // S < 32: the word being assembled over 32 / S steps
  for (uint c0 = 0; c0 < p.d; c0 += S) {
    const uint c = c0 + lane;
    bool pos = false;  // padding columns give 0 bits
    if (c < p.d) {
      const float x = load1(base, c) - mean;
      l1 += abs(x);
      pos = x >= 0.0;
    }
    const uvec4 b = subgroupBallot(pos);
    if (S >= 32) {
      const uint w = c0 / 32 + lane;
      if (lane < S / 32 && w < p.words) bits[out_base + w] = b[lane];
    } else {
      acc |= b.x << (c0 & 31u);
      if (((c0 + S) & 31u) == 0 || c0 + S >= p.d) {
        if (lane == 0) bits[out_base + c0 / 32] = acc;
        acc = 0;
      }
    }
  }
  return subgroupAdd(l1) / float(p.d);
}

void main() {
  const uint first = (gl_WorkGroupID.x * gl_NumSubgroups + gl_SubgroupID) * RPU;
  if (first >= p.rows) return;  // the whole subgroup leaves together
  const float a0 = pack_row(first);
  if (ALPHA_F16 != 0) {
    const float a1 = first + 1 < p.rows ? pack_row(first + 1) : 0.0;
    if (gl_SubgroupInvocationID == 0) alpha_u[first / 2] = packHalf2x16(vec2(a0, a1));
  } else if (gl_SubgroupInvocationID == 0) {
    alpha_f[first] = a0;
  }
}
#endif
