// MoE router, one workgroup per token. Every invocation computes the
// softmax max and sum itself (no barrier), then the rank of each expert it
// owns (e = lid, lid + WG, ...) in the total order logit descending, index
// ascending (ties go to the lower index); experts of rank < k are written at
// their rank. Ordering by logits is ordering by softmax probabilities.
// One invocation per token would need E² loop iterations, and lavapipe stops
// any invocation's loops after 65535 iterations in all.
#version 450
#extension GL_GOOGLE_include_directive : require
#include "ops.h"

layout(local_size_x_id = 0) in;
layout(push_constant) uniform PC { MoeRouteParams p; };

layout(std430, set = 0, binding = 0) readonly buffer Logits { float logits[]; };
layout(std430, set = 0, binding = 1) writeonly buffer Ids { uint ids[]; };
layout(std430, set = 0, binding = 2) writeonly buffer Weights { float weights[]; };

shared float picked_part[gl_WorkGroupSize.x];

// Experts ahead of e (logit v) in the order.
uint rank_of(uint base, uint e, float v) {
  uint rank = 0;
  for (uint f = 0; f < e; ++f) rank += logits[base + f] >= v ? 1u : 0u;
  for (uint f = e + 1; f < p.experts; ++f) rank += logits[base + f] > v ? 1u : 0u;
  return rank;
}

void main() {
  const uint t = gl_WorkGroupID.x;  // the dispatch has exactly n groups
  const uint lid = gl_LocalInvocationID.x, wg = gl_WorkGroupSize.x;
  const uint base = t * p.experts;
  float mx = logits[base];
  for (uint e = 1; e < p.experts; ++e) mx = max(mx, logits[base + e]);
  float sum = 0.0;
  for (uint e = 0; e < p.experts; ++e) sum += exp(logits[base + e] - mx);

  float picked = 0.0;
  for (uint e = lid; e < p.experts; e += wg) {
    const float v = logits[base + e];
    const uint rank = rank_of(base, e, v);
    if (rank < p.k) {
      const float w = exp(v - mx) / sum;
      picked += w;
      ids[t * p.k + rank] = e;
      if (p.normalize == 0) weights[t * p.k + rank] = w;
    }
  }
  if (p.normalize == 0) return;  // uniform: a push constant
  picked_part[lid] = picked;
  barrier();  // every invocation's share of the picked probability is in shared memory
  float total = 0.0;
  for (uint i = 0; i < wg; ++i) total += picked_part[i];
  for (uint e = lid; e < p.experts; e += wg) {
    const float v = logits[base + e];
    const uint rank = rank_of(base, e, v);
    if (rank < p.k) weights[t * p.k + rank] = exp(v - mx) / sum / total;
  }
}
