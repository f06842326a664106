// What `vkquant calibrate`, `gauge` and `ppl` run on the bundled model at
// long contexts in bounded memory: capture_keys feeds exactly the tokens it
// keeps (the last chunk cut short), and score_ppl's lockstep, batch-by-batch
// scoring gives the same sums, bit for bit, as scoring whole chunks' logits.
#include <gtest/gtest.h>

#include <fstream>

#include "model_data.hpp"
#include "vk_test.hpp"
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
  const auto k = capture_keys(dev(), m, sample_text(), KeyCaptureOptions{.tokens = 200, .ctx = 128, .weights = {}});
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

}  // namespace
}  // namespace vkq::test
