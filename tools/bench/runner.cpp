#include "runner.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <regex>

#include "vkquant/error.hpp"
#include "vkquant/roofline.hpp"

namespace vkq::bench {

std::string differences(std::span<const float> got, std::span<const float> want, double atol, double rtol,
                        const char* what) {
  std::size_t bad = 0;
  double max_err = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double err = std::fabs(double(got[i]) - want[i]);
    max_err = std::max(max_err, err);
    if (!(err <= atol + rtol * std::fabs(want[i]))) ++bad;
  }
  if (bad == 0) return "";
  return std::to_string(bad) + " " + what + " differ from the CPU reference, max error " + std::to_string(max_err);
}

std::string run_and_compare(Device& d, const std::function<void(Stream&)>& rec, const Buffer& out,
                            const std::function<std::vector<float>()>& make_want, double atol, double rtol,
                            const char* what) {
  Stream s = Stream::create(d);
  rec(s);
  s.submit_and_wait();
  const std::vector<float> want = make_want();
  std::vector<float> got(want.size());
  out.download(got.data(), got.size() * 4);
  return differences(got, want, atol, rtol, what);
}

std::vector<std::pair<const char*, CaseFactory>>& registry() {
  static std::vector<std::pair<const char*, CaseFactory>> r;
  return r;
}

namespace {

const char* roof_name(Roof r) { return r == Roof::copy ? "copy" : r == Roof::read ? "read" : "write"; }

// Percentile by linear interpolation of sorted samples.
double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  const double pos = p * double(v.size() - 1);
  const auto lo = std::size_t(std::floor(pos)), hi = std::size_t(std::ceil(pos));
  return v[lo] + (v[hi] - v[lo]) * (pos - double(lo));
}

Stats stats(const std::vector<double>& v) { return {percentile(v, 0.5), percentile(v, 0.1), percentile(v, 0.9)}; }

// A roofline yardstick over a given byte volume; buffers shared between
// cases of the same volume.
struct Yardstick {
  Roof roof;
  std::uint64_t n = 0;  // floats
  Buffer a, b;
  double bytes() const { return roof == Roof::copy ? 8.0 * double(n) : 4.0 * double(n); }
  void record(Stream& s) {
    switch (roof) {
      case Roof::copy: roofline::copy(s, a, b, n); break;
      case Roof::read: roofline::read(s, a, n, b); break;
      case Roof::write: roofline::fill(s, a, n, 1.0f); break;
    }
  }
};

class Yardsticks {
 public:
  explicit Yardsticks(Device& d) : device_(d) {}
  // The yardstick moving the same bytes as `c` (at least 1 MiB, so it is
  // not all launch overhead).
  Yardstick& for_case(const Case& c) {
    double bytes = c.roof == Roof::copy ? std::max(c.bytes_read, c.bytes_written)
                   : c.roof == Roof::read ? c.bytes_read
                                          : c.bytes_written;
    const std::uint64_t n = std::max<std::uint64_t>(std::uint64_t(bytes / 4), (1u << 20) / 4);
    auto key = std::make_pair(int(c.roof), n);
    auto it = cache_.find(key);
    if (it != cache_.end()) return *it->second;
    auto y = std::make_unique<Yardstick>();
    y->roof = c.roof;
    y->n = n;
    y->a = Buffer::create(device_, n * 4);
    y->a.fill(0x3f800000u);  // 1.0f
    if (c.roof == Roof::copy) y->b = Buffer::create(device_, n * 4);
    if (c.roof == Roof::read) y->b = Buffer::create(device_, roofline::read_partial_count(n) * 4);
    return *cache_.emplace(key, std::move(y)).first->second;
  }

 private:
  Device& device_;
  std::map<std::pair<int, std::uint64_t>, std::unique_ptr<Yardstick>> cache_;
};

