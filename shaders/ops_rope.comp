// Rotary position embedding, in place on x (n, heads, hd). Invocation (i, t)
// rotates pair i of token t in every head with one angle.
//
// Accuracy: pos * freq at positions up to 1e6 needs more than fp32 (an fp32
// product is off by up to ~0.06 rad there). The angle is computed in
// float-float arithmetic (~44 bits): freq = r^i by binary powering of r =
// theta^(-2/hd) (given as hi + lo), times the position, reduced modulo 2π
// (a float-float constant); only the reduced angle goes through fp32 cos/sin.
// `precise` stops the compiler from fusing or reassociating the error terms.
#version 450
#extension GL_GOOGLE_include_directive : require
#include "ops.h"

layout(local_size_x_id = 0, local_size_y_id = 1, local_size_z_id = 2) in;
layout(push_constant) uniform PC { RopeParams p; };

layout(std430, set = 0, binding = 0) buffer X { float x[]; };

// a + b exactly as hi + lo.
vec2 two_sum(float a, float b) {
  precise float s = a + b;
  precise float bb = s - a;
  precise float e = (a - (s - bb)) + (b - bb);
  return vec2(s, e);
}

// Dekker's split of a float into two halves of 12 significant bits.
vec2 split(float a) {
  precise float c = 4097.0 * a;
  precise float hi = c - (c - a);
  precise float lo = a - hi;
  return vec2(hi, lo);
}

// a * b exactly as hi + lo (no fma: Vulkan does not promise a fused one).
vec2 two_prod(float a, float b) {
  precise float pr = a * b;
  const vec2 as = split(a), bs = split(b);
  precise float e = ((as.x * bs.x - pr) + as.x * bs.y + as.y * bs.x) + as.y * bs.y;
  return vec2(pr, e);
}

vec2 df_mul(vec2 a, vec2 b) {
  vec2 pr = two_prod(a.x, b.x);
  precise float e = pr.y + (a.x * b.y + a.y * b.x);
  return two_sum(pr.x, e);
}

vec2 df_sub(vec2 a, vec2 b) {
  vec2 s = two_sum(a.x, -b.x);
  precise float e = s.y + (a.y - b.y);
  return two_sum(s.x, e);
}

void main() {
  const uint half_hd = p.hd / 2;
  const uint i = gl_GlobalInvocationID.x;
  const uint t = gl_GlobalInvocationID.y;
  if (i >= half_hd || t >= p.n) return;

  // freq = r^i
  vec2 freq = vec2(1.0, 0.0), base = vec2(p.r_hi, p.r_lo);
  for (uint e = i; e != 0; e >>= 1) {
    if ((e & 1u) != 0) freq = df_mul(freq, base);
    if (e > 1) base = df_mul(base, base);
  }
  // The position as an exact float-float (uint up to 2^32).
  const uint pos = p.pos0 + t;
  const vec2 posf = two_sum(float(pos & 0xfffff000u), float(pos & 0xfffu));
  const vec2 angle = df_mul(posf, freq);
  const vec2 two_pi = vec2(6.28318548202514648, -1.7484556025237907e-07);
  const float k = round(angle.x * 0.15915494309189535);
  const vec2 r = df_sub(angle, df_mul(vec2(k, 0.0), two_pi));
  const float a = r.x + r.y;
  const float cs = cos(a), sn = sin(a);

  const uint stride = p.neox != 0 ? half_hd : 1;
  const uint off = p.neox != 0 ? i : 2 * i;
  for (uint h = 0; h < p.heads; ++h) {
    const uint j = (t * p.heads + h) * p.hd + off;
    const float x0 = x[j], x1 = x[j + stride];
    x[j] = x0 * cs - x1 * sn;
    x[j + stride] = x0 * sn + x1 * cs;
  }
}
