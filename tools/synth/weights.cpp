#include "weights.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <string_view>
#include <utility>
#include <vector>

#include "vkquant/gguf_convert.hpp"

namespace vkq::synth {

namespace {

std::uint64_t splitmix(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

std::uint64_t fnv1a(std::string_view s) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (const char c : s) h = (h ^ std::uint8_t(c)) * 0x100000001b3ull;
  return h;
}

// Approximately N(0, 1): the sum of four 16-bit uniforms (Irwin-Hall, n = 4).
inline float gauss(std::uint64_t r) {
  const std::uint32_t s = std::uint32_t(r & 0xffff) + std::uint32_t((r >> 16) & 0xffff) + std::uint32_t((r >> 32) & 0xffff) +
                          std::uint32_t(r >> 48);
  return (float(s) - 131070.0f) * (1.0f / 37837.2f);  // 65536 * sqrt(4/12)
}

// Row `row` of `t` into out[0..cols).
void fill_row(const PlannedTensor& t, std::uint64_t row, std::uint64_t seed, float stddev, float* out, std::uint64_t cols) {
  switch (t.fill) {
    case Fill::ones:
      std::fill_n(out, cols, 1.0f);
      return;
    case Fill::values:
      for (std::uint64_t c = 0; c < cols; ++c) out[c] = t.values[row * cols + c];
      return;
    case Fill::normal: break;
  }
  std::uint64_t state = seed ^ fnv1a(t.hf.empty() ? t.gguf : t.hf);
  state += 0x632BE59BD9B4E019ull * (row + 1);
  splitmix(state);
  for (std::uint64_t c = 0; c < cols; ++c) out[c] = stddev * gauss(splitmix(state));
}

inline std::uint16_t to_bf16(float f) {
  const std::uint32_t u = std::bit_cast<std::uint32_t>(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return std::uint16_t((u >> 16) | 0x40);  // NaN stays NaN
  return std::uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

inline std::uint16_t to_f16(float f) {
  const std::uint32_t x = std::bit_cast<std::uint32_t>(f);
  const std::uint32_t sign = (x >> 16) & 0x8000u;
  const std::uint32_t ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u) return std::uint16_t(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u : 0u));
  if (ax >= 0x477ff000u) return std::uint16_t(sign | 0x7c00u);  // rounds past 65504
  if (ax < 0x38800000u) {  // subnormal half (or zero): round to nearest even in units of 2^-24
    const float v = std::bit_cast<float>(ax) * 16777216.0f;
    const float r = std::nearbyint(v);
    return std::uint16_t(sign | std::uint32_t(r));
  }
  const std::uint32_t mant = ax & 0x7fffffu;
  std::uint32_t h = ((ax >> 23) - 112) << 10 | (mant >> 13);
  const std::uint32_t rest = mant & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;
  return std::uint16_t(sign | h);
}

// (rows, cols) a tensor is produced as: 1-D tensors one element per row, so
// that a permuted bias is permuted like its matrix.
std::pair<std::uint64_t, std::uint64_t> rows_cols(const PlannedTensor& t) {
  if (t.shape.size() == 1) return {t.shape[0], 1};
  return {t.elements() / t.shape.back(), t.shape.back()};
}

std::uint64_t source_row(const PlannedTensor& t, std::uint64_t row, std::uint64_t rows, bool permuted) {
  return permuted ? gguf_permuted_source_row(row, rows, t.permute_heads) : row;
}

}  // namespace

std::uint32_t storage_bytes(Storage s) { return s == Storage::f32 ? 4 : 2; }

float tensor_value(const PlannedTensor& t, std::uint64_t row, std::uint64_t col, std::uint64_t seed, float stddev) {
  const std::uint64_t cols = rows_cols(t).second;
  std::vector<float> r(cols);
  fill_row(t, row, seed, stddev, r.data(), cols);
  return r[col];
}

void emit_tensor(const PlannedTensor& t, Storage s, bool permuted, std::uint64_t seed, float stddev, const ByteSink& sink) {
  const auto [rows, cols] = rows_cols(t);
  const std::uint64_t esize = storage_bytes(s);
  constexpr std::uint64_t kChunk = 4u << 20;  // bytes per piece handed to the sink
  std::vector<float> row(cols);
  std::vector<std::byte> buf;
  buf.reserve(std::max<std::uint64_t>(kChunk, cols * esize));
  for (std::uint64_t r = 0; r < rows; ++r) {
    fill_row(t, source_row(t, r, rows, permuted), seed, stddev, row.data(), cols);
    const std::size_t at = buf.size();
    buf.resize(at + cols * esize);
    std::byte* out = buf.data() + at;
    for (std::uint64_t c = 0; c < cols; ++c) {
      if (s == Storage::f32) {
        std::memcpy(out + 4 * c, &row[c], 4);
      } else {
        const std::uint16_t h = s == Storage::bf16 ? to_bf16(row[c]) : to_f16(row[c]);
        std::memcpy(out + 2 * c, &h, 2);
      }
    }
    if (buf.size() >= kChunk) {
      sink(buf);
      buf.clear();
    }
  }
  if (!buf.empty()) sink(buf);
}

}  // namespace vkq::synth
