// Reading a value-cache row inside the attention kernels' online softmax:
// acc_i += pr_i · v_row for the GH query heads i of one GQA group that an
// invocation owns (they share the row, so it is loaded and decoded once and
// costs each further head one multiply-add per coordinate), with v_row stored
// as VT says (attn.h: fp16 pairs, q8 or q4 blocks of 32, scales beside). The
// includer declares HD, HW = HD/2, VT, GH, kLowest (below any real score),
// the buffers vc (codes, uint) and vc4 (the same binding as uvec4), vs
// (scales), the accumulator `vec2 acc[GH * HW]` (head i's coordinates at
// acc[i * HW ...]) and the online-softmax state `float m[GH], l[GH]`, and
// calls v_begin, then per key softmax_step and v_accumulate, then v_finish.
// Rows are read 16 bytes at a time (fp16 when HD % 8 == 0; q8 and q4 always:
// their rows are HD/4 and HD/8 words, HD % 32 == 0): on lavapipe a load
// inside the key loop is a loop over the lanes (docs/design.md, "CPU
// devices' cost model"), so fewer, wider loads are what makes a row cheap.
// Quantized rows are decoded in registers: the scale is folded into pr, so a
// q8/q4 coordinate costs one multiply-add per head like an fp16 one.
#ifndef VKQ_VCACHE_H
#define VKQ_VCACHE_H

const uint V_BLOCKS = HD / VKQ_V_BLOCK;  // blocks per row (q8, q4: HD % 32 == 0)
const uint V_Q8_SW = (HD + 63) / 64;     // scale words per q8 row: fp16 scales, two per word, rows whole words

// q4: Σ pr·min per block, kept apart from acc (one add per block and key,
// not one per coordinate) and added in by v_finish.
const uint V_MINS = VT == VKQ_V_Q4 ? V_BLOCKS : 1;
float vmin[GH * V_MINS];

void v_begin() {
  [[unroll]] for (uint i = 0; i < GH; ++i) {
    m[i] = kLowest;
    l[i] = 0.0;
  }
  [[unroll]] for (uint w = 0; w < GH * HW; ++w) acc[w] = vec2(0.0);
  [[unroll]] for (uint b = 0; b < GH * V_MINS; ++b) vmin[b] = 0.0;
}

// Head i's online softmax found a new maximum: everything it summed so far times c.
void v_rescale(uint i, float c) {
  [[unroll]] for (uint w = 0; w < HW; ++w) acc[i * HW + w] *= c;
  [[unroll]] for (uint b = 0; b < V_MINS; ++b) vmin[i * V_MINS + b] *= c;
}

// Folds one key's scaled scores sc[i] of the invocation's first nh heads into
// each head's running maximum m and sum l (rescaling what it summed when its
// maximum moves); pr[i] is the key's weight for head i (0 past nh).
void softmax_step(const float sc[GH], uint nh, out float pr[GH]) {
  [[unroll]] for (uint i = 0; i < GH; ++i) {
    if (i >= nh) {
      pr[i] = 0.0;
      continue;
    }
    if (sc[i] > m[i]) {  // a new maximum: rescale what was summed so far
      const float c = exp(m[i] - sc[i]);
      l[i] *= c;
      v_rescale(i, c);
      m[i] = sc[i];
    }
    pr[i] = exp(sc[i] - m[i]);
    l[i] += pr[i];
  }
}

// acc_i = Σ pr_i · v_row over the keys consumed.
void v_finish() {
  if (VT == VKQ_V_Q4)
    [[unroll]] for (uint i = 0; i < GH; ++i)
      [[unroll]] for (uint w = 0; w < HW; ++w) acc[i * HW + w] += vec2(vmin[i * V_MINS + w / (VKQ_V_BLOCK / 2)]);
}

// acc_i += pr[i] · (value row `row` = position * n_kv + KV head) for every head i.
void v_accumulate(float pr[GH], uint row) {
  if (VT == VKQ_V_F16) {
    if (HD % 8 == 0) {
      const uint base = row * (HW / 4);
      [[unroll]] for (uint u = 0; u < HW / 4; ++u) {
        const uvec4 x = vc4[base + u];
        [[unroll]] for (uint c = 0; c < 4; ++c) {
          const vec2 v = unpackHalf2x16(x[c]);
          [[unroll]] for (uint i = 0; i < GH; ++i) acc[i * HW + 4 * u + c] += pr[i] * v;
        }
      }
    } else {
      const uint base = row * HW;
      [[unroll]] for (uint w = 0; w < HW; ++w) {
        const vec2 v = unpackHalf2x16(vc[base + w]);
        [[unroll]] for (uint i = 0; i < GH; ++i) acc[i * HW + w] += pr[i] * v;
      }
    }
  } else if (VT == VKQ_V_Q8) {
    const uint cbase = row * (HD / 16), sbase = row * V_Q8_SW;
    [[unroll]] for (uint b = 0; b < V_BLOCKS; ++b) {
      const float sc = unpackHalf2x16(vs[sbase + b / 2])[b % 2];
      float d[GH];
      [[unroll]] for (uint i = 0; i < GH; ++i) d[i] = pr[i] * sc;
      [[unroll]] for (uint u = 0; u < 2; ++u) {
        const uvec4 x4 = vc4[cbase + b * 2 + u];
        [[unroll]] for (uint c = 0; c < 4; ++c) {
          const int x = int(x4[c]);
          const uint a = (b * 32 + (u * 4 + c) * 4) / 2;
          const vec2 v0 = vec2(bitfieldExtract(x, 0, 8), bitfieldExtract(x, 8, 8));
          const vec2 v1 = vec2(bitfieldExtract(x, 16, 8), bitfieldExtract(x, 24, 8));
          [[unroll]] for (uint i = 0; i < GH; ++i) {
            acc[i * HW + a] += d[i] * v0;
            acc[i * HW + a + 1] += d[i] * v1;
          }
        }
      }
    }
  } else {  // VKQ_V_Q4
    const uint cbase = row * (HD / 32), sbase = row * V_BLOCKS;
    [[unroll]] for (uint b = 0; b < V_BLOCKS; ++b) {
      const vec2 sm = unpackHalf2x16(vs[sbase + b]);  // (scale, min)
      float d[GH];
      [[unroll]] for (uint i = 0; i < GH; ++i) {
        d[i] = pr[i] * sm.x;
        vmin[i * V_MINS + b] += pr[i] * sm.y;
      }
      const uvec4 x4 = vc4[cbase + b];
      [[unroll]] for (uint w = 0; w < 4; ++w) {
        const uint x = x4[w];
        const uint a = (b * 32 + w * 8) / 2;
        [[unroll]] for (uint k = 0; k < 4; ++k) {
          const vec2 v = vec2(bitfieldExtract(x, int(8 * k), 4), bitfieldExtract(x, int(8 * k + 4), 4));
          [[unroll]] for (uint i = 0; i < GH; ++i) acc[i * HW + a + k] += d[i] * v;
        }
      }
    }
  }
}

#endif
