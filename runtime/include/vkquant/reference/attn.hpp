// CPU reference of the fp16 KV cache and attention (vkquant/kernels/attn.hpp).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "vkquant/vtype.hpp"

namespace vkq::ref {

// src (n, n_kv*hd) f32 -> cache words (n, n_kv*hd/2): fp16 round to nearest
// even, low half = even column; hd even.
std::vector<std::uint32_t> kv_pack(std::span<const float> src, std::uint32_t n, std::uint32_t n_kv, std::uint32_t hd);

// A value cache's words (vkquant/kernels/attn.hpp VCacheView layouts).
struct VPacked {
  std::vector<std::uint32_t> codes, scales;
};
// src (n, n_kv*hd) f32 -> the words of n positions of a `t` value cache. Per
// block of 32: q8 d = fp16(max|x| / 127), code = clamp(roundEven(x / d),
// -127, 127); q4 m = fp16(min x), d = fp16((max x - min x) / 15), code =
// clamp(roundEven((x - m) / d), 0, 15); codes 0 where d = 0. fp16: kv_pack.
VPacked vcache_pack(VType t, std::span<const float> src, std::uint32_t n, std::uint32_t n_kv, std::uint32_t hd);
// The values n positions of packed words stand for, (n, n_kv*hd) f32.
std::vector<float> vcache_unpack(VType t, const VPacked& p, std::uint32_t n, std::uint32_t n_kv, std::uint32_t hd);

// Causal GQA attention in fp64 on fp16-rounded K/V: q (n, n_heads, hd), K and
// V as floats (kv_len >= pos0 + n, n_kv, hd) -> out (n, n_heads, hd).
void attention(std::span<const float> q, std::span<const float> k, std::span<const float> v, std::span<float> out,
               std::uint32_t n, std::uint32_t pos0, std::uint32_t n_heads, std::uint32_t n_kv, std::uint32_t hd,
               float scale);

}  // namespace vkq::ref
