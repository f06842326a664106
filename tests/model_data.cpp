#include "model_data.hpp"

#include <fstream>

#include <gtest/gtest.h>
#include <unistd.h>

namespace vkq::test {

RefLogits load_ref_logits(const std::string& name) {
  std::ifstream in(source_path("tests/data/" + name + ".logits.json"));
  const auto j = nlohmann::json::parse(in);
  RefLogits r;
  r.vocab = j.at("vocab_size").get<std::uint32_t>();
  r.heldout_bpb = j.at("heldout_bits_per_byte").get<double>();
  r.sample_bpb = j.at("ppl_sample_bits_per_byte").get<double>();
  for (const auto& p : j.at("prompts")) {
    RefPrompt rp;
    rp.text = p.at("text").get<std::string>();
    rp.ids = p.at("ids").get<std::vector<std::int32_t>>();
    rp.last_logits = p.at("last_logits").get<std::vector<float>>();
    rp.greedy_ids = p.at("greedy_ids").get<std::vector<std::int32_t>>();
    if (p.contains("all_logits"))
      for (const auto& row : p.at("all_logits"))
        for (float v : row.get<std::vector<float>>()) rp.all_logits.push_back(v);
    r.prompts.push_back(std::move(rp));
  }
  return r;
}

}  // namespace vkq::test

#include <random>

#include "vkquant/atomic_file.hpp"
#include "vkquant/safetensors.hpp"

namespace vkq::test {

std::filesystem::path temp_dir(const std::string& name) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string tag = info ? std::string(info->test_suite_name()) + "." + info->name() : "x";
  for (char& ch : tag)
    if (ch == '/') ch = '_';
  const auto dir = std::filesystem::temp_directory_path() / ("vkq-" + std::to_string(::getpid()) + "-" + tag + "-" + name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

void write_tiny_model(const std::filesystem::path& dir, const TinyModel& m,
                      const std::function<void(nlohmann::json&, std::map<std::string, std::vector<float>>&)>& mutate) {
  const bool moe = m.architecture == "OlmoeForCausalLM", qwen = m.architecture == "Qwen2ForCausalLM";
  nlohmann::json cfg{{"architectures", {m.architecture}}, {"vocab_size", m.vocab}, {"hidden_size", m.dim},
                     {"intermediate_size", m.ffn}, {"num_hidden_layers", m.layers}, {"num_attention_heads", m.heads},
                     {"num_key_value_heads", m.kv_heads}, {"head_dim", m.head_dim}, {"max_position_embeddings", m.ctx},
                     {"rms_norm_eps", 1e-5}, {"rope_theta", 1000.0}, {"tie_word_embeddings", m.tied},
                     {"hidden_act", "silu"}, {"bos_token_id", 1}, {"eos_token_id", 2}};
  if (moe) {
    cfg["num_experts"] = m.experts;
    cfg["num_experts_per_tok"] = m.experts_used;
    cfg["norm_topk_prob"] = m.norm_topk;
  }
  std::mt19937 rng(m.seed);
  std::normal_distribution<float> nd(0.0f, 0.3f);
  std::map<std::string, std::vector<float>> t;
  std::map<std::string, std::vector<std::uint64_t>> shape;
  auto add = [&](const std::string& name, std::vector<std::uint64_t> s, bool norm = false) {
    std::uint64_t n = 1;
    for (auto d : s) n *= d;
    std::vector<float> v(n);
    for (auto& x : v) x = norm ? 1.0f + 0.2f * nd(rng) : nd(rng);
    t[name] = std::move(v);
    shape[name] = std::move(s);
  };
  const std::uint64_t d = m.dim, q = m.heads * m.head_dim, kv = m.kv_heads * m.head_dim, f = m.ffn;
  add("model.embed_tokens.weight", {m.vocab, d});
  for (std::uint32_t l = 0; l < m.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", {d}, true);
    add(p + "self_attn.q_proj.weight", {q, d});
    add(p + "self_attn.k_proj.weight", {kv, d});
    add(p + "self_attn.v_proj.weight", {kv, d});
    add(p + "self_attn.o_proj.weight", {d, q});
    if (qwen) {
      add(p + "self_attn.q_proj.bias", {q});
      add(p + "self_attn.k_proj.bias", {kv});
      add(p + "self_attn.v_proj.bias", {kv});
    }
    if (moe) {
      add(p + "self_attn.q_norm.weight", {q}, true);
      add(p + "self_attn.k_norm.weight", {kv}, true);
    }
    add(p + "post_attention_layernorm.weight", {d}, true);
    if (moe) {
      add(p + "mlp.gate.weight", {m.experts, d});
      for (std::uint32_t e = 0; e < m.experts; ++e) {
        const std::string ep = p + "mlp.experts." + std::to_string(e) + ".";
        add(ep + "gate_proj.weight", {f, d});
        add(ep + "up_proj.weight", {f, d});
        add(ep + "down_proj.weight", {d, f});
      }
    } else {
      add(p + "mlp.gate_proj.weight", {f, d});
      add(p + "mlp.up_proj.weight", {f, d});
      add(p + "mlp.down_proj.weight", {d, f});
    }
  }
  add("model.norm.weight", {d}, true);
  if (!m.tied) add("lm_head.weight", {m.vocab, d});
  if (mutate) mutate(cfg, t);
  std::vector<TensorWrite> writes;
  for (const auto& [name, v] : t) {
    auto s = shape.count(name) ? shape[name] : std::vector<std::uint64_t>{v.size()};
    std::uint64_t n = 1;
    for (auto x : s) n *= x;
    if (n != v.size()) s = {v.size()};  // a mutated tensor keeps its values; the loader must catch the shape
    writes.push_back(f32_tensor(name, s, v));
  }
  write_safetensors(dir / "model.safetensors", writes);
  write_file_atomic(dir / "config.json", cfg.dump(2));
}

}  // namespace vkq::test
