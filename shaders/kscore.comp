// Query heads against N keys, one GQA group at a time (layouts in kscore.h).
//
// One invocation owns K keys of one KV head: it reads each key's words once
// and scores them against the G query heads that share the KV head (the GQA
// bandwidth win) in each of Y query rows, with every accumulator in registers
// and nothing shared; each query word it loads serves its K keys.
// The query address is uniform across invocations (a cached load on GPUs).
// Every loop is unrolled (d, G, b, r, Y and K are specialization constants),
// no invocation returns early and query addresses derive from push constants
// and constants only, never from gl_WorkGroupID: lavapipe turns a load into
// one scalar load only when its address is provably uniform and it sits
// outside all control flow, else into a loop over the lanes. A uniform load
// still costs a bounds check and a broadcast there, which is why K keys
// share each one.
//
// MODE_FLOAT     q'·s in fp32 by sign-flip accumulation (xor of the sign bit)
// MODE_POPCOUNT  q'·s from popcounts over the b bit-planes of the quantized
//                query; SUMS writes the exact integer Σ s_i Q_i instead
// MODE_TC        the transform code (no sign bits): qmu + Σ_r (Uᵀq)_r ĉ_r from the
//                keys' 4/3/2/1-bit records (N4, N3, N2 and R specialize the head)
// MODE_F16       the fp16 q·Kᵀ baseline
#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "kscore.h"
#if defined(MODE_TC)
#include "kcodec.h"  // tc_slot
#endif

layout(local_size_x_id = 0) in;
layout(constant_id = 3) const uint D = 128;  // head dimension
layout(constant_id = 4) const uint G = 1;    // query heads scored per key (members of one group)
layout(constant_id = 5) const uint B = 8;    // popcount: query bit-planes (1, 4 or 8)
layout(constant_id = 6) const uint R = 0;    // the KV head's residual rank r (0: none)
layout(constant_id = 7) const uint Y = 1;    // query rows scored per key (row slots; see call_row)
layout(constant_id = 8) const uint K = 1;    // keys per invocation
layout(constant_id = 9) const uint VS = 0;   // 1: K = 4 and every invocation's first key sits at a multiple
                                             // of 4 elements of the output (the host checks): vec4 stores
layout(constant_id = 10) const uint CB = 16; // the KV head's coefficient bits: 16 (fp16), 8 or 4 (codes + fp16 scale); AR: 4, 2 or 1
layout(constant_id = 11) const uint AR = 0;  // 1: CB-bit alpha-relative codes (no scale half; ĉ = alpha·(code + 1/2))
layout(constant_id = 12) const uint N4 = 0;  // MODE_TC: the first N4 of R codes are 4-bit, the next N3 3-bit,
layout(constant_id = 13) const uint N2 = 0;  // the next N2 2-bit, the rest 1-bit
layout(constant_id = 14) const uint N3 = 0;
const uint W = (D + 31u) / 32u;              // words per key
const uint TAIL = D - 32u * (W - 1u);        // valid bits in the last word (1..32)
const uint LAST_MASK = 0xffffffffu >> (32u - TAIL);
// Bit slices of a per-lane sum of W values below 2^B (popcount path).
const uint SLICES = B + (W <= 1u ? 0u : W <= 2u ? 1u : W <= 4u ? 2u : W <= 8u ? 3u : W <= 16u ? 4u : 5u);
// Arrays are sized by these names only: glslang gives two spellings of one
// size two array types.
const uint KY = K * Y;     // (key, row slot) pairs
const uint YG = Y * G;     // (row slot, head) pairs
const uint KYG = K * YG;   // (key, row slot, head) triples: index (k·Y + i)·G + g
const uint ACCS = K == 1u ? 2u : 1u;  // float accumulators per triple (K > 1 breaks the add chains already)
const uint NACC = KYG * ACCS;
const uint CPH = 16u / CB;                                          // coefficients per record half
const uint LEAD = CB == 16u || AR != 0u ? 0u : 1u;                 // the scale half of an 8/4-bit record
#if defined(MODE_TC)
const uint RH = R == 0u ? 1u : N4 / 4u + 3u * N3 / 16u + N2 / 8u + (R - N4 - N3 - N2) / 16u;  // record halves (1: keeps arrays non-empty)
#else
const uint RH = R == 0u ? 1u : CB == 16u ? R : LEAD + R / CPH;      // record halves (1: keeps arrays non-empty)
#endif
const uint RW = RH / 2u + 1u;                                       // words a record can touch
const uint KRW = K * RW;

