// linear / linear_id: the matmuls of the transformer forward pass (docs/design.md §4
// "reference ops"), y = x · Wᵀ for any batch (decode of one token, prefill of
// hundreds), and the mixture-of-experts form that picks each slot's matrix
// from a stacked bank by GPU-written ids (ggml's mul_mat_id). Weights are
// f32, f16, bf16 or any ggml block type of quant.hpp, read as stored and
// dequantized in registers (shaders/include/quant.h), fp32 accumulation.
// Layouts are in shaders/include/linear.h; linear_pack / linear_pack_raw
// write them. Weights larger than maxStorageBufferRange are bound in windows
// of whole rows (whole experts where they fit).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "vkquant/buffer.hpp"
#include "vkquant/device.hpp"
#include "vkquant/quant.hpp"
#include "vkquant/stream.hpp"

namespace vkq::kernels {

using WeightType = quant::Type;
// "f16", "q4_k", ... (quant::info(t).name).
const char* weight_type_name(WeightType t);

// Bytes per packed weight row: the row as stored (quant::row_bytes(t, in):
// `in` floats, halves or bf16s, or in / block ggml blocks) padded with zeros
// to a multiple of 16 bytes, so a GGUF tensor whose rows are already
// multiples of 16 bytes uploads byte for byte: every q4_k/q5_k row, the
// 32-element types at a multiple of 256 elements, q2_k/q3_k/q6_k/iq4_xs at a
// multiple of 2048 (others take linear_pack_raw: q8_0 at in = 896 pads 952
// bytes to 960). 16, not 4: every row, and so every group of blocks the
// kernels decode at once (8 × 18 bytes of q4_0, one q4_k block ...), starts
// on a uvec4, which keeps decode to aligned 16-byte loads with constant
// shifts, and a window of whole rows ends on one, so no load straddles the
// end of a binding. Throws Error naming the type when `in` is 0 or not a
// multiple of the type's block.
std::uint64_t linear_row_bytes(std::uint32_t in, WeightType t);

// Packs a float W (out, in) row-major into rows of linear_row_bytes(in, t)
// bytes (f16 / bf16: round-to-nearest-even halves, two per uint32, low half
// first; block types: quant::quantize; padding 0), returned as uint32 words.
// Stack several for an expert bank.
std::vector<std::uint32_t> linear_pack(std::span<const float> w, std::uint32_t out, std::uint32_t in, WeightType t);

// Packs `out` rows stored back to back as quant::row_bytes(t, in) bytes each
// (a GGUF tensor's data) into rows of linear_row_bytes(in, t) bytes, padding 0.
std::vector<std::uint32_t> linear_pack_raw(std::span<const std::byte> rows, std::uint32_t out, std::uint32_t in,
                                           WeightType t);

// A weight in a device buffer: `experts` matrices (out, in) stacked, each
// `out` rows of linear_row_bytes(in, type) bytes (experts = 1 for a plain
// linear layer).
struct LinearWeight {
  const Buffer* w = nullptr;
  WeightType type = WeightType::f16;
  std::uint32_t out = 0, in = 0, experts = 1;
};

enum class LinearVariant {
  automatic,  // CPU devices: rows_shared_x for f32/f16/bf16 where supported, else rows; GPUs: tiled
              // for large batches (f32/f16/bf16), else subgroup; rows without subgroup ops
  rows,       // an invocation walks whole rows for a tile of batch rows; no subgroup ops
  rows_shared_x,  // rows, with each block of x loaded once per subgroup and broadcast (CPU devices,
                  // which load storage buffers lane by lane; f32/f16/bf16 only; needs subgroup
                  // ballot in compute shaders and subgroups of >= 8 lanes)
  subgroup,   // a subgroup per row, lanes stride over the row (GPUs)
  tiled,      // shared-memory tiled GEMM (GPUs, large batches; f32/f16/bf16 only; not for linear_id)
};
const char* linear_variant_name(LinearVariant v);
// Whether `device` can run `v` (subgroup: basic + arithmetic subgroup ops in
// compute; rows_shared_x: basic + ballot, and no subgroup smaller than 8 lanes).
bool linear_variant_supported(const Device& device, LinearVariant v);
// The variant `automatic` resolves to for `batch` rows (linear_id: batch = n * k)
// of weights of type `t`.
LinearVariant linear_default_variant(const Device& device, std::uint32_t batch, bool id = false,
                                     WeightType t = WeightType::f16);

struct LinearOptions {
  // Upper bound on one binding in bytes (0: the device's limit); tests lower
  // it to force windows of rows, experts and batch rows.
  std::uint64_t max_binding_bytes = 0;
  LinearVariant variant = LinearVariant::automatic;
};

// Records y (batch, out) = x (batch, in) · Wᵀ for any batch >= 1, fp32 x/y,
// fp32 accumulation; with `accumulate`, y += x · Wᵀ (residual adds). x and y
// are tightly packed fp32 rows. `w.experts` must be 1. Block-quantized weights
// are decoded in registers, never into a dequantized copy.
void linear(Stream& s, const LinearWeight& w, const Buffer& x, Buffer& y, std::uint32_t batch,
            bool accumulate = false, const LinearOptions& o = {});

// Records, for each token t < n and slot j < k, y[t, j, :] (out) =
// W[ids[t*k + j]] · xrow with xrow = x[t, :] (x (n, in)) or, if x_per_slot,
// x[t, j, :] (x (n, k, in)). ids (n, k) uint32 are read on the device only;
// slots whose id is >= stacked.experts get zeros. y (n, k, out) is written
// exactly once per element.
void linear_id(Stream& s, const LinearWeight& stacked, const Buffer& ids, const Buffer& x, bool x_per_slot,
               Buffer& y, std::uint32_t n, std::uint32_t k, const LinearOptions& o = {});

}  // namespace vkq::kernels
