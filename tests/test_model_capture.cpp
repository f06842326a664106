// What `vkquant calibrate`, `gauge` and `ppl` run on the bundled model at
// long contexts in bounded memory: capture_keys feeds exactly the tokens it
// keeps (the last chunk cut short), and score_ppl's lockstep, batch-by-batch
// scoring gives the same sums, bit for bit, as scoring whole chunks' logits.
#include <gtest/gtest.h>

#include <fstream>
#include <memory>
#include <optional>
#include <random>

#include "model_data.hpp"
#include "vk_test.hpp"
#include "vkquant/cpu/kernels.hpp"
#include "vkquant/mapped_file.hpp"
#include "vkquant/model/key_capture.hpp"
#include "vkquant/model/ppl.hpp"
#include "vkquant/model/sampling.hpp"
#include "vkquant/model/vk_forward.hpp"

namespace vkq::test {
namespace {

std::filesystem::path kjv() { return source_path("models/kjv-llama"); }
std::filesystem::path sample_text() { return source_path("tests/data/ppl-sample.txt"); }

PplPlan plan_of(const ModelFile& m, const std::filesystem::path& text, std::uint32_t ctx) {
  const auto f = MappedFile::open(text);
  return ppl_plan(std::string_view(reinterpret_cast<const char*>(f.bytes().data()), f.size()), *m.tokenizer(), ctx);
}

// Keys of whole chunks, straight from the key tap: the reference.
std::vector<std::vector<float>> tapped_keys(Device& dev, const ModelFile& m, const PplPlan& plan, std::size_t chunks) {
  const ModelConfig& c = m.config();
  std::vector<std::vector<float>> post(c.layers);
  VkForwardOptions o;
  o.ctx = 128;
  o.key_tap = [&](std::uint32_t l, const float*, const float* q, std::uint32_t n) {
    post[l].insert(post[l].end(), q, q + std::size_t(n) * c.kv_dim());
  };
  VkForward fwd(dev, m, o);
  for (std::size_t i = 0; i < chunks; ++i) {
    fwd.reset();
    fwd.forward(plan.chunks[i].input);
  }
  return post;
}

// 200 tokens at --ctx 128: the whole first chunk and 72 tokens of the second,
// not the second whole (the tap sees every token fed).
TEST_F(VulkanTest, KeyCapture_kjv_tokens200_ctx128) {
  const auto m = ModelFile::open(kjv());
  const ModelConfig& c = m.config();
  const auto k = capture_keys(dev(), m, sample_text(),
                              KeyCaptureOptions{.tokens = 200, .ctx = 128, .weights = {}, .on = KeyCaptureOptions::On::device});
  EXPECT_EQ(k.tokens, 200u);
  ASSERT_EQ(k.pre.size(), c.layers);
  for (std::uint32_t l = 0; l < c.layers; ++l) {
    EXPECT_EQ(k.pre[l].size(), 200u * c.kv_dim()) << "layer " << l;
    EXPECT_EQ(k.post[l].size(), 200u * c.kv_dim()) << "layer " << l;
  }
  ASSERT_EQ(k.positions.size(), 200u);
  EXPECT_EQ(k.positions[127], 127u);
  EXPECT_EQ(k.positions[128], 0u);
  EXPECT_EQ(k.positions[199], 71u);
  EXPECT_EQ(k.model_sha256, model_sha256(m));
  // The keys of a cut chunk are those of the whole chunk's first tokens.
  const auto plan = plan_of(m, sample_text(), 128);
  ASSERT_GE(plan.chunks.size(), 2u);
  ASSERT_EQ(plan.chunks[0].input.size(), 128u);
  const auto whole = tapped_keys(dev(), m, plan, 2);
  ASSERT_GE(whole[0].size(), k.post[0].size());
  // Equal up to fp32 rounding, not bit for bit: attention splits its keys
  // by how many invocations a pass has (attn_split::plan), so a 72-row pass
  // and a 128-row one may sum a row's keys in a different order. A wrong
  // token or position moves keys by far more than 1e-4 (rounding grows
  // through the layers: up to 5e-5 at layer 3).
  for (std::uint32_t l = 0; l < c.layers; ++l)
    EXPECT_TRUE(close(std::span<const float>(whole[l]).first(k.post[l].size()), k.post[l], 1e-4, 1e-4))
        << "layer " << l;
}

TEST_F(VulkanTest, KeyCapture_kjv_textShorterThanTokens) {
  const auto dir = temp_dir("capture_short");
  std::ofstream(dir / "t.txt") << "In the beginning God created the heaven and the earth.\n";
  const auto m = ModelFile::open(kjv());
  const auto k = capture_keys(dev(), m, dir / "t.txt", KeyCaptureOptions{.tokens = 1000, .ctx = 32, .weights = {}});
  EXPECT_EQ(k.tokens, 54u);  // the line's bytes less its newline (byte tokenizer; fed: BOS and the first 53)
  EXPECT_EQ(k.post[0].size(), 54u * m.config().kv_dim());
  std::ofstream(dir / "empty.txt") << "\n\n";
  try {
    (void)capture_keys(dev(), m, dir / "empty.txt", KeyCaptureOptions{.tokens = 10, .ctx = 32, .weights = {}});
    FAIL() << "an empty text was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("empty.txt: no text to capture keys from"), std::string::npos) << e.what();
  }
}

// score_ppl (the first configuration's logits a batch at a time, the others
// in lockstep) against the direct computation on whole chunks' logits:
// three chunks of 96 tokens in prefill batches of 40 (the last batch short).
TEST_F(VulkanTest, PplScore_kjv_ctx96_batch40_lockstepEqualsWholeChunks) {
  const auto m = ModelFile::open(kjv());
  const std::uint32_t vocab = m.config().vocab;
  auto plan = plan_of(m, sample_text(), 96);
  ASSERT_GE(plan.chunks.size(), 3u);
  plan.chunks.resize(3);
  std::vector<std::unique_ptr<VkForward>> fwd;
  for (const KCacheConfig& k : {KCacheConfig{}, KCacheConfig{true, KRope::post, KRotation::srht, 0, 0, 0}}) {
    VkForwardOptions o;
    o.ctx = 96;
    o.max_batch = 40;
    o.kcache = k;
    fwd.push_back(std::make_unique<VkForward>(dev(), m, o));
  }
  std::vector<std::uint64_t> progress;
  const std::vector<VkForward*> runs{fwd[0].get(), fwd[1].get()};
  const auto got = score_ppl(plan, runs, [&](std::uint64_t scored, const std::vector<PplSums>&) { progress.push_back(scored); });

  std::vector<PplSums> want(2);
  for (const PplChunk& ch : plan.chunks) {
    std::vector<std::vector<float>> logits;
    for (auto& f : fwd) {
      f->reset();
      logits.push_back(f->forward(ch.input, /*all_logits=*/true));
    }
    for (std::size_t i = 0; i < 2; ++i)
      for (std::size_t j = 0; j < ch.targets.size(); ++j) {
        const std::span<const float> ref(logits[0].data() + j * vocab, vocab), row(logits[i].data() + j * vocab, vocab);
        want[i].bits += bits_of(row, ch.targets[j]);
        if (i == 0) continue;
        want[i].kl += kl_div(ref, row);
        want[i].agree += argmax(ref) == argmax(row);
      }
  }
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(got[i].bits, want[i].bits) << "configuration " << i;
    EXPECT_EQ(got[i].kl, want[i].kl) << "configuration " << i;
    EXPECT_EQ(got[i].agree, want[i].agree) << "configuration " << i;
  }
  EXPECT_GT(want[1].kl, 0.0);
  EXPECT_EQ(got[0].kl, 0.0);
  // One report per batch: 40, 40, 16 per chunk.
  EXPECT_EQ(progress, (std::vector<std::uint64_t>{40, 80, 96, 136, 176, 192, 232, 272, 288}));
}

// The host capture (KeyCaptureOptions::On::host: cpu::kernels, layer by layer
// over all tokens) against the device's (VkForward's taps) on every forward
// feature: the bundled dense model and MoE (OLMoE's whole-projection QK-norm),
// and tiny random models with Qwen2's biases and tied embeddings, Qwen3's
// per-head QK-norm, and renormalised top-k experts. 200 tokens at --ctx 128:
// a whole chunk and a cut one. Keys and query moments agree to the fp16
// rounding of the device's KV cache; a key taken one position off (a wrong
// RoPE angle) or one layer off moves them by more than 10x the tolerance
// (checked below on the same data).
struct HostCase {
  std::string name;
  std::function<std::filesystem::path()> model;
  std::optional<kernels::WeightType> weights;
};
void PrintTo(const HostCase& c, std::ostream* os) { *os << c.name; }
class HostCapture : public VulkanTest, public ::testing::WithParamInterface<HostCase> {};

std::filesystem::path tiny(const std::string& name, TinyModel t,
                           const std::function<void(nlohmann::json&, std::map<std::string, std::vector<float>>&)>& mutate = {}) {
  const auto dir = temp_dir("host_capture_" + name);
  t.ctx = 256;
  write_tiny_model(dir, t, [&](nlohmann::json& cfg, std::map<std::string, std::vector<float>>& tensors) {
    cfg["bos_token_id"] = 256;  // the byte tokenizer's first special token
    cfg["eos_token_id"] = 257;
    if (mutate) mutate(cfg, tensors);
  });
  return dir;
}

// The largest |a - b| over the largest |a|.
double rel_diff(std::span<const float> a, std::span<const float> b) {
  double diff = 0, scale = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, double(std::abs(a[i] - b[i])));
    scale = std::max(scale, double(std::abs(a[i])));
  }
  return diff / scale;
}

