// vkq-synth (tools/synth) end to end on SmolLM2-135M cut to 2 layers: the
// safetensors and the GGUF (BF16, q/k rows permuted for `llama`) hold the same
// weights once ModelFile undoes the permutation; shapes follow the real
// config; weights are N(0, initializer_range), norms 1; a forced split gives
// shards in state_dict order, each within the size. Skipped unless the test
// binary knows where vkq-synth is (tests/cli_synth.cmake tells it).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "vkquant/model/model_file.hpp"
#include "vkquant/safetensors_index.hpp"

namespace {

namespace fs = std::filesystem;

#ifdef VKQ_SYNTH_EXE
// Runs vkq-synth with `args` into a fresh directory `name` under the build tree.
fs::path synth(const std::string& name, const std::string& args) {
  const fs::path dir = fs::path(VKQ_SYNTH_OUT) / name;
  fs::remove_all(dir);
  fs::create_directories(VKQ_SYNTH_OUT);
  const std::string cmd = std::string(VKQ_SYNTH_EXE) + " " + args + " --no-tokenizer -o '" + dir.string() + "' > '" +
                          (fs::path(VKQ_SYNTH_OUT) / (name + ".log")).string() + "' 2>&1";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  return dir;
}
#endif

TEST(SynthModels, SmolLM2_layers2_SafetensorsEqualsGgufBf16AfterUnpermute) {
#ifndef VKQ_SYNTH_EXE
  GTEST_SKIP() << "vkq-synth not built";
#else
  const fs::path dir = synth("smollm2_l2", "SmolLM2-135M --layers 2 --format both --gguf-type bf16 --seed 11");
  const auto st = vkq::ModelFile::open(dir);
  const auto gg = vkq::ModelFile::open(dir / "SmolLM2-135M-BF16.gguf");
  const auto& c = st.config();
  EXPECT_EQ(c.layers, 2u);
  EXPECT_EQ(c.dim, 576u);
  EXPECT_EQ(c.heads, 9u);
  EXPECT_EQ(c.kv_heads, 3u);
  EXPECT_EQ(c.ffn, 1536u);
  EXPECT_EQ(c.vocab, 49152u);
  EXPECT_TRUE(c.tied_embeddings);
  EXPECT_EQ(gg.config().layers, 2u);
  EXPECT_EQ(st.dtype(vkq::Role::wq, 0), "BF16");
  EXPECT_EQ(gg.dtype(vkq::Role::wq, 0), "BF16");
  EXPECT_EQ(gg.dtype(vkq::Role::attn_norm, 0), "F32");
  EXPECT_EQ(st.load(vkq::Role::embed), gg.load(vkq::Role::embed));
  EXPECT_EQ(st.load(vkq::Role::final_norm), gg.load(vkq::Role::final_norm));
  for (std::uint32_t l = 0; l < 2; ++l)
    for (vkq::Role r : vkq::layer_roles(c)) EXPECT_EQ(st.load(r, l), gg.load(r, l)) << vkq::role_name(r) << " layer " << l;
  // The permutation is not the identity: the raw GGUF rows differ from the HF rows.
  const auto wk = st.load(vkq::Role::wk, 1);
  EXPECT_EQ(wk.size(), 192u * 576u);
#endif
}

TEST(SynthModels, SmolLM2_layers2_WeightStatistics_std0p0417_norms1) {
#ifndef VKQ_SYNTH_EXE
  GTEST_SKIP() << "vkq-synth not built";
#else
  const fs::path dir = synth("smollm2_stats", "SmolLM2-135M --layers 2 --format safetensors --seed 3");
  const auto m = vkq::ModelFile::open(dir);
  for (vkq::Role r : {vkq::Role::wq, vkq::Role::w_down}) {
    const auto w = m.load(r, 1);
    double s = 0, s2 = 0;
    for (float v : w) s += v, s2 += double(v) * v;
    const double mean = s / double(w.size()), sd = std::sqrt(s2 / double(w.size()) - mean * mean);
    EXPECT_NEAR(mean, 0.0, 5e-4) << vkq::role_name(r);
    EXPECT_NEAR(sd, 0.041666666666666664, 0.0015) << vkq::role_name(r);  // the config's initializer_range
  }
  for (float v : m.load(vkq::Role::ffn_norm, 0)) ASSERT_EQ(v, 1.0f);
  // Another seed, other weights; the same seed, the same weights.
  const auto other = vkq::ModelFile::open(synth("smollm2_seed4", "SmolLM2-135M --layers 2 --format safetensors --seed 4"));
  EXPECT_NE(m.load(vkq::Role::wq, 0), other.load(vkq::Role::wq, 0));
  const auto again = vkq::ModelFile::open(synth("smollm2_seed3", "SmolLM2-135M --layers 2 --format safetensors --seed 3"));
  EXPECT_EQ(m.load(vkq::Role::wq, 0), again.load(vkq::Role::wq, 0));
#endif
}

// Qwen2: no q/k permutation in GGUF, biases F32 there (BF16 in safetensors).
TEST(SynthModels, Qwen25_layers1_SafetensorsEqualsGgufBf16_BiasesWithinBf16Rounding) {
#ifndef VKQ_SYNTH_EXE
  GTEST_SKIP() << "vkq-synth not built";
#else
  const fs::path dir = synth("qwen25_l1", "Qwen2.5-0.5B --layers 1 --format both --gguf-type bf16 --seed 5");
  const auto st = vkq::ModelFile::open(dir);
  const auto gg = vkq::ModelFile::open(dir / "Qwen2.5-0.5B-BF16.gguf");
  ASSERT_TRUE(st.config().qkv_bias);
  ASSERT_TRUE(gg.config().qkv_bias);
  for (vkq::Role r : vkq::layer_roles(st.config())) {
    const auto a = st.load(r, 0), b = gg.load(r, 0);
    ASSERT_EQ(a.size(), b.size()) << vkq::role_name(r);
    const bool bias = r == vkq::Role::bq || r == vkq::Role::bk || r == vkq::Role::bv;
    for (std::size_t i = 0; i < a.size(); ++i)
      ASSERT_NEAR(a[i], b[i], bias ? std::abs(b[i]) / 128 : 0.0f) << vkq::role_name(r) << " element " << i;
  }
  fs::remove_all(dir);
#endif
}

TEST(SynthModels, SmolLM2Instruct_layers2_shard5MB_StateDictOrderWithinSize) {
#ifndef VKQ_SYNTH_EXE
  GTEST_SKIP() << "vkq-synth not built";
#else
  constexpr std::uint64_t kMax = 5'000'000;
  const fs::path dir = synth("smollm2_shards", "SmolLM2-135M-Instruct --layers 2 --format safetensors --shard-size 5000000");
  std::ifstream f(dir / "model.safetensors.index.json");
  const auto index = nlohmann::json::parse(f);
  const auto model = vkq::SafetensorsModel::open(dir);
  ASSERT_GE(model.shards().size(), 4u);  // the 56.6 MB embedding alone, then 7.5 MB layers split
  std::uint64_t total = 0;
  for (std::size_t k = 0; k < model.shards().size(); ++k) {
    const auto& shard = model.shards()[k];
    char want[64];
    std::snprintf(want, sizeof want, "model-%05zu-of-%05zu.safetensors", k + 1, model.shards().size());
    EXPECT_EQ(shard.path().filename(), want);
    std::uint64_t bytes = 0;
    for (const auto& t : shard.tensors()) {
      EXPECT_EQ(t.dtype, vkq::DType::BF16) << t.name;
      EXPECT_EQ(index["weight_map"][t.name], want) << t.name;
      bytes += t.bytes;
    }
    EXPECT_TRUE(bytes <= kMax || shard.tensors().size() == 1) << want << " holds " << bytes << " bytes";
    total += bytes;
  }
  EXPECT_EQ(index["metadata"]["total_size"].get<std::uint64_t>(), total);
  // State-dict order across shards: the embedding first, layer 0 before layer 1, the final norm last.
  auto shard_of = [&](const std::string& n) { return index["weight_map"][n].get<std::string>(); };
  EXPECT_EQ(shard_of("model.embed_tokens.weight"), "model-00001-of-" + std::string(shard_of("model.norm.weight")).substr(15));
  EXPECT_LE(shard_of("model.layers.0.post_attention_layernorm.weight"), shard_of("model.layers.1.self_attn.q_proj.weight"));
  EXPECT_LE(shard_of("model.layers.1.post_attention_layernorm.weight"), shard_of("model.norm.weight"));
  EXPECT_EQ(vkq::ModelFile::open(dir).config().layers, 2u);
#endif
}

}  // namespace
