// The 1-bit K-cache codec (docs/design.md §2) on the device: encode keys into sign
// bits + fp16 alpha (+ per-KV-head residual coefficients, vkquant/kresidual.hpp), decode codes back
// into the fp16 key cache that attention() reads (vkquant/kernels/attn.hpp).
//
// Code cache layouts, one layer, position-major:
//   bits  (ctx, n_kv, hd/32) uint32; bit j of word w = coordinate 32w + j,
//         1 when v >= 0.
//   alpha (ctx, n_kv) fp16, two per uint32: element i = pos * n_kv + head in
//         half i % 2 (low = even) of word i / 2; rounded up to whole words.
//   coef  (ctx, stride) halves, two per uint32: the residual record of
//         (pos, head) starts at half pos * stride + offset[head]
//         (KResidualLayout; all heads at (r, 16): (ctx, n_kv, r) fp16).
// Limits: hd in {32, 64, 96, 128, 256}; n_kv 1..64; every rank <= basis_cols
// <= hd; every buffer
// range a call touches must fit in one binding (maxStorageBufferRange):
// larger ones are refused with a vkq::Error.
#pragma once

#include <cstdint>

#include "vkquant/buffer.hpp"
#include "vkquant/kresidual.hpp"
#include "vkquant/kernels/rope_freqs.hpp"
#include "vkquant/stream.hpp"

namespace vkq {
class Device;
}

namespace vkq::kernels {

// A residual layout and its per-head table on the device ((n_kv) uvec4
// {rank, bits, offset, 0}, shaders/include/kcodec.h), which kcode_encode and
// kcode_decode read; made together, so that they cannot disagree.
class KResidualTable {
 public:
  static KResidualTable create(Device& d, KResidualLayout layout);
  const KResidualLayout& layout() const { return layout_; }
  const Buffer& buffer() const { return table_; }

 private:
  KResidualLayout layout_;
  Buffer table_;
};

// Per-layer codec parameters in device buffers (fp32).
struct KCodec {
  const Buffer* mu = nullptr;     // (n_kv, hd): subtracted before rotating
  const Buffer* rot = nullptr;    // (n_kv, hd, hd) row-major R_h: v = R_h (k - mu_h); nullptr: identity (no rotation)
  const Buffer* basis = nullptr;  // (n_kv, hd, basis_cols) row-major; head h uses its leading r_h columns
  std::uint32_t n_kv = 0, hd = 0;
  const KResidualTable* residual = nullptr;  // per-head rank and coefficient bits; null: no residual
  std::uint32_t basis_cols = 0;              // columns of basis (>= every r_h)
  // Mean-RoPE variant (a table set): mu is a pre-RoPE mean and the key at
  // cache position p is centered by RoPE_p(mu) instead of mu (rotate_half
  // pairs (i, i + hd/2), angle = p · inv_freq_i, cos/sin times its scale).
  // No table: plain mean.
  RopeFreqs mean_rope{};
  // The encoder's basis (c = Aᵀ(v − alpha·s), same shape as basis); nullptr:
  // basis itself. Decoding (and scoring) always read `basis` (kresidual.hpp).
  const Buffer* enc_basis = nullptr;
  // The transform code (docs/design.md §2.9; every head of `residual` tc):
  // no sign bits and no alpha, c = Aᵀ v coded absolutely; the bits and alpha
  // buffers of the calls below are not read or written (any buffer serves).
  bool transform = false;
  // Its calibrated levels ((n_kv, basis_cols, kTcLevels) fp32, kresidual.hpp):
  // encode picks the nearest, decode and kscore_tc read ĉ from them; nullptr: uniform.
  const Buffer* levels = nullptr;

  // Residual record halves per position (0: no residual).
  std::uint32_t coef_stride() const { return residual ? residual->layout().stride : 0; }
};

// Bytes of the code cache for ctx positions (see the layouts above).
std::uint64_t kcode_bits_bytes(std::uint32_t ctx, std::uint32_t n_kv, std::uint32_t hd);
std::uint64_t kcode_alpha_bytes(std::uint32_t ctx, std::uint32_t n_kv);
// Bytes of the coef buffer for ctx positions (0 without a residual).
std::uint64_t kcode_coef_bytes(std::uint32_t ctx, const KCodec& c);

// Encodes rows t < n of k (n, n_kv*hd) f32 into positions pos0 + t of the
// code cache: v = R_h (k_h - m_h) with m_h = mu_h, or RoPE_{pos0+t}(mu_h) in
// the mean-RoPE variant; bits = sign(v) (v >= 0 -> 1);
// alpha = ||v||_1 / hd (fp16, round to nearest even); for heads of rank
// r_h > 0: c = U_{r_h}ᵀ (v - alpha_fp16 · s), written as the head's record
// (pack_residual; fp32 sums). Halves of other positions and heads sharing a
// word are kept. coef may be nullptr when coef_stride() == 0.
void kcode_encode(Stream& s, const KCodec& c, const Buffer& k, Buffer& bits, Buffer& alpha, Buffer* coef,
                  std::uint32_t n, std::uint32_t pos0);

// Decodes positions first .. first+len-1 into kcache ((ctx, n_kv, hd) fp16,
// two per uint32, low half = even coordinate, as kv_store writes it):
// k̂_h = m_h + R_hᵀ (alpha · s + U_{r_h} ĉ) (ĉ = unpack_residual; m_h as in kcode_encode at the cache
// position), then, if `rope` is given (not with the mean-RoPE variant), RoPE
// (rotate_half pairs (i, i + hd/2), angle = cache position · inv_freq_i,
// cos/sin times the table's scale); fp16 round to nearest even. Other
// positions of kcache are untouched. coef may be nullptr when coef_stride() == 0.
void kcode_decode(Stream& s, const KCodec& c, const Buffer& bits, const Buffer& alpha, const Buffer* coef,
                  Buffer& kcache, std::uint32_t first, std::uint32_t len, const RopeFreqs* rope);

}  // namespace vkq::kernels
