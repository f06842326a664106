// JSON description of a device, shared by `devices --json` and `bench --json`.
#pragma once

#include <nlohmann/json.hpp>

#include "vkquant/instance.hpp"

namespace vkq::cli {

nlohmann::ordered_json to_json(const DeviceInfo& d);

}  // namespace vkq::cli
