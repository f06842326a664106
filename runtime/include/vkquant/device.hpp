// A logical device with one compute queue, its own volk function table, and a
// cache of compute kernels built from the embedded SPIR-V.
#pragma once

#include <volk.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "vkquant/instance.hpp"

namespace vkq {

class Kernel;
struct KernelDesc;

struct DeviceOptions {
  // How long a fence wait may take before TimeoutError. Defaults to the
  // environment variable VKQ_FENCE_TIMEOUT_MS, else 300 s (lavapipe is slow).
  std::chrono::milliseconds fence_timeout{0};
};

class Device {
 public:
  // Opens device `index` of `instance` (-1: the instance's default choice).
  // The instance must outlive the device.
  static Device create(const Instance& instance, int index = -1, const DeviceOptions& options = {});

  Device(Device&&) noexcept;
  Device& operator=(Device&&) noexcept;
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;
  ~Device();

  VkDevice handle() const { return device_; }
  const VolkDeviceTable& vk() const { return table_; }
  const DeviceInfo& info() const { return info_; }
  const Instance& instance() const { return *instance_; }
  VkQueue queue() const { return queue_; }
  std::uint32_t queue_family() const { return std::uint32_t(info_.compute_queue_family); }
  std::chrono::milliseconds fence_timeout() const { return fence_timeout_; }

  // Memory type index with all `required` flags (and as many `preferred` as
  // possible) among `type_bits`; -1 if none.
  int find_memory_type(std::uint32_t type_bits, VkMemoryPropertyFlags required,
                       VkMemoryPropertyFlags preferred = 0) const;
  const VkPhysicalDeviceMemoryProperties& memory_properties() const { return memory_; }

  // The compute kernel for `desc`, built on first use and cached.
  const Kernel& kernel(const KernelDesc& desc);

  // Largest byte range one storage-buffer binding may cover here, rounded
  // down to the offset alignment so consecutive chunks stay aligned.
  std::uint64_t binding_chunk_bytes() const;

 private:
  Device() = default;
  void destroy() noexcept;

  const Instance* instance_ = nullptr;
  DeviceInfo info_;
  VkDevice device_ = VK_NULL_HANDLE;
  VolkDeviceTable table_{};
  VkQueue queue_ = VK_NULL_HANDLE;
  VkPhysicalDeviceMemoryProperties memory_{};
  std::chrono::milliseconds fence_timeout_{300000};
  std::map<std::string, std::unique_ptr<Kernel>> kernels_;
};

}  // namespace vkq
