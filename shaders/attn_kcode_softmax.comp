// softmax(scale · score)·V over one query block (layouts in attn_kcode.h), one
// invocation per (block row t, GH query heads of one KV head's group, key
// split s), as attn.comp: per head an online softmax (running max m, sum l,
// fp32 accumulator) over keys [s*split_len, (s+1)*split_len) ∩
// [0, pos0 + row0 + t]. Keys below front are scored exactly against the fp16
// front keys with the unrotated query; the others read the 1-bit scores. The
// GH heads share each value row: it is loaded and decoded once (vcache.h).
// With one split each row is normalised into out, else (m, l, acc) go to
// partial for attn_kcode_combine.comp. No shared memory, no barriers; loops
// over HD and GH unrolled; the host caps the keys per split (lavapipe ends an
// invocation's loops after 65535 iterations).
#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "attn.h"
#include "attn_kcode.h"

layout(local_size_x_id = 0) in;
layout(constant_id = 3) const uint HD = 128;  // head dimension (even; a multiple of 32 for q8/q4 values)
layout(constant_id = 4) const uint VT = VKQ_V_F16;  // value storage (attn.h)
layout(constant_id = 5) const uint GH = 1;  // query heads per invocation (<= group; the last chunk of a group may hold fewer)
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

float m[GH], l[GH];
vec2 acc[GH * HW];
#include "vcache.h"

// Folds key j (scores sc[i] for the invocation's nh heads) into every head's (m, l, acc).
void consume(const float sc[GH], uint nh, uint j, uint kvh) {
  float pr[GH];
  softmax_step(sc, nh, pr);
  v_accumulate(pr, j * p.n_kv + kvh);
}

void main() {
  const uint chunks = (p.group + GH - 1) / GH;  // invocations per KV head and key split
  const uint gid = gl_GlobalInvocationID.x;
  if (gid >= p.nb * p.n_kv * chunks * p.splits) return;
  const uint t = gid % p.nb;
  const uint cks = gid / p.nb;
  const uint c = cks % chunks;
  const uint ks = cks / chunks;
  const uint kvh = ks % p.n_kv;
  const uint s = ks / p.n_kv;
  const uint h0 = kvh * p.group + c * GH;         // first head of the invocation
  const uint nh = min(GH, p.group - c * GH);      // heads it owns
  const uint row = p.row0 + t;

  v_begin();
  const uint k0 = s * p.split_len;
  const uint k1 = min(k0 + p.split_len, p.pos0 + row + 1);

  const uint f1 = min(k1, p.front);
  if (k0 < f1) {
    vec2 qv[GH * HW];
    [[unroll]] for (uint i = 0; i < GH; ++i) {
      const uint qb = (row * p.n_heads + h0 + min(i, nh - 1)) * HD;
      [[unroll]] for (uint w = 0; w < HW; ++w) qv[i * HW + w] = vec2(q[qb + 2 * w], q[qb + 2 * w + 1]) * p.scale;
    }
    for (uint j = k0; j < f1; ++j) {
      const uint base = (j * p.n_kv + kvh) * HW;
      float sc[GH];
      [[unroll]] for (uint i = 0; i < GH; ++i) sc[i] = 0.0;
      [[unroll]] for (uint w = 0; w < HW; ++w) {
        const vec2 kv = unpackHalf2x16(kf[base + w]);
        [[unroll]] for (uint i = 0; i < GH; ++i) sc[i] += dot(qv[i * HW + w], kv);
      }
      consume(sc, nh, j, kvh);
    }
  }
  const uint sb = (t * p.n_heads + h0) * p.kv_len;
  for (uint j = max(k0, p.front); j < k1; ++j) {
    float sc[GH];
    [[unroll]] for (uint i = 0; i < GH; ++i) sc[i] = scores[sb + min(i, nh - 1) * p.kv_len + j] * p.scale;
    consume(sc, nh, j, kvh);
  }

  v_finish();
  [[unroll]] for (uint i = 0; i < GH; ++i) {
    if (i >= nh) break;
    const uint h = h0 + i;
    if (p.splits == 1) {
      const uint qbase = (row * p.n_heads + h) * HD;
      const float inv = 1.0 / l[i];  // l >= 1: key 0 is always in range
      [[unroll]] for (uint w = 0; w < HW; ++w) {
        outv[qbase + 2 * w] = acc[i * HW + w].x * inv;
        outv[qbase + 2 * w + 1] = acc[i * HW + w].y * inv;
      }
    } else {
      const uint pbase = ((t * p.n_heads + h) * p.splits + s) * (HD + 2);
      partial[pbase] = m[i];
      partial[pbase + 1] = l[i];
      [[unroll]] for (uint w = 0; w < HW; ++w) {
        partial[pbase + 2 + 2 * w] = acc[i * HW + w].x;
        partial[pbase + 3 + 2 * w] = acc[i * HW + w].y;
      }
    }
  }
}
