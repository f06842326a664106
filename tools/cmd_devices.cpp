// vkquant devices [--json]: every Vulkan device and the limits vkquant cares about.
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "device_json.hpp"
#include "vkquant/error.hpp"
#include "vkquant/instance.hpp"

namespace vkq::cli {

namespace {

std::string yes(bool b) { return b ? "yes" : "no"; }

void print_text(const Instance& inst) {
  const auto def = [&]() -> int {
    try {
      return int(inst.default_device());
    } catch (const Error&) {
      return -1;
    }
  }();
  for (const auto& d : inst.devices()) {
    fmt::print("[{}] {}{}\n", d.index, d.name, int(d.index) == def ? "  (default)" : "");
    fmt::print("    vendor {} (0x{:04x}), type {}, API {}, driver {} {} ({})\n", d.vendor, d.vendor_id, d.type_name(),
               d.api_version_string(), d.driver_name, d.driver_version_string(), d.driver_info);
    std::string ops;
    for (const auto& o : d.subgroup_op_names()) ops += (ops.empty() ? "" : " ") + o;
    fmt::print("    subgroup size {} (min {}, max {}), ops: {}\n", d.subgroup_size, d.min_subgroup_size,
               d.max_subgroup_size, ops);
    fmt::print("    maxStorageBufferRange {} MiB, shared memory {} KiB, workgroup count {}x{}x{}, size {}x{}x{}, "
               "invocations {}\n",
               d.max_storage_buffer_range >> 20, d.max_shared_memory >> 10, d.max_workgroup_count[0],
               d.max_workgroup_count[1], d.max_workgroup_count[2], d.max_workgroup_size[0], d.max_workgroup_size[1],
               d.max_workgroup_size[2], d.max_workgroup_invocations);
    fmt::print("    fp16 {}, int8 {}, 16-bit storage {}, 8-bit storage {}, integer dot product {}, cooperative matrix {}\n",
               yes(d.fp16), yes(d.int8), yes(d.storage16), yes(d.storage8), yes(d.integer_dot_product),
               yes(d.cooperative_matrix));
    fmt::print("    timestampPeriod {} ns ({} valid bits), device-local memory {} MiB{}\n", d.timestamp_period_ns,
               d.timestamp_valid_bits, d.device_local_bytes >> 20, d.usable() ? "" : "  [not usable by vkquant]");
  }
}

}  // namespace

void add_devices(CLI::App& app) {
  auto* cmd = app.add_subcommand("devices", "List every Vulkan device and its limits");
  auto json = std::make_shared<bool>(false);
  cmd->add_flag("--json", *json, "Print JSON instead of text");
  cmd->callback([json] {
    InstanceOptions opts = InstanceOptions::from_env();
    Instance inst = Instance::create(opts);
    if (*json) {
      nlohmann::ordered_json out;
      out["devices"] = nlohmann::ordered_json::array();
      for (const auto& d : inst.devices()) out["devices"].push_back(to_json(d));
      fmt::print("{}\n", out.dump(2));
    } else {
      print_text(inst);
    }
  });
}

}  // namespace vkq::cli
