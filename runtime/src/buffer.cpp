#include "vkquant/buffer.hpp"

#include <algorithm>
#include <utility>
#include <cstring>
#include <string>

#include "vkquant/device.hpp"
#include "vkquant/error.hpp"
#include "vkquant/stream.hpp"

namespace vkq {

namespace {
constexpr std::uint64_t kStagingBytes = 64ull << 20;

void check_range(const Buffer& b, std::uint64_t offset, std::uint64_t bytes, const char* what) {
  if (offset > b.size() || bytes > b.size() - offset)
    throw Error(std::string(what) + ": range [" + std::to_string(offset) + ", +" + std::to_string(bytes) +
                ") is outside a buffer of " + std::to_string(b.size()) + " bytes");
}
}  // namespace

Buffer Buffer::create(Device& device, std::uint64_t bytes, Memory memory) {
  const DeviceInfo& info = device.info();
  if (bytes == 0) throw Error("Buffer::create: zero-sized buffer");
  if (info.max_buffer_size && bytes > info.max_buffer_size)
    throw OutOfMemoryError("vkCreateBuffer", VK_ERROR_OUT_OF_DEVICE_MEMORY);
  if (info.max_memory_allocation_size && bytes > info.max_memory_allocation_size)
    throw OutOfMemoryError("vkAllocateMemory", VK_ERROR_OUT_OF_DEVICE_MEMORY);

  Buffer b;
  b.device_ = &device;
  b.size_ = bytes;
  const auto& vk = device.vk();
  VkBufferCreateInfo bci{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
  bci.size = bytes;
  bci.usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT;
  bci.sharingMode = VK_SHARING_MODE_EXCLUSIVE;
  check(vk.vkCreateBuffer(device.handle(), &bci, nullptr, &b.buffer_), "vkCreateBuffer");

  VkMemoryRequirements req{};
  vk.vkGetBufferMemoryRequirements(device.handle(), b.buffer_, &req);
  constexpr VkMemoryPropertyFlags mappable = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
  int type = memory == Memory::device
                 ? device.find_memory_type(req.memoryTypeBits, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT)
                 : device.find_memory_type(req.memoryTypeBits, mappable, VK_MEMORY_PROPERTY_HOST_CACHED_BIT);
  if (type < 0) type = device.find_memory_type(req.memoryTypeBits, 0, mappable);
  if (type < 0) throw Error("Buffer::create: no memory type fits the buffer");

  VkMemoryAllocateInfo mai{VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
  mai.allocationSize = req.size;
  mai.memoryTypeIndex = std::uint32_t(type);
  check(vk.vkAllocateMemory(device.handle(), &mai, nullptr, &b.memory_), "vkAllocateMemory");
  check(vk.vkBindBufferMemory(device.handle(), b.buffer_, b.memory_, 0), "vkBindBufferMemory");
  const VkMemoryPropertyFlags flags = device.memory_properties().memoryTypes[type].propertyFlags;
  if ((flags & mappable) == mappable)
    check(vk.vkMapMemory(device.handle(), b.memory_, 0, VK_WHOLE_SIZE, 0, &b.mapped_), "vkMapMemory");
  return b;
}

Buffer::Buffer(Buffer&& o) noexcept { *this = std::move(o); }

Buffer& Buffer::operator=(Buffer&& o) noexcept {
  if (this != &o) {
    release();
    device_ = std::exchange(o.device_, nullptr);
    buffer_ = std::exchange(o.buffer_, VK_NULL_HANDLE);
    memory_ = std::exchange(o.memory_, VK_NULL_HANDLE);
    size_ = std::exchange(o.size_, 0);
    mapped_ = std::exchange(o.mapped_, nullptr);
  }
  return *this;
}

Buffer::~Buffer() { release(); }

void Buffer::release() noexcept {
  if (!device_) return;
  if (device_->abandoned()) {  // late work may still use it: keep it (Device::abandon)
    device_ = nullptr;
    return;
  }
  const auto& vk = device_->vk();
  if (buffer_) vk.vkDestroyBuffer(device_->handle(), buffer_, nullptr);
  if (memory_) vk.vkFreeMemory(device_->handle(), memory_, nullptr);  // unmaps implicitly
  buffer_ = VK_NULL_HANDLE;
  memory_ = VK_NULL_HANDLE;
  mapped_ = nullptr;
}

void Buffer::upload(const void* src, std::uint64_t bytes, std::uint64_t offset) {
  check_range(*this, offset, bytes, "Buffer::upload");
  if (bytes == 0) return;
  if (mapped_) {
    std::memcpy(static_cast<char*>(mapped_) + offset, src, bytes);
    return;
  }
  Buffer staging = create(*device_, std::min(bytes, kStagingBytes), Memory::host);
  Stream s = Stream::create(*device_);
  for (std::uint64_t done = 0; done < bytes;) {
    const std::uint64_t n = std::min(bytes - done, staging.size());
    std::memcpy(staging.mapped(), static_cast<const char*>(src) + done, n);
    s.copy(staging, *this, n, 0, offset + done);
    s.submit_and_wait();
    done += n;
  }
}

void Buffer::download(void* dst, std::uint64_t bytes, std::uint64_t offset) const {
  check_range(*this, offset, bytes, "Buffer::download");
  if (bytes == 0) return;
  if (mapped_) {
    std::memcpy(dst, static_cast<const char*>(mapped_) + offset, bytes);
    return;
  }
  Buffer staging = create(*device_, std::min(bytes, kStagingBytes), Memory::host);
  Stream s = Stream::create(*device_);
  for (std::uint64_t done = 0; done < bytes;) {
    const std::uint64_t n = std::min(bytes - done, staging.size());
    s.copy(*this, staging, n, offset + done, 0);
    s.submit_and_wait();
    std::memcpy(static_cast<char*>(dst) + done, staging.mapped(), n);
    done += n;
  }
}

void Buffer::fill(std::uint32_t pattern, std::uint64_t offset, std::uint64_t bytes) {
  if (bytes == ~0ull) bytes = offset <= size_ ? size_ - offset : 0;
  check_range(*this, offset, bytes, "Buffer::fill");
  if (bytes == 0) return;
  if (offset % 4 || bytes % 4) throw Error("Buffer::fill: offset and size must be multiples of 4");
  if (mapped_) {
    auto* p = reinterpret_cast<std::uint32_t*>(static_cast<char*>(mapped_) + offset);
    std::fill(p, p + bytes / 4, pattern);
    return;
  }
  Stream s = Stream::create(*device_);
  s.fill(*this, pattern, offset, bytes);
  s.submit_and_wait();
}

}  // namespace vkq
