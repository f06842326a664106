// y = x Wᵀ over one binding window of weight rows (layouts in linear.h),
// fp32 x/y, fp32 accumulation; weights f32, fp16 (WF16), bf16 (WBF16) or
// ggml blocks (WQUANT with a Q_<TYPE> of quant.h, decoded in registers). An
// invocation (rows) or a subgroup (subgroup) owns ROWS weight rows and
// applies them to BT batch rows at a time, so the weights are read (and
// decoded) once per BT batch rows.
// VARIANT_ROWS (any device, no subgroup ops): one invocation walks ROWS whole
//   rows, one uvec4 (4 floats or 8 halves) or one quant group per row per step.
//   SHARED_X (f32/f16/bf16; subgroups of >= 8 lanes with ballot): the same,
//   but each block of x (CB columns per batch column) is loaded once per
//   subgroup, one column per lane, and broadcast. lavapipe turns a load
//   inside control flow into a loop over the 8 lanes, uniform address or
//   not (kscore.comp), so the rows variant loaded each x word 8 times; here once
//   (prefill 1.7x on lavapipe, docs/bench.md). Subgroups are full (the host
//   asks) and every lane of one with rows runs, so the broadcasts read active
//   lanes.
// VARIANT_SUBGROUP (GPUs): a subgroup owns ROWS rows at a time, lanes stride
//   over the uvec4s or groups, subgroupAdd reduces.
// ID (linear_id): workgroup row y is an expert of the window (or, at index
//   ne, the invalid ids); each invocation scans the slots' ids and applies its
//   rows to the matching slots, BT at a time, so an expert's rows are read
//   once per BT tokens routed to it.
#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#if defined(VARIANT_SUBGROUP)
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#endif
#if defined(SHARED_X)
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_ballot : require
#if !defined(VARIANT_ROWS) || defined(WQUANT)
#error "SHARED_X is a form of the rows variant over f32/f16/bf16 weights"
#endif
#endif
#include "linear.h"

layout(local_size_x_id = 0) in;
layout(constant_id = 3) const uint ROWS = 2;
layout(constant_id = 4) const uint BT = 1;
layout(constant_id = 5) const uint XVEC = 0;  // 1 when every x row of the window starts on 16 bytes
layout(constant_id = 6) const uint RW = 8;    // subgroup: rows per workgroup (a multiple of ROWS)
layout(push_constant) uniform PC { LinearParams p; };

#if defined(WQUANT)
#include "quant.h"
layout(std430, binding = 0) readonly buffer W { uvec4 w[]; };
#elif defined(WF16) || defined(WBF16)
layout(std430, binding = 0) readonly buffer W { uvec4 w[]; };
#define WBLOCK uvec4
const uint CB = 8;  // columns per block
#else
layout(std430, binding = 0) readonly buffer W { vec4 w[]; };
#define WBLOCK vec4
const uint CB = 4;
#endif
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer X4 { vec4 x4[]; };
layout(std430, binding = 2) buffer Y { float y[]; };
#if defined(ID)
layout(std430, binding = 3) readonly buffer Ids { uint ids[]; };
#endif

float acc[ROWS][BT];  // one chain per (row, batch column): many columns keep enough chains in flight
uint xbase[BT];      // float index of each batch column's x row
uint slot[BT];       // batch row (linear) or slot (linear_id) of each column
uint cnt;            // columns in use

// ---- f32 / fp16 / bf16 rows ------------------------------------------------------------
#if !defined(WQUANT)
// x[i .. i + 3] (columns col .. col + 3), zero past `in` in the partial last block.
vec4 load_x(uint i, uint col, bool part) {
  if (!part) return XVEC != 0 ? x4[i / 4] : vec4(x[i], x[i + 1], x[i + 2], x[i + 3]);
  vec4 v = vec4(0.0);
  [[unroll]] for (uint c = 0; c < 4; ++c)
    if (col + c < p.cols) v[c] = x[i + c];
  return v;
}

#if defined(WBF16)
// Columns 2j, 2j + 1 of a word of two bf16 (the low half is the even column).
vec2 unpack2(uint u) { return vec2(uintBitsToFloat(u << 16), uintBitsToFloat(u & 0xffff0000u)); }
#else
vec2 unpack2(uint u) { return unpackHalf2x16(u); }
#endif

