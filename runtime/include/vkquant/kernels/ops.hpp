// The transformer's non-matmul ops (docs/design.md §4 "reference ops"): embedding
// lookup, RMSNorm, RoPE, SwiGLU, residual add, bias, MoE routing and combine.
// Activations are tightly packed fp32 row-major buffers. Buffers larger than
// maxStorageBufferRange are bound in row chunks; small per-call operands
// (ids, weight vectors, router weights) must fit in one binding.
#pragma once

#include <cstdint>

#include "vkquant/buffer.hpp"
#include "vkquant/kernels/rope_freqs.hpp"
#include "vkquant/quant.hpp"
#include "vkquant/stream.hpp"

namespace vkq::kernels {

// out (n, dim) f32 = rows ids[i] of an embedding table of `vocab` rows, each
// row_bytes bytes (a multiple of 16) starting with the row as stored in
// `type`: f32, f16 or bf16 (two per uint32, low half first), or ggml blocks
// (dim a multiple of the block; decoded exactly as quant::dequantize).
// kernels::linear_row_bytes(dim, type) is such a stride. ids: uint32 (n).
// Out-of-range ids give zeros.
void embed(Stream& s, const Buffer& table, quant::Type type, std::uint32_t vocab, std::uint32_t dim,
           std::uint64_t row_bytes, const Buffer& ids, Buffer& out, std::uint32_t n);
// The same for an f32 (is_f16 false) or f16 table.
void embed(Stream& s, const Buffer& table, bool is_f16, std::uint32_t vocab, std::uint32_t dim,
           std::uint64_t row_bytes, const Buffer& ids, Buffer& out, std::uint32_t n);

// y (rows, d) = x / sqrt(mean(x²) + eps) * weight (d). y may be x (in place).
void rmsnorm(Stream& s, const Buffer& x, const Buffer& weight, Buffer& y, std::uint32_t rows, std::uint32_t d,
             float eps);

// neox: HF rotate_half, pairs (i, i + hd/2); adjacent: GGML "normal", pairs (2i, 2i+1).
enum class RopeStyle { neox, adjacent };

// In place on x (n, heads, hd), hd = the table's hd: row t is at position
// pos0 + t; pair i turns by (pos0 + t) · inv_freq_i, cos/sin times the
// table's scale. The angle is computed in float-float arithmetic and reduced
// mod 2π before fp32 cos/sin: absolute angle error below 1e-6 rad for
// positions up to 2^24.
void rope(Stream& s, Buffer& x, std::uint32_t n, std::uint32_t heads, std::uint32_t pos0, const RopeFreqs& rope,
          RopeStyle style);

// out (count) = silu(gate) * up; out may be gate (in place).
void swiglu(Stream& s, const Buffer& gate, const Buffer& up, Buffer& out, std::uint64_t count);

// x (count) += y (count).
void add(Stream& s, Buffer& x, const Buffer& y, std::uint64_t count);

// y (rows, d) += bias (d)   (Qwen2's q/k/v bias).
void add_bias(Stream& s, Buffer& y, const Buffer& bias, std::uint32_t rows, std::uint32_t d);

// MoE router: per token t < n: p = softmax(logits[t, :E]); ids[t, 0..k) =
// indices of the k largest p (descending; ties -> lower index; ordered by
// logit, which softmax preserves); weights[t, j] = p[ids[t, j]], divided by
// their sum when `normalize` (HF norm_topk_prob). logits f32 (n, E), ids
// uint32 (n, k), weights f32 (n, k); 1 <= k <= E <= 256.
void moe_route(Stream& s, const Buffer& logits, Buffer& ids, Buffer& weights, std::uint32_t n,
               std::uint32_t experts, std::uint32_t k, bool normalize);

// out (n, d) (+)= Σ_j weights[t, j] · y[t, j, :] with y (n, k, d), weights
// (n, k); accumulate: out += ..., else out = ...
void moe_combine(Stream& s, const Buffer& y, const Buffer& weights, Buffer& out, std::uint32_t n, std::uint32_t k,
                 std::uint32_t d, bool accumulate);

}  // namespace vkq::kernels
