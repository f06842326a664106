// fp16-weight GEMV/GEMM baseline y = W x over one binding chunk of weight rows
// (Wh layout in bgemv.h: halves in uint32 words, rows padded to uvec4), fp32
// accumulation. The same variant strategy as bgemv.comp, so the 1-bit kernels
// are compared with an equally tuned fp16 kernel:
// VARIANT_ROWS (any device, no subgroup ops): one invocation owns ROWS whole
//   rows, loads 8 halves per row per step (uvec4) and x as vec4.
// VARIANT_BCAST: as ROWS, with x loaded once per subgroup and broadcast.
// VARIANT_SUBGROUP (GPUs): a subgroup owns ROWS rows at a time, lanes stride
//   over uvec4 blocks (coalesced 16-byte loads), subgroupAdd reduces.
#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#if defined(VARIANT_SUBGROUP)
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#elif defined(VARIANT_BCAST)
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_ballot : require
#endif
#include "bgemv.h"

layout(local_size_x_id = 0) in;
layout(constant_id = 3) const uint ROWS = 2;
layout(constant_id = 4) const uint BT = 1;
layout(constant_id = 5) const uint XVEC = 0;  // 1 when in % 4 == 0 (x rows are vec4-aligned)
layout(constant_id = 6) const uint RW = 8;    // subgroup: rows per workgroup (a multiple of ROWS)
layout(push_constant) uniform PC { BgemvParams p; };

