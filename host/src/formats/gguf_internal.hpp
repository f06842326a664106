// Shared by the GGUF reader and writer (not installed).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "vkquant/gguf.hpp"

namespace vkq::gguf_detail {

inline constexpr char kMagic[4] = {'G', 'G', 'U', 'F'};

// Bytes one scalar of `t` takes in a file (0 for string/array/unknown).
constexpr std::uint32_t scalar_size(GgufType t) {
  switch (t) {
    case GgufType::u8: case GgufType::i8: case GgufType::boolean: return 1;
    case GgufType::u16: case GgufType::i16: return 2;
    case GgufType::u32: case GgufType::i32: case GgufType::f32: return 4;
    case GgufType::u64: case GgufType::i64: case GgufType::f64: return 8;
    default: return 0;
  }
}
constexpr bool is_known(std::uint32_t t) { return t <= std::uint32_t(GgufType::f64); }
constexpr bool is_unsigned(GgufType t) { return t == GgufType::u8 || t == GgufType::u16 || t == GgufType::u32 || t == GgufType::u64; }
constexpr bool is_signed(GgufType t) { return t == GgufType::i8 || t == GgufType::i16 || t == GgufType::i32 || t == GgufType::i64; }
constexpr bool is_float(GgufType t) { return t == GgufType::f32 || t == GgufType::f64; }

// 'name' with control bytes escaped, cut after `limit` bytes: for messages.
std::string quote_name(std::string_view s, std::size_t limit = 80);

// Bytes of a tensor of `type` with dims `ne`; false (and a reason) when the
// type is unknown, a dim is zero, ne[0] is not a multiple of the block or a
// product overflows 64 bits.
bool tensor_bytes(std::uint32_t type, const std::vector<std::uint64_t>& ne, std::uint64_t& bytes, std::string& why);

// Checks that `v`'s representation matches its declared type and that every
// value fits that type's width; returns the reason when it does not.
std::string check_value(const GgufValue& v);

}  // namespace vkq::gguf_detail
