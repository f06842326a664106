// Reading a value-cache row inside the attention kernels' online softmax:
// acc += pr · v_row, with v_row stored as VT says (attn.h: fp16 pairs, q8 or
// q4 blocks of 32, scales beside). The includer declares HD, HW = HD/2, VT,
// the buffers vc (codes) and vs (scales) and the accumulator `vec2 acc[HW]`.
// Quantized rows are decoded in registers: the scale is folded into pr, so a
// q8/q4 coordinate costs one multiply-add like an fp16 one.
#ifndef VKQ_VCACHE_H
#define VKQ_VCACHE_H

const uint V_BLOCKS = HD / VKQ_V_BLOCK;  // blocks per row (q8, q4: HD % 32 == 0)
const uint V_Q8_SW = (HD + 63) / 64;     // scale words per q8 row: fp16 scales, two per word, rows whole words

// acc += pr · (value row `row` = position * n_kv + KV head).
void v_accumulate(float pr, uint row) {
  if (VT == VKQ_V_F16) {
    const uint base = row * HW;
    [[unroll]] for (uint w = 0; w < HW; ++w) acc[w] += pr * unpackHalf2x16(vc[base + w]);
  } else if (VT == VKQ_V_Q8) {
    const uint cbase = row * (HD / 4), sbase = row * V_Q8_SW;
    [[unroll]] for (uint b = 0; b < V_BLOCKS; ++b) {
      const float d = pr * unpackHalf2x16(vs[sbase + b / 2])[b % 2];
      [[unroll]] for (uint w = 0; w < 8; ++w) {
        const int x = int(vc[cbase + b * 8 + w]);
        const uint a = (b * 32 + w * 4) / 2;
        acc[a] += d * vec2(bitfieldExtract(x, 0, 8), bitfieldExtract(x, 8, 8));
        acc[a + 1] += d * vec2(bitfieldExtract(x, 16, 8), bitfieldExtract(x, 24, 8));
      }
    }
  } else {  // VKQ_V_Q4
    const uint cbase = row * (HD / 8), sbase = row * V_BLOCKS;
    [[unroll]] for (uint b = 0; b < V_BLOCKS; ++b) {
      const vec2 dm = pr * unpackHalf2x16(vs[sbase + b]);  // (scale, min)
      [[unroll]] for (uint w = 0; w < 4; ++w) {
        const uint x = vc[cbase + b * 4 + w];
        const uint a = (b * 32 + w * 8) / 2;
        [[unroll]] for (uint k = 0; k < 4; ++k)
          acc[a + k] += dm.x * vec2(bitfieldExtract(x, int(8 * k), 4), bitfieldExtract(x, int(8 * k + 4), 4)) + dm.y;
      }
    }
  }
}

#endif
