#include "vkquant/model/kv_cache.hpp"

#include <algorithm>
#include <cmath>

#include "vkquant/error.hpp"
#include "vkquant/kernels/kcodec.hpp"
#include "vkquant/rotation/learn.hpp"

namespace vkq {

KLayerParams key_layer_params(const KCacheConfig& k, const ModelConfig& c, const KCalibration* calibration,
                              std::uint32_t layer) {
  const std::uint32_t kv = c.kv_heads, hd = c.head_dim;
  const KLayerCalib* cal = calibration ? &calibration->mode(k.rope).at(layer) : nullptr;
  KLayerParams p;
  p.mu = cal ? cal->mean : std::vector<float>(std::size_t(kv) * hd, 0.0f);
  if (k.transform) {
    // The transform code: no rotation; each head's leading columns of the
    // artifact's pair, the step of each column's width folded in.
    p.transform = true;
    p.residual = KResidualLayout::make(k.residual_plan(c, calibration).at(layer));
    const std::uint32_t r = p.basis_cols = p.residual.max_rank();
    if (r == 0) return p;  // every head's code empty: the keys are the mean
    p.basis.assign(std::size_t(kv) * hd * r, 0.0f);
    p.enc_basis.assign(p.basis.size(), 0.0f);
    p.levels.assign(std::size_t(kv) * r * kTcLevels, 0.0f);
    for (std::uint32_t h = 0; h < kv; ++h) {
      const KResidual res = p.residual.heads[h];
      for (std::uint32_t j = 0; j < res.rank; ++j) {
        const std::uint32_t w = tc_slot(res, j).width;
        const float st = cal->tc_step(w).at(std::size_t(h) * hd + j);
        float* lv = p.levels.data() + (std::size_t(h) * r + j) * kTcLevels;
        for (std::uint32_t u = 0; u < (1u << w); ++u)
          lv[u] = w == 1 ? float(tc_uniform_level(1, u)) : cal->tc_levels(w).at((std::size_t(h) * hd + j) * (1u << w) + u);
        for (std::uint32_t i = 0; i < hd; ++i) {
          const std::size_t src = (std::size_t(h) * hd + i) * hd + j, dst = (std::size_t(h) * hd + i) * r + j;
          p.basis[dst] = cal->tc_dec[src] * st;
          p.enc_basis[dst] = cal->tc_enc[src] / st;
        }
      }
    }
    return p;
  }
  if (k.rotation == KRotation::srht) {
    const Eigen::MatrixXd h = rot::srht_matrix(hd, k.srht_seed);
    p.rot.reserve(std::size_t(kv) * hd * hd);
    for (std::uint32_t head = 0; head < kv; ++head)
      for (std::uint32_t i = 0; i < hd; ++i)
        for (std::uint32_t j = 0; j < hd; ++j) p.rot.push_back(float(h(i, j)));
  } else if (k.rotation == KRotation::learned) {
    p.rot = cal->rot;
  }
  if (!k.one_bit) return p;
  p.residual = KResidualLayout::make(k.residual_plan(c, calibration).at(layer));
  p.basis_cols = p.residual.max_rank();
  if (p.basis_cols > 0) {
    // The artifact's basis has rank >= every head's (validate): keep the leading columns.
    const std::uint32_t full = calibration->rank, r = p.basis_cols;
    p.basis.resize(std::size_t(kv) * hd * r);
    for (std::size_t row = 0; row < std::size_t(kv) * hd; ++row)
      for (std::uint32_t j = 0; j < r; ++j) p.basis[row * r + j] = cal->basis[row * full + j];
    bool arel = false;
    for (const KResidual& res : p.residual.heads) arel |= res.arel;
    if (!cal->enc_basis.empty() || arel) {
      const std::vector<float>& enc = cal->enc_basis.empty() ? cal->basis : cal->enc_basis;
      p.enc_basis.resize(p.basis.size());
      for (std::size_t row = 0; row < std::size_t(kv) * hd; ++row)
        for (std::uint32_t j = 0; j < r; ++j) p.enc_basis[row * r + j] = enc[row * full + j];
    }
    // Alpha-relative heads: the step divides the encoder's column and
    // multiplies the decoder's (kresidual.hpp).
    for (std::uint32_t h = 0; h < kv; ++h) {
      if (!p.residual.heads[h].arel) continue;
      for (std::uint32_t i = 0; i < hd; ++i)
        for (std::uint32_t j = 0; j < r; ++j) {
          const float s = cal->arel_step(p.residual.heads[h].bits).at(std::size_t(h) * full + j);
          p.basis[(std::size_t(h) * hd + i) * r + j] *= s;
          p.enc_basis[(std::size_t(h) * hd + i) * r + j] /= s;
        }
    }
  }
  if (p.residual.stride == 0) p.residual = KResidualLayout{};
  return p;
}

// ---- workspace

Buffer* AttnWorkspace::split_k(std::uint64_t bytes) {
  if (bytes == 0) return nullptr;
  if (bytes > split_bytes_) {
    split_ = Buffer();
    split_bytes_ = 0;
    split_ = Buffer::create(*dev_, bytes);
    split_bytes_ = split_.size();
  }
  return &split_;
}

kernels::AttnKcodeScratch& AttnWorkspace::kcode(const kernels::AttnKcodeScratchBytes& need) {
  if (!kcode_bytes_ || !kcode_.holds(need)) {
    kcode_ = kernels::AttnKcodeScratch{};
    kcode_bytes_ = 0;
    kcode_ = kernels::AttnKcodeScratch::create(*dev_, need);
    kcode_bytes_ = need.total();
  }
  return kcode_;
}

// ---- values

DeviceValueCache::DeviceValueCache(Device& d, VType type, std::uint32_t ctx, std::uint32_t n_kv, std::uint32_t hd)
    : type_(type), n_kv_(n_kv), hd_(hd) {
  codes_ = Buffer::create(d, std::max<std::uint64_t>(kernels::vcache_code_bytes(type, ctx, n_kv, hd), 16));
  if (type != VType::f16) scales_ = Buffer::create(d, std::max<std::uint64_t>(kernels::vcache_scale_bytes(type, ctx, n_kv, hd), 16));
}

void DeviceValueCache::store(Stream& s, const Buffer& v, std::uint32_t n, std::uint32_t pos0) {
  kernels::vcache_store(s, v, type_, codes_, scales_ ? &scales_ : nullptr, n, pos0, n_kv_, hd_);
}

// ---- keys

namespace {

struct Dims {
  std::uint32_t ctx, n_kv, hd, heads;
  float scale() const { return float(1.0 / std::sqrt(double(hd))); }
};

Buffer upload_floats(Device& d, const std::vector<float>& v) {
  Buffer b = Buffer::create(d, std::max<std::uint64_t>(v.size() * sizeof(float), 16));
  if (!v.empty()) b.upload(std::span<const float>(v));
  return b;
}

// fp16 keys, attention() over them.
class Fp16Keys final : public DeviceKeyCache {
 public:
  Fp16Keys(Device& d, Dims m) : m_(m), cache_(Buffer::create(d, kernels::kv_cache_bytes(m.ctx, m.n_kv, m.hd))) {}
  void store(Stream& s, const Buffer& k, std::uint32_t n, std::uint32_t pos0) override {
    kernels::kv_store(s, k, cache_, n, pos0, m_.n_kv, m_.hd);
  }
  void attend(Stream& s, const Buffer& q, const DeviceValueCache& v, Buffer& out, std::uint32_t n, std::uint32_t pos0,
              AttnWorkspace& ws) override {
    Buffer* scratch = ws.split_k(kernels::attention_scratch_bytes(s.device(), n, m_.heads, m_.n_kv, pos0 + n, m_.hd));
    kernels::attention(s, q, cache_, v.view(), out, n, pos0, m_.heads, m_.n_kv, m_.hd, m_.scale(), scratch);
  }
  std::uint64_t bytes() const override { return cache_.size(); }
  std::uint64_t code_bytes() const override { return cache_.size(); }

