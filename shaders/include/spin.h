#ifndef VKQ_SPIN_H
#define VKQ_SPIN_H
#include "vkq_shared.h"
VKQ_GPU_BEGIN
// Push constants of spin.comp: work that takes as long as `iters` says.
struct SpinParams {
  uint n;      // outputs (one per invocation)
  uint iters;  // loop trips of 16 xorshift32 steps per output (at most 4096)
  uint seed;
  uint pad;
};
VKQ_GPU_END
#endif
