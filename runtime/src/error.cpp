#include "vkquant/error.hpp"

#include <string>

namespace vkq {

namespace {
std::string describe(const char* call, VkResult result) {
  return std::string(call) + " failed: " + result_name(result) + " (" + std::to_string(int(result)) + ")";
}
}  // namespace

VulkanError::VulkanError(const char* call, VkResult result)
    : Error(describe(call, result)), call_(call), result_(result) {}

const char* result_name(VkResult r) noexcept {
  switch (r) {
#define VKQ_CASE(x) \
  case x:           \
    return #x;
    VKQ_CASE(VK_SUCCESS)
    VKQ_CASE(VK_NOT_READY)
    VKQ_CASE(VK_TIMEOUT)
    VKQ_CASE(VK_EVENT_SET)
    VKQ_CASE(VK_EVENT_RESET)
    VKQ_CASE(VK_INCOMPLETE)
    VKQ_CASE(VK_ERROR_OUT_OF_HOST_MEMORY)
    VKQ_CASE(VK_ERROR_OUT_OF_DEVICE_MEMORY)
    VKQ_CASE(VK_ERROR_INITIALIZATION_FAILED)
    VKQ_CASE(VK_ERROR_DEVICE_LOST)
    VKQ_CASE(VK_ERROR_MEMORY_MAP_FAILED)
    VKQ_CASE(VK_ERROR_LAYER_NOT_PRESENT)
    VKQ_CASE(VK_ERROR_EXTENSION_NOT_PRESENT)
    VKQ_CASE(VK_ERROR_FEATURE_NOT_PRESENT)
    VKQ_CASE(VK_ERROR_INCOMPATIBLE_DRIVER)
    VKQ_CASE(VK_ERROR_TOO_MANY_OBJECTS)
    VKQ_CASE(VK_ERROR_FORMAT_NOT_SUPPORTED)
    VKQ_CASE(VK_ERROR_FRAGMENTED_POOL)
    VKQ_CASE(VK_ERROR_UNKNOWN)
    VKQ_CASE(VK_ERROR_OUT_OF_POOL_MEMORY)
    VKQ_CASE(VK_ERROR_INVALID_EXTERNAL_HANDLE)
    VKQ_CASE(VK_ERROR_FRAGMENTATION)
    VKQ_CASE(VK_ERROR_INVALID_OPAQUE_CAPTURE_ADDRESS)
#undef VKQ_CASE
    default:
      return "VK_RESULT_UNKNOWN";
  }
}

void throw_vulkan_error(VkResult r, const char* call) {
  switch (r) {
    case VK_ERROR_OUT_OF_HOST_MEMORY:
    case VK_ERROR_OUT_OF_DEVICE_MEMORY:
    case VK_ERROR_OUT_OF_POOL_MEMORY:
    case VK_ERROR_FRAGMENTED_POOL:
    case VK_ERROR_FRAGMENTATION:
    case VK_ERROR_TOO_MANY_OBJECTS:
      throw OutOfMemoryError(call, r);
    case VK_ERROR_DEVICE_LOST:
      throw DeviceLostError(call, r);
    case VK_TIMEOUT:
    case VK_NOT_READY:
      throw TimeoutError(call, r);
    default:
      throw VulkanError(call, r);
  }
}

}  // namespace vkq
