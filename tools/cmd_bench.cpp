// vkquant bench: every kernel checked against its CPU reference, then timed
// with GPU timestamps against a roofline yardstick run interleaved in the
// same process; --compare puts several JSON files side by side.
#include <unistd.h>

#include <fmt/format.h>

#include <fstream>
#include <memory>
#include <optional>
#include <regex>

#include <nlohmann/json.hpp>

#include "bench/runner.hpp"
#include "commands.hpp"
#include "device_json.hpp"
#include "vkquant/atomic_file.hpp"
#include "vkquant/device.hpp"
#include "vkquant/error.hpp"
#include "vkquant/json_strict.hpp"

namespace vkq::cli {

namespace {

struct BenchFlags {
  std::string device = "default";
  std::string json;
  std::string filter;
  bool quick = false;
  int repeats = 0;
  std::vector<std::string> compare;
};

nlohmann::ordered_json read_json_file(const std::string& path) {
  const MappedFile file = map_json_file(path, "bench JSON");  // a regular file, of bounded size
  const auto* text = reinterpret_cast<const char*>(file.bytes().data());
  auto j = nlohmann::ordered_json::parse(text, text + file.size(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) throw Error(path + ": not valid JSON");
  if (!j.is_object() || !j.contains("devices") || !j["devices"].is_array())
    throw Error(path + ": not a `vkquant bench --json` file (no \"devices\" array)");
  for (const auto& d : j["devices"])
    if (!d.is_object() || !d.contains("cases") || !d["cases"].is_array() || !d.contains("device"))
      throw Error(path + ": a \"devices\" entry lacks \"device\" or \"cases\"");
  return j;
}

void compare(const std::vector<std::string>& paths) {
  std::vector<nlohmann::ordered_json> columns;
  std::vector<std::string> labels;
  for (const auto& p : paths) {
    const auto j = read_json_file(p);
    for (const auto& d : j["devices"]) {
      columns.push_back(d);
      labels.push_back(d["device"].value("name", "?") + " (" + p + ")");
    }
  }
  bench::print_compare(columns, labels);
}

void run(const BenchFlags& f) {
  if (!f.compare.empty()) return compare(f.compare);
  std::optional<AtomicFile> json;  // opened now: an unwritable path fails before the work
  if (!f.json.empty()) json = AtomicFile::open(f.json, "--json");
  Instance inst = Instance::create(InstanceOptions::from_env());
  std::vector<std::uint32_t> indices;
  if (f.device == "all") {
    for (const auto& d : inst.devices())
      if (d.usable()) indices.push_back(d.index);
  } else if (f.device == "default") {
    indices.push_back(inst.default_device());
  } else {
    char* end = nullptr;
    const long v = std::strtol(f.device.c_str(), &end, 10);
    if (f.device.empty() || *end || v < 0) throw CLI::ValidationError("--device", "expects `all` or an index, got '" + f.device + "'");
    indices.push_back(std::uint32_t(v));
  }
  if (!f.filter.empty()) {
    try {
      std::regex check(f.filter);
    } catch (const std::regex_error&) {
      throw CLI::ValidationError("--filter", "'" + f.filter + "' is not a valid regular expression");
    }
  }

  nlohmann::ordered_json out;
  out["tool"] = "vkquant bench";
  out["version"] = VKQ_VERSION;
  out["quick"] = f.quick;
  out["devices"] = nlohmann::ordered_json::array();
  bool failed = false;
  for (std::uint32_t index : indices) {
    Device dev = Device::create(inst, int(index));
    fmt::print("# {} ({}, {}, subgroup {})\n", dev.info().name, dev.info().vendor, dev.info().driver_info,
               dev.info().subgroup_size);
    bench::RunOptions ro;
    ro.cases.quick = f.quick;
    ro.filter = f.filter;
    ro.repeats = f.repeats;
    ro.progress = ::isatty(STDERR_FILENO);
    auto results = bench::run(dev, ro);
    bench::print_table(results);
    for (const auto& r : results) failed |= !r.error.empty();
    out["devices"].push_back({{"device", to_json(dev.info())}, {"cases", bench::to_json(results)}});
  }
  if (json) {
    json->write(out.dump(2) + "\n");
    json->commit();
  }
  if (failed) throw Error("some cases failed verification against the CPU reference (see FAILED above)");
}

}  // namespace

void add_bench(CLI::App& app) {
  auto f = std::make_shared<BenchFlags>();
  auto* cmd = app.add_subcommand("bench", "Check every kernel against the CPU, then time it against the rooflines");
  cmd->add_option("--device", f->device, "`all`, or a device index (default: the default device)");
  cmd->add_option("--json", f->json, "Write every figure and the device description to this file");
  cmd->add_option("--filter", f->filter, "Only cases whose name matches this regular expression");
  cmd->add_flag("--quick", f->quick, "Smaller sizes and fewer repeats (minutes on lavapipe)");
  cmd->add_option("--repeats", f->repeats, "Timed repeats per case (default 15 quick, 31 full)")->check(CLI::Range(3, 10000));
  cmd->add_option("--compare", f->compare, "Print these bench JSON files side by side instead of running")
      ->expected(1, -1);
  cmd->callback([f] { run(*f); });
}

}  // namespace vkq::cli
