// Value-cache storage types (--vcache; docs/design.md §2): fp16, or blocks of
// 32 coordinates of one (position, KV head) row stored as int8 with an fp16
// scale (q8) or as 4-bit codes with an fp16 scale and min (q4). Shared by
// the attention kernels (vkquant/kernels/attn.hpp) and their CPU reference.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace vkq {

enum class VType : std::uint32_t { f16 = 0, q8 = 1, q4 = 2 };  // values of shaders/include/attn.h VKQ_V_*

constexpr std::uint32_t kVBlock = 32;  // coordinates per q8 / q4 block

// "fp16", "q8", "q4" (the --vcache spellings), and back (nullopt: unknown).
const char* vtype_name(VType t);
std::optional<VType> vtype_from_name(std::string_view s);

// Words of one cached row (position, KV head) of hd coordinates: codes, and
// scales (q8: fp16 scales two per word, each row whole words; q4: one
// (scale, min) half pair per block; fp16: none).
std::uint32_t vtype_code_words(VType t, std::uint32_t hd);
std::uint32_t vtype_scale_words(VType t, std::uint32_t hd);

}  // namespace vkq
