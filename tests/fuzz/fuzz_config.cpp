// libFuzzer: a config.json through parse_json_strict and config_from_hf
// (which validates the numbers against each other).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <nlohmann/json.hpp>

#include "vkquant/error.hpp"
#include "vkquant/json_strict.hpp"
#include "vkquant/model/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const nlohmann::json j = vkq::parse_json_strict("config.json", text);
    const vkq::ModelConfig c = vkq::config_from_hf(j, "config.json");
    volatile std::uint64_t sink = std::uint64_t(c.q_dim()) + c.kv_dim() + c.moe();
    (void)sink;
  } catch (const vkq::Error&) {
  }
  return 0;
}
