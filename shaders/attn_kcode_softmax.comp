// softmax(scale · score)·V over one query block (layouts in attn_kcode.h), one
// invocation per (block row t, head h, key split s), as attn.comp: an online
// softmax (running max m, sum l, fp32 accumulator) over keys
// [s*split_len, (s+1)*split_len) ∩ [0, pos0 + row0 + t]. Keys below front are
// scored exactly against the fp16 front keys with the unrotated query; the
// others read the 1-bit scores. With one split the row is normalised into
// out, else (m, l, acc) go to partial for attn_kcode_combine.comp. No shared
// memory, no barriers; loops over HD unrolled; the host caps the keys per
// split (lavapipe ends an invocation's loops after 65535 iterations).
#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "attn.h"
#include "attn_kcode.h"

layout(local_size_x_id = 0) in;
layout(constant_id = 3) const uint HD = 128;  // head dimension (even; a multiple of 32 for q8/q4 values)
layout(constant_id = 4) const uint VT = VKQ_V_F16;  // value storage (attn.h)
layout(push_constant) uniform PC { AttnKcodeParams p; };

layout(std430, binding = 0) readonly buffer Q { float q[]; };            // (n, n_heads, HD)
layout(std430, binding = 1) readonly buffer Scores { float scores[]; };  // (nb, n_heads, kv_len)
layout(std430, binding = 2) readonly buffer Front { uint kf[]; };        // (front, n_kv, HD/2)
layout(std430, binding = 3) readonly buffer V { uint vc[]; };            // value codes (kv_len, n_kv, ...)
layout(std430, binding = 3) readonly buffer V4 { uvec4 vc4[]; };        // the same, 16 bytes at a time
layout(std430, binding = 4) writeonly buffer Out { float outv[]; };      // (n, n_heads, HD)
layout(std430, binding = 5) writeonly buffer Partial { float partial[]; };
layout(std430, binding = 6) readonly buffer VS { uint vs[]; };           // value scales (q8, q4)

const uint HW = HD / 2;
const float kLowest = -3.0e38;  // "no key yet": exp(kLowest - s) is 0 for any real score

float m = kLowest, l = 0.0;
vec2 acc[HW];
#include "vcache.h"

// Folds key j of KV head kvh with score sc into (m, l, acc).
void consume(float sc, uint j, uint kvh) {
  if (sc > m) {  // a new maximum: rescale what was summed so far
    const float c = exp(m - sc);
    l *= c;
    v_rescale(c);
    m = sc;
  }
  const float pr = exp(sc - m);
  l += pr;
  v_accumulate(pr, j * p.n_kv + kvh);
}

void main() {
  const uint gid = gl_GlobalInvocationID.x;
  if (gid >= p.nb * p.n_heads * p.splits) return;
  const uint t = gid % p.nb;
  const uint hs = gid / p.nb;
  const uint h = hs % p.n_heads;
  const uint s = hs / p.n_heads;
  const uint kvh = h / p.group;
  const uint row = p.row0 + t;

  v_begin();
  const uint k0 = s * p.split_len;
  const uint k1 = min(k0 + p.split_len, p.pos0 + row + 1);
  const uint qbase = (row * p.n_heads + h) * HD;

  const uint f1 = min(k1, p.front);
  if (k0 < f1) {
    vec2 qv[HW];
    [[unroll]] for (uint w = 0; w < HW; ++w) qv[w] = vec2(q[qbase + 2 * w], q[qbase + 2 * w + 1]) * p.scale;
    for (uint j = k0; j < f1; ++j) {
      const uint base = (j * p.n_kv + kvh) * HW;
      float sc = 0.0;
      [[unroll]] for (uint w = 0; w < HW; ++w) sc += dot(qv[w], unpackHalf2x16(kf[base + w]));
      consume(sc, j, kvh);
    }
  }
  const uint sb = (t * p.n_heads + h) * p.kv_len;
  for (uint j = max(k0, p.front); j < k1; ++j) consume(scores[sb + j] * p.scale, j, kvh);

  v_finish();
  if (p.splits == 1) {
    const float inv = 1.0 / l;  // l >= 1: key 0 is always in range
    [[unroll]] for (uint w = 0; w < HW; ++w) {
      outv[qbase + 2 * w] = acc[w].x * inv;
      outv[qbase + 2 * w + 1] = acc[w].y * inv;
    }
  } else {
    const uint pbase = ((t * p.n_heads + h) * p.splits + s) * (HD + 2);
    partial[pbase] = m;
    partial[pbase + 1] = l;
    [[unroll]] for (uint w = 0; w < HW; ++w) {
      partial[pbase + 2 + 2 * w] = acc[w].x;
      partial[pbase + 3 + 2 * w] = acc[w].y;
    }
  }
}