layout(push_constant) uniform PC { KscoreParams p; };

#if defined(MODE_FLOAT)
layout(std430, binding = 1) readonly buffer Alpha { uint alpha_w[]; };
layout(std430, binding = 2) readonly buffer Coef { uint c_w[]; };
layout(std430, binding = 3) readonly buffer Query { float q[]; };
layout(std430, binding = 4) readonly buffer Uq { float uq[]; };
layout(std430, binding = 5) readonly buffer Qmu { float qmu[]; };
layout(std430, binding = 6) writeonly buffer Out1 { float out1[]; };
layout(std430, binding = 6) writeonly buffer Out4 { vec4 out4[]; };
#elif defined(MODE_POPCOUNT)
layout(std430, binding = 1) readonly buffer Planes { uint planes[]; };
layout(std430, binding = 2) readonly buffer Qconst { KscoreQueryConst qconst[]; };
#if defined(SUMS)
layout(std430, binding = 3) writeonly buffer Out1 { int out1[]; };
layout(std430, binding = 3) writeonly buffer Out4 { ivec4 out4[]; };
#else
layout(std430, binding = 3) readonly buffer Alpha { uint alpha_w[]; };
layout(std430, binding = 4) readonly buffer Coef { uint c_w[]; };
layout(std430, binding = 5) readonly buffer Uq { float uq[]; };
layout(std430, binding = 6) readonly buffer Qmu { float qmu[]; };
layout(std430, binding = 7) writeonly buffer Out1 { float out1[]; };
layout(std430, binding = 7) writeonly buffer Out4 { vec4 out4[]; };
#endif
#elif defined(MODE_TC)
layout(std430, binding = 0) readonly buffer Coef { uint c_w[]; };
layout(std430, binding = 1) readonly buffer Uq { float uq[]; };
layout(std430, binding = 2) readonly buffer Qmu { float qmu[]; };
layout(std430, binding = 3) writeonly buffer Out1 { float out1[]; };
layout(std430, binding = 3) writeonly buffer Out4 { vec4 out4[]; };
#if defined(TC_LEVELS)
layout(std430, binding = 4) readonly buffer Lv { float lv[]; };  // (kv_heads, basis columns, 16) calibrated levels
#endif
#elif defined(MODE_F16)
layout(std430, binding = 1) readonly buffer Query { float q[]; };
layout(std430, binding = 2) writeonly buffer Out1 { float out1[]; };
layout(std430, binding = 2) writeonly buffer Out4 { vec4 out4[]; };
#else
#error "define MODE_FLOAT, MODE_POPCOUNT, MODE_TC or MODE_F16"
#endif
#if defined(SUMS)
#define OUT_T int  // the output element: scores, or sums
#define OUT_T4 ivec4
#else
#define OUT_T float
#define OUT_T4 vec4
#endif

#if defined(MODE_F16)
const uint KW = (D + 1u) / 2u;  // words per key row: fp16 pairs
#else
const uint KW = W;              // words per key row: sign bits
#endif
// The key rows (bits, or fp16 K) seen three ways, for the widest load a row's
// alignment allows: lavapipe pays one loop over the lanes per load whatever
// its width. Windows start at 16-byte multiples, so word row·KW - bits_base
// keeps the alignment of row·KW.
#if !defined(MODE_TC)
layout(std430, binding = 0) readonly buffer Keys1 { uint keys1[]; };
layout(std430, binding = 0) readonly buffer Keys2 { uvec2 keys2[]; };
layout(std430, binding = 0) readonly buffer Keys4 { uvec4 keys4[]; };
const uint KV = KW % 4u == 0u ? 4u : KW % 2u == 0u ? 2u : 1u;  // words per load

// Words [KV·v, KV·v + KV) of the key row that starts at word k0.
uvec4 key_load(uint k0, uint v) {
  if (KV == 4u) return keys4[k0 / 4u + v];
  if (KV == 2u) return uvec4(keys2[k0 / 2u + v], 0u, 0u);
  return uvec4(keys1[k0 + v], 0u, 0u, 0u);
}
#endif

