// Causal GQA attention over an fp16 KV cache, one invocation per (query row
// t, head h, key split s): an online softmax (running max m, sum l, fp32
// accumulator) over keys [s*split_len, (s+1)*split_len) ∩ [0, pos0+t]. With
// one split the row is normalised and written to out; with several, (m, l,
// acc) go to the scratch buffer for attn_combine.comp (flash-decoding). No
// shared memory and no barriers: all the work of a row is in one invocation
// (fast on CPU devices). Neighbouring invocations are neighbouring query rows
// of one head (in decode: neighbouring heads), so they read the same key at
// the same time: one broadcast load on GPUs, one cached line on CPUs.
// The loops over hd are unrolled (HD is a specialization constant), which
// keeps q and acc in registers and leaves one loop iteration per key:
// lavapipe ends an invocation's loops after 65535 iterations in all, so the
// host also caps the keys per split (kMaxKeysPerSplit).
#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "attn.h"

layout(local_size_x_id = 0) in;
layout(constant_id = 3) const uint HD = 128;  // head dimension (even; a multiple of 32 for q8/q4 values)
layout(constant_id = 4) const uint VT = VKQ_V_F16;  // value storage (attn.h)
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

vec2 acc[HW];
#include "vcache.h"

void main() {
  const uint gid = gl_GlobalInvocationID.x;
  if (gid >= p.n * p.n_heads * p.splits) return;
  const uint t = gid % p.n;
  const uint hs = gid / p.n;
  const uint h = hs % p.n_heads;
  const uint s = hs / p.n_heads;
  const uint kvh = h / p.group;

  vec2 qv[HW];
  const uint qbase = (t * p.n_heads + h) * HD;
  [[unroll]] for (uint w = 0; w < HW; ++w) qv[w] = vec2(q[qbase + 2 * w], q[qbase + 2 * w + 1]) * p.scale;
  v_begin();
  float m = kLowest, l = 0.0;

  const uint k0 = s * p.split_len;
  const uint k1 = min(k0 + p.split_len, p.pos0 + t + 1);
  for (uint j = k0; j < k1; ++j) {
    float sc = 0.0;
    if (HD % 8 == 0) {  // 16-byte loads (vcache.h says why)
      const uint base = (j * p.n_kv + kvh) * (HW / 4);
      [[unroll]] for (uint u = 0; u < HW / 4; ++u) {
        const uvec4 x = kc4[base + u];
        sc += dot(qv[4 * u], unpackHalf2x16(x.x));  // one sum in the order of the scalar loop
        sc += dot(qv[4 * u + 1], unpackHalf2x16(x.y));
        sc += dot(qv[4 * u + 2], unpackHalf2x16(x.z));
        sc += dot(qv[4 * u + 3], unpackHalf2x16(x.w));
      }
    } else {
      const uint base = (j * p.n_kv + kvh) * HW;
      [[unroll]] for (uint w = 0; w < HW; ++w) sc += dot(qv[w], unpackHalf2x16(kc[base + w]));
    }
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

  v_finish();
  if (p.splits == 1) {
    const float inv = 1.0 / l;  // l >= 1: key 0 is always in range
    [[unroll]] for (uint w = 0; w < HW; ++w) {
      outv[qbase + 2 * w] = acc[w].x * inv;
      outv[qbase + 2 * w + 1] = acc[w].y * inv;
    }
  } else {
    // partial layout: ((t * n_heads + h) * splits + s) * (HD + 2): m, l, acc (HD)
    const uint pbase = ((t * p.n_heads + h) * p.splits + s) * (HD + 2);
    scratch[pbase] = m;
    scratch[pbase + 1] = l;
    [[unroll]] for (uint w = 0; w < HW; ++w) {
      scratch[pbase + 2 + 2 * w] = acc[w].x;
      scratch[pbase + 3 + 2 * w] = acc[w].y;
    }
  }
}
