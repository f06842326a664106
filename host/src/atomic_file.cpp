#include "vkquant/atomic_file.hpp"

#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <random>
#include <string>
#include <string_view>
#include <utility>

#include "vkquant/error.hpp"

namespace vkq {

namespace {

namespace fs = std::filesystem;

std::atomic<bool> g_force_named{false};

fs::path dir_of(const fs::path& path) { return path.has_parent_path() ? path.parent_path() : fs::path("."); }

// --- removing named temp files on SIGINT, SIGTERM and SIGHUP -----------------
// While a temp file has a name, its path sits in a slot the handler reads: it
// unlinks every such path, puts back the signal's previous disposition and
// raises the signal again, so the process ends (or the previous handler runs)
// as it would have without us. Installed only while a slot is in use, and
// only over signals that are not ignored (an ignored one kills nothing).

constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP};
constexpr int kNoSlot = -1;

struct TempSlot {
  std::atomic<bool> used{false};
  char path[PATH_MAX];
};
static_assert(std::atomic<bool>::is_always_lock_free, "the signal handler reads the slots");
TempSlot g_slots[16];
struct sigaction g_previous[std::size(kSignals)];
bool g_installed[std::size(kSignals)];
int g_named = 0;        // slots in use; guarded by g_registry
std::mutex g_registry;  // (the handler takes no lock: it only reads the slots)

extern "C" void remove_temps_and_reraise(int sig) {
  const int saved = errno;
  for (auto& s : g_slots)
    if (s.used.load(std::memory_order_acquire)) ::unlink(s.path);
  for (std::size_t i = 0; i < std::size(kSignals); ++i)
    if (kSignals[i] == sig) ::sigaction(sig, &g_previous[i], nullptr);
  errno = saved;
  ::raise(sig);  // delivered when this handler returns
}

void install_handler() {
  for (std::size_t i = 0; i < std::size(kSignals); ++i) {
    struct sigaction old {};
    g_installed[i] = false;
    if (::sigaction(kSignals[i], nullptr, &old) != 0) continue;
    if (!(old.sa_flags & SA_SIGINFO) && old.sa_handler == SIG_IGN) continue;
    g_previous[i] = old;
    struct sigaction act {};
    act.sa_handler = remove_temps_and_reraise;
    sigemptyset(&act.sa_mask);
    for (int s : kSignals) sigaddset(&act.sa_mask, s);  // one cleanup at a time
    act.sa_flags = SA_RESTART;
    g_installed[i] = ::sigaction(kSignals[i], &act, nullptr) == 0;
  }
}

void restore_handlers() {
  for (std::size_t i = 0; i < std::size(kSignals); ++i) {
    struct sigaction now {};
    // Put back what we replaced, unless someone replaced us since.
    if (g_installed[i] && ::sigaction(kSignals[i], nullptr, &now) == 0 && !(now.sa_flags & SA_SIGINFO) &&
        now.sa_handler == remove_temps_and_reraise)
      ::sigaction(kSignals[i], &g_previous[i], nullptr);
    g_installed[i] = false;
  }
}

// Call with the signals blocked. A path too long, or a full table, goes
// unprotected (the write itself still works).
int register_temp(const std::string& path) {
  std::lock_guard lock(g_registry);
  if (path.size() >= sizeof(TempSlot::path)) return kNoSlot;
  for (int i = 0; i < int(std::size(g_slots)); ++i) {
    auto& s = g_slots[i];
    if (s.used.load(std::memory_order_relaxed)) continue;
    std::memcpy(s.path, path.c_str(), path.size() + 1);
    s.used.store(true, std::memory_order_release);
    if (g_named++ == 0) install_handler();
    return i;
  }
  return kNoSlot;
}

void unregister_temp(int slot) {
  if (slot == kNoSlot) return;
  std::lock_guard lock(g_registry);
  g_slots[slot].used.store(false, std::memory_order_release);
  if (--g_named == 0) restore_handlers();
}

// Holds SIGINT, SIGTERM and SIGHUP back from this thread while it lives.
class SignalsBlocked {
 public:
  SignalsBlocked() {
    sigset_t set;
    sigemptyset(&set);
    for (int s : kSignals) sigaddset(&set, s);
    ::pthread_sigmask(SIG_BLOCK, &set, &old_);
  }
  ~SignalsBlocked() { ::pthread_sigmask(SIG_SETMASK, &old_, nullptr); }
  SignalsBlocked(const SignalsBlocked&) = delete;
  SignalsBlocked& operator=(const SignalsBlocked&) = delete;

