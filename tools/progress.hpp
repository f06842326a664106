// A one-line progress bar on stderr, drawn only when stderr is a terminal and
// at most ten times a second (a phase's first and last update always: the
// label of a new phase shows at once); erased when done.
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

namespace vkq::cli {

class Progress {
 public:
  Progress() : enabled_(::isatty(STDERR_FILENO)) {}
  ~Progress() { clear(); }
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // Shows `label` with `fraction` (0..1) done.
  void update(const std::string& label, double fraction) {
    if (!enabled_) return;
    const auto now = std::chrono::steady_clock::now();
    if (drawn_ && now - last_ < std::chrono::milliseconds(100) && fraction > 0.0 && fraction < 1.0) return;
    last_ = now;
    drawn_ = true;
    const int width = 30, filled = int(fraction * width + 0.5);
    std::fprintf(stderr, "\r\033[K[%.*s%*s] %3d%% %s", filled, "##############################", width - filled, "",
                 int(fraction * 100 + 0.5), label.c_str());
    std::fflush(stderr);
  }
  void clear() {
    if (enabled_ && drawn_) std::fprintf(stderr, "\r\033[K");
    drawn_ = false;
  }

 private:
  bool enabled_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point last_{};
};

}  // namespace vkq::cli
