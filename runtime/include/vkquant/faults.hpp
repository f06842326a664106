// Fault injection at the runtime's own Vulkan dispatch table, for tests of the
// error paths. Every Device routes its allocations, submits and fence waits
// through hooks; disarmed, a hook costs one relaxed atomic load plus a lookup
// of the device's real entry point among a few slots. Armed, the n-th matching
// call returns the chosen VkResult instead of running, so the runtime's own
// error handling (typed errors, cleanup, recovery) is what gets exercised.
//
// Injected VK_ERROR_DEVICE_LOST is sticky for that device, as a real loss is:
// later submits and waits on it return VK_ERROR_DEVICE_LOST too. A lost or
// timed-out fence wait still waits for the real work first, so nothing the GPU
// uses is freed under it. Arming is process-wide; use it from one thread.
#pragma once

#include <volk.h>

#include <cstdint>

namespace vkq::faults {

// Calls that can be made to fail (a bit mask).
enum Call : std::uint32_t {
  allocate_memory = 1u << 0,           // vkAllocateMemory
  create_buffer = 1u << 1,             // vkCreateBuffer
  create_descriptor_pool = 1u << 2,    // vkCreateDescriptorPool
  allocate_descriptor_sets = 1u << 3,  // vkAllocateDescriptorSets
  create_command_pool = 1u << 4,       // vkCreateCommandPool
  allocate_command_buffers = 1u << 5,  // vkAllocateCommandBuffers
  create_fence = 1u << 6,              // vkCreateFence
  create_pipeline = 1u << 7,           // vkCreateShaderModule, vkCreate{DescriptorSet,Pipeline}Layout, vkCreateComputePipelines
  queue_submit = 1u << 8,              // vkQueueSubmit
  wait_for_fences = 1u << 9,           // vkWaitForFences
};

// Every call that allocates memory or a Vulkan object while recording or
// running work (not pipeline builds, which happen once per kernel).
inline constexpr std::uint32_t allocations = allocate_memory | create_buffer | create_descriptor_pool |
                                             allocate_descriptor_sets | create_command_pool |
                                             allocate_command_buffers | create_fence;

// From now on, the `nth` (1-based) call among `calls` returns `result`
// instead of running; the calls before and after it run normally. Resets the
// counters below.
void arm(std::uint32_t calls, std::uint64_t nth, VkResult result) noexcept;
// Stops injecting (devices already marked lost stay lost).
void disarm() noexcept;
// Matching calls seen since arm(), and how many of them were made to fail.
std::uint64_t seen() noexcept;
std::uint64_t fired() noexcept;
// Name of the Vulkan call that last failed by injection, or "" (static storage).
const char* last_call() noexcept;

// Arms in the constructor, disarms in the destructor.
class Scope {
 public:
  Scope(std::uint32_t calls, std::uint64_t nth, VkResult result) noexcept { arm(calls, nth, result); }
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;
  ~Scope() { disarm(); }
};

namespace detail {
// Routes `table`'s hookable entries through the injector (Device::create).
// Leaves the table untouched when every slot is taken.
void install(VolkDeviceTable& table, VkDevice device, VkQueue queue) noexcept;
// Forgets `device` (Device::destroy, after vkDestroyDevice).
void uninstall(VkDevice device) noexcept;
}  // namespace detail

}  // namespace vkq::faults
