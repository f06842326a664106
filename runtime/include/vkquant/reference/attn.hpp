// CPU reference of the fp16 KV cache and attention (vkquant/kernels/attn.hpp).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace vkq::ref {

// src (n, n_kv*hd) f32 -> cache words (n, n_kv*hd/2): fp16 round to nearest
// even, low half = even column; hd even.
std::vector<std::uint32_t> kv_pack(std::span<const float> src, std::uint32_t n, std::uint32_t n_kv, std::uint32_t hd);

// Causal GQA attention in fp64 on fp16-rounded K/V: q (n, n_heads, hd), K and
// V as floats (kv_len >= pos0 + n, n_kv, hd) -> out (n, n_heads, hd).
void attention(std::span<const float> q, std::span<const float> k, std::span<const float> v, std::span<float> out,
               std::uint32_t n, std::uint32_t pos0, std::uint32_t n_heads, std::uint32_t n_kv, std::uint32_t hd,
               float scale);

}  // namespace vkq::ref
