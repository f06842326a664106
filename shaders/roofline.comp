// The bandwidth yardsticks: copy (read n + write n floats), read-reduce (read
// n floats, write one partial sum per workgroup) and write-fill (write n).
// Workgroup w covers elements [w*WG*ITEMS, (w+1)*WG*ITEMS); invocation t
// touches w*WG*ITEMS + k*WG + t, so neighbouring invocations touch
// neighbouring addresses on every step (coalesced on GPUs, vectorised on
// lavapipe).
#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#include "roofline.h"

layout(local_size_x_id = 0) in;
layout(constant_id = 3) const uint ITEMS = 16;
layout(push_constant) uniform PC { RooflineParams p; };

#if defined(MODE_COPY)
layout(std430, set = 0, binding = 0) readonly buffer Src { float src[]; };
layout(std430, set = 0, binding = 1) writeonly buffer Dst { float dst[]; };
#elif defined(MODE_READ)
layout(std430, set = 0, binding = 0) readonly buffer Src { float src[]; };
layout(std430, set = 0, binding = 1) writeonly buffer Partials { float partials[]; };
shared float subgroup_sums[gl_WorkGroupSize.x];  // one slot per subgroup is enough; WG bounds their count
#elif defined(MODE_FILL)
layout(std430, set = 0, binding = 0) writeonly buffer Dst { float dst[]; };
#else
#error "define MODE_COPY, MODE_READ or MODE_FILL"
#endif

void main() {
  const uint wg = gl_WorkGroupSize.x;
  const uint first = gl_WorkGroupID.x * wg * ITEMS + gl_LocalInvocationID.x;
#if defined(MODE_READ)
  float acc = 0.0;
#endif
  for (uint k = 0; k < ITEMS; ++k) {
    const uint i = first + k * wg;
    if (i >= p.n) break;
#if defined(MODE_COPY)
    dst[i] = src[i];
#elif defined(MODE_READ)
    acc += src[i];
#else
    dst[i] = p.value;
#endif
  }
#if defined(MODE_READ)
  acc = subgroupAdd(acc);
  if (subgroupElect()) subgroup_sums[gl_SubgroupID] = acc;
  barrier();  // every subgroup's sum is in shared memory
  if (gl_LocalInvocationID.x == 0) {
    float total = 0.0;
    for (uint s = 0; s < gl_NumSubgroups; ++s) total += subgroup_sums[s];
    partials[p.out_base + gl_WorkGroupID.x] = total;
  }
#endif
}