// Row slot i < Y of a dispatch scores query row row0 + i of the call; slots
// past the dispatch's rows repeat its last row and store nothing. Heads come
// from push constants and unrolled constants only, so that query-side loads
// stay scalar on lavapipe (a row taken from gl_WorkGroupID would not:
// lavapipe proves uniform only what derives from push constants and
// constants).
uint call_row(uint i) { return p.row0 + min(i, p.rows - 1u); }
uint query_head(uint i) { return (p.query0 + call_row(i)) * p.q_heads + p.kv * p.group + p.gsub0; }  // in q, qconst, ...
uint score_head(uint i) { return call_row(i) * p.q_heads + p.kv * p.group + p.gsub0; }              // in scores

// Writes v (key, slot, head) where live[k·Y + i]: with VS, one vec4 per
// (slot, head) whose four keys are all live (lavapipe pays one loop over the
// lanes per store, whatever its width), else one element per key.
void store(const OUT_T v[KYG], const uint t[K], const bool live[KY]) {
  [[unroll]] for (uint i = 0; i < Y; ++i)
    [[unroll]] for (uint g = 0; g < G; ++g) {
      const uint e = (score_head(i) + g) * p.n - p.scores_base;  // element of key 0 of this row
      if (VS != 0u) {
        const uint k1 = min(1u, K - 1u), k2 = min(2u, K - 1u), k3 = min(3u, K - 1u);  // VS implies K = 4
        if (live[i] && live[k1 * Y + i] && live[k2 * Y + i] && live[k3 * Y + i]) {
          out4[(e + t[0]) / 4u] = OUT_T4(v[i * G + g], v[(k1 * Y + i) * G + g], v[(k2 * Y + i) * G + g],
                                         v[(k3 * Y + i) * G + g]);
        } else {
          [[unroll]] for (uint k = 0; k < K; ++k)
            if (live[k * Y + i]) out1[e + t[k]] = v[(k * Y + i) * G + g];
        }
      } else {
        [[unroll]] for (uint k = 0; k < K; ++k)
          if (live[k * Y + i]) out1[e + t[k]] = v[(k * Y + i) * G + g];
      }
    }
}

#if !defined(MODE_F16) && !defined(SUMS)
// Half e % 2 of packed fp16 word w (windows start at even halves, so a
// global index and its windowed index agree in parity).
float half_at(uint w, uint e) {
  const vec2 v = unpackHalf2x16(w);
  return (e & 1u) != 0u ? v.y : v.x;
}

// Half j (a constant) of a record whose first half has parity par, from the
// record's words w[j / 2] (par 0) or w[(j + 1) / 2] (par 1) given as lo / hi.
uint record_half(uint lo, uint hi, uint par, uint j) {
  const uint w = par != 0u ? hi : lo;
  return ((par + j) & 1u) != 0u ? w >> 16 : w & 0xffffu;
}

// Each key's record words, read once (the last index clamped to the
// record: a record that ends mid-word may end its window too).
void record_words(const uint t[K], out uint cw[KRW], out uint par[K]) {
  [[unroll]] for (uint k = 0; k < K; ++k) {
    const uint e = p.c_offset + t[k] * p.c_stride - p.c_base;
    const uint last = (e + RH - 1u) >> 1;
    par[k] = e & 1u;
    [[unroll]] for (uint w = 0; w < RW; ++w) cw[k * RW + w] = c_w[min((e >> 1) + w, last)];
  }
}

// The score's qmu term for every (key, slot, head) triple. A stand-in buffer
// is bound when there is no qmu: select, never multiply (its words may be NaN
// patterns); the load stays outside control flow.
void init_qmu(out float res[KYG]) {
  [[unroll]] for (uint i = 0; i < Y; ++i)
    [[unroll]] for (uint g = 0; g < G; ++g) {
      const float v = qmu[query_head(i) + g];
      [[unroll]] for (uint k = 0; k < K; ++k) res[(k * Y + i) * G + g] = p.has_qmu != 0u ? v : 0.0;
    }
}
#endif

#if defined(MODE_TC)
// Key k's record half j, and above it half j + 1 when the code in `slot`
// (width, half, shift: constants) runs into it (a 3-bit code at shift 14, 15).
uint code_window(const uint cw[KRW], const uint par[K], uint k, uint j, uvec3 slot) {
  uint w = record_half(cw[k * RW + j / 2u], cw[k * RW + (j + 1u) / 2u], par[k], j);
  if (slot.z + slot.x > 16u) w |= record_half(cw[k * RW + (j + 1u) / 2u], cw[k * RW + (j + 2u) / 2u], par[k], j + 1u) << 16;
  return w;
}

