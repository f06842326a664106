// Model loading, the CPU reference forward, sampling and the perplexity plan.
// The CPU forward is checked against PyTorch's logits for the bundled models
// in every exported format (safetensors, GGUF F32, GGUF F16).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>

#include "model_data.hpp"
#include "vk_test.hpp"
#include "vkquant/mapped_file.hpp"
#include "vkquant/model/cpu_forward.hpp"
#include "vkquant/model/model_file.hpp"
#include "vkquant/model/sampling.hpp"

namespace vkq::test {
namespace {

// ---- the bundled models against PyTorch --------------------------------------

struct BundledCase {
  const char* ref;   // tests/data/<ref>.logits.json
  const char* file;  // under models/
  double max_nmse;
  bool greedy;  // compare the greedy continuation (F32 weights only)
};

class ModelCpu : public ::testing::TestWithParam<BundledCase> {};

TEST_P(ModelCpu, MatchesPyTorch) {
  const auto& p = GetParam();
  const auto ref = load_ref_logits(p.ref);
  const auto file = ModelFile::open(source_path(std::string("models/") + p.file));
  const auto w = load_host_weights(file);
  ASSERT_EQ(w.config.vocab, ref.vocab);
  CpuForward fwd(w);
  for (const auto& pr : ref.prompts) {
    SCOPED_TRACE(pr.text);
    fwd.reset();
    const auto logits = fwd.forward(pr.ids);
    const std::span<const float> last(logits.data() + (pr.ids.size() - 1) * ref.vocab, ref.vocab);
    EXPECT_TRUE(nmse(pr.last_logits, last, p.max_nmse));
    if (!pr.all_logits.empty()) {
      EXPECT_TRUE(nmse(pr.all_logits, logits, p.max_nmse));
    }
  }
  if (p.greedy) {  // 32 greedy tokens after the first prompt
    const auto& pr = ref.prompts[0];
    fwd.reset();
    auto logits = fwd.forward(pr.ids);
    std::vector<std::int32_t> got;
    std::span<const float> last(logits.data() + (pr.ids.size() - 1) * ref.vocab, ref.vocab);
    for (std::size_t i = 0; i < pr.greedy_ids.size(); ++i) {
      got.push_back(argmax(last));
      logits = fwd.forward(std::span<const std::int32_t>(&got.back(), 1));
      last = logits;
    }
    EXPECT_EQ(got, pr.greedy_ids);
  }
}

INSTANTIATE_TEST_SUITE_P(Bundled, ModelCpu,
                         ::testing::Values(BundledCase{"kjv-llama", "kjv-llama", 1e-8, true},
                                           BundledCase{"kjv-llama", "kjv-llama.gguf", 1e-8, false},
                                           BundledCase{"kjv-llama", "kjv-llama-f16.gguf", 1e-3, false},
                                           BundledCase{"kjv-olmoe", "kjv-olmoe", 1e-8, true},
                                           BundledCase{"kjv-olmoe", "kjv-olmoe.gguf", 1e-8, false}),
                         [](const auto& param_info) {
                           std::string n = param_info.param.file;
                           for (char& c : n)
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           return n;
                         });

TEST(ModelFile, GgufAndSafetensorsAgree) {
  // GGUF llama stores q/k rows permuted for adjacent-pair RoPE; the loader
  // must hand out the Hugging Face order.
  const auto st = ModelFile::open(source_path("models/kjv-llama"));
  const auto gg = ModelFile::open(source_path("models/kjv-llama.gguf"));
  EXPECT_EQ(st.config().heads, gg.config().heads);
  EXPECT_EQ(st.config().kv_heads, gg.config().kv_heads);
  EXPECT_EQ(st.config().ffn, gg.config().ffn);
  for (Role r : {Role::wq, Role::wk, Role::wv, Role::w_down})
    EXPECT_EQ(st.load(r, 2), gg.load(r, 2)) << role_name(r);
  EXPECT_EQ(st.load(Role::embed), gg.load(Role::embed));
  EXPECT_EQ(gg.dtype(Role::wq, 0), "F32");
  EXPECT_EQ(ModelFile::open(source_path("models/kjv-llama-f16.gguf")).dtype(Role::wq, 0), "F16");
}

TEST(ModelFile, BundledTokenizerIsBytes) {
  for (const char* f : {"models/kjv-llama", "models/kjv-olmoe.gguf"}) {
    const auto tok = ModelFile::open(source_path(f)).tokenizer();
    EXPECT_EQ(tok->kind(), "bytes") << f;
    EXPECT_EQ(tok->bos(), 256);
    EXPECT_EQ(tok->eos(), 257);
    const std::vector<std::int32_t> want{73, 110, 32, 116};
    EXPECT_EQ(tok->encode("In t"), want);
  }
}

// ---- config.json and tensors contradicting it ----------------------------------

// Opens a tiny model after `mutate`; returns the error message ("" if it opened).
std::string open_error(const TinyModel& m,
                       const std::function<void(nlohmann::json&, std::map<std::string, std::vector<float>>&)>& mutate) {
  const auto dir = temp_dir("m");
  write_tiny_model(dir, m, mutate);
  try {
    (void)ModelFile::open(dir).load(Role::wq, 0);
    load_host_weights(ModelFile::open(dir));
  } catch (const FormatError& e) {
    return e.what();
  }
  return "";
}

TEST(ModelFile, TinyModelsOpen) {
  for (const char* arch : {"LlamaForCausalLM", "Qwen2ForCausalLM", "MistralForCausalLM"})
    EXPECT_EQ(open_error(TinyModel{.architecture = arch}, {}), "") << arch;
  EXPECT_EQ(open_error(TinyModel{.architecture = "OlmoeForCausalLM", .experts = 4, .experts_used = 2}, {}), "");
  EXPECT_EQ(open_error(TinyModel{.tied = true}, {}), "");
}

struct BadConfig {
  const char* name;
  std::function<void(nlohmann::json&, std::map<std::string, std::vector<float>>&)> mutate;
  const char* expect;  // substring of the error
};

class ModelFileBad : public ::testing::TestWithParam<BadConfig> {};

TEST_P(ModelFileBad, Refused) {
  const std::string err = open_error(TinyModel{}, GetParam().mutate);
  EXPECT_NE(err.find(GetParam().expect), std::string::npos) << "error was: " << err;
}

using Json = nlohmann::json;
using Tensors = std::map<std::string, std::vector<float>>;
INSTANTIATE_TEST_SUITE_P(
    Cases, ModelFileBad,
    ::testing::Values(
        BadConfig{"kv_heads_not_dividing", [](Json& j, Tensors&) { j["num_key_value_heads"] = 3; },
                  "num_key_value_heads: 4 query heads are not a multiple of 3"},
        BadConfig{"heads_not_dividing_hidden", [](Json& j, Tensors&) { j.erase("head_dim"); j["num_attention_heads"] = 5; j["num_key_value_heads"] = 5; },
                  "num_attention_heads: 5 heads do not divide hidden_size 48"},
        BadConfig{"absurd_layers", [](Json& j, Tensors&) { j["num_hidden_layers"] = 100000; }, "num_hidden_layers: 100000 is outside"},
        BadConfig{"negative_size", [](Json& j, Tensors&) { j["hidden_size"] = -48; }, "hidden_size: expected a non-negative integer"},
        BadConfig{"missing_key", [](Json& j, Tensors&) { j.erase("intermediate_size"); }, "intermediate_size: missing"},
        BadConfig{"unknown_arch", [](Json& j, Tensors&) { j["architectures"] = {"GPT2LMHeadModel"}; }, "'GPT2LMHeadModel' is not supported"},
        BadConfig{"rope_scaling", [](Json& j, Tensors&) { j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}}; }, "rope_scaling: 'llama3' is not supported"},
        BadConfig{"not_object", [](Json& j, Tensors&) { j = Json::array({1, 2}); }, "config.json is not a JSON object"},
        BadConfig{"bos_out_of_range", [](Json& j, Tensors&) { j["bos_token_id"] = 300; }, "bos_token_id: 300 is not a token id"},
        BadConfig{"missing_tensor", [](Json&, Tensors& ts) { ts.erase("model.layers.1.self_attn.v_proj.weight"); },
                  "tensor 'model.layers.1.self_attn.v_proj.weight' (wv): missing"},
        BadConfig{"wrong_shape", [](Json&, Tensors& ts) { ts["model.layers.0.mlp.up_proj.weight"].resize(40 * 47); },
                  "tensor 'model.layers.0.mlp.up_proj.weight': shape [1880] does not match the config's [40, 48]"},
        BadConfig{"nan_weights", [](Json&, Tensors& ts) {
                    auto& w = ts["model.layers.1.self_attn.o_proj.weight"];
                    w[3] = NAN; w[7] = INFINITY; },
                  "tensor 'model.layers.1.self_attn.o_proj.weight': 2 of 2304 values are NaN or Inf"},
        BadConfig{"missing_lm_head", [](Json&, Tensors& ts) { ts.erase("lm_head.weight"); }, "tensor 'lm_head.weight' (lm_head): missing"}),
    [](const auto& param_info) { return std::string(param_info.param.name); });

