// bgemv / bgemm: the 1-bit-weight matmul of docs/design.md §3,
//   y = c * sum(x') + alpha ⊙ (B x') (+ P (Qᵀ x')),  B ∈ {±1}^(out × in) bit-packed,
// for a batch of 1..64 inputs. Layouts are in shaders/include/bgemv.h; the
// host-side encoder below produces them. Its fp16 baseline is the model's own
// fp16 matmul, kernels::linear (the bench compares the two).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "vkquant/buffer.hpp"
#include "vkquant/device.hpp"
#include "vkquant/stream.hpp"

namespace vkq::kernels {

// ---- host-side encoding ------------------------------------------------------

// uint32 words per bit row: ceil(in / 32) rounded up to a multiple of 4.
std::uint32_t bgemv_row_words(std::uint32_t in);

// One binary-coded weight matrix on the host.
struct BinaryRows {
  std::uint32_t out = 0, in = 0, words = 0;
  std::vector<std::uint32_t> bits;  // (out, words), bit 1 where w' - c >= 0; padding bits 0
  std::vector<float> c;             // (out) row mean of W'
  std::vector<float> alpha;         // (out) row mean of |w' - c|
};

// Encodes a float W' (out, in): c_i = mean_j w'_ij, alpha_i = mean_j |w'_ij - c_i|,
// B_ij = sign(w'_ij - c_i) (statistics in fp64, stored as fp32).
BinaryRows bgemv_encode(std::span<const float> w, std::uint32_t out, std::uint32_t in);

// ---- device kernels ----------------------------------------------------------

enum class GemvVariant {
  automatic,  // CPU devices: bcast; others: subgroup; rows without subgroup ops
  rows,       // one invocation walks whole rows (select-add per bit); no subgroup ops
  bcast,      // rows, with x loaded once per subgroup and broadcast (CPU devices)
  subgroup,   // a subgroup per row, lanes stride over the words (GPUs)
};
const char* variant_name(GemvVariant v);

struct GemvOptions {
  GemvVariant variant = GemvVariant::automatic;
  // Upper bound on one weight binding in bytes (0: the device's limit); tests
  // lower it to exercise row chunking without a >128 MiB buffer.
  std::uint64_t max_binding_bytes = 0;
};

// The variant `automatic` resolves to on `device`.
GemvVariant default_variant(const Device& device);
// Whether `device` can run `v` (subgroup needs basic + arithmetic, bcast basic +
// ballot subgroup ops in compute shaders).
bool variant_supported(const Device& device, GemvVariant v);

// A binary linear layer in device buffers (all fp32 but the bits).
struct BinaryLinear {
  const Buffer* bits = nullptr;   // (out, bgemv_row_words(in)) uint32
  const Buffer* c = nullptr;      // (out)
  const Buffer* alpha = nullptr;  // (out)
  const Buffer* p = nullptr;      // (out, rank), only when rank > 0
  const Buffer* q = nullptr;      // (in, rank), only when rank > 0
  std::uint32_t out = 0, in = 0, rank = 0;
};

// Bytes of scratch bgemv() needs (t = Qᵀx, batch × rank floats; 0 without a residual).
std::uint64_t bgemv_scratch_bytes(const BinaryLinear& w, std::uint32_t batch);

// Records y (batch, out) = c * sum(x) + alpha ⊙ (B x) + P (Qᵀ x) for x (batch, in),
// batch 1..64. `scratch` must hold bgemv_scratch_bytes() (may be null when that is 0).
void bgemv(Stream& s, const BinaryLinear& w, const Buffer& x, Buffer& y, std::uint32_t batch, Buffer* scratch,
           const GemvOptions& options = {});

}  // namespace vkq::kernels
