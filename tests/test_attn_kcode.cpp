// attention_kcode vs its CPU twin given the same codes (and, on the popcount
// path, the device's own quantized query, whose planes are first checked bit
// for bit against the reference quantizer): hd 64 / 128, KV heads 1 / 2,
// group 1 / 4, decode (n = 1) and prefill (n = 37) at pos0 0 / 100, rank 0 / 8,
// front 0 / 4, float and popcount b = 8 / 4 / 1, mean-RoPE on / off, query
// blocks and kscore key chunks forced small. Consistency: the float path over
// device-encoded codes matches attention() over kcode_decode's fp16 keys
// (plain and mean-RoPE). Values fp16, q8 and q4 (read in place). The mean-RoPE table against cos / sin in fp64, and
// argument rejection. Per-head residuals (int4 / none / int8: odd stride,
// records at odd halves) with query blocks and key chunks forced. GQA
// groups of 7 (Qwen2.5) and 12 too. The transform code (no sign bits, no
// rotation; kscore_tc) with 4/3/2/1-bit segments, an empty head, mean-RoPE and
// front keys, blocks and chunks forced.
#include <cmath>
#include <numbers>
#include <optional>
#include <random>

#include "tc_levels.hpp"
#include "vk_test.hpp"
#include "vkquant/error.hpp"
#include "vkquant/half.hpp"
#include "vkquant/kernels/attn.hpp"
#include "vkquant/kernels/attn_kcode.hpp"
#include "vkquant/kernels/kcodec.hpp"
#include "vkquant/kresidual.hpp"
#include "vkquant/reference/attn.hpp"
#include "vkquant/reference/attn_kcode.hpp"
#include "vkquant/reference/kcodec.hpp"
#include "vkquant/reference/kscore.hpp"

namespace vkq::test {
namespace {

using kernels::KcodePath;

constexpr float kTheta = 10000.f;

// A random orthogonal matrix per head (Gram-Schmidt of a Gaussian matrix, fp64).
std::vector<float> random_rotations(std::uint32_t n_kv, std::uint32_t hd, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> g;
  std::vector<float> out(std::size_t(n_kv) * hd * hd);
  std::vector<double> m(std::size_t(hd) * hd);
  for (std::uint32_t h = 0; h < n_kv; ++h) {
    for (auto& x : m) x = g(rng);
    for (std::uint32_t i = 0; i < hd; ++i) {
      double* ri = m.data() + std::size_t(i) * hd;
      for (int pass = 0; pass < 2; ++pass)
        for (std::uint32_t j = 0; j < i; ++j) {
          const double* rj = m.data() + std::size_t(j) * hd;
          double d = 0;
          for (std::uint32_t c = 0; c < hd; ++c) d += ri[c] * rj[c];
          for (std::uint32_t c = 0; c < hd; ++c) ri[c] -= d * rj[c];
        }
      double nn = 0;
      for (std::uint32_t c = 0; c < hd; ++c) nn += ri[c] * ri[c];
      for (std::uint32_t c = 0; c < hd; ++c) ri[c] /= std::sqrt(nn);
    }
    for (std::size_t i = 0; i < m.size(); ++i) out[std::size_t(h) * hd * hd + i] = float(m[i]);
  }
  return out;
}

// fp16 halves packed two per word (low half = even element), padded.
std::vector<std::uint32_t> pack_halves(std::span<const half_bits> h) {
  std::vector<std::uint32_t> w(std::max<std::size_t>((h.size() + 1) / 2, 1), 0);
  for (std::size_t i = 0; i < h.size(); ++i) w[i / 2] |= std::uint32_t(h[i]) << (16 * (i % 2));
  return w;
}

// Values as fp16 would store them.
std::vector<float> fp16_round(std::span<const float> x) { return from_half(to_half(x)); }

struct ACase {
  std::uint32_t hd, n_kv, group, n, pos0, rank, front;  // rank: the basis' columns
  KcodePath path;
  std::uint32_t b;  // popcount query bits
  bool mean_rope;
  bool small_blocks = false;  // force query blocks of few rows and kscore key chunks
  VType vt = VType::f16;      // value cache storage
  std::vector<KResidual> mixed{};  // per-head (rank, bits); empty: every head at (rank, 16)
  bool levels = false;             // transform codes: calibrated (random, ascending) levels
};

std::string case_name(const ACase& c) {
  std::string s = "d" + std::to_string(c.hd) + "_kv" + std::to_string(c.n_kv) + "_g" + std::to_string(c.group) +
                  "_n" + std::to_string(c.n) + "_p" + std::to_string(c.pos0) + "_r" + std::to_string(c.rank) + "_f" +
                  std::to_string(c.front) +
                  (c.path == KcodePath::float_signs ? std::string("_float") : "_pop" + std::to_string(c.b));
  if (c.mean_rope) s += "_meanrope";
  if (c.small_blocks) s += "_blocks";
  if (c.vt != VType::f16) s += std::string("_v") + vtype_name(c.vt);
  if (!c.mixed.empty()) s += "_mix";
  for (const KResidual& r : c.mixed)
    s += r.tc ? "_tc" + std::to_string(r.n4) + "x" + std::to_string(r.n3) + "x" + std::to_string(r.n2) + "x" +
                    std::to_string(r.n1())
              : "_" + std::to_string(r.rank) + (r.arel ? "a" : "b") + std::to_string(r.bits);
  if (c.levels) s += "_levels";
  return s;
}

// One layer's codec, keys, codes, values and queries, host and device.
struct Problem {
  std::uint32_t hd, n_kv, heads, n, pos0, kv_len, rank, front;
  bool mean_rope;
  TestRope rope;
  KResidualLayout layout;
  std::vector<float> mu, rot, basis, k, v, q, front_keys, levels;
  ref::KCodes codes;
  VType vt;
  Buffer mu_b, rot_b, basis_b, bits_b, alpha_b, coef_b, front_b, v_b, vs_b, q_b, table_b, lv_b;
  kernels::KResidualTable resid_b;

