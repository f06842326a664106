// Included by both C++ and GLSL so that structs shared between them (push
// constants) are defined once and can never drift. C++ sees them in
// namespace vkq::gpu with GLSL's `uint` spelled as std::uint32_t.
#ifndef VKQ_SHARED_H
#define VKQ_SHARED_H
#ifdef __cplusplus
#include <cstdint>
#define VKQ_GPU_BEGIN \
  namespace vkq::gpu {  \
  using uint = std::uint32_t;
#define VKQ_GPU_END }
#else
#define VKQ_GPU_BEGIN
#define VKQ_GPU_END
#endif
#endif
