// Embedding lookup: out[t, c] = table[ids[t], c], the table's rows f32, fp16
// (TABLE_F16), bf16 (TABLE_BF16) or ggml blocks (TABLE_QUANT with a Q_<TYPE>
// of quant.h, decoded exactly as quant::dequantize). Invocation (x, y) writes
// output floats 2x, 2x+1 of token y (one fp16/bf16 word, or two fp32 floats),
// or, for block types, the QG·QK floats of group x of token y's row. The
// table is bound in row chunks; a dispatch writes only the tokens whose id
// falls in its chunk, and the first chunk's dispatch also zeros tokens whose
// id is out of range, so every token is written exactly once.
#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "ops.h"
#if defined(TABLE_QUANT)
#include "quant.h"
#endif

layout(local_size_x_id = 0, local_size_y_id = 1, local_size_z_id = 2) in;
layout(push_constant) uniform PC { EmbedParams p; };

#if defined(TABLE_QUANT)
layout(std430, set = 0, binding = 0) readonly buffer Table { uvec4 table[]; };
#else
layout(std430, set = 0, binding = 0) readonly buffer Table { uint table[]; };
#endif
layout(std430, set = 0, binding = 1) readonly buffer Ids { uint ids[]; };
layout(std430, set = 0, binding = 2) writeonly buffer Out { float outv[]; };
layout(std430, set = 0, binding = 2) writeonly buffer Out4 { vec4 outv4[]; };  // block types: dim % 32 == 0

#if defined(TABLE_QUANT)
const uint PER = QGE;  // output floats per invocation
#else
const uint PER = 2;
#endif

void main() {
  const uint c = gl_GlobalInvocationID.x * PER;
  const uint t = gl_GlobalInvocationID.y;
  if (c >= p.dim || t >= p.n) return;
  const uint id = ids[p.t0 + t];
  const uint o = t * p.dim + c;
  if (id >= p.vocab) {
    if (p.zero_oob != 0) {
      [[unroll]] for (uint i = 0; i < PER; ++i)
        if (c + i < p.dim) outv[o + i] = 0.0;
    }
    return;
  }
  if (id < p.row0 || id - p.row0 >= p.rows) return;
#if defined(TABLE_QUANT)
  // Group x of the row: aligned uvec4 loads, clamped to the chunk (the last
  // group of small blocks may reach past the last row; those blocks are not
  // written).
  const uint q0 = (id - p.row0) * (p.row_words / 4) + gl_GlobalInvocationID.x * QGB / 16;
  const uint end = p.rows * (p.row_words / 4);
  uvec4 cq[QNQ];
  [[unroll]] for (uint k = 0; k < QNQ; ++k) cq[k] = table[min(q0 + k, end - 1)];
  uint wd[QWR];
  q_words(cq, (gl_GlobalInvocationID.x * QGB) % 16, wd);
  [[unroll]] for (uint s = 0; s < QSL; ++s) {
    if (c + 32 * s >= p.dim) break;
    vec4 v[8];
    q_slice_values(wd, s, v);
    [[unroll]] for (uint i = 0; i < 8; ++i) outv4[o / 4 + 8 * s + i] = v[i];
  }
#else
  const uint base = (id - p.row0) * p.row_words;
#if defined(TABLE_F16)
  const vec2 v = unpackHalf2x16(table[base + c / 2]);
#elif defined(TABLE_BF16)
  const uint u = table[base + c / 2];  // the low half is the even column
  const vec2 v = vec2(uintBitsToFloat(u << 16), uintBitsToFloat(u & 0xffff0000u));
#else
  const vec2 v = vec2(uintBitsToFloat(table[base + c]), c + 1 < p.dim ? uintBitsToFloat(table[base + c + 1]) : 0.0);
#endif
  outv[o] = v.x;
  if (c + 1 < p.dim) outv[o + 1] = v.y;
#endif
}