  Problem(Device& d, const ACase& c, std::uint32_t seed)
      : hd(c.hd), n_kv(c.n_kv), heads(c.n_kv * c.group), n(c.n), pos0(c.pos0), kv_len(c.pos0 + c.n), rank(c.rank),
        front(std::min(c.front, c.pos0 + c.n)), mean_rope(c.mean_rope), rope(test_rope(d, c.hd, kTheta)),
        layout(!c.mixed.empty() ? KResidualLayout::make(c.mixed)
                                : c.rank ? KResidualLayout::uniform(c.n_kv, c.rank) : KResidualLayout{}),
        vt(c.vt) {
    mu = random_floats(std::size_t(n_kv) * hd, seed, -1.5f, 1.5f);
    if (!transform()) rot = random_rotations(n_kv, hd, seed + 1);  // the transform code has no rotation
    basis = random_floats(std::size_t(n_kv) * hd * rank, seed + 2, -0.2f, 0.2f);
    if (c.levels && transform() && rank) levels = test_tc_levels(layout, rank, seed + 6);
    // Keys: a mean (RoPE'd at their position in the mean-RoPE cases) plus noise.
    k = random_floats(std::size_t(kv_len) * n_kv * hd, seed + 3, -2.f, 2.f);
    for (std::uint32_t p = 0; p < kv_len; ++p)
      for (std::uint32_t h = 0; h < n_kv; ++h) {
        const std::vector<double> m = ref::kcode_mean_at(host_codec(), h, p);
        for (std::uint32_t i = 0; i < hd; ++i) k[(std::size_t(p) * n_kv + h) * hd + i] += float(m[i]);
      }
    codes = ref::kcode_encode(host_codec(), k, kv_len, 0);
    // Values as the cache stores them (fp16, or q8 / q4 blocks), and the floats they stand for.
    const ref::VPacked vp = ref::vcache_pack(vt, random_floats(std::size_t(kv_len) * n_kv * hd, seed + 4, -1.f, 1.f),
                                             kv_len, n_kv, hd);
    v = ref::vcache_unpack(vt, vp, kv_len, n_kv, hd);
    q = random_floats(std::size_t(n) * heads * hd, seed + 5, -1.5f, 1.5f);
    front_keys = fp16_round(std::span<const float>(k).first(std::size_t(front) * n_kv * hd));

    mu_b = upload(d, mu);
    rot_b = upload(d, rot.empty() ? std::vector<float>(1) : rot);
    basis_b = upload(d, basis.empty() ? std::vector<float>(1) : basis);
    bits_b = upload(d, codes.bits.empty() ? std::vector<std::uint32_t>(1) : codes.bits);  // transform code: none
    alpha_b = upload(d, pack_halves(codes.alpha));
    coef_b = upload(d, pack_halves(codes.coef));
    front_b = upload(d, front ? ref::kv_pack(front_keys, front, n_kv, hd) : std::vector<std::uint32_t>(1));
    v_b = upload(d, vp.codes);
    vs_b = upload(d, vp.scales.empty() ? std::vector<std::uint32_t>(1) : vp.scales);
    q_b = upload(d, q);
    table_b = Buffer::create(d, kernels::attn_kcode_rope_table_bytes(kv_len, hd));
    if (layout.stride) resid_b = kernels::KResidualTable::create(d, layout);
    if (!levels.empty()) lv_b = upload(d, levels);
  }

