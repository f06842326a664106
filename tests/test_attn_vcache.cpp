// The q8 / q4 value cache vs its CPU reference: vcache_store bit-exact with
// ref::vcache_pack (hd 32, 64, 96, 128, 256; stores at pos0 > 0 keep the
// other positions; blocks with a zero range, ties, outliers), the packed
// values within half a quantization step of the input, and attention()
// reading the quantized values in place (single pass and split-K, prefill
// and decode, GQA) against the fp64 reference on the dequantized values.
#include <cmath>

#include "vk_test.hpp"
#include "vkquant/error.hpp"
#include "vkquant/half.hpp"
#include "vkquant/kernels/attn.hpp"
#include "vkquant/reference/attn.hpp"

namespace vkq::test {
namespace {

constexpr std::uint32_t kPoison = 0x7fc00badu;

struct StoreCase {
  VType t;
  std::uint32_t hd, n_kv, n, pos0;
};

class VcacheStore : public VulkanTest, public ::testing::WithParamInterface<StoreCase> {};

TEST_P(VcacheStore, BitExactWithReference) {
  const auto [t, hd, n_kv, n, pos0] = GetParam();
  const std::uint32_t ctx = pos0 + n + 3;
  std::vector<float> src = random_floats(std::size_t(n) * n_kv * hd, 91 + hd, -3.f, 3.f);
  // A constant block (zero range / zero amax), an outlier, ties at half steps.
  for (std::uint32_t i = 0; i < 32; ++i) src[i] = t == VType::q8 ? 0.f : 0.75f;
  if (src.size() > 64) src[40] = 250.f;
  if (src.size() > 96) {
    for (std::uint32_t i = 64; i < 96; ++i) src[i] = float(i - 64) * 0.5f;  // q8: d = 15.5/127; q4: ranks 0..31 over 15 steps
  }
  Buffer sb = upload(dev(), src);
  const std::uint32_t cw = vtype_code_words(t, hd), sw = vtype_scale_words(t, hd);
  Buffer codes = Buffer::create(dev(), kernels::vcache_code_bytes(t, ctx, n_kv, hd));
  Buffer scales = Buffer::create(dev(), kernels::vcache_scale_bytes(t, ctx, n_kv, hd));
  codes.fill(kPoison);
  scales.fill(kPoison);
  Stream s = Stream::create(dev());
  kernels::vcache_store(s, sb, t, codes, &scales, n, pos0, n_kv, hd);
  s.submit_and_wait();
  const auto want = ref::vcache_pack(t, src, n, n_kv, hd);
  std::vector<std::uint32_t> wc(std::size_t(ctx) * n_kv * cw, kPoison), ws(std::size_t(ctx) * n_kv * sw, kPoison);
  std::copy(want.codes.begin(), want.codes.end(), wc.begin() + std::size_t(pos0) * n_kv * cw);
  std::copy(want.scales.begin(), want.scales.end(), ws.begin() + std::size_t(pos0) * n_kv * sw);
  EXPECT_TRUE(exact<std::uint32_t>(wc, download<std::uint32_t>(codes, wc.size()))) << "codes";
  EXPECT_TRUE(exact<std::uint32_t>(ws, download<std::uint32_t>(scales, ws.size()))) << "scales";

  // The values stand within half a step (plus the scale's fp16 rounding) of the input.
  const auto back = ref::vcache_unpack(t, want, n, n_kv, hd);
  for (std::size_t b = 0; b < src.size() / 32; ++b) {
    float lo = src[b * 32], hi = lo, amax = 0.f;
    for (std::size_t i = b * 32; i < b * 32 + 32; ++i)
      lo = std::min(lo, src[i]), hi = std::max(hi, src[i]), amax = std::max(amax, std::abs(src[i]));
    const float step = t == VType::q8 ? amax / 127.f : (hi - lo) / 15.f;
    for (std::size_t i = b * 32; i < b * 32 + 32; ++i)
      ASSERT_LE(std::abs(back[i] - src[i]), 0.5f * step * 1.01f + 2e-3f * std::abs(src[i]) + 1e-3f * std::abs(lo))
          << "element " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, VcacheStore,
                         ::testing::Values(StoreCase{VType::q8, 64, 2, 5, 0}, StoreCase{VType::q8, 96, 1, 7, 3},
                                           StoreCase{VType::q8, 32, 3, 1, 9}, StoreCase{VType::q8, 256, 2, 3, 1},
                                           StoreCase{VType::q4, 64, 2, 5, 0}, StoreCase{VType::q4, 96, 1, 7, 3},
                                           StoreCase{VType::q4, 128, 4, 33, 2}, StoreCase{VType::q4, 32, 3, 1, 9}),
                         [](const auto& p) {
                           const StoreCase& c = p.param;
                           return std::string(vtype_name(c.t)) + "_hd" + std::to_string(c.hd) + "_kv" +
                                  std::to_string(c.n_kv) + "_n" + std::to_string(c.n) + "_pos" + std::to_string(c.pos0);
                         });

TEST_F(VulkanTest, VcacheRejectsBadArguments) {
  Buffer a = Buffer::create(dev(), 1 << 16), b = Buffer::create(dev(), 1 << 16), c = Buffer::create(dev(), 1 << 16),
         o = Buffer::create(dev(), 1 << 16);
  Stream s = Stream::create(dev());
  EXPECT_THROW(kernels::vcache_store(s, a, VType::q8, b, &c, 1, 0, 1, 48), Error);      // hd % 32
  EXPECT_THROW(kernels::vcache_store(s, a, VType::q4, b, nullptr, 1, 0, 1, 64), Error);  // no scales
  EXPECT_THROW(kernels::vcache_store(s, a, VType::q4, b, &c, 1, 100000, 1, 64), Error);  // past the cache
  EXPECT_THROW(kernels::vcache_store(s, a, VType::q4, b, &b, 1, 0, 1, 64), Error);      // codes = scales
  const kernels::VCacheView q4{VType::q4, &b, nullptr};
  EXPECT_THROW(kernels::attention(s, a, b, q4, o, 1, 0, 4, 4, 64, 0.1f, nullptr), Error);  // scales missing
  const kernels::VCacheView q8{VType::q8, &b, &c};
  EXPECT_THROW(kernels::attention(s, a, b, q8, o, 1, 0, 4, 4, 48, 0.1f, nullptr), Error);  // hd % 32
  EXPECT_THROW(kernels::attention(s, a, b, kernels::VCacheView{VType(7), &b, &c}, o, 1, 0, 4, 4, 64, 0.1f, nullptr),
               Error);  // unknown type
}

struct AttnCase {
  VType t;
  std::uint32_t n, pos0, n_heads, n_kv, hd;
};

// On device d: attention over quantized values against the fp64 reference.
void check_attention(Device& d, const AttnCase& c) {
  const auto [t, n, pos0, n_heads, n_kv, hd] = c;
  const std::uint32_t kv_len = pos0 + n, ctx = kv_len + 2;
  const float scale = 1.7f / std::sqrt(float(hd));
  const std::vector<float> k = random_floats(std::uint64_t(kv_len) * n_kv * hd, 181, -2.f, 2.f);
  const std::vector<float> v = random_floats(k.size(), 182, -1.f, 1.f);
  const std::vector<float> q = random_floats(std::uint64_t(n) * n_heads * hd, 183, -2.f, 2.f);
  Buffer kb = upload(d, k), vb = upload(d, v), qb = upload(d, q);
  Buffer kc = Buffer::create(d, kernels::kv_cache_bytes(ctx, n_kv, hd));
  Buffer codes = Buffer::create(d, kernels::vcache_code_bytes(t, ctx, n_kv, hd));
  Buffer scales = Buffer::create(d, std::max<std::uint64_t>(kernels::vcache_scale_bytes(t, ctx, n_kv, hd), 4));
  Buffer out = Buffer::create(d, q.size() * 4 + 64);
  out.fill(kPoison);
  const std::uint64_t sbytes = kernels::attention_scratch_bytes(d, n, n_heads, n_kv, kv_len, hd);
  Buffer scratch;
  if (sbytes) scratch = Buffer::create(d, sbytes);
  Stream s = Stream::create(d);
  kernels::kv_store(s, kb, kc, kv_len, 0, n_kv, hd);
  kernels::vcache_store(s, vb, t, codes, &scales, kv_len, 0, n_kv, hd);
  kernels::attention(s, qb, kc, kernels::VCacheView{t, &codes, &scales}, out, n, pos0, n_heads, n_kv, hd, scale,
                     sbytes ? &scratch : nullptr);
  s.submit_and_wait();

  const std::vector<float> vq = ref::vcache_unpack(t, ref::vcache_pack(t, v, kv_len, n_kv, hd), kv_len, n_kv, hd);
  std::vector<float> want(q.size());
  ref::attention(q, round_to_half(k), vq, want, n, pos0, n_heads, n_kv, hd, scale);
  const auto got = download<float>(out, q.size());
  EXPECT_TRUE(nmse(want, got, 1e-10)) << (sbytes ? "split-K" : "single pass");
  EXPECT_TRUE(close(want, got, 1e-5, 1e-4)) << (sbytes ? "split-K" : "single pass");
  // Against the fp16 values the quantization error shows (q4 clearly, q8 barely).
  std::vector<float> exact_v(q.size());
  ref::attention(q, round_to_half(k), round_to_half(v), exact_v, n, pos0, n_heads, n_kv, hd, scale);
  EXPECT_FALSE(nmse(exact_v, got, 1e-10)) << "quantized values read as if fp16";
  std::uint32_t tail[16];
  out.download(tail, sizeof tail, q.size() * 4);
  for (auto x : tail) EXPECT_EQ(x, kPoison) << "written past out";
}

class AttnVcache : public VulkanTest, public ::testing::WithParamInterface<AttnCase> {};
TEST_P(AttnVcache, MatchesFp64ReferenceOnDequantizedValues) { check_attention(dev(), GetParam()); }
// The one-head-per-invocation layout (a GPU's) on this device.
class AttnVcacheOneHead : public VulkanTest, public ::testing::WithParamInterface<AttnCase> {};
TEST_P(AttnVcacheOneHead, MatchesFp64ReferenceOnDequantizedValues) { check_attention(one_head_device(), GetParam()); }

std::string case_name(const ::testing::TestParamInfo<AttnCase>& p) {
  const AttnCase& c = p.param;
  return std::string(vtype_name(c.t)) + "_n" + std::to_string(c.n) + "_pos" + std::to_string(c.pos0) + "_h" +
         std::to_string(c.n_heads) + "_kv" + std::to_string(c.n_kv) + "_hd" + std::to_string(c.hd);
}

INSTANTIATE_TEST_SUITE_P(Shapes, AttnVcache,
                         ::testing::Values(AttnCase{VType::q8, 7, 20, 8, 4, 64}, AttnCase{VType::q4, 7, 20, 8, 4, 64},
                                           AttnCase{VType::q4, 37, 0, 4, 1, 96}, AttnCase{VType::q8, 1, 4096, 8, 2, 128},
                                           AttnCase{VType::q4, 1, 4096, 16, 2, 64},
                                           AttnCase{VType::q4, 1, 300, 4, 4, 256},
                                           AttnCase{VType::q4, 1, 3000, 14, 2, 128},  // groups of 7: 4 + 3 heads
                                           AttnCase{VType::q8, 5, 50, 14, 2, 64}),
                         case_name);
INSTANTIATE_TEST_SUITE_P(Shapes, AttnVcacheOneHead,
                         ::testing::Values(AttnCase{VType::q4, 7, 20, 8, 4, 64}, AttnCase{VType::q8, 1, 4096, 8, 2, 128}),
                         case_name);

}  // namespace
}  // namespace vkq::test
