// attn_kv bench cases: one decode step's attention over a long KV cache in
// the shape of Qwen2.5-0.5B (14 query heads, 2 KV heads, hd 64) at 4 k, 32 k
// and 128 k positions, for each storage of keys and values the model can use:
// fp16 K + fp16 V (the baseline), fp16 K + q4 V, 1-bit K (popcount over 8-bit
// query planes, SRHT rotation, 4 exact front keys) + fp16 V, and 1-bit K + q4
// V (and + q8 V), and the transform code at 1.75 bits (docs/design.md §2.9:
// 16 coefficients at 4 bits, 16 at 2, 16 at 1 per key, with calibrated
// levels, scored in fp32 by kscore_tc) + fp16 or q4 V, and with uniform
// levels + fp16 V (ktc1.75u: what the levels cost), and at the same bits as
// calibrate's plans spend them since the 3-bit width (ktc1.75w3: 8 at 4
// bits, 16 at 3, 16 at 2; 2 of each 16 3-bit codes read across two halves)
// + fp16 V. The ratio column is the speedup over fp16 K+V in the same
// run; bytes are the cache bytes one step reads (the roofline yardstick).
// Each case is first checked against the CPU reference on the same stored
// bytes (the popcount reference gets the device's quantized query).
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
#include "vkquant/rotation/learn.hpp"

namespace vkq::bench {
namespace {

constexpr std::uint32_t kHd = 64, kKv = 2, kHeads = 14, kFront = 4;
const kernels::AttnKcodeOptions kPop8{kernels::KcodePath::popcount, 8, 0, {}};
const kernels::AttnKcodeOptions kTc{kernels::KcodePath::float_signs, 8, 0, {}};  // the transform code: no planes

// One context length's keys, codes and values (fp16, q8 and q4), shared by its cases.
struct Problem {
  Device* device = nullptr;
  std::uint32_t kv_len = 0;
  std::vector<float> q, mu, rot, k;  // k fp16-representable
  std::vector<std::uint32_t> bits;   // (kv_len, kv, hd/32)
  std::vector<half_bits> alpha;      // (kv_len, kv)
  ref::VPacked vpacked[3];           // per VType
  std::vector<float> v[3];           // the values each storage stands for
  Buffer q_b, mu_b, rot_b, bits_b, alpha_b, k_b, out_b, split16;
  Buffer v_codes[3], v_scales[3];
  kernels::AttnKcodeScratch scratch;
  // The transform code at 1.75 bits, every head alike, random records:
  // tc[0] 16/0/16/16 (n4/n3/n2/n1), tc[1] 8/16/16/0.
  struct Tc {
    KResidualLayout layout;
    std::vector<float> basis;       // (kv, hd, rank)
    std::vector<half_bits> coef;    // (kv_len, stride)
    std::vector<float> levels;      // (kv, rank, kTcLevels): ascending levels, as calibrate's
    Buffer basis_b, coef_b, levels_b;
    kernels::KResidualTable table;
    kernels::AttnKcodeScratch scratch;
    // levels: the calibrated levels (kscore_tc_lv); else the uniform code + 1/2 (kscore_tc).
    kernels::KcodeKeys keys(const Buffer& mu_b, const Buffer& front_keys, bool with_levels) const {
      kernels::KcodeKeys kk;
      kk.codec = {&mu_b, nullptr, &basis_b, kKv, kHd, &table, layout.max_rank()};
      kk.codec.transform = true;
      kk.codec.levels = with_levels ? &levels_b : nullptr;
      kk.coef = &coef_b;
      kk.front = kFront;
      kk.front_keys = &front_keys;
      return kk;
    }
  } tc[2];