TEST_P(HostCapture, MatchesTheDevice) {
  const auto m = ModelFile::open(GetParam().model());
  const ModelConfig& c = m.config();
  KeyCaptureOptions o{.tokens = 200, .ctx = 128, .weights = GetParam().weights, .queries = true};
  o.on = KeyCaptureOptions::On::device;
  const auto dev_keys = capture_keys(dev(), m, sample_text(), o);
  o.on = KeyCaptureOptions::On::host;
  const auto host_keys = capture_keys(dev(), m, sample_text(), o);
  EXPECT_EQ(dev_keys.ran_on, "device");
  EXPECT_EQ(host_keys.ran_on, std::string("host (") + cpu::isa_name(cpu::active_isa()) + ")");
  EXPECT_EQ(host_keys.tokens, 200u);
  EXPECT_EQ(host_keys.positions, dev_keys.positions);
  EXPECT_EQ(host_keys.model_sha256, dev_keys.model_sha256);
  ASSERT_EQ(host_keys.pre.size(), c.layers);
  // Layer 0's keys come from the embedding, a norm and one product: the
  // same numbers up to summation order (seen: 4e-7; so --weights f16's
  // rounding of fp32 weights, ~1e-3, is checked). Later layers differ by
  // the device's fp16 KV cache, ~2e-4 on the bundled models and up to 1.6e-3
  // on the tiny random ones.
  const double tol = 4e-3, tol0 = 1e-5;
  for (std::uint32_t l = 0; l < c.layers; ++l) {
    if (l == 0) {
      EXPECT_LT(rel_diff(dev_keys.pre[0], host_keys.pre[0]), tol0) << "pre-RoPE keys, layer 0";
      EXPECT_LT(rel_diff(dev_keys.post[0], host_keys.post[0]), tol0) << "post-RoPE keys, layer 0";
    }
    ASSERT_EQ(host_keys.pre[l].size(), dev_keys.pre[l].size());
    ASSERT_EQ(host_keys.post[l].size(), dev_keys.post[l].size());
    EXPECT_LT(rel_diff(dev_keys.pre[l], host_keys.pre[l]), tol) << "pre-RoPE keys, layer " << l;
    EXPECT_LT(rel_diff(dev_keys.post[l], host_keys.post[l]), tol) << "post-RoPE keys, layer " << l;
    for (int side = 0; side < 2; ++side) {
      const auto& a = side ? dev_keys.q2_post[l] : dev_keys.q2_pre[l];
      const auto& b = side ? host_keys.q2_post[l] : host_keys.q2_pre[l];
      ASSERT_EQ(a.size(), b.size());
      std::vector<float> af(a.begin(), a.end()), bf(b.begin(), b.end());
      EXPECT_LT(rel_diff(af, bf), tol) << (side ? "post" : "pre") << "-RoPE query moments, layer " << l;
    }
  }
  // What the tolerance tells apart: the keys one token later, and the next
  // layer's keys, differ by far more.
  const std::size_t kvd = c.kv_dim(), n = 199 * kvd;
  const std::span<const float> post0(dev_keys.post[c.layers - 1]);
  EXPECT_GT(rel_diff(post0.first(n), std::span<const float>(host_keys.post[c.layers - 1]).subspan(kvd, n)), 10 * tol);
  EXPECT_GT(rel_diff(dev_keys.pre[0], host_keys.pre[c.layers - 1]), 10 * tol);
}

