// CPU reference of attention over the 1-bit K-cache code
// (vkquant/kernels/attn_kcode.hpp), fp64 sums, naive loops.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "vkquant/half.hpp"
#include "vkquant/reference/kcodec.hpp"
#include "vkquant/reference/kscore.hpp"

namespace vkq::ref {

struct AttnKcodeInputs {
  std::span<const float> q;              // (n, n_heads, hd) post-RoPE, unrotated
  KCodec codec;                          // mu (pre-RoPE with a mean_rope table), rot, basis, residual layout
  std::span<const std::uint32_t> bits;   // (kv_len, n_kv, hd/32)
  std::span<const half_bits> alpha;      // (kv_len, n_kv)
  std::span<const half_bits> coef;       // (kv_len, residual.stride) halves: the residual records
  std::uint32_t front = 0;               // positions < front use front_keys
  std::span<const float> front_keys;     // (min(front, kv_len), n_kv, hd) exact (fp16-representable) keys
  std::span<const float> v;              // (kv_len, n_kv, hd)
  // Popcount path: the quantized q' of every (query row, head), (n * n_heads)
  // heads as kscore_quantize_query lays them out; null: float path.
  const KscoreQuantized* quantized = nullptr;
};

// q' = R_{h/group} q for every (row, head): (n, n_heads, hd), fp64 sums.
std::vector<float> attn_kcode_rotate_queries(const KCodec& c, std::span<const float> q, std::uint32_t n,
                                             std::uint32_t n_heads);

// Unscaled scores (n, n_heads, kv_len), kv_len = pos0 + n; entries past a
// row's causal end are 0. Key p >= front of KV head g, query head h:
//   q·m_p + alpha_p·(q'·s_p) + Σ_{r<r_g} (U_Rᵀ q')_r ĉ_{p,r}   (m_p = kcode_mean_at,
//   ĉ = unpack_residual of the record of (p, g))
// with q'·s_p = Δ(Σ s_i Q_i - z Σ s_i) on the popcount path; p < front: q·k_p.
std::vector<double> attn_kcode_scores(const AttnKcodeInputs& in, std::uint32_t n, std::uint32_t pos0,
                                      std::uint32_t n_heads);

// out (n, n_heads, hd) = Σ_p softmax_p(scale · score) v_p, causal.
void attention_kcode(const AttnKcodeInputs& in, std::span<float> out, std::uint32_t n, std::uint32_t pos0,
                     std::uint32_t n_heads, float scale);

}  // namespace vkq::ref
