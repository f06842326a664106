// Roofline kernels: the bandwidth yardsticks every other kernel is measured
// against. Buffers hold fp32 and may exceed maxStorageBufferRange: each call
// binds them in chunks.
#pragma once

#include <cstdint>

#include "vkquant/buffer.hpp"
#include "vkquant/stream.hpp"

namespace vkq::roofline {

struct Tuning {
  std::uint32_t local = 256;  // invocations per workgroup (large groups: few launches on lavapipe)
  std::uint32_t items = 4;    // vec4s per invocation
};

// dst[i] = src[i] for i < n (floats).
void copy(Stream& s, const Buffer& src, Buffer& dst, std::uint64_t n, Tuning t = {});

// dst[i] = value for i < n.
void fill(Stream& s, Buffer& dst, std::uint64_t n, float value, Tuning t = {});

// partials[j] = sum of src over workgroup j's elements; the host adds the
// partials. `partials` must hold read_partial_count(n, t) floats.
void read(Stream& s, const Buffer& src, std::uint64_t n, Buffer& partials, Tuning t = {});
std::uint64_t read_partial_count(std::uint64_t n, Tuning t = {});

}  // namespace vkq::roofline