// Columns col .. col + CB - 1 of every row's block against each column's x.
// In the partial last block, x past `in` is zero and so are the weights
// (padding may hold anything, NaN included).
void block(WBLOCK q[ROWS], uint col, bool part) {
  if (part) {
#if defined(WF16) || defined(WBF16)
    uvec4 m;
    [[unroll]] for (uint j = 0; j < 4; ++j)
      m[j] = (col + 2 * j < p.cols ? 0xffffu : 0u) | (col + 2 * j + 1 < p.cols ? 0xffff0000u : 0u);
    [[unroll]] for (uint r = 0; r < ROWS; ++r) q[r] &= m;
#else
    const bvec4 keep = lessThan(uvec4(col) + uvec4(0, 1, 2, 3), uvec4(p.cols));
    [[unroll]] for (uint r = 0; r < ROWS; ++r) q[r] = mix(vec4(0.0), q[r], keep);
#endif
  }
  [[unroll]] for (uint b = 0; b < BT; ++b) {
#if defined(SHARED_X)
    // Lane l (mod CB) loads column col + l; lanes past CB repeat. Past `in`
    // x is 0 as in load_x (the weights there are zeroed too, but an Inf in
    // x's last column times 0 would be NaN).
    const uint c = col + gl_SubgroupInvocationID % CB;
    const float xl = c < p.cols ? x[xbase[b] + min(c, p.cols - 1)] : 0.0;
    const vec4 xa = vec4(subgroupBroadcast(xl, 0), subgroupBroadcast(xl, 1), subgroupBroadcast(xl, 2),
                         subgroupBroadcast(xl, 3));
#if defined(WF16) || defined(WBF16)
    const vec4 xb = vec4(subgroupBroadcast(xl, 4), subgroupBroadcast(xl, 5), subgroupBroadcast(xl, 6),
                         subgroupBroadcast(xl, 7));
#endif
#else
    const uint i = xbase[b] + col;
    const vec4 xa = load_x(i, col, part);
#if defined(WF16) || defined(WBF16)
    const vec4 xb = load_x(i + 4, col + 4, part);
#endif
#endif
#if defined(WF16) || defined(WBF16)
    [[unroll]] for (uint r = 0; r < ROWS; ++r) {
      acc[r][b] += dot(vec4(unpack2(q[r].x), unpack2(q[r].y)), xa) + dot(vec4(unpack2(q[r].z), unpack2(q[r].w)), xb);
    }
#else
    [[unroll]] for (uint r = 0; r < ROWS; ++r) acc[r][b] += dot(q[r], xa);
#endif
  }
}

// acc = the dot products of rows rbase[] (uvec4 indices) over blocks first,
// first + stride, ... (partial sums when stride > 1).
void dot_rows(const uint rbase[ROWS], uint first, uint stride) {
  const uint full = p.cols / CB, blocks = (p.cols + CB - 1) / CB;
  [[unroll]] for (uint r = 0; r < ROWS; ++r)
    [[unroll]] for (uint b = 0; b < BT; ++b) acc[r][b] = 0.0;
  WBLOCK q[ROWS];
  for (uint kb = first; kb < blocks; kb += stride) {
    [[unroll]] for (uint r = 0; r < ROWS; ++r) q[r] = w[rbase[r] + kb];
    block(q, CB * kb, kb >= full);
  }
}

// ---- ggml blocks -------------------------------------------------------------------------
#else
// The words of group g of the row at uvec4 index `row`: QNQ aligned uvec4
// loads (clamped to the window's end: a last partial group of small blocks
// may reach past it; those blocks are skipped), realigned when Q_PHASE.
void load_group(uint row, uint g, out uint wd[QWR]) {
  const uint o = g * QGB;  // byte offset in the row (rows start on 16 bytes)
  const uint q0 = row + o / 16;
  uvec4 c[QNQ];
  [[unroll]] for (uint k = 0; k < QNQ; ++k) c[k] = w[min(q0 + k, p.w_end - 1)];
  q_words(c, o % 16, wd);
}

// The 32 columns of slice s of group g of every batch column's x row, and
// Σ x over each half of it (for the minimums).
void load_x_slice(uint g, uint s, out vec4 xs[BT][8], out vec2 sx[BT]) {
  const uint col = g * QGE + 32 * s;
  [[unroll]] for (uint b = 0; b < BT; ++b) {
    [[unroll]] for (uint i = 0; i < 8; ++i) xs[b][i] = x4[(xbase[b] + col) / 4 + i];
#if defined(Q_NOMIN)
    sx[b] = vec2(0.0);
#else
    const vec4 h0 = (xs[b][0] + xs[b][1]) + (xs[b][2] + xs[b][3]);
    const vec4 h1 = (xs[b][4] + xs[b][5]) + (xs[b][6] + xs[b][7]);
    sx[b] = vec2(dot(h0, vec4(1.0)), dot(h1, vec4(1.0)));
#endif
  }
}

