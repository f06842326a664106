// Lookup of the SPIR-V embedded at build time (generated shader_registry.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace vkq::detail {

struct ShaderBlob {
  const char* name;
  const std::uint32_t* code;
  std::size_t words;
};

// nullptr if no shader of that name was built.
const ShaderBlob* find_shader(std::string_view name);
// Every embedded shader, in build order.
std::span<const ShaderBlob> all_shaders();

}  // namespace vkq::detail
