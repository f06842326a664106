// Read-only memory mapping of a whole file (model files are mapped, never
// read whole into memory). Move-only; an empty file maps to an empty span.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>

#include "vkquant/error.hpp"

namespace vkq {

// A malformed input file: names the file, the tensor or key, and the byte
// offset where the problem lies (when one applies).
class FormatError : public Error {
 public:
  FormatError(const std::filesystem::path& file, const std::string& what, std::uint64_t offset = kNoOffset);
  static constexpr std::uint64_t kNoOffset = ~std::uint64_t(0);
  const std::filesystem::path& file() const noexcept { return file_; }
  std::uint64_t offset() const noexcept { return offset_; }

 private:
  std::filesystem::path file_;
  std::uint64_t offset_;
};

class MappedFile {
 public:
  // Maps `path` read-only; throws vkq::Error naming the file on failure, and
  // naming what it is ("is a FIFO", "is a directory", ...) when it is not a
  // regular file. Never blocks: a FIFO or device is refused, not read.
  static MappedFile open(const std::filesystem::path& path);
  MappedFile() = default;
  MappedFile(MappedFile&&) noexcept;
  MappedFile& operator=(MappedFile&&) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  std::span<const std::byte> bytes() const { return {data_, size_}; }
  // Whether the file begins with `magic` (e.g. "GGUF").
  bool starts_with(std::string_view magic) const;
  std::uint64_t size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }
  // Drops the resident pages under `range` from this process (madvise
  // MADV_DONTNEED on the whole pages it touches): reading them again faults
  // them back in from the file, which the kernel's page cache usually still
  // holds. Loaders call it once a tensor is on the device, so the mapped
  // model does not stay resident beside its device copy. Bytes outside this
  // mapping are ignored (never anything but these read-only file pages).
  void drop_pages(std::span<const std::byte> range) const;

 private:
  void release() noexcept;
  std::filesystem::path path_;
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace vkq
