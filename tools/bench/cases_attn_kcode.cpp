// attn_kcode bench cases: one decode step (n = 1) of 32 query heads over 8 KV
// heads, hd 128, 4 k and 32 k cached positions: attention() over the fp16
// K cache (the baseline) and attention_kcode over the 1-bit code (learned-
// style dense rotation, 4 protected front positions) on the float path and
// the popcount path at b = 8 and 4. Each case is verified against the CPU
// reference first (the popcount reference gets the device's quantized query).
#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <string>

#include "bench/bench.hpp"
#include "vkquant/half.hpp"
#include "vkquant/kernels/attn.hpp"
#include "vkquant/kernels/attn_kcode.hpp"
#include "vkquant/reference/attn.hpp"
#include "vkquant/reference/attn_kcode.hpp"

namespace vkq::bench {
namespace {

constexpr std::uint32_t kHd = 128, kKv = 8, kHeads = 32, kFront = 4;

// Buffers of one context length, shared by its cases.
struct Problem {
  Device* device = nullptr;
  std::uint32_t kv_len = 0;
  std::vector<float> q, mu, rot, k, v;         // k, v fp16-representable
  std::vector<std::uint32_t> bits;             // (kv_len, kv, hd/32)
  std::vector<half_bits> alpha;                // (kv_len, kv)
  Buffer q_b, mu_b, rot_b, bits_b, alpha_b, k_b, v_b, out_b, scratch16;
  kernels::AttnKcodeScratch scratch[3];

