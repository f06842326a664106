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
// rounding, with and without mean-RoPE.
#include <cmath>
#include <random>

#include "vk_test.hpp"
#include "vkquant/error.hpp"
#include "vkquant/half.hpp"
#include "vkquant/kernels/kcodec.hpp"
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

// Host codec parameters and their device copies.
struct Codec {
  std::uint32_t n_kv, hd, rank;
  bool rotate;
  bool mean_rope;
  TestRope rope;  // the mean-RoPE table (unused otherwise)
  std::vector<float> mu, rot, basis;
  Buffer mu_b, rot_b, basis_b;

  Codec(Device& d, std::uint32_t n_kv_, std::uint32_t hd_, std::uint32_t rank_, bool rotate_, bool identity_basis,
        std::uint32_t seed, bool mean_rope_ = false)
      : n_kv(n_kv_), hd(hd_), rank(rank_), rotate(rotate_), mean_rope(mean_rope_), rope(test_rope(d, hd_)) {
    mu = random_floats(std::size_t(n_kv) * hd, seed, -2.f, 2.f);
    if (rotate) rot = random_rotations(n_kv, hd, seed + 1);
    basis.assign(std::size_t(n_kv) * hd * rank, 0.f);
    if (identity_basis) {
      for (std::uint32_t h = 0; h < n_kv; ++h)
        for (std::uint32_t j = 0; j < rank; ++j) basis[(std::size_t(h) * hd + j) * rank + j] = 1.f;
    } else if (rank > 0) {
      basis = random_floats(basis.size(), seed + 2, -0.3f, 0.3f);
    }
    mu_b = upload(d, mu);
    if (rotate) rot_b = upload(d, rot);
    if (rank) basis_b = upload(d, basis);
  }
  kernels::KCodec dev() const {
    return {&mu_b, rotate ? &rot_b : nullptr, rank ? &basis_b : nullptr, n_kv, hd, rank,
            mean_rope ? rope.freqs() : kernels::RopeFreqs{}};
  }
  ref::KCodec host() const { return {mu, rot, basis, n_kv, hd, rank, mean_rope ? &rope.host : nullptr}; }
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

struct KCase {
  std::uint32_t hd, n_kv, rank, n, pos0;
  bool rotate, rope;
  bool mean_rope = false;  // codec centered by RoPE_pos(mu_pre) (test_rope's table)
};

std::string case_name(const KCase& c) {
  return "d" + std::to_string(c.hd) + "_kv" + std::to_string(c.n_kv) + "_r" + std::to_string(c.rank) + "_n" +
         std::to_string(c.n) + "_p" + std::to_string(c.pos0) + (c.rotate ? "_rot" : "_id") +
         (c.rope ? "_rope" : "") + (c.mean_rope ? "_meanrope" : "");
}

class KCodec : public VulkanTest, public ::testing::WithParamInterface<KCase> {};

TEST_P(KCodec, EncodeMatchesReference) {
  const KCase kc = GetParam();
  const Codec c(dev(), kc.n_kv, kc.hd, kc.rank, kc.rotate, false, 11 + kc.hd + kc.n_kv, kc.mean_rope);
  const std::vector<float> k = keys_away_from_zero(c, kc.n, 5 + kc.n, kc.pos0);
  const ref::KCodes want = ref::kcode_encode(c.host(), k, kc.n, kc.pos0);

  const std::uint32_t ctx = kc.pos0 + kc.n + 3, words = kc.hd / 32, n_kv = kc.n_kv, rank = kc.rank;
  Buffer kb = upload(dev(), k);
  Buffer bits = Buffer::create(dev(), kernels::kcode_bits_bytes(ctx, n_kv, kc.hd));
  Buffer alpha = Buffer::create(dev(), kernels::kcode_alpha_bytes(ctx, n_kv));
  Buffer coef = Buffer::create(dev(), std::max<std::uint64_t>(kernels::kcode_coef_bytes(ctx, n_kv, rank), 4));
  bits.fill(kPoison);
  alpha.fill(kPoison);
  coef.fill(kPoison);
  Stream s = Stream::create(dev());
  kernels::kcode_encode(s, c.dev(), kb, bits, alpha, rank ? &coef : nullptr, kc.n, kc.pos0);
  s.submit_and_wait();

  const auto got_bits = download<std::uint32_t>(bits, std::size_t(ctx) * n_kv * words);
  std::vector<std::uint32_t> ref_bits(got_bits.size(), kPoison);
  std::copy(want.bits.begin(), want.bits.end(), ref_bits.begin() + std::size_t(kc.pos0) * n_kv * words);
  EXPECT_TRUE(exact<std::uint32_t>(ref_bits, got_bits));

  const std::size_t e0 = std::size_t(kc.pos0) * n_kv, e1 = e0 + std::size_t(kc.n) * n_kv;
  const auto got_alpha = download<std::uint32_t>(alpha, kernels::kcode_alpha_bytes(ctx, n_kv) / 4);
  const auto got_coef = download<std::uint32_t>(coef, kernels::kcode_coef_bytes(ctx, n_kv, rank) / 4);
  std::size_t alpha_off = 0, coef_bad = 0, untouched_bad = 0;
  double max_coef_err = 0;
  for (std::size_t e = 0; e < std::size_t(ctx) * n_kv; ++e) {
    const half_bits a = get_half(got_alpha, e);
    if (e < e0 || e >= e1) {  // outside the window: every half keeps its old contents
      untouched_bad += a != kPoisonHalf;
      for (std::uint32_t r = 0; r < rank; ++r) untouched_bad += get_half(got_coef, e * rank + r) != kPoisonHalf;
      continue;
    }
    const std::size_t t = e - e0;
    const half_bits ra = want.alpha[t];
    ASSERT_LE(std::abs(int(a) - int(ra)), 1) << "alpha of element " << e << ": " << from_half(a) << " vs "
                                              << from_half(ra);
    alpha_off += a != ra;
    if (!rank) continue;
    // The coefs are measured against the device's fp16 alpha.
    const std::span<const double> v(want.v.data() + t * kc.hd, kc.hd);
    const auto cf = ref::kcode_coefs(c.host(), std::uint32_t(e % n_kv), v, from_half(a));
    double vn = 0;
    for (double x : v) vn += x * x;
    for (std::uint32_t r = 0; r < rank; ++r) {
      const double g = from_half(get_half(got_coef, e * rank + r));
      const double err = std::fabs(g - cf[r]);
      max_coef_err = std::max(max_coef_err, err);
      coef_bad += err > std::ldexp(std::fabs(cf[r]), -11) * 1.01 + 1e-6 * std::sqrt(vn);
    }
  }
  EXPECT_EQ(untouched_bad, 0u) << "encode changed halves of positions outside its window";
  EXPECT_EQ(coef_bad, 0u) << "coefs off by more than fp16 rounding; max error " << max_coef_err;
  EXPECT_LE(alpha_off, (e1 - e0) / 50 + 1) << "too many alpha values one ulp off";
}

TEST_P(KCodec, DecodeMatchesReference) {
  const KCase kc = GetParam();
  const Codec c(dev(), kc.n_kv, kc.hd, kc.rank, kc.rotate, false, 21 + kc.hd + kc.n_kv, kc.mean_rope);
  const std::vector<float> k = keys_away_from_zero(c, kc.n, 7 + kc.n, kc.pos0);
  const ref::KCodes codes = ref::kcode_encode(c.host(), k, kc.n, kc.pos0);
  const std::vector<half_bits> want = ref::kcode_decode(c.host(), codes.bits, codes.alpha, codes.coef, kc.pos0,
                                                        kc.n, kc.rope ? &c.rope.host : nullptr);

  // The reference's codes at positions pos0.., poison elsewhere.
  const std::uint32_t ctx = kc.pos0 + kc.n + 2, words = kc.hd / 32, n_kv = kc.n_kv, rank = kc.rank;
  const std::size_t e0 = std::size_t(kc.pos0) * n_kv;
  std::vector<std::uint32_t> bits(std::size_t(ctx) * n_kv * words, kPoison);
  std::copy(codes.bits.begin(), codes.bits.end(), bits.begin() + e0 * words);
  std::vector<std::uint32_t> alpha(kernels::kcode_alpha_bytes(ctx, n_kv) / 4, kPoison);
  put_halves(alpha, codes.alpha, e0);
  std::vector<std::uint32_t> coef(std::max<std::uint64_t>(kernels::kcode_coef_bytes(ctx, n_kv, rank) / 4, 1), kPoison);
  put_halves(coef, codes.coef, e0 * rank);
  Buffer bb = upload(dev(), bits), ab = upload(dev(), alpha), cb = upload(dev(), coef);
  const std::size_t row = std::size_t(n_kv) * kc.hd / 2;  // cache words per position
  Buffer kcache = Buffer::create(dev(), std::size_t(ctx) * row * 4);
  kcache.fill(kPoison);
  Stream s = Stream::create(dev());
  const kernels::RopeFreqs freqs = c.rope.freqs();
  kernels::kcode_decode(s, c.dev(), bb, ab, rank ? &cb : nullptr, kcache, kc.pos0, kc.n, kc.rope ? &freqs : nullptr);
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
                                           KCase{128, 2, 0, 300, 17, false, false, true}),  //
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
    Buffer coef = Buffer::create(dev(), kernels::kcode_coef_bytes(ctx, n_kv, hd));
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
  const auto codec = [&](std::uint32_t n_kv, std::uint32_t hd, std::uint32_t rank) {
    return kernels::KCodec{&a, nullptr, rank ? &a : nullptr, n_kv, hd, rank};
  };
  EXPECT_THROW(kernels::kcode_encode(s, codec(1, 48, 0), a, b, cb, nullptr, 1, 0), Error);   // hd not supported
  EXPECT_THROW(kernels::kcode_encode(s, codec(65, 32, 0), a, b, cb, nullptr, 1, 0), Error);  // n_kv > 64
  EXPECT_THROW(kernels::kcode_encode(s, codec(1, 32, 33), a, b, cb, nullptr, 1, 0), Error);  // rank > hd
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
}

}  // namespace
}  // namespace vkq::test
