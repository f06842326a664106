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
  // environment variable VKQ_FENCE_TIMEOUT_MS (a whole number of
  // milliseconds, 1 to 86400000; anything else is a UsageError), else 300 s
  // (lavapipe is slow).
  std::chrono::milliseconds fence_timeout{0};
  // After a timeout, how long to wait more for the late work before the
  // device is abandoned (0: 10 s). Nothing the work uses is freed before it
  // finishes.
  std::chrono::milliseconds drain_timeout{0};
  // Query heads of one GQA group that an attention softmax·V invocation
  // owns at most, sharing each key and value row it loads (0: the device's
  // choice: a group, in chunks that fit the registers, on CPUs; one head on
  // GPUs). 1 gives a CPU the GPU layout (the tests run it on lavapipe).
  std::uint32_t attention_group_heads = 0;
};

// The fence timeout VKQ_FENCE_TIMEOUT_MS asks for (0 ms when it is unset);
// throws UsageError naming the variable and the value when it is not a whole
// number of milliseconds from 1 to 86400000.
std::chrono::milliseconds fence_timeout_from_env();

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
  std::chrono::milliseconds drain_timeout() const { return drain_timeout_; }
  std::uint32_t attention_group_heads() const { return attention_group_heads_; }  // DeviceOptions

  // Work submitted to the queue timed out and did not finish within the
  // drain timeout either: it may still be running and using this device's
  // buffers, pipelines and descriptor sets. From then on nothing of the
  // device is destroyed (its objects and the instance are kept until the
  // process ends: a leak, never a use-after-free under the GPU) and every
  // submit fails with DeviceLostError.
  void abandon() noexcept;
  bool abandoned() const { return abandoned_; }

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
  std::chrono::milliseconds drain_timeout_{10000};
  std::uint32_t attention_group_heads_ = 0;
  bool abandoned_ = false;
  std::map<std::string, std::unique_ptr<Kernel>> kernels_;
};

}  // namespace vkq
