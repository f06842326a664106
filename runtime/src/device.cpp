#include "vkquant/device.hpp"

#include <bit>
#include <charconv>
#include <string_view>
#include <utility>
#include <cstdlib>
#include <string>

#include "vkquant/error.hpp"
#include "vkquant/faults.hpp"
#include "vkquant/kernel.hpp"

namespace vkq {

std::chrono::milliseconds fence_timeout_from_env() {
  const char* env = std::getenv("VKQ_FENCE_TIMEOUT_MS");
  if (!env) return std::chrono::milliseconds(0);
  constexpr std::uint64_t kMax = 86400000;  // a day
  const std::string_view s(env);
  std::uint64_t ms = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), ms);
  if (s.empty() || s.front() == '+' || ec != std::errc() || end != s.data() + s.size() || ms < 1 || ms > kMax)
    throw UsageError("VKQ_FENCE_TIMEOUT_MS=" + std::string(s) +
                     ": expected a whole number of milliseconds from 1 to " + std::to_string(kMax));
  return std::chrono::milliseconds(ms);
}

Device Device::create(const Instance& instance, int index, const DeviceOptions& options) {
  const auto& devices = instance.devices();
  if (index < 0) index = int(instance.default_device());
  if (std::size_t(index) >= devices.size())
    throw NoDeviceError("device " + std::to_string(index) + " does not exist (" + std::to_string(devices.size()) +
                        " Vulkan device(s) found; see `vkquant devices`)");
  const DeviceInfo& info = devices[std::size_t(index)];
  if (!info.usable())
    throw NoDeviceError("device " + std::to_string(index) + " (" + info.name +
                        ") is not usable: vkquant needs Vulkan 1.2 and a compute queue");

  Device dev;
  dev.instance_ = &instance;
  dev.info_ = info;
  if (options.fence_timeout.count() > 0)
    dev.fence_timeout_ = options.fence_timeout;
  else if (const auto env = fence_timeout_from_env(); env.count() > 0)
    dev.fence_timeout_ = env;
  if (options.drain_timeout.count() > 0) dev.drain_timeout_ = options.drain_timeout;
  dev.attention_group_heads_ = options.attention_group_heads;

  // Enable the optional features the kernels can use, where present.
  const std::uint32_t api = std::min(info.api_version, instance.api_version());
  VkPhysicalDeviceVulkan11Features f11{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES};
  VkPhysicalDeviceVulkan12Features f12{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES};
  VkPhysicalDeviceVulkan13Features f13{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_3_FEATURES};
  VkPhysicalDeviceFeatures2 have{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
  have.pNext = &f11;
  f11.pNext = &f12;
  if (api >= VK_API_VERSION_1_3) f12.pNext = &f13;
  vkGetPhysicalDeviceFeatures2(info.physical, &have);

  VkPhysicalDeviceVulkan11Features e11{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES};
  VkPhysicalDeviceVulkan12Features e12{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES};
  VkPhysicalDeviceVulkan13Features e13{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_3_FEATURES};
  VkPhysicalDeviceFeatures2 want{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
  want.features.shaderInt64 = have.features.shaderInt64;
  want.features.shaderInt16 = have.features.shaderInt16;
  e11.storageBuffer16BitAccess = f11.storageBuffer16BitAccess;
  e12.shaderFloat16 = f12.shaderFloat16;
  e12.shaderInt8 = f12.shaderInt8;
  e12.storageBuffer8BitAccess = f12.storageBuffer8BitAccess;
  e12.hostQueryReset = f12.hostQueryReset;
  e13.subgroupSizeControl = f13.subgroupSizeControl;
  e13.computeFullSubgroups = f13.computeFullSubgroups;
  e13.shaderIntegerDotProduct = f13.shaderIntegerDotProduct;
  want.pNext = &e11;
  e11.pNext = &e12;
  if (api >= VK_API_VERSION_1_3) e12.pNext = &e13;

  const float priority = 1.0f;
  VkDeviceQueueCreateInfo qci{VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO};
  qci.queueFamilyIndex = std::uint32_t(info.compute_queue_family);
  qci.queueCount = 1;
  qci.pQueuePriorities = &priority;
  VkDeviceCreateInfo dci{VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO};
  dci.pNext = &want;
  dci.queueCreateInfoCount = 1;
  dci.pQueueCreateInfos = &qci;
  check(vkCreateDevice(info.physical, &dci, nullptr, &dev.device_), "vkCreateDevice");
  volkLoadDeviceTable(&dev.table_, dev.device_);
  dev.table_.vkGetDeviceQueue(dev.device_, qci.queueFamilyIndex, 0, &dev.queue_);
  faults::detail::install(dev.table_, dev.device_, dev.queue_);
  vkGetPhysicalDeviceMemoryProperties(info.physical, &dev.memory_);
  return dev;
}

Device::Device(Device&& o) noexcept { *this = std::move(o); }

Device& Device::operator=(Device&& o) noexcept {
  if (this != &o) {
    destroy();
    // Kernels hold a reference to their Device: release them with `o`'s
    // handle; this device builds them again on use.
    o.kernels_.clear();
    instance_ = o.instance_;
    info_ = std::move(o.info_);
    device_ = std::exchange(o.device_, VK_NULL_HANDLE);
    table_ = o.table_;
    queue_ = o.queue_;
    memory_ = o.memory_;
    fence_timeout_ = o.fence_timeout_;
    drain_timeout_ = o.drain_timeout_;
    attention_group_heads_ = o.attention_group_heads_;
    abandoned_ = std::exchange(o.abandoned_, false);
  }
  return *this;
}

Device::~Device() { destroy(); }

void Device::abandon() noexcept {
  abandoned_ = true;
  if (instance_) instance_->keep_for_abandoned_device();
}

void Device::destroy() noexcept {
  kernels_.clear();  // pipelines before the device (kept, not destroyed, when abandoned)
  if (device_ && abandoned_) {
    // Late work may still run on the queue: keep the device (and the
    // instance, see abandon()) until the process ends.
    faults::detail::uninstall(device_);
  } else if (device_) {
    table_.vkDeviceWaitIdle(device_);
    table_.vkDestroyDevice(device_, nullptr);
    faults::detail::uninstall(device_);
  }
  device_ = VK_NULL_HANDLE;
}

int Device::find_memory_type(std::uint32_t type_bits, VkMemoryPropertyFlags required,
                             VkMemoryPropertyFlags preferred) const {
  int best = -1, best_score = -1;
  for (std::uint32_t i = 0; i < memory_.memoryTypeCount; ++i) {
    if (!(type_bits & (1u << i))) continue;
    const VkMemoryPropertyFlags f = memory_.memoryTypes[i].propertyFlags;
    if ((f & required) != required) continue;
    const int score = std::popcount(std::uint32_t(f & preferred));
    if (score > best_score) {
      best = int(i);
      best_score = score;
    }
  }
  return best;
}

const Kernel& Device::kernel(const KernelDesc& desc) {
  const std::string key = desc.key();
  auto it = kernels_.find(key);
  if (it == kernels_.end()) it = kernels_.emplace(key, std::make_unique<Kernel>(*this, desc)).first;
  return *it->second;
}

std::uint64_t Device::binding_chunk_bytes() const {
  const std::uint64_t align = std::max<std::uint64_t>(info_.min_storage_buffer_offset_alignment, 16);
  return info_.max_storage_buffer_range / align * align;
}

}  // namespace vkq
