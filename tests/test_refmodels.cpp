// Tiny random models of every supported architecture and RoPE type against
// PyTorch (tests/data/refmodels, written by tools/refmodels/make_refmodels.py):
// the logits of every position, NMSE <= 1e-4 for the CPU reference and the
// Vulkan forward with fp32 weights, <= 1e-3 with fp16 weights. And what the
// loaders must refuse by name: dynamic and unknown RoPE types, a context past
// the sliding window.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "format_error.hpp"
#include "model_data.hpp"
#include "vk_test.hpp"
#include "vkquant/model/cpu_forward.hpp"
#include "vkquant/model/model_file.hpp"
#include "vkquant/model/vk_forward.hpp"

namespace vkq::test {
namespace {

using kernels::WeightType;

constexpr double kMaxNmseF32 = 1e-4, kMaxNmseF16 = 1e-3;

// A case: tests/data/refmodels/<dir>, opened as the directory (safetensors)
// or as <dir>/<gguf>; both share <dir>/logits.json.
struct RefCase {
  const char* dir;
  const char* gguf = nullptr;
};

const RefCase kCases[] = {
    {"llama-plain"},
    {"llama-linear"},
    {"llama-linear", "llama-linear.gguf"},
    {"llama3-rope"},
    {"llama3-rope", "llama3-rope.gguf"},
    {"yarn"},
    {"yarn", "yarn.gguf"},
    {"yarn-attn-factor"},
    {"yarn-mscale"},
    {"longrope-phi3"},
    {"longrope-phi3", "longrope-phi3.gguf"},
    {"longrope-phi3-long"},
    {"mistral"},
    {"qwen2"},
    {"qwen3"},
    {"qwen3", "qwen3.gguf"},
    {"phi3"},
    {"phi3", "phi3.gguf"},
};

std::filesystem::path data_dir(const std::string& dir) { return source_path("tests/data/refmodels/" + dir); }
std::filesystem::path model_path(const RefCase& c) {
  return c.gguf ? data_dir(c.dir) / c.gguf : data_dir(c.dir);
}

std::string case_id(const RefCase& c) {
  std::string n = c.gguf ? std::string(c.dir) + "_gguf" : c.dir;
  for (char& ch : n)
    if (ch == '-') ch = '_';
  return n;
}

// logits.json: the ids fed from position 0, the context in use, every
// position's logits, and how far the logits move when one feature is dropped.
struct Reference {
  std::vector<std::int32_t> ids;
  std::uint32_t ctx = 0, vocab = 0;
  std::vector<float> logits;  // (ids, vocab)
  std::map<std::string, double> contrasts;
};

Reference load_reference(const std::string& dir) {
  std::ifstream in(data_dir(dir) / "logits.json");
  if (!in) throw Error(dir + "/logits.json: cannot be read");
  const auto j = nlohmann::json::parse(in);
  Reference r;
  r.ids = j.at("ids").get<std::vector<std::int32_t>>();
  r.ctx = j.at("ctx").get<std::uint32_t>();
  r.vocab = j.at("vocab_size").get<std::uint32_t>();
  for (const auto& row : j.at("logits"))
    for (float v : row.get<std::vector<float>>()) r.logits.push_back(v);
  r.contrasts = j.at("nmse_of_contrasts").get<std::map<std::string, double>>();
  return r;
}

double nmse_value(std::span<const float> ref, std::span<const float> got) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < ref.size() && i < got.size(); ++i) {
    num += (double(got[i]) - ref[i]) * (double(got[i]) - ref[i]);
    den += double(ref[i]) * ref[i];
  }
  return num / den;
}

// Checks the logits and records the measured NMSE (gtest XML/JSON output).
void expect_logits(const Reference& ref, const std::vector<float>& got, double max_nmse) {
  char measured[32];
  std::snprintf(measured, sizeof measured, "%.3g", nmse_value(ref.logits, got));
  ::testing::Test::RecordProperty("nmse", measured);
  EXPECT_TRUE(nmse(ref.logits, got, max_nmse));
}

