// Merges the key splits of attn_kcode_softmax.comp for one query block:
// out[out0 + r*hd + c] = Σ_s e^(m_s - M) acc_s[c] / Σ_s e^(m_s - M) l_s with
// M = max_s m_s; one invocation per output element. Empty splits carry
// m = -3e38, l = 0 and weigh nothing.
#version 450
#extension GL_GOOGLE_include_directive : require
#include "attn_kcode.h"

layout(local_size_x_id = 0) in;
layout(push_constant) uniform PC { AttnKcodeCombineParams p; };

layout(std430, binding = 0) readonly buffer Partial { float partial[]; };
layout(std430, binding = 1) writeonly buffer Out { float outv[]; };

void main() {
  const uint i = gl_GlobalInvocationID.x;
  if (i >= p.rows * p.hd) return;
  const uint r = i / p.hd, c = i - r * p.hd;
  const uint stride = p.hd + 2;
  const uint base = r * p.splits * stride;
  float mx = partial[base];
  for (uint s = 1; s < p.splits; ++s) mx = max(mx, partial[base + s * stride]);
  float num = 0.0, den = 0.0;
  for (uint s = 0; s < p.splits; ++s) {
    const float wgt = exp(partial[base + s * stride] - mx);
    den += wgt * partial[base + s * stride + 1];
    num += wgt * partial[base + s * stride + 2 + c];
  }
  outv[p.out0 + i] = num / den;
}
