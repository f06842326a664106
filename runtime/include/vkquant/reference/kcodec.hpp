// CPU reference of the 1-bit K-cache codec (vkquant/kernels/kcodec.hpp), fp64
// sums. Codes are returned unpacked for positions 0..n-1 of the call (bits as
// the device packs them, alpha and coef as fp16 bits, one per element).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "vkquant/half.hpp"

namespace vkq::ref {

// Codec parameters (fp32 host arrays).
struct KCodec {
  std::span<const float> mu;     // (n_kv, hd)
  std::span<const float> rot;    // (n_kv, hd, hd) row-major R_h; empty: identity
  std::span<const float> basis;  // (n_kv, hd, rank) U_r row-major
  std::uint32_t n_kv = 0, hd = 0, rank = 0;
};

struct KCodes {
  std::vector<std::uint32_t> bits;  // (n, n_kv, hd/32)
  std::vector<half_bits> alpha;     // (n, n_kv)
  std::vector<half_bits> coef;      // (n, n_kv, rank)
  std::vector<double> v;            // (n, n_kv, hd): the rotated centered keys
};

// Encodes k (n, n_kv*hd): v = R_h (k_h - mu_h), bits = [v >= 0],
// alpha = ||v||_1 / hd (fp16), c = U_rᵀ (v - alpha_fp16 · s) (fp16).
KCodes kcode_encode(const KCodec& c, std::span<const float> k, std::uint32_t n);

// c = U_rᵀ (v - alpha · s) of one element (v: hd values, s from v >= 0), head h.
std::vector<double> kcode_coefs(const KCodec& c, std::uint32_t h, std::span<const double> v, double alpha);

// Decodes codes of len positions (bits (len, n_kv, hd/32), alpha (len, n_kv),
// coef (len, n_kv, rank)) standing at cache positions first..first+len-1:
// k̂_h = mu_h + R_hᵀ (alpha · s + U_r c), then RoPE (rotate_half pairs
// (i, i + hd/2), angle = position · theta^(-2i/hd)) if rope_theta > 0.
// Returns (len, n_kv, hd) fp16 bits (fp64 -> fp32 -> fp16, nearest even).
std::vector<half_bits> kcode_decode(const KCodec& c, std::span<const std::uint32_t> bits,
                                    std::span<const half_bits> alpha, std::span<const half_bits> coef,
                                    std::uint32_t first, std::uint32_t len, float rope_theta);

}  // namespace vkq::ref
