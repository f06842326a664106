// The Vulkan instance (through volk), the optional validation messenger, and
// a description of every physical device of every vendor and type.
#pragma once

#include <volk.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace vkq {

// What a device is and what it can do; filled once at instance creation.
struct DeviceInfo {
  std::uint32_t index = 0;  // position in vkEnumeratePhysicalDevices
  VkPhysicalDevice physical = VK_NULL_HANDLE;
  std::string name;
  std::uint32_t vendor_id = 0, device_id = 0;
  std::string vendor;      // "NVIDIA", "AMD", "Intel", "Mesa", ...
  VkPhysicalDeviceType type = VK_PHYSICAL_DEVICE_TYPE_OTHER;
  std::string driver_name, driver_info;
  std::uint32_t driver_version = 0;  // raw, vendor-encoded
  std::uint32_t api_version = 0;
  // subgroups
  std::uint32_t subgroup_size = 0, min_subgroup_size = 0, max_subgroup_size = 0;
  VkSubgroupFeatureFlags subgroup_ops = 0;
  VkShaderStageFlags subgroup_stages = 0;
  bool subgroup_size_control = false;
  // limits
  std::uint64_t max_storage_buffer_range = 0;
  std::uint64_t min_storage_buffer_offset_alignment = 0;
  std::uint64_t max_memory_allocation_size = 0;
  std::uint64_t max_buffer_size = 0;  // 0 where the device does not say (pre-1.3)
  std::uint32_t max_shared_memory = 0;
  std::uint32_t max_workgroup_count[3] = {0, 0, 0};
  std::uint32_t max_workgroup_size[3] = {0, 0, 0};
  std::uint32_t max_workgroup_invocations = 0;
  std::uint32_t max_push_constants = 0;
  float timestamp_period_ns = 0.f;
  std::uint32_t timestamp_valid_bits = 0;  // on the chosen compute queue family
  std::uint64_t device_local_bytes = 0;
  // features
  bool fp16 = false, int8 = false, int16 = false, int64 = false;
  bool storage16 = false, storage8 = false;
  bool integer_dot_product = false;
  bool cooperative_matrix = false;
  bool has_compute_queue = false;
  std::int32_t compute_queue_family = -1;

  bool usable() const { return has_compute_queue && api_version >= VK_API_VERSION_1_2; }
  std::string type_name() const;
  std::string api_version_string() const;
  std::string driver_version_string() const;
  std::vector<std::string> subgroup_op_names() const;
};

struct InstanceOptions {
  // Enable VK_LAYER_KHRONOS_validation and count its messages. Defaults to
  // the environment variable VKQ_VALIDATION (1/on/true).
  bool validation = false;
  // Fail instead of running without validation when the layer is missing.
  bool require_validation = false;
  // Also turn on synchronization validation.
  bool sync_validation = false;
  std::string app_name = "vkquant";

  static InstanceOptions from_env();
};

class Instance {
 public:
  // Loads Vulkan, creates the instance and enumerates devices. Throws
  // NoDeviceError if there is no loader or driver.
  static Instance create(const InstanceOptions& options = InstanceOptions::from_env());

  Instance(Instance&&) noexcept;
  Instance& operator=(Instance&&) noexcept;
  Instance(const Instance&) = delete;
  Instance& operator=(const Instance&) = delete;
  ~Instance();

  VkInstance handle() const { return instance_; }
  std::uint32_t api_version() const { return api_version_; }
  const std::vector<DeviceInfo>& devices() const { return devices_; }

  // Index of the default device: discrete > integrated > virtual > CPU;
  // throws NoDeviceError when none is usable.
  std::uint32_t default_device() const;

  bool validation_enabled() const { return messenger_ != VK_NULL_HANDLE; }
  // Counts of validation messages since creation (or the last reset).
  std::uint32_t validation_errors() const;
  std::uint32_t validation_warnings() const;
  std::vector<std::string> validation_messages() const;  // errors, first 32
  void reset_validation_counts();

  // A device of this instance was abandoned (Device::abandon): its queue may
  // still run work, so the instance must outlive the process and is never
  // destroyed.
  void keep_for_abandoned_device() const noexcept { keep_ = true; }

 struct Messages;  // validation message counters (opaque)

 private:
  Instance() = default;
  void destroy() noexcept;

  VkInstance instance_ = VK_NULL_HANDLE;
  VkDebugUtilsMessengerEXT messenger_ = VK_NULL_HANDLE;
  std::unique_ptr<Messages> messages_;
  std::uint32_t api_version_ = 0;
  std::vector<DeviceInfo> devices_;
  mutable bool keep_ = false;  // see keep_for_abandoned_device()
};

}  // namespace vkq
