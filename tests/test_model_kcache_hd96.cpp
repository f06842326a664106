// The 1-bit K-cache on a real-shaped head size: Phi-3's head_dim 96 (three
// sign words per key, SRHT zero-padded to 128 then made orthogonal), on the
// PyTorch-checked Phi-3 test model (fused qkv / gate_up, sliding window 64).
// The Vulkan forward must match the CPU codec on every path.
#include <gtest/gtest.h>

#include <random>

#include "model_data.hpp"
#include "vk_test.hpp"
#include "vkquant/model/cpu_forward.hpp"
#include "vkquant/model/kcache.hpp"
#include "vkquant/model/vk_forward.hpp"

namespace vkq::test {
namespace {

using kernels::WeightType;

struct Hd96Case {
  const char* name;
  KCacheConfig k;
  double nmse;
};

class ModelKCacheHd96 : public VulkanTest, public ::testing::WithParamInterface<Hd96Case> {};

TEST_P(ModelKCacheHd96, VulkanMatchesCpuCodec) {
  const auto f = ModelFile::open(source_path("tests/data/refmodels/phi3"));
  ASSERT_EQ(f.config().head_dim, 96u);
  const KCacheConfig& k = GetParam().k;
  const auto host = load_host_weights(f);
  const std::uint32_t ctx = 64;  // the model's sliding window
  CpuForward cpu(host, ctx, /*fp16_kv=*/true);
  cpu.set_kcache(k, nullptr);
  VkForward gpu(dev(), f, VkForwardOptions{.weights = WeightType::f32, .ctx = ctx, .max_batch = 16, .kcache = k});
  std::mt19937 rng(96);
  std::vector<std::int32_t> ids(60);
  for (auto& x : ids) x = std::int32_t(rng() % f.config().vocab);
  const std::span<const std::int32_t> prompt(ids.data(), 40), rest(ids.data() + 40, 20);
  EXPECT_TRUE(nmse(cpu.forward(prompt), gpu.forward(prompt, true), GetParam().nmse));
  for (std::int32_t id : rest) {
    const std::span<const std::int32_t> one(&id, 1);
    ASSERT_TRUE(nmse(cpu.forward(one), gpu.forward(one), GetParam().nmse)) << "position " << gpu.position();
  }
  // 1 + 16/96 bits per coordinate (signs and the fp16 alpha) plus the front's fp16 keys.
  EXPECT_NEAR(gpu.key_bits_per_coordinate(), 1.0 + 16.0 / 96 + 16.0 * k.protect_front / ctx, 1e-9);
}

INSTANTIATE_TEST_SUITE_P(
    Codec, ModelKCacheHd96,
    ::testing::Values(Hd96Case{"none_post", KCacheConfig{true, KRope::post, KRotation::none, 0, 0, 0, 0}, 1e-5},
                      Hd96Case{"srht_post", KCacheConfig{true, KRope::post, KRotation::srht, 0, 0, 3, 0}, 1e-5},
                      Hd96Case{"srht_post_pop8_front3", KCacheConfig{true, KRope::post, KRotation::srht, 0, 3, 5, 8}, 1e-4},
                      Hd96Case{"srht_ropemean_front2", KCacheConfig{true, KRope::ropemean, KRotation::srht, 0, 2, 1, 0}, 1e-5},
                      Hd96Case{"srht_pre", KCacheConfig{true, KRope::pre, KRotation::srht, 0, 0, 7, 0}, 1e-5}),
    [](const auto& param_info) { return std::string(param_info.param.name); });

}  // namespace
}  // namespace vkq::test