// ---- against PyTorch -------------------------------------------------------------

class RefModelCpu : public ::testing::TestWithParam<RefCase> {};

TEST_P(RefModelCpu, MatchesPyTorch) {
  const auto& c = GetParam();
  const auto ref = load_reference(c.dir);
  ASSERT_EQ(ref.logits.size(), ref.ids.size() * ref.vocab);
  // The data can tell: dropping the case's feature moves the logits by far
  // more than the tolerances.
  for (const auto& [what, e] : ref.contrasts) EXPECT_GT(e, 10 * kMaxNmseF16) << "without " << what;
  const auto file = ModelFile::open(model_path(c));
  ASSERT_EQ(file.config().vocab, ref.vocab);
  const auto w = load_host_weights(file);
  CpuForward fwd(w, ref.ctx);
  expect_logits(ref, fwd.forward(ref.ids), kMaxNmseF32);
}

INSTANTIATE_TEST_SUITE_P(RefModels, RefModelCpu, ::testing::ValuesIn(kCases),
                         [](const auto& param_info) { return case_id(param_info.param); });

class RefModelVk : public VulkanTest, public ::testing::WithParamInterface<std::tuple<RefCase, WeightType>> {};

TEST_P(RefModelVk, MatchesPyTorch) {
  const auto& [c, weights] = GetParam();
  const auto ref = load_reference(c.dir);
  const auto file = ModelFile::open(model_path(c));
  VkForward fwd(dev(), file, VkForwardOptions{.weights = weights, .ctx = ref.ctx});
  expect_logits(ref, fwd.forward(ref.ids, /*all_logits=*/true), weights == WeightType::f32 ? kMaxNmseF32 : kMaxNmseF16);
}

INSTANTIATE_TEST_SUITE_P(RefModels, RefModelVk,
                         ::testing::Combine(::testing::ValuesIn(kCases),
                                            ::testing::Values(WeightType::f32, WeightType::f16)),
                         [](const auto& param_info) {
                           return case_id(std::get<0>(param_info.param)) +
                                  (std::get<1>(param_info.param) == WeightType::f32 ? "_vk_f32" : "_vk_f16");
                         });

// ---- refused by name --------------------------------------------------------------

// A model directory with refmodels/<config_dir>/config.json and llama-plain's weights.
std::filesystem::path with_plain_weights(const std::string& config_dir) {
  const auto dir = temp_dir(config_dir);
  std::filesystem::copy_file(data_dir(config_dir) / "config.json", dir / "config.json");
  std::filesystem::copy_file(data_dir("llama-plain") / "model.safetensors", dir / "model.safetensors");
  return dir;
}

// `run()` throws a vkq::Error whose message holds every fragment.
template <class Run>
void expect_error(Run&& run, const std::vector<std::string>& fragments) {
  try {
    run();
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    for (const auto& f : fragments) EXPECT_NE(std::string(e.what()).find(f), std::string::npos) << "wanted \"" << f << "\" in: " << e.what();
  }
}

struct Refusal {
  const char* dir;
  const char* key;
  const char* value;
};

class RefModelRefusal : public ::testing::TestWithParam<Refusal> {};

TEST_P(RefModelRefusal, OpenNamesKeyAndValue) {
  const auto& p = GetParam();
  const auto dir = with_plain_weights(p.dir);
  expect_format_error([&] { (void)ModelFile::open(dir); }, dir / "config.json", p.value, p.key);
}

INSTANTIATE_TEST_SUITE_P(RefModels, RefModelRefusal,
                         ::testing::Values(Refusal{"refuse-rope-dynamic", "rope_scaling.rope_type", "'dynamic'"},
                                           Refusal{"refuse-rope-unknown", "rope_scaling.rope_type", "'nonesuch'"}),
                         [](const auto& param_info) {
                           std::string n = param_info.param.dir;
                           for (char& ch : n)
                             if (ch == '-') ch = '_';
                           return n;
                         });