// The roofline kernels as cases of their own (their ratio is 1 by definition).
std::vector<Case> roofline_cases(Device& d, const Options& o) {
  const std::uint64_t bytes = (o.quick ? 16ull : 64ull) << 20, n = bytes / 4;
  auto src = std::make_shared<Buffer>(Buffer::create(d, bytes));
  auto dst = std::make_shared<Buffer>(Buffer::create(d, bytes));
  auto partials = std::make_shared<Buffer>(Buffer::create(d, roofline::read_partial_count(n) * 4));
  src->fill(0x3f800000u);
  const std::string mib = std::to_string(bytes >> 20) + "MiB";
  std::vector<Case> cases;
  cases.push_back({"roofline/copy/" + mib, "roofline", Roof::copy, double(bytes), double(bytes), 0, "",
                   [=](Stream& s) { roofline::copy(s, *src, *dst, n); }, [] { return std::string(); }});
  cases.push_back({"roofline/read/" + mib, "roofline", Roof::read, double(bytes), 0, double(n), "",
                   [=](Stream& s) { roofline::read(s, *src, n, *partials); }, [] { return std::string(); }});
  cases.push_back({"roofline/write/" + mib, "roofline", Roof::write, 0, double(bytes), 0, "",
                   [=](Stream& s) { roofline::fill(s, *dst, n, 2.0f); }, [] { return std::string(); }});
  return cases;
}

// Times `calls` back-to-back calls of `rec` between two timestamps; ns per call.
template <class F>
double time_calls(Stream& s, TimestampPool& pool, int calls, F&& rec) {
  s.reset_queries(pool);
  s.timestamp(pool, 0);
  for (int i = 0; i < calls; ++i) rec(s);
  s.timestamp(pool, 1);
  s.submit_and_wait();
  const auto ns = pool.read_ns();
  return (ns[1] - ns[0]) / calls;
}

}  // namespace

