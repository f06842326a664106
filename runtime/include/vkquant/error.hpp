// Typed errors. Every Vulkan failure becomes a VulkanError naming the call and
// its VkResult; out-of-memory, device loss and timeouts have their own types so
// callers can tell them apart (retry smaller, recreate the runtime, give up).
#pragma once

#include <volk.h>

#include <stdexcept>
#include <string>
#include <string_view>

namespace vkq {

// `s` made safe to print on one line: valid UTF-8 is kept, control bytes
// (NUL, newline, tab, ...), DEL and bytes that are not valid UTF-8 become
// \xNN. Backslashes are kept, so escaping twice changes nothing.
std::string escape_bytes(std::string_view s);

// Base of every error the library throws. Messages quote names and values
// read from files and the environment: they are escaped (escape_bytes) so an
// embedded NUL cannot cut a message short and raw bytes never reach a
// terminal.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(escape_bytes(what)) {}
  explicit Error(const char* what) : Error(std::string(what)) {}
};

// No Vulkan loader, no driver, or no usable device.
class NoDeviceError : public Error {
 public:
  using Error::Error;
};

// A bad setting from the user: an environment variable (or an option passed
// through the library) with a value that is not allowed. The CLI exits 2.
class UsageError : public Error {
 public:
  using Error::Error;
};

// A Vulkan call failed.
class VulkanError : public Error {
 public:
  // `detail`, when given, says what the failure means for the user.
  VulkanError(const char* call, VkResult result, const std::string& detail = {});
  const char* call() const noexcept { return call_; }
  VkResult result() const noexcept { return result_; }

 private:
  const char* call_;
  VkResult result_;
};

// VK_ERROR_OUT_OF_HOST_MEMORY / VK_ERROR_OUT_OF_DEVICE_MEMORY (and pool or
// fragmentation variants): the runtime stays usable.
class OutOfMemoryError : public VulkanError {
 public:
  using VulkanError::VulkanError;
};

// VK_ERROR_DEVICE_LOST: this device is gone; create a new runtime.
class DeviceLostError : public VulkanError {
 public:
  using VulkanError::VulkanError;
};

// A bounded wait ran out (VK_TIMEOUT / VK_NOT_READY where a result was due).
class TimeoutError : public VulkanError {
 public:
  using VulkanError::VulkanError;
};

// Name of a VkResult, e.g. "VK_ERROR_DEVICE_LOST".
const char* result_name(VkResult result) noexcept;

// Throws the typed error for `result` (any result other than VK_SUCCESS,
// VK_INCOMPLETE or VK_SUBOPTIMAL_KHR counts as failure), with `detail` (what
// it means for the user) appended when given.
[[noreturn]] void throw_vulkan_error(VkResult result, const char* call, const std::string& detail = {});

inline void check(VkResult result, const char* call) {
  if (result != VK_SUCCESS && result != VK_INCOMPLETE) throw_vulkan_error(result, call);
}

}  // namespace vkq
