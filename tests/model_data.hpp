// The bundled models and their PyTorch reference logits (tests/data/*.logits.json).
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace vkq::test {

inline std::filesystem::path source_path(const std::string& rel) { return std::filesystem::path(VKQ_SOURCE_DIR) / rel; }

struct RefPrompt {
  std::string text;
  std::vector<std::int32_t> ids;
  std::vector<float> last_logits;  // (vocab)
  std::vector<std::int32_t> greedy_ids;
  std::vector<float> all_logits;  // (ids, vocab) or empty
};
struct RefLogits {
  std::uint32_t vocab = 0;
  double heldout_bpb = 0, sample_bpb = 0;
  std::vector<RefPrompt> prompts;
};

// `name`: "kjv-llama" or "kjv-olmoe".
RefLogits load_ref_logits(const std::string& name);

}  // namespace vkq::test

namespace vkq::test {

// A small random model written as config.json + model.safetensors in `dir`,
// covering what the bundled models do not: Qwen2's q/k/v bias, tied
// embeddings, MoE with renormalised top-k. Weights ~ N(0, 0.3²) (norms ~1).
struct TinyModel {
  std::string architecture = "LlamaForCausalLM";  // or Qwen2ForCausalLM, OlmoeForCausalLM
  std::uint32_t vocab = 300, dim = 48, layers = 2, heads = 4, kv_heads = 2, head_dim = 12, ffn = 40, ctx = 64;
  std::uint32_t experts = 0, experts_used = 0;
  bool norm_topk = false, tied = false;
  std::uint32_t seed = 1;
};
// Writes the model; `mutate` may change the JSON config or tensors before writing.
void write_tiny_model(const std::filesystem::path& dir, const TinyModel& m,
                      const std::function<void(nlohmann::json&, std::map<std::string, std::vector<float>>&)>& mutate = {});
// A fresh empty temp directory for one test.
std::filesystem::path temp_dir(const std::string& name);

}  // namespace vkq::test
