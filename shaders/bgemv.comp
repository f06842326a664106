// 1-bit-weight matmul y = c*S + alpha*(2*sum_{bit=1} x - S) (+ P t), S = sum x,
// over one binding chunk of weight rows (layouts in bgemv.h; t = Q^T x' comes
// from bgemv_qt.comp). Workgroup y indexes batch tiles of BT columns, so a
// weight word is read once per batch tile and reused for BT inputs. x is read
// in 4-column chunks that are zero past `in`, so padding bits add nothing.
//
// VARIANT_ROWS (any device, no subgroup ops): one invocation owns ROWS whole
//   rows and walks every word itself; a bit costs a select and an add.
// VARIANT_BCAST (CPU devices): as ROWS, but each lane loads a different chunk
//   of x and subgroupBroadcast hands it to the others. On lavapipe every
//   non-uniform load is a loop over the lanes, so loading x once per subgroup
//   instead of once per lane is what makes the 1-bit path fast there.
// VARIANT_SUBGROUP (GPUs): a subgroup owns ROWS rows at a time, its lanes
//   stride over the words, subgroupAdd reduces; a workgroup owns RW rows.
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
layout(constant_id = 3) const uint ROWS = 4;  // rows per invocation (rows, bcast) / per subgroup pass (subgroup)
layout(constant_id = 4) const uint BT = 1;    // batch columns per invocation
layout(constant_id = 5) const uint XVEC = 0;  // 1 when in % 4 == 0 (x rows are vec4-aligned)
layout(constant_id = 6) const uint RW = 8;    // subgroup: rows per workgroup (a multiple of ROWS)
layout(push_constant) uniform PC { BgemvParams p; };

