// CPU reference of the 1-bit K-cache codec (vkquant/kernels/kcodec.hpp), fp64
// sums. Codes are returned unpacked for positions 0..n-1 of the call (bits as
// the device packs them, alpha as fp16 bits, one per element, coef as the
// flat residual records of vkquant/kresidual.hpp).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "vkquant/half.hpp"
#include "vkquant/kresidual.hpp"
#include "vkquant/rope.hpp"

namespace vkq::ref {

// Codec parameters (fp32 host arrays).
struct KCodec {
  std::span<const float> mu;     // (n_kv, hd)
  std::span<const float> rot;    // (n_kv, hd, hd) row-major R_h; empty: identity
  std::span<const float> basis;  // (n_kv, hd, basis_cols) row-major; head h uses its leading r_h columns
  std::uint32_t n_kv = 0, hd = 0;
  KResidualLayout residual;      // per-head rank and coefficient bits (stride 0: no residual)
  std::uint32_t basis_cols = 0;  // R >= every r_h
  const RopeTable* mean_rope = nullptr;  // set: mu is pre-RoPE, position p centers by RoPE_p(mu)
  std::span<const float> enc_basis = {};  // the encoder's basis (basis' shape); empty: basis
  // The transform code (kresidual.hpp's tc heads): no sign bits and no
  // alpha; c = encᵀ v, k̂ = m + R_hᵀ U ĉ.
  bool transform = false;
  // Its calibrated levels (n_kv, basis_cols, kTcLevels), kresidual.hpp; empty: uniform.
  std::span<const float> levels = {};

  // Head h's levels (empty when uniform).
  std::span<const float> head_levels(std::uint32_t h) const {
    return levels.empty() ? levels : levels.subspan(std::size_t(h) * basis_cols * kTcLevels, std::size_t(basis_cols) * kTcLevels);
  }
};

struct KCodes {
  std::vector<std::uint32_t> bits;  // (n, n_kv, hd/32)
  std::vector<half_bits> alpha;     // (n, n_kv)
  std::vector<half_bits> coef;      // (n, residual.stride) halves: record (t, h) at t·stride + offset[h]
  std::vector<double> v;            // (n, n_kv, hd): the rotated centered keys
};

// The centering vector of head h at cache position pos (hd values): mu_h, or
// RoPE_pos(mu_h) (rotate_half pairs, rope_apply of the table) in the
// mean-RoPE variant.
std::vector<double> kcode_mean_at(const KCodec& c, std::uint32_t h, std::uint64_t pos);

// Encodes k (n, n_kv*hd), row t at cache position pos0 + t: v = R_h (k_h - m_h)
// (m_h = kcode_mean_at), bits = [v >= 0], alpha = ||v||_1 / hd (fp16),
// c = U_{r_h}ᵀ (v - alpha_fp16 · s), packed by pack_residual. Transform
// code: bits and alpha stay empty, c = U_{r_h}ᵀ v.
KCodes kcode_encode(const KCodec& c, std::span<const float> k, std::uint32_t n, std::uint32_t pos0 = 0);

// c = U_{r_h}ᵀ (v - alpha · s) of one element (v: hd values, s from v >= 0), head h: r_h values, unquantized
// (transform code: U_{r_h}ᵀ v).
std::vector<double> kcode_coefs(const KCodec& c, std::uint32_t h, std::span<const double> v, double alpha);

// Decodes codes of len positions (bits (len, n_kv, hd/32), alpha (len, n_kv),
// coef (len, residual.stride) halves) standing at cache positions first..first+len-1:
// k̂_h = m_h + R_hᵀ (alpha · s + U_{r_h} ĉ) (m_h = kcode_mean_at, ĉ = unpack_residual; transform
// code: no alpha · s, bits and alpha unread), then RoPE
// (rope_apply of the table, rotate_half pairs) if `rope` is given.
// Returns (len, n_kv, hd) fp16 bits (fp64 -> fp32 -> fp16, nearest even).
std::vector<half_bits> kcode_decode(const KCodec& c, std::span<const std::uint32_t> bits,
                                    std::span<const half_bits> alpha, std::span<const half_bits> coef,
                                    std::uint32_t first, std::uint32_t len, const RopeTable* rope);

}  // namespace vkq::ref
