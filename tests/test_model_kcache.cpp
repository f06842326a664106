// The 1-bit K-cache end to end on a small random model: keys captured from
// the Vulkan forward, the codec learned (calibrate_keys), the artifact written
// and read back, and the Vulkan forward with coded keys against the CPU
// reference running the same codec; bits stored per key coordinate from the
// buffers' sizes.
#include <gtest/gtest.h>

#include "model_data.hpp"
#include "vk_test.hpp"
#include "vkquant/mapped_file.hpp"
#include "vkquant/model/cpu_forward.hpp"
#include "vkquant/model/kcache.hpp"
#include "vkquant/model/vk_forward.hpp"
#include "vkquant/safetensors.hpp"

namespace vkq::test {
namespace {

using kernels::WeightType;

// head_dim 32 (the codec packs 32 coordinates per word), GQA 4/2.
TinyModel kcache_model() { return TinyModel{.vocab = 300, .dim = 64, .layers = 2, .heads = 4, .kv_heads = 2, .head_dim = 32, .ffn = 48, .ctx = 96}; }

std::vector<std::int32_t> tokens(std::size_t n, std::uint32_t seed, std::uint32_t vocab) {
  std::mt19937 rng(seed);
  std::vector<std::int32_t> t(n);
  for (auto& x : t) x = std::int32_t(rng() % vocab);
  return t;
}

// Keys of 24 random sequences of 96 tokens, calibrated with rank 4.
const KCalibration& calibration(Device& dev, const ModelFile& f) {
  static std::optional<KCalibration> cal;
  if (cal) return *cal;
  const ModelConfig& c = f.config();
  std::vector<std::vector<float>> pre(c.layers), post(c.layers);
  std::vector<std::uint32_t> positions;
  VkForwardOptions o;
  o.weights = WeightType::f32;
  o.max_batch = 40;  // several steps per sequence: positions come from position()
  const VkForward* running = nullptr;
  o.key_tap = [&](std::uint32_t l, const float* p, const float* q, std::uint32_t n) {
    pre[l].insert(pre[l].end(), p, p + std::size_t(n) * c.kv_dim());
    post[l].insert(post[l].end(), q, q + std::size_t(n) * c.kv_dim());
    if (l == 0)
      for (std::uint32_t t = 0; t < n; ++t) positions.push_back(running->position() + t);
  };
  VkForward fwd(dev, f, o);
  running = &fwd;
  for (std::uint32_t s = 0; s < 24; ++s) {
    fwd.reset();
    fwd.forward(tokens(96, s, c.vocab));
  }
  EXPECT_EQ(post[0].size(), std::size_t(24) * 96 * c.kv_dim());
  EXPECT_EQ(positions[95], 95u);
  EXPECT_EQ(positions[96], 0u);
  cal = calibrate_keys(c, pre, post, positions, CalibrateOptions{.rank = 4, .solver = "procrustes", .seed = 1, .iters = 10, .warm_start = 20});
  cal->model_sha256 = model_sha256(f);
  return *cal;
}

struct KCase {
  const char* name;
  KCacheConfig k;
  double nmse;  // bound on the logits' NMSE against the CPU codec
};

class ModelKCache : public VulkanTest, public ::testing::WithParamInterface<KCase> {};

TEST_P(ModelKCache, VulkanMatchesCpuCodec) {
  const auto dir = temp_dir("m");
  write_tiny_model(dir, kcache_model());
  const auto f = ModelFile::open(dir);
  const auto& cal = calibration(dev(), f);
  const KCacheConfig& k = GetParam().k;
  const auto host = load_host_weights(f);
  CpuForward cpu(host, 0, /*fp16_kv=*/true);
  cpu.set_kcache(k, &cal);
  VkForward gpu(dev(), f, VkForwardOptions{.weights = WeightType::f32, .ctx = 0, .max_batch = 16, .kcache = k, .calibration = &cal});
  const auto ids = tokens(70, 99, 300);
  const std::span<const std::int32_t> prompt(ids.data(), 50), rest(ids.data() + 50, 20);
  // Sign bits of near-zero coordinates may differ between fp32 and fp64 codes.
  const double bound = GetParam().nmse;
  EXPECT_TRUE(nmse(cpu.forward(prompt), gpu.forward(prompt, true), bound));
  for (std::int32_t id : rest) {
    const std::span<const std::int32_t> one(&id, 1);
    ASSERT_TRUE(nmse(cpu.forward(one), gpu.forward(one), bound)) << "position " << gpu.position();
  }
  // Bits stored per key coordinate, from the buffers' sizes: 1 + 16/d for the
  // signs and the fp16 alpha, + 16 r/d for the coefficients, + the front's fp16.
  const double d = 32, ctx = 96;
  const double want = 1.0 + 16.0 / d + 16.0 * k.rank / d + 16.0 * k.protect_front / ctx;
  EXPECT_NEAR(gpu.key_bits_per_coordinate(), want, 1e-9);
}

// Post-RoPE keys are scored in place, in fp32 (query_bits 0) or by popcount
// over the quantized rotated query, which the CPU reference quantizes the same
// way; a query level can still round the other way (fp32 vs fp64 rotation),
// hence the looser bound of the popcount cases.
INSTANTIATE_TEST_SUITE_P(
    Codec, ModelKCache,
    ::testing::Values(KCase{"none_post", KCacheConfig{true, KRope::post, KRotation::none, 0, 0, 0, 0}, 1e-5},
                      KCase{"srht_post", KCacheConfig{true, KRope::post, KRotation::srht, 0, 0, 3, 0}, 1e-5},
                      KCase{"learned_post", KCacheConfig{true, KRope::post, KRotation::learned, 0, 0, 0, 0}, 1e-5},
                      KCase{"learned_post_front5", KCacheConfig{true, KRope::post, KRotation::learned, 0, 5, 0, 0}, 1e-5},
                      KCase{"learned_post_r4", KCacheConfig{true, KRope::post, KRotation::learned, 4, 0, 0, 0}, 1e-5},
                      KCase{"learned_post_pop8", KCacheConfig{true, KRope::post, KRotation::learned, 0, 0, 0, 8}, 1e-4},
                      KCase{"srht_post_pop4_front3", KCacheConfig{true, KRope::post, KRotation::srht, 0, 3, 5, 4}, 1e-4},
                      KCase{"learned_ropemean", KCacheConfig{true, KRope::ropemean, KRotation::learned, 0, 0, 0, 0}, 1e-5},
                      KCase{"learned_ropemean_r4_front2", KCacheConfig{true, KRope::ropemean, KRotation::learned, 4, 2, 0, 0}, 1e-5},
                      KCase{"learned_ropemean_pop8", KCacheConfig{true, KRope::ropemean, KRotation::learned, 0, 0, 0, 8}, 1e-4},
                      KCase{"srht_pre", KCacheConfig{true, KRope::pre, KRotation::srht, 0, 0, 0}, 1e-5},
                      KCase{"learned_pre_r2_front2", KCacheConfig{true, KRope::pre, KRotation::learned, 2, 2, 0}, 1e-5}),
    [](const auto& param_info) { return std::string(param_info.param.name); });

TEST_F(VulkanTest, ModelKCacheFp16KeysAre16Bits) {
  const auto dir = temp_dir("m");
  write_tiny_model(dir, kcache_model());
  VkForward gpu(dev(), ModelFile::open(dir));
  EXPECT_DOUBLE_EQ(gpu.key_bits_per_coordinate(), 16.0);
}

TEST_F(VulkanTest, ModelKCacheArtifact) {
  const auto dir = temp_dir("m");
  write_tiny_model(dir, kcache_model());
  const auto f = ModelFile::open(dir);
  const auto& cal = calibration(dev(), f);
  // Learned rotations fit better than SRHT and no rotation on held-out keys (mean over layers and heads).
  double none = 0, srht = 0, learned = 0;
  for (const auto& L : cal.post)
    for (std::size_t h = 0; h < L.cos_none.size(); ++h) none += L.cos_none[h], srht += L.cos_srht[h], learned += L.cos_learned[h];
  EXPECT_GT(learned, srht);
  const auto path = dir / "m.vkq.safetensors";
  write_kcache_artifact(path, cal, "test");
  const auto back = read_kcache_artifact(path, f);
  EXPECT_EQ(back.rank, 4u);
  EXPECT_EQ(back.post[1].rot, cal.post[1].rot);
  EXPECT_EQ(back.pre[0].basis, cal.pre[0].basis);
  EXPECT_EQ(back.pre[1].mean, cal.pre[1].mean);
  // Bound to its model: another model (other weights, same shapes) is refused.
  const auto other = temp_dir("other");
  auto m2 = kcache_model();
  m2.seed = 2;
  write_tiny_model(other, m2);
  try {
    (void)read_kcache_artifact(path, ModelFile::open(other));
    FAIL() << "artifact accepted for another model";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("calibrated on another model"), std::string::npos) << e.what();
  }
  // A count past 32 bits in the metadata is refused, not truncated.
  {
    const auto f2 = SafetensorsFile::open(path);
    std::vector<std::vector<float>> values;
    std::vector<TensorWrite> t;
    for (const auto& info : f2.tensors()) values.push_back(f2.to_float(info));
    for (std::size_t i = 0; i < values.size(); ++i) t.push_back(f32_tensor(f2.tensors()[i].name, f2.tensors()[i].shape, values[i]));
    auto meta = f2.metadata();
    meta["layers"] = "4294967298";  // 2 + 2^32
    const auto bad = dir / "bad.vkq.safetensors";
    write_safetensors(bad, t, meta);
    try {
      (void)read_kcache_artifact(bad, f);
      FAIL() << "layers = 2^32 + 2 accepted";
    } catch (const FormatError& e) {
      EXPECT_NE(std::string(e.what()).find("__metadata__.layers"), std::string::npos) << e.what();
    }
  }
  // Not an artifact at all: the model's own weights file.
  EXPECT_THROW((void)read_kcache_artifact(dir / "model.safetensors", f), FormatError);
}

}  // namespace
}  // namespace vkq::test
