// Naive CPU twins of the kscore kernels (fp64 accumulation). Layouts as in
// vkquant/kernels/kscore.hpp; fp16 arrays are given as unpacked half_bits.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "vkquant/half.hpp"
#include "vkquant/kresidual.hpp"

namespace vkq::ref {

struct KscoreDims {
  std::uint32_t d = 0, kv_heads = 0, group = 1;
  std::uint64_t keys = 0;  // N
  KResidualView residual;  // where each KV head's residual records sit in c (empty: none)

  std::uint32_t q_heads() const { return group * kv_heads; }
  std::uint32_t words() const { return (d + 31) / 32; }
};

// Per query head constants of the popcount path: q' ≈ Δ(Q - z). Same 16-byte
// layout as the device's qconst entries (checked in kernels/kscore.cpp).
struct KscoreQueryConst {
  float delta = 0, zero = 0, inv_delta = 0;
  std::uint32_t sum_q = 0;  // Σ_i Q_i
};

struct KscoreQuantized {
  std::uint32_t bits = 8;
  std::vector<std::uint32_t> planes;     // (q_heads, b, W)
  std::vector<KscoreQueryConst> consts;  // (q_heads)
};

// Quantizes q (q_heads, d) to b bit-planes, computing Δ, z, 1/Δ as the kernel does.
KscoreQuantized kscore_quantize_query(std::span<const float> q, const KscoreDims& dims, std::uint32_t b);
// The same with given per-head Δ, z, 1/Δ (e.g. a device's), so planes match bit for bit.
KscoreQuantized kscore_quantize_query_with(std::span<const float> q, const KscoreDims& dims, std::uint32_t b,
                                           std::span<const KscoreQueryConst> given);

// sums (q_heads, N) = Σ_i s_i Q_i, s from bits (kv_heads, N, W).
std::vector<std::int32_t> kscore_popcount_sums(std::span<const std::uint32_t> bits, const KscoreDims& dims,
                                               const KscoreQuantized& qq);

// The 1-bit keys and the optional extras, as stored.
struct KscoreInputs {
  std::span<const std::uint32_t> bits;  // (kv_heads, N, W)
  std::span<const half_bits> alpha;     // (kv_heads, N)
  std::span<const half_bits> c;         // residual records as dims.residual places them; empty iff none
  std::span<const float> basis;         // (kv_heads, d, R), R = dims.residual.basis_cols; empty iff none
  std::span<const float> q;             // (q_heads, d)
  std::span<const float> qmu;           // (q_heads) or empty
};

// scores (q_heads, N) = qmu + alpha·(q'·s) + Σ_{i<r_kv} (U_Rᵀq')_i ĉ_i with q' exact
// (ĉ = unpack_residual of key t's record of KV head kv = h / group).
std::vector<float> kscore_float(const KscoreInputs& in, const KscoreDims& dims);
// The same with q'·s replaced by Δ(Σ s_i Q_i - z Σ s_i) from the quantized query.
std::vector<float> kscore_popcount(const KscoreInputs& in, const KscoreDims& dims, const KscoreQuantized& qq);
// scores (q_heads, N) = q · K[h / group]ᵀ, K (kv_heads, N, ceil(d/2) words) fp16.
std::vector<float> kscore_f16(std::span<const half_bits> k, std::span<const float> q, const KscoreDims& dims);

// Sign bits of rows of v (rows, d) as the kscore layout wants them (bit = 1 iff v >= 0).
std::vector<std::uint32_t> kscore_pack_signs(std::span<const float> v, std::uint64_t rows, std::uint32_t d);

}  // namespace vkq::ref