  kernels::VCacheView values() const { return {vt, &v_b, vt == VType::f16 ? nullptr : &vs_b}; }
  bool transform() const { return layout.transform(); }
  ref::KCodec host_codec() const {
    return {mu, rot, basis, n_kv, hd, layout, rank, mean_rope ? &rope.host : nullptr, {}, transform(), levels};
  }
  kernels::KcodeKeys keys() const {
    kernels::KcodeKeys kk;
    kk.codec = {&mu_b, transform() ? nullptr : &rot_b, rank ? &basis_b : nullptr, n_kv, hd, layout.stride ? &resid_b : nullptr, rank,
                mean_rope ? rope.freqs() : kernels::RopeFreqs{}};
    kk.codec.transform = transform();
    kk.codec.levels = levels.empty() ? nullptr : &lv_b;
    kk.bits = &bits_b;
    kk.alpha = &alpha_b;
    kk.coef = layout.stride ? &coef_b : nullptr;
    kk.front = front;
    kk.front_keys = front ? &front_b : nullptr;
    kk.rope_table = mean_rope ? &table_b : nullptr;
    return kk;
  }
  ref::AttnKcodeInputs inputs(const ref::KscoreQuantized* qq) const {
    ref::AttnKcodeInputs in;
    in.q = q;
    in.codec = host_codec();
    in.bits = codes.bits;
    in.alpha = codes.alpha;
    in.coef = codes.coef;
    in.front = front;
    in.front_keys = front_keys;
    in.v = v;
    in.quantized = qq;
    return in;
  }
};

// On device d: attention over the key code against the CPU reference.
void check_attention(Device& d, const ACase& c) {
  const Problem pb(d, c, 100 + c.hd + c.n + c.pos0 + c.rank);
  const float scale = float(1.0 / std::sqrt(double(c.hd)));
  kernels::AttnKcodeOptions opt;
  opt.path = c.path;
  opt.query_bits = c.b;
  if (c.small_blocks) {
    opt.max_score_bytes = std::uint64_t(pb.heads) * pb.kv_len * 4 * 5;  // 5 query rows per block
    opt.tuning.max_binding_bytes = opt.max_score_bytes + 1024;          // a few hundred keys per kscore pass
  }
  const auto sb = kernels::attention_kcode_scratch_bytes(d, pb.keys().codec, c.n, pb.heads, pb.kv_len, opt);
  if (c.small_blocks) {
    ASSERT_EQ(sb.scores, opt.max_score_bytes);
  }
  kernels::AttnKcodeScratch scratch = kernels::AttnKcodeScratch::create(d, sb);
  const std::size_t out_n = std::size_t(c.n) * pb.heads * c.hd;
  Buffer out = Buffer::create(d, out_n * 4);
  Stream s = Stream::create(d);
  if (c.mean_rope) kernels::attn_kcode_rope_table(s, pb.rope.freqs(), const_cast<Buffer&>(pb.table_b), 0, pb.kv_len);
  kernels::attention_kcode(s, pb.q_b, pb.keys(), pb.values(), out, c.n, c.pos0, pb.heads, scale, scratch, opt);
  s.submit_and_wait();
  const auto got = download<float>(out, out_n);

  // The device's rotated queries, and on the popcount path its quantization of them.
  const auto qrot = download<float>(scratch.q, out_n);
  EXPECT_TRUE(close(ref::attn_kcode_rotate_queries(pb.host_codec(), pb.q, c.n, pb.heads), qrot, 1e-5, 1e-5));
  std::optional<ref::KscoreQuantized> qq;
  if (c.path == KcodePath::popcount) {
    const ref::KscoreDims dims{c.hd, c.n * c.n_kv, c.group, 1};  // every (row, head) a query head
    qq.emplace();
    qq->bits = c.b;
    qq->planes = download<std::uint32_t>(scratch.planes, std::size_t(c.n) * pb.heads * c.b * (c.hd / 32));
    const auto raw = download<ref::KscoreQueryConst>(scratch.qconst, std::size_t(c.n) * pb.heads);
    qq->consts.assign(raw.begin(), raw.end());
    const ref::KscoreQuantized want = ref::kscore_quantize_query_with(qrot, dims, c.b, qq->consts);
    EXPECT_TRUE(exact<std::uint32_t>(want.planes, qq->planes)) << "planes of the device's q'";
  }
  std::vector<float> want(out_n);
  ref::attention_kcode(pb.inputs(qq ? &*qq : nullptr), want, c.n, c.pos0, pb.heads, scale);
  EXPECT_TRUE(close(want, got, 2e-5, 2e-4));
}

class AttnKcode : public VulkanTest, public ::testing::WithParamInterface<ACase> {};
TEST_P(AttnKcode, MatchesReference) { check_attention(dev(), GetParam()); }
// The one-head-per-invocation softmax·V layout (a GPU's) on this device.
class AttnKcodeOneHead : public VulkanTest, public ::testing::WithParamInterface<ACase> {};
TEST_P(AttnKcodeOneHead, MatchesReference) { check_attention(one_head_device(), GetParam()); }

constexpr KcodePath F = KcodePath::float_signs, P = KcodePath::popcount;
INSTANTIATE_TEST_SUITE_P(
    Shapes, AttnKcode,
    ::testing::Values(ACase{128, 2, 4, 1, 100, 8, 4, P, 8, false},  // decode, the usual popcount path
                      ACase{128, 2, 4, 1, 100, 8, 4, F, 8, false},  //
                      ACase{128, 2, 4, 1, 100, 0, 0, P, 1, true},   // sign-of-query, mean-RoPE
                      ACase{64, 1, 1, 1, 0, 0, 0, F, 8, false},     // one key
                      ACase{64, 1, 1, 37, 0, 8, 4, F, 8, true},     // prefill from 0
                      ACase{64, 1, 4, 37, 100, 0, 4, P, 8, true},   // prefill at 100
                      ACase{128, 2, 1, 37, 100, 8, 0, P, 4, false},  //
                      ACase{128, 2, 4, 37, 0, 0, 4, P, 1, false},    //
                      ACase{64, 2, 4, 37, 100, 8, 4, F, 8, true},    //
                      ACase{64, 2, 4, 37, 100, 8, 4, P, 8, true, true},   // query blocks, key chunks
                      ACase{128, 1, 4, 37, 0, 8, 0, F, 8, false, true},  //
                      ACase{128, 2, 4, 1, 100, 8, 4, P, 8, false, false, VType::q4},  // 1-bit K + q4 V
                      ACase{64, 2, 4, 37, 100, 0, 4, P, 8, true, false, VType::q8},   //
                      ACase{96, 1, 2, 5, 30, 0, 2, F, 8, false, true, VType::q4},     //
                      // GQA groups of 7 (Qwen2.5) and 12.
                      ACase{64, 2, 7, 1, 300, 0, 4, P, 8, false, false, VType::q4},   //
                      ACase{64, 2, 7, 1, 300, 8, 4, P, 8, false, false, VType::f16},  //
                      ACase{128, 1, 12, 37, 100, 0, 4, P, 8, false, true, VType::q8},  //
                      // Per-head residuals, stride 7: query blocks and key chunks whose
                      // windows start at odd record halves.
                      ACase{64, 3, 2, 37, 100, 8, 2, P, 8, false, true, VType::f16, {{8, 4}, {0, 16}, {6, 8}}},
                      ACase{64, 3, 2, 37, 100, 8, 0, F, 8, true, true, VType::q8, {{8, 4}, {0, 16}, {6, 8}}},
                      // Alpha-relative 4-bit heads: the key's alpha scales its codes.
                      ACase{64, 3, 2, 37, 100, 8, 2, P, 8, false, true, VType::f16, {{8, 4, true}, {0, 16}, {4, 4, true}}},
                      ACase{64, 3, 2, 37, 100, 16, 2, P, 8, true, true, VType::q4, {{16, 1, true}, {0, 16}, {8, 2, true}}},
                      // Groups of 7 at hd 128: 4 + 3 heads per softmax·V invocation.
                      ACase{128, 2, 7, 1, 300, 0, 4, P, 8, true, false, VType::q4},
                      ACase{128, 2, 7, 9, 40, 8, 4, F, 8, false, false, VType::f16},
                      // The transform code (kscore_tc): 4/3/2/1-bit segments (3-bit codes
                      // running into the next half), an empty head, odd strides, query
                      // blocks and key chunks, mean-RoPE, front keys.
                      ACase{64, 3, 2, 37, 100, 64, 2, F, 8, false, true, VType::f16,
                            {tc_residual(8, 16, 16, 16), tc_residual(0, 0, 0, 0), tc_residual(20, 16, 8, 0)}},
                      // ... with calibrated levels (kscore_tc_lv's select trees; decode's lookups).
                      ACase{64, 2, 4, 1, 100, 40, 4, F, 8, true, false, VType::q4, {tc_residual(4, 16, 0, 16), tc_residual(24, 0, 16, 0)},
                            true},
                      ACase{128, 2, 7, 9, 300, 96, 0, F, 8, true, true, VType::q8, {tc_residual(32, 16, 0, 32), tc_residual(0, 32, 24, 0)},
                            true}),
    [](const auto& p) { return case_name(p.param); });
INSTANTIATE_TEST_SUITE_P(
    Shapes, AttnKcodeOneHead,
    ::testing::Values(ACase{128, 2, 4, 1, 100, 8, 4, P, 8, false, false, VType::q4},
                      ACase{64, 2, 7, 1, 300, 8, 4, P, 8, false, false, VType::f16},
                      ACase{64, 2, 4, 37, 100, 8, 4, P, 8, true, true, VType::q8}),
    [](const auto& p) { return case_name(p.param); });

// The float path over codes the device encoded scores q·k̂ with k̂ the decoded
// key: it matches attention() over kcode_decode's fp16 keys up to the fp16
// rounding of those keys (plain and mean-RoPE codecs).
TEST_F(VulkanTest, AttnKcodeMatchesDecodedFp16Attention) {
  for (const bool mean_rope : {false, true}) {
    const ACase c{128, 2, 4, 5, 60, 8, 3, F, 8, mean_rope};
    const Problem pb(dev(), c, 7);
    const std::uint32_t kv_len = pb.kv_len, n_kv = c.n_kv, hd = c.hd;
    const float scale = float(1.0 / std::sqrt(double(hd)));
    kernels::KcodeKeys keys = pb.keys();
    Buffer kb = upload(dev(), pb.k);
    Buffer bits = Buffer::create(dev(), kernels::kcode_bits_bytes(kv_len, n_kv, hd));
    Buffer alpha = Buffer::create(dev(), kernels::kcode_alpha_bytes(kv_len, n_kv));
    Buffer coef = Buffer::create(dev(), kernels::kcode_coef_bytes(kv_len, keys.codec));
    Buffer kdec = Buffer::create(dev(), kernels::kv_cache_bytes(kv_len, n_kv, hd));
    keys.bits = &bits;
    keys.alpha = &alpha;
    keys.coef = &coef;
    kernels::AttnKcodeOptions opt;
    opt.path = F;
    kernels::AttnKcodeScratch scratch = kernels::AttnKcodeScratch::create(
        dev(), kernels::attention_kcode_scratch_bytes(dev(), keys.codec, c.n, pb.heads, kv_len, opt));
    const std::size_t out_n = std::size_t(c.n) * pb.heads * hd;
    Buffer out = Buffer::create(dev(), out_n * 4), out16 = Buffer::create(dev(), out_n * 4);
    Buffer a16s = Buffer::create(dev(), std::max<std::uint64_t>(
                                            kernels::attention_scratch_bytes(dev(), c.n, pb.heads, n_kv, kv_len, hd), 4));
    Stream s = Stream::create(dev());
    kernels::kcode_encode(s, keys.codec, kb, bits, alpha, &coef, kv_len, 0);
    if (mean_rope) kernels::attn_kcode_rope_table(s, pb.rope.freqs(), const_cast<Buffer&>(pb.table_b), 0, kv_len);
    kernels::attention_kcode(s, pb.q_b, keys, pb.v_b, out, c.n, c.pos0, pb.heads, scale, scratch, opt);
    kernels::kcode_decode(s, keys.codec, bits, alpha, &coef, kdec, 0, kv_len, nullptr);
    s.copy(pb.front_b, kdec, kernels::kv_cache_bytes(pb.front, n_kv, hd));
    kernels::attention(s, pb.q_b, kdec, pb.v_b, out16, c.n, c.pos0, pb.heads, n_kv, hd, scale, &a16s);
    s.submit_and_wait();
    const auto got = download<float>(out, out_n), want = download<float>(out16, out_n);
    EXPECT_TRUE(nmse(want, got, 1e-6)) << (mean_rope ? "mean-RoPE" : "plain mean");
  }
}

TEST_F(VulkanTest, AttnKcodeRopeTable) {
  const std::uint32_t hd = 128, first = 3, count = 5000;
  Buffer table = Buffer::create(dev(), kernels::attn_kcode_rope_table_bytes(first + count, hd));
  table.fill(0x7fc00badu);
  Stream s = Stream::create(dev());
  const TestRope rope = test_rope(dev(), hd, 500000.f);
  kernels::attn_kcode_rope_table(s, rope.freqs(), table, first, count);
  s.submit_and_wait();
  const auto got = download<float>(table, std::size_t(first + count) * hd);
  std::vector<float> g, w;
  for (std::uint32_t p = first; p < first + count; ++p)
    for (std::uint32_t i = 0; i < hd / 2; ++i) {
      const double ang = std::fmod(p * double(rope.host.inv_freq[i]), 2 * std::numbers::pi);
      w.push_back(float(std::cos(ang) * rope.host.scale));
      w.push_back(float(std::sin(ang) * rope.host.scale));
      g.push_back(got[(std::size_t(p) * hd / 2 + i) * 2]);
      g.push_back(got[(std::size_t(p) * hd / 2 + i) * 2 + 1]);
    }
  EXPECT_TRUE(close(w, g, 1e-6, 0));
  for (std::size_t i = 0; i < std::size_t(first) * hd; ++i) ASSERT_TRUE(std::isnan(got[i])) << "wrote row " << i / hd;
}

TEST_F(VulkanTest, AttnKcodeRejectsBadArguments) {
  const ACase c{64, 2, 2, 3, 4, 0, 0, P, 8, false};
  const Problem pb(dev(), c, 3);
  kernels::AttnKcodeOptions opt;
  const auto sb = kernels::attention_kcode_scratch_bytes(dev(), pb.keys().codec, c.n, pb.heads, pb.kv_len, opt);
  kernels::AttnKcodeScratch scratch = kernels::AttnKcodeScratch::create(dev(), sb);
  Buffer out = Buffer::create(dev(), std::size_t(c.n) * pb.heads * c.hd * 4);
  Stream s = Stream::create(dev());
  const auto run = [&](const kernels::KcodeKeys& k, std::uint32_t heads, const kernels::AttnKcodeOptions& o,
                       std::uint32_t pos0) {
    kernels::attention_kcode(s, pb.q_b, k, pb.v_b, out, c.n, pos0, heads, 0.125f, scratch, o);
  };
  EXPECT_NO_THROW(run(pb.keys(), pb.heads, opt, c.pos0));
  EXPECT_THROW(run(pb.keys(), 3, opt, c.pos0), Error);       // heads not a multiple of n_kv
  EXPECT_THROW(run(pb.keys(), pb.heads, opt, c.pos0 + 1), Error);  // past the cache
  kernels::AttnKcodeOptions b3 = opt;
  b3.query_bits = 3;
  EXPECT_THROW(run(pb.keys(), pb.heads, b3, c.pos0), Error);
  kernels::KcodeKeys k = pb.keys();
  k.front = 2;  // no front keys
  EXPECT_THROW(run(k, pb.heads, opt, c.pos0), Error);
  k = pb.keys();
  k.codec.mean_rope = pb.rope.freqs();  // no cos/sin table
  EXPECT_THROW(run(k, pb.heads, opt, c.pos0), Error);
  kernels::AttnKcodeScratch small = kernels::AttnKcodeScratch::create(dev(), {});
  EXPECT_THROW(kernels::attention_kcode(s, pb.q_b, pb.keys(), pb.v_b, out, c.n, c.pos0, pb.heads, 0.125f, small, opt),
               Error);
  EXPECT_THROW(kernels::attention_kcode(s, pb.q_b, pb.keys(), pb.v_b, const_cast<Buffer&>(pb.q_b), c.n, c.pos0,
                                        pb.heads, 0.125f, scratch, opt),
               Error);  // out aliases q
  s.submit_and_wait();
}

}  // namespace
}  // namespace vkq::test
