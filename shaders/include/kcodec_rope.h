// GLSL only: RoPE angles in float-float arithmetic, shared by ops_rope.comp,
// the codec's decode / mean-RoPE encode and attn_kcode's rotation table.
// freq_i comes from the model's frequency table (vkquant/rope.hpp: fp32, as
// the model was trained with); angle = pos · freq_i is formed exactly in
// float-float, reduced modulo 2π, and only the reduced angle goes through
// cos / sin. cos and sin are then scaled by the table's attention factor.
#ifndef VKQ_KCODEC_ROPE_H
#define VKQ_KCODEC_ROPE_H

vec2 two_sum(float a, float b) {
  precise float s = a + b;
  precise float bb = s - a;
  precise float e = (a - (s - bb)) + (b - bb);
  return vec2(s, e);
}
vec2 split(float a) {
  precise float c = 4097.0 * a;
  precise float hi = c - (c - a);
  precise float lo = a - hi;
  return vec2(hi, lo);
}
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

// A position as an exact float-float.
vec2 df_position(uint pos) { return two_sum(float(pos & 0xfffff000u), float(pos & 0xfffu)); }

// scale · (cos, sin) of posf · freq.
vec2 rope_cos_sin(vec2 posf, float freq, float scale) {
  const vec2 two_pi = vec2(6.28318548202514648, -1.7484556025237907e-07);
  const vec2 angle = df_mul(posf, vec2(freq, 0.0));
  const float k = round(angle.x * 0.15915494309189535);
  const vec2 red = df_sub(angle, df_mul(vec2(k, 0.0), two_pi));
  const float ang = red.x + red.y;
  return scale * vec2(cos(ang), sin(ang));
}

#endif
