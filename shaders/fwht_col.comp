// FWHT over the top LOG2N1 bits of rows of n = 2^LOG2N floats: each row seen
// as (N1, n / N1) and transformed along its columns. One invocation per
// (row, vec4 column); consecutive invocations touch consecutive vec4s.
// With fwht_group over the (rows * N1, n / N1) sub-rows this completes the
// transform where a whole row does not fit in shared memory (the two factors
// of H = H_N1 (x) H_{n/N1} commute, so either may go first).
#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "fwht.h"

layout(local_size_x_id = 0) in;
layout(constant_id = 3) const uint LOG2N = 14;  // row length n = 2^LOG2N floats
layout(constant_id = 4) const uint LOG2N1 = 1;  // bits transformed here (N1 <= 16)
const uint M = 1u << LOG2N1;
const uint N4 = (1u << LOG2N) >> 2u;
const uint LOG2C = LOG2N - 2u - LOG2N1;  // log2(vec4 columns)
const uint C = 1u << LOG2C;

layout(push_constant) uniform PC { FwhtParams p; };
layout(std430, set = 0, binding = 0) readonly buffer Src { vec4 src[]; };
layout(std430, set = 0, binding = 1) writeonly buffer Dst { vec4 dst[]; };

void main() {
  const uint id = gl_GlobalInvocationID.x;
  const uint row = id >> LOG2C;
  const uint c = id & (C - 1u);
  if (row >= p.rows) return;
  vec4 v[M];
  [[unroll]] for (uint i = 0u; i < M; ++i) {
    v[i] = src[p.src_base + row * N4 + i * C + c];
    if ((p.flags & FWHT_SIGNS_IN) != 0u) v[i] *= fwht_signs4(p.key, i * C + c);
  }
  FWHT_REG(v, LOG2N1)
  [[unroll]] for (uint i = 0u; i < M; ++i) {
    vec4 y = v[i] * p.scale;
    if ((p.flags & FWHT_SIGNS_OUT) != 0u) y *= fwht_signs4(p.key, i * C + c);
    dst[p.dst_base + row * N4 + i * C + c] = y;
  }
}
