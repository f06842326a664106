// Query heads against N keys, one GQA group at a time (layouts in kscore.h).
//
// One invocation owns one key of one KV head: it reads the key's words once
// and scores them against the G query heads that share the KV head (the GQA
// bandwidth win), with every accumulator in registers and nothing shared.
// The query address is uniform across invocations (a cached load on GPUs).
// Every loop is unrolled (d, G, b and r are specialization constants), no
// invocation returns early and query addresses derive from push constants
// only: lavapipe turns a load into one scalar load only when its address is
// provably uniform and it sits outside all control flow, else into a loop
// over the lanes.
//
// MODE_FLOAT     q'·s in fp32 by sign-flip accumulation (xor of the sign bit)
// MODE_POPCOUNT  q'·s from popcounts over the b bit-planes of the quantized
//                query; SUMS writes the exact integer Σ s_i Q_i instead
// MODE_F16       the fp16 q·Kᵀ baseline
#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "kscore.h"

layout(local_size_x_id = 0) in;
layout(constant_id = 3) const uint D = 128;  // head dimension
layout(constant_id = 4) const uint G = 1;    // query heads scored per key (members of one group)
layout(constant_id = 5) const uint B = 8;    // popcount: query bit-planes (1, 4 or 8)
layout(constant_id = 6) const uint R = 0;    // residual rank r (0: none)
const uint W = (D + 31u) / 32u;              // words per key
const uint TAIL = D - 32u * (W - 1u);        // valid bits in the last word (1..32)
const uint LAST_MASK = 0xffffffffu >> (32u - TAIL);
// Bit slices of a per-lane sum of W values below 2^B (popcount path).
const uint SLICES = B + (W <= 1u ? 0u : W <= 2u ? 1u : W <= 4u ? 2u : W <= 8u ? 3u : W <= 16u ? 4u : 5u);
const uint ACCS = 2u;                        // float accumulators per head (breaks the add chain)

layout(push_constant) uniform PC { KscoreParams p; };

#if defined(MODE_FLOAT)
layout(std430, binding = 0) readonly buffer Bits { uint bits[]; };
layout(std430, binding = 1) readonly buffer Alpha { uint alpha_w[]; };
layout(std430, binding = 2) readonly buffer Coef { uint c_w[]; };
layout(std430, binding = 3) readonly buffer Query { float q[]; };
layout(std430, binding = 4) readonly buffer Uq { float uq[]; };
layout(std430, binding = 5) readonly buffer Qmu { float qmu[]; };
layout(std430, binding = 6) writeonly buffer Scores { float scores[]; };
#elif defined(MODE_POPCOUNT)
layout(std430, binding = 0) readonly buffer Bits { uint bits[]; };
layout(std430, binding = 1) readonly buffer Planes { uint planes[]; };
layout(std430, binding = 2) readonly buffer Qconst { KscoreQueryConst qconst[]; };
#if defined(SUMS)
layout(std430, binding = 3) writeonly buffer Sums { int sums[]; };
#else
layout(std430, binding = 3) readonly buffer Alpha { uint alpha_w[]; };
layout(std430, binding = 4) readonly buffer Coef { uint c_w[]; };
layout(std430, binding = 5) readonly buffer Uq { float uq[]; };
layout(std430, binding = 6) readonly buffer Qmu { float qmu[]; };
layout(std430, binding = 7) writeonly buffer Scores { float scores[]; };
#endif
#elif defined(MODE_F16)
layout(std430, binding = 0) readonly buffer Keys { uint kh[]; };
layout(std430, binding = 1) readonly buffer Query { float q[]; };
layout(std430, binding = 2) writeonly buffer Scores { float scores[]; };
#else
#error "define MODE_FLOAT, MODE_POPCOUNT or MODE_F16"
#endif

#if !defined(MODE_F16) && !defined(SUMS)
// Half e % 2 of packed fp16 word w (windows start at even halves, so a
// global index and its windowed index agree in parity).
float half_at(uint w, uint e) {
  const vec2 v = unpackHalf2x16(w);
  return (e & 1u) != 0u ? v.y : v.x;
}

