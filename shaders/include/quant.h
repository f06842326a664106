// ggml's block-quantized weight rows (GGUF tensors as stored), decoded in
// registers: one routine per type, bit for bit the fp32 values of
// quant::dequantize (runtime/src/quant.cpp; ggml-quants.c dequantize_row_*).
// Included by linear.comp (WQUANT) and ops_embed.comp (TABLE_QUANT) with
// exactly one Q_<TYPE> defined.
//
// A row is its blocks back to back (ggml-common.h layouts, little-endian),
// starting on 16 bytes. A *group* is QG consecutive blocks: for the 32-element
// types as many as make a multiple of 16 bytes (8 × 18 bytes = 9 uvec4 for
// q4_0), so every group starts on 16 bytes and is fetched with aligned uvec4
// loads and decoded with constant shifts; the 256-element K-quants are one
// block per group, and those whose size is not a multiple of 16 (q2_k 84,
// q3_k 110, q6_k 210, iq4_xs 136 bytes) are fetched from the uvec4 below
// their start and realigned (Q_PHASE). A group is decoded in *slices* of 32
// consecutive elements, q_slice(words, s, v): v[i] = elements 32s + 4i .. + 3.
//
// The scaling matches ggml's order of operations wherever a product could
// round: every product of a quant and a scale below is exact in fp32 except
// q6_k's d·sc·q and iq4_xs's dl·kvalue, which round once as in ggml.
#ifndef VKQ_QUANT_H
#define VKQ_QUANT_H

// ---- per-type geometry ---------------------------------------------------------
// QK elements and QB bytes per block, QG blocks per group; Q_PHASE: groups may
// start off 16 bytes; Q_HALF: ... and off 4 bytes (2-byte aligned block sizes).
#if defined(Q_Q4_0)
const uint QK = 32, QB = 18, QG = 8;
#elif defined(Q_Q4_1)
const uint QK = 32, QB = 20, QG = 4;
#elif defined(Q_Q5_0)
const uint QK = 32, QB = 22, QG = 8;
#elif defined(Q_Q5_1)
const uint QK = 32, QB = 24, QG = 2;
#elif defined(Q_Q8_0)
const uint QK = 32, QB = 34, QG = 8;
#elif defined(Q_IQ4_NL)
const uint QK = 32, QB = 18, QG = 8;
#elif defined(Q_Q2_K)
const uint QK = 256, QB = 84, QG = 1;
#define Q_PHASE
#elif defined(Q_Q3_K)
const uint QK = 256, QB = 110, QG = 1;
#define Q_PHASE
#define Q_HALF
#elif defined(Q_Q4_K)
const uint QK = 256, QB = 144, QG = 1;
#elif defined(Q_Q5_K)
const uint QK = 256, QB = 176, QG = 1;
#elif defined(Q_Q6_K)
const uint QK = 256, QB = 210, QG = 1;
#define Q_PHASE
#define Q_HALF
#elif defined(Q_IQ4_XS)
const uint QK = 256, QB = 136, QG = 1;
#define Q_PHASE
#else
#error "define one Q_<TYPE>"
#endif

const uint QGB = QG * QB;        // bytes per group
const uint QGE = QG * QK;        // elements per group
const uint QSL = QGE / 32;       // slices per group
const uint QWR = (QGB + 3) / 4;  // words of a realigned group
#if defined(Q_PHASE)
const uint QNQ = (QGB + 14 + 15) / 16;  // uvec4 loads per group: its start may be up to 14 bytes in
#else
const uint QNQ = QGB / 16;
#endif

// ---- fetching a group ------------------------------------------------------------

// Word i of the loaded uvec4s (0 past them).
uint q_src(const uvec4 c[QNQ], const uint i) { return i < 4 * QNQ ? c[i / 4][i % 4] : 0u; }

// The group's words from the uvec4s loaded from the one holding byte `phase`
// (0..14, even; 0 unless Q_PHASE): whole-word shifts by selects, then a
// half-word funnel when the phase is 2 mod 4.
void q_words(const uvec4 c[QNQ], const uint phase, out uint wd[QWR]) {
#if defined(Q_PHASE)
  const uint ws = phase / 4;
#if defined(Q_HALF)
  const bool odd = (phase & 2u) != 0;  // 2 mod 4
#endif
  [[unroll]] for (uint j = 0; j < QWR; ++j) {
    const uint a = ws == 0 ? q_src(c, j) : ws == 1 ? q_src(c, j + 1) : ws == 2 ? q_src(c, j + 2) : q_src(c, j + 3);
#if defined(Q_HALF)
    const uint b = ws == 0 ? q_src(c, j + 1) : ws == 1 ? q_src(c, j + 2) : ws == 2 ? q_src(c, j + 3) : q_src(c, j + 4);
    wd[j] = odd ? (a >> 16) | (b << 16) : a;
#else
    wd[j] = a;
#endif
  }
#else
  [[unroll]] for (uint j = 0; j < QWR; ++j) wd[j] = q_src(c, j);
#endif
}

