#include "vkquant/rope.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "vkquant/error.hpp"

namespace vkq {

const char* rope_type_name(RopeType t) {
  switch (t) {
    case RopeType::plain: return "default";
    case RopeType::linear: return "linear";
    case RopeType::llama3: return "llama3";
    case RopeType::yarn: return "yarn";
    case RopeType::longrope: return "longrope";
  }
  return "?";
}

namespace {

constexpr double kPi = std::numbers::pi;

// YaRN's attention factor for a scale (HF get_mscale).
double yarn_mscale(double scale, double mscale = 1.0) { return scale <= 1.0 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0; }

// The pair index whose frequency turns `rotations` times over `ctx` positions (HF find_correction_dim).
double correction_dim(double rotations, double hd, double theta, double ctx) {
  return hd * std::log(ctx / (rotations * 2.0 * kPi)) / (2.0 * std::log(theta));
}

}  // namespace

RopeTable rope_table(float theta, std::uint32_t hd, const RopeScaling& s, std::uint32_t ctx) {
  if (hd == 0 || hd % 2) throw Error("rope_table: head size " + std::to_string(hd) + " is not even");
  if (!(std::isfinite(theta) && theta > 1.0f)) throw Error("rope_table: theta must be > 1");
  const std::uint32_t half = hd / 2;
  RopeTable t;
  t.hd = hd;
  std::vector<double> inv(half);
  for (std::uint32_t i = 0; i < half; ++i) inv[i] = std::pow(double(theta), -2.0 * i / hd);
  const bool scaled = s.type != RopeType::plain;
  if (scaled && !(std::isfinite(s.factor) && s.factor > 0.0)) throw Error("rope_table: factor must be > 0");
  const bool needs_original = s.type == RopeType::llama3 || s.type == RopeType::yarn || s.type == RopeType::longrope;
  if (needs_original && s.original_ctx == 0) throw Error("rope_table: the original context length is missing");
  double scale = 1.0;
  switch (s.type) {
    case RopeType::plain: break;
    case RopeType::linear:
      for (double& f : inv) f /= s.factor;
      break;
    case RopeType::llama3: {
      if (!(s.high_freq_factor > s.low_freq_factor)) throw Error("rope_table: llama3 needs high_freq_factor > low_freq_factor");
      const double old = s.original_ctx, low_wavelen = old / s.low_freq_factor, high_wavelen = old / s.high_freq_factor;
      for (double& f : inv) {
        const double wavelen = 2.0 * kPi / f;
        if (wavelen > low_wavelen) {
          f /= s.factor;
        } else if (!(wavelen < high_wavelen)) {  // between: interpolate smoothly
          const double smooth = (old / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
          f = (1.0 - smooth) * f / s.factor + smooth * f;
        }
      }
      break;
    }
    case RopeType::yarn: {
      double low = correction_dim(s.beta_fast, hd, theta, s.original_ctx);
      double high = correction_dim(s.beta_slow, hd, theta, s.original_ctx);
      if (s.truncate) low = std::floor(low), high = std::ceil(high);
      low = std::max(low, 0.0);
      high = std::min(high, double(hd - 1));
      if (low == high) high += 0.001;  // no division by zero
      for (std::uint32_t i = 0; i < half; ++i) {
        const double ramp = std::clamp((double(i) - low) / (high - low), 0.0, 1.0);
        const double extrapolation = 1.0 - ramp;  // share of the original frequency
        inv[i] = inv[i] / s.factor * (1.0 - extrapolation) + inv[i] * extrapolation;
      }
      if (s.attention_factor > 0.0) scale = s.attention_factor;
      else if (s.mscale > 0.0 && s.mscale_all_dim > 0.0)
        scale = yarn_mscale(s.factor, s.mscale) / yarn_mscale(s.factor, s.mscale_all_dim);
      else scale = yarn_mscale(s.factor);
      break;
    }
    case RopeType::longrope: {
      const auto& f = ctx > s.original_ctx ? s.long_factors : s.short_factors;
      if (f.size() != half)
        throw Error("rope_table: longrope needs " + std::to_string(half) + " factors, got " + std::to_string(f.size()));
      for (std::uint32_t i = 0; i < half; ++i) inv[i] /= f[i];
      if (s.attention_factor > 0.0) scale = s.attention_factor;
      else if (s.factor > 1.0) scale = std::sqrt(1.0 + std::log(s.factor) / std::log(double(s.original_ctx)));
      break;
    }
  }
  if (!s.freq_factors.empty()) {
    if (s.freq_factors.size() != half)
      throw Error("rope_table: " + std::to_string(s.freq_factors.size()) + " frequency factors for " +
                  std::to_string(half) + " pairs");
    for (std::uint32_t i = 0; i < half; ++i) inv[i] /= s.freq_factors[i];
  }
  t.inv_freq.resize(half);
  for (std::uint32_t i = 0; i < half; ++i) {
    if (!(std::isfinite(inv[i]) && inv[i] > 0.0)) throw Error("rope_table: frequency " + std::to_string(i) + " is not positive");
    t.inv_freq[i] = float(inv[i]);
  }
  t.scale = float(scale);
  return t;
}

RopeTable rope_table_plain(float theta, std::uint32_t hd) { return rope_table(theta, hd, RopeScaling{}, 0); }

namespace {
template <typename T>
void apply(const RopeTable& t, T* v, double pos, bool neox) {
  const std::uint32_t half = t.hd / 2;
  for (std::uint32_t i = 0; i < half; ++i) {
    const double a = std::fmod(pos * double(t.inv_freq[i]), 2.0 * kPi);
    const double cs = std::cos(a) * t.scale, sn = std::sin(a) * t.scale;
    const std::uint32_t j0 = neox ? i : 2 * i, j1 = neox ? i + half : 2 * i + 1;
    const double x0 = v[j0], x1 = v[j1];
    v[j0] = T(x0 * cs - x1 * sn);
    v[j1] = T(x0 * sn + x1 * cs);
  }
}
}  // namespace

void rope_apply(const RopeTable& t, double* v, double pos, bool neox) { apply(t, v, pos, neox); }
void rope_apply(const RopeTable& t, float* v, double pos, bool neox) { apply(t, v, pos, neox); }

}  // namespace vkq
