#include "vkquant/faults.hpp"

#include <atomic>

namespace vkq::faults {

namespace {

// ---------------------------------------------------------------------------
// What is armed
// ---------------------------------------------------------------------------

struct Armed {
  std::atomic<bool> on{false};
  std::atomic<std::uint32_t> calls{0};
  std::atomic<std::uint64_t> nth{0}, seen{0}, fired{0};
  std::atomic<int> result{VK_SUCCESS};
  std::atomic<const char*> last{""};
};
Armed g_armed;

// The result to return instead of running `name`, or VK_SUCCESS to run it.
VkResult inject(Call call, const char* name) noexcept {
  if (!g_armed.on.load(std::memory_order_acquire)) [[likely]]
    return VK_SUCCESS;
  if (!(g_armed.calls.load() & call)) return VK_SUCCESS;
  if (g_armed.seen.fetch_add(1) + 1 != g_armed.nth.load()) return VK_SUCCESS;
  g_armed.fired.fetch_add(1);
  g_armed.last.store(name);
  return VkResult(g_armed.result.load());
}

// ---------------------------------------------------------------------------
// The real entry points of each hooked device
// ---------------------------------------------------------------------------

// A slot is claimed (taken), filled, then published (device set); hooks only
// read published slots, whose contents do not change until uninstall.
struct Slot {
  std::atomic<bool> taken{false};
  std::atomic<VkDevice> device{VK_NULL_HANDLE};
  VkQueue queue = VK_NULL_HANDLE;
  VolkDeviceTable real{};
  std::atomic<bool> lost{false};
};
constexpr int kSlots = 16;
Slot g_slots[kSlots];

Slot& slot(VkDevice d) noexcept {
  for (Slot& s : g_slots)
    if (s.device.load(std::memory_order_acquire) == d) return s;
  // Hooks are installed only together with a slot, so this cannot happen
  // short of calling a destroyed device.
  __builtin_trap();
}

Slot& slot(VkQueue q) noexcept {
  for (Slot& s : g_slots)
    if (s.device.load(std::memory_order_acquire) != VK_NULL_HANDLE && s.queue == q) return s;
  __builtin_trap();
}

// ---------------------------------------------------------------------------
// Hooks
// ---------------------------------------------------------------------------

#define VKQ_ALLOC_HOOK(fn, call, Handle, Info)                                                                    \
  VKAPI_ATTR VkResult VKAPI_CALL hook_##fn(VkDevice d, const Info* info, const VkAllocationCallbacks* a,          \
                                           Handle* out) {                                                        \
    if (VkResult r = inject(call, #fn); r != VK_SUCCESS) return r;                                               \
    return slot(d).real.fn(d, info, a, out);                                                                     \
  }

VKQ_ALLOC_HOOK(vkAllocateMemory, allocate_memory, VkDeviceMemory, VkMemoryAllocateInfo)
VKQ_ALLOC_HOOK(vkCreateBuffer, create_buffer, VkBuffer, VkBufferCreateInfo)
VKQ_ALLOC_HOOK(vkCreateDescriptorPool, create_descriptor_pool, VkDescriptorPool, VkDescriptorPoolCreateInfo)
VKQ_ALLOC_HOOK(vkCreateCommandPool, create_command_pool, VkCommandPool, VkCommandPoolCreateInfo)
VKQ_ALLOC_HOOK(vkCreateFence, create_fence, VkFence, VkFenceCreateInfo)
VKQ_ALLOC_HOOK(vkCreateShaderModule, create_pipeline, VkShaderModule, VkShaderModuleCreateInfo)
VKQ_ALLOC_HOOK(vkCreateDescriptorSetLayout, create_pipeline, VkDescriptorSetLayout, VkDescriptorSetLayoutCreateInfo)
VKQ_ALLOC_HOOK(vkCreatePipelineLayout, create_pipeline, VkPipelineLayout, VkPipelineLayoutCreateInfo)
#undef VKQ_ALLOC_HOOK

VKAPI_ATTR VkResult VKAPI_CALL hook_vkAllocateDescriptorSets(VkDevice d, const VkDescriptorSetAllocateInfo* info,
                                                             VkDescriptorSet* sets) {
  if (VkResult r = inject(allocate_descriptor_sets, "vkAllocateDescriptorSets"); r != VK_SUCCESS) return r;
  return slot(d).real.vkAllocateDescriptorSets(d, info, sets);
}

VKAPI_ATTR VkResult VKAPI_CALL hook_vkAllocateCommandBuffers(VkDevice d, const VkCommandBufferAllocateInfo* info,
                                                             VkCommandBuffer* cmds) {
  if (VkResult r = inject(allocate_command_buffers, "vkAllocateCommandBuffers"); r != VK_SUCCESS) return r;
  return slot(d).real.vkAllocateCommandBuffers(d, info, cmds);
}

VKAPI_ATTR VkResult VKAPI_CALL hook_vkCreateComputePipelines(VkDevice d, VkPipelineCache cache, std::uint32_t n,
                                                             const VkComputePipelineCreateInfo* infos,
                                                             const VkAllocationCallbacks* a, VkPipeline* out) {
  if (VkResult r = inject(create_pipeline, "vkCreateComputePipelines"); r != VK_SUCCESS) {
    for (std::uint32_t i = 0; i < n; ++i) out[i] = VK_NULL_HANDLE;  // as a failing driver must
    return r;
  }
  return slot(d).real.vkCreateComputePipelines(d, cache, n, infos, a, out);
}

VKAPI_ATTR VkResult VKAPI_CALL hook_vkQueueSubmit(VkQueue q, std::uint32_t n, const VkSubmitInfo* submits,
                                                  VkFence fence) {
  Slot& s = slot(q);
  const VkResult r = inject(queue_submit, "vkQueueSubmit");
  if (r == VK_ERROR_DEVICE_LOST) s.lost.store(true);
  if (s.lost.load()) return VK_ERROR_DEVICE_LOST;
  if (r != VK_SUCCESS) return r;
  return s.real.vkQueueSubmit(q, n, submits, fence);
}

VKAPI_ATTR VkResult VKAPI_CALL hook_vkWaitForFences(VkDevice d, std::uint32_t n, const VkFence* fences,
                                                    VkBool32 all, std::uint64_t timeout) {
  Slot& s = slot(d);
  const VkResult r = inject(wait_for_fences, "vkWaitForFences");
  // A timeout says the work is still running: return before it finishes.
  if (r == VK_TIMEOUT || r == VK_NOT_READY) return r;
  if (r == VK_ERROR_DEVICE_LOST) s.lost.store(true);
  // Other faults still let the real work finish, so the caller may free it.
  const VkResult real = s.real.vkWaitForFences(d, n, fences, all, timeout);
  if (s.lost.load()) return VK_ERROR_DEVICE_LOST;
  return r != VK_SUCCESS ? r : real;
}

VKAPI_ATTR VkResult VKAPI_CALL hook_vkDeviceWaitIdle(VkDevice d) {
  Slot& s = slot(d);
  const VkResult real = s.real.vkDeviceWaitIdle(d);
  return s.lost.load() ? VK_ERROR_DEVICE_LOST : real;
}

}  // namespace

// ---------------------------------------------------------------------------
// Public
// ---------------------------------------------------------------------------

void arm(std::uint32_t calls, std::uint64_t nth, VkResult result) noexcept {
  g_armed.on.store(false);
  g_armed.calls.store(calls);
  g_armed.nth.store(nth);
  g_armed.seen.store(0);
  g_armed.fired.store(0);
  g_armed.result.store(int(result));
  g_armed.last.store("");
  g_armed.on.store(true, std::memory_order_release);
}

void disarm() noexcept { g_armed.on.store(false); }
std::uint64_t seen() noexcept { return g_armed.seen.load(); }
std::uint64_t fired() noexcept { return g_armed.fired.load(); }
const char* last_call() noexcept { return g_armed.last.load(); }

namespace detail {

void install(VolkDeviceTable& table, VkDevice device, VkQueue queue) noexcept {
  for (Slot& s : g_slots) {
    bool expected = false;
    if (!s.taken.compare_exchange_strong(expected, true)) continue;
    s.real = table;
    s.queue = queue;
    s.lost.store(false);
    s.device.store(device, std::memory_order_release);
    table.vkAllocateMemory = hook_vkAllocateMemory;
    table.vkCreateBuffer = hook_vkCreateBuffer;
    table.vkCreateDescriptorPool = hook_vkCreateDescriptorPool;
    table.vkAllocateDescriptorSets = hook_vkAllocateDescriptorSets;
    table.vkCreateCommandPool = hook_vkCreateCommandPool;
    table.vkAllocateCommandBuffers = hook_vkAllocateCommandBuffers;
    table.vkCreateFence = hook_vkCreateFence;
    table.vkCreateShaderModule = hook_vkCreateShaderModule;
    table.vkCreateDescriptorSetLayout = hook_vkCreateDescriptorSetLayout;
    table.vkCreatePipelineLayout = hook_vkCreatePipelineLayout;
    table.vkCreateComputePipelines = hook_vkCreateComputePipelines;
    table.vkQueueSubmit = hook_vkQueueSubmit;
    table.vkWaitForFences = hook_vkWaitForFences;
    table.vkDeviceWaitIdle = hook_vkDeviceWaitIdle;
    return;
  }
}

void uninstall(VkDevice device) noexcept {
  for (Slot& s : g_slots) {
    if (s.device.load() != device) continue;
    s.device.store(VK_NULL_HANDLE);
    s.queue = VK_NULL_HANDLE;
    s.taken.store(false);
    return;
  }
}

}  // namespace detail

}  // namespace vkq::faults
