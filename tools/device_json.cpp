#include "device_json.hpp"

namespace vkq::cli {

nlohmann::ordered_json to_json(const DeviceInfo& d) {
  nlohmann::ordered_json j;
  j["index"] = d.index;
  j["name"] = d.name;
  j["vendor"] = d.vendor;
  j["vendor_id"] = d.vendor_id;
  j["device_id"] = d.device_id;
  j["type"] = d.type_name();
  j["driver_name"] = d.driver_name;
  j["driver_info"] = d.driver_info;
  j["driver_version"] = d.driver_version_string();
  j["api_version"] = d.api_version_string();
  j["usable"] = d.usable();
  j["subgroup"] = {{"size", d.subgroup_size},
                   {"min_size", d.min_subgroup_size},
                   {"max_size", d.max_subgroup_size},
                   {"size_control", d.subgroup_size_control},
                   {"operations", d.subgroup_op_names()},
                   {"compute_stage", bool(d.subgroup_stages & VK_SHADER_STAGE_COMPUTE_BIT)}};
  j["limits"] = {{"max_storage_buffer_range", d.max_storage_buffer_range},
                 {"min_storage_buffer_offset_alignment", d.min_storage_buffer_offset_alignment},
                 {"max_memory_allocation_size", d.max_memory_allocation_size},
                 {"max_buffer_size", d.max_buffer_size},
                 {"max_compute_shared_memory_size", d.max_shared_memory},
                 {"max_compute_workgroup_count", d.max_workgroup_count},
                 {"max_compute_workgroup_size", d.max_workgroup_size},
                 {"max_compute_workgroup_invocations", d.max_workgroup_invocations},
                 {"max_push_constants_size", d.max_push_constants},
                 {"device_local_bytes", d.device_local_bytes}};
  j["features"] = {{"fp16", d.fp16},
                   {"int8", d.int8},
                   {"int16", d.int16},
                   {"int64", d.int64},
                   {"storage_buffer_16bit", d.storage16},
                   {"storage_buffer_8bit", d.storage8},
                   {"integer_dot_product", d.integer_dot_product},
                   {"cooperative_matrix", d.cooperative_matrix}};
  j["timestamp_period_ns"] = d.timestamp_period_ns;
  j["timestamp_valid_bits"] = d.timestamp_valid_bits;
  return j;
}

}  // namespace vkq::cli
