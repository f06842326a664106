// The atomic writer under SIGINT, SIGTERM and SIGHUP, and its early refusals.
// A forked child opens a writer (or writes and commits in a loop) and the
// parent signals it: the child must die of that signal, leave no hidden
// ".NAME.tmpXXXXXX" beside the target, and the target must be the old file or
// a complete new one. Both ways of holding the file are run: the unnamed
// O_TMPFILE (nothing to remove) and the named temp of file systems without
// O_TMPFILE (removed by the writer's signal handler).
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "vkquant/atomic_file.hpp"
#include "vkquant/error.hpp"

namespace {

namespace fs = std::filesystem;

// A fresh directory, removed at the end; on tmpfs when there is one (what a
// kill leaves behind is the same as on a disk, and fsync is free).
struct TempDir {
  fs::path dir;
  explicit TempDir(const std::string& name) {
    std::error_code ec;
    const fs::path base = ::access("/dev/shm", W_OK) == 0 && fs::is_directory("/dev/shm", ec)
                              ? fs::path("/dev/shm")
                              : fs::temp_directory_path();
    dir = base / ("vkq_" + name + "_" + std::to_string(::getpid()));
    fs::remove_all(dir, ec);
    fs::create_directories(dir);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};

// The hidden temp files the writer of `target` could leave.
std::vector<std::string> temps_of(const fs::path& target) {
  std::vector<std::string> out;
  const std::string prefix = "." + target.filename().string() + ".tmp";
  for (const auto& e : fs::directory_iterator(target.parent_path()))
    if (e.path().filename().string().rfind(prefix, 0) == 0) out.push_back(e.path().filename().string());
  return out;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void spit(const fs::path& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }

bool supports_tmpfile(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_TMPFILE | O_WRONLY, 0600);
  if (fd < 0) return false;
  ::close(fd);
  return true;
}

// Generation `gen` of the file: its number, then `size` bytes of one value.
std::string generation(unsigned gen, std::size_t size) {
  std::string s = std::to_string(gen) + "\n";
  s.append(size, char('a' + gen % 26));
  return s;
}

// The generation of a complete file, or -1 when it is torn.
long generation_of(const std::string& s, std::size_t size) {
  const auto nl = s.find('\n');
  if (nl == std::string::npos) return -1;
  const unsigned gen = unsigned(std::stoul(s.substr(0, nl)));
  return s == generation(gen, size) ? long(gen) : -1;
}

const char* signal_name(int sig) { return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "SIGHUP"; }

// Waits for the child and checks that `sig` ended it. A child still alive
// after 60 s fails the test and is killed (no hang).
void expect_killed_by(pid_t pid, int sig) {
  int status = 0;
  pid_t got = 0;
  for (int i = 0; i < 6000 && (got = ::waitpid(pid, &status, WNOHANG)) == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  if (got == 0) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
    FAIL() << "the child did not die of " << signal_name(sig) << " within 60 s";
  }
  ASSERT_EQ(got, pid);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == sig)
      << "the child did not die of " << signal_name(sig) << ": status " << status;
}

// In a forked child: the tested signals at their default action, whatever the
// test process inherited (under `nohup` SIGHUP is ignored, and the writer
// rightly leaves an ignored signal ignored: its child would never die).
void default_signals() {
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) ::signal(sig, SIG_DFL);
}

// Blocks until the child writes its byte on `fd` (closes it).
void wait_ready(int fd) {
  char c = 0;
  while (::read(fd, &c, 1) < 0 && errno == EINTR) {
  }
  ::close(fd);
}

struct Case {
  bool named;  // the named temp file and its handler, else O_TMPFILE
  int sig;
};

std::string case_name(const Case& c) { return std::string(c.named ? "named" : "tmpfile") + "_" + signal_name(c.sig); }
void PrintTo(const Case& c, std::ostream* os) { *os << case_name(c); }

class AtomicSignals : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    if (!GetParam().named && !supports_tmpfile(dir_.dir)) GTEST_SKIP() << dir_.dir << ": no O_TMPFILE here";
  }
  TempDir dir_{"atomic_signals"};
};

// A signal while the writer is open (the long work of a command) removes the
// temp file; the old target stays.
TEST_P(AtomicSignals, WhileOpenLeavesOldFile) {
  const Case c = GetParam();
  const fs::path target = dir_.dir / "out.json";
  spit(target, "old\n");
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::close(ready[0]);
    default_signals();
    vkq::atomic_file_force_named_temp(c.named);
    try {
      auto f = vkq::AtomicFile::open(target, "--json");
      f.write(std::string(1 << 20, 'n'));
      if (::write(ready[1], "r", 1) != 1) ::_exit(3);
      for (;;) ::pause();
    } catch (...) {
    }
    ::_exit(3);
  }
  ::close(ready[1]);
  wait_ready(ready[0]);
  // The named temp exists while the writer is open (so the handler has work
  // to do); the unnamed one never shows.
  EXPECT_EQ(temps_of(target).size(), c.named ? 1u : 0u);
  ASSERT_EQ(::kill(pid, c.sig), 0);
  expect_killed_by(pid, c.sig);
  EXPECT_EQ(temps_of(target), std::vector<std::string>{});
  EXPECT_EQ(slurp(target), "old\n");
}