std::vector<Result> run(Device& device, const RunOptions& options) {
  std::vector<Case> cases = roofline_cases(device, options.cases);
  for (const auto& [family, factory] : registry()) {
    auto more = factory(device, options.cases);
    cases.insert(cases.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
  }
  if (!options.filter.empty()) {
    const std::regex re(options.filter);
    std::erase_if(cases, [&](const Case& c) { return !std::regex_search(c.name, re); });
  }
  const int repeats = options.repeats > 0 ? options.repeats : options.cases.quick ? 15 : 31;
  const double target_ns = options.cases.quick ? 2e6 : 10e6;  // per timed batch

  Stream s = Stream::create(device);
  TimestampPool pool = TimestampPool::create(device, 2);
  Yardsticks yardsticks(device);
  std::vector<Result> results;
  std::size_t index = 0;
  for (Case& c : cases) {
    ++index;
    if (options.progress) std::fprintf(stderr, "\r\033[K[%zu/%zu] %s", index, cases.size(), c.name.c_str());
    Result r;
    r.name = c.name;
    r.family = c.family;
    r.baseline = c.baseline;
    r.roof = roof_name(c.roof);
    r.bytes_read = c.bytes_read;
    r.bytes_written = c.bytes_written;
    r.ops = c.ops;
    try {
      r.error = c.verify();
      if (r.error.empty()) {
        Yardstick& y = yardsticks.for_case(c);
        // Warm up both, then size the batches so one takes about target_ns.
        const double once = time_calls(s, pool, 1, c.record);
        const double y_once = time_calls(s, pool, 1, [&](Stream& st) { y.record(st); });
        r.calls_per_submit = int(std::clamp(target_ns / std::max(once, 1.0), 1.0, 64.0));
        const int y_calls = int(std::clamp(target_ns / std::max(y_once, 1.0), 1.0, 64.0));
        std::vector<double> t, ty;
        for (int rep = 0; rep < repeats; ++rep) {  // interleaved: case, yardstick, case, ...
          t.push_back(time_calls(s, pool, r.calls_per_submit, c.record));
          ty.push_back(time_calls(s, pool, y_calls, [&](Stream& st) { y.record(st); }));
        }
        r.repeats = repeats;
        r.time = stats(t);
        r.roof_time = stats(ty);
        r.gbps = (c.bytes_read + c.bytes_written) / r.time.median_ns;
        r.gops = c.ops / r.time.median_ns;
        r.roof_gbps = y.bytes() / r.roof_time.median_ns;
        r.roof_ratio = r.gbps / r.roof_gbps;
      }
    } catch (const Error& e) {
      r.error = e.what();
    }
    results.push_back(std::move(r));
  }
  if (options.progress) std::fprintf(stderr, "\r\033[K");
  for (Result& r : results) {
    if (r.baseline.empty() || !r.error.empty()) continue;
    auto it = std::find_if(results.begin(), results.end(), [&](const Result& b) { return b.name == r.baseline; });
    if (it != results.end() && it->error.empty()) r.speedup = it->time.median_ns / r.time.median_ns;
  }
  return results;
}

nlohmann::ordered_json to_json(const std::vector<Result>& results) {
  auto out = nlohmann::ordered_json::array();
  for (const Result& r : results) {
    nlohmann::ordered_json j;
    j["name"] = r.name;
    j["family"] = r.family;
    j["ok"] = r.error.empty();
    if (!r.error.empty()) {
      j["error"] = r.error;
      out.push_back(j);
      continue;
    }
    j["median_us"] = r.time.median_ns / 1e3;
    j["p10_us"] = r.time.p10_ns / 1e3;
    j["p90_us"] = r.time.p90_ns / 1e3;
    j["bytes_read"] = r.bytes_read;
    j["bytes_written"] = r.bytes_written;
    j["gb_per_s"] = r.gbps;
    if (r.ops > 0) j["gop_per_s"] = r.gops;
    j["roofline"] = {{"kernel", r.roof},
                     {"median_us", r.roof_time.median_ns / 1e3},
                     {"p10_us", r.roof_time.p10_ns / 1e3},
                     {"p90_us", r.roof_time.p90_ns / 1e3},
                     {"gb_per_s", r.roof_gbps},
                     {"ratio", r.roof_ratio}};
    if (!r.baseline.empty()) j["baseline"] = {{"name", r.baseline}, {"speedup", r.speedup}};
    j["calls_per_submit"] = r.calls_per_submit;
    j["repeats"] = r.repeats;
    out.push_back(j);
  }
  return out;
}

void print_table(const std::vector<Result>& results) {
  fmt::print("{:<40} {:>11} {:>11} {:>11} {:>8} {:>8} {:>12} {:>9}\n", "case", "median us", "p10 us", "p90 us",
             "GB/s", "GOP/s", "x roofline", "x fp16");
  for (const Result& r : results) {
    if (!r.error.empty()) {
      fmt::print("{:<40} FAILED: {}\n", r.name, r.error);
      continue;
    }
    const std::string gops = r.ops > 0 ? fmt::format("{:.1f}", r.gops) : "-";
    const std::string speed = r.baseline.empty() ? "-" : fmt::format("{:.2f}", r.speedup);
    fmt::print("{:<40} {:>11.1f} {:>11.1f} {:>11.1f} {:>8.2f} {:>8} {:>7.2f} {:<4} {:>9}\n", r.name,
               r.time.median_ns / 1e3, r.time.p10_ns / 1e3, r.time.p90_ns / 1e3, r.gbps, gops, r.roof_ratio,
               r.roof, speed);
  }
}

void print_compare(const std::vector<nlohmann::ordered_json>& files, const std::vector<std::string>& labels) {
  // Case names in first-seen order across files.
  std::vector<std::string> names;
  for (const auto& f : files)
    for (const auto& c : f.at("cases"))
      if (std::find(names.begin(), names.end(), c.at("name").get<std::string>()) == names.end())
        names.push_back(c.at("name").get<std::string>());
  fmt::print("{:<40}", "case (median us | x roofline | x fp16)");
  for (const auto& l : labels) fmt::print(" {:>30}", l.substr(0, 30));
  fmt::print("\n");
  for (const auto& name : names) {
    fmt::print("{:<40}", name);
    for (const auto& f : files) {
      std::string cell = "-";
      for (const auto& c : f.at("cases")) {
        if (c.at("name") != name) continue;
        if (!c.value("ok", false)) {
          cell = "FAILED";
        } else {
          cell = fmt::format("{:.1f} | {:.2f}", c.at("median_us").get<double>(),
                             c.at("roofline").at("ratio").get<double>());
          if (c.contains("baseline")) cell += fmt::format(" | {:.2f}", c.at("baseline").at("speedup").get<double>());
        }
      }
      fmt::print(" {:>30}", cell);
    }
    fmt::print("\n");
  }
}

}  // namespace vkq::bench
