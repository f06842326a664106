// Command recording and submission. One verb records a dispatch: kernel,
// bindings, push constants and thread counts; it turns threads into groups and
// splits them across several dispatches where a dimension would exceed
// maxComputeWorkGroupCount. Waits are bounded by the device's fence timeout.
#pragma once

#include <volk.h>

#include <array>
#include <cstdint>
#include <initializer_list>
#include <vector>

#include "vkquant/buffer.hpp"
#include "vkquant/error.hpp"
#include "vkquant/kernel.hpp"

namespace vkq {

class Device;
class TimestampPool;

// A storage-buffer binding: `range` bytes of `buffer` from `offset`
// (range 0: to the end). Must fit in maxStorageBufferRange.
struct Binding {
  const Buffer* buffer = nullptr;
  std::uint64_t offset = 0;
  std::uint64_t range = 0;
  Binding(const Buffer& b, std::uint64_t off = 0, std::uint64_t r = 0) : buffer(&b), offset(off), range(r) {}
};

// Invocation counts in x, y, z (not groups).
struct Threads {
  std::uint64_t x = 1, y = 1, z = 1;
};

class Stream {
 public:
  static Stream create(Device& device);

  Stream(Stream&&) noexcept;
  Stream& operator=(Stream&&) noexcept;
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  ~Stream();

  Device& device() const { return *device_; }

  // Records `kernel` over `threads` invocations with the given bindings and
  // push constants. A compute-to-compute barrier precedes every dispatch but
  // the first, so consecutive dispatches see each other's writes.
  void dispatch(const Kernel& kernel, std::initializer_list<Binding> bindings, const void* push,
                std::uint32_t push_bytes, Threads threads);
  template <class PC>
  void dispatch(const Kernel& kernel, std::initializer_list<Binding> bindings, const PC& push, Threads threads) {
    dispatch(kernel, bindings, &push, std::uint32_t(sizeof(PC)), threads);
  }

  // Records a buffer-to-buffer copy.
  void copy(const Buffer& src, Buffer& dst, std::uint64_t bytes, std::uint64_t src_offset = 0,
            std::uint64_t dst_offset = 0);
  // Records vkCmdFillBuffer (offset and bytes multiples of 4).
  void fill(Buffer& dst, std::uint32_t pattern, std::uint64_t offset, std::uint64_t bytes);
  // Full memory barrier between recorded work (compute and transfer).
  void barrier();
  // Resets every query of `pool` (record before writing timestamps into it).
  void reset_queries(TimestampPool& pool);
  // Writes a GPU timestamp into query `index` of `pool` after prior work.
  void timestamp(TimestampPool& pool, std::uint32_t index);

  // Submits everything recorded and waits (bounded). Throws TimeoutError,
  // DeviceLostError, ... Recording may start again afterwards; after a
  // TimeoutError the next call waits for the late work again first.
  void submit_and_wait();
  // Number of vkCmdDispatch* calls recorded since the last submit.
  std::uint32_t recorded_dispatches() const { return dispatches_; }

 private:
  Stream() = default;
  void begin_if_needed();
  void retire();
  void recycle();
  VkDescriptorSet allocate_set(VkDescriptorSetLayout layout);
  void release() noexcept;

  Device* device_ = nullptr;
  VkCommandPool pool_ = VK_NULL_HANDLE;
  VkCommandBuffer cmd_ = VK_NULL_HANDLE;
  VkFence fence_ = VK_NULL_HANDLE;
  std::vector<VkDescriptorPool> descriptor_pools_;
  std::size_t current_pool_ = 0;
  bool recording_ = false;
  bool in_flight_ = false;  // submitted, fence not yet seen signalled
  bool needs_barrier_ = false;
  std::uint32_t dispatches_ = 0;
};

// GPU timestamps in nanoseconds.
class TimestampPool {
 public:
  static TimestampPool create(Device& device, std::uint32_t count);
  TimestampPool(TimestampPool&&) noexcept;
  TimestampPool& operator=(TimestampPool&&) noexcept;
  TimestampPool(const TimestampPool&) = delete;
  TimestampPool& operator=(const TimestampPool&) = delete;
  ~TimestampPool();

  VkQueryPool handle() const { return pool_; }
  std::uint32_t count() const { return count_; }
  // Reads all queries (after the stream that wrote them was waited on) and
  // returns them in nanoseconds.
  std::vector<double> read_ns() const;

 private:
  TimestampPool() = default;
  void release() noexcept;
  Device* device_ = nullptr;
  VkQueryPool pool_ = VK_NULL_HANDLE;
  std::uint32_t count_ = 0;
};

// Number of groups for `threads` invocations at `local` per group.
constexpr std::uint64_t div_up(std::uint64_t threads, std::uint64_t local) { return (threads + local - 1) / local; }

}  // namespace vkq
