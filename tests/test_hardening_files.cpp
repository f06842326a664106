// Issue 19 (3, 4): inputs that are not regular files are refused naming what
// they are, without blocking on them (a FIFO with no writer, a device); JSON
// files are read whole only up to a size cap; learned rotations refuse a
// width whose d x d working set the input cannot justify. Anything that could
// hang or exhaust memory when the check regresses runs in a forked child
// under alarm() (and an address-space limit), so a regression fails the test
// instead of hanging or swapping the suite.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <new>
#include <string>

#include "format_error.hpp"
#include "model_data.hpp"
#include "vkquant/json_strict.hpp"
#include "vkquant/mapped_file.hpp"
#include "vkquant/model/model_file.hpp"
#include "vkquant/rotation/gauge.hpp"
#include "vkquant/rotation/learn.hpp"
#include "vkquant/tokenizer.hpp"

namespace {

namespace fs = std::filesystem;
using vkq::test::temp_dir;

// ---- a child process with a deadline and a memory ceiling ----------------------

struct ChildResult {
  std::string outcome;  // "ok", "threw: <what>", "bad_alloc", "hung", "signal N", "exit N"
  std::string what;     // the message of the exception the body threw
};

// The process's current virtual size in bytes (VmSize), 0 if unknown.
std::uint64_t vm_size() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmSize:", 0) == 0) return std::stoull(line.substr(7)) * 1024;
  return 0;
}

// Runs `body` in a forked child killed after `seconds`; with `headroom`, the
// child's address space may grow only that many bytes past its size now. The
// body's exception message comes back through a pipe.
ChildResult in_child(const std::function<void()>& body, unsigned seconds, std::uint64_t headroom = 0) {
  int fds[2];
  if (::pipe(fds) != 0) return {"pipe failed", ""};
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    ::alarm(seconds);
    if (headroom) {
      const rlim_t limit = vm_size() + headroom;
      const rlimit r{limit, limit};
      ::setrlimit(RLIMIT_AS, &r);
    }
    int code = 0;
    std::string what;
    try {
      body();
    } catch (const std::bad_alloc&) {
      code = 3;
    } catch (const std::exception& e) {
      code = 1;
      what = e.what();
    }
    if (!what.empty() && ::write(fds[1], what.data(), what.size()) < 0) code = 4;
    ::_exit(code);
  }
  ::close(fds[1]);
  std::string what;
  char buf[4096];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) what.append(buf, std::size_t(n));
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (WIFSIGNALED(status)) return {WTERMSIG(status) == SIGALRM ? "hung" : "signal " + std::to_string(WTERMSIG(status)), what};
  switch (WEXITSTATUS(status)) {
    case 0: return {"ok", what};
    case 1: return {"threw", what};
    case 3: return {"bad_alloc", what};
    default: return {"exit " + std::to_string(WEXITSTATUS(status)), what};
  }
}

// `body` throws, within `seconds`, a message holding every fragment.
void expect_refused_in_child(const std::function<void()>& body, std::initializer_list<std::string> fragments,
                             unsigned seconds = 20, std::uint64_t headroom = 0) {
  const ChildResult r = in_child(body, seconds, headroom);
  ASSERT_EQ(r.outcome, "threw") << r.what;
  for (const auto& f : fragments) EXPECT_NE(r.what.find(f), std::string::npos) << "wanted \"" << f << "\" in: " << r.what;
}

fs::path make_fifo(const fs::path& p) {
  fs::remove(p);
  EXPECT_EQ(::mkfifo(p.c_str(), 0600), 0) << std::strerror(errno);
  return p;
}

void open_map(const fs::path& p) { (void)vkq::MappedFile::open(p); }

// ---- non-regular files ------------------------------------------------------------

TEST(FileKinds, FifoRefusedWithoutBlocking) {
  const fs::path fifo = make_fifo(temp_dir("kinds_fifo") / "text.txt");
  expect_refused_in_child([&] { open_map(fifo); }, {fifo.string() + ": is a FIFO, not a regular file"});
}

TEST(FileKinds, DirectoryNamedWithoutStaleErrno) {
  const fs::path dir = temp_dir("kinds_dir");
  try {
    open_map(dir);
    ADD_FAILURE() << "a directory was mapped";
  } catch (const vkq::Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(dir.string() + ": is a directory, not a regular file"), std::string::npos) << what;
    EXPECT_EQ(what.find("No such file"), std::string::npos) << what;
  }
}

TEST(FileKinds, CharacterDeviceNamed) {
  if (!fs::exists("/dev/zero")) GTEST_SKIP() << "no /dev/zero";
  expect_refused_in_child([] { open_map("/dev/zero"); }, {"/dev/zero: is a character device, not a regular file"});
}

TEST(FileKinds, SocketNamed) {
  const fs::path sock = temp_dir("kinds_sock") / "s";
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  ASSERT_LT(sock.string().size(), sizeof(addr.sun_path));
  std::strncpy(addr.sun_path, sock.c_str(), sizeof(addr.sun_path) - 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)), 0) << std::strerror(errno);
  expect_refused_in_child([&] { open_map(sock); }, {sock.string() + ": is a socket, not a regular file"});
  ::close(fd);
}

TEST(FileKinds, SymlinkToRegularFileIsFine) {
  const fs::path dir = temp_dir("kinds_link");
  std::ofstream(dir / "real.txt") << "GGUFxyz";
  fs::create_symlink(dir / "real.txt", dir / "link.txt");
  const auto f = vkq::MappedFile::open(dir / "link.txt");
  EXPECT_EQ(f.size(), 7u);
  EXPECT_TRUE(f.starts_with("GGUF"));
  EXPECT_FALSE(f.starts_with("GGUFxyz!"));  // longer than the file
}