INSTANTIATE_TEST_SUITE_P(
    Models, HostCapture,
    ::testing::Values(
        HostCase{"kjv_llama", [] { return kjv(); }, std::nullopt},
        HostCase{"kjv_llama_f16_weights", [] { return kjv(); }, kernels::WeightType::f16},
        HostCase{"kjv_olmoe", [] { return source_path("models/kjv-olmoe"); }, std::nullopt},
        HostCase{"tiny_qwen2_tied",
                 [] { return tiny("qwen2", TinyModel{.architecture = "Qwen2ForCausalLM", .tied = true}); }, std::nullopt},
        HostCase{"tiny_qwen3",
                 [] {
                   return tiny("qwen3", TinyModel{.architecture = "Qwen3ForCausalLM"}, [](auto&, auto& tensors) {
                     std::mt19937 rng(3);
                     std::normal_distribution<float> nd(1.0f, 0.2f);
                     for (int l = 0; l < 2; ++l)
                       for (const char* w : {"q_norm", "k_norm"}) {
                         std::vector<float> v(12);
                         for (float& x : v) x = nd(rng);
                         tensors["model.layers." + std::to_string(l) + ".self_attn." + w + ".weight"] = v;
                       }
                   });
                 },
                 std::nullopt},
        // Queries wider than the hidden size (4 heads of 12 at dim 32), as
        // Qwen3-0.6B (16 x 128 at 1024): the attention output's rows are wider
        // than the residual stream's (the first version overran its buffer).
        HostCase{"tiny_llama_wide_heads",
                 [] { return tiny("wide", TinyModel{.dim = 32, .heads = 4, .kv_heads = 2, .head_dim = 12}); },
                 std::nullopt},
        HostCase{"tiny_moe_norm_topk",
                 [] {
                   return tiny("moe", TinyModel{.architecture = "OlmoeForCausalLM", .experts = 4, .experts_used = 2,
                                                .norm_topk = true});
                 },
                 std::nullopt}),
    [](const ::testing::TestParamInfo<HostCase>& i) { return i.param.name; });

