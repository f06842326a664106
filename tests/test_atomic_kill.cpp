// Atomic writes under SIGKILL: a child rewrites a 24 MiB safetensors file in
// a loop while the parent kills it at random moments. After every kill the
// file must be the old one or a complete new one, never torn, and no hidden
// ".model.safetensors.tmp<pid>.XXXXXX" of an earlier writer may be left
// beside it (but for the last trial's, when this writer was killed before its
// first open had cleaned up): the writer's file has no name (O_TMPFILE) until the linkat +
// rename of its commit, and a kill inside that window of two system calls
// (microseconds in a write of tens of ms) leaves the name of a complete file,
// which the next writer removes (its pid is gone). After the last kill one
// more write leaves the directory clean. Before O_TMPFILE a third of the kills
// left a temp file, mostly a partial one, and nothing ever removed it.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "vkquant/error.hpp"
#include "vkquant/safetensors.hpp"
#include "vkquant/safetensors_index.hpp"

namespace {

namespace fs = std::filesystem;

constexpr std::uint64_t kRows = 24, kCols = 1u << 20;  // 24 MiB of u8

// The byte every element of generation `gen` holds.
std::uint8_t pattern(std::uint32_t gen) { return std::uint8_t(gen % 251 + 1); }

// Writes generation `gen` (buf already holds pattern(gen) in every byte); the
// metadata names the generation.
void write_gen(const fs::path& p, std::uint32_t gen, const std::vector<std::uint8_t>& buf) {
  vkq::write_safetensors(p, {{"w", vkq::DType::U8, {kRows, kCols}, std::as_bytes(std::span(buf))}},
                         {{"gen", std::to_string(gen)}});
}

// The generation of a complete file; fails the test when it is torn.
std::uint32_t read_gen(const fs::path& p) {
  const auto f = vkq::SafetensorsFile::open(p);
  const std::uint32_t gen = std::uint32_t(std::stoul(f.metadata().at("gen")));
  const auto& t = f.at("w");
  EXPECT_EQ(t.shape, (std::vector<std::uint64_t>{kRows, kCols}));
  const auto bytes = f.data(t);
  const auto want = std::byte{pattern(gen)};
  const auto bad = std::count_if(bytes.begin(), bytes.end(), [&](std::byte b) { return b != want; });
  EXPECT_EQ(bad, 0) << p << ": generation " << gen << " has " << bad << " wrong bytes";
  return gen;
}

std::vector<fs::path> temp_files(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().rfind(".model.safetensors.tmp", 0) == 0) out.push_back(e.path());
  return out;
}

TEST(AtomicKill, SigkillNeverTearsTheFile) {
  // SIGKILL loses no page cache, so what is on disk after a kill is the same on
  // tmpfs (fsync is free there) as on a disk: prefer it to keep the test quick.
  std::error_code ec;
  const fs::path base = ::access("/dev/shm", W_OK) == 0 && fs::is_directory("/dev/shm", ec) ? fs::path("/dev/shm")
                                                                                           : fs::temp_directory_path();
  const fs::path dir = base / ("vkq_atomic_kill_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  struct RemoveDir {  // also when an assertion returns early
    fs::path dir;
    ~RemoveDir() {
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
  } cleanup{dir};
  const fs::path target = dir / "model.safetensors";
  std::vector<std::uint8_t> buf(kRows * kCols);

  // One write's duration sets the range of kill moments.
  std::memset(buf.data(), pattern(0), buf.size());
  const auto t0 = std::chrono::steady_clock::now();
  write_gen(target, 0, buf);
  const double write_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::mt19937 rng(20240607);
  std::uniform_real_distribution<double> delay_ms(0.0, 2.0 * write_ms);

  std::uint32_t current = 0;
  int kept_old = 0, replaced = 0, strays = 0;
  std::vector<fs::path> left;  // the temp files the last trial left
  for (std::uint32_t trial = 1; trial <= 30; ++trial) {
    const std::uint32_t first = trial * 100;  // this child's generations: first, first+1, ...
    int ready[2];
    ASSERT_EQ(::pipe(ready), 0);
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(ready[0]);
      try {
        for (std::uint32_t gen = first;; ++gen) {
          std::memset(buf.data(), pattern(gen), buf.size());  // the first one copies every page (slow)
          if (gen == first && ::write(ready[1], "w", 1) != 1) break;  // about to write: start the clock
          write_gen(target, gen, buf);
        }
      } catch (...) {
      }
      ::_exit(3);  // only a failed write gets here
    }
    ::close(ready[1]);
    // Timing from the child's first write (not from fork or its first
    // copy-on-write pass over buf) puts the kills inside the writes.
    char c = 0;
    while (::read(ready[0], &c, 1) < 0 && errno == EINTR) {
    }
    ::close(ready[0]);
    std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(delay_ms(rng)));
    ASSERT_EQ(::kill(pid, SIGKILL), 0);
    int wstatus = 0;
    ASSERT_EQ(::waitpid(pid, &wstatus, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGKILL) << "the writer died on its own: " << wstatus;

    std::uint32_t gen = 0;
    try {
      gen = read_gen(target);
    } catch (const vkq::Error& e) {
      ADD_FAILURE() << "trial " << trial << ": the file is torn: " << e.what();
      break;
    }
    if (gen == current) {
      ++kept_old;
    } else {
      EXPECT_GE(gen, first) << "trial " << trial << ": generation " << gen << " is neither the old " << current
                            << " nor one this writer made";
      ++replaced;
    }
    const bool kept = gen == current;
    current = gen;
    const auto stray = temp_files(dir);
    if (!stray.empty()) {
      ++strays;
      // A directory holding leftovers still opens the real file.
      const auto m = vkq::SafetensorsModel::open(dir);
      EXPECT_EQ(m.source().filename(), "model.safetensors");
      const std::string own = ".model.safetensors.tmp" + std::to_string(pid) + ".";
      for (const auto& p : stray) {
        // Only this kill's writer may have left one (in its commit window):
        // this writer's first open removed those of the earlier ones. Unless
        // the kill came before that first open's clean-up (the writer had
        // replaced nothing yet): then what the last trial left may remain.
        const bool carried = kept && std::find(left.begin(), left.end(), p) != left.end();
        EXPECT_TRUE(p.filename().string().rfind(own, 0) == 0 || carried)
            << "trial " << trial << ": an earlier writer's " << p;
        try {
          // A carried one is the last trial's writer's (its generations start at first - 100).
          EXPECT_GE(read_gen(p), carried ? first - 100 : first) << "trial " << trial << ": " << p;
        } catch (const vkq::Error& e) {
          ADD_FAILURE() << "trial " << trial << ": a partial temp file is left: " << e.what();
        }
      }
    }
    left = stray;
    if (HasFailure()) break;
  }
  // The next write removes whatever the last kill left.
  std::memset(buf.data(), pattern(7), buf.size());
  write_gen(target, 7, buf);
  EXPECT_EQ(temp_files(dir), std::vector<fs::path>{}) << "a write left stale temp files of dead writers";
  EXPECT_EQ(read_gen(target), 7u);
  RecordProperty("kept_old", kept_old);
  RecordProperty("replaced", replaced);
  RecordProperty("trials_with_stray_temp_files", strays);
  std::printf("one write %.0f ms; 30 kills: %d kept the old file, %d left a new complete one, %d left temp files\n",
              write_ms, kept_old, replaced, strays);
}

}  // namespace