TEST(FileKinds, ModelPathFifoNamedNotTreatedAsSafetensors) {
  const fs::path fifo = make_fifo(temp_dir("kinds_model_fifo") / "model.gguf");
  expect_refused_in_child([&] { (void)vkq::ModelFile::open(fifo); }, {fifo.string() + ": is a FIFO"});
  if (fs::exists("/dev/zero"))
    expect_refused_in_child([] { (void)vkq::ModelFile::open("/dev/zero"); }, {"/dev/zero: is a character device"});
}

TEST(FileKinds, ModelConfigFifoNamedNotMissing) {
  const fs::path dir = temp_dir("kinds_config_fifo");
  vkq::test::write_tiny_model(dir, vkq::test::TinyModel{});
  fs::remove(dir / "config.json");
  make_fifo(dir / "config.json");
  expect_refused_in_child([&] { (void)vkq::ModelFile::open(dir); }, {(dir / "config.json").string() + ": is a FIFO"});
}

TEST(FileKinds, TokenizerJsonFifoNamedNotSkipped) {
  // The tiny model's vocabulary (300) is byte-level, so without tokenizer.json
  // it falls back to bytes; a tokenizer.json that is a FIFO must be refused,
  // not skipped as if absent, nor read.
  const fs::path dir = temp_dir("kinds_tokenizer_fifo");
  vkq::test::write_tiny_model(dir, vkq::test::TinyModel{});
  make_fifo(dir / "tokenizer.json");
  expect_refused_in_child([&] { (void)vkq::ModelFile::open(dir).tokenizer(); },
                          {(dir / "tokenizer.json").string() + ": is a FIFO"});
}

// ---- JSON size cap -----------------------------------------------------------------

TEST(JsonFileCap, RefusedOverTheCapAcceptedAtIt) {
  const fs::path dir = temp_dir("json_cap");
  std::ofstream(dir / "at.json") << R"({"a": 12})";  // 9 bytes
  EXPECT_EQ(vkq::read_json_file(dir / "at.json", "test JSON", 9).at("a"), 12);
  vkq::test::expect_format_error([&] { (void)vkq::read_json_file(dir / "at.json", "test JSON", 8); }, dir / "at.json",
                                 "test JSON is 9 bytes, over the 8-byte cap", "test JSON");
  const fs::path fifo = make_fifo(dir / "fifo.json");
  expect_refused_in_child([&] { (void)vkq::read_json_file(fifo, "test JSON"); }, {fifo.string() + ": is a FIFO"});
}

TEST(JsonFileCap, ConfigJsonOverTheCapNamesFileSizeAndCap) {
  const fs::path dir = temp_dir("json_cap_config");
  vkq::test::write_tiny_model(dir, vkq::test::TinyModel{});
  fs::resize_file(dir / "config.json", vkq::kMaxJsonFileBytes + 1);  // sparse: no disk
  const std::string size = std::to_string(vkq::kMaxJsonFileBytes + 1), cap = std::to_string(vkq::kMaxJsonFileBytes);
  vkq::test::expect_format_error([&] { (void)vkq::ModelFile::open(dir); }, dir / "config.json",
                                 "config.json is " + size + " bytes, over the " + cap + "-byte cap", "config.json");
}

TEST(JsonFileCap, TokenizerJsonOverTheCapNamesFileSizeAndCap) {
  const fs::path dir = temp_dir("json_cap_tokenizer");
  const fs::path p = dir / "tokenizer.json";
  std::ofstream(p) << "{}";
  fs::resize_file(p, vkq::kMaxJsonFileBytes + 1);
  const std::string size = std::to_string(vkq::kMaxJsonFileBytes + 1), cap = std::to_string(vkq::kMaxJsonFileBytes);
  vkq::test::expect_format_error([&] { (void)vkq::load_tokenizer_json(p); }, p,
                                 "tokenizer.json is " + size + " bytes, over the " + cap + "-byte cap", "tokenizer.json");
}

// ---- learned rotations: width cap ---------------------------------------------------

TEST(RotationDimCap, LimitIsInclusive) {
  EXPECT_NO_THROW(vkq::rot::check_learned_dim(vkq::rot::kMaxLearnedDim));
  EXPECT_THROW(vkq::rot::check_learned_dim(vkq::rot::kMaxLearnedDim + 1), vkq::Error);
}

// A 4 x 16384 set is 256 KiB, but a learned rotation of d = 16384 needs tens
// of GiB: every entry point refuses it before allocating, with 512 MiB of
// address space to spare (a regression dies of bad_alloc, not of swapping).
TEST(RotationDimCap, Wide4x16384RefusedBeforeAllocating) {
  const vkq::rot::RowMat v = vkq::rot::RowMat::Ones(4, 16384);
  const std::initializer_list<std::string> message{"learned rotations of d=16384 need ~32 GiB (d×d matrices)",
                                                   "the limit is d ≤ 8192"};
  constexpr std::uint64_t kHeadroom = std::uint64_t(512) << 20;
  expect_refused_in_child([&] { (void)vkq::rot::learn_rotation(v, {}); }, message, 20, kHeadroom);
  expect_refused_in_child([&] { (void)vkq::rot::gauge_vectors("wide", v, {}); }, message, 20, kHeadroom);
  expect_refused_in_child([&] { (void)vkq::rot::gaussian_like(v, 1); }, message, 20, kHeadroom);
  const std::vector<std::uint32_t> rows{0, 1, 2, 3};
  expect_refused_in_child([&] { (void)vkq::rot::residual_basis(v, 8, rows, rows); }, message, 20, kHeadroom);
}

}  // namespace