  kernels::KcodeKeys keys() const {
    kernels::KcodeKeys kk;
    kk.codec = {&mu_b, &rot_b, nullptr, kKv, kHd};
    kk.bits = &bits_b;
    kk.alpha = &alpha_b;
    kk.front = kFront;
    kk.front_keys = &k_b;  // the fp16 cache holds the exact keys
    return kk;
  }
  ref::AttnKcodeInputs inputs(const ref::KscoreQuantized* qq) const {
    ref::AttnKcodeInputs in;
    in.q = q;
    in.codec = {mu, rot, {}, kKv, kHd};
    in.bits = bits;
    in.alpha = alpha;
    in.front = kFront;
    in.front_keys = std::span<const float>(k).first(std::size_t(kFront) * kKv * kHd);
    in.v = v;
    in.quantized = qq;
    return in;
  }
};

// Random orthogonal matrices (Gram-Schmidt in fp64), one per KV head.
std::vector<float> rotations(std::mt19937& rng) {
  std::normal_distribution<double> g;
  std::vector<float> out(std::size_t(kKv) * kHd * kHd);
  std::vector<double> m(std::size_t(kHd) * kHd);
  for (std::uint32_t h = 0; h < kKv; ++h) {
    for (auto& x : m) x = g(rng);
    for (std::uint32_t i = 0; i < kHd; ++i) {
      double* ri = m.data() + std::size_t(i) * kHd;
      for (std::uint32_t j = 0; j < i; ++j) {
        const double* rj = m.data() + std::size_t(j) * kHd;
        double d = 0;
        for (std::uint32_t c = 0; c < kHd; ++c) d += ri[c] * rj[c];
        for (std::uint32_t c = 0; c < kHd; ++c) ri[c] -= d * rj[c];
      }
      double nn = 0;
      for (std::uint32_t c = 0; c < kHd; ++c) nn += ri[c] * ri[c];
      for (std::uint32_t c = 0; c < kHd; ++c) ri[c] /= std::sqrt(nn);
      for (std::uint32_t c = 0; c < kHd; ++c) out[(std::size_t(h) * kHd + i) * kHd + c] = float(ri[c]);
    }
  }
  return out;
}

const kernels::AttnKcodeOptions kOpts[3] = {{kernels::KcodePath::popcount, 8, 0, {}},
                                            {kernels::KcodePath::popcount, 4, 0, {}},
                                            {kernels::KcodePath::float_signs, 8, 0, {}}};

std::shared_ptr<Problem> make_problem(Device& d, std::uint32_t kv_len) {
  auto p = std::make_shared<Problem>();
  p->device = &d;
  p->kv_len = kv_len;
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  std::uniform_real_distribution<float> uni(0.6f, 1.0f);
  const std::size_t cells = std::size_t(kv_len) * kKv;
  p->q.resize(std::size_t(kHeads) * kHd);
  for (auto& e : p->q) e = normal(rng);
  p->mu.resize(std::size_t(kKv) * kHd);
  for (auto& e : p->mu) e = 0.5f * normal(rng);
  p->rot = rotations(rng);
  p->k.resize(cells * kHd);
  p->v.resize(cells * kHd);
  for (auto& e : p->k) e = from_half(to_half(normal(rng)));
  for (auto& e : p->v) e = from_half(to_half(normal(rng)));
  p->bits.resize(cells * (kHd / 32));
  for (auto& e : p->bits) e = std::uint32_t(rng());
  p->alpha.resize(cells);
  for (auto& e : p->alpha) e = to_half(uni(rng));
  auto up = [&](const auto& host) { return upload_host(d, host); };
  p->q_b = up(p->q);
  p->mu_b = up(p->mu);
  p->rot_b = up(p->rot);
  p->bits_b = up(p->bits);
  p->alpha_b = up(p->alpha);  // cells is even: whole words
  p->k_b = up(ref::kv_pack(p->k, kv_len, kKv, kHd));
  p->v_b = up(ref::kv_pack(p->v, kv_len, kKv, kHd));
  p->out_b = Buffer::create(d, std::uint64_t(kHeads) * kHd * 4);
  p->scratch16 = Buffer::create(d, std::max<std::uint64_t>(kernels::attention_scratch_bytes(d, 1, kHeads, kKv, kv_len, kHd), 4));
  for (int i = 0; i < 3; ++i)
    p->scratch[i] = kernels::AttnKcodeScratch::create(
        d, kernels::attention_kcode_scratch_bytes(d, p->keys().codec, 1, kHeads, kv_len, kOpts[i]));
  return p;
}

// Runs `rec` once and compares out with the reference's.
template <class Rec, class Ref>
std::string verify_out(Problem& p, Rec&& rec, Ref&& make_ref) {
  return run_and_compare(*p.device, rec, p.out_b, make_ref, 1e-4, 1e-3, "outputs");
}

std::vector<Case> cases(Device& d, const Options& o) {
  std::vector<Case> out;
  std::vector<std::uint32_t> lens{4096};
  if (!o.quick) lens.push_back(32768);
  const float scale = float(1.0 / std::sqrt(double(kHd)));
  for (const std::uint32_t kv_len : lens) {
    std::shared_ptr<Problem> p = make_problem(d, kv_len);
    const std::string tag = "/d128/n" + std::to_string(kv_len / 1024) + "k/q32kv8/decode";
    const std::string base = "attn_kcode/f16" + tag;
    const double cells = double(kv_len) * kKv, q_bytes = double(kHeads) * kHd * 4, out_bytes = q_bytes;
    const double v_bytes = cells * kHd * 2;
    const double macs = 2.0 * kHeads * double(kv_len) * kHd;  // q·k and p·v

    auto f16 = [p, scale](Stream& s) {
      kernels::attention(s, p->q_b, p->k_b, p->v_b, p->out_b, 1, p->kv_len - 1, kHeads, kKv, kHd, scale,
                         &p->scratch16);
    };
    out.push_back({base, "attn_kcode", Roof::read, 2 * v_bytes + q_bytes, out_bytes, 2 * macs, "", f16,
                   [p, f16, scale] {
                     return verify_out(*p, f16, [&] {
                       std::vector<float> want(std::size_t(kHeads) * kHd);
                       ref::attention(p->q, p->k, p->v, want, 1, p->kv_len - 1, kHeads, kKv, kHd, scale);
                       return want;
                     });
                   }});
    const char* names[3] = {"popcount8", "popcount4", "float"};
    for (int i = 0; i < 3; ++i) {
      auto rec = [p, i, scale](Stream& s) {
        kernels::attention_kcode(s, p->q_b, p->keys(), p->v_b, p->out_b, 1, p->kv_len - 1, kHeads, scale, p->scratch[i],
                                 kOpts[i]);
      };
      const double code_bytes = cells * (kHd / 8 + 2) + double(kKv) * kHd * kHd * 4;  // bits, alpha, R
      out.push_back({"attn_kcode/" + std::string(names[i]) + tag, "attn_kcode", Roof::read,
                     code_bytes + v_bytes + q_bytes, out_bytes, 2 * macs, base, rec, [p, rec, i, scale] {
                       return verify_out(*p, rec, [&] {
                         ref::KscoreQuantized qq;
                         if (kOpts[i].path == kernels::KcodePath::popcount) {
                           qq.bits = kOpts[i].query_bits;
                           qq.planes.resize(std::size_t(kHeads) * qq.bits * (kHd / 32));
                           p->scratch[i].planes.download(qq.planes.data(), qq.planes.size() * 4);
                           qq.consts.resize(kHeads);  // same 16-byte layout as the device's
                           p->scratch[i].qconst.download(qq.consts.data(), qq.consts.size() * sizeof(qq.consts[0]));
                         }
                         std::vector<float> want(std::size_t(kHeads) * kHd);
                         ref::attention_kcode(p->inputs(kOpts[i].path == kernels::KcodePath::popcount ? &qq : nullptr),
                                              want, 1, p->kv_len - 1, kHeads, scale);
                         return want;
                       });
                     }});
    }
  }
  return out;
}

}  // namespace

VKQ_BENCH_CASES(attn_kcode, cases);

}  // namespace vkq::bench
