#include "vkquant/roofline.hpp"

#include <algorithm>

#include "roofline.h"
#include "vkquant/chunk.hpp"
#include "vkquant/device.hpp"

namespace vkq::roofline {

static_assert(sizeof(gpu::RooflineParams) == 16);

namespace {

const Kernel& kernel(Stream& s, const char* shader, Tuning t) {
  return s.device().kernel(
      {.shader = shader, .local_size = {t.local, 1, 1}, .constants = {t.items}});
}

// Floats per binding chunk: within maxStorageBufferRange and a whole number
// of workgroups, so partial-sum indices continue seamlessly across chunks.
std::uint64_t floats_per_group(Tuning t) { return std::uint64_t(t.local) * t.items * 4; }

std::uint64_t chunk_floats(const Device& d, Tuning t) {
  if (t.local < 4 || t.items == 0) throw Error("roofline: workgroup below 4 invocations or zero items");
  const std::uint64_t per_group = floats_per_group(t);
  return std::max<std::uint64_t>(d.binding_chunk_bytes() / 4 / per_group, 1) * per_group;
}

// Each invocation moves `items` vec4s.
std::uint64_t threads_for(std::uint64_t count, Tuning t) { return div_up(div_up(count, 4), t.items); }

}  // namespace

void copy(Stream& s, const Buffer& src, Buffer& dst, std::uint64_t n, Tuning t) {
  if (n * 4 > src.size() || n * 4 > dst.size()) throw Error("roofline::copy: n exceeds a buffer");
  const Kernel& k = kernel(s, "roofline_copy", t);
  for_each_chunk(n, chunk_floats(s.device(), t), [&](std::uint64_t first, std::uint64_t count) {
    gpu::RooflineParams p{std::uint32_t(count), 0, 0.f, 0};
    s.dispatch(k, {{src, first * 4, count * 4}, {dst, first * 4, count * 4}}, p, {threads_for(count, t)});
  });
}

void fill(Stream& s, Buffer& dst, std::uint64_t n, float value, Tuning t) {
  if (n * 4 > dst.size()) throw Error("roofline::fill: n exceeds the buffer");
  const Kernel& k = kernel(s, "roofline_fill", t);
  for_each_chunk(n, chunk_floats(s.device(), t), [&](std::uint64_t first, std::uint64_t count) {
    gpu::RooflineParams p{std::uint32_t(count), 0, value, 0};
    s.dispatch(k, {{dst, first * 4, count * 4}}, p, {threads_for(count, t)});
  });
}

std::uint64_t read_partial_count(std::uint64_t n, Tuning t) { return div_up(n, floats_per_group(t)); }

void read(Stream& s, const Buffer& src, std::uint64_t n, Buffer& partials, Tuning t) {
  if (n * 4 > src.size()) throw Error("roofline::read: n exceeds the buffer");
  if (read_partial_count(n, t) * 4 > partials.size()) throw Error("roofline::read: partials buffer too small");
  const Kernel& k = kernel(s, "roofline_read", t);
  const std::uint64_t per_group = floats_per_group(t);
  for_each_chunk(n, chunk_floats(s.device(), t), [&](std::uint64_t first, std::uint64_t count) {
    gpu::RooflineParams p{std::uint32_t(count), std::uint32_t(first / per_group), 0.f, 0};
    s.dispatch(k, {{src, first * 4, count * 4}, {partials}}, p, {threads_for(count, t) });
  });
}

}  // namespace vkq::roofline
