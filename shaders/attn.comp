// Causal GQA attention over an fp16 KV cache, one invocation per (query row
// t, GH query heads of one KV head's group, key split s): per head an online
// softmax (running max m, sum l, fp32 accumulator) over keys
// [s*split_len, (s+1)*split_len) ∩ [0, pos0+t]. The GH heads share each key
// and value row: loaded once, one dot product and one multiply-add per
// coordinate and head (vcache.h). With one split each row is normalised and
// written to out; with several, (m, l, acc) go to the scratch buffer for
// attn_combine.comp (flash-decoding). No shared memory and no barriers: all
// the work of a row is in one invocation (fast on CPU devices; the host sets
// GH = 1 on GPUs). Neighbouring invocations are neighbouring query rows (in
// decode: neighbouring heads or KV heads), so they read nearby keys at the
// same time: one broadcast load on GPUs, one cached line on CPUs.
// The loops over hd and GH are unrolled (specialization constants), which
// leaves one loop iteration per key: lavapipe ends an invocation's loops
// after 65535 iterations in all, so the host also caps the keys per split
// (kMaxKeysPerSplit).
#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "attn.h"

layout(local_size_x_id = 0) in;
layout(constant_id = 3) const uint HD = 128;  // head dimension (even; a multiple of 32 for q8/q4 values)
layout(constant_id = 4) const uint VT = VKQ_V_F16;  // value storage (attn.h)
layout(constant_id = 5) const uint GH = 1;  // query heads per invocation (<= group; the last chunk of a group may hold fewer)
layout(push_constant) uniform PC { AttnParams p; };

layout(std430, set = 0, binding = 0) readonly buffer Q { float q[]; };
layout(std430, set = 0, binding = 1) readonly buffer K { uint kc[]; };
layout(std430, set = 0, binding = 1) readonly buffer K4 { uvec4 kc4[]; };  // the same, 16 bytes at a time
layout(std430, set = 0, binding = 2) readonly buffer V { uint vc[]; };       // value codes
layout(std430, set = 0, binding = 2) readonly buffer V4 { uvec4 vc4[]; };   // the same, 16 bytes at a time
layout(std430, set = 0, binding = 3) writeonly buffer Out { float outv[]; };
layout(std430, set = 0, binding = 4) writeonly buffer Scratch { float scratch[]; };
layout(std430, set = 0, binding = 5) readonly buffer VS { uint vs[]; };     // value scales (q8, q4)

const uint HW = HD / 2;         // words per key row
const float kLowest = -3.0e38;  // "no key yet": exp(kLowest - s) is 0 for any real score

float m[GH], l[GH];
vec2 acc[GH * HW];
#include "vcache.h"

void main() {
  const uint chunks = (p.group + GH - 1) / GH;  // invocations per KV head and key split
  const uint gid = gl_GlobalInvocationID.x;
  if (gid >= p.n * p.n_kv * chunks * p.splits) return;
  const uint t = gid % p.n;
  const uint cks = gid / p.n;
  const uint c = cks % chunks;
  const uint ks = cks / chunks;
  const uint kvh = ks % p.n_kv;
  const uint s = ks / p.n_kv;
  const uint h0 = kvh * p.group + c * GH;     // first head of the invocation
  const uint nh = min(GH, p.group - c * GH);  // heads it owns

  vec2 qv[GH * HW];
  [[unroll]] for (uint i = 0; i < GH; ++i) {
    const uint qb = (t * p.n_heads + h0 + min(i, nh - 1)) * HD;
    [[unroll]] for (uint w = 0; w < HW; ++w) qv[i * HW + w] = vec2(q[qb + 2 * w], q[qb + 2 * w + 1]) * p.scale;
  }
  v_begin();

  const uint k0 = s * p.split_len;
  const uint k1 = min(k0 + p.split_len, p.pos0 + t + 1);
  for (uint j = k0; j < k1; ++j) {
    float sc[GH];
    [[unroll]] for (uint i = 0; i < GH; ++i) sc[i] = 0.0;
    if (HD % 8 == 0) {  // 16-byte loads (vcache.h says why)
      const uint base = (j * p.n_kv + kvh) * (HW / 4);
      [[unroll]] for (uint u = 0; u < HW / 4; ++u) {
        const uvec4 x = kc4[base + u];
        [[unroll]] for (uint e = 0; e < 4; ++e) {
          const vec2 kv = unpackHalf2x16(x[e]);
          [[unroll]] for (uint i = 0; i < GH; ++i) sc[i] += dot(qv[i * HW + 4 * u + e], kv);  // the scalar loop's order
        }
      }
    } else {
      const uint base = (j * p.n_kv + kvh) * HW;
      [[unroll]] for (uint w = 0; w < HW; ++w) {
        const vec2 kv = unpackHalf2x16(kc[base + w]);
        [[unroll]] for (uint i = 0; i < GH; ++i) sc[i] += dot(qv[i * HW + w], kv);
      }
    }
    float pr[GH];
    softmax_step(sc, nh, pr);
    v_accumulate(pr, j * p.n_kv + kvh);
  }

  v_finish();
  [[unroll]] for (uint i = 0; i < GH; ++i) {
    if (i >= nh) break;
    const uint h = h0 + i;
    if (p.splits == 1) {
      const uint qbase = (t * p.n_heads + h) * HD;
      const float inv = 1.0 / l[i];  // l >= 1: key 0 is always in range
      [[unroll]] for (uint w = 0; w < HW; ++w) {
        outv[qbase + 2 * w] = acc[i * HW + w].x * inv;
        outv[qbase + 2 * w + 1] = acc[i * HW + w].y * inv;
      }
    } else {
      // partial layout: ((t * n_heads + h) * splits + s) * (HD + 2): m, l, acc (HD)
      const uint pbase = ((t * p.n_heads + h) * p.splits + s) * (HD + 2);
      scratch[pbase] = m[i];
      scratch[pbase + 1] = l[i];
      [[unroll]] for (uint w = 0; w < HW; ++w) {
        scratch[pbase + 2 + 2 * w] = acc[i * HW + w].x;
        scratch[pbase + 3 + 2 * w] = acc[i * HW + w].y;
      }
    }
  }
}
