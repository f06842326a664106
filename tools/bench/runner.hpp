// Times bench cases with GPU timestamps, interleaved with their roofline
// yardstick, and summarises medians and percentiles.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench.hpp"

namespace vkq::bench {

struct Stats {
  double median_ns = 0, p10_ns = 0, p90_ns = 0;
};

struct Result {
  std::string name, family, baseline, roof;
  std::string error;  // verification or run failure; empty when it ran
  double bytes_read = 0, bytes_written = 0, ops = 0;
  Stats time;          // per call
  Stats roof_time;     // the yardstick over the same byte volume, per call
  double gbps = 0, gops = 0, roof_gbps = 0, roof_ratio = 0;
  double speedup = 0;  // baseline median / this median (0 without a baseline)
  int calls_per_submit = 0, repeats = 0;
};

struct RunOptions {
  Options cases;
  std::string filter;  // ECMAScript regex on case names; empty: all
  int repeats = 0;     // 0: 15 quick, 31 full
  bool progress = false;
};

// Runs every registered case (plus the roofline kernels themselves) on `device`.
std::vector<Result> run(Device& device, const RunOptions& options);

nlohmann::ordered_json to_json(const std::vector<Result>& results);
void print_table(const std::vector<Result>& results);

// Side-by-side table of several `bench --json` files (one column per file).
void print_compare(const std::vector<nlohmann::ordered_json>& files, const std::vector<std::string>& labels);

}  // namespace vkq::bench
