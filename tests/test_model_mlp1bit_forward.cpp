// --mlp 1bit in the Vulkan forward pass: every dense MLP matrix W is replaced
// by the matrix its 1-bit code computes, Ŵ = decode(sign rows of W Rᵀ) · R,
// reconstructed column by column with the codec's CPU reference; the CPU
// forward on those weights must match the Vulkan forward with 1-bit MLPs.
#include <gtest/gtest.h>

#include "model_data.hpp"
#include "vk_test.hpp"
#include "vkquant/model/cpu_forward.hpp"
#include "vkquant/model/mlp1bit.hpp"
#include "vkquant/model/vk_forward.hpp"

namespace vkq::test {
namespace {

using kernels::WeightType;

TinyModel mlp_model() { return TinyModel{.vocab = 300, .dim = 64, .layers = 2, .heads = 4, .kv_heads = 2, .head_dim = 16, .ffn = 48, .ctx = 64}; }

// Ŵ (out, in): column j is what the code gives for the unit input e_j.
std::vector<float> decoded(const std::vector<float>& w, std::uint32_t out, std::uint32_t in, const MlpMatrixCalib* cal,
                           MlpRotation r) {
  const auto code = mlp_encode(w, out, in, cal, r);
  std::vector<float> eye(std::size_t(in) * in, 0.0f), y(std::size_t(in) * out);
  for (std::uint32_t j = 0; j < in; ++j) eye[std::size_t(j) * in + j] = 1.0f;
  mlp_reference(code, cal, r, eye, y, in, in, false);
  std::vector<float> wq(std::size_t(out) * in);
  for (std::uint32_t j = 0; j < in; ++j)
    for (std::uint32_t i = 0; i < out; ++i) wq[std::size_t(i) * in + j] = y[std::size_t(j) * out + i];
  return wq;
}

class ModelMlp1bit : public VulkanTest, public ::testing::WithParamInterface<MlpRotation> {};

TEST_P(ModelMlp1bit, VulkanMatchesCpuOnDecodedWeights) {
  const MlpRotation rot = GetParam();
  const auto dir = temp_dir("m");
  write_tiny_model(dir, mlp_model());
  const auto f = ModelFile::open(dir);
  const ModelConfig& c = f.config();
  KCalibration cal;
  cal.model_sha256 = model_sha256(f);  // VkForward checks the binding while loading
  cal.mlp = calibrate_mlp(f, MlpCalibrateOptions{.seed = 3, .block = 16, .iters = 5});
  ASSERT_EQ(cal.mlp->layers.size(), c.layers);

  auto host = load_host_weights(f);
  double changed = 0;
  for (std::uint32_t l = 0; l < c.layers; ++l) {
    HostLayer& L = host.layers[l];
    // none and srht (seed 0) use no calibration.
    const bool learned = rot == MlpRotation::dense || rot == MlpRotation::structured;
    auto of = [&](MlpMatrix which) { return learned ? &cal.mlp->layers[l][which] : nullptr; };
    const auto g = decoded(L.w_gate, c.ffn, c.dim, of(MlpMatrix::gate), rot);
    changed += std::abs(g[0] - L.w_gate[0]);
    L.w_gate = g;
    L.w_up = decoded(L.w_up, c.ffn, c.dim, of(MlpMatrix::up), rot);
    L.w_down = decoded(L.w_down, c.dim, c.ffn, of(MlpMatrix::down), rot);
  }
  EXPECT_GT(changed, 0.0);  // the 1-bit weights are not the originals
  CpuForward cpu(host);
  VkForward gpu(dev(), f, VkForwardOptions{.weights = WeightType::f32, .ctx = 0, .max_batch = 16, .mlp = {true, rot}, .calibration = &cal});
  std::vector<std::int32_t> ids(40);
  for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = std::int32_t((i * 37 + 5) % 300);
  // fp32 GEMVs in another order than the CPU's fp64 sums, through 2 layers.
  EXPECT_TRUE(nmse(cpu.forward(ids), gpu.forward(ids, true), 1e-5));
  // Stored bits per MLP weight: codes and per-row scales, plus the rotation.
  if (rot == MlpRotation::none || rot == MlpRotation::srht) {
    EXPECT_LT(gpu.mlp_bits_per_weight(), 8.0);
  }
  EXPECT_GT(gpu.mlp_bits_per_weight(), 1.0);
}

INSTANTIATE_TEST_SUITE_P(Rotations, ModelMlp1bit,
                         ::testing::Values(MlpRotation::none, MlpRotation::srht, MlpRotation::dense, MlpRotation::structured),
                         [](const auto& p) { return std::string(mlp_rotation_name(p.param)); });

TEST_F(VulkanTest, ModelMlp1bitRefusals) {
  const auto dir = temp_dir("m");
  write_tiny_model(dir, mlp_model());
  const auto f = ModelFile::open(dir);
  // Learned rotations need a calibration that has them.
  EXPECT_THROW(VkForward(dev(), f, VkForwardOptions{.mlp = {true, MlpRotation::dense}}), Error);
  KCalibration keys_only;
  EXPECT_THROW(VkForward(dev(), f, VkForwardOptions{.mlp = {true, MlpRotation::structured}, .calibration = &keys_only}), Error);
  // MoE experts stay fp16.
  const auto moe = temp_dir("moe");
  auto m = mlp_model();
  m.architecture = "OlmoeForCausalLM";
  m.experts = 4;
  m.experts_used = 2;
  write_tiny_model(moe, m);
  try {
    VkForward(dev(), ModelFile::open(moe), VkForwardOptions{.mlp = {true, MlpRotation::srht}});
    FAIL() << "--mlp 1bit accepted for an MoE model";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("MoE"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace vkq::test