// The same keys, bit for bit, from two host captures whose buffers sit at
// other addresses (Eigen's AVX-512 products round by alignment: before the
// operands were 64-byte aligned, layers 1-3 differed in 38 to 56,721 keys).
TEST_F(VulkanTest, HostCapture_kjv_sameBitsEveryRun) {
  const auto m = ModelFile::open(kjv());
  KeyCaptureOptions o{.tokens = 2000, .ctx = 256, .weights = {}, .queries = true};
  o.on = KeyCaptureOptions::On::host;
  const auto a = capture_keys(dev(), m, source_path("models/kjv-calib.txt"), o);
  std::vector<std::unique_ptr<char[]>> shift;
  for (int i = 1; i < 40; ++i) shift.emplace_back(new char[std::size_t(i) * 24 + 8]);
  const auto b = capture_keys(dev(), m, source_path("models/kjv-calib.txt"), o);
  ASSERT_EQ(a.pre.size(), b.pre.size());
  for (std::size_t l = 0; l < a.pre.size(); ++l) {
    EXPECT_EQ(a.pre[l], b.pre[l]) << "layer " << l;
    EXPECT_EQ(a.post[l], b.post[l]) << "layer " << l;
    EXPECT_EQ(a.q2_pre[l], b.q2_pre[l]) << "layer " << l;
    EXPECT_EQ(a.q2_post[l], b.q2_post[l]) << "layer " << l;
  }
}

}  // namespace
}  // namespace vkq::test
