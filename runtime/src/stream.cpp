#include "vkquant/stream.hpp"

#include <algorithm>
#include <chrono>
#include <utility>
#include <string>

#include "vkquant/device.hpp"

namespace vkq {

namespace {
constexpr std::uint32_t kSetsPerPool = 1024;
constexpr std::uint32_t kMaxBindings = 16;

void memory_barrier(const VolkDeviceTable& vk, VkCommandBuffer cmd, VkPipelineStageFlags dst_stage,
                    VkAccessFlags dst_access) {
  VkMemoryBarrier mb{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
  mb.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
  mb.dstAccessMask = dst_access;
  vk.vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT, dst_stage, 0, 1,
                          &mb, 0, nullptr, 0, nullptr);
}
}  // namespace

// ---------------------------------------------------------------------------
// Stream
// ---------------------------------------------------------------------------

Stream Stream::create(Device& device) {
  Stream s;
  s.device_ = &device;
  const auto& vk = device.vk();
  VkCommandPoolCreateInfo cpci{VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO};
  cpci.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT;
  cpci.queueFamilyIndex = device.queue_family();
  check(vk.vkCreateCommandPool(device.handle(), &cpci, nullptr, &s.pool_), "vkCreateCommandPool");
  VkCommandBufferAllocateInfo cbai{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
  cbai.commandPool = s.pool_;
  cbai.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
  cbai.commandBufferCount = 1;
  check(vk.vkAllocateCommandBuffers(device.handle(), &cbai, &s.cmd_), "vkAllocateCommandBuffers");
  VkFenceCreateInfo fci{VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
  check(vk.vkCreateFence(device.handle(), &fci, nullptr, &s.fence_), "vkCreateFence");
  return s;
}

Stream::Stream(Stream&& o) noexcept { *this = std::move(o); }

Stream& Stream::operator=(Stream&& o) noexcept {
  if (this != &o) {
    release();
    device_ = std::exchange(o.device_, nullptr);
    pool_ = std::exchange(o.pool_, VK_NULL_HANDLE);
    cmd_ = std::exchange(o.cmd_, VK_NULL_HANDLE);
    fence_ = std::exchange(o.fence_, VK_NULL_HANDLE);
    descriptor_pools_ = std::move(o.descriptor_pools_);
    current_pool_ = o.current_pool_;
    recording_ = std::exchange(o.recording_, false);
    in_flight_ = std::exchange(o.in_flight_, false);
    needs_barrier_ = o.needs_barrier_;
    dispatches_ = o.dispatches_;
  }
  return *this;
}

Stream::~Stream() { release(); }

void Stream::release() noexcept {
  if (!device_) return;
  const auto& vk = device_->vk();
  VkDevice dev = device_->handle();
  // Work still in flight (retire() gave up on it and abandoned the device):
  // keep the command buffer and descriptor sets it uses.
  if (in_flight_ || device_->abandoned()) {
    device_ = nullptr;
    return;
  }
  for (auto p : descriptor_pools_) vk.vkDestroyDescriptorPool(dev, p, nullptr);
  descriptor_pools_.clear();
  if (fence_) vk.vkDestroyFence(dev, fence_, nullptr);
  if (pool_) vk.vkDestroyCommandPool(dev, pool_, nullptr);  // frees cmd_
  fence_ = VK_NULL_HANDLE;
  pool_ = VK_NULL_HANDLE;
  cmd_ = VK_NULL_HANDLE;
  device_ = nullptr;
}

void Stream::begin_if_needed() {
  if (recording_) return;
  retire();  // the command buffer and descriptor sets may still be in use after a timeout
  VkCommandBufferBeginInfo bi{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
  bi.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
  check(device_->vk().vkBeginCommandBuffer(cmd_, &bi), "vkBeginCommandBuffer");
  recording_ = true;
  needs_barrier_ = false;
  dispatches_ = 0;
}

VkDescriptorSet Stream::allocate_set(VkDescriptorSetLayout layout) {
  const auto& vk = device_->vk();
  VkDevice dev = device_->handle();
  for (;;) {
    if (current_pool_ == descriptor_pools_.size()) {
      VkDescriptorPoolSize size{VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, kSetsPerPool * kMaxBindings};
      VkDescriptorPoolCreateInfo dpci{VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO};
      dpci.maxSets = kSetsPerPool;
      dpci.poolSizeCount = 1;
      dpci.pPoolSizes = &size;
      VkDescriptorPool p = VK_NULL_HANDLE;
      check(vk.vkCreateDescriptorPool(dev, &dpci, nullptr, &p), "vkCreateDescriptorPool");
      descriptor_pools_.push_back(p);
    }
    VkDescriptorSetAllocateInfo dsai{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO};
    dsai.descriptorPool = descriptor_pools_[current_pool_];
    dsai.descriptorSetCount = 1;
    dsai.pSetLayouts = &layout;
    VkDescriptorSet set = VK_NULL_HANDLE;
    VkResult r = vk.vkAllocateDescriptorSets(dev, &dsai, &set);
    if (r == VK_SUCCESS) return set;
    if (r != VK_ERROR_OUT_OF_POOL_MEMORY && r != VK_ERROR_FRAGMENTED_POOL) check(r, "vkAllocateDescriptorSets");
    ++current_pool_;  // this pool is full: move on to the next (or a new one)
  }
}

void Stream::dispatch(const Kernel& kernel, std::initializer_list<Binding> bindings, const void* push,
                      std::uint32_t push_bytes, Threads threads) {
  const KernelDesc& desc = kernel.desc();
  const DeviceInfo& info = device_->info();
  if (bindings.size() != kernel.bindings())
    throw Error("dispatch " + desc.shader + ": " + std::to_string(bindings.size()) + " bindings given, the shader has " +
                std::to_string(kernel.bindings()));
  if (push_bytes != kernel.push_bytes())
    throw Error("dispatch " + desc.shader + ": push constants of " + std::to_string(push_bytes) +
                " bytes given, the shader declares " + std::to_string(kernel.push_bytes()));
  if (bindings.size() > kMaxBindings) throw Error("dispatch " + desc.shader + ": too many bindings");

  VkDescriptorBufferInfo infos[kMaxBindings];
  VkWriteDescriptorSet writes[kMaxBindings];
  std::uint32_t i = 0;
  for (const Binding& b : bindings) {
    const std::uint64_t size = b.buffer->size();
    const std::uint64_t range = b.range ? b.range : (b.offset < size ? size - b.offset : 0);
    if (b.offset > size || range > size - b.offset || range == 0)
      throw Error("dispatch " + desc.shader + ": binding " + std::to_string(i) + " range is outside its buffer");
    if (range > info.max_storage_buffer_range)
      throw Error("dispatch " + desc.shader + ": binding " + std::to_string(i) + " covers " + std::to_string(range) +
                  " bytes, more than maxStorageBufferRange " + std::to_string(info.max_storage_buffer_range) +
                  " (bind it in chunks)");
    if (b.offset % std::max<std::uint64_t>(info.min_storage_buffer_offset_alignment, 1))
      throw Error("dispatch " + desc.shader + ": binding " + std::to_string(i) + " offset " +
                  std::to_string(b.offset) + " is not aligned to minStorageBufferOffsetAlignment");
    infos[i] = {b.buffer->handle(), b.offset, range};
    ++i;
  }
  std::uint64_t groups[3];
  for (int d = 0; d < 3; ++d) {
    const std::uint64_t t = d == 0 ? threads.x : d == 1 ? threads.y : threads.z;
    groups[d] = div_up(t, desc.local_size[d]);
    if (groups[d] == 0) return;  // nothing to do
  }

  begin_if_needed();
  const auto& vk = device_->vk();
  VkDescriptorSet set = allocate_set(kernel.set_layout());
  for (std::uint32_t k = 0; k < i; ++k) {
    writes[k] = {VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET};
    writes[k].dstSet = set;
    writes[k].dstBinding = k;
    writes[k].descriptorCount = 1;
    writes[k].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
    writes[k].pBufferInfo = &infos[k];
  }
  vk.vkUpdateDescriptorSets(device_->handle(), i, writes, 0, nullptr);

  if (needs_barrier_) memory_barrier(vk, cmd_, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
                                     VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT);
  vk.vkCmdBindPipeline(cmd_, VK_PIPELINE_BIND_POINT_COMPUTE, kernel.pipeline());
  vk.vkCmdBindDescriptorSets(cmd_, VK_PIPELINE_BIND_POINT_COMPUTE, kernel.layout(), 0, 1, &set, 0, nullptr);
  if (push_bytes) vk.vkCmdPushConstants(cmd_, kernel.layout(), VK_SHADER_STAGE_COMPUTE_BIT, 0, push_bytes, push);

  // Split each dimension into pieces of at most maxComputeWorkGroupCount
  // groups; gl_WorkGroupID keeps counting across pieces (vkCmdDispatchBase).
  const std::uint64_t mx = info.max_workgroup_count[0], my = info.max_workgroup_count[1],
                      mz = info.max_workgroup_count[2];
  for (std::uint64_t z = 0; z < groups[2]; z += mz)
    for (std::uint64_t y = 0; y < groups[1]; y += my)
      for (std::uint64_t x = 0; x < groups[0]; x += mx) {
        if (x > 0xffffffffull || y > 0xffffffffull || z > 0xffffffffull)
          throw Error("dispatch " + desc.shader + ": more than 2^32 workgroups");
        const std::uint32_t gx = std::uint32_t(std::min(mx, groups[0] - x)),
                            gy = std::uint32_t(std::min(my, groups[1] - y)),
                            gz = std::uint32_t(std::min(mz, groups[2] - z));
        // Plain vkCmdDispatch where no base is needed: synchronization
        // validation (layers <= 1.3.239 at least) does not track accesses
        // of vkCmdDispatchBase, so hazards there would go unreported.
        if (x == 0 && y == 0 && z == 0)
          vk.vkCmdDispatch(cmd_, gx, gy, gz);
        else
          vk.vkCmdDispatchBase(cmd_, std::uint32_t(x), std::uint32_t(y), std::uint32_t(z), gx, gy, gz);
        ++dispatches_;
      }
  needs_barrier_ = true;
}

void Stream::copy(const Buffer& src, Buffer& dst, std::uint64_t bytes, std::uint64_t src_offset,
                  std::uint64_t dst_offset) {
  if (src_offset > src.size() || bytes > src.size() - src_offset || dst_offset > dst.size() ||
      bytes > dst.size() - dst_offset)
    throw Error("Stream::copy: range outside a buffer");
  begin_if_needed();
  const auto& vk = device_->vk();
  if (needs_barrier_)
    memory_barrier(vk, cmd_, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT);
  VkBufferCopy region{src_offset, dst_offset, bytes};
  vk.vkCmdCopyBuffer(cmd_, src.handle(), dst.handle(), 1, &region);
  needs_barrier_ = true;
}

void Stream::fill(Buffer& dst, std::uint32_t pattern, std::uint64_t offset, std::uint64_t bytes) {
  if (offset > dst.size() || bytes > dst.size() - offset || offset % 4 || bytes % 4)
    throw Error("Stream::fill: range outside the buffer or not a multiple of 4");
  begin_if_needed();
  const auto& vk = device_->vk();
  if (needs_barrier_)
    memory_barrier(vk, cmd_, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT);
  vk.vkCmdFillBuffer(cmd_, dst.handle(), offset, bytes, pattern);
  needs_barrier_ = true;
}

void Stream::barrier() {
  begin_if_needed();
  VkMemoryBarrier mb{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
  mb.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
  mb.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_READ_BIT |
                     VK_ACCESS_TRANSFER_WRITE_BIT;
  const VkPipelineStageFlags stages = VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT;
  device_->vk().vkCmdPipelineBarrier(cmd_, stages, stages, 0, 1, &mb, 0, nullptr, 0, nullptr);
  needs_barrier_ = false;
}

void Stream::reset_queries(TimestampPool& pool) {
  begin_if_needed();
  device_->vk().vkCmdResetQueryPool(cmd_, pool.handle(), 0, pool.count());
}

void Stream::timestamp(TimestampPool& pool, std::uint32_t index) {
  if (index >= pool.count()) throw Error("Stream::timestamp: query index out of range");
  begin_if_needed();
  device_->vk().vkCmdWriteTimestamp(cmd_, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, pool.handle(), index);
}

void Stream::submit_and_wait() {
  if (!recording_) {
    retire();
    return;
  }
  const auto& vk = device_->vk();
  if (device_->abandoned()) {
    recycle();
    throw DeviceLostError("vkQueueSubmit", VK_ERROR_DEVICE_LOST, "the device was abandoned after a fence timeout");
  }
  // Make every write visible to the host, which reads mapped memory next.
  memory_barrier(vk, cmd_, VK_PIPELINE_STAGE_HOST_BIT, VK_ACCESS_HOST_READ_BIT);
  recording_ = false;
  const char* call = "vkEndCommandBuffer";
  VkResult r = vk.vkEndCommandBuffer(cmd_);
  if (r == VK_SUCCESS) {
    call = "vkQueueSubmit";
    VkSubmitInfo si{VK_STRUCTURE_TYPE_SUBMIT_INFO};
    si.commandBufferCount = 1;
    si.pCommandBuffers = &cmd_;
    r = vk.vkQueueSubmit(device_->queue(), 1, &si, fence_);
  }
  if (r != VK_SUCCESS) {
    recycle();  // nothing was submitted: drop the recording
    throw_vulkan_error(r, call);
  }
  in_flight_ = true;
  retire();
}

namespace {
std::uint64_t ns(std::chrono::milliseconds ms) { return std::uint64_t(ms.count()) * 1000000ull; }
}  // namespace

// Waits (bounded) for submitted work, then makes the stream ready to record.
// On a timeout the work is still running and uses buffers the caller is about
// to free while the TimeoutError unwinds: wait once more, bounded by the drain
// timeout, and if it still runs abandon the device (nothing of it is freed
// from then on) before throwing.
void Stream::retire() {
  if (!in_flight_) return;
  if (device_->abandoned())
    throw DeviceLostError("vkWaitForFences", VK_ERROR_DEVICE_LOST, "the device was abandoned after a fence timeout");
  const auto& vk = device_->vk();
  VkDevice dev = device_->handle();
  const auto timed_out = [&](const std::string& what) {
    throw_vulkan_error(VK_TIMEOUT, "vkWaitForFences",
                       "GPU work did not finish within the fence timeout of " +
                           std::to_string(device_->fence_timeout().count()) + " ms (VKQ_FENCE_TIMEOUT_MS); " + what);
  };
  VkResult r = vk.vkWaitForFences(dev, 1, &fence_, VK_TRUE, ns(device_->fence_timeout()));
  if (r == VK_TIMEOUT) {
    if (vk.vkWaitForFences(dev, 1, &fence_, VK_TRUE, ns(device_->drain_timeout())) != VK_SUCCESS) {
      device_->abandon();
      timed_out("it was still running " + std::to_string(device_->drain_timeout().count()) +
                      " ms later, so the device was abandoned");
    }
  } else if (r != VK_SUCCESS) {
    in_flight_ = false;  // device lost: nothing runs any more, so everything may be freed
    check(r, "vkWaitForFences");
  }
  in_flight_ = false;
  check(vk.vkResetFences(dev, 1, &fence_), "vkResetFences");
  recycle();
  if (r == VK_TIMEOUT) timed_out("it has finished since");
}

// Resets the command buffer and descriptor pools (none of it in flight).
void Stream::recycle() {
  const auto& vk = device_->vk();
  VkDevice dev = device_->handle();
  recording_ = false;
  check(vk.vkResetCommandBuffer(cmd_, 0), "vkResetCommandBuffer");
  for (auto p : descriptor_pools_) check(vk.vkResetDescriptorPool(dev, p, 0), "vkResetDescriptorPool");
  current_pool_ = 0;
}

// ---------------------------------------------------------------------------
// TimestampPool
// ---------------------------------------------------------------------------

TimestampPool TimestampPool::create(Device& device, std::uint32_t count) {
  if (device.info().timestamp_valid_bits == 0) throw Error("this device's compute queue has no timestamps");
  TimestampPool t;
  t.device_ = &device;
  t.count_ = count;
  VkQueryPoolCreateInfo qpci{VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO};
  qpci.queryType = VK_QUERY_TYPE_TIMESTAMP;
  qpci.queryCount = count;
  check(device.vk().vkCreateQueryPool(device.handle(), &qpci, nullptr, &t.pool_), "vkCreateQueryPool");
  return t;
}

TimestampPool::TimestampPool(TimestampPool&& o) noexcept { *this = std::move(o); }

TimestampPool& TimestampPool::operator=(TimestampPool&& o) noexcept {
  if (this != &o) {
    release();
    device_ = std::exchange(o.device_, nullptr);
    pool_ = std::exchange(o.pool_, VK_NULL_HANDLE);
    count_ = o.count_;
  }
  return *this;
}

TimestampPool::~TimestampPool() { release(); }

void TimestampPool::release() noexcept {
  if (device_ && pool_) device_->vk().vkDestroyQueryPool(device_->handle(), pool_, nullptr);
  pool_ = VK_NULL_HANDLE;
}

std::vector<double> TimestampPool::read_ns() const {
  std::vector<std::uint64_t> raw(count_);
  check(device_->vk().vkGetQueryPoolResults(device_->handle(), pool_, 0, count_, raw.size() * 8, raw.data(), 8,
                                            VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT),
        "vkGetQueryPoolResults");
  const std::uint32_t bits = device_->info().timestamp_valid_bits;
  const std::uint64_t mask = bits >= 64 ? ~0ull : ((1ull << bits) - 1);
  std::vector<double> ns(count_);
  for (std::uint32_t i = 0; i < count_; ++i) ns[i] = double(raw[i] & mask) * device_->info().timestamp_period_ns;
  return ns;
}

}  // namespace vkq