// refuse-sliding-window: llama-plain as MistralForCausalLM with sliding_window
// 16. Up to 16 positions nothing falls out of the window, so the logits are
// llama-plain's first 16 rows; a context of 17 is refused naming the key.
struct WindowFixture {
  std::filesystem::path dir = with_plain_weights("refuse-sliding-window");
  ModelFile file = ModelFile::open(dir);
  Reference plain = load_reference("llama-plain");
  std::vector<std::int32_t> ids16{plain.ids.begin(), plain.ids.begin() + 16};
  std::vector<std::int32_t> ids17{plain.ids.begin(), plain.ids.begin() + 17};
  std::vector<float> rows16{plain.logits.begin(), plain.logits.begin() + 16 * plain.vocab};
};

TEST(RefModels, SlidingWindowCpu) {
  WindowFixture f;
  const auto w = load_host_weights(f.file);
  CpuForward fits(w, 16);
  EXPECT_TRUE(nmse(f.rows16, fits.forward(f.ids16), kMaxNmseF32));
  expect_error([&] { CpuForward(w, 17).forward(f.ids17); }, {"sliding_window", "16"});
  expect_error([&] { CpuForward(w).forward(f.ids17); }, {});  // the model's own context stops at the window
}

// The data cases' windows: Mistral's and Phi-3's (config.json and GGUF
// phi3.attention.sliding_window, 64) refuse a context of 65; Qwen2's window
// (32) is off (use_sliding_window false), so a context of 128 runs, as in HF.
struct WindowCase {
  RefCase c;
  std::uint32_t ctx;
  bool refused;
};

class RefModelWindow : public ::testing::TestWithParam<WindowCase> {};

TEST_P(RefModelWindow, Cpu) {
  const auto& p = GetParam();
  const auto ref = load_reference(p.c.dir);
  const auto w = load_host_weights(ModelFile::open(model_path(p.c)));
  if (p.refused) {
    expect_error([&] { CpuForward(w, p.ctx).forward(ref.ids); }, {"sliding_window", "64"});
  } else {
    CpuForward fwd(w, p.ctx);
    EXPECT_TRUE(nmse(ref.logits, fwd.forward(ref.ids), kMaxNmseF32));
  }
}

INSTANTIATE_TEST_SUITE_P(RefModels, RefModelWindow,
                         ::testing::Values(WindowCase{{"mistral"}, 65, true}, WindowCase{{"phi3"}, 65, true},
                                           WindowCase{{"phi3", "phi3.gguf"}, 65, true},
                                           WindowCase{{"qwen2"}, 128, false}),
                         [](const auto& param_info) {
                           return case_id(param_info.param.c) + "_ctx" + std::to_string(param_info.param.ctx);
                         });

class RefModelsVk : public VulkanTest {};

TEST_F(RefModelsVk, SlidingWindow) {
  WindowFixture f;
  VkForward fits(dev(), f.file, VkForwardOptions{.weights = WeightType::f32, .ctx = 16});
  EXPECT_TRUE(nmse(f.rows16, fits.forward(f.ids16, true), kMaxNmseF32));
  expect_error([&] { VkForward(dev(), f.file, VkForwardOptions{.weights = WeightType::f32, .ctx = 17}).forward(f.ids17); },
               {"sliding_window", "16"});
}

}  // namespace
}  // namespace vkq::test

namespace vkq::test {
namespace {

// LongRoPE at the model's default context: the context in use stops at the
// original context (64 here, of 256), so the short factors apply, as in
// Hugging Face for every sequence that fits it.
TEST(RefModels, LongRopeDefaultContextUsesShortFactors) {
  const auto ref = load_reference("longrope-phi3");
  const auto file = ModelFile::open(data_dir("longrope-phi3"));
  EXPECT_EQ(file.config().context_in_use(0), 64u);
  const auto w = load_host_weights(file);
  CpuForward fwd(w);
  expect_logits(ref, fwd.forward(ref.ids), kMaxNmseF32);
}

}  // namespace
}  // namespace vkq::test
