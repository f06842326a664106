// Output files are written whole or not at all (docs/design.md §8). A command opens
// its AtomicFile before the long work (so an unwritable output fails at once),
// writes, and commits at the end: the file is fsynced, given a name beside the
// target, renamed over it, and the directory fsynced. A failure, an exception
// or SIGINT/SIGTERM/SIGHUP leaves the old file (or none) and no temp file.
//
// The file is an unnamed O_TMPFILE in the target's directory, so a kill at
// any moment before the commit leaves nothing. It gets a name (a hidden
// ".NAME.tmpXXXXXX") only for the linkat + rename at the commit, with those
// signals blocked. Where the file system lacks O_TMPFILE the file is such a
// named temp from the start, and a handler for those signals removes it while
// it exists. SIGKILL can leave that named temp behind, or with O_TMPFILE the
// name of a complete file when it lands between the linkat and the rename;
// temp names carry the writer's pid (".NAME.tmp<pid>.XXXXXX"), and the next
// writer of the same target removes those whose process is gone.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace vkq {

class AtomicFile {
 public:
  // Opens the writer for `path`; throws vkq::Error "FLAG PATH: problem"
  // (`flag`, the CLI option naming the output, may be empty) when `path` is a
  // directory, its directory does not exist, or no file can be created there.
  static AtomicFile open(const std::filesystem::path& path, const std::string& flag = {});
  AtomicFile(AtomicFile&&) noexcept;
  AtomicFile& operator=(AtomicFile&&) noexcept;
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  ~AtomicFile();  // uncommitted: the file goes, the target stays as it was

  // Appends `bytes`; throws vkq::Error naming the file.
  void write(std::string_view bytes);
  // Makes the written bytes the target's contents; throws vkq::Error naming
  // the file (the target then stays as it was). Once only.
  void commit();

  const std::filesystem::path& path() const { return path_; }

 private:
  AtomicFile() = default;
  [[noreturn]] void fail(const char* what, int err);
  void abandon() noexcept;
  std::filesystem::path path_;
  std::string flag_;
  std::string temp_;  // the temp file's name while it has one, else empty
  int slot_ = -1;      // where the signal handler finds temp_ (-1: nowhere)
  int fd_ = -1;
};

// Writes `contents` to `path` atomically; throws vkq::Error naming the file.
void write_file_atomic(const std::filesystem::path& path, std::string_view contents);

// Tests: every writer opened while `on` uses the named temp file and its
// signal handler, as on a file system without O_TMPFILE.
void atomic_file_force_named_temp(bool on);

}  // namespace vkq