layout(std430, binding = 0) readonly buffer Bits { uint bits[]; };
layout(std430, binding = 0) readonly buffer Bits4 { uvec4 bits4[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer X4 { vec4 x4[]; };
layout(std430, binding = 2) readonly buffer C { float cvec[]; };
layout(std430, binding = 3) readonly buffer Alpha { float alpha[]; };
layout(std430, binding = 4) readonly buffer Pm { float pmat[]; };
layout(std430, binding = 5) readonly buffer T { float tvec[]; };
layout(std430, binding = 6) writeonly buffer Y { float y[]; };

float acc[ROWS][BT];  // sum of x over the set bits, per (row, batch column)
float s[BT];          // sum of x, per batch column
uint xbase[BT];       // first element of each batch column's x row

void clear() {
  [[unroll]] for (uint b = 0; b < BT; ++b) {
    s[b] = 0.0;
    [[unroll]] for (uint r = 0; r < ROWS; ++r) acc[r][b] = 0.0;
  }
}

// Columns 4*chunk .. 4*chunk + 3 of batch column b, zero past `in`.
vec4 load_chunk(uint b, uint chunk, uint chunks) {
  if (chunk >= chunks) return vec4(0.0);
  if (XVEC != 0) return x4[xbase[b] / 4 + chunk];
  vec4 v = vec4(0.0);
  [[unroll]] for (uint c = 0; c < 4; ++c)
    if (4 * chunk + c < p.cols) v[c] = x[xbase[b] + 4 * chunk + c];
  return v;
}

// The columns of xv selected by the low 4 bits of nib. Tree sums of selects:
// measured faster on lavapipe than four sequential conditional adds.
float select4(uint nib, vec4 xv) {
  return (((nib & 1u) != 0u ? xv.x : 0.0) + ((nib & 2u) != 0u ? xv.y : 0.0)) +
         (((nib & 4u) != 0u ? xv.z : 0.0) + ((nib & 8u) != 0u ? xv.w : 0.0));
}

// Adds chunk `chunk` of x (all batch columns) under the nibbles of every row.
void add_chunk(const uint nib[ROWS], const vec4 xv[BT]) {
  [[unroll]] for (uint b = 0; b < BT; ++b) {
    s[b] += (xv[b].x + xv[b].y) + (xv[b].z + xv[b].w);
    [[unroll]] for (uint r = 0; r < ROWS; ++r) acc[r][b] += select4(nib[r], xv[b]);
  }
}

#if !defined(VARIANT_BCAST)
// Word w of every row against its 32 columns of x.
void add_word(const uint wd[ROWS], uint w, uint chunks) {
  for (uint q = 0; q < 8; ++q) {
    vec4 xv[BT];
    [[unroll]] for (uint b = 0; b < BT; ++b) xv[b] = load_chunk(b, 8 * w + q, chunks);
    uint nib[ROWS];
    [[unroll]] for (uint r = 0; r < ROWS; ++r) nib[r] = wd[r] >> (4 * q);
    add_chunk(nib, xv);
  }
}
#endif

// Combines the sums into y for rows row0.. and batch columns b0..
void store(uint row0, uint b0) {
  [[unroll]] for (uint r = 0; r < ROWS; ++r) {
    if (row0 + r >= p.rows) break;
    const uint g = p.row_base + row0 + r;
    const float cg = cvec[g], ag = alpha[g];
    [[unroll]] for (uint b = 0; b < BT; ++b) {
      if (b0 + b >= p.batch) break;
      float v = cg * s[b] + ag * (2.0 * acc[r][b] - s[b]);
      for (uint k = 0; k < p.rank; ++k) v += pmat[g * p.rank + k] * tvec[(b0 + b) * p.rank + k];
      y[(b0 + b) * p.outs + g] = v;
    }
  }
}

void main() {
  const uint b0 = gl_WorkGroupID.y * BT;
  [[unroll]] for (uint b = 0; b < BT; ++b) xbase[b] = min(b0 + b, p.batch - 1) * p.cols;
  const uint chunks = (p.cols + 3) / 4;  // 4-column chunks holding real columns
  uint rbase[ROWS];
#if defined(VARIANT_ROWS) || defined(VARIANT_BCAST)
  const uint row0 = gl_GlobalInvocationID.x * ROWS;
#if defined(VARIANT_ROWS)
  if (row0 >= p.rows) return;
#endif
  clear();
  // Rows past the chunk are clamped to its last row; store() drops them.
  [[unroll]] for (uint r = 0; r < ROWS; ++r) rbase[r] = min(row0 + r, p.rows - 1) * (p.words / 4);
#if defined(VARIANT_BCAST)
  // Active lanes (0 .. sg-1): the subgroup size, or fewer in a partial subgroup.
  const uint sg = subgroupBallotBitCount(subgroupBallot(true)), lane = gl_SubgroupInvocationID;
#endif
  for (uint st = 0; st < (chunks + 31) / 32; ++st) {  // 128 columns: one uvec4 of bits per row
    uvec4 q[ROWS];
    [[unroll]] for (uint r = 0; r < ROWS; ++r) q[r] = bits4[rbase[r] + st];
#if defined(VARIANT_ROWS)
    [[unroll]] for (uint k = 0; k < 4; ++k) {
      uint wd[ROWS];
      [[unroll]] for (uint r = 0; r < ROWS; ++r) wd[r] = q[r][k];
      add_word(wd, 4 * st + k, chunks);
    }
#else
    // Every lane loads a different chunk and the subgroup broadcasts them in
    // turn; no lane may have left (the broadcasts read all of them).
    for (uint base = 0; base < 32; base += sg) {
      vec4 mine[BT];
      [[unroll]] for (uint b = 0; b < BT; ++b)
        mine[b] = base + lane < 32 ? load_chunk(b, 32 * st + base + lane, chunks) : vec4(0.0);
      for (uint k = 0; k < min(sg, 32 - base); ++k) {
        const uint c = base + k;  // chunk within the step: word c / 8, nibble c % 8
        uint nib[ROWS];
        [[unroll]] for (uint r = 0; r < ROWS; ++r) nib[r] = q[r][c / 8] >> (4 * (c % 8));
        vec4 xv[BT];
        [[unroll]] for (uint b = 0; b < BT; ++b) xv[b] = subgroupBroadcast(mine[b], k);
        add_chunk(nib, xv);
      }
    }
#endif
  }
  if (row0 < p.rows) store(row0, b0);
#elif defined(VARIANT_SUBGROUP)
  // Lane rank and count among the active lanes: correct for any subgroup
  // size, including a partly filled last subgroup.
  const uint lanes = subgroupAdd(1u), lane = subgroupExclusiveAdd(1u);
  const uint first_row = gl_WorkGroupID.x * RW;
  for (uint rr = gl_SubgroupID * ROWS; rr < RW; rr += gl_NumSubgroups * ROWS) {
    const uint row0 = first_row + rr;
    if (row0 >= p.rows) break;
    clear();
    [[unroll]] for (uint r = 0; r < ROWS; ++r) rbase[r] = min(row0 + r, p.rows - 1) * p.words;
    for (uint w = lane; w < (chunks + 7) / 8; w += lanes) {
      uint wd[ROWS];
      [[unroll]] for (uint r = 0; r < ROWS; ++r) wd[r] = bits[rbase[r] + w];
      add_word(wd, w, chunks);
    }
    [[unroll]] for (uint b = 0; b < BT; ++b) {
      s[b] = subgroupAdd(s[b]);
      [[unroll]] for (uint r = 0; r < ROWS; ++r) acc[r][b] = subgroupAdd(acc[r][b]);
    }
    if (lane == 0) store(row0, b0);
  }
#else
#error "define VARIANT_ROWS, VARIANT_BCAST or VARIANT_SUBGROUP"
#endif
}
