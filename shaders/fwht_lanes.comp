// FWHT / SRHT with L = 2^LOG2L neighbouring lanes of one subgroup per row
// (the CPU-device variant): lane l holds the row's vec4s j*L + l (j < M =
// n/4/L) in registers, so neighbouring lanes touch neighbouring vec4s on
// every load and store, as in roofline.comp, and every element is read and
// written once; a lane group does 2^LOG2R consecutive rows. The two in-vec4
// bits and the top log2(M) vec4-index bits are register butterflies; the low
// LOG2L bits are subgroup shuffles. The host keeps L <= the device's minimum
// subgroup size and the workgroup a multiple of its maximum (full subgroups),
// so a row's lanes always lie in one subgroup. Every lane
// loads (a row clamped into range) so shuffles run in uniform control flow;
// only the store is masked.
#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require
#include "fwht.h"

layout(local_size_x_id = 0) in;
layout(constant_id = 3) const uint LOG2N = 7;  // row length n = 2^LOG2N floats
layout(constant_id = 4) const uint LOG2L = 3;  // lanes per row
layout(constant_id = 5) const uint LOG2R = 0;  // rows per lane group, one after another
const uint L = 1u << LOG2L;
const uint N4 = (1u << LOG2N) >> 2u;
const uint LOG2M = LOG2N - 2u - LOG2L;
const uint M = 1u << LOG2M;

layout(push_constant) uniform PC { FwhtParams p; };
layout(std430, set = 0, binding = 0) readonly buffer Src { vec4 src[]; };
layout(std430, set = 0, binding = 1) writeonly buffer Dst { vec4 dst[]; };

void main() {
  const uint sg = gl_WorkGroupID.x * gl_NumSubgroups + gl_SubgroupID;
  const uint row0 = ((sg * gl_SubgroupSize + gl_SubgroupInvocationID) >> LOG2L) << LOG2R;
  const uint lane = gl_SubgroupInvocationID & (L - 1u);
  [[unroll]] for (uint r = 0u; r < (1u << LOG2R); ++r) {
    const uint row = row0 + r;
    const uint rr = min(row, p.rows - 1u);
    vec4 v[M];
    [[unroll]] for (uint j = 0u; j < M; ++j) v[j] = src[p.src_base + rr * N4 + j * L + lane];
    if ((p.flags & FWHT_SIGNS_IN) != 0u)
      [[unroll]] for (uint j = 0u; j < M; ++j) v[j] *= fwht_signs4(p.key, j * L + lane);
    [[unroll]] for (uint j = 0u; j < M; ++j) v[j] = fwht4(v[j]);
    FWHT_REG(v, LOG2M)
    [[unroll]] for (uint s = 0u; s < LOG2L; ++s) {
      // The lane with bit s clear keeps a + b, its partner a - b.
      const float sgn = (lane & (1u << s)) != 0u ? -1.0 : 1.0;
      [[unroll]] for (uint j = 0u; j < M; ++j) v[j] = subgroupShuffleXor(v[j], 1u << s) + sgn * v[j];
    }
    [[unroll]] for (uint j = 0u; j < M; ++j) v[j] *= p.scale;
    if ((p.flags & FWHT_SIGNS_OUT) != 0u)
      [[unroll]] for (uint j = 0u; j < M; ++j) v[j] *= fwht_signs4(p.key, j * L + lane);
    if (row < p.rows)
      [[unroll]] for (uint j = 0u; j < M; ++j) dst[p.dst_base + row * N4 + j * L + lane] = v[j];
  }
}