// The transform code (kresidual.hpp's tc heads): qmu + Σ_r (Uᵀq)_r ĉ_r, ĉ_r =
// code_r + 1/2 or (TC_LEVELS) its calibrated level, for every (key, slot,
// head) triple, written where live[k·Y + i].
void score_tc(const uint t[K], const bool live[KY]) {
  float res[KYG];
  init_qmu(res);
  uint cw[KRW], par[K];
  if (R > 0u) record_words(t, cw, par);
  [[unroll]] for (uint r = 0; r < R; ++r) {
    const uvec3 slot = tc_slot(N4, N3, N2, r);  // width, half, shift: constants, the loop is unrolled
    const uint j = slot.y;
    float cv[K];
#if defined(TC_LEVELS)
    // The column's 2^width levels (uniform loads), each key's picked by a
    // select tree over its code's bits (no load at a per-lane address).
    const uint n = 1u << slot.x, lb = (p.kv * p.uq_stride + r) * 16u;  // uq_stride: the basis columns
    float t[16];
    [[unroll]] for (uint i = 0; i < 16u; ++i) t[i] = i < n ? lv[lb + i] : 0.0;
    [[unroll]] for (uint k = 0; k < K; ++k) {
      const uint u = bitfieldExtract(code_window(cw, par, k, j, slot), int(slot.z), int(slot.x));
      float a[16];
      [[unroll]] for (uint i = 0; i < 16u; ++i) a[i] = t[i];
      [[unroll]] for (uint l = 0; l < 4u; ++l) {
        const bool bit = ((u >> l) & 1u) != 0u;
        [[unroll]] for (uint i = 0; i < (8u >> l); ++i) a[i] = bit && (2u * i + 1u) << l < n ? a[2u * i + 1u] : a[2u * i];
      }
      cv[k] = a[0];
    }
#else
    [[unroll]] for (uint k = 0; k < K; ++k) {
      cv[k] = float(bitfieldExtract(int(code_window(cw, par, k, j, slot)), int(slot.z), int(slot.x))) + 0.5;
    }
#endif
    [[unroll]] for (uint i = 0; i < Y; ++i)
      [[unroll]] for (uint g = 0; g < G; ++g) {
        const float u = uq[(query_head(i) + g) * p.uq_stride + r];
        [[unroll]] for (uint k = 0; k < K; ++k) res[(k * Y + i) * G + g] += u * cv[k];
      }
  }
  store(res, t, live);
}
#else
#if !defined(MODE_F16) && !defined(SUMS)
// qmu + alpha·dot + Σ_r (Uᵀq')_r ĉ_r for every (key, slot, head) triple,
// written to scores where live[k·Y + i]. ĉ comes from the key's residual
// record (R coefficients of CB bits at half c_offset + t·c_stride).
void finish(const float dot[KYG], const uint row[K], const uint t[K], const bool live[KY]) {
  float res[KYG];
  init_qmu(res);
  uint cw[KRW], par[K];
  if (R > 0u) record_words(t, cw, par);
  float ak[K];  // each key's alpha
  [[unroll]] for (uint k = 0; k < K; ++k) {
    const uint ea = row[k] - p.alpha_base;
    ak[k] = half_at(alpha_w[ea >> 1], ea);
  }
  [[unroll]] for (uint r = 0; r < R; ++r) {
    float cv[K];
    [[unroll]] for (uint k = 0; k < K; ++k) {
      if (CB == 16u) {
        const uint hb = record_half(cw[k * RW + r / 2u], cw[k * RW + (r + 1u) / 2u], par[k], r);
        cv[k] = unpackHalf2x16(hb).x;
      } else {
        const uint j = LEAD + r / CPH;  // the half holding code r
        const uint hb = record_half(cw[k * RW + j / 2u], cw[k * RW + (j + 1u) / 2u], par[k], j);
        const float code = float(bitfieldExtract(int(hb), int(CB * (r % CPH)), int(CB)));
        if (AR != 0u) {
          cv[k] = ak[k] * (code + 0.5);
        } else {
          const float sigma = unpackHalf2x16(record_half(cw[k * RW], cw[k * RW], par[k], 0u)).x;  // half 0
          cv[k] = sigma * code;
        }
      }
    }
    [[unroll]] for (uint i = 0; i < Y; ++i)
      [[unroll]] for (uint g = 0; g < G; ++g) {
        const float u = uq[(query_head(i) + g) * p.uq_stride + r];
        [[unroll]] for (uint k = 0; k < K; ++k) res[(k * Y + i) * G + g] += u * cv[k];
      }
  }
  [[unroll]] for (uint k = 0; k < K; ++k)
    [[unroll]] for (uint x = 0; x < YG; ++x) res[k * YG + x] += ak[k] * dot[k * YG + x];
  store(res, t, live);
}
#endif
#endif  // MODE_TC

