#ifndef VKQ_ROOFLINE_H
#define VKQ_ROOFLINE_H
#include "vkq_shared.h"
VKQ_GPU_BEGIN
// Push constants of roofline.comp (copy, read-reduce, write-fill).
struct RooflineParams {
  uint n;          // float elements covered by this dispatch's bindings
  uint out_base;   // read: index of this dispatch's first partial sum
  float value;     // fill: the value written
  uint pad;
};
VKQ_GPU_END
#endif