// ---- byte access within a group (o: a constant byte offset) ------------------------

uint q_w(const uint wd[QWR], const uint i) { return i < QWR ? wd[i] : 0u; }
// Bytes o .. o + 3 (o even).
uint q_w32(const uint wd[QWR], const uint o) {
  return (o & 2u) == 0 ? q_w(wd, o / 4) : (q_w(wd, o / 4) >> 16) | (q_w(wd, o / 4 + 1) << 16);
}
uint q_u8(const uint wd[QWR], const uint o) { return (q_w(wd, o / 4) >> (8 * (o & 3u))) & 0xffu; }
// The fp16 at byte o (o even).
float q_f16(const uint wd[QWR], const uint o) { return unpackHalf2x16(q_w32(wd, o)).x; }

// The four bytes of w, each shifted right by `sh` and masked.
uvec4 q_bytes(const uint w, const uint sh, const uint mask) {
  return (uvec4(w, w >> 8, w >> 16, w >> 24) >> sh) & mask;
}
// The four bytes of w as int8.
vec4 q_i8(const uint w) { return vec4(ivec4(w << 24, w << 16, w << 8, w) >> 24); }

#if defined(Q_IQ4_NL) || defined(Q_IQ4_XS)
// ggml's kvalues_iq4nl, four int8 per word.
const uint Q_KV0 = 0xbfad9881u;  // -127 -104  -83  -65
const uint Q_KV1 = 0xf6eaddcfu;  //  -49  -35  -22  -10
const uint Q_KV2 = 0x26190d01u;  //    1   13   25   38
const uint Q_KV3 = 0x71594535u;  //   53   69   89  113
// kvalues_iq4nl[n] for four 4-bit codes.
vec4 q_iq4(const uvec4 n) {
  const uvec4 t = mix(mix(uvec4(Q_KV0), uvec4(Q_KV1), greaterThan(n, uvec4(3))),
                      mix(uvec4(Q_KV2), uvec4(Q_KV3), greaterThan(n, uvec4(11))), greaterThan(n, uvec4(7)));
  return vec4(ivec4(t << (24 - 8 * (n & 3u))) >> 24);
}
#endif

// ---- slices ---------------------------------------------------------------------------
// q_slice(wd, s, q, dl, ml): element 32s + 4i + c of the group is
//   q[i][c] · dl[i / 4] - ml[i / 4]
// with q integer-valued, so a dot product can scale once per 16 elements:
// Σ v·x = dl · Σ q·x - ml · Σ x. Q_NOMIN: ml is always 0. Every q·dl is
// exact in fp32 (so q·dl - ml rounds once, as ggml's expression does), except
// q6_k's and iq4_xs's (ml = 0: one rounding, as in ggml).

