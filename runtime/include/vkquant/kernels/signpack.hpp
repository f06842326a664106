// Sign packing: rows of d floats (fp32 or fp16) -> ceil(d/32) uint32 sign
// words (bit 1 for x >= 0) + alpha = ||x||_1 / d, x = v or v - row mean; and
// the inverse (bits + alpha (+ mean) -> alpha * (+-1) (+ mean)). Layouts are
// described in shaders/include/signpack.h. Buffers may exceed
// maxStorageBufferRange: each call binds them in row chunks.
#pragma once

#include <cstdint>

#include "vkquant/buffer.hpp"
#include "vkquant/device.hpp"
#include "vkquant/stream.hpp"

namespace vkq::kernels {

enum class SignpackVariant {
  automatic,   // per-invocation on CPU devices, subgroups narrower than 32 or
               // without ballot + arithmetic subgroup ops; ballot otherwise
  ballot,      // one subgroup per row, subgroupBallot collects the signs
  invocation,  // one invocation per row, no subgroup ops
};

struct SignpackOptions {
  bool input_f16 = false;  // v holds fp16 pairs, ceil(d/2) words per row
  bool alpha_f16 = false;  // alpha packed as fp16 pairs (two rows per word)
  bool center = false;     // subtract each row's mean before taking signs
  SignpackVariant variant = SignpackVariant::automatic;
  std::uint32_t required_subgroup_size = 0;  // ballot: force a subgroup size (needs size control); 0: driver's
  std::uint64_t max_chunk_rows = 0;          // cap on rows per dispatch (tests of chunking); 0: no cap
};

struct SignunpackOptions {
  bool alpha_f16 = false;
  std::uint64_t max_chunk_rows = 0;  // as in SignpackOptions
};

// Sign words per row: ceil(d / 32).
constexpr std::uint32_t signpack_words(std::uint32_t d) { return (d + 31) / 32; }
// uint32 words per fp16 input row: ceil(d / 2).
constexpr std::uint32_t signpack_f16_row_words(std::uint32_t d) { return (d + 1) / 2; }
// Bytes of bits (rows, W), of alpha (fp32 or fp16 pairs) and of one input row.
constexpr std::uint64_t signpack_bits_bytes(std::uint64_t rows, std::uint32_t d) {
  return rows * signpack_words(d) * 4;
}
constexpr std::uint64_t signpack_alpha_bytes(std::uint64_t rows, bool alpha_f16) {
  return alpha_f16 ? (rows + 1) / 2 * 4 : rows * 4;
}
constexpr std::uint64_t signpack_row_bytes(std::uint32_t d, bool input_f16) {
  return input_f16 ? std::uint64_t(signpack_f16_row_words(d)) * 4 : std::uint64_t(d) * 4;
}

// Whether `device` can run the ballot variant (ballot + arithmetic subgroup
// ops in compute shaders).
bool signpack_ballot_supported(const Device& device);
// The variant SignpackVariant::automatic picks on `device` (never automatic).
SignpackVariant signpack_auto_variant(const Device& device);
// "ballot" / "invocation" / "auto".
const char* signpack_variant_name(SignpackVariant v);

// v (rows, d) fp32 or (rows, ceil(d/2)) fp16 words -> bits (rows, W),
// alpha (rows) fp32 or (ceil(rows/2)) fp16 words, and, when centering and
// `mean` is given, mean (rows) fp32. Records into `s`; throws vkq::Error on
// bad arguments (d == 0, buffers too small, mean without centering, ballot
// on a device without it).
void signpack(Stream& s, const Buffer& v, Buffer& bits, Buffer& alpha, Buffer* mean, std::uint64_t rows,
              std::uint32_t d, const SignpackOptions& options = {});

// bits (rows, W), alpha (rows) fp32 or fp16 pairs, optional mean (rows) ->
// out (rows, d) fp32 = alpha * (bit ? +1 : -1) (+ mean).
void signunpack(Stream& s, const Buffer& bits, const Buffer& alpha, const Buffer* mean, Buffer& out,
                std::uint64_t rows, std::uint32_t d, const SignunpackOptions& options = {});

}  // namespace vkq::kernels
