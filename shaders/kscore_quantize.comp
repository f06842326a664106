// Quantizes rotated queries for the popcount path (kscore.h): per query head,
// min, max and mean |q'| give Δ, z, 1/Δ, then the b bit-planes of
// Q = clamp(roundEven(q'·(1/Δ) + z), 0, 2^b - 1) and Σ Q are written.
//
// One invocation per head, no shared memory and no barrier: on lavapipe a
// workgroup per head spent 20x longer in its shared-memory reductions than
// in the arithmetic. The head's d values are read once (vec4 loads when
// d % 4 == 0: lavapipe pays one loop over the lanes per load) and kept.
#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "kscore.h"

layout(local_size_x_id = 0) in;
layout(constant_id = 3) const uint D = 128;  // head dimension
layout(constant_id = 4) const uint B = 8;    // bit-planes (1, 4 or 8)
const uint W = (D + 31u) / 32u;
const uint LEVELS = (1u << B) - 1u;
const uint QV = D % 4u == 0u ? 4u : 1u;  // floats per load
const uint PV = W % 4u == 0u ? 4u : 1u;  // plane words per store

layout(push_constant) uniform PC { KscoreQueryParams p; };
layout(std430, binding = 0) readonly buffer Query { float q[]; };
layout(std430, binding = 0) readonly buffer Query4 { vec4 q4[]; };
layout(std430, binding = 1) writeonly buffer Planes { uint planes[]; };
layout(std430, binding = 1) writeonly buffer Planes4 { uvec4 planes4[]; };
layout(std430, binding = 2) writeonly buffer Qconst { uvec4 qconst[]; };  // KscoreQueryConst, as words

void main() {
  // Invocations past the last head quantize it again and store nothing.
  const uint m = gl_GlobalInvocationID.x;
  const bool live = m < p.q_heads;
  const uint h = p.first + min(m, p.q_heads - 1u);  // global query head
  float v[D];
  [[unroll]] for (uint u = 0; u < D / QV; ++u) {
    if (QV == 4u) {
      const vec4 x = q4[h * (D / 4u) + u];
      [[unroll]] for (uint e = 0; e < 4u; ++e) v[4u * u + e] = x[e];
    } else {
      v[u] = q[h * D + u];
    }
  }
  float lo = uintBitsToFloat(0x7f800000u), hi = -lo;
  precise float ab = 0.0;  // Σ |q'| in index order, as the host sums it
  [[unroll]] for (uint i = 0; i < D; ++i) {
    lo = min(lo, v[i]);
    hi = max(hi, v[i]);
    ab += abs(v[i]);
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

  uint pl[B * W];  // (plane, word)
  [[unroll]] for (uint k = 0; k < B * W; ++k) pl[k] = 0u;
  uint total = 0u;
  [[unroll]] for (uint i = 0; i < D; ++i) {
    uint Q;
    if (B == 1u) {
      Q = v[i] >= 0.0 ? 1u : 0u;
    } else {
      precise float y = v[i] * inv + zero;  // no fma: the host reproduces it bit for bit
      Q = uint(clamp(roundEven(y), 0.0, float(LEVELS)));
    }
    total += Q;
    [[unroll]] for (uint b = 0; b < B; ++b) pl[b * W + i / 32u] |= ((Q >> b) & 1u) << (i % 32u);
  }
  if (live) {
    [[unroll]] for (uint k = 0; k < B * W / PV; ++k) {
      if (PV == 4u) {
        const uint L = B * W - 1u;  // the clamps keep indices in range where PV = 1 (dead code)
        planes4[h * (B * W / 4u) + k] =
            uvec4(pl[4u * k], pl[min(4u * k + 1u, L)], pl[min(4u * k + 2u, L)], pl[min(4u * k + 3u, L)]);
      } else {
        planes[h * B * W + k] = pl[k];
      }
    }
    qconst[h] = uvec4(floatBitsToUint(delta), floatBitsToUint(zero), floatBitsToUint(inv), total);
  }
}