 private:
  Dims m_;
  Buffer cache_;
};

// What both 1-bit caches hold: codec parameters, the code cache, the exact front.
class CodedKeys : public DeviceKeyCache {
 protected:
  CodedKeys(Device& d, Dims m, const KCacheConfig& k, const KLayerParams& p) : m_(m), k_(k) {
    mu_ = upload_floats(d, p.mu);
    if (!p.rot.empty()) rot_ = upload_floats(d, p.rot);
    const bool resid = p.residual.stride > 0;
    if (resid) {
      basis_ = upload_floats(d, p.basis);
      if (!p.enc_basis.empty()) enc_basis_ = upload_floats(d, p.enc_basis);
      residual_ = kernels::KResidualTable::create(d, p.residual);
    }
    codec_ = kernels::KCodec{&mu_, p.rot.empty() ? nullptr : &rot_, resid ? &basis_ : nullptr, m.n_kv, m.hd,
                             resid ? &residual_ : nullptr, resid ? p.basis_cols : 0};
    if (resid && !p.enc_basis.empty()) codec_.enc_basis = &enc_basis_;
    codec_.transform = p.transform;
    if (resid && !p.levels.empty()) {
      levels_ = upload_floats(d, p.levels);
      codec_.levels = &levels_;
    }
    // The transform code stores no sign bits and no alphas (the calls read
    // neither: 16-byte placeholders, not counted as code bytes).
    bits_ = Buffer::create(d, p.transform ? 16 : kernels::kcode_bits_bytes(m.ctx, m.n_kv, m.hd));
    alpha_ = Buffer::create(d, p.transform ? 16 : kernels::kcode_alpha_bytes(m.ctx, m.n_kv));
    if (resid) coef_ = Buffer::create(d, kernels::kcode_coef_bytes(m.ctx, codec_));
    front_len_ = std::min(k.protect_front, m.ctx);
    if (front_len_) front_ = Buffer::create(d, kernels::kv_cache_bytes(front_len_, m.n_kv, m.hd));
  }
  void encode(Stream& s, const Buffer& k, std::uint32_t n, std::uint32_t pos0) {
    kernels::kcode_encode(s, codec_, k, bits_, alpha_, coef_ ? &coef_ : nullptr, n, pos0);
  }
  // Exact fp16 keys of the protected front positions among pos0 .. pos0 + n - 1.
  void store_front(Stream& s, const Buffer& k, std::uint32_t n, std::uint32_t pos0) {
    if (pos0 < front_len_) kernels::kv_store(s, k, front_, std::min(n, front_len_ - pos0), pos0, m_.n_kv, m_.hd);
  }
  std::uint64_t code_bytes() const override {
    return (codec_.transform ? 0 : bits_.size() + alpha_.size()) + (coef_ ? coef_.size() : 0) + (front_ ? front_.size() : 0);
  }
  std::uint64_t bytes() const override {
    return code_bytes() + mu_.size() + (rot_ ? rot_.size() : 0) + (basis_ ? basis_.size() : 0) +
           (enc_basis_ ? enc_basis_.size() : 0) + (levels_ ? levels_.size() : 0);
  }
  Dims m_;
  KCacheConfig k_;
  Buffer mu_, rot_, basis_, enc_basis_, levels_, bits_, alpha_, coef_, front_;
  std::uint32_t front_len_ = 0;
  kernels::KResidualTable residual_;
  kernels::KCodec codec_;
};

// Post-RoPE codes (centered by mu or by RoPE_p(mu_pre)), scored in place by
// the kscore kernels; the protected front is scored from its exact keys.
class ScoredKeys final : public CodedKeys {
 public:
  // uq_cols: the widest residual basis of any layer. Every layer of a step
  // records into one command buffer and shares the workspace, so each asks it
  // for the same (widest) scratch: a layer growing it would destroy buffers an
  // earlier layer's recorded dispatches still use.
  ScoredKeys(Device& d, Dims m, const KCacheConfig& k, const KLayerParams& p, const kernels::RopeFreqs* mean_rope,
             const Buffer* mean_rope_table, std::uint32_t uq_cols)
      : CodedKeys(d, m, k, p), table_(mean_rope_table), uq_cols_(uq_cols) {
    if (mean_rope) codec_.mean_rope = *mean_rope;
    opt_.path = k.query_bits ? kernels::KcodePath::popcount : kernels::KcodePath::float_signs;
    opt_.query_bits = k.query_bits ? k.query_bits : 8;
  }
  void store(Stream& s, const Buffer& k, std::uint32_t n, std::uint32_t pos0) override {
    store_front(s, k, n, pos0);
    encode(s, k, n, pos0);
  }
  void attend(Stream& s, const Buffer& q, const DeviceValueCache& v, Buffer& out, std::uint32_t n, std::uint32_t pos0,
              AttnWorkspace& ws) override {
    const kernels::KcodeKeys keys{codec_, &bits_, &alpha_, coef_ ? &coef_ : nullptr, front_len_,
                                  front_len_ ? &front_ : nullptr, table_};
    auto need = kernels::attention_kcode_scratch_bytes(s.device(), codec_, n, m_.heads, pos0 + n, opt_);
    if (n) need.uq = std::max(need.uq, std::uint64_t(n) * m_.heads * uq_cols_ * 4);
    auto& scratch = ws.kcode(need);
    kernels::attention_kcode(s, q, keys, v.view(), out, n, pos0, m_.heads, m_.scale(), scratch, opt_);
  }

