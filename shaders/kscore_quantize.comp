// Quantizes rotated queries for the popcount path (kscore.h): one workgroup
// per query head finds min, max and mean |q'|, derives Δ, z, 1/Δ, then writes
// the b bit-planes of Q = clamp(roundEven(q'·(1/Δ) + z), 0, 2^b - 1) and Σ Q.
#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "kscore.h"

layout(local_size_x_id = 0) in;
layout(constant_id = 3) const uint D = 128;  // head dimension
layout(constant_id = 4) const uint B = 8;    // bit-planes (1, 4 or 8)
const uint W = (D + 31u) / 32u;
const uint LEVELS = (1u << B) - 1u;

layout(push_constant) uniform PC { KscoreQueryParams p; };
layout(std430, binding = 0) readonly buffer Query { float q[]; };
layout(std430, binding = 1) writeonly buffer Planes { uint planes[]; };
layout(std430, binding = 2) writeonly buffer Qconst { KscoreQueryConst qconst[]; };

shared float s_lo[gl_WorkGroupSize.x];
shared float s_hi[gl_WorkGroupSize.x];
shared float s_abs[gl_WorkGroupSize.x];
shared uint s_sum[gl_WorkGroupSize.x];

void main() {
  const uint h = p.first + gl_WorkGroupID.x;
  const uint lane = gl_LocalInvocationID.x;
  const uint L = gl_WorkGroupSize.x;
  const uint qb = h * D;
  float lo = uintBitsToFloat(0x7f800000u), hi = -lo, ab = 0.0;
  for (uint i = lane; i < D; i += L) {
    const float v = q[qb + i];
    lo = min(lo, v);
    hi = max(hi, v);
    ab += abs(v);
  }
  s_lo[lane] = lo;
  s_hi[lane] = hi;
  s_abs[lane] = ab;
  barrier();  // every lane's partial min / max / Σ|q| is visible
  // Every lane reduces the same partials in the same order: identical results,
  // no second barrier.
  lo = s_lo[0];
  hi = s_hi[0];
  ab = s_abs[0];
  for (uint k = 1; k < L; ++k) {
    lo = min(lo, s_lo[k]);
    hi = max(hi, s_hi[k]);
    ab += s_abs[k];
  }
  float delta, zero, inv;
  if (B == 1u) {
    delta = 2.0 * ab / float(D);  // q' ≈ mean|q'|·sign(q') = Δ(Q - 1/2)
    zero = 0.5;
    inv = delta > 0.0 ? 1.0 / delta : 0.0;
  } else if (hi > lo) {
    delta = (hi - lo) / float(LEVELS);
    inv = float(LEVELS) / (hi - lo);
    precise float zz = -lo * inv;
    zero = zz;
  } else {  // a constant query: Q = 0 and Δ(0 - z) = lo exactly
    delta = 1.0;
    inv = 1.0;
    zero = -lo;
  }

  uint total = 0u;
  for (uint w = lane; w < W; w += L) {
    uint pl[B];
    [[unroll]] for (uint b = 0; b < B; ++b) pl[b] = 0u;
    const uint n = min(32u, D - 32u * w);
    for (uint j = 0; j < n; ++j) {
      const float v = q[qb + 32u * w + j];
      uint Q;
      if (B == 1u) {
        Q = v >= 0.0 ? 1u : 0u;
      } else {
        precise float y = v * inv + zero;  // no fma: the host reproduces it bit for bit
        Q = uint(clamp(roundEven(y), 0.0, float(LEVELS)));
      }
      total += Q;
      [[unroll]] for (uint b = 0; b < B; ++b) pl[b] |= ((Q >> b) & 1u) << j;
    }
    [[unroll]] for (uint b = 0; b < B; ++b) planes[(h * B + b) * W + w] = pl[b];
  }
  s_sum[lane] = total;
  barrier();  // every lane's Σ Q is visible
  if (lane == 0u) {
    for (uint k = 1; k < L; ++k) total += s_sum[k];
    qconst[h] = KscoreQueryConst(delta, zero, inv, total);
  }
}
