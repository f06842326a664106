#include "vkquant/error.hpp"

#include <string>

namespace vkq {

namespace {
std::string describe(const char* call, VkResult result) {
  return std::string(call) + " failed: " + result_name(result) + " (" + std::to_string(int(result)) + ")";
}
}  // namespace

std::string escape_bytes(std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(s.size());
  auto escape = [&](unsigned char c) {
    out += "\\x";
    out += hex[c >> 4];
    out += hex[c & 15];
  };
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f) {
      escape(c);
      ++i;
      continue;
    }
    if (c < 0x80) {
      out += char(c);
      ++i;
      continue;
    }
    // A UTF-8 sequence: its length from the lead byte, then continuation
    // bytes, no overlong forms, no surrogates, nothing past U+10FFFF.
    const std::size_t len = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    bool ok = len > 0 && i + len <= s.size();
    for (std::size_t k = 1; ok && k < len; ++k) ok = (static_cast<unsigned char>(s[i + k]) & 0xc0) == 0x80;
    if (ok && len >= 3) {
      const auto c1 = static_cast<unsigned char>(s[i + 1]);
      if (c == 0xe0) ok = c1 >= 0xa0;       // overlong
      else if (c == 0xed) ok = c1 < 0xa0;   // surrogates
      else if (c == 0xf0) ok = c1 >= 0x90;  // overlong
      else if (c == 0xf4) ok = c1 < 0x90;   // past U+10FFFF
    }
    if (!ok) {
      escape(c);
      ++i;
      continue;
    }
    out.append(s.substr(i, len));
    i += len;
  }
  return out;
}

VulkanError::VulkanError(const char* call, VkResult result, const std::string& detail)
    : Error(describe(call, result) + (detail.empty() ? "" : ": " + detail)), call_(call), result_(result) {}

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

void throw_vulkan_error(VkResult r, const char* call, const std::string& detail) {
  switch (r) {
    case VK_ERROR_OUT_OF_HOST_MEMORY:
    case VK_ERROR_OUT_OF_DEVICE_MEMORY:
    case VK_ERROR_OUT_OF_POOL_MEMORY:
    case VK_ERROR_FRAGMENTED_POOL:
    case VK_ERROR_FRAGMENTATION:
    case VK_ERROR_TOO_MANY_OBJECTS:
      throw OutOfMemoryError(call, r, detail);
    case VK_ERROR_DEVICE_LOST:
      throw DeviceLostError(call, r, detail);
    case VK_TIMEOUT:
    case VK_NOT_READY:
      throw TimeoutError(call, r, detail);
    default:
      throw VulkanError(call, r, detail);
  }
}

}  // namespace vkq
