// The tiny model behind fuzz_kcache and its seed artifacts: the artifact
// reader checks an artifact against a model (shapes and the weights'
// SHA-256), so fuzz_kcache and vkq_fuzz_make_corpus must write the very same
// model. Weights are a fixed formula (no RNG): the seeds' model_sha256 stays
// valid across standard libraries.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "vkquant/atomic_file.hpp"
#include "vkquant/model/kcache.hpp"
#include "vkquant/safetensors.hpp"

namespace vkq_fuzz {

// 2 layers, 2 query heads sharing 1 KV head of 4, hidden 8, ffn 8, vocab 16.
inline void write_fuzz_model(const std::filesystem::path& dir) {
  constexpr std::uint64_t vocab = 16, d = 8, layers = 2, heads = 2, kv = 1, hd = 4, ffn = 8;
  const nlohmann::json cfg{{"architectures", {"LlamaForCausalLM"}}, {"vocab_size", vocab}, {"hidden_size", d},
                           {"intermediate_size", ffn}, {"num_hidden_layers", layers}, {"num_attention_heads", heads},
                           {"num_key_value_heads", kv}, {"head_dim", hd}, {"max_position_embeddings", 32},
                           {"rms_norm_eps", 1e-5}, {"rope_theta", 10000.0}, {"tie_word_embeddings", false},
                           {"hidden_act", "silu"}, {"bos_token_id", 1}, {"eos_token_id", 2}};
  std::vector<vkq::TensorWrite> t;
  std::vector<std::vector<float>> store;  // TensorWrite holds views: keep the data alive
  store.reserve(64);
  auto add = [&](const std::string& name, std::vector<std::uint64_t> shape) {
    std::uint64_t n = 1;
    for (auto x : shape) n *= x;
    std::vector<float> v(n);
    for (std::uint64_t i = 0; i < n; ++i) v[i] = 0.125f * float(int((i * 7 + store.size() * 3) % 13) - 6);
    store.push_back(std::move(v));
    t.push_back(vkq::f32_tensor(name, shape, store.back()));
  };
  add("model.embed_tokens.weight", {vocab, d});
  for (std::uint64_t l = 0; l < layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", {d});
    add(p + "self_attn.q_proj.weight", {heads * hd, d});
    add(p + "self_attn.k_proj.weight", {kv * hd, d});
    add(p + "self_attn.v_proj.weight", {kv * hd, d});
    add(p + "self_attn.o_proj.weight", {d, heads * hd});
    add(p + "post_attention_layernorm.weight", {d});
    add(p + "mlp.gate_proj.weight", {ffn, d});
    add(p + "mlp.up_proj.weight", {ffn, d});
    add(p + "mlp.down_proj.weight", {d, ffn});
  }
  add("model.norm.weight", {d});
  add("lm_head.weight", {vocab, d});
  std::filesystem::create_directories(dir);
  vkq::write_safetensors(dir / "model.safetensors", t);
  vkq::write_file_atomic(dir / "config.json", cfg.dump(2));
}

// A calibration of that model as calibrate_keys would shape it (values are
// arbitrary but finite), bound to the model by its SHA-256.
inline vkq::KCalibration fuzz_calibration(const vkq::ModelFile& model, std::uint32_t rank) {
  const vkq::ModelConfig& c = model.config();
  vkq::KCalibration k;
  k.layers = c.layers, k.kv_heads = c.kv_heads, k.head_dim = c.head_dim, k.rank = rank;
  k.tokens = 64, k.solver = "procrustes", k.seed = 3;
  k.model_sha256 = vkq::model_sha256(model);
  const std::size_t kv = c.kv_heads, hd = c.head_dim;
  for (auto* mode : {&k.post, &k.pre, &k.ropemean}) {
    mode->resize(c.layers);
    for (std::uint32_t l = 0; l < c.layers; ++l) {
      vkq::KLayerCalib& L = (*mode)[l];
      L.mean.assign(kv * hd, 0.0f);
      for (std::size_t i = 0; i < L.mean.size(); ++i) L.mean[i] = 0.25f * float(i % 5) - 0.5f;
      L.rot.assign(kv * hd * hd, 0.0f);
      for (std::size_t h = 0; h < kv; ++h)
        for (std::size_t i = 0; i < hd; ++i) L.rot[(h * hd + i) * hd + (hd - 1 - i)] = 1.0f;  // a permutation
      L.basis.assign(kv * hd * rank, 0.0f);
      for (std::size_t h = 0; h < kv; ++h)
        for (std::size_t j = 0; j < rank; ++j) L.basis[(h * hd + j) * rank + j] = 1.0f;
      for (auto* v : {&L.cos_none, &L.cos_srht, &L.cos_learned_train, &L.cos_learned, &L.cos_eff}) v->assign(kv, 0.75);
    }
  }
  return k;
}

}  // namespace vkq_fuzz