 private:
  const Buffer* table_;
  std::uint32_t uq_cols_;
  kernels::AttnKcodeOptions opt_;
};

// Pre-RoPE codes, decoded with RoPE into a persistent fp16 working copy as
// they arrive (only the new positions each step), attention() over it. The
// codes are the stored format; the working copy is what fidelity costs here.
class DecodedKeys final : public CodedKeys {
 public:
  DecodedKeys(Device& d, Dims m, const KCacheConfig& k, const KLayerParams& p, const kernels::RopeFreqs& rope)
      : CodedKeys(d, m, k, p), rope_(rope), decoded_(Buffer::create(d, kernels::kv_cache_bytes(m.ctx, m.n_kv, m.hd))) {}
  void before_rope(Stream& s, const Buffer& k, std::uint32_t n, std::uint32_t pos0) override { encode(s, k, n, pos0); }
  void store(Stream& s, const Buffer& k, std::uint32_t n, std::uint32_t pos0) override {
    kernels::kcode_decode(s, codec_, bits_, alpha_, coef_ ? &coef_ : nullptr, decoded_, pos0, n, &rope_);
    // Protected front positions hold their exact keys instead.
    if (pos0 < front_len_) kernels::kv_store(s, k, decoded_, std::min(n, front_len_ - pos0), pos0, m_.n_kv, m_.hd);
    store_front(s, k, n, pos0);
  }
  void attend(Stream& s, const Buffer& q, const DeviceValueCache& v, Buffer& out, std::uint32_t n, std::uint32_t pos0,
              AttnWorkspace& ws) override {
    Buffer* scratch = ws.split_k(kernels::attention_scratch_bytes(s.device(), n, m_.heads, m_.n_kv, pos0 + n, m_.hd));
    kernels::attention(s, q, decoded_, v.view(), out, n, pos0, m_.heads, m_.n_kv, m_.hd, m_.scale(), scratch);
  }
  std::uint64_t bytes() const override { return CodedKeys::bytes() + decoded_.size(); }