  kernels::VCacheView values(VType t) const {
    const auto i = std::size_t(t);
    return {t, &v_codes[i], t == VType::f16 ? nullptr : &v_scales[i]};
  }
  kernels::KcodeKeys keys() const {
    kernels::KcodeKeys kk;
    kk.codec = {&mu_b, &rot_b, nullptr, kKv, kHd};
    kk.bits = &bits_b;
    kk.alpha = &alpha_b;
    kk.front = kFront;
    kk.front_keys = &k_b;  // the fp16 cache holds the exact keys
    return kk;
  }
};

std::shared_ptr<Problem> make_problem(Device& d, std::uint32_t kv_len) {
  auto p = std::make_shared<Problem>();
  p->device = &d;
  p->kv_len = kv_len;
  std::mt19937 rng(11);
  std::normal_distribution<float> normal;
  std::uniform_real_distribution<float> uni(0.6f, 1.0f);
  const std::size_t cells = std::size_t(kv_len) * kKv;
  p->q.resize(std::size_t(kHeads) * kHd);
  for (auto& e : p->q) e = normal(rng);
  p->mu.resize(std::size_t(kKv) * kHd);
  for (auto& e : p->mu) e = 0.5f * normal(rng);
  const Eigen::MatrixXd h = rot::srht_matrix(kHd, 1);
  for (std::uint32_t head = 0; head < kKv; ++head)
    for (std::uint32_t i = 0; i < kHd; ++i)
      for (std::uint32_t j = 0; j < kHd; ++j) p->rot.push_back(float(h(i, j)));
  p->k.resize(cells * kHd);
  for (auto& e : p->k) e = from_half(to_half(normal(rng)));
  std::vector<float> v(cells * kHd);
  for (auto& e : v) e = normal(rng);
  p->bits.resize(cells * (kHd / 32));
  for (auto& e : p->bits) e = std::uint32_t(rng());
  p->alpha.resize(cells);
  for (auto& e : p->alpha) e = to_half(uni(rng));
  auto up = [&](const auto& host) { return upload_host(d, host); };
  for (VType t : {VType::f16, VType::q8, VType::q4}) {
    const auto i = std::size_t(t);
    p->vpacked[i] = ref::vcache_pack(t, v, kv_len, kKv, kHd);
    p->v[i] = ref::vcache_unpack(t, p->vpacked[i], kv_len, kKv, kHd);
    p->v_codes[i] = up(p->vpacked[i].codes);
    p->v_scales[i] = up(p->vpacked[i].scales);
  }
  p->q_b = up(p->q);
  p->mu_b = up(p->mu);
  p->rot_b = up(p->rot);
  p->bits_b = up(p->bits);
  p->alpha_b = up(p->alpha);  // cells is even: whole words
  p->k_b = up(ref::kv_pack(p->k, kv_len, kKv, kHd));
  p->out_b = Buffer::create(d, std::uint64_t(kHeads) * kHd * 4);
  p->split16 = Buffer::create(d, std::max<std::uint64_t>(kernels::attention_scratch_bytes(d, 1, kHeads, kKv, kv_len, kHd), 4));
  p->scratch = kernels::AttnKcodeScratch::create(
      d, kernels::attention_kcode_scratch_bytes(d, p->keys().codec, 1, kHeads, kv_len, kPop8));
  const KResidual tc_heads[2] = {tc_residual(16, 0, 16, 16), tc_residual(8, 16, 16, 0)};
  for (int i = 0; i < 2; ++i) {
    Problem::Tc& t = p->tc[i];
    t.layout = KResidualLayout::make(std::vector<KResidual>(kKv, tc_heads[i]));
    const std::uint32_t cols = t.layout.max_rank();
    t.basis.resize(std::size_t(kKv) * kHd * cols);
    for (auto& e : t.basis) e = 0.2f * normal(rng);
    t.coef.resize(std::size_t(kv_len) * t.layout.stride);
    for (auto& e : t.coef) e = half_bits(rng());
    std::vector<std::uint32_t> words((t.coef.size() + 1) / 2, 0);
    for (std::size_t c = 0; c < t.coef.size(); ++c) words[c / 2] |= std::uint32_t(t.coef[c]) << (16 * (c % 2));
    // Each column's levels: value v at v + 1/2 + v³/64 (ascending, wider at the tails).
    t.levels.assign(std::size_t(kKv) * cols * kTcLevels, 0.0f);
    for (std::uint32_t head = 0; head < kKv; ++head)
      for (std::uint32_t j = 0; j < cols; ++j) {
        const std::uint32_t w = tc_slot(t.layout.heads[head], j).width;
        for (std::uint32_t u = 0; u < (1u << w); ++u) {
          const double x = tc_uniform_level(w, u) - 0.5;
          t.levels[(std::size_t(head) * cols + j) * kTcLevels + u] = float(x + 0.5 + (w > 1 ? x * x * x / 64 : 0.0));
        }
      }
    t.levels_b = up(t.levels);
    t.basis_b = up(t.basis);
    t.coef_b = up(words);
    t.table = kernels::KResidualTable::create(d, t.layout);
    t.scratch = kernels::AttnKcodeScratch::create(
        d, kernels::attention_kcode_scratch_bytes(d, t.keys(p->mu_b, p->k_b, true).codec, 1, kHeads, kv_len, kTc));
  }
  return p;
}

// Runs `rec` once and compares out with the reference's.
template <class Rec, class Ref>
std::string verify_out(Problem& p, Rec&& rec, Ref&& make_ref) {
  return run_and_compare(*p.device, rec, p.out_b, make_ref, 1e-4, 1e-3, "outputs");
}

std::vector<Case> cases(Device& d, const Options& o) {
  std::vector<Case> out;
  std::vector<std::uint32_t> lens{4096, 32768};
  if (!o.quick) lens.push_back(131072);
  const float scale = float(1.0 / std::sqrt(double(kHd)));
  for (const std::uint32_t kv_len : lens) {
    std::shared_ptr<Problem> p = make_problem(d, kv_len);
    const std::string tag = "/d64/n" + std::to_string(kv_len / 1024) + "k/q14kv2/decode";
    const std::string base = "attn_kv/k16-v16" + tag;
    const double cells = double(kv_len) * kKv, q_bytes = double(kHeads) * kHd * 4, out_bytes = q_bytes;
    const double k16_bytes = cells * kHd * 2, code_bytes = cells * (kHd / 8 + 2);
    const double macs = 2.0 * kHeads * double(kv_len) * kHd;  // q·k and p·v
    auto v_bytes = [&](VType t) {
      const auto i = std::size_t(t);
      return double(p->vpacked[i].codes.size() + p->vpacked[i].scales.size()) * 4;
    };
    for (VType vt : {VType::f16, VType::q4}) {
      const std::string name = std::string("attn_kv/k16-v") + (vt == VType::f16 ? "16" : vtype_name(vt)) + tag;
      auto rec = [p, vt, scale](Stream& s) {
        kernels::attention(s, p->q_b, p->k_b, p->values(vt), p->out_b, 1, p->kv_len - 1, kHeads, kKv, kHd, scale,
                           &p->split16);
      };
      out.push_back({name, "attn_kv", Roof::read, k16_bytes + v_bytes(vt) + q_bytes, out_bytes, 2 * macs,
                     vt == VType::f16 ? "" : base, rec, [p, rec, vt, scale] {
                       return verify_out(*p, rec, [&] {
                         std::vector<float> want(std::size_t(kHeads) * kHd);
                         ref::attention(p->q, p->k, p->v[std::size_t(vt)], want, 1, p->kv_len - 1, kHeads, kKv, kHd,
                                        scale);
                         return want;
                       });
                     }});
    }
    for (VType vt : {VType::f16, VType::q8, VType::q4}) {
      const std::string name = std::string("attn_kv/k1bit-v") + (vt == VType::f16 ? "16" : vtype_name(vt)) + tag;
      auto rec = [p, vt, scale](Stream& s) {
        kernels::attention_kcode(s, p->q_b, p->keys(), p->values(vt), p->out_b, 1, p->kv_len - 1, kHeads, scale,
                                 p->scratch, kPop8);
      };
      out.push_back({name, "attn_kv", Roof::read, code_bytes + v_bytes(vt) + q_bytes, out_bytes, 2 * macs, base, rec,
                     [p, rec, vt, scale] {
                       return verify_out(*p, rec, [&] {
                         ref::KscoreQuantized qq;
                         qq.bits = 8;
                         qq.planes.resize(std::size_t(kHeads) * qq.bits * (kHd / 32));
                         p->scratch.planes.download(qq.planes.data(), qq.planes.size() * 4);
                         qq.consts.resize(kHeads);  // same 16-byte layout as the device's
                         p->scratch.qconst.download(qq.consts.data(), qq.consts.size() * sizeof(qq.consts[0]));
                         ref::AttnKcodeInputs in;
                         in.q = p->q;
                         in.codec = {p->mu, p->rot, {}, kKv, kHd};
                         in.bits = p->bits;
                         in.alpha = p->alpha;
                         in.front = kFront;
                         in.front_keys = std::span<const float>(p->k).first(std::size_t(kFront) * kKv * kHd);
                         in.v = p->v[std::size_t(vt)];
                         in.quantized = &qq;
                         std::vector<float> want(std::size_t(kHeads) * kHd);
                         ref::attention_kcode(in, want, 1, p->kv_len - 1, kHeads, scale);
                         return want;
                       });
                     }});
    }
    // ktc1.75: with calibrated levels (what calibrate's artifacts give);
    // ktc1.75u: uniform levels, the same records (the levels' cost);
    // ktc1.75w3: with levels, 3-bit codes (calibrate's plans since the 3-bit width).
    struct TcCase {
      const char* name;
      int layout;  // Problem::tc's index
      bool levels;
      VType vt;
    };
    for (const TcCase& c : {TcCase{"attn_kv/ktc1.75-v", 0, true, VType::f16}, TcCase{"attn_kv/ktc1.75-v", 0, true, VType::q4},
                            TcCase{"attn_kv/ktc1.75u-v", 0, false, VType::f16},
                            TcCase{"attn_kv/ktc1.75w3-v", 1, true, VType::f16}}) {
      Problem::Tc* t = &p->tc[c.layout];
      const bool levels = c.levels;
      const VType vt = c.vt;
      const double tc_bytes = double(kv_len) * t->layout.stride * 2;  // stride halves per position
      const std::string name = std::string(c.name) + (vt == VType::f16 ? "16" : vtype_name(vt)) + tag;
      auto rec = [p, t, vt, scale, levels](Stream& s) {
        kernels::attention_kcode(s, p->q_b, t->keys(p->mu_b, p->k_b, levels), p->values(vt), p->out_b, 1, p->kv_len - 1,
                                 kHeads, scale, t->scratch, kTc);
      };
      out.push_back({name, "attn_kv", Roof::read, tc_bytes + v_bytes(vt) + q_bytes, out_bytes, 2 * macs, base, rec,
                     [p, t, rec, vt, scale, levels] {
                       return verify_out(*p, rec, [&] {
                         ref::AttnKcodeInputs in;
                         in.q = p->q;
                         in.codec = {p->mu,    {},      t->basis, kKv,         kHd, t->layout, t->layout.max_rank(),
                                     nullptr, {},      true,        levels ? std::span<const float>(t->levels) : std::span<const float>()};
                         in.coef = t->coef;
                         in.front = kFront;
                         in.front_keys = std::span<const float>(p->k).first(std::size_t(kFront) * kKv * kHd);
                         in.v = p->v[std::size_t(vt)];
                         std::vector<float> want(std::size_t(kHeads) * kHd);
                         ref::attention_kcode(in, want, 1, p->kv_len - 1, kHeads, scale);
                         return want;
                       });
                     }});
    }
  }
  return out;
}

}  // namespace

VKQ_BENCH_CASES(attn_kv, cases);

}  // namespace vkq::bench
