// Reading a value-cache row inside the attention kernels' online softmax:
// acc += pr · v_row, with v_row stored as VT says (attn.h: fp16 pairs, q8 or
// q4 blocks of 32, scales beside). The includer declares HD, HW = HD/2, VT,
// the buffers vc (codes, uint) and vc4 (the same binding as uvec4), vs
// (scales) and the accumulator `vec2 acc[HW]`, and calls v_begin, then
// v_accumulate per key (v_rescale when the running maximum moves), then
// v_finish. Rows are read 16 bytes at a time (fp16 when HD % 8 == 0; q8 and
// q4 always: their rows are HD/4 and HD/8 words, HD % 32 == 0): on lavapipe
// every load whose address is not provably uniform is a loop over the lanes,
// so fewer, wider loads are what makes a row cheap. Quantized rows are
// decoded in registers: the scale is folded into pr, so a q8/q4 coordinate
// costs one multiply-add like an fp16 one.
#ifndef VKQ_VCACHE_H
#define VKQ_VCACHE_H

const uint V_BLOCKS = HD / VKQ_V_BLOCK;  // blocks per row (q8, q4: HD % 32 == 0)
const uint V_Q8_SW = (HD + 63) / 64;     // scale words per q8 row: fp16 scales, two per word, rows whole words

// q4: Σ pr·min per block, kept apart from acc (one add per block and key,
// not one per coordinate) and added in by v_finish.
const uint V_MINS = VT == VKQ_V_Q4 ? V_BLOCKS : 1;
float vmin[V_MINS];

void v_begin() {
  [[unroll]] for (uint w = 0; w < HW; ++w) acc[w] = vec2(0.0);
  [[unroll]] for (uint b = 0; b < V_MINS; ++b) vmin[b] = 0.0;
}

// The online softmax found a new maximum: everything summed so far times c.
void v_rescale(float c) {
  [[unroll]] for (uint w = 0; w < HW; ++w) acc[w] *= c;
  [[unroll]] for (uint b = 0; b < V_MINS; ++b) vmin[b] *= c;
}

// acc = Σ pr · v_row over the keys consumed.
void v_finish() {
  if (VT == VKQ_V_Q4)
    [[unroll]] for (uint w = 0; w < HW; ++w) acc[w] += vec2(vmin[w / (VKQ_V_BLOCK / 2)]);
}

// acc += pr · (value row `row` = position * n_kv + KV head).
void v_accumulate(float pr, uint row) {
  if (VT == VKQ_V_F16) {
    if (HD % 8 == 0) {
      const uint base = row * (HW / 4);
      [[unroll]] for (uint u = 0; u < HW / 4; ++u) {
        const uvec4 x = vc4[base + u];
        acc[4 * u] += pr * unpackHalf2x16(x.x);
        acc[4 * u + 1] += pr * unpackHalf2x16(x.y);
        acc[4 * u + 2] += pr * unpackHalf2x16(x.z);
        acc[4 * u + 3] += pr * unpackHalf2x16(x.w);
      }
    } else {
      const uint base = row * HW;
      [[unroll]] for (uint w = 0; w < HW; ++w) acc[w] += pr * unpackHalf2x16(vc[base + w]);
    }
  } else if (VT == VKQ_V_Q8) {
    const uint cbase = row * (HD / 16), sbase = row * V_Q8_SW;
    [[unroll]] for (uint b = 0; b < V_BLOCKS; ++b) {
      const float d = pr * unpackHalf2x16(vs[sbase + b / 2])[b % 2];
      [[unroll]] for (uint u = 0; u < 2; ++u) {
        const uvec4 x4 = vc4[cbase + b * 2 + u];
        [[unroll]] for (uint c = 0; c < 4; ++c) {
          const int x = int(x4[c]);
          const uint a = (b * 32 + (u * 4 + c) * 4) / 2;
          acc[a] += d * vec2(bitfieldExtract(x, 0, 8), bitfieldExtract(x, 8, 8));
          acc[a + 1] += d * vec2(bitfieldExtract(x, 16, 8), bitfieldExtract(x, 24, 8));
        }
      }
    }
  } else {  // VKQ_V_Q4
    const uint cbase = row * (HD / 32), sbase = row * V_BLOCKS;
    [[unroll]] for (uint b = 0; b < V_BLOCKS; ++b) {
      const vec2 dm = pr * unpackHalf2x16(vs[sbase + b]);  // (scale, min)
      vmin[b] += dm.y;
      const uvec4 x4 = vc4[cbase + b];
      [[unroll]] for (uint w = 0; w < 4; ++w) {
        const uint x = x4[w];
        const uint a = (b * 32 + w * 8) / 2;
        [[unroll]] for (uint k = 0; k < 4; ++k)
          acc[a + k] += dm.x * vec2(bitfieldExtract(x, int(8 * k), 4), bitfieldExtract(x, int(8 * k + 4), 4));
      }
    }
  }
}

#endif
