// fp16 KV cache and causal GQA attention vs the CPU reference: kv_store
// bit-exact with vkq::to_half (rounding ties, subnormals, overflow) and
// writing only its positions; attention in prefill (n 1, 7, 100; pos0 0 and
// > 0, so queries also see earlier cache) and decode (kv_len 1, 63, 4097),
// GQA ratios 1, 2, 4, 8, hd 2, 64, 80, 128, 256, scale != 1/sqrt(hd), through
// both the single-pass and the split-K (flash-decoding) paths, vs an fp64
// reference on the fp16-rounded K/V.
#include <cmath>

#include "vk_test.hpp"
#include "vkquant/error.hpp"
#include "vkquant/half.hpp"
#include "vkquant/kernels/attn.hpp"
#include "vkquant/reference/attn.hpp"

namespace vkq::test {
namespace {

constexpr std::uint32_t kPoison = 0x7fc00badu;

TEST_F(VulkanTest, AttnKvStoreRoundsLikeToHalf) {
  const std::uint32_t n_kv = 2, hd = 8, ctx = 9, pos0 = 3, n = 4;
  std::vector<float> src = random_floats(n * n_kv * hd, 71, -70000.f, 70000.f);
  const float special[] = {0.f, -0.f, 65504.f, 65520.f, -65536.f, 1e-8f, -3e-5f, 6.1e-5f, 5.96e-8f, 2.98e-8f,
                           1.00048828125f /* tie, rounds to even */, 1.00146484375f /* tie, rounds up */,
                           -2.0009765625f, 1e30f, 0.333333f, 5.9604645e-8f * 1.5f};
  for (std::size_t i = 0; i < std::size(special); ++i) src[i * 3] = special[i];
  for (std::size_t i = 0; i < src.size(); i += 5) src[i] *= 1e-4f;  // plenty of small values too
  Buffer sb = upload(dev(), src);
  Buffer cache = Buffer::create(dev(), kernels::kv_cache_bytes(ctx, n_kv, hd));
  cache.fill(kPoison);
  Stream s = Stream::create(dev());
  kernels::kv_store(s, sb, cache, n, pos0, n_kv, hd);
  s.submit_and_wait();
  const std::uint32_t row_words = n_kv * hd / 2;
  const auto got = download<std::uint32_t>(cache, ctx * row_words);
  std::vector<std::uint32_t> ref(ctx * row_words, kPoison);
  const auto packed = ref::kv_pack(src, n, n_kv, hd);
  std::copy(packed.begin(), packed.end(), ref.begin() + pos0 * row_words);
  EXPECT_TRUE(exact<std::uint32_t>(ref, got));
}

TEST_F(VulkanTest, AttnRejectsBadShapes) {
  Buffer a = Buffer::create(dev(), 1 << 16), b = Buffer::create(dev(), 1 << 16), c = Buffer::create(dev(), 1 << 16),
         o = Buffer::create(dev(), 1 << 16);
  Stream s = Stream::create(dev());
  EXPECT_THROW(kernels::attention(s, a, b, c, o, 1, 0, 6, 4, 64, 0.1f, nullptr), Error);   // 6 % 4
  EXPECT_THROW(kernels::attention(s, a, b, c, o, 1, 0, 4, 4, 63, 0.1f, nullptr), Error);   // odd hd
  EXPECT_THROW(kernels::attention(s, a, b, c, o, 1, 0, 4, 4, 258, 0.1f, nullptr), Error);  // hd > 256
  EXPECT_THROW(kernels::attention(s, a, b, c, o, 1, 4000, 4, 4, 64, 0.1f, nullptr), Error);  // cache too small
  EXPECT_THROW(kernels::kv_store(s, a, b, 1, 1000, 4, 64), Error);                          // past the cache
  const std::uint64_t need = kernels::attention_scratch_bytes(dev(), 1, 2, 1, 4000, 2);
  if (need) {
    Buffer k = Buffer::create(dev(), kernels::kv_cache_bytes(4000, 1, 2)), v = Buffer::create(dev(), k.size());
    EXPECT_THROW(kernels::attention(s, a, k, v, o, 1, 3999, 2, 1, 2, 0.1f, nullptr), Error);  // scratch missing
  }
}

struct AttnCase {
  std::uint32_t n, pos0, n_heads, n_kv, hd;
};

// On device d: the attention of one shape against the fp64 reference.
void check_attention(Device& d, const AttnCase& c) {
  const auto [n, pos0, n_heads, n_kv, hd] = c;
  const std::uint32_t kv_len = pos0 + n, ctx = kv_len + 5;
  const float scale = 1.7f / std::sqrt(float(hd));  // peakier than 1/sqrt(hd)
  std::vector<float> k = random_floats(std::uint64_t(kv_len) * n_kv * hd, 81, -2.f, 2.f);
  std::vector<float> v = random_floats(k.size(), 82, -1.f, 1.f);
  std::vector<float> q = random_floats(std::uint64_t(n) * n_heads * hd, 83, -2.f, 2.f);
  // The cache is filled by kv_store in two steps (the prefix, then the
  // queries' own positions), as a model would.
  Buffer kb = upload(d, k), vb = upload(d, v), qb = upload(d, q);
  Buffer kc = Buffer::create(d, kernels::kv_cache_bytes(ctx, n_kv, hd));
  Buffer vc = Buffer::create(d, kc.size());
  Buffer out = Buffer::create(d, q.size() * 4 + 64);
  out.fill(kPoison);
  const std::uint64_t sbytes = kernels::attention_scratch_bytes(d, n, n_heads, n_kv, kv_len, hd);
  Buffer scratch;
  if (sbytes) scratch = Buffer::create(d, sbytes);
  Stream s = Stream::create(d);
  std::vector<float> k_first(k.begin(), k.begin() + std::uint64_t(pos0) * n_kv * hd);
  std::vector<float> k_last(k.begin() + std::uint64_t(pos0) * n_kv * hd, k.end());
  std::vector<float> v_first(v.begin(), v.begin() + std::uint64_t(pos0) * n_kv * hd);
  std::vector<float> v_last(v.begin() + std::uint64_t(pos0) * n_kv * hd, v.end());
  Buffer kf = upload(d, k_first), kl = upload(d, k_last), vf = upload(d, v_first),
         vl = upload(d, v_last);
  if (pos0) {
    kernels::kv_store(s, kf, kc, pos0, 0, n_kv, hd);
    kernels::kv_store(s, vf, vc, pos0, 0, n_kv, hd);
  }
  kernels::kv_store(s, kl, kc, n, pos0, n_kv, hd);
  kernels::kv_store(s, vl, vc, n, pos0, n_kv, hd);
  kernels::attention(s, qb, kc, vc, out, n, pos0, n_heads, n_kv, hd, scale, sbytes ? &scratch : nullptr);
  s.submit_and_wait();

  std::vector<float> ref(q.size());
  ref::attention(q, round_to_half(k), round_to_half(v), ref, n, pos0, n_heads, n_kv, hd, scale);
  const auto got = download<float>(out, q.size());
  // fp32 scores, softmax and accumulation over up to 4097 keys: NMSE ~1e-13
  // in practice; a wrong key, head or position gives > 1e-3.
  EXPECT_TRUE(nmse(ref, got, 1e-10)) << (sbytes ? "split-K" : "single pass");
  EXPECT_TRUE(close(ref, got, 1e-5, 1e-4)) << (sbytes ? "split-K" : "single pass");
  std::uint32_t tail[16];
  out.download(tail, sizeof tail, q.size() * 4);
  for (auto t : tail) EXPECT_EQ(t, kPoison) << "written past out";
}

std::string case_name(const ::testing::TestParamInfo<AttnCase>& p) {
  const AttnCase& c = p.param;
  return "n" + std::to_string(c.n) + "_pos" + std::to_string(c.pos0) + "_h" + std::to_string(c.n_heads) + "_kv" +
         std::to_string(c.n_kv) + "_hd" + std::to_string(c.hd);
}

class AttnForward : public VulkanTest, public ::testing::WithParamInterface<AttnCase> {};
TEST_P(AttnForward, MatchesFp64Reference) { check_attention(dev(), GetParam()); }

// The same on the one-head-per-invocation layout (a GPU's; lavapipe's own
// shares each key and value row among a GQA group's heads).
class AttnForwardOneHead : public VulkanTest, public ::testing::WithParamInterface<AttnCase> {};
TEST_P(AttnForwardOneHead, MatchesFp64Reference) { check_attention(one_head_device(), GetParam()); }

INSTANTIATE_TEST_SUITE_P(
    Shapes, AttnForward,
    ::testing::Values(
        // prefill
        AttnCase{1, 0, 8, 8, 64}, AttnCase{7, 0, 8, 8, 64}, AttnCase{7, 20, 8, 4, 64}, AttnCase{7, 200, 2, 1, 64},
        AttnCase{100, 0, 8, 4, 128}, AttnCase{100, 37, 8, 1, 80}, AttnCase{7, 5, 4, 2, 2},
        AttnCase{100, 2000, 4, 2, 128}, AttnCase{13, 300, 16, 2, 256},
        // decode
        AttnCase{1, 0, 8, 8, 128}, AttnCase{1, 62, 8, 4, 64}, AttnCase{1, 62, 4, 4, 80},
        AttnCase{1, 4096, 32, 4, 128}, AttnCase{1, 4096, 4, 4, 80}, AttnCase{1, 4096, 8, 1, 2},
        AttnCase{1, 4096, 16, 8, 64}, AttnCase{1, 1000, 16, 16, 256},
        // GQA groups of 7 (Qwen2.5): one chunk of 7 heads at hd 64, 4 + 3 at hd 128
        AttnCase{1, 3000, 14, 2, 64}, AttnCase{1, 3000, 14, 2, 128}, AttnCase{9, 40, 7, 1, 128}),
    case_name);

INSTANTIATE_TEST_SUITE_P(Shapes, AttnForwardOneHead,
                         ::testing::Values(AttnCase{7, 20, 8, 4, 64}, AttnCase{13, 300, 16, 2, 256},
                                           AttnCase{1, 4096, 32, 4, 128}, AttnCase{1, 3000, 14, 2, 64}),
                         case_name);

}  // namespace
}  // namespace vkq::test