// qmu + alpha·dot + (Uᵀq')·c for the G heads of key `row`, written to scores
// (qh0: first query-side head, sh0: first score row).
void finish(const float dot[G], uint qh0, uint sh0, uint row, uint t, bool live) {
  const uint ea = row - p.alpha_base;
  const float a = half_at(alpha_w[ea >> 1], ea);
  float res[G];
  // A stand-in buffer is bound when there is no qmu: select, never multiply
  // (its words may be NaN patterns); the load stays outside control flow.
  [[unroll]] for (uint g = 0; g < G; ++g) {
    const float v = qmu[qh0 + g];
    res[g] = p.has_qmu != 0u ? v : 0.0;
  }
  const uint cb = row * R - p.c_base;
  [[unroll]] for (uint i = 0; i < R; ++i) {
    const float cv = half_at(c_w[(cb + i) >> 1], cb + i);
    [[unroll]] for (uint g = 0; g < G; ++g) res[g] += uq[(qh0 + g) * R + i] * cv;
  }
  if (live) [[unroll]] for (uint g = 0; g < G; ++g) scores[(sh0 + g) * p.n + t - p.scores_base] = a * dot[g] + res[g];
}
#endif

void main() {
  // Invocations past the last key score the last key again and store nothing:
  // with every invocation active, lavapipe keeps uniform loads scalar.
  const uint y = gl_WorkGroupID.y;  // query row of the call (workgroups are 1 high)
  const uint t = p.key0 + min(gl_GlobalInvocationID.x, p.keys - 1u);
  const bool live = gl_GlobalInvocationID.x < p.keys && (p.causal0 == 0xffffffffu || t < p.causal0 + y);
  const uint kv = p.kv;
  const uint row = kv * p.head_stride + t * p.key_stride;  // global key row
  const uint h0 = kv * p.group + p.gsub0;                  // first query head (in its row) of this dispatch
  const uint qh0 = (p.query0 + y) * p.q_heads + h0;        // ... in the query-side buffers
  const uint sh0 = y * p.q_heads + h0;                     // ... in scores

#if defined(MODE_FLOAT)
  const uint kb0 = row * W - p.bits_base;
  float acc[G * ACCS];
  [[unroll]] for (uint k = 0; k < G * ACCS; ++k) acc[k] = 0.0;
  [[unroll]] for (uint w = 0; w < W; ++w) {
    const uint nb = ~bits[kb0 + w];  // 1 where s = -1
    const uint n = w + 1u < W ? 32u : TAIL;
    if (n == 32u) {
      [[unroll]] for (uint j = 0; j < 32u; ++j) {
        const uint m = (nb << (31u - j)) & 0x80000000u;
        [[unroll]] for (uint g = 0; g < G; ++g)
          acc[g * ACCS + (j % ACCS)] += uintBitsToFloat(floatBitsToUint(q[(qh0 + g) * D + 32u * w + j]) ^ m);
      }
    } else {
      [[unroll]] for (uint j = 0; j < n; ++j) {
        const uint m = (nb << (31u - j)) & 0x80000000u;
        [[unroll]] for (uint g = 0; g < G; ++g)
          acc[g * ACCS] += uintBitsToFloat(floatBitsToUint(q[(qh0 + g) * D + 32u * w + j]) ^ m);
      }
    }
  }
  float dot[G];
  [[unroll]] for (uint g = 0; g < G; ++g) {
    dot[g] = 0.0;
    [[unroll]] for (uint k = 0; k < ACCS; ++k) dot[g] += acc[g * ACCS + k];
  }
  finish(dot, qh0, sh0, row, t, live);

#elif defined(MODE_POPCOUNT)
  const uint kb0 = row * W - p.bits_base;
  uint kw[W];  // the key's words, read once for all G heads
  uint ones = 0u;
  [[unroll]] for (uint w = 0; w < W; ++w) {
    kw[w] = bits[kb0 + w];
    if (w + 1u == W) kw[w] &= LAST_MASK;  // the query planes' padding bits are 0 already
    ones += bitCount(kw[w]);
  }
  // Per head: Σ_p 2^p popcount(Q_p & bits), or popcount(sign(q) ^ bits) for b = 1.
  uint acc[G];
  [[unroll]] for (uint g = 0; g < G; ++g) {
    acc[g] = 0u;
    if (B == 1u) {
      [[unroll]] for (uint w = 0; w < W; ++w) acc[g] += bitCount(planes[(qh0 + g) * W + w] ^ kw[w]);
    } else {
      // Bit-sliced: lane j of slice S[l] is bit l of Σ_w k_{32w+j} Q_{32w+j};
      // each word's masked planes are ripple-added into the slices (no popcount),
      // so a head costs SLICES popcounts instead of B·W.
      uint sl[SLICES];
      [[unroll]] for (uint l = 0; l < SLICES; ++l) sl[l] = 0u;
      [[unroll]] for (uint w = 0; w < W; ++w) {
        uint carry = 0u;
        [[unroll]] for (uint l = 0; l < SLICES; ++l) {
          if (l < B) {
            const uint m = planes[((qh0 + g) * B + l) * W + w] & kw[w];
            const uint x = sl[l] ^ m;
            const uint c = (sl[l] & m) | (carry & x);
            sl[l] = x ^ carry;
            carry = c;
          } else {
            const uint c = sl[l] & carry;
            sl[l] ^= carry;
            carry = c;
          }
        }
      }
      [[unroll]] for (uint l = 0; l < SLICES; ++l) acc[g] += bitCount(sl[l]) << l;
    }
  }
  const int sigma = 2 * int(ones) - int(D);  // Σ s_i
  int sq[G];                                  // Σ s_i Q_i
  [[unroll]] for (uint g = 0; g < G; ++g) {
    if (B == 1u) {
      sq[g] = (int(D) - 2 * int(acc[g]) + sigma) / 2;  // Σ sign(q)_i s_i = d - 2 popcount(q ^ bits)
    } else {
      sq[g] = 2 * int(acc[g]) - int(qconst[qh0 + g].sum_q);
    }
  }
#if defined(SUMS)
  if (live) [[unroll]] for (uint g = 0; g < G; ++g) sums[(sh0 + g) * p.n + t - p.scores_base] = sq[g];
#else
  float dot[G];
  [[unroll]] for (uint g = 0; g < G; ++g) {
    const KscoreQueryConst c = qconst[qh0 + g];
    dot[g] = c.delta * (float(sq[g]) - c.zero * float(sigma));
  }
  finish(dot, qh0, sh0, row, t, live);
#endif

#else  // MODE_F16
  const uint DH = (D + 1u) / 2u;  // words per key
  const uint k0 = row * DH - p.bits_base;
  float ax[G], ay[G];
  [[unroll]] for (uint g = 0; g < G; ++g) {
    ax[g] = 0.0;
    ay[g] = 0.0;
  }
  [[unroll]] for (uint w = 0; w < D / 2u; ++w) {
    const vec2 k = unpackHalf2x16(kh[k0 + w]);
    [[unroll]] for (uint g = 0; g < G; ++g) {
      ax[g] += k.x * q[(qh0 + g) * D + 2u * w];
      ay[g] += k.y * q[(qh0 + g) * D + 2u * w + 1u];
    }
  }
  if ((D & 1u) != 0u) {
    const float k = unpackHalf2x16(kh[k0 + DH - 1u]).x;
    [[unroll]] for (uint g = 0; g < G; ++g) ax[g] += k * q[(qh0 + g) * D + D - 1u];
  }
  if (live) [[unroll]] for (uint g = 0; g < G; ++g) scores[(sh0 + g) * p.n + t - p.scores_base] = ax[g] + ay[g];
#endif
}
