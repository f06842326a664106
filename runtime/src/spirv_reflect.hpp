// What a compute shader's SPIR-V declares about its interface, read from the
// module itself so that the host keeps no second copy of it (binding counts
// and push-constant sizes written by hand beside every dispatch drift).
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace vkq::detail {

struct ShaderInterface {
  static constexpr std::uint32_t kNoId = 0xffffffffu;
  std::uint32_t bindings = 0;    // storage buffers at set 0, bindings 0 .. bindings-1 (each declared)
  std::uint32_t push_bytes = 0;  // the push-constant block's size in bytes (0: none)
  std::vector<std::uint32_t> spec_ids;  // the specialization constant ids it declares, ascending
  // Per workgroup dimension: the specialization constant id that sets it
  // (kNoId: none), else the size fixed in the shader.
  std::array<std::uint32_t, 3> local_size_id{kNoId, kNoId, kNoId};
  std::array<std::uint32_t, 3> local_size{1, 1, 1};
};

// Reads the interface of `code` (one compute entry point). Throws vkq::Error
// naming `name` when the module is malformed or declares what the runtime
// cannot bind: a descriptor other than a storage buffer, a set other than 0,
// a gap in the bindings, or a push-constant member of a type it cannot size.
ShaderInterface reflect_shader(std::span<const std::uint32_t> code, std::string_view name);

}  // namespace vkq::detail