layout(std430, binding = 0) readonly buffer W4 { uvec4 w4[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer X4 { vec4 x4[]; };
layout(std430, binding = 2) writeonly buffer Y { float y[]; };

vec4 acc[ROWS][BT];  // four independent chains per (row, batch column)
uint xbase[BT];

// Columns col .. col + 7 against the 8 halves of every row's block.
void block_full(const uvec4 q[ROWS], uint col) {
  [[unroll]] for (uint b = 0; b < BT; ++b) {
    vec4 xa, xb;
    if (XVEC != 0) {
      xa = x4[(xbase[b] + col) / 4];
      xb = x4[(xbase[b] + col) / 4 + 1];
    } else {
      const uint i = xbase[b] + col;
      xa = vec4(x[i], x[i + 1], x[i + 2], x[i + 3]);
      xb = vec4(x[i + 4], x[i + 5], x[i + 6], x[i + 7]);
    }
    [[unroll]] for (uint r = 0; r < ROWS; ++r) {
      acc[r][b] = fma(vec4(unpackHalf2x16(q[r].x), unpackHalf2x16(q[r].y)), xa, acc[r][b]);
      acc[r][b] = fma(vec4(unpackHalf2x16(q[r].z), unpackHalf2x16(q[r].w)), xb, acc[r][b]);
    }
  }
}

// The last, partial block: only columns col .. in - 1 exist.
void block_part(const uvec4 q[ROWS], uint col) {
  for (uint j = 0; col + j < p.cols; ++j) {
    [[unroll]] for (uint b = 0; b < BT; ++b) {
      const float xv = x[xbase[b] + col + j];
      [[unroll]] for (uint r = 0; r < ROWS; ++r) acc[r][b].x += unpackHalf2x16(q[r][j / 2])[j % 2] * xv;
    }
  }
}

#if defined(VARIANT_BCAST)
// Columns 4*chunk .. 4*chunk + 3 of batch column b, zero past `in`.
vec4 load_chunk(uint b, uint chunk, uint chunks) {
  if (chunk >= chunks) return vec4(0.0);
  const uint col = 4 * chunk;
  if (XVEC != 0) return x4[xbase[b] / 4 + chunk];
  vec4 v = vec4(0.0);
  [[unroll]] for (uint c = 0; c < 4; ++c)
    if (col + c < p.cols) v[c] = x[xbase[b] + col + c];
  return v;
}
#endif

void store(uint row0, uint b0) {
  [[unroll]] for (uint r = 0; r < ROWS; ++r) {
    if (row0 + r >= p.rows) break;
    [[unroll]] for (uint b = 0; b < BT; ++b) {
      if (b0 + b >= p.batch) break;
      const vec4 a = acc[r][b];
      y[(b0 + b) * p.outs + p.row_base + row0 + r] = (a.x + a.y) + (a.z + a.w);
    }
  }
}

void main() {
  const uint b0 = gl_WorkGroupID.y * BT;
  [[unroll]] for (uint b = 0; b < BT; ++b) xbase[b] = min(b0 + b, p.batch - 1) * p.cols;
  const uint full = p.cols / 8, blocks = (p.cols + 7) / 8;  // uvec4 blocks of 8 columns
  uint rbase[ROWS];
  uvec4 q[ROWS];
#if defined(VARIANT_ROWS)
  const uint row0 = gl_GlobalInvocationID.x * ROWS;
  if (row0 >= p.rows) return;
  // Rows past the chunk are clamped to its last row; store() drops them.
  [[unroll]] for (uint r = 0; r < ROWS; ++r) {
    rbase[r] = min(row0 + r, p.rows - 1) * (p.words / 4);
    [[unroll]] for (uint b = 0; b < BT; ++b) acc[r][b] = vec4(0.0);
  }
  for (uint k = 0; k < full; ++k) {
    [[unroll]] for (uint r = 0; r < ROWS; ++r) q[r] = w4[rbase[r] + k];
    block_full(q, 8 * k);
  }
  if (full < blocks) {
    [[unroll]] for (uint r = 0; r < ROWS; ++r) q[r] = w4[rbase[r] + full];
    block_part(q, 8 * full);
  }
  store(row0, b0);
#elif defined(VARIANT_SUBGROUP)
  // Lane rank and count among the active lanes: correct for any subgroup size.
  const uint lanes = subgroupAdd(1u), lane = subgroupExclusiveAdd(1u);
  const uint first_row = gl_WorkGroupID.x * RW;
  for (uint rr = gl_SubgroupID * ROWS; rr < RW; rr += gl_NumSubgroups * ROWS) {
    const uint row0 = first_row + rr;
    if (row0 >= p.rows) break;
    [[unroll]] for (uint r = 0; r < ROWS; ++r) {
      rbase[r] = min(row0 + r, p.rows - 1) * (p.words / 4);
      [[unroll]] for (uint b = 0; b < BT; ++b) acc[r][b] = vec4(0.0);
    }
    for (uint k = lane; k < blocks; k += lanes) {
      [[unroll]] for (uint r = 0; r < ROWS; ++r) q[r] = w4[rbase[r] + k];
      if (k < full) block_full(q, 8 * k);
      else block_part(q, 8 * k);
    }
    [[unroll]] for (uint r = 0; r < ROWS; ++r)
      [[unroll]] for (uint b = 0; b < BT; ++b) acc[r][b] = vec4(subgroupAdd((acc[r][b].x + acc[r][b].y) + (acc[r][b].z + acc[r][b].w)), 0.0, 0.0, 0.0);
    if (lane == 0) store(row0, b0);
  }
#elif defined(VARIANT_BCAST)
  // Every lane loads a different 4-column chunk of x and the subgroup
  // broadcasts them in turn; no lane may leave early. Padding halves meet
  // x = 0 (they must be finite; gemv_f16_pack writes 0).
  // Active lanes (0 .. sg-1): the subgroup size, or fewer in a partial
  // subgroup, rounded down to even as chunks pair up into uvec4 blocks.
  const uint sg = subgroupBallotBitCount(subgroupBallot(true)) & ~1u, lane = gl_SubgroupInvocationID;
  const uint row0 = gl_GlobalInvocationID.x * ROWS;
  [[unroll]] for (uint r = 0; r < ROWS; ++r) {
    rbase[r] = min(row0 + r, p.rows - 1) * (p.words / 4);
    [[unroll]] for (uint b = 0; b < BT; ++b) acc[r][b] = vec4(0.0);
  }
  const uint chunks = (p.cols + 3) / 4, steps = (chunks + sg - 1) / sg;
  for (uint st = 0; st < steps; ++st) {  // 4*sg columns: one x chunk per lane
    vec4 mine[BT];
    [[unroll]] for (uint b = 0; b < BT; ++b) mine[b] = load_chunk(b, st * sg + lane, chunks);
    for (uint k = 0; k < sg; k += 2) {
      const uint blk = (st * sg + k) / 2;  // uvec4 of 8 halves = chunks k, k + 1
      if (blk >= p.words / 4) break;
      [[unroll]] for (uint r = 0; r < ROWS; ++r) q[r] = w4[rbase[r] + blk];
      [[unroll]] for (uint b = 0; b < BT; ++b) {
        const vec4 xa = subgroupBroadcast(mine[b], k), xb = subgroupBroadcast(mine[b], k + 1);
        [[unroll]] for (uint r = 0; r < ROWS; ++r) {
          acc[r][b] = fma(vec4(unpackHalf2x16(q[r].x), unpackHalf2x16(q[r].y)), xa, acc[r][b]);
          acc[r][b] = fma(vec4(unpackHalf2x16(q[r].z), unpackHalf2x16(q[r].w)), xb, acc[r][b]);
        }
      }
    }
  }
  if (row0 < p.rows) store(row0, b0);
#else
#error "define VARIANT_ROWS, VARIANT_SUBGROUP or VARIANT_BCAST"
#endif
}