TEST(ModelFile, MissingConfigNamed) {
  const auto dir = temp_dir("noconfig");
  write_tiny_model(dir, TinyModel{});
  std::filesystem::remove(dir / "config.json");
  try {
    (void)ModelFile::open(dir);
    FAIL() << "opened without config.json";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("config.json"), std::string::npos) << e.what();
  }
  EXPECT_THROW((void)ModelFile::open(dir / "nonexistent.gguf"), FormatError);
}

// ---- sampling -------------------------------------------------------------------

TEST(Sampler, GreedyAndLimits) {
  const std::vector<float> logits{0.1f, 2.0f, -1.0f, 2.0f, 1.9f};
  EXPECT_EQ(argmax(logits), 1);  // ties to the lower id
  Sampler greedy(SamplerOptions{.temperature = 0.0f});
  EXPECT_EQ(greedy.sample(logits), 1);
  Sampler top1(SamplerOptions{.temperature = 1.0f, .top_k = 1, .top_p = 1.0f, .seed = 5});
  Sampler tiny_p(SamplerOptions{.temperature = 1.0f, .top_k = 0, .top_p = 1e-6f, .seed = 5});
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(top1.sample(logits), 1);
    EXPECT_EQ(tiny_p.sample(logits), 1);
  }
  EXPECT_THROW(Sampler(SamplerOptions{.temperature = -1.0f}), Error);
  EXPECT_THROW(Sampler(SamplerOptions{.top_p = 0.0f}), Error);
  EXPECT_THROW(Sampler(SamplerOptions{.top_p = 1.5f}), Error);
}

