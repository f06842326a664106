// Argument checks the kernel wrappers share (private to runtime/src/kernels).
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>

#include "vkquant/buffer.hpp"
#include "vkquant/device.hpp"
#include "vkquant/error.hpp"
#include "vkquant/stream.hpp"

namespace vkq::kernels::check {

[[noreturn]] inline void fail(const char* fn, const std::string& what) { throw Error(std::string(fn) + ": " + what); }

// A binding of the first `bytes` of b: present, large enough, within one
// binding (`beyond`, if given, says what happens to larger ranges).
inline Binding need(const char* fn, const Device& d, const char* name, const Buffer* b, std::uint64_t bytes,
                    const char* beyond = nullptr) {
  if (!b || !*b) fail(fn, std::string(name) + " buffer missing");
  if (b->size() < bytes)
    fail(fn, std::string(name) + " holds " + std::to_string(b->size()) + " bytes, needs " + std::to_string(bytes));
  if (bytes > d.info().max_storage_buffer_range)
    fail(fn, std::string(name) + " needs " + std::to_string(bytes) + " bytes in one binding, more than " +
                 "maxStorageBufferRange " + std::to_string(d.info().max_storage_buffer_range) +
                 (beyond ? std::string(" (") + beyond + ")" : std::string()));
  return Binding(*b, 0, std::max<std::uint64_t>(bytes, std::min<std::uint64_t>(4, b->size())));
}

}  // namespace vkq::kernels::check
