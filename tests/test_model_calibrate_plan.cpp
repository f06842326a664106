// What `vkquant calibrate` learns besides the keys (model/calibrate_plan.hpp):
// parameter counts from the config (the bundled models, a Qwen2.5-0.5B-shaped
// config against the count `vkquant quantize` reports for that file), and
// `--mlp auto` learning the MLP rotations at 100 M parameters and not one
// more, with the reason the user is told.
#include <gtest/gtest.h>

#include "model_data.hpp"
#include "vkquant/model/calibrate_plan.hpp"
#include "vkquant/model/model_file.hpp"

namespace vkq::test {
namespace {

// Qwen2.5-0.5B's config.json (vkq-synth's copy): tied embeddings, q/k/v bias.
ModelConfig qwen05b() {
  ModelConfig c;
  c.vocab = 151936, c.dim = 896, c.layers = 24, c.heads = 14, c.kv_heads = 2, c.head_dim = 64, c.ffn = 4864;
  c.tied_embeddings = true, c.qkv_bias = true;
  return c;
}

// No layers, tied: vocab x dim embedding + dim final norm parameters.
ModelConfig embedding_only(std::uint32_t vocab, std::uint32_t dim) {
  ModelConfig c;
  c.vocab = vocab, c.dim = dim, c.tied_embeddings = true;
  return c;
}

TEST(CalibratePlan, ParametersOfTheBundledModels) {
  // `vkquant info models/kjv-llama.gguf`: 3083520 parameters (every tensor of the file).
  EXPECT_EQ(model_parameters(ModelFile::open(source_path("models/kjv-llama")).config()), 3083520u);
  EXPECT_EQ(model_parameters(ModelFile::open(source_path("models/kjv-llama.gguf")).config()), 3083520u);
}

TEST(CalibratePlan, ParametersOfQwen05bShape) {
  // `vkquant quantize` of the vkq-synth file: "8.50 bits per weight (494032768 weights)".
  EXPECT_EQ(model_parameters(qwen05b()), 494032768u);
  EXPECT_EQ(parameters_label(494032768u), "494 M");
  EXPECT_EQ(parameters_label(3083520u), "3.1 M");
  EXPECT_EQ(parameters_label(8030261248u), "8.0 B");
}

TEST(CalibratePlan, AutoLearnsAtTheLimitAndNotPast) {
  const ModelConfig at = embedding_only(99999, 1000), past = embedding_only(100000, 1000);
  ASSERT_EQ(model_parameters(at), kMlpAutoMaxParameters);
  ASSERT_EQ(model_parameters(past), kMlpAutoMaxParameters + 1000);
  EXPECT_TRUE(decide_mlp(MlpWhen::automatic, at).learn);
  EXPECT_FALSE(decide_mlp(MlpWhen::automatic, past).learn);
}

TEST(CalibratePlan, ReasonsSayWhichAndWhy) {
  const ModelConfig small = ModelFile::open(source_path("models/kjv-llama")).config();
  const MlpDecision s = decide_mlp(MlpWhen::automatic, small);
  EXPECT_TRUE(s.learn);
  EXPECT_EQ(s.reason, "learned (model has 3.1 M parameters <= 100 M; --mlp off to skip them)");
  const MlpDecision big = decide_mlp(MlpWhen::automatic, qwen05b());
  EXPECT_FALSE(big.learn);
  EXPECT_EQ(big.reason, "skipped (model has 494 M parameters > 100 M; --mlp on to learn them)");
  // Asked outright, the size does not matter.
  EXPECT_TRUE(decide_mlp(MlpWhen::on, qwen05b()).learn);
  EXPECT_EQ(decide_mlp(MlpWhen::on, qwen05b()).reason, "learned (--mlp on)");
  EXPECT_FALSE(decide_mlp(MlpWhen::off, small).learn);
  EXPECT_EQ(decide_mlp(MlpWhen::off, small).reason, "skipped (--mlp off)");
}

TEST(CalibratePlan, MoeHasNoneToLearn) {
  const ModelConfig moe = ModelFile::open(source_path("models/kjv-olmoe")).config();
  ASSERT_TRUE(moe.moe());
  const MlpDecision d = decide_mlp(MlpWhen::automatic, moe);
  EXPECT_TRUE(d.learn);  // calibrate_mlp returns no layers for it, as before
  EXPECT_EQ(d.reason, "none to learn (MoE experts stay fp16)");
  EXPECT_FALSE(decide_mlp(MlpWhen::off, moe).learn);
}

}  // namespace
}  // namespace vkq::test