// Signals at random moments while the child writes and commits a 4 MiB file
// in a loop: never a temp file left, never a torn target.
TEST_P(AtomicSignals, AroundCommitNeverLeavesTempOrTornFile) {
  const Case c = GetParam();
  const fs::path target = dir_.dir / "model.safetensors";
  constexpr std::size_t kSize = 4u << 20;
  const auto t0 = std::chrono::steady_clock::now();
  vkq::atomic_file_force_named_temp(c.named);
  vkq::write_file_atomic(target, generation(0, kSize));
  vkq::atomic_file_force_named_temp(false);
  const double write_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::mt19937 rng(20240611 + unsigned(c.sig) * 2 + c.named);
  std::uniform_real_distribution<double> delay_ms(0.0, 3.0 * write_ms);

  long current = 0;
  int replaced = 0;
  for (unsigned trial = 1; trial <= 10; ++trial) {
    int ready[2];
    ASSERT_EQ(::pipe(ready), 0);
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(ready[0]);
      default_signals();
      vkq::atomic_file_force_named_temp(c.named);
      try {
        for (unsigned gen = trial * 100;; ++gen) {
          const std::string bytes = generation(gen, kSize);
          if (gen == trial * 100 && ::write(ready[1], "r", 1) != 1) break;
          auto f = vkq::AtomicFile::open(target);
          f.write(bytes);
          f.commit();
        }
      } catch (...) {
      }
      ::_exit(3);  // only a failed write gets here
    }
    ::close(ready[1]);
    wait_ready(ready[0]);
    std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(delay_ms(rng)));
    ASSERT_EQ(::kill(pid, c.sig), 0);
    expect_killed_by(pid, c.sig);
    EXPECT_EQ(temps_of(target), std::vector<std::string>{}) << "trial " << trial;
    const long gen = generation_of(slurp(target), kSize);
    ASSERT_GE(gen, 0) << "trial " << trial << ": the target is torn";
    if (gen != current) {
      EXPECT_GE(gen, long(trial) * 100) << "trial " << trial << ": neither the old file nor this writer's";
      ++replaced;
    }
    current = gen;
    if (HasFailure()) break;
  }
  RecordProperty("replaced", replaced);
}

INSTANTIATE_TEST_SUITE_P(Signals, AtomicSignals,
                         ::testing::Values(Case{false, SIGINT}, Case{false, SIGTERM}, Case{false, SIGHUP},
                                           Case{true, SIGINT}, Case{true, SIGTERM}, Case{true, SIGHUP}),
                         [](const auto& p) { return case_name(p.param); });

// --- the handler keeps what was there ----------------------------------------

volatile sig_atomic_t g_caught = 0;
extern "C" void note_signal(int sig) { g_caught = sig; }

bool disposition_is(int sig, void (*handler)(int)) {
  struct sigaction now {};
  return ::sigaction(sig, nullptr, &now) == 0 && !(now.sa_flags & SA_SIGINFO) && now.sa_handler == handler;
}

// A program's own SIGTERM handler still runs (after the temp file went), an
// ignored SIGHUP stays ignored, and both are as before once the writer goes.
TEST(AtomicSignalHandler, KeepsPreviousDispositions) {
  TempDir dir("atomic_handler");
  const fs::path target = dir.dir / "out.html";
  struct sigaction mine {}, ignore {}, old_term {}, old_hup {};
  mine.sa_handler = note_signal;
  sigemptyset(&mine.sa_mask);
  ignore.sa_handler = SIG_IGN;
  sigemptyset(&ignore.sa_mask);
  ASSERT_EQ(::sigaction(SIGTERM, &mine, &old_term), 0);
  ASSERT_EQ(::sigaction(SIGHUP, &ignore, &old_hup), 0);
  vkq::atomic_file_force_named_temp(true);
  {
    auto f = vkq::AtomicFile::open(target);
    vkq::atomic_file_force_named_temp(false);
    EXPECT_EQ(temps_of(target).size(), 1u);
    EXPECT_FALSE(disposition_is(SIGTERM, note_signal)) << "no handler removes the temp file";
    EXPECT_TRUE(disposition_is(SIGHUP, SIG_IGN)) << "an ignored signal must stay ignored";
    g_caught = 0;
    ::raise(SIGTERM);
    EXPECT_EQ(g_caught, SIGTERM) << "the previous handler did not run";
    EXPECT_EQ(temps_of(target), std::vector<std::string>{});
    EXPECT_TRUE(disposition_is(SIGTERM, note_signal));
    f.write("x");
    EXPECT_THROW(f.commit(), vkq::Error);  // its file is gone
  }
  EXPECT_TRUE(disposition_is(SIGTERM, note_signal));
  EXPECT_TRUE(disposition_is(SIGHUP, SIG_IGN));
  EXPECT_FALSE(fs::exists(target));
  ::sigaction(SIGTERM, &old_term, nullptr);
  ::sigaction(SIGHUP, &old_hup, nullptr);
}

