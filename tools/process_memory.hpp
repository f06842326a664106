// The process's memory as Linux reports it (/proc/self/status): peak
// resident set (VmHWM) and the current resident set split into anonymous
// memory and mapped-file pages (RssAnon, RssFile). Memory-mapped model files
// count in RssFile; on a CPU Vulkan driver (lavapipe) device buffers are
// anonymous memory of this process.
#pragma once

#include <cstdint>
#include <fstream>
#include <string>

namespace vkq::cli {

struct ProcessMemory {
  std::uint64_t peak_rss = 0, rss_anon = 0, rss_file = 0;  // bytes; 0 where /proc is unavailable
};

inline ProcessMemory process_memory() {
  ProcessMemory m;
  std::ifstream in("/proc/self/status");
  std::string key;
  std::uint64_t kb = 0;
  while (in >> key) {
    if (key == "VmHWM:" && in >> kb) m.peak_rss = kb << 10;
    else if (key == "RssAnon:" && in >> kb) m.rss_anon = kb << 10;
    else if (key == "RssFile:" && in >> kb) m.rss_file = kb << 10;
    in.ignore(1 << 16, '\n');
  }
  return m;
}

}  // namespace vkq::cli