void main() {
  // Invocation x scores keys key0 + K·x + k, k < K. Keys past the last one
  // score the last key again and store nothing: with every invocation active,
  // lavapipe keeps uniform loads scalar.
  uint t[K], row[K];  // key index and global key row
  bool live[KY];      // (key, slot) stores: a real key, a real row, inside its causal reach
  [[unroll]] for (uint k = 0; k < K; ++k) {
    const uint j = gl_GlobalInvocationID.x * K + k;
    t[k] = p.key0 + min(j, p.keys - 1u);
    row[k] = p.kv * p.head_stride + t[k] * p.key_stride;
    [[unroll]] for (uint i = 0; i < Y; ++i)
      live[k * Y + i] =
          j < p.keys && i < p.rows && (p.causal0 == 0xffffffffu || t[k] < p.causal0 + call_row(i));
  }

#if defined(MODE_TC)
  score_tc(t, live);
#elif !defined(MODE_F16)
  uint kw[K * W];  // the keys' words, read once for every slot and head
  [[unroll]] for (uint k = 0; k < K; ++k) {
    const uint kb0 = row[k] * W - p.bits_base;
    [[unroll]] for (uint v = 0; v < W / KV; ++v) {
      const uvec4 x = key_load(kb0, v);
      [[unroll]] for (uint e = 0; e < KV; ++e) kw[k * W + KV * v + e] = x[e];
    }
  }
#endif

#if defined(MODE_FLOAT)
  float acc[NACC];  // (key, slot, head, accumulator)
  [[unroll]] for (uint x = 0; x < NACC; ++x) acc[x] = 0.0;
  [[unroll]] for (uint w = 0; w < W; ++w) {
    uint nb[K];  // 1 where s = -1
    [[unroll]] for (uint k = 0; k < K; ++k) nb[k] = ~kw[k * W + w];
    const uint n = w + 1u < W ? 32u : TAIL;
    if (n == 32u) {
      [[unroll]] for (uint j = 0; j < 32u; ++j)
        [[unroll]] for (uint i = 0; i < Y; ++i)
          [[unroll]] for (uint g = 0; g < G; ++g) {
            const uint qv = floatBitsToUint(q[(query_head(i) + g) * D + 32u * w + j]);  // serves K keys
            [[unroll]] for (uint k = 0; k < K; ++k)
              acc[((k * Y + i) * G + g) * ACCS + (j % ACCS)] +=
                  uintBitsToFloat(qv ^ ((nb[k] << (31u - j)) & 0x80000000u));
          }
    } else {
      [[unroll]] for (uint j = 0; j < n; ++j)
        [[unroll]] for (uint i = 0; i < Y; ++i)
          [[unroll]] for (uint g = 0; g < G; ++g) {
            const uint qv = floatBitsToUint(q[(query_head(i) + g) * D + 32u * w + j]);
            [[unroll]] for (uint k = 0; k < K; ++k)
              acc[((k * Y + i) * G + g) * ACCS] += uintBitsToFloat(qv ^ ((nb[k] << (31u - j)) & 0x80000000u));
          }
    }
  }
  float dot[KYG];
  [[unroll]] for (uint x = 0; x < KYG; ++x) {
    dot[x] = 0.0;
    [[unroll]] for (uint a = 0; a < ACCS; ++a) dot[x] += acc[x * ACCS + a];
  }
  finish(dot, row, t, live);

#elif defined(MODE_POPCOUNT)
  int sigma[K];  // Σ s_i per key
  [[unroll]] for (uint k = 0; k < K; ++k) {
    kw[k * W + W - 1u] &= LAST_MASK;  // the query planes' padding bits are 0 already
    uint ones = 0u;
    [[unroll]] for (uint w = 0; w < W; ++w) ones += bitCount(kw[k * W + w]);
    sigma[k] = 2 * int(ones) - int(D);
  }
  int sq[KYG];  // Σ s_i Q_i per (key, slot, head)
  // One key at a time: holding a head's planes for all K keys spills the bit
  // slices out of registers (lavapipe, K = 4: 2x slower).
  [[unroll]] for (uint k = 0; k < K; ++k)
    [[unroll]] for (uint i = 0; i < Y; ++i)
      [[unroll]] for (uint g = 0; g < G; ++g) {
        const uint qh = query_head(i) + g;
        uint pl[B * W];  // the head's planes
        [[unroll]] for (uint v = 0; v < B * W; ++v) pl[v] = planes[qh * B * W + v];
        const int sum_q = int(qconst[qh].sum_q);
        const uint x = (k * Y + i) * G + g;
        if (B == 1u) {
          // Σ sign(q)_i s_i = d - 2 popcount(sign(q) ^ bits)
          uint acc = 0u;
          [[unroll]] for (uint w = 0; w < W; ++w) acc += bitCount(pl[w] ^ kw[k * W + w]);
          sq[x] = (int(D) - 2 * int(acc) + sigma[k]) / 2;
        } else {
          // Σ_p 2^p popcount(Q_p & bits), bit-sliced: lane j of slice S[l] is
          // bit l of Σ_w k_{32w+j} Q_{32w+j}; each word's masked planes are
          // ripple-added into the slices (no popcount), so a head costs
          // SLICES popcounts instead of B·W.
          uint sl[SLICES];
          [[unroll]] for (uint l = 0; l < SLICES; ++l) sl[l] = 0u;
          [[unroll]] for (uint w = 0; w < W; ++w) {
            uint carry = 0u;
            [[unroll]] for (uint l = 0; l < SLICES; ++l) {
              if (l < B) {
                const uint m = pl[l * W + w] & kw[k * W + w];
                const uint s = sl[l] ^ m;
                const uint c = (sl[l] & m) | (carry & s);
                sl[l] = s ^ carry;
                carry = c;
              } else {
                const uint c = sl[l] & carry;
                sl[l] ^= carry;
                carry = c;
              }
            }
          }
          uint acc = 0u;
          [[unroll]] for (uint l = 0; l < SLICES; ++l) acc += bitCount(sl[l]) << l;
          sq[x] = 2 * int(acc) - sum_q;
        }
      }
#if defined(SUMS)
  store(sq, t, live);
#else
  float dot[KYG];
  [[unroll]] for (uint i = 0; i < Y; ++i)
    [[unroll]] for (uint g = 0; g < G; ++g) {
      const KscoreQueryConst c = qconst[query_head(i) + g];
      [[unroll]] for (uint k = 0; k < K; ++k) {
        const uint x = (k * Y + i) * G + g;
        dot[x] = c.delta * (float(sq[x]) - c.zero * float(sigma[k]));
      }
    }
  finish(dot, row, t, live);
#endif

#elif defined(MODE_F16)
  float ax[KYG], ay[KYG];
  [[unroll]] for (uint x = 0; x < KYG; ++x) {
    ax[x] = 0.0;
    ay[x] = 0.0;
  }
  [[unroll]] for (uint v = 0; v < KW / KV; ++v) {
    uvec4 kx[K];  // words KV·v .. of every key, read once for every slot and head
    [[unroll]] for (uint k = 0; k < K; ++k) kx[k] = key_load(row[k] * KW - p.bits_base, v);
    [[unroll]] for (uint e = 0; e < KV; ++e) {
      const uint w = KV * v + e;  // halves 2w and 2w + 1 (2w + 1 = d: an odd d's padding)
      vec2 kh[K];
      [[unroll]] for (uint k = 0; k < K; ++k) kh[k] = unpackHalf2x16(kx[k][e]);
      [[unroll]] for (uint i = 0; i < Y; ++i)
        [[unroll]] for (uint g = 0; g < G; ++g) {
          const uint qb = (query_head(i) + g) * D + 2u * w;
          const float qx = q[qb];  // each query element serves K keys
          [[unroll]] for (uint k = 0; k < K; ++k) ax[(k * Y + i) * G + g] += kh[k].x * qx;
          if (2u * w + 1u < D) {
            const float qy = q[qb + 1u];
            [[unroll]] for (uint k = 0; k < K; ++k) ay[(k * Y + i) * G + g] += kh[k].y * qy;
          }
        }
    }
  }
  float dot[KYG];
  [[unroll]] for (uint x = 0; x < KYG; ++x) dot[x] = ax[x] + ay[x];
  store(dot, t, live);
#endif
}
