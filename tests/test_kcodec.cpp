// 1-bit K-cache codec vs the CPU reference: encode (bits exact on keys whose
// rotated coordinates stay away from 0; elsewhere mismatches only where the
// reference |v| is rounding noise; alpha within one fp16 ulp; coef to fp16
// rounding given the device's alpha) writing only its positions' halves, and
// decode of the reference's codes (vs the fp64 reference: one fp16 ulp per
// value plus 1e-6 of the key scale, few values off, NMSE <= 1e-9; other cache
// positions untouched), over identity and
// random orthogonal rotations, rank 0 / 8 / hd, RoPE on and off at positions
// up to ~5000, hd 32..256, odd n_kv (halves shared across positions), n 1, 13,
// 300, and a decode of > 65535 workgroups; the mean-RoPE variant (keys
// centered by RoPE_pos(mu_pre)) through the same encode / decode checks.
// Round trip: with rank = hd and U = I the decoded key is k up to fp16
// rounding, with and without mean-RoPE. Per-head residuals (vkquant/kresidual.hpp):
// pack / unpack and the exact record bytes at 16 / 8 / 4 bits, encode and
// decode with mixed layouts (odd strides, records starting at odd halves),
// layout refusals by name. The transform code (tc heads): encode writes no
// bits and no alpha and codes within one step of the reference's, decode
// matches the reference.
#include <cmath>
#include <random>

#include "tc_levels.hpp"
#include "vk_test.hpp"
#include "vkquant/error.hpp"
#include "vkquant/half.hpp"
#include "vkquant/kernels/kcodec.hpp"
#include "vkquant/kresidual.hpp"
#include "vkquant/reference/kcodec.hpp"