// a + Σ (q·dl - ml)·x over one slice = a + dl·Σ q·x - ml·Σ x per half
// (fused multiply-adds; the scale is applied once per 16 columns).
float slice_dot(const vec4 q[8], const vec2 dl, const vec2 ml, const vec4 xv[8], const vec2 sxh, float a) {
  float h[2] = {0.0, 0.0};
  [[unroll]] for (uint i = 0; i < 8; ++i)
    [[unroll]] for (uint c = 0; c < 4; ++c) h[i / 4] = fma(q[i][c], xv[i][c], h[i / 4]);
#if !defined(Q_NOMIN)
  a = fma(-ml.x, sxh.x, fma(-ml.y, sxh.y, a));
#endif
  return fma(dl.x, h[0], fma(dl.y, h[1], a));
}

// acc = the dot products of rows rbase[] (uvec4 indices) over groups first,
// first + stride, ... (partial sums when stride > 1). `in` is a multiple of QK;
// blocks past it in the last group are skipped (x is not read there either).
#if defined(VARIANT_SUBGROUP)
// GPUs: per 32-column slice, x is loaded and every row decoded against it
// (ROWS unrolled), so a lane holds one slice of x (32 floats per batch row).
void dot_rows(const uint rbase[ROWS], uint first, uint stride) {
  const uint nb = p.cols / QK, groups = (nb + QG - 1) / QG;
  [[unroll]] for (uint r = 0; r < ROWS; ++r)
    [[unroll]] for (uint b = 0; b < BT; ++b) acc[r][b] = 0.0;
  for (uint g = first; g < groups; g += stride) {
    const uint slices = min(QSL, (nb - g * QG) * (QK / 32));  // QSL but in the last group of small blocks
    uint wd[ROWS][QWR];
    [[unroll]] for (uint r = 0; r < ROWS; ++r) load_group(rbase[r], g, wd[r]);
    [[unroll]] for (uint s = 0; s < QSL; ++s) {
      if (s >= slices) break;
      vec4 xs[BT][8];
      vec2 sx[BT];
      load_x_slice(g, s, xs, sx);
      [[unroll]] for (uint r = 0; r < ROWS; ++r) {
        vec4 q[8];
        vec2 dl, ml;
        q_slice(wd[r], s, q, dl, ml);
        [[unroll]] for (uint b = 0; b < BT; ++b) acc[r][b] = slice_dot(q, dl, ml, xs[b], sx[b], acc[r][b]);
      }
    }
  }
}
#else
// rows: per group, x is loaded once for every row of the invocation, then a
// loop that is not unrolled decodes one row at a time against it. Loads whose
// address is not provably uniform are loops over the lanes on lavapipe (x's
// included), so x costs 1 / ROWS of such loads per row, and the code holds
// one row's decode whatever ROWS is; the kept x (BT × 256 floats) spills to
// the stack at worst, which on a CPU is cheap.
void dot_rows(const uint rbase[ROWS], uint first, uint stride) {
  const uint nb = p.cols / QK, groups = (nb + QG - 1) / QG;
  [[unroll]] for (uint r = 0; r < ROWS; ++r)
    [[unroll]] for (uint b = 0; b < BT; ++b) acc[r][b] = 0.0;
  for (uint g = first; g < groups; g += stride) {
    const uint slices = min(QSL, (nb - g * QG) * (QK / 32));  // QSL but in the last group of small blocks
    vec4 xs[QSL][BT][8];
    vec2 sx[QSL][BT];
    [[unroll]] for (uint s = 0; s < QSL; ++s) {
      if (s >= slices) break;
      load_x_slice(g, s, xs[s], sx[s]);
    }
    [[dont_unroll]] for (uint r = 0; r < ROWS; ++r) {
      uint wd[QWR];
      load_group(rbase[r], g, wd);
      float a[BT];
      [[unroll]] for (uint b = 0; b < BT; ++b) a[b] = 0.0;
      [[unroll]] for (uint s = 0; s < QSL; ++s) {
        if (s >= slices) break;
        vec4 q[8];
        vec2 dl, ml;
        q_slice(wd, s, q, dl, ml);
        [[unroll]] for (uint b = 0; b < BT; ++b) a[b] = slice_dot(q, dl, ml, xs[s][b], sx[s][b], a[b]);
      }
      [[unroll]] for (uint b = 0; b < BT; ++b) acc[r][b] += a[b];
    }
  }
}
#endif
#endif

