// Private to runtime/src: the little-endian field access and ggml's
// rounding that quant.cpp (tables, legacy blocks, IQ4, dispatch) and
// quant_kquants.cpp (the K-quant blocks) share, and the K-quant codecs.
// Both files are compiled with -ffp-contract=off (see quant.cpp).
#pragma once

#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>

#include "vkquant/half.hpp"

namespace vkq::quant::detail {

// --- little-endian fields ----------------------------------------------------

inline std::uint8_t byte_at(const std::byte* p, std::size_t i) { return std::uint8_t(p[i]); }

inline float half_at(const std::byte* p) {
  std::uint16_t h;
  std::memcpy(&h, p, 2);
  return from_half(h);
}
inline void put_half(std::byte* p, float v) {
  const half_bits h = to_half(v);
  std::memcpy(p, &h, 2);
}
inline std::uint16_t u16_at(const std::byte* p) {
  std::uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
inline std::uint32_t u32_at(const std::byte* p) {
  std::uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

inline float bf16_to_float(std::uint16_t h) { return std::bit_cast<float>(std::uint32_t(h) << 16); }
// Round to nearest even; NaNs stay NaN and become quiet (ggml_compute_fp32_to_bf16).
inline std::uint16_t float_to_bf16(float f) {
  const std::uint32_t u = std::bit_cast<std::uint32_t>(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return std::uint16_t((u >> 16) | 0x40u);
  return std::uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

// --- rounding as ggml's quantizers do it ---------------------------------------

// Round half to even for |v| < 2^22 (ggml's nearest_int): adding 1.5·2^23
// leaves the rounded integer in the low mantissa bits. Defined for any float
// (garbage but no undefined behaviour outside that range).
inline int round_even(float v) {
  const float shifted = v + 12582912.0f;
  return int(std::bit_cast<std::uint32_t>(shifted) & 0x007fffffu) - 0x00400000;
}

// C's float-to-integer conversion (truncation toward zero) where the value
// fits; NaN gives 0 and out-of-range values saturate, where C would be
// undefined. The legacy quantizers round with (int)(x + 0.5) this way.
inline int truncate(float v) {
  if (!(v == v)) return 0;
  if (v >= 2147483520.0f) return std::numeric_limits<int>::max();
  if (v <= -2147483648.0f) return std::numeric_limits<int>::min();
  return int(v);
}

// A group whose largest magnitude is below this is all zero (GROUP_MAX_EPS).
constexpr float kZeroGroup = 1e-15f;

// The element of largest magnitude, with its sign (the first one on ties).
inline float signed_absmax(const float* x, int n) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < n; ++j)
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  return max;
}

// The K-quant blocks (256 elements; layouts in quant_kquants.cpp): decode
// one block into y (256 floats), encode 256 floats of x into one block.
void decode_q2_k(const std::byte* b, float* y);
void encode_q2_k(const float* x, std::byte* b);
void decode_q3_k(const std::byte* b, float* y);
void encode_q3_k(const float* x, std::byte* b);
void decode_q4_k(const std::byte* b, float* y);
void encode_q4_k(const float* x, std::byte* b);
void decode_q5_k(const std::byte* b, float* y);
void encode_q5_k(const float* x, std::byte* b);
void decode_q6_k(const std::byte* b, float* y);
void encode_q6_k(const float* x, std::byte* b);

}  // namespace vkq::quant::detail
