#include "vkquant/mapped_file.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

namespace vkq {

static std::string describe(const std::string& what, std::uint64_t offset) {
  if (offset == FormatError::kNoOffset) return what;
  return what + " (at byte " + std::to_string(offset) + ")";
}

FormatError::FormatError(const std::filesystem::path& file, const std::string& what, std::uint64_t offset)
    : Error(file.string() + ": " + describe(what, offset)), file_(file), offset_(offset) {}

// What a non-regular file is, for "PATH: is a FIFO, not a regular file".
static const char* kind_of(mode_t mode) {
  if (S_ISDIR(mode)) return "is a directory";
  if (S_ISFIFO(mode)) return "is a FIFO";
  if (S_ISCHR(mode)) return "is a character device";
  if (S_ISBLK(mode)) return "is a block device";
  if (S_ISSOCK(mode)) return "is a socket";
  return "is of an unknown kind";
}

MappedFile MappedFile::open(const std::filesystem::path& path) {
  // O_NONBLOCK: opening a FIFO with no writer (or a device) must not block
  // before fstat can refuse it; it changes nothing for a regular file.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) {
    const int err = errno;
    // A socket cannot be opened at all (ENXIO): say what it is instead.
    struct stat ls {};
    if (::stat(path.c_str(), &ls) == 0 && !S_ISREG(ls.st_mode))
      throw Error(path.string() + ": " + kind_of(ls.st_mode) + ", not a regular file");
    throw Error(path.string() + ": cannot open: " + std::strerror(err));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    throw Error(path.string() + ": cannot stat: " + std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(path.string() + ": " + kind_of(st.st_mode) + ", not a regular file");
  }
  MappedFile f;
  f.path_ = path;
  f.size_ = std::size_t(st.st_size);
  if (f.size_ > 0) {
    void* p = ::mmap(nullptr, f.size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      throw Error(path.string() + ": cannot map: " + std::strerror(err));
    }
    f.data_ = static_cast<const std::byte*>(p);
  }
  ::close(fd);
  return f;
}

bool MappedFile::starts_with(std::string_view magic) const {
  return size_ >= magic.size() && std::memcmp(data_, magic.data(), magic.size()) == 0;
}

MappedFile::MappedFile(MappedFile&& o) noexcept
    : path_(std::move(o.path_)), data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}

MappedFile& MappedFile::operator=(MappedFile&& o) noexcept {
  if (this != &o) {
    release();
    path_ = std::move(o.path_);
    data_ = std::exchange(o.data_, nullptr);
    size_ = std::exchange(o.size_, 0);
  }
  return *this;
}

MappedFile::~MappedFile() { release(); }

void MappedFile::release() noexcept {
  if (data_) ::munmap(const_cast<std::byte*>(data_), size_);
  data_ = nullptr;
  size_ = 0;
}

void MappedFile::drop_pages(std::span<const std::byte> range) const {
  if (range.empty() || !data_) return;
  const auto* begin = range.data();
  const auto* end = begin + range.size();
  if (begin < data_ || end > data_ + size_) return;
  const auto page = std::uintptr_t(::sysconf(_SC_PAGESIZE));
  const auto lo = std::max(std::uintptr_t(begin) & ~(page - 1), std::uintptr_t(data_));
  const auto hi = std::uintptr_t(end);
  // The mapping starts on a page; its last page may extend past size_.
  (void)::madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED);
}

}  // namespace vkq