namespace vkq::test {
namespace {

constexpr std::uint32_t kPoison = 0xa5a5a5a5u;
constexpr half_bits kPoisonHalf = 0xa5a5u;

// A random orthogonal matrix per head (Gram-Schmidt of a Gaussian matrix, fp64).
std::vector<float> random_rotations(std::uint32_t n_kv, std::uint32_t hd, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> g;
  std::vector<float> out(std::size_t(n_kv) * hd * hd);
  std::vector<double> m(std::size_t(hd) * hd);
  for (std::uint32_t h = 0; h < n_kv; ++h) {
    for (auto& x : m) x = g(rng);
    for (std::uint32_t i = 0; i < hd; ++i) {
      double* ri = m.data() + std::size_t(i) * hd;  // row i
      for (int pass = 0; pass < 2; ++pass)        // twice is enough for fp64 orthogonality
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

// Host codec parameters and their device copies. rank: the basis' columns;
// the residual layout is `mixed`, or every head at (rank, 16) when it is empty.
struct Codec {
  std::uint32_t n_kv, hd, rank;
  bool rotate;
  bool mean_rope;
  TestRope rope;  // the mean-RoPE table (unused otherwise)
  KResidualLayout layout;
  std::vector<float> mu, rot, basis, enc_basis;  // enc_basis: empty, or the encoder's own
  std::vector<float> levels;                      // the transform code's levels; empty: uniform
  Buffer mu_b, rot_b, basis_b, enc_b, lv_b;
  kernels::KResidualTable table;

  Codec(Device& d, std::uint32_t n_kv_, std::uint32_t hd_, std::uint32_t rank_, bool rotate_, bool identity_basis,
        std::uint32_t seed, bool mean_rope_ = false, const std::vector<KResidual>& mixed = {}, bool with_levels = false)
      : n_kv(n_kv_),
        hd(hd_),
        rank(rank_),
        rotate(rotate_),
        mean_rope(mean_rope_),
        rope(test_rope(d, hd_)),
        layout(mixed.empty() ? (rank_ ? KResidualLayout::uniform(n_kv_, rank_) : KResidualLayout{})
                             : KResidualLayout::make(mixed)) {
    mu = random_floats(std::size_t(n_kv) * hd, seed, -2.f, 2.f);
    if (rotate) rot = random_rotations(n_kv, hd, seed + 1);
    basis.assign(std::size_t(n_kv) * hd * rank, 0.f);
    if (identity_basis) {
      for (std::uint32_t h = 0; h < n_kv; ++h)
        for (std::uint32_t j = 0; j < rank; ++j) basis[(std::size_t(h) * hd + j) * rank + j] = 1.f;
    } else if (rank > 0) {
      basis = random_floats(basis.size(), seed + 2, -0.3f, 0.3f);
      // The encoder's own basis (an oblique pair, as calibrate's query-weighted
      // bases); alpha-relative heads carry their steps in it: scaled up so the
      // codes spread over several levels.
      enc_basis = random_floats(basis.size(), seed + 3, -0.3f, 0.3f);
      if (layout.stride)
        for (std::uint32_t h = 0; h < n_kv; ++h)
          if (layout.heads[h].arel || layout.heads[h].tc)  // transform codes: absolute steps, so a smaller spread
            for (std::size_t i = 0; i < std::size_t(hd) * rank; ++i)
              enc_basis[std::size_t(h) * hd * rank + i] *= layout.heads[h].tc ? 2.0f : 5.0f;
    }
    mu_b = upload(d, mu);
    if (rotate) rot_b = upload(d, rot);
    if (rank) basis_b = upload(d, basis);
    if (!enc_basis.empty()) enc_b = upload(d, enc_basis);
    if (layout.stride) table = kernels::KResidualTable::create(d, layout);
    if (with_levels && transform() && rank) {
      levels = test_tc_levels(layout, rank, seed + 4);
      lv_b = upload(d, levels);
    }
  }
  bool transform() const { return layout.transform(); }
  kernels::KCodec dev() const {
    return {&mu_b,  rotate ? &rot_b : nullptr, rank ? &basis_b : nullptr, n_kv, hd, layout.stride ? &table : nullptr,
            rank,   mean_rope ? rope.freqs() : kernels::RopeFreqs{}, enc_basis.empty() ? nullptr : &enc_b, transform(),
            levels.empty() ? nullptr : &lv_b};
  }
  ref::KCodec host() const {
    return {mu, rot, basis, n_kv, hd, layout, rank, mean_rope ? &rope.host : nullptr, enc_basis, transform(), levels};
  }
  std::uint64_t coef_bytes(std::uint32_t ctx) const { return layout.bytes(ctx); }
};

// Keys whose rotated centered coordinates v have |v_j| in [0.05, 1] · scale
// (no coordinate near 0, so sign bits are exact): k = m + R_hᵀ v in fp64,
// m = mu or RoPE_pos(mu) (row t at position pos0 + t).
std::vector<float> keys_away_from_zero(const Codec& c, std::uint32_t n, std::uint32_t seed, std::uint32_t pos0 = 0) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> mag(0.05, 1.0), scale(0.2, 3.0);
  const std::uint32_t hd = c.hd;
  std::vector<float> k(std::size_t(n) * c.n_kv * hd);
  std::vector<double> v(hd);
  for (std::size_t e = 0; e < std::size_t(n) * c.n_kv; ++e) {
    const std::uint32_t h = std::uint32_t(e % c.n_kv);
    const double sc = scale(rng);
    for (auto& x : v) x = sc * mag(rng) * (rng() & 1 ? 1.0 : -1.0);
    const std::vector<double> m = ref::kcode_mean_at(c.host(), h, pos0 + e / c.n_kv);
    for (std::uint32_t i = 0; i < hd; ++i) {
      double s = m[i];
      if (!c.rotate) s += v[i];
      else
        for (std::uint32_t j = 0; j < hd; ++j) s += double(c.rot[(std::size_t(h) * hd + j) * hd + i]) * v[j];
      k[e * hd + i] = float(s);
    }
  }
  return k;
}

// fp16 halves (one per element) placed at element `at` of a packed word array.
void put_halves(std::vector<std::uint32_t>& words, std::span<const half_bits> h, std::size_t at) {
  for (std::size_t i = 0; i < h.size(); ++i) {
    const std::size_t g = at + i;
    const std::uint32_t shift = 16 * std::uint32_t(g % 2);
    words[g / 2] = (words[g / 2] & ~(0xffffu << shift)) | (std::uint32_t(h[i]) << shift);
  }
}
half_bits get_half(const std::vector<std::uint32_t>& words, std::size_t g) {
  return half_bits(words[g / 2] >> (16 * (g % 2)));
}

// The message of the vkq::Error f throws ("" if none).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

struct KCase {
  std::uint32_t hd, n_kv, rank, n, pos0;  // rank: the basis' columns
  bool rotate, rope;
  bool mean_rope = false;         // codec centered by RoPE_pos(mu_pre) (test_rope's table)
  std::vector<KResidual> mixed{};  // per-head (rank, bits); empty: every head at (rank, 16)
  bool levels = false;             // transform codes: calibrated (random, ascending) levels
};

std::string case_name(const KCase& c) {
  std::string mix;
  for (const KResidual& r : c.mixed)
    mix += r.tc ? "_tc" + std::to_string(r.n4) + "x" + std::to_string(r.n3) + "x" + std::to_string(r.n2) + "x" +
                      std::to_string(r.n1())
                : "_" + std::to_string(r.rank) + (r.arel ? "a" : "b") + std::to_string(r.bits);
  return "d" + std::to_string(c.hd) + "_kv" + std::to_string(c.n_kv) + "_r" + std::to_string(c.rank) + "_n" +
         std::to_string(c.n) + "_p" + std::to_string(c.pos0) + (c.rotate ? "_rot" : "_id") +
         (c.rope ? "_rope" : "") + (c.mean_rope ? "_meanrope" : "") + (mix.empty() ? "" : "_mix" + mix) +
         (c.levels ? "_levels" : "");
}

class KCodec : public VulkanTest, public ::testing::WithParamInterface<KCase> {};

TEST_P(KCodec, EncodeMatchesReference) {
  const KCase kc = GetParam();
  const Codec c(dev(), kc.n_kv, kc.hd, kc.rank, kc.rotate, false, 11 + kc.hd + kc.n_kv, kc.mean_rope, kc.mixed, kc.levels);
  const std::vector<float> k = keys_away_from_zero(c, kc.n, 5 + kc.n, kc.pos0);
  const ref::KCodes want = ref::kcode_encode(c.host(), k, kc.n, kc.pos0);

  const std::uint32_t ctx = kc.pos0 + kc.n + 3, words = kc.hd / 32, n_kv = kc.n_kv;
  const KResidualLayout& lay = c.layout;
  const bool resid = lay.stride != 0;
  Buffer kb = upload(dev(), k);
  Buffer bits = Buffer::create(dev(), kernels::kcode_bits_bytes(ctx, n_kv, kc.hd));
  Buffer alpha = Buffer::create(dev(), kernels::kcode_alpha_bytes(ctx, n_kv));
  Buffer coef = Buffer::create(dev(), std::max<std::uint64_t>(c.coef_bytes(ctx), 4));
  bits.fill(kPoison);
  alpha.fill(kPoison);
  coef.fill(kPoison);
  Stream s = Stream::create(dev());
  kernels::kcode_encode(s, c.dev(), kb, bits, alpha, resid ? &coef : nullptr, kc.n, kc.pos0);
  s.submit_and_wait();

  // The transform code writes no bits and no alpha: both stay poison.
  const auto got_bits = download<std::uint32_t>(bits, std::size_t(ctx) * n_kv * words);
  std::vector<std::uint32_t> ref_bits(got_bits.size(), kPoison);
  std::copy(want.bits.begin(), want.bits.end(), ref_bits.begin() + std::size_t(kc.pos0) * n_kv * words);
  EXPECT_TRUE(exact<std::uint32_t>(ref_bits, got_bits));
  EXPECT_EQ(want.bits.empty(), c.transform());

  const std::size_t e0 = std::size_t(kc.pos0) * n_kv, e1 = e0 + std::size_t(kc.n) * n_kv;
  const auto got_alpha = download<std::uint32_t>(alpha, kernels::kcode_alpha_bytes(ctx, n_kv) / 4);
  const auto got_coef = download<std::uint32_t>(coef, c.coef_bytes(ctx) / 4);
  std::size_t alpha_off = 0, coef_bad = 0, untouched_bad = 0, codes_off = 0, codes = 0;
  double max_coef_err = 0;
  for (std::size_t e = 0; e < std::size_t(ctx) * n_kv; ++e) {
    const half_bits a = get_half(got_alpha, e);
    const std::uint32_t h = std::uint32_t(e % n_kv);
    const KResidual res = resid ? lay.heads[h] : KResidual{};
    const std::size_t g0 = resid ? e / n_kv * lay.stride + lay.offset[h] : 0;  // the record's first half
    const std::uint32_t rh = KResidualLayout::record_halves(res);
    if (e < e0 || e >= e1) {  // outside the window: every half keeps its old contents
      untouched_bad += a != kPoisonHalf;
      for (std::uint32_t j = 0; j < rh; ++j) untouched_bad += get_half(got_coef, g0 + j) != kPoisonHalf;
      continue;
    }
    const std::size_t t = e - e0;
    if (c.transform()) {
      untouched_bad += a != kPoisonHalf;
    } else {
      const half_bits ra = want.alpha[t];
      ASSERT_LE(std::abs(int(a) - int(ra)), 1) << "alpha of element " << e << ": " << from_half(a) << " vs "
                                                << from_half(ra);
      alpha_off += a != ra;
    }
    if (!res.rank) continue;
    // The coefs are measured against the device's fp16 alpha.
    const std::span<const double> v(want.v.data() + t * kc.hd, kc.hd);
    const auto cf = ref::kcode_coefs(c.host(), h, v, c.transform() ? 0.0 : from_half(a));
    std::vector<half_bits> got_rec(rh);
    for (std::uint32_t j = 0; j < rh; ++j) got_rec[j] = get_half(got_coef, g0 + j);
    if (res.bits == 16) {
      double vn = 0;
      for (double x : v) vn += x * x;
      for (std::uint32_t r = 0; r < res.rank; ++r) {
        const double g = from_half(got_rec[r]);
        const double err = std::fabs(g - cf[r]);
        max_coef_err = std::max(max_coef_err, err);
        coef_bad += err > std::ldexp(std::fabs(cf[r]), -11) * 1.01 + 1e-6 * std::sqrt(vn);
      }
      continue;
    }
    // 8 / 4 bits: the scale within one fp16 ulp, each code within one step of
    // pack_residual's (alpha-relative: no scale, the device's alpha and the
    // basis columns' norms).
    std::vector<half_bits> want_rec(rh);
    pack_residual(res, cf, want_rec, c.transform() ? 0.0 : from_half(a), c.host().head_levels(h));
    const std::uint32_t lead = res.arel || res.tc ? 0 : 1;
    if (!res.arel && !res.tc) {
      ASSERT_LE(std::abs(int(got_rec[0]) - int(want_rec[0])), 1) << "scale of element " << e;
    }
    for (std::uint32_t r = 0; r < res.rank; ++r) {
      // Code r's width, half and shift (kresidual.hpp).
      const TcSlot slot = res.tc ? tc_slot(res, r) : TcSlot{res.bits, lead + r / (16 / res.bits), res.bits * (r % (16 / res.bits))};
      const std::uint32_t mask = (1u << slot.width) - 1, sign = 1u << (slot.width - 1);
      const auto code = [&](const std::vector<half_bits>& rec) {
        const std::uint32_t u = (std::uint32_t(rec[slot.half]) >> slot.shift) & mask;
        return int(u ^ sign) - int(sign);
      };
      ASSERT_LE(std::abs(code(got_rec) - code(want_rec)), 1) << "code " << r << " of element " << e;
      codes_off += code(got_rec) != code(want_rec);
      ++codes;
    }
  }
  EXPECT_EQ(untouched_bad, 0u) << "encode changed halves of positions outside its window";
  EXPECT_EQ(coef_bad, 0u) << "coefs off by more than fp16 rounding; max error " << max_coef_err;
  EXPECT_LE(alpha_off, (e1 - e0) / 50 + 1) << "too many alpha values one ulp off";
  EXPECT_LE(codes_off, codes / 50 + 1) << "too many codes one step off";
}

TEST_P(KCodec, DecodeMatchesReference) {
  const KCase kc = GetParam();
  const Codec c(dev(), kc.n_kv, kc.hd, kc.rank, kc.rotate, false, 21 + kc.hd + kc.n_kv, kc.mean_rope, kc.mixed, kc.levels);
  const std::vector<float> k = keys_away_from_zero(c, kc.n, 7 + kc.n, kc.pos0);
  const ref::KCodes codes = ref::kcode_encode(c.host(), k, kc.n, kc.pos0);
  const std::vector<half_bits> want = ref::kcode_decode(c.host(), codes.bits, codes.alpha, codes.coef, kc.pos0,
                                                        kc.n, kc.rope ? &c.rope.host : nullptr);

  // The reference's codes at positions pos0.., poison elsewhere.
  const std::uint32_t ctx = kc.pos0 + kc.n + 2, words = kc.hd / 32, n_kv = kc.n_kv, stride = c.layout.stride;
  const std::size_t e0 = std::size_t(kc.pos0) * n_kv;
  std::vector<std::uint32_t> bits(std::size_t(ctx) * n_kv * words, kPoison);
  std::copy(codes.bits.begin(), codes.bits.end(), bits.begin() + e0 * words);
  std::vector<std::uint32_t> alpha(kernels::kcode_alpha_bytes(ctx, n_kv) / 4, kPoison);
  put_halves(alpha, codes.alpha, e0);
  std::vector<std::uint32_t> coef(std::max<std::uint64_t>(c.coef_bytes(ctx) / 4, 1), kPoison);
  put_halves(coef, codes.coef, std::size_t(kc.pos0) * stride);
  Buffer bb = upload(dev(), bits), ab = upload(dev(), alpha), cb = upload(dev(), coef);
  const std::size_t row = std::size_t(n_kv) * kc.hd / 2;  // cache words per position
  Buffer kcache = Buffer::create(dev(), std::size_t(ctx) * row * 4);
  kcache.fill(kPoison);
  Stream s = Stream::create(dev());
  const kernels::RopeFreqs freqs = c.rope.freqs();
  kernels::kcode_decode(s, c.dev(), bb, ab, stride ? &cb : nullptr, kcache, kc.pos0, kc.n, kc.rope ? &freqs : nullptr);
  s.submit_and_wait();

  const auto got = download<std::uint32_t>(kcache, std::size_t(ctx) * row);
  std::size_t untouched_bad = 0, ulp_off = 0;
  std::vector<float> g, r;
  for (std::size_t w = 0; w < got.size(); ++w) {
    const std::size_t pos = w / row;
    if (pos < kc.pos0 || pos >= kc.pos0 + kc.n) {
      untouched_bad += got[w] != kPoison;
      continue;
    }
    for (std::size_t q = 0; q < 2; ++q) {
      const half_bits gh = half_bits(got[w] >> (16 * q)), rh = want[(w - kc.pos0 * row) * 2 + q];
      ulp_off += gh != rh;
      g.push_back(from_half(gh));
      r.push_back(from_half(rh));
    }
  }
  EXPECT_EQ(untouched_bad, 0u) << "decode wrote outside positions " << kc.pos0 << ".." << kc.pos0 + kc.n - 1;
  // fp32 sums differ from fp64 by ~1e-7 of the key's scale: a value may land
  // one fp16 ulp away, and values near 0 (cancellation) a little more.
  double ss = 0;
  for (float x : r) ss += double(x) * x;
  EXPECT_TRUE(close(r, g, 1e-6 * std::sqrt(ss / double(r.size())), std::ldexp(1.0, -10)));
  EXPECT_LE(ulp_off, r.size() / 50 + 1) << "too many values off by fp16 rounding";
  // One fp16 ulp on one value in ~2500 already costs ~1e-10 of NMSE.
  EXPECT_TRUE(nmse(r, g, 1e-9));
}

INSTANTIATE_TEST_SUITE_P(Shapes, KCodec,
                         ::testing::Values(KCase{32, 1, 0, 1, 0, false, false},   //
                                           KCase{64, 3, 8, 13, 0, true, false},   // odd n_kv: shared halves
                                           KCase{64, 3, 8, 13, 5, true, true},    // odd pos0 * n_kv
                                           KCase{96, 5, 7, 13, 4999, true, true},  // odd rank, far position
                                           KCase{128, 4, 0, 300, 17, true, true},  //
                                           KCase{128, 2, 8, 300, 0, false, false},  //
                                           KCase{256, 8, 8, 13, 3, true, true},     // long loops per invocation
                                           KCase{256, 1, 256, 1, 2, true, false},   // rank = hd
                                           KCase{64, 3, 8, 13, 5, true, false, true},        // mean-RoPE
                                           KCase{96, 5, 7, 13, 4999, true, false, true},     //
                                           KCase{128, 2, 0, 300, 17, false, false, true},    //
                                           // Mixed per-head residuals: stride 7 (odd) at an odd pos0,
                                           // stride 19 with a far position, and 4-bit heads only.
                                           KCase{64, 3, 8, 13, 5, true, true, false, {{8, 4}, {0, 16}, {6, 8}}},
                                           KCase{96, 5, 12, 13, 4999, true, false, true,
                                                 {{12, 8}, {4, 4}, {0, 16}, {7, 16}, {8, 4}}},
                                           KCase{128, 2, 16, 300, 1, false, false, false, {{16, 4}, {4, 4}}},
                                           // Alpha-relative 4-bit heads beside the others (odd stride,
                                           // odd pos0; mean-RoPE at a far position).
                                           KCase{64, 3, 8, 13, 5, true, true, false, {{8, 4, true}, {0, 16}, {6, 8}}},
                                           KCase{96, 5, 12, 13, 4999, true, false, true,
                                                 {{12, 4, true}, {4, 4}, {0, 16}, {7, 16}, {4, 4, true}}},
                                           // Alpha-relative 2- and 1-bit heads: a record of one or
                                           // two halves at odd offsets (stride 9).
                                           KCase{64, 4, 16, 13, 5, true, true, false,
                                                 {{16, 1, true}, {8, 2, true}, {6, 8}, {16, 2, true}}},
                                           KCase{128, 3, 32, 7, 4999, true, false, true,
                                                 {{32, 1, true}, {3, 16}, {16, 2, true}}},
                                           // The transform code (no sign bits, no alpha, no rotation):
                                           // 4/3/2/1-bit segments per head (3-bit codes running
                                           // into the next half and word), an empty head, records
                                           // at odd offsets (stride 13 and 31),
                                           // RoPE after decode, and mean-RoPE at a far position.
                                           KCase{64, 3, 64, 13, 5, false, true, false,
                                                 {tc_residual(8, 16, 16, 16), tc_residual(0, 0, 0, 0), tc_residual(4, 16, 8, 0)}},
                                           KCase{128, 4, 96, 300, 4999, false, false, true,
                                                 {tc_residual(4, 16, 8, 16), tc_residual(32, 0, 0, 64), tc_residual(0, 48, 24, 0),
                                                  tc_residual(0, 0, 0, 16)}},
                                           // ... with calibrated levels (nearest-level codes, ĉ read from them).
                                           KCase{64, 3, 64, 13, 5, false, true, false,
                                                 {tc_residual(8, 16, 16, 16), tc_residual(0, 0, 0, 0), tc_residual(4, 16, 8, 0)}, true},
                                           KCase{128, 4, 96, 300, 4999, false, false, true,
                                                 {tc_residual(4, 16, 8, 16), tc_residual(32, 0, 0, 64), tc_residual(0, 48, 24, 0),
                                                  tc_residual(0, 0, 0, 16)}, true}),
                         [](const auto& p) { return case_name(p.param); });

// Plain random keys: coordinates near 0 are allowed; a sign bit may differ
// only where the reference |v| is within rounding noise of 0.
TEST_F(VulkanTest, KCodecRandomKeysBitsAgreeAwayFromZero) {
  const std::uint32_t n_kv = 4, hd = 128, n = 64;
  const Codec c(dev(), n_kv, hd, 0, true, false, 3);
  const std::vector<float> k = random_floats(std::size_t(n) * n_kv * hd, 4, -3.f, 3.f);
  const ref::KCodes want = ref::kcode_encode(c.host(), k, n);
  Buffer kb = upload(dev(), k);
  Buffer bits = Buffer::create(dev(), kernels::kcode_bits_bytes(n, n_kv, hd));
  Buffer alpha = Buffer::create(dev(), kernels::kcode_alpha_bytes(n, n_kv));
  Stream s = Stream::create(dev());
  kernels::kcode_encode(s, c.dev(), kb, bits, alpha, nullptr, n, 0);
  s.submit_and_wait();
  const auto got = download<std::uint32_t>(bits, want.bits.size());
  std::size_t bad = 0;
  for (std::size_t e = 0; e < std::size_t(n) * n_kv; ++e) {
    double vn = 0;
    for (std::uint32_t i = 0; i < hd; ++i) vn += want.v[e * hd + i] * want.v[e * hd + i];
    for (std::uint32_t i = 0; i < hd; ++i) {
      const std::size_t w = e * hd / 32 + i / 32;
      const bool differs = ((got[w] ^ want.bits[w]) >> (i % 32)) & 1u;
      bad += differs && std::fabs(want.v[e * hd + i]) >= 1e-5 * std::sqrt(vn);
    }
  }
  EXPECT_EQ(bad, 0u) << "sign bits differ away from 0";
  const auto ga = download<std::uint32_t>(alpha, want.alpha.size() / 2);
  for (std::size_t e = 0; e < want.alpha.size(); ++e)
    ASSERT_LE(std::abs(int(get_half(ga, e)) - int(want.alpha[e])), 1) << "alpha " << e;
}

// rank = hd with U = I stores the whole residual: decode(encode(k)) = k up to
// fp16 rounding (of the coefs and of the stored key).
TEST_F(VulkanTest, KCodecFullRankRoundTrip) {
  for (const std::uint32_t hd : {64u, 256u, 128u}) {
    const std::uint32_t n_kv = 3, n = 13, pos0 = hd == 128 ? 700 : 2, ctx = pos0 + n;
    const Codec c(dev(), n_kv, hd, hd, true, true, 9, hd == 128);  // hd 128: mean-RoPE
    const std::vector<float> k = random_floats(std::size_t(n) * n_kv * hd, 10, -2.f, 2.f);
    Buffer kb = upload(dev(), k);
    Buffer bits = Buffer::create(dev(), kernels::kcode_bits_bytes(ctx, n_kv, hd));
    Buffer alpha = Buffer::create(dev(), kernels::kcode_alpha_bytes(ctx, n_kv));
    Buffer coef = Buffer::create(dev(), c.coef_bytes(ctx));
    Buffer kcache = Buffer::create(dev(), std::size_t(ctx) * n_kv * hd * 2);
    Stream s = Stream::create(dev());
    kernels::kcode_encode(s, c.dev(), kb, bits, alpha, &coef, n, pos0);
    kernels::kcode_decode(s, c.dev(), bits, alpha, &coef, kcache, pos0, n, nullptr);
    s.submit_and_wait();
    const auto words = download<std::uint32_t>(kcache, std::size_t(ctx) * n_kv * hd / 2);
    std::vector<float> got;
    for (std::size_t w = std::size_t(pos0) * n_kv * hd / 2; w < words.size(); ++w) {
      got.push_back(from_half(half_bits(words[w])));
      got.push_back(from_half(half_bits(words[w] >> 16)));
    }
    // |c_j| <= |v_j| + alpha <= ~6: fp16 rounding of c adds <= 2^-11 · 6 per
    // coordinate before R_hᵀ, the stored key another half ulp.
    EXPECT_TRUE(close(k, got, 0.02, std::ldexp(1.0, -10))) << "hd " << hd;
    EXPECT_TRUE(nmse(k, got, 1e-6)) << "hd " << hd;
  }
}

// Decoding into a cache of 128 MiB dispatches 65536 workgroups of 64: the
// dispatch verb splits them where maxComputeWorkGroupCount is 65535.
TEST_F(VulkanTest, KCodecDecodePastMaxWorkgroupCount) {
  const std::uint32_t n_kv = 64, hd = 32, ctx = 32768;
  const std::uint64_t cache_bytes = std::uint64_t(ctx) * n_kv * hd * 2;
  if (cache_bytes > dev().info().max_storage_buffer_range) GTEST_SKIP() << "cache exceeds maxStorageBufferRange";
  const Codec c(dev(), n_kv, hd, 0, false, false, 13);
  std::mt19937 rng(14);
  std::vector<std::uint32_t> bits(std::size_t(ctx) * n_kv);
  for (auto& b : bits) b = rng();
  std::vector<half_bits> alpha(std::size_t(ctx) * n_kv);
  for (auto& a : alpha) a = to_half(0.1f + float(rng() % 1000) * 1e-3f);
  std::vector<std::uint32_t> alpha_words(alpha.size() / 2);
  put_halves(alpha_words, alpha, 0);
  Buffer bb = upload(dev(), bits), ab = upload(dev(), alpha_words);
  Buffer kcache = Buffer::create(dev(), cache_bytes);
  Stream s = Stream::create(dev());
  const TestRope rope = test_rope(dev(), hd, 500000.f);
  const kernels::RopeFreqs freqs = rope.freqs();
  kernels::kcode_decode(s, c.dev(), bb, ab, nullptr, kcache, 0, ctx, &freqs);
  if (dev().info().max_workgroup_count[0] < 65536) {
    EXPECT_GE(s.recorded_dispatches(), 2u);
  }
  s.submit_and_wait();
  const std::size_t row = std::size_t(n_kv) * hd / 2;
  for (const std::uint32_t pos : {0u, 1u, 12345u, ctx - 2, ctx - 1}) {
    const std::size_t e = std::size_t(pos) * n_kv;
    const auto want = ref::kcode_decode(c.host(), std::span(bits).subspan(e, n_kv), std::span(alpha).subspan(e, n_kv),
                                        {}, pos, 1, &rope.host);
    std::vector<std::uint32_t> got(row);
    kcache.download(got.data(), row * 4, pos * row * 4);
    std::vector<float> g(want.size()), r = from_half(want);
    for (std::size_t i = 0; i < want.size(); ++i) g[i] = from_half(half_bits(got[i / 2] >> (16 * (i % 2))));
    EXPECT_TRUE(close(r, g, 1e-5, std::ldexp(1.0, -10))) << "position " << pos;
  }
}

TEST_F(VulkanTest, KCodecRejectsBadShapes) {
  Buffer a = Buffer::create(dev(), 1 << 16), b = Buffer::create(dev(), 1 << 16), cb = Buffer::create(dev(), 1 << 16),
         o = Buffer::create(dev(), 1 << 16);
  Stream s = Stream::create(dev());
  std::vector<kernels::KResidualTable> tables;
  tables.reserve(8);
  const auto codec = [&](std::uint32_t n_kv, std::uint32_t hd, std::uint32_t rank) {
    if (!rank) return kernels::KCodec{&a, nullptr, nullptr, n_kv, hd};
    tables.push_back(kernels::KResidualTable::create(dev(), KResidualLayout::uniform(n_kv, rank)));
    return kernels::KCodec{&a, nullptr, &a, n_kv, hd, &tables.back(), rank};
  };
  EXPECT_THROW(kernels::kcode_encode(s, codec(1, 48, 0), a, b, cb, nullptr, 1, 0), Error);   // hd not supported
  EXPECT_THROW(kernels::kcode_encode(s, codec(65, 32, 0), a, b, cb, nullptr, 1, 0), Error);  // n_kv > 64
  EXPECT_THROW(kernels::kcode_encode(s, codec(1, 32, 33), a, b, cb, nullptr, 1, 0), Error);  // rank > hd
  kernels::KCodec narrow = codec(2, 32, 8);
  narrow.basis_cols = 6;  // head 0's rank 8 exceeds the basis
  EXPECT_NE(error_of([&] { kernels::kcode_encode(s, narrow, a, b, cb, &o, 1, 0); }).find("residual head 0 has rank 8"),
            std::string::npos);
  kernels::KCodec wrong_heads = codec(2, 32, 8);
  wrong_heads.n_kv = 1;  // a layout for two heads
  EXPECT_THROW(kernels::kcode_encode(s, wrong_heads, a, b, cb, &o, 1, 0), Error);
  EXPECT_THROW(kernels::kcode_encode(s, codec(1, 32, 4), a, b, cb, nullptr, 1, 0), Error);   // coef missing
  EXPECT_THROW(kernels::kcode_encode(s, codec(1, 32, 0), a, b, cb, nullptr, 1, 1 << 20), Error);  // past the cache
  EXPECT_THROW(kernels::kcode_decode(s, codec(1, 32, 0), b, cb, nullptr, o, 1 << 20, 1, nullptr), Error);
  const TestRope r32 = test_rope(dev(), 32), r64 = test_rope(dev(), 64);
  const kernels::RopeFreqs f32 = r32.freqs(), f64 = r64.freqs();
  EXPECT_NO_THROW(kernels::kcode_decode(s, codec(1, 32, 0), b, cb, nullptr, o, 0, 1, &f32));
  EXPECT_THROW(kernels::kcode_decode(s, codec(1, 32, 0), b, cb, nullptr, o, 0, 1, &f64), Error);  // table for hd 64
  kernels::RopeFreqs bad_scale = f32;
  bad_scale.scale = std::nanf("");
  EXPECT_THROW(kernels::kcode_decode(s, codec(1, 32, 0), b, cb, nullptr, o, 0, 1, &bad_scale), Error);
  kernels::KCodec no_mu = codec(1, 32, 0);
  no_mu.mu = nullptr;
  EXPECT_THROW(kernels::kcode_decode(s, no_mu, b, cb, nullptr, o, 0, 1, nullptr), Error);
  kernels::KCodec mean_rope = codec(1, 32, 0);
  mean_rope.mean_rope = f32;
  EXPECT_THROW(kernels::kcode_decode(s, mean_rope, b, cb, nullptr, o, 0, 1, &f32), Error);  // RoPE twice
  mean_rope.mean_rope = f64;
  EXPECT_THROW(kernels::kcode_encode(s, mean_rope, a, b, cb, nullptr, 1, 0), Error);  // table for another hd
  // Levels: only with the transform code, and (n_kv, basis_cols, 16) floats of them.
  const std::uint32_t before = s.recorded_dispatches();
  kernels::KCodec signed_levels = codec(1, 32, 8);
  signed_levels.levels = &a;
  EXPECT_NE(error_of([&] { kernels::kcode_encode(s, signed_levels, a, b, cb, &o, 1, 0); })
                .find("levels belong to the transform code"),
            std::string::npos);
  tables.push_back(kernels::KResidualTable::create(dev(), KResidualLayout::make({tc_residual(4, 0, 8, 16)})));
  kernels::KCodec tc{&a, nullptr, &a, 1, 32, &tables.back(), 28};
  tc.transform = true;
  Buffer small = Buffer::create(dev(), 28 * 16 * 4 - 4);
  tc.levels = &small;
  EXPECT_NE(error_of([&] { kernels::kcode_decode(s, tc, b, cb, &o, a, 0, 1, nullptr); }).find("levels"), std::string::npos);
  EXPECT_EQ(s.recorded_dispatches(), before) << "a rejected call recorded work";
  // The reference refuses the same.
  const std::vector<float> mu(32), basis(32 * 28), lv(28 * 16 - 1);
  const ref::KCodec rc{mu, {}, basis, 1, 32, KResidualLayout::make({tc_residual(4, 0, 8, 16)}), 28, nullptr, {}, true, lv};
  EXPECT_NE(error_of([&] { (void)ref::kcode_encode(rc, std::vector<float>(32), 1, 0); }).find("levels belong to a transform code"),
            std::string::npos);
}

// ---- per-head residual records (host) ------------------------------------------

TEST(KResidual, LayoutOffsetsStrideBytes) {
  const KResidualLayout l = KResidualLayout::make({{8, 4}, {0, 16}, {6, 8}});
  EXPECT_EQ(l.offset, (std::vector<std::uint32_t>{0, 3, 3}));
  EXPECT_EQ(l.stride, 7u);  // 1 + 8/4, 0, 1 + 6/2
  EXPECT_EQ(l.max_rank(), 8u);
  EXPECT_EQ(l.bytes(3), 44u);  // 21 halves -> 11 words
  EXPECT_EQ(l.bytes(0), 0u);
  // All heads at (r, 16): today's (ctx, n_kv, r) fp16 layout.
  const KResidualLayout u = KResidualLayout::uniform(3, 8);
  EXPECT_EQ(u.offset, (std::vector<std::uint32_t>{0, 8, 16}));
  EXPECT_EQ(u.stride, 24u);
  EXPECT_EQ(KResidualLayout::uniform(4, 0).stride, 0u);
  EXPECT_EQ(KResidualLayout::uniform(4, 0).bytes(100), 0u);
  EXPECT_EQ(KResidualLayout::record_halves({12, 4}), 4u);
}

TEST(KResidual, TransformCodeLayoutAndRecords) {
  // Halves: n4/4 + 3·n3/16 + n2/8 + n1/16; offsets follow; the empty code holds none.
  const KResidualLayout l = KResidualLayout::make({tc_residual(8, 0, 16, 16), tc_residual(0, 0, 0, 0), tc_residual(4, 0, 0, 32)});
  EXPECT_EQ(l.offset, (std::vector<std::uint32_t>{0, 5, 5}));
  EXPECT_EQ(l.stride, 8u);
  EXPECT_TRUE(l.transform());
  EXPECT_FALSE(KResidualLayout::make({{8, 4}}).transform());
  EXPECT_EQ(l.max_rank(), 40u);
  EXPECT_EQ(residual_label(tc_residual(8, 0, 16, 16)), "tc8/0/16/16");
  EXPECT_EQ(KResidualLayout::record_halves(tc_residual(4, 32, 8, 16)), 1u + 6u + 1u + 1u);
  EXPECT_EQ(residual_label(tc_residual(0, 0, 0, 0)), "tc0");
  // Slots: 4-bit codes from half 0, then 2-bit, then 1-bit.
  const KResidual r = tc_residual(8, 0, 16, 16);
  EXPECT_EQ(tc_slot(r, 5).width, 4u);
  EXPECT_EQ(tc_slot(r, 5).half, 1u);
  EXPECT_EQ(tc_slot(r, 5).shift, 4u);
  EXPECT_EQ(tc_slot(r, 8 + 9).half, 3u);
  EXPECT_EQ(tc_slot(r, 8 + 9).shift, 2u);
  EXPECT_EQ(tc_slot(r, 24 + 15).half, 4u);
  EXPECT_EQ(tc_slot(r, 24 + 15).shift, 15u);
  // floor(c) clamped to each width's range, NaN codes 0; decoded as code + 1/2.
  std::vector<double> c(40, 0.0);
  c[0] = 7.9;      // 4-bit: 7
  c[1] = -8.5;     // clamped to -8
  c[2] = -0.25;    // -1
  c[3] = std::nan("");
  c[8] = 1.99;     // 2-bit: 1
  c[9] = -3.0;     // -2 (clamped)
  c[24] = 0.3;     // 1-bit: 0
  c[25] = -0.01;   // -1
  c[39] = 100.0;   // 0 (clamped)
  std::vector<half_bits> rec(5, 0xffff);
  pack_residual(r, c, rec);
  const std::vector<double> back = unpack_residual(r, rec);
  const std::vector<std::pair<int, double>> want{{0, 7.5}, {1, -7.5}, {2, -0.5}, {3, 0.5}, {4, 0.5}, {8, 1.5},
                                                 {9, -1.5}, {10, 0.5}, {24, 0.5}, {25, -0.5}, {39, 0.5}};
  for (const auto& [i, v] : want) EXPECT_EQ(back[std::size_t(i)], v) << "code " << i;
  EXPECT_EQ(rec[0], half_bits(0x0f87));  // codes 7, -8 (0x8), -1 (0xf), 0: low nibble first

  // 3-bit codes: 16 in 3 halves after the 4-bit ones, a bit string from the
  // first half's low bit; codes 5 and 10 of the segment run into the next half.
  const KResidual r3 = tc_residual(4, 16, 8, 0);
  EXPECT_EQ(KResidualLayout::record_halves(r3), 5u);
  EXPECT_EQ(tc_slot(r3, 4 + 5).width, 3u);
  EXPECT_EQ(tc_slot(r3, 4 + 5).half, 1u);
  EXPECT_EQ(tc_slot(r3, 4 + 5).shift, 15u);
  EXPECT_EQ(tc_slot(r3, 4 + 6).half, 2u);
  EXPECT_EQ(tc_slot(r3, 4 + 6).shift, 2u);
  EXPECT_EQ(tc_slot(r3, 4 + 10).half, 2u);
  EXPECT_EQ(tc_slot(r3, 4 + 10).shift, 14u);
  EXPECT_EQ(tc_slot(r3, 4 + 15).half, 3u);
  EXPECT_EQ(tc_slot(r3, 4 + 15).shift, 13u);
  EXPECT_EQ(tc_slot(r3, 20).width, 2u);
  EXPECT_EQ(tc_slot(r3, 20).half, 4u);
  std::vector<double> c3(28, 0.0);
  c3[4 + 5] = 3.9;  // 3 (clamped from 3): bits 011, bit 15 of half 1 and bit 0 of half 2
  std::vector<half_bits> rec3(5, 0xffff);
  pack_residual(r3, c3, rec3);
  EXPECT_EQ(rec3[1], half_bits(0x8000));
  EXPECT_EQ(rec3[2], half_bits(0x0001));
  c3[4 + 5] = -3.2;    // -4: bits 100
  c3[4 + 10] = 2.7;    // 2: bits 010 at shift 14 of half 2
  c3[4 + 15] = -9.0;   // -4 (clamped)
  c3[4 + 0] = -0.5;    // -1
  c3[20] = -1.5;       // 2-bit: -2
  pack_residual(r3, c3, rec3);
  EXPECT_EQ(rec3[1], half_bits(0x0007));  // code 0 of the segment: -1 (111), code 5's low bit 0
  EXPECT_EQ(rec3[2], half_bits(0x8002));  // code 5's high bits (10), code 10's low bits (0 at 14, 1 at 15)
  const std::vector<double> back3 = unpack_residual(r3, rec3);
  const std::vector<std::pair<int, double>> want3{{4, -0.5}, {9, -3.5}, {14, 2.5}, {19, -3.5}, {5, 0.5}, {20, -1.5}};
  for (const auto& [i, v] : want3) EXPECT_EQ(back3[std::size_t(i)], v) << "code " << i;
}

TEST(KResidual, TransformCodeLevels) {
  // tc4/0/8/16: column 0 has 4-bit levels value v -> v + 1/2 + v³/100 (bits
  // (v + 16) mod 16), column 4 2-bit levels {-2, -0.5, 0.25, 3}, column 12
  // 1-bit levels {0.75, -1.25} (bits 0, 1).
  const KResidual r = tc_residual(4, 0, 8, 16);
  std::vector<float> lv(std::size_t(r.rank) * kTcLevels, 0.0f);
  for (int v = -8; v < 8; ++v) lv[std::size_t(v & 15)] = float(v + 0.5 + v * v * v / 100.0);
  const float two[4] = {-2.0f, -0.5f, 0.25f, 3.0f};  // values -2, -1, 0, 1
  for (int v = -2; v < 2; ++v) lv[4 * kTcLevels + std::size_t(v & 3)] = two[v + 2];
  lv[12 * kTcLevels + 0] = 0.75f;
  lv[12 * kTcLevels + 1] = -1.25f;
  const auto code = [&](double c0, double c4, double c12) {
    std::vector<double> c(r.rank, 0.0);
    c[0] = c0, c[4] = c4, c[12] = c12;
    std::vector<half_bits> rec(KResidualLayout::record_halves(r));
    pack_residual(r, c, rec, 0, lv);
    return unpack_residual(r, rec, 0, lv);
  };
  // The nearest level: at -7.5 + -3.43 = -10.93 (value -7) ... 7 + 0.5 + 3.43 = 10.93.
  EXPECT_FLOAT_EQ(code(-50, 0, 0)[0], lv[8]);  // below every level: value -8
  EXPECT_FLOAT_EQ(code(50, 0, 0)[0], lv[7]);   // above: value 7
  EXPECT_FLOAT_EQ(code(2.0, 0, 0)[0], lv[1]);  // 1.51 (value 1) nearer than 2.58 (value 2)
  EXPECT_FLOAT_EQ(code(2.2, 0, 0)[0], lv[2]);
  EXPECT_FLOAT_EQ(code(0, -1.25, 0)[4], -0.5f);  // tie between -2 and -0.5: the larger code
  EXPECT_FLOAT_EQ(code(0, -1.26, 0)[4], -2.0f);
  EXPECT_FLOAT_EQ(code(0, 1.7, 0)[4], 3.0f);
  EXPECT_FLOAT_EQ(code(0, 0, -0.26)[12], -1.25f);  // nearer -1.25 than 0.75
  EXPECT_FLOAT_EQ(code(0, 0, -0.24)[12], 0.75f);
  EXPECT_FLOAT_EQ(code(0, 0, std::nan(""))[12], 0.75f);  // NaN codes 0
  // Too few levels for the rank: refused by name.
  std::vector<half_bits> rec(KResidualLayout::record_halves(r));
  EXPECT_NE(error_of([&] { pack_residual(r, std::vector<double>(r.rank), rec, 0, std::span(lv).first(16)); })
                .find("pack_residual: 16 levels for rank 28"),
            std::string::npos);
  EXPECT_NE(error_of([&] { (void)unpack_residual(r, rec, 0, std::span(lv).first(16)); }).find("unpack_residual: 16 levels"),
            std::string::npos);
}

TEST(KResidual, TransformCodeRefusals) {
  const auto msg = [](std::vector<KResidual> h) { return error_of([&] { KResidualLayout::make(std::move(h)); }); };
  EXPECT_NE(msg({tc_residual(6, 0, 0, 0)}).find("head 0 (tc6/0/0/0): transform codes fill whole halves"), std::string::npos);
  EXPECT_NE(msg({tc_residual(0, 8, 0, 0)}).find("n3 8"), std::string::npos);
  EXPECT_NE(msg({tc_residual(512, 512, 0, 0)}).find("fewer than 1024 coefficients"), std::string::npos);
  // pack/unpack refuse a code whose segments do not fill whole halves (its record would overrun).
  std::vector<half_bits> rec(4);
  EXPECT_NE(error_of([&] { pack_residual(tc_residual(0, 8, 0, 0), std::vector<double>(8), rec); })
                .find("pack_residual: tc0/8/0/0 does not fill whole halves"),
            std::string::npos);
  EXPECT_NE(error_of([&] { (void)unpack_residual(tc_residual(0, 8, 0, 0), rec); }).find("unpack_residual: tc0/8/0/0"),
            std::string::npos);
  EXPECT_NE(msg({tc_residual(0, 0, 4, 0)}).find("n2 4"), std::string::npos);
  EXPECT_NE(msg({tc_residual(0, 0, 0, 8)}).find("n1 8"), std::string::npos);
  EXPECT_NE(msg({tc_residual(4, 0, 0, 0), {8, 4}}).find("head 1 (rank 8, 4 bits): transform-coded heads cannot share a layer"),
            std::string::npos);
  EXPECT_NE(msg({{8, 4}, tc_residual(4, 0, 0, 0)}).find("head 1 (tc4/0/0/0): transform-coded heads cannot share"),
            std::string::npos);
}

TEST(KResidual, RefusalsNameTheHeadAndTheRule) {
  const auto msg = [](std::vector<KResidual> h) { return error_of([&] { KResidualLayout::make(std::move(h)); }); };
  EXPECT_NE(msg({{4, 16}, {4, 5}}).find("head 1 (rank 4, 5 bits): bits must be 16, 8 or 4"), std::string::npos);
  EXPECT_NE(msg({{3, 8}}).find("head 0 (rank 3, 8 bits): 8-bit coefficients need an even rank"), std::string::npos);
  EXPECT_NE(msg({{8, 8}, {0, 4}, {6, 4}}).find("head 2 (rank 6, 4 bits): 4-bit coefficients need a rank divisible by 4"),
            std::string::npos);
  EXPECT_NE(msg({{4, 8, true}}).find("head 0 (rank 4, 8 alpha-relative bits): alpha-relative coefficients are 4, 2 or 1 bits"),
            std::string::npos);
  EXPECT_NE(msg({{16, 1, true}, {8, 1, true}}).find("head 1 (rank 8, 1 alpha-relative bits): alpha-relative 1-bit codes "
                                                    "need a rank divisible by 16"),
            std::string::npos);
  EXPECT_NE(msg({{4, 2, true}}).find("alpha-relative 2-bit codes need a rank divisible by 8"), std::string::npos);
  EXPECT_EQ(msg({{0, 4}, {2, 8}, {4, 4}, {3, 16}, {8, 4, true}, {8, 2, true}, {32, 1, true}}), "");
  EXPECT_NE(error_of([] { KResidualLayout::make({{4, 16}, {9, 16}}).check_basis("f", 8); })
                .find("f: residual head 1 has rank 9, more than the basis' 8 columns"),
            std::string::npos);
}

TEST(KResidual, RecordBytes) {
  // fp16: round to nearest even, as today.
  std::vector<half_bits> r16(3);
  pack_residual({3, 16}, std::vector<double>{1.0, -2.5, 0.1}, r16);
  EXPECT_EQ(r16, (std::vector<half_bits>{0x3c00, 0xc100, to_half(0.1f)}));
  // int8: σ = fp16(127 / 127) = 1; codes 127, roundEven(-63.5) = -64, roundEven(2.5) = 2, -127.
  std::vector<half_bits> r8(3);
  pack_residual({4, 8}, std::vector<double>{127, -63.5, 2.5, -127}, r8);
  EXPECT_EQ(r8, (std::vector<half_bits>{0x3c00, 0xc07f, 0x8102}));
  EXPECT_EQ(unpack_residual({4, 8}, r8), (std::vector<double>{127, -64, 2, -127}));
  // int4: σ = 1; codes 7, roundEven(-3.5) = -4, roundEven(0.5) = 0, -7 -> nibbles 7, c, 0, 9.
  std::vector<half_bits> r4(2);
  pack_residual({4, 4}, std::vector<double>{7, -3.5, 0.5, -7}, r4);
  EXPECT_EQ(r4, (std::vector<half_bits>{0x3c00, 0x90c7}));
  EXPECT_EQ(unpack_residual({4, 4}, r4), (std::vector<double>{7, -4, 0, -7}));
  // alpha-relative: no scale half; code = floor(c / alpha) in [-8, 7], value
  // alpha·(code + 1/2). alpha 2: c/alpha = 3.2, -0.5, -20, 0.75 -> codes 3,
  // -1, -8 (clamped), 0 -> nibbles 3, f, 8, 0.
  std::vector<half_bits> ra(1);
  pack_residual({4, 4, true}, std::vector<double>{6.4, -1, -40, 1.5}, ra, 2.0);
  EXPECT_EQ(ra, (std::vector<half_bits>{0x08f3}));
  EXPECT_EQ(unpack_residual({4, 4, true}, ra, 2.0), (std::vector<double>{7, -1, -15, 1}));
  EXPECT_EQ(KResidualLayout::record_halves({8, 4, true}), 2u);
  // alpha-relative 2 bits: codes in [-2, 1], 8 a half. alpha 2: c/alpha = 3.2,
  // -0.5, -20, 0.75, 0, -0.05, 1.5, -1.5 -> 1 (clamped), -1, -2 (clamped), 0,
  // 0, -1, 1, -2 -> fields 1, 3, 2, 0, 0, 3, 1, 2 (2 bits each, low first).
  std::vector<half_bits> ra2(1);
  pack_residual({8, 2, true}, std::vector<double>{6.4, -1, -40, 1.5, 0, -0.1, 3, -3}, ra2, 2.0);
  EXPECT_EQ(ra2, (std::vector<half_bits>{0x9c2d}));
  EXPECT_EQ(unpack_residual({8, 2, true}, ra2, 2.0), (std::vector<double>{3, -1, -3, 1, 1, -1, 3, -3}));
  // alpha-relative 1 bit: a sign, code -1 (bit set) below 0, value ±alpha/2.
  std::vector<half_bits> ra1(1);
  std::vector<double> c1(16, 0.3);
  for (const int i : {1, 4, 5, 12, 15}) c1[std::size_t(i)] = -0.01 * (i + 1);
  pack_residual({16, 1, true}, c1, ra1, 1.0);
  EXPECT_EQ(ra1, (std::vector<half_bits>{0x9032}));
  const auto u1 = unpack_residual({16, 1, true}, ra1, 1.0);
  for (std::size_t i = 0; i < 16; ++i) EXPECT_EQ(u1[i], c1[i] < 0 ? -0.5 : 0.5) << i;
  EXPECT_EQ(KResidualLayout::record_halves({16, 2, true}), 2u);
  EXPECT_EQ(KResidualLayout::record_halves({48, 1, true}), 3u);
  // alpha 0 (a zero key) codes 0.
  std::vector<half_bits> rz(1, 0xffff);
  pack_residual({4, 4, true}, std::vector<double>{1, 2, 3, 4}, rz, 0.0);
  EXPECT_EQ(rz[0], 0u);
  // σ = 0: every code 0.
  for (const std::uint32_t bits : {8u, 4u}) {
    std::vector<half_bits> z(3, 0xffff);
    pack_residual({4, bits}, std::vector<double>{0, 0, 0, 0}, z);
    EXPECT_EQ(z[0], 0u);
    EXPECT_EQ(z[1], 0u);
    if (bits == 8) {
      EXPECT_EQ(z[2], 0u);
    }
    EXPECT_EQ(unpack_residual({4, bits}, z), (std::vector<double>(4, 0.0)));
  }
}

TEST(KResidual, RoundTripWithinHalfAStep) {
  std::mt19937 rng(3);
  std::normal_distribution<double> g;
  for (const KResidual r : {KResidual{16, 16}, KResidual{16, 8}, KResidual{16, 4}, KResidual{6, 8}, KResidual{12, 4}})
    for (int trial = 0; trial < 20; ++trial) {
      std::vector<double> c(r.rank);
      for (auto& x : c) x = g(rng) * std::ldexp(1.0, trial % 7 - 3);
      std::vector<half_bits> rec(KResidualLayout::record_halves(r));
      pack_residual(r, c, rec);
      const std::vector<double> back = unpack_residual(r, rec);
      const double step = r.bits == 16 ? 0 : from_half(rec[0]);
      for (std::uint32_t i = 0; i < r.rank; ++i) {
        const double tol = r.bits == 16 ? std::ldexp(std::fabs(c[i]), -11) : step * 0.5 * (1 + 1e-12);
        ASSERT_LE(std::fabs(back[i] - c[i]), tol) << "bits " << r.bits << " coefficient " << i;
      }
    }
}

// A uniform (r, 16) layout is today's coefficient array: element (t, h, i) at
// (t·n_kv + h)·r + i holds fp16(c_i), whatever the residual code around it.
TEST(KResidual, UniformFp16IsTheOldLayout) {
  const std::uint32_t n_kv = 3, hd = 64, r = 8, n = 5;
  const std::vector<float> mu = random_floats(std::size_t(n_kv) * hd, 1, -1.f, 1.f);
  const std::vector<float> basis = random_floats(std::size_t(n_kv) * hd * r, 2, -0.3f, 0.3f);
  const ref::KCodec c{mu, {}, basis, n_kv, hd, KResidualLayout::uniform(n_kv, r), r};
  const std::vector<float> k = random_floats(std::size_t(n) * n_kv * hd, 3, -2.f, 2.f);
  const ref::KCodes codes = ref::kcode_encode(c, k, n);
  ASSERT_EQ(codes.coef.size(), std::size_t(n) * n_kv * r);
  for (std::uint32_t t = 0; t < n; ++t)
    for (std::uint32_t h = 0; h < n_kv; ++h) {
      const std::size_t e = std::size_t(t) * n_kv + h;
      const auto cf = ref::kcode_coefs(c, h, std::span<const double>(codes.v.data() + e * hd, hd), from_half(codes.alpha[e]));
      for (std::uint32_t i = 0; i < r; ++i) ASSERT_EQ(codes.coef[e * r + i], to_half(float(cf[i])));
    }
}

}  // namespace
}  // namespace vkq::test
