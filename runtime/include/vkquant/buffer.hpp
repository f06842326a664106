// Storage buffers. Device buffers live in device-local memory and are mapped
// directly where that memory is also host-visible (lavapipe, UMA GPUs);
// elsewhere uploads and downloads go through a staging buffer. A buffer may
// be larger than maxStorageBufferRange: kernels bind it in chunks.
#pragma once

#include <volk.h>

#include <cstddef>
#include <cstdint>
#include <span>

namespace vkq {

class Device;

enum class Memory {
  device,  // device-local; fastest for kernels
  host,    // host-visible and coherent; for data the host reads or writes often
};

class Buffer {
 public:
  // A buffer of `bytes` (> 0) bytes with storage and transfer usage.
  static Buffer create(Device& device, std::uint64_t bytes, Memory memory = Memory::device);

  Buffer() = default;
  Buffer(Buffer&&) noexcept;
  Buffer& operator=(Buffer&&) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer();

  VkBuffer handle() const { return buffer_; }
  std::uint64_t size() const { return size_; }
  explicit operator bool() const { return buffer_ != VK_NULL_HANDLE; }
  // Host pointer to the contents, or nullptr when the memory is not mappable.
  void* mapped() const { return mapped_; }

  // Copies host bytes in / out at a byte offset (through staging if needed).
  void upload(const void* src, std::uint64_t bytes, std::uint64_t offset = 0);
  void download(void* dst, std::uint64_t bytes, std::uint64_t offset = 0) const;

  template <class T>
  void upload(std::span<const T> src, std::uint64_t offset = 0) {
    upload(src.data(), src.size_bytes(), offset);
  }
  template <class T>
  void download(std::span<T> dst, std::uint64_t offset = 0) const {
    download(dst.data(), dst.size_bytes(), offset);
  }
  // Fills `bytes` bytes at `offset` with a repeated 32-bit pattern.
  void fill(std::uint32_t pattern, std::uint64_t offset = 0, std::uint64_t bytes = ~0ull);

 private:
  void release() noexcept;

  Device* device_ = nullptr;
  VkBuffer buffer_ = VK_NULL_HANDLE;
  VkDeviceMemory memory_ = VK_NULL_HANDLE;
  std::uint64_t size_ = 0;
  void* mapped_ = nullptr;
};

}  // namespace vkq
