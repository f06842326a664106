#include "vkquant/model/kv_host.hpp"

#include <algorithm>
#include <cmath>

#include "vkquant/reference/attn.hpp"
#include "vkquant/reference/attn_kcode.hpp"
#include "vkquant/reference/kcodec.hpp"
#include "vkquant/reference/kscore.hpp"

namespace vkq {

HostKvCache::HostKvCache(const ModelConfig& c, std::uint32_t ctx, const KCacheConfig& keys, VType values,
                         const KCalibration* calibration, const RopeTable& rope, bool fp16)
    : ctx_(ctx), kv_(c.kv_heads), hd_(c.head_dim), heads_(c.heads), k_(keys), v_(values), fp16_(fp16), rope_(&rope) {
  keys.validate(c, calibration);
  validate_vcache(values, c);
  layers_.resize(c.layers);
  const std::size_t row = std::size_t(kv_) * hd_;
  for (std::uint32_t l = 0; l < c.layers; ++l) {
    Layer& L = layers_[l];
    if (keys.one_bit) L.params = key_layer_params(keys, c, calibration, l);
    L.keys.assign(std::size_t(ctx) * row, 0.0f);
    L.values.assign(std::size_t(ctx) * row, 0.0f);
    if (keys.one_bit && keys.rope != KRope::pre) {
      if (!keys.transform) {
        L.bits.assign(std::size_t(ctx) * kv_ * (hd_ / 32), 0);
        L.alpha.assign(std::size_t(ctx) * kv_, 0);
      }
      L.coef.assign(std::size_t(ctx) * L.params.residual.stride, 0);
    }
  }
}

ref::KCodec HostKvCache::codec(const Layer& L) const {
  return ref::KCodec{L.params.mu,       L.params.rot, L.params.basis, kv_, hd_, L.params.residual, L.params.basis_cols,
                     k_.rope == KRope::ropemean ? rope_ : nullptr, L.params.enc_basis, L.params.transform,
                     L.params.levels};
}

void HostKvCache::store(std::uint32_t l, std::uint32_t pos, std::span<const float> k_pre, std::span<const float> k_post,
                        std::span<const float> v) {
  Layer& L = layers_.at(l);
  const std::size_t row = std::size_t(kv_) * hd_, at = std::size_t(pos) * row;
  // Values as the cache stores them.
  if (v_ == VType::f16) {
    for (std::size_t i = 0; i < row; ++i) L.values[at + i] = fp16_ ? from_half(to_half(v[i])) : v[i];
  } else {
    const auto back = ref::vcache_unpack(v_, ref::vcache_pack(v_, v, 1, kv_, hd_), 1, kv_, hd_);
    std::copy(back.begin(), back.end(), L.values.begin() + std::ptrdiff_t(at));
  }
  // Keys: exact (fp16 cache, protected front), decoded (pre-RoPE codes) or codes scored in place.
  const bool coded = k_.one_bit && pos >= k_.protect_front;
  if (!coded) {
    for (std::size_t i = 0; i < row; ++i) L.keys[at + i] = fp16_ ? from_half(to_half(k_post[i])) : k_post[i];
    return;
  }
  if (k_.rope == KRope::pre) {
    const ref::KCodes code = ref::kcode_encode(codec(L), k_pre, 1, pos);
    const auto dec = ref::kcode_decode(codec(L), code.bits, code.alpha, code.coef, pos, 1, rope_);
    for (std::size_t i = 0; i < row; ++i) L.keys[at + i] = from_half(dec[i]);
    return;
  }
  const ref::KCodes code = ref::kcode_encode(codec(L), k_post, 1, pos);
  if (!L.params.transform) {  // the transform code has no bits and no alpha
    std::copy(code.bits.begin(), code.bits.end(), L.bits.begin() + std::ptrdiff_t(std::size_t(pos) * kv_ * (hd_ / 32)));
    std::copy(code.alpha.begin(), code.alpha.end(), L.alpha.begin() + std::ptrdiff_t(std::size_t(pos) * kv_));
  }
  std::copy(code.coef.begin(), code.coef.end(), L.coef.begin() + std::ptrdiff_t(std::size_t(pos) * L.params.residual.stride));
}

void HostKvCache::attend(std::uint32_t l, std::uint32_t pos, std::span<const float> q, std::span<float> out) const {
  const Layer& L = layers_.at(l);
  const float scale = float(1.0 / std::sqrt(double(hd_)));
  const std::size_t row = std::size_t(kv_) * hd_, len = std::size_t(pos) + 1;
  const std::span<const float> values = std::span<const float>(L.values).first(len * row);
  if (!k_.one_bit || k_.rope == KRope::pre) {
    ref::attention(q, std::span<const float>(L.keys).first(len * row), values, out, 1, pos, heads_, kv_, hd_, scale);
    return;
  }
  ref::AttnKcodeInputs in;
  in.q = q;
  in.codec = codec(L);
  if (!L.params.transform) {
    in.bits = std::span<const std::uint32_t>(L.bits).first(len * kv_ * (hd_ / 32));
    in.alpha = std::span<const half_bits>(L.alpha).first(len * kv_);
  }
  in.coef = std::span<const half_bits>(L.coef).first(len * L.params.residual.stride);
  in.front = std::min<std::uint32_t>(k_.protect_front, pos + 1);
  in.front_keys = std::span<const float>(L.keys).first(std::size_t(in.front) * row);
  in.v = values;
  ref::KscoreQuantized qq;
  if (k_.query_bits && !L.params.transform) {
    // The popcount path: q' = R q quantized to query_bits planes, per (row, head).
    const auto qr = ref::attn_kcode_rotate_queries(in.codec, q, 1, heads_);
    qq = ref::kscore_quantize_query(qr, ref::KscoreDims{.d = hd_, .kv_heads = kv_, .group = heads_ / kv_, .keys = 1},
                                    k_.query_bits);
    in.quantized = &qq;
  }
  ref::attention_kcode(in, out, 1, pos, heads_, scale);
}

}  // namespace vkq
