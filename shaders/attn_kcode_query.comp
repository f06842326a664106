// Query preparation for attention over 1-bit keys (layouts in attn_kcode.h):
// invocation (m = row * n_heads + h, i) writes q'_m[i] = (R_kv q_m)_i with
// kv = h / group; i = 0 also writes q_m·mu_kv (plain mean), and in the
// mean-RoPE variant invocations i < hd/2 write the pair (A_i, B_i) instead.
#version 450
#extension GL_GOOGLE_include_directive : require
#include "attn_kcode.h"

layout(local_size_x_id = 0) in;
layout(push_constant) uniform PC { AttnKcodeQueryParams p; };

layout(std430, binding = 0) readonly buffer Q { float q[]; };          // (rows, hd)
layout(std430, binding = 1) readonly buffer Mu { float mu[]; };        // (n_kv, hd)
layout(std430, binding = 2) readonly buffer Rot { float rot[]; };      // (n_kv, hd, hd)
layout(std430, binding = 3) writeonly buffer Qrot { float qrot[]; };   // (rows, hd)
layout(std430, binding = 4) writeonly buffer Qmu { float qmu[]; };     // (rows)
layout(std430, binding = 5) writeonly buffer Mrope { float mrope[]; }; // (rows, hd/2, 2)

void main() {
  const uint gid = gl_GlobalInvocationID.x;
  if (gid >= p.rows * p.hd) return;
  const uint m = gid / p.hd, i = gid % p.hd;
  const uint kv = (m % p.n_heads) / p.group;
  const uint qb = m * p.hd;
  if (p.has_rot != 0) {
    const uint rb = (kv * p.hd + i) * p.hd;
    float s = 0.0;
    for (uint j = 0; j < p.hd; ++j) s += rot[rb + j] * q[qb + j];
    qrot[qb + i] = s;
  } else {
    qrot[qb + i] = q[qb + i];
  }
  const uint mb = kv * p.hd, half_hd = p.hd / 2;
  if (p.mean_rope == 0) {
    if (i == 0) {
      float s = 0.0;
      for (uint j = 0; j < p.hd; ++j) s += q[qb + j] * mu[mb + j];
      qmu[m] = s;
    }
  } else if (i < half_hd) {
    const float q0 = q[qb + i], q1 = q[qb + i + half_hd], m0 = mu[mb + i], m1 = mu[mb + i + half_hd];
    mrope[qb + 2 * i] = q0 * m0 + q1 * m1;
    mrope[qb + 2 * i + 1] = q1 * m0 - q0 * m1;
  }
}