#if defined(Q_Q4_0) || defined(Q_IQ4_NL)
#if defined(Q_IQ4_NL)
#define Q_NOMIN
#else
#define Q_ZERO 8.0
#endif
// block_q4_0 / block_iq4_nl: d, qs[16]; element j: qs[j] low nibble, j + 16:
// high. q4_0: (q - 8)·d = q·d - 8d; iq4_nl: kvalues[q]·d.
void q_slice(const uint wd[QWR], const uint s, out vec4 q[8], out vec2 dl, out vec2 ml) {
  const uint o = s * QB;
  const float d = q_f16(wd, o);
  [[unroll]] for (uint i = 0; i < 4; ++i) {
    const uint w = q_w32(wd, o + 2 + 4 * i);
#if defined(Q_Q4_0)
    q[i] = vec4(q_bytes(w, 0, 0xfu));
    q[i + 4] = vec4(q_bytes(w, 4, 0xfu));
#else
    q[i] = q_iq4(q_bytes(w, 0, 0xfu));
    q[i + 4] = q_iq4(q_bytes(w, 4, 0xfu));
#endif
  }
  dl = vec2(d);
  ml = vec2(8.0 * d);
}
#elif defined(Q_Q4_1)
// block_q4_1: d, m, qs[16]; q·d + m.
void q_slice(const uint wd[QWR], const uint s, out vec4 q[8], out vec2 dl, out vec2 ml) {
  const uint o = s * QB;
  [[unroll]] for (uint i = 0; i < 4; ++i) {
    const uint w = q_w32(wd, o + 4 + 4 * i);
    q[i] = vec4(q_bytes(w, 0, 0xfu));
    q[i + 4] = vec4(q_bytes(w, 4, 0xfu));
  }
  dl = vec2(q_f16(wd, o));
  ml = vec2(-q_f16(wd, o + 2));
}
#elif defined(Q_Q5_0) || defined(Q_Q5_1)
#if defined(Q_Q5_0)
#define Q_ZERO 16.0
#endif
// block_q5_0: d, qh (32 fifth bits), qs[16]: (q - 16)·d; block_q5_1: d, m,
// qh, qs: q·d + m. Element j's fifth bit is qh bit j.
void q_slice(const uint wd[QWR], const uint s, out vec4 q[8], out vec2 dl, out vec2 ml) {
  const uint o = s * QB;
  const float d = q_f16(wd, o);
#if defined(Q_Q5_1)
  const uint qo = o + 4;
  ml = vec2(-q_f16(wd, o + 2));
#else
  const uint qo = o + 2;
  ml = vec2(16.0 * d);
#endif
  dl = vec2(d);
  const uint qh = q_w32(wd, qo);
  [[unroll]] for (uint i = 0; i < 4; ++i) {
    const uint w = q_w32(wd, qo + 4 + 4 * i);
    const uvec4 hl = ((uvec4(qh) >> (uvec4(0, 1, 2, 3) + 4 * i)) & 1u) << 4;
    const uvec4 hh = ((uvec4(qh) >> (uvec4(16, 17, 18, 19) + 4 * i)) & 1u) << 4;
    q[i] = vec4(q_bytes(w, 0, 0xfu) | hl);
    q[i + 4] = vec4(q_bytes(w, 4, 0xfu) | hh);
  }
}
#elif defined(Q_Q8_0)
#define Q_NOMIN
// block_q8_0: d, qs[32] int8.
void q_slice(const uint wd[QWR], const uint s, out vec4 q[8], out vec2 dl, out vec2 ml) {
  const uint o = s * QB;
  [[unroll]] for (uint i = 0; i < 8; ++i) q[i] = q_i8(q_w32(wd, o + 2 + 4 * i));
  dl = vec2(q_f16(wd, o));
  ml = vec2(0.0);
}
#elif defined(Q_Q2_K)
// block_q2_K: scales[16] (low nibble scale, high nibble min), qs[64], d, dmin.
// Slice s: half n = s / 4, bits 2·(s % 4) of qs[32n + l]; scale 8n + 2 (s % 4) + l / 16.
void q_slice(const uint wd[QWR], const uint s, out vec4 q[8], out vec2 dl, out vec2 ml) {
  const float d = q_f16(wd, 80), dmin = q_f16(wd, 82);
  const uint n = s / 4, sh = 2 * (s % 4);
  [[unroll]] for (uint h = 0; h < 2; ++h) {
    const uint sc = q_u8(wd, 8 * n + 2 * (s % 4) + h);
    dl[h] = d * float(sc & 0xfu);
    ml[h] = dmin * float(sc >> 4);
    [[unroll]] for (uint i = 0; i < 4; ++i) q[4 * h + i] = vec4(q_bytes(q_w32(wd, 16 + 32 * n + 16 * h + 4 * i), sh, 3u));
  }
}
#elif defined(Q_Q3_K)
#define Q_ZERO 4.0
// block_q3_K: hmask[32], qs[64], scales[12] (16 six-bit scales), d. Slice s:
// half n = s / 4, j = s % 4: low bits (qs[32n + l] >> 2j) & 3, high bit
// hmask[l] bit 4n + j (clear: minus 4), scale 8n + 2j + l / 16:
// (q - 4)·dl = q·dl - 4dl with q = low + 4·high.
void q_slice(const uint wd[QWR], const uint s, out vec4 q[8], out vec2 dl, out vec2 ml) {
  const float d = q_f16(wd, 108);
  const uint n = s / 4, j = s % 4;
  [[unroll]] for (uint h = 0; h < 2; ++h) {
    const uint k = 8 * n + 2 * j + h;
    const uint lo = (q_u8(wd, 96 + k % 8) >> (4 * (k / 8))) & 0xfu;
    const uint hi = (q_u8(wd, 104 + k % 4) >> (2 * (k / 4))) & 3u;
    dl[h] = d * float(int(lo | (hi << 4)) - 32);
    ml[h] = 4.0 * dl[h];
    [[unroll]] for (uint i = 0; i < 4; ++i) {
      const uint l = 16 * h + 4 * i;
      q[4 * h + i] = vec4(q_bytes(q_w32(wd, 32 + 32 * n + l), 2 * j, 3u) | (q_bytes(q_w32(wd, l), 4 * n + j, 1u) << 2));
    }
  }
}
#elif defined(Q_Q4_K) || defined(Q_Q5_K)
// block_q4_K: d, dmin, scales[12] (8 six-bit scale/min pairs), qs[128];
// block_q5_K adds qh[32] before qs. Slice s: qs[32 (s / 2) ..], low nibble for
// even s; q5_K's fifth bit is qh[l] bit s. q·(d·sc) - dmin·m.
void q_slice(const uint wd[QWR], const uint s, out vec4 q[8], out vec2 dl, out vec2 ml) {
  uint sc, m;
  if (s < 4) {
    sc = q_u8(wd, 4 + s) & 63u;
    m = q_u8(wd, 8 + s) & 63u;
  } else {
    sc = (q_u8(wd, 8 + s) & 0xfu) | ((q_u8(wd, s) >> 6) << 4);
    m = (q_u8(wd, 8 + s) >> 4) | ((q_u8(wd, 4 + s) >> 6) << 4);
  }
  dl = vec2(q_f16(wd, 0) * float(sc));
  ml = vec2(q_f16(wd, 2) * float(m));
#if defined(Q_Q5_K)
  const uint qs = 48;
#else
  const uint qs = 16;
#endif
  [[unroll]] for (uint i = 0; i < 8; ++i) {
    uvec4 b = q_bytes(q_w32(wd, qs + 32 * (s / 2) + 4 * i), 4 * (s % 2), 0xfu);
#if defined(Q_Q5_K)
    b |= q_bytes(q_w32(wd, 16 + 4 * i), s, 1u) << 4;
#endif
    q[i] = vec4(b);
  }
}
#elif defined(Q_Q6_K)
#define Q_NOMIN
// block_q6_K: ql[128], qh[64], scales[16] int8, d. Slice s: half n = s / 4,
// quarter j = s % 4: ql[64n + 32 (j % 2) + l] nibble j / 2, qh[32n + l] bits
// 2j .. 2j + 1, scale 8n + 2j + l / 16; value (d·sc)·(q - 32).
void q_slice(const uint wd[QWR], const uint s, out vec4 q[8], out vec2 dl, out vec2 ml) {
  const float d = q_f16(wd, 208);
  const uint n = s / 4, j = s % 4;
  [[unroll]] for (uint h = 0; h < 2; ++h) {
    dl[h] = d * float(int(q_u8(wd, 192 + 8 * n + 2 * j + h) << 24) >> 24);
    [[unroll]] for (uint i = 0; i < 4; ++i) {
      const uint l = 16 * h + 4 * i;
      const uvec4 b = q_bytes(q_w32(wd, 64 * n + 32 * (j % 2) + l), 4 * (j / 2), 0xfu) |
                      (q_bytes(q_w32(wd, 128 + 32 * n + l), 2 * j, 3u) << 4);
      q[4 * h + i] = vec4(ivec4(b) - 32);
    }
  }
  ml = vec2(0.0);
}
#elif defined(Q_IQ4_XS)
#define Q_NOMIN
// block_iq4_xs: d, scales_h (16 bits: 2 high bits per slice), scales_l[4]
// (4 low bits per slice), qs[128]; slice s: qs[16s + j] low nibble element j,
// high nibble j + 16; value (d·(ls - 32))·kvalues[q].
void q_slice(const uint wd[QWR], const uint s, out vec4 q[8], out vec2 dl, out vec2 ml) {
  const uint ls = ((q_u8(wd, 4 + s / 2) >> (4 * (s % 2))) & 0xfu) | (((q_w32(wd, 2) >> (2 * s)) & 3u) << 4);
  dl = vec2(q_f16(wd, 0) * float(int(ls) - 32));
  ml = vec2(0.0);
  [[unroll]] for (uint i = 0; i < 4; ++i) {
    const uint w = q_w32(wd, 8 + 16 * s + 4 * i);
    q[i] = q_iq4(q_bytes(w, 0, 0xfu));
    q[i + 4] = q_iq4(q_bytes(w, 4, 0xfu));
  }
}
#endif

// The slice's values as quant::dequantize gives them (embed), in ggml's
// expression: (q - Q_ZERO)·dl where ml = Q_ZERO·dl (so a zero keeps the sign
// of dl, as in ggml), else q·dl - ml (one rounding).
void q_slice_values(const uint wd[QWR], const uint s, out vec4 v[8]) {
  vec4 q[8];
  vec2 dl, ml;
  q_slice(wd, s, q, dl, ml);
  [[unroll]] for (uint i = 0; i < 8; ++i) {
#if defined(Q_ZERO)
    v[i] = (q[i] - Q_ZERO) * dl[i / 4];
#elif defined(Q_NOMIN)
    v[i] = q[i] * dl[i / 4];
#else
    v[i] = q[i] * dl[i / 4] - ml[i / 4];
#endif
  }
}

#endif