 private:
  sigset_t old_;
};

thread_local std::mt19937_64 t_names{std::random_device{}()};

// The temp name of `path` for this process: ".NAME.tmp<pid>.XXXXXX" (the
// pid lets a later writer tell a stale temp from a live one).
std::string temp_prefix(const fs::path& path) { return "." + path.filename().string() + ".tmp"; }

std::string temp_name(const fs::path& path, bool pattern) {
  std::string name = (dir_of(path) / (temp_prefix(path) + std::to_string(::getpid()) + ".XXXXXX")).string();
  if (!pattern) {
    static constexpr char kChars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    for (std::size_t i = name.size() - 6; i < name.size(); ++i) name[i] = kChars[t_names() % (sizeof(kChars) - 1)];
  }
  return name;
}

// Removes the temp files of `path` left by writers that died by SIGKILL (or
// power loss) inside the linkat + rename of a commit, or holding a named temp:
// ".NAME.tmp<pid>.XXXXXX" whose process no longer exists. A live writer's
// temp (its pid answers kill(pid, 0)) is never touched.
void remove_stale_temps(const fs::path& path) {
  const std::string prefix = temp_prefix(path);
  std::error_code ec;
  for (fs::directory_iterator it(dir_of(path), ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.size() <= prefix.size() + 7 || name.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string_view rest = std::string_view(name).substr(prefix.size());  // "<pid>.XXXXXX"
    const std::size_t dot = rest.size() - 7;
    if (dot > 9 || rest[dot] != '.' || rest.find_first_not_of("0123456789") != dot) continue;
    const long pid = std::stol(std::string(rest.substr(0, dot)));  // at most 9 digits
    if (pid <= 0) continue;
    if (::kill(pid_t(pid), 0) == 0 || errno != ESRCH) continue;  // alive (or not ours to judge)
    ::unlink(it->path().c_str());
  }
}

}  // namespace

// --- the writer ---------------------------------------------------------------

void AtomicFile::fail(const char* what, int err) {
  abandon();
  throw Error((flag_.empty() ? "" : flag_ + " ") + path_.string() + ": " + what + ": " + std::strerror(err));
}

void AtomicFile::abandon() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  if (!temp_.empty()) {
    ::unlink(temp_.c_str());
    unregister_temp(std::exchange(slot_, kNoSlot));
    temp_.clear();
  }
}

AtomicFile AtomicFile::open(const fs::path& path, const std::string& flag) {
  AtomicFile f;
  f.path_ = path;
  f.flag_ = flag;
  const std::string who = (flag.empty() ? "" : flag + " ") + path.string() + ": ";
  const fs::path dir = dir_of(path);
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) throw Error(who + "is a directory");
  if (::stat(dir.c_str(), &st) != 0 && errno == ENOENT) throw Error(who + "directory " + dir.string() + " does not exist");
  remove_stale_temps(path);
  if (!g_force_named.load()) {
    f.fd_ = ::open(dir.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
    if (f.fd_ < 0 && errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
      f.fail("cannot create a temporary file beside it", errno);
  }
  if (f.fd_ < 0) {  // no O_TMPFILE here: a named temp, removed by the handler
    std::string tmpl = temp_name(path, /*pattern=*/true);
    SignalsBlocked held;  // no signal between its creation and its slot
    f.fd_ = ::mkstemp(tmpl.data());
    if (f.fd_ < 0) f.fail("cannot create a temporary file beside it", errno);
    f.temp_ = tmpl;
    f.slot_ = register_temp(tmpl);
  }
  return f;
}

AtomicFile::AtomicFile(AtomicFile&& o) noexcept
    : path_(std::move(o.path_)), flag_(std::move(o.flag_)), temp_(std::exchange(o.temp_, {})),
      slot_(std::exchange(o.slot_, kNoSlot)), fd_(std::exchange(o.fd_, -1)) {}

AtomicFile& AtomicFile::operator=(AtomicFile&& o) noexcept {
  if (this != &o) {
    abandon();
    path_ = std::move(o.path_);
    flag_ = std::move(o.flag_);
    temp_ = std::exchange(o.temp_, {});
    slot_ = std::exchange(o.slot_, kNoSlot);
    fd_ = std::exchange(o.fd_, -1);
  }
  return *this;
}

AtomicFile::~AtomicFile() { abandon(); }

void AtomicFile::write(std::string_view bytes) {
  if (fd_ < 0) throw Error(path_.string() + ": written after its commit or a failure");
  for (std::size_t done = 0; done < bytes.size();) {
    const ssize_t n = ::write(fd_, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("write failed", errno);
    }
    done += std::size_t(n);
  }
}

void AtomicFile::commit() {
  if (fd_ < 0) throw Error(path_.string() + ": committed twice or after a failure");
  if (::fchmod(fd_, 0644) != 0) fail("chmod failed", errno);
  if (::fsync(fd_) != 0) fail("fsync failed", errno);
  {
    // The file has a name from here to the rename: SIGINT, SIGTERM and SIGHUP
    // wait (a signal another thread takes finds the name in a slot).
    SignalsBlocked held;
    if (temp_.empty()) {
      const std::string self = "/proc/self/fd/" + std::to_string(fd_);
      for (int tries = 0;; ++tries) {
        std::string name = temp_name(path_, /*pattern=*/false);
        slot_ = register_temp(name);
        temp_ = name;  // abandon() unlinks and releases it
        int r = ::linkat(AT_FDCWD, self.c_str(), AT_FDCWD, name.c_str(), AT_SYMLINK_FOLLOW);
        if (r != 0 && errno == ENOENT) r = ::linkat(fd_, "", AT_FDCWD, name.c_str(), AT_EMPTY_PATH);  // no /proc
        if (r == 0) break;
        const int err = errno;
        unregister_temp(std::exchange(slot_, kNoSlot));
        temp_.clear();  // not ours: never unlink it
        if (err != EEXIST || tries == 100) fail("cannot give the temporary file a name", err);
      }
    }
    if (::close(std::exchange(fd_, -1)) != 0) fail("close failed", errno);
    if (::rename(temp_.c_str(), path_.c_str()) != 0) fail("rename failed", errno);
    unregister_temp(std::exchange(slot_, kNoSlot));
    temp_.clear();
  }
  if (int dfd = ::open(dir_of(path_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
    ::fsync(dfd);  // make the rename itself durable
    ::close(dfd);
  }
}

void write_file_atomic(const std::filesystem::path& path, std::string_view contents) {
  AtomicFile f = AtomicFile::open(path);
  f.write(contents);
  f.commit();
}

void atomic_file_force_named_temp(bool on) { g_force_named.store(on); }

}  // namespace vkq
