// The bandwidth yardsticks: copy (read n + write n floats), read-reduce (read
// n floats, write one partial sum per workgroup) and write-fill (write n).
// The body moves vec4s (16-byte accesses: fastest on CPUs and GPUs alike);
// the last n % 4 floats go through a float view of the same binding.
// Workgroup w covers vec4s [w*WG*ITEMS, (w+1)*WG*ITEMS); invocation t touches
// w*WG*ITEMS + k*WG + t, so neighbouring invocations touch neighbouring
// addresses on every step (coalesced on GPUs, vectorised on lavapipe).
#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#include "roofline.h"

layout(local_size_x_id = 0) in;
layout(constant_id = 3) const uint ITEMS = 16;
layout(push_constant) uniform PC { RooflineParams p; };

#if defined(MODE_COPY)
layout(std430, set = 0, binding = 0) readonly buffer Src4 { vec4 src4[]; };
layout(std430, set = 0, binding = 0) readonly buffer Src1 { float src1[]; };
layout(std430, set = 0, binding = 1) writeonly buffer Dst4 { vec4 dst4[]; };
layout(std430, set = 0, binding = 1) writeonly buffer Dst1 { float dst1[]; };
#elif defined(MODE_READ)
layout(std430, set = 0, binding = 0) readonly buffer Src4 { vec4 src4[]; };
layout(std430, set = 0, binding = 0) readonly buffer Src1 { float src1[]; };
layout(std430, set = 0, binding = 1) writeonly buffer Partials { float partials[]; };
shared float subgroup_sums[gl_WorkGroupSize.x];  // one slot per subgroup is enough; WG bounds their count
#elif defined(MODE_FILL)
layout(std430, set = 0, binding = 0) writeonly buffer Dst4 { vec4 dst4[]; };
layout(std430, set = 0, binding = 0) writeonly buffer Dst1 { float dst1[]; };
#else
#error "define MODE_COPY, MODE_READ or MODE_FILL"
#endif

void main() {
  const uint wg = gl_WorkGroupSize.x;
  const uint n4 = p.n / 4;
  const uint first = gl_WorkGroupID.x * wg * ITEMS + gl_LocalInvocationID.x;
#if defined(MODE_READ)
  vec4 acc = vec4(0.0);
#endif
  for (uint k = 0; k < ITEMS; ++k) {
    const uint i = first + k * wg;
    if (i < n4) {
#if defined(MODE_COPY)
      dst4[i] = src4[i];
#elif defined(MODE_READ)
      acc += src4[i];
#else
      dst4[i] = vec4(p.value);
#endif
    }
  }
  // The tail (n % 4 floats) falls to the group holding vec4 index n4.
  const uint tail = n4 * 4 + gl_LocalInvocationID.x;
  if (gl_WorkGroupID.x == n4 / (wg * ITEMS) && tail < p.n) {
#if defined(MODE_COPY)
    dst1[tail] = src1[tail];
#elif defined(MODE_READ)
    acc.x += src1[tail];
#else
    dst1[tail] = p.value;
#endif
  }
#if defined(MODE_READ)
  float s = subgroupAdd((acc.x + acc.y) + (acc.z + acc.w));
  if (subgroupElect()) subgroup_sums[gl_SubgroupID] = s;
  barrier();  // every subgroup's sum is in shared memory
  if (gl_LocalInvocationID.x == 0) {
    float total = 0.0;
    for (uint g = 0; g < gl_NumSubgroups; ++g) total += subgroup_sums[g];
    partials[p.out_base + gl_WorkGroupID.x] = total;
  }
#endif
}