TEST(Sampler, SeededAndFollowsTheDistribution) {
  const std::vector<float> logits{std::log(0.5f), std::log(0.3f), std::log(0.15f), std::log(0.05f)};
  const SamplerOptions o{.temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .seed = 42};
  Sampler a(o), b(o);
  std::vector<int> count(4);
  const int n = 20000;
  for (int i = 0; i < n; ++i) {
    const auto x = a.sample(logits);
    EXPECT_EQ(x, b.sample(logits));
    ++count[std::size_t(x)];
  }
  const double want[] = {0.5, 0.3, 0.15, 0.05};
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(count[std::size_t(i)] / double(n), want[i], 0.015) << i;
  // top-k 2 and top-p 0.75 both keep tokens 0 and 1 only, renormalised to 5/8, 3/8.
  for (SamplerOptions cut : {SamplerOptions{.temperature = 1.0f, .top_k = 2, .top_p = 1.0f, .seed = 1},
                             SamplerOptions{.temperature = 1.0f, .top_k = 0, .top_p = 0.75f, .seed = 1}}) {
    Sampler s(cut);
    int zero = 0;
    for (int i = 0; i < n; ++i) {
      const auto x = s.sample(logits);
      ASSERT_LT(x, 2);
      zero += x == 0;
    }
    EXPECT_NEAR(zero / double(n), 5.0 / 8.0, 0.015);
  }
}

TEST(Sampler, BitsOf) {
  const std::vector<float> logits{0.0f, 0.0f, 0.0f, 0.0f};
  EXPECT_NEAR(bits_of(logits, 2), 2.0, 1e-12);
  const std::vector<float> big{1000.0f, 0.0f};
  EXPECT_NEAR(bits_of(big, 0), 0.0, 1e-12);
  EXPECT_TRUE(std::isfinite(bits_of(big, 1)));
}

// ---- the perplexity protocol ----------------------------------------------------

TEST(PplPlan, DocumentsAndChunks) {
  const auto tok = make_byte_tokenizer();
  // Two documents (7 and 3 bytes); separators and trailing newlines unscored.
  const auto plan = ppl_plan("abcdefg\n\n\n\nxyz\n\n", *tok, 4);
  EXPECT_EQ(plan.bytes, 10u);
  EXPECT_EQ(plan.tokens, 10u);
  ASSERT_EQ(plan.chunks.size(), 3u);
  const std::vector<std::int32_t> in0{256, 'a', 'b', 'c'}, t0{'a', 'b', 'c', 'd'};
  const std::vector<std::int32_t> in1{256, 'e', 'f'}, t1{'e', 'f', 'g'};
  const std::vector<std::int32_t> in2{256, 'x', 'y'}, t2{'x', 'y', 'z'};
  EXPECT_EQ(plan.chunks[0].input, in0);
  EXPECT_EQ(plan.chunks[0].targets, t0);
  EXPECT_EQ(plan.chunks[1].input, in1);
  EXPECT_EQ(plan.chunks[1].targets, t1);
  EXPECT_EQ(plan.chunks[2].input, in2);
  EXPECT_EQ(plan.chunks[2].targets, t2);
}

TEST(PplPlan, SampleTextByteCount) {
  const auto tok = make_byte_tokenizer();
  const auto f = MappedFile::open(source_path("tests/data/ppl-sample.txt"));
  const auto plan = ppl_plan(std::string_view(reinterpret_cast<const char*>(f.bytes().data()), f.size()), *tok, 256);
  EXPECT_EQ(plan.bytes, 4111u);  // tools/train/README.md
  EXPECT_EQ(plan.tokens, 4111u);
  for (const auto& c : plan.chunks) EXPECT_LE(c.input.size(), 256u);
}

}  // namespace
}  // namespace vkq::test