// --- opening refuses what cannot be written, before any work ----------------

std::string open_error(const fs::path& path) {
  try {
    vkq::AtomicFile::open(path, "-o");
  } catch (const vkq::Error& e) {
    return e.what();
  }
  return "(opened)";
}

TEST(AtomicFileOpen, RefusesUnwritableOutputs) {
  TempDir dir("atomic_open");
  const fs::path missing = dir.dir / "missing";
  EXPECT_EQ(open_error(missing / "x.vkq.safetensors"),
            "-o " + (missing / "x.vkq.safetensors").string() + ": directory " + missing.string() + " does not exist");
  EXPECT_EQ(open_error(dir.dir), "-o " + dir.dir.string() + ": is a directory");
  spit(dir.dir / "file", "f");
  EXPECT_EQ(open_error(dir.dir / "file" / "x"),
            "-o " + (dir.dir / "file" / "x").string() + ": cannot create a temporary file beside it: Not a directory");
  // sysfs takes no new files, from root either (read-only in most containers).
  std::error_code ec;
  if (fs::is_directory("/sys/kernel", ec)) {
    for (bool named : {false, true}) {
      vkq::atomic_file_force_named_temp(named);
      const std::string e = open_error("/sys/kernel/x.vkq.safetensors");
      vkq::atomic_file_force_named_temp(false);
      EXPECT_TRUE(e.rfind("-o /sys/kernel/x.vkq.safetensors: cannot create a temporary file beside it: ", 0) == 0) << e;
    }
  }
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(dir.dir)) left.push_back(e.path().filename().string());
  EXPECT_EQ(left, std::vector<std::string>{"file"});
}

// An uncommitted writer (an error in the work) leaves the old target and no
// temp file; a committed one replaces it, mode 0644.
TEST(AtomicFileOpen, UncommittedKeepsOldFile) {
  TempDir dir("atomic_abandon");
  const fs::path target = dir.dir / "out.json";
  for (bool named : {false, true}) {
    SCOPED_TRACE(named ? "named" : "tmpfile");
    spit(target, "old\n");
    vkq::atomic_file_force_named_temp(named);
    {
      auto f = vkq::AtomicFile::open(target);
      f.write("new\n");
    }
    EXPECT_EQ(slurp(target), "old\n");
    EXPECT_EQ(temps_of(target), std::vector<std::string>{});
    {
      auto f = vkq::AtomicFile::open(target);
      auto moved = std::move(f);
      moved.write("new\n");
      moved.commit();
      EXPECT_THROW(moved.commit(), vkq::Error);
    }
    vkq::atomic_file_force_named_temp(false);
    EXPECT_EQ(slurp(target), "new\n");
    EXPECT_EQ(fs::status(target).permissions() & fs::perms::all,
              fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read | fs::perms::others_read);
    EXPECT_EQ(temps_of(target), std::vector<std::string>{});
  }
}

// A writer's open removes the temp files of dead writers of the same target
// (".NAME.tmp<pid>.XXXXXX" whose pid is gone: what a SIGKILL inside a
// commit's linkat + rename leaves), and nothing else: not a live process's,
// not this process's, not another target's, not a name of another shape.
TEST(AtomicFileOpen, RemovesStaleTempsOfDeadWritersOnly) {
  TempDir dir("atomic_stale");
  const fs::path target = dir.dir / "out.json";
  const pid_t dead = ::fork();
  ASSERT_GE(dead, 0);
  if (dead == 0) ::_exit(0);
  ASSERT_EQ(::waitpid(dead, nullptr, 0), dead);  // reaped: the pid is free
  ASSERT_NE(::kill(dead, 0), 0);
  const std::string d = std::to_string(dead);
  const std::vector<std::string> kept{".out.json.tmp1.abcdef",                                    // init: alive
                                      ".out.json.tmp" + std::to_string(::getpid()) + ".abcdef",  // ours
                                      ".other.json.tmp" + d + ".abcdef",                         // another target
                                      ".out.json.tmpABCDEF",                                     // no pid
                                      ".out.json.tmp" + d + ".abcdefg"};                         // not 6 chars
  for (const auto& name : kept) spit(dir.dir / name, "x");
  spit(dir.dir / (".out.json.tmp" + d + ".a1B2c3"), "complete but orphaned");
  for (bool named : {false, true}) {
    vkq::atomic_file_force_named_temp(named);
    auto f = vkq::AtomicFile::open(target);
    vkq::atomic_file_force_named_temp(false);
    EXPECT_FALSE(fs::exists(dir.dir / (".out.json.tmp" + d + ".a1B2c3")));
    for (const auto& name : kept) EXPECT_TRUE(fs::exists(dir.dir / name)) << name;
  }
}

}  // namespace