 private:
  kernels::RopeFreqs rope_;
  Buffer decoded_;
};

}  // namespace

// ---- every layer

DeviceKvCache::DeviceKvCache(Device& d, const ModelConfig& c, std::uint32_t ctx, const KCacheConfig& keys, VType values,
                             const KCalibration* calibration, const kernels::DeviceRope& rope)
    : ctx_(ctx), kv_dim_(c.kv_dim()), ws_(d) {
  keys.validate(c, calibration);
  validate_vcache(values, c);
  const Dims m{ctx, c.kv_heads, c.head_dim, c.heads};
  const kernels::RopeFreqs freqs = rope.freqs();
  const bool mean_rope = keys.one_bit && keys.rope == KRope::ropemean;
  if (mean_rope) {
    mean_rope_table_ = Buffer::create(d, kernels::attn_kcode_rope_table_bytes(ctx, c.head_dim));
    Stream s = Stream::create(d);
    kernels::attn_kcode_rope_table(s, freqs, mean_rope_table_, 0, ctx);
    s.submit_and_wait();
  }
  std::vector<KLayerParams> params;
  std::uint32_t uq_cols = 0;
  if (keys.one_bit)
    for (std::uint32_t l = 0; l < c.layers; ++l) {
      params.push_back(key_layer_params(keys, c, calibration, l));
      uq_cols = std::max(uq_cols, params.back().basis_cols);
    }
  for (std::uint32_t l = 0; l < c.layers; ++l) {
    values_.emplace_back(d, values, ctx, c.kv_heads, c.head_dim);
    if (!keys.one_bit) {
      keys_.push_back(std::make_unique<Fp16Keys>(d, m));
      continue;
    }
    const KLayerParams& p = params[l];
    if (keys.rope == KRope::pre) keys_.push_back(std::make_unique<DecodedKeys>(d, m, keys, p, freqs));
    else
      keys_.push_back(std::make_unique<ScoredKeys>(d, m, keys, p, mean_rope ? &freqs : nullptr,
                                                   mean_rope ? &mean_rope_table_ : nullptr, uq_cols));
  }
}

DeviceKvCache::~DeviceKvCache() = default;

void DeviceKvCache::before_rope(Stream& s, std::uint32_t layer, const Buffer& k, std::uint32_t n, std::uint32_t pos0) {
  keys_.at(layer)->before_rope(s, k, n, pos0);
}

void DeviceKvCache::store(Stream& s, std::uint32_t layer, const Buffer& k, const Buffer& v, std::uint32_t n,
                          std::uint32_t pos0) {
  keys_.at(layer)->store(s, k, n, pos0);
  values_.at(layer).store(s, v, n, pos0);
}

void DeviceKvCache::attend(Stream& s, std::uint32_t layer, const Buffer& q, Buffer& out, std::uint32_t n,
                           std::uint32_t pos0) {
  keys_.at(layer)->attend(s, q, values_.at(layer), out, n, pos0, ws_);
}

std::uint64_t DeviceKvCache::key_bytes() const {
  std::uint64_t b = 0;
  for (const auto& k : keys_) b += k->bytes();
  return b;
}
std::uint64_t DeviceKvCache::value_bytes() const {
  std::uint64_t b = 0;
  for (const auto& v : values_) b += v.bytes();
  return b;
}
std::uint64_t DeviceKvCache::other_bytes() const { return ws_.bytes() + (mean_rope_table_ ? mean_rope_table_.size() : 0); }

double DeviceKvCache::key_bits_per_coordinate() const {
  std::uint64_t b = 0;
  for (const auto& k : keys_) b += k->code_bytes();
  return double(b) * 8.0 / (double(ctx_) * double(kv_dim_) * double(keys_.size()));
}
double DeviceKvCache::value_bits_per_coordinate() const {
  return double(value_bytes()) * 8.0 / (double(ctx_) * double(kv_dim_) * double(values_.size()));
}

}  // namespace vkq
