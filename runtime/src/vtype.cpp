#include "vkquant/vtype.hpp"

namespace vkq {

namespace {
struct Name {
  VType t;
  const char* name;
};
constexpr Name kNames[] = {{VType::f16, "fp16"}, {VType::q8, "q8"}, {VType::q4, "q4"}};
}  // namespace

const char* vtype_name(VType t) {
  for (const Name& n : kNames)
    if (n.t == t) return n.name;
  return "?";
}

std::optional<VType> vtype_from_name(std::string_view s) {
  for (const Name& n : kNames)
    if (s == n.name) return n.t;
  return std::nullopt;
}

std::uint32_t vtype_code_words(VType t, std::uint32_t hd) {
  return t == VType::f16 ? hd / 2 : t == VType::q8 ? hd / 4 : hd / 8;
}

std::uint32_t vtype_scale_words(VType t, std::uint32_t hd) {
  const std::uint32_t blocks = hd / kVBlock;
  return t == VType::f16 ? 0 : t == VType::q8 ? (blocks + 1) / 2 : blocks;
}

}  // namespace vkq