// Writes (or adds) the finished sums of rows row_start .. of the window.
void store(uint row_start) {
  [[unroll]] for (uint r = 0; r < ROWS; ++r) {
    if (row_start + r >= p.rows) break;
    [[unroll]] for (uint b = 0; b < BT; ++b) {
      if (b >= cnt) break;
      const uint i = p.y_off + slot[b] * p.outs + p.row0 + row_start + r;
      const float v = acc[r][b];
      if ((p.flags & LINEAR_ACCUMULATE) != 0) y[i] += v;
      else y[i] = v;
    }
  }
}

#if defined(ID)
// Whether slot id e belongs to window expert le (le == ne: the invalid ids).
bool matches(uint e, uint le) { return le < p.ne ? e == p.e0 + le : e >= p.experts; }

// Collects the next (up to BT) slots routed to expert le, scanning from pos.
void collect(inout uint pos, uint le) {
  cnt = 0;
  for (; pos < p.batch && cnt < BT; ++pos) {
    if (matches(ids[p.ids_off + pos], le)) {
      slot[cnt] = pos;
      ++cnt;
    }
  }
  const uint kx = (p.flags & LINEAR_X_PER_SLOT) != 0 ? 1 : p.k;
  [[unroll]] for (uint b = 0; b < BT; ++b) xbase[b] = p.x_off + slot[min(b, max(cnt, 1) - 1)] / kx * p.cols;
}
#endif

// Applies rows row_start .. row_start + ROWS - 1 to this workgroup's batch
// columns (linear) or to every slot routed to its expert (linear_id). The
// subgroup variant passes its lane's block stride; `leader` stores.
void process(uint row_start, uint first, uint stride, bool leader) {
  uint rbase[ROWS];
#if defined(ID)
  const uint le = gl_WorkGroupID.y;
  const uint e = min(le, p.ne - 1);
#else
  const uint e = 0;
#endif
  // Rows past the window are clamped to its last row; store() drops them.
  [[unroll]] for (uint r = 0; r < ROWS; ++r) rbase[r] = p.w_off + (e * p.rows + min(row_start + r, p.rows - 1)) * p.wq;
#if defined(ID)
  uint pos = 0;
  for (;;) {
    collect(pos, le);
    if (cnt == 0) break;
    if (le < p.ne) {
      dot_rows(rbase, first, stride);
    } else {
      [[unroll]] for (uint r = 0; r < ROWS; ++r)
        [[unroll]] for (uint b = 0; b < BT; ++b) acc[r][b] = 0.0;
    }
#else
  {
    const uint b0 = gl_WorkGroupID.y * BT;
    cnt = min(BT, p.batch - b0);
    [[unroll]] for (uint b = 0; b < BT; ++b) {
      slot[b] = b0 + b;
      xbase[b] = p.x_off + min(b0 + b, p.batch - 1) * p.cols;
    }
    dot_rows(rbase, first, stride);
#endif
#if defined(VARIANT_SUBGROUP)
    [[unroll]] for (uint r = 0; r < ROWS; ++r)
      [[unroll]] for (uint b = 0; b < BT; ++b)
        acc[r][b] = subgroupAdd(acc[r][b]);
#endif
    if (leader) store(row_start);
  }
}

void main() {
#if defined(VARIANT_ROWS) && defined(SHARED_X)
  // Every lane of a subgroup with any rows runs (the subgroup loads x
  // together; its lanes past the window compute clamped rows that store()
  // drops); a subgroup without rows leaves at once.
  const uint row_start = gl_GlobalInvocationID.x * ROWS;
  if (subgroupBallot(row_start < p.rows) == uvec4(0)) return;
  process(row_start, 0, 1, true);
#elif defined(VARIANT_ROWS)
  const uint row_start = gl_GlobalInvocationID.x * ROWS;
  if (row_start < p.rows) process(row_start, 0, 1, true);

#elif defined(VARIANT_SUBGROUP)
  // Lane rank and count among the active lanes: correct for any subgroup size.
  const uint lanes = subgroupAdd(1u), lane = subgroupExclusiveAdd(1u);
  const uint first_row = gl_WorkGroupID.x * RW;
  for (uint rr = gl_SubgroupID * ROWS; rr < RW; rr += gl_NumSubgroups * ROWS) {
    if (first_row + rr >= p.rows) break;
    process(first_row + rr, lane, lanes, lane == 0);
  }
#else
#error "define VARIANT_ROWS or VARIANT_SUBGROUP"
#endif
}
