// IEEE fp16 <-> fp32 on the host, round-to-nearest-even, bit-exact with GLSL's
// packHalf2x16/unpackHalf2x16 for finite values.
#pragma once

#include <bit>
#include <cstdint>
#include <span>
#include <vector>

namespace vkq {

using half_bits = std::uint16_t;

constexpr half_bits to_half(float f) {
  const std::uint32_t x = std::bit_cast<std::uint32_t>(f);
  const std::uint32_t sign = (x >> 16) & 0x8000u;
  const std::uint32_t exp = (x >> 23) & 0xffu;
  std::uint32_t mant = x & 0x7fffffu;
  if (exp == 0xff) return half_bits(sign | 0x7c00u | (mant ? 0x200u : 0u));  // inf / nan
  int e = int(exp) - 127 + 15;
  if (e >= 31) return half_bits(sign | 0x7c00u);  // overflow -> inf
  if (e <= 0) {                                    // subnormal or zero
    if (e < -10) return half_bits(sign);
    mant |= 0x800000u;
    const int shift = 14 - e;
    std::uint32_t h = mant >> shift;
    const std::uint32_t rem = mant & ((1u << shift) - 1), halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (h & 1u))) ++h;
    return half_bits(sign | h);
  }
  std::uint32_t h = (std::uint32_t(e) << 10) | (mant >> 13);
  const std::uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;  // may carry into the exponent: still correct
  return half_bits(sign | h);
}

constexpr float from_half(half_bits h) {
  const std::uint32_t sign = std::uint32_t(h & 0x8000u) << 16;
  const std::uint32_t exp = (h >> 10) & 0x1fu;
  std::uint32_t mant = h & 0x3ffu;
  if (exp == 0) {
    if (mant == 0) return std::bit_cast<float>(sign);
    int e = -1;
    do {  // normalise the subnormal
      ++e;
      mant <<= 1;
    } while (!(mant & 0x400u));
    return std::bit_cast<float>(sign | (std::uint32_t(127 - 15 - e) << 23) | ((mant & 0x3ffu) << 13));
  }
  if (exp == 31) return std::bit_cast<float>(sign | 0x7f800000u | (mant << 13));
  return std::bit_cast<float>(sign | ((exp + 127 - 15) << 23) | (mant << 13));
}

// Converts a float array to fp16 bits (and back).
inline std::vector<half_bits> to_half(std::span<const float> v) {
  std::vector<half_bits> out(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) out[i] = to_half(v[i]);
  return out;
}
inline std::vector<float> from_half(std::span<const half_bits> v) {
  std::vector<float> out(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) out[i] = from_half(v[i]);
  return out;
}
// Rounds every value through fp16 (what a kernel reading fp16 storage sees).
inline std::vector<float> round_to_half(std::span<const float> v) {
  std::vector<float> out(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) out[i] = from_half(to_half(v[i]));
  return out;
}

}  // namespace vkq
