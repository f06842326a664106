// Writes the fuzzers' seed corpora with the project's own writers:
//   vkq_fuzz_make_corpus <tests/fuzz/corpus>
// Small valid files only (each a few KB); the fuzzers mutate from there.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "kcache_model.hpp"
#include "vkquant/gguf.hpp"
#include "vkquant/model/kcache.hpp"
#include "vkquant/model/kv_policy.hpp"
#include "vkquant/safetensors.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using vkq::GgmlType;
using vkq::GgufType;

void write_text(const fs::path& p, const std::string& s) {
  std::ofstream(p, std::ios::binary) << s;
}

std::vector<float> ramp(std::size_t n, float scale = 0.25f) {
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = scale * float(int(i % 17) - 8);
  return v;
}

template <class T>
std::span<const std::byte> bytes_of(const std::vector<T>& v) {
  return std::as_bytes(std::span<const T>(v));
}

void safetensors(const fs::path& dir) {
  const auto a = ramp(12), b = ramp(3);
  vkq::write_safetensors(dir / "f32.safetensors", {vkq::f32_tensor("w", {3, 4}, a), vkq::f32_tensor("b", {3}, b)},
                         {{"format", "pt"}});
  const auto h = vkq::to_f16_bytes(a), bf = vkq::to_bf16_bytes(a);
  const std::vector<double> d{1.5, -2.0, 1e-3};
  const std::vector<std::uint8_t> u8{0, 1, 255, 7};
  const std::vector<std::int64_t> i64{-1, 1LL << 40};
  vkq::write_safetensors(dir / "dtypes.safetensors",
                         {{"h", vkq::DType::F16, {12}, h},
                          {"bf", vkq::DType::BF16, {2, 6}, bf},
                          {"d", vkq::DType::F64, {3}, bytes_of(d)},
                          {"u", vkq::DType::U8, {2, 2}, bytes_of(u8)},
                          {"i", vkq::DType::I64, {2}, bytes_of(i64)},
                          {"s", vkq::DType::F32, {}, bytes_of(std::vector<float>{3.0f})},
                          {"e", vkq::DType::F32, {0, 5}, {}}});
  vkq::write_safetensors(dir / "empty.safetensors", {});
}

void gguf(const fs::path& dir) {
  const auto x = ramp(64);
  const auto q8 = vkq::quantize_q8_0(x), q4 = vkq::quantize_q4_0(x), h = vkq::to_f16_bytes(x), bf = vkq::to_bf16_bytes(x);
  const std::vector<std::byte> q4k(144, std::byte{0x11});  // one Q4_K block: listed, not decodable
  vkq::write_gguf(dir / "types.gguf",
                  {{"general.architecture", vkq::gguf_string("test")},
                   {"u8", vkq::gguf_uint(7, GgufType::u8)},
                   {"i16", vkq::gguf_int(-3, GgufType::i16)},
                   {"u64", vkq::gguf_uint(1ULL << 40, GgufType::u64)},
                   {"f64", vkq::gguf_float(0.5, GgufType::f64)},
                   {"b", vkq::gguf_bool(true)},
                   {"strs", vkq::gguf_string_array({"a", "bc", ""})},
                   {"ints", vkq::gguf_int_array({-1, 2, 3}, GgufType::i64)},
                   {"floats", vkq::gguf_float_array({0.25, -1.0})},
                   {"bools", vkq::gguf_bool_array({true, false})}},
                  {{"f32", std::uint32_t(GgmlType::F32), {16, 4}, bytes_of(x)},
                   {"f16", std::uint32_t(GgmlType::F16), {64}, h},
                   {"bf16", std::uint32_t(GgmlType::BF16), {32, 2}, bf},
                   {"q8", std::uint32_t(GgmlType::Q8_0), {64}, q8},
                   {"q4", std::uint32_t(GgmlType::Q4_0), {32, 2}, q4},
                   {"q4k", 12, {256}, q4k}},
                  64, 3);
  vkq::write_gguf(dir / "v2.gguf", {{"k", vkq::gguf_uint(1)}}, {{"t", std::uint32_t(GgmlType::F32), {4}, bytes_of(ramp(4))}},
                  32, 2);
  // A tiny llama whose metadata config_from_gguf accepts.
  const auto emb = ramp(8 * 10), qw = ramp(8 * 8);
  vkq::write_gguf(dir / "llama.gguf",
                  {{"general.architecture", vkq::gguf_string("llama")},
                   {"llama.embedding_length", vkq::gguf_uint(8)},
                   {"llama.block_count", vkq::gguf_uint(1)},
                   {"llama.attention.head_count", vkq::gguf_uint(2)},
                   {"llama.attention.head_count_kv", vkq::gguf_uint(1)},
                   {"llama.feed_forward_length", vkq::gguf_uint(16)},
                   {"llama.context_length", vkq::gguf_uint(64)},
                   {"llama.attention.layer_norm_rms_epsilon", vkq::gguf_float(1e-5)},
                   {"llama.rope.freq_base", vkq::gguf_float(10000.0)},
                   {"tokenizer.ggml.model", vkq::gguf_string("gpt2")},
                   {"tokenizer.ggml.bos_token_id", vkq::gguf_uint(1)},
                   {"tokenizer.ggml.eos_token_id", vkq::gguf_uint(2)}},
                  {{"token_embd.weight", std::uint32_t(GgmlType::F32), {8, 10}, bytes_of(emb)},
                   {"blk.0.attn_q.weight", std::uint32_t(GgmlType::F16), {8, 8}, vkq::to_f16_bytes(qw)}});
  // RoPE scaling as llama.cpp's converters write it: Llama 3.1's rope_freqs
  // tensor with YaRN keys beside, and Phi-3's LongRoPE factor pair.
  const auto freqs = ramp(2);
  const std::vector<std::pair<std::string, vkq::GgufValue>> base = {
      {"llama.embedding_length", vkq::gguf_uint(8)},       {"llama.block_count", vkq::gguf_uint(1)},
      {"llama.attention.head_count", vkq::gguf_uint(2)},   {"llama.attention.head_count_kv", vkq::gguf_uint(1)},
      {"llama.feed_forward_length", vkq::gguf_uint(16)},   {"llama.context_length", vkq::gguf_uint(64)},
      {"llama.rope.freq_base", vkq::gguf_float(10000.0)}};
  auto with = [&](std::vector<std::pair<std::string, vkq::GgufValue>> extra) {
    auto md = base;
    md.insert(md.begin(), {"general.architecture", vkq::gguf_string("llama")});
    md.insert(md.end(), extra.begin(), extra.end());
    return md;
  };
  vkq::write_gguf(dir / "rope-yarn.gguf",
                  with({{"llama.rope.scaling.type", vkq::gguf_string("yarn")},
                        {"llama.rope.scaling.factor", vkq::gguf_float(4.0)},
                        {"llama.rope.scaling.original_context_length", vkq::gguf_uint(16)},
                        {"llama.rope.scaling.attn_factor", vkq::gguf_float(1.0)},
                        {"llama.rope.scaling.yarn_beta_fast", vkq::gguf_float(32.0)},
                        {"llama.attention.sliding_window", vkq::gguf_uint(32)}}),
                  {{"rope_freqs.weight", std::uint32_t(GgmlType::F32), {2}, bytes_of(freqs)}});
  vkq::write_gguf(dir / "rope-longrope.gguf",
                  with({{"llama.rope.scaling.type", vkq::gguf_string("longrope")},
                        {"llama.rope.scaling.original_context_length", vkq::gguf_uint(16)}}),
                  {{"rope_factors_long.weight", std::uint32_t(GgmlType::F32), {2}, bytes_of(freqs)},
                   {"rope_factors_short.weight", std::uint32_t(GgmlType::F32), {2}, bytes_of(freqs)}});
}

void config(const fs::path& dir) {
  const json llama = {{"architectures", {"LlamaForCausalLM"}},
                      {"vocab_size", 258},
                      {"hidden_size", 256},
                      {"intermediate_size", 704},
                      {"num_hidden_layers", 4},
                      {"num_attention_heads", 4},
                      {"num_key_value_heads", 2},
                      {"hidden_act", "silu"},
                      {"max_position_embeddings", 256},
                      {"rms_norm_eps", 1e-5},
                      {"rope_theta", 10000.0},
                      {"rope_scaling", nullptr},
                      {"tie_word_embeddings", false},
                      {"bos_token_id", 256},
                      {"eos_token_id", {257, 1}}};
  write_text(dir / "llama.json", llama.dump(2));
  json qwen = llama;
  qwen["architectures"] = {"Qwen2ForCausalLM"};
  qwen["head_dim"] = 64;
  qwen["tie_word_embeddings"] = true;
  qwen["rope_scaling"] = {{"rope_type", "default"}};
  write_text(dir / "qwen2.json", qwen.dump());
  json olmoe = llama;
  olmoe["architectures"] = {"OlmoeForCausalLM"};
  olmoe["num_experts"] = 8;
  olmoe["num_experts_per_tok"] = 2;
  olmoe["norm_topk_prob"] = false;
  olmoe["clip_qkv"] = nullptr;
  write_text(dir / "olmoe.json", olmoe.dump(1));
}

// GPT-2's byte -> character table.
std::string mapped(unsigned char b) {
  auto printable = [](int x) { return (x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || x >= 0xAE; };
  std::uint32_t cp = b;
  if (!printable(b)) {
    cp = 256;
    for (int x = 0; x < b; ++x) cp += !printable(x);
  }
  std::string out;
  if (cp < 0x80) {
    out += char(cp);
  } else {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  }
  return out;
}
std::string mapped(std::string_view s) {
  std::string out;
  for (const char c : s) out += mapped(static_cast<unsigned char>(c));
  return out;
}

void tokenizer(const fs::path& dir) {
  const std::vector<std::pair<std::string, std::string>> merges = {
      {"h", "e"}, {"l", "l"}, {"he", "ll"}, {"hell", "o"}, {" ", "w"}, {"o", "r"}, {" w", "or"},
      {"l", "d"}, {" wor", "ld"}, {"1", "2"}, {"12", "3"}, {" ", " "}, {"\n", "\n"}, {"'", "s"}};
  json vocab = json::object();
  int id = 0;
  for (int b = 0; b < 256; ++b) vocab[mapped(static_cast<unsigned char>(b))] = id++;
  for (const auto& [a, b] : merges) vocab[mapped(a + b)] = id++;
  const int eot = id++, tool = id++;
  for (const bool llama3 : {false, true}) {
    json m = json::array();
    for (const auto& [a, b] : merges)
      m.push_back(llama3 ? json::array({mapped(a), mapped(b)}) : json(mapped(a) + " " + mapped(b)));
    json j = {{"version", "1.0"},
              {"truncation", nullptr},
              {"added_tokens",
               json::array({{{"id", eot}, {"content", "<|endoftext|>"}, {"special", true}},
                            {{"id", tool}, {"content", "<tool>"}, {"special", false}}})},
              {"normalizer", nullptr},
              {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
              {"model",
               {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", ""},
                {"end_of_word_suffix", ""}, {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", llama3},
                {"vocab", vocab}, {"merges", m}}}};
    const json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true},
                             {"use_regex", !llama3}};
    if (llama3) {
      const char* re =
          R"re((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";
      j["pre_tokenizer"] = {{"type", "Sequence"},
                            {"pretokenizers", json::array({{{"type", "Split"},
                                                            {"pattern", {{"Regex", re}}},
                                                            {"behavior", "Isolated"},
                                                            {"invert", false}},
                                                           byte_level})}};
    } else {
      j["pre_tokenizer"] = byte_level;
    }
    write_text(dir / (llama3 ? "llama3.json" : "gpt2.json"), j.dump());
  }
}

void sharded(const fs::path& dir) {
  // The shards the fuzzer writes beside each input: a.safetensors {x.weight, y.bias}, b.safetensors {z}.
  json j = {{"metadata", {{"total_size", 36}}},
            {"weight_map", {{"x.weight", "a.safetensors"}, {"y.bias", "a.safetensors"}, {"z", "b.safetensors"}}}};
  write_text(dir / "index.json", j.dump(2));
  j.erase("metadata");
  write_text(dir / "no_metadata.json", j.dump());
}

// Calibration artifacts of kcache_model.hpp's model: real ones (rank 2 and
// rank 0), the same as format version 1 (no k_rm_* tensors), one bound to
// another model, and one with a precision policy (full rank, a loss table
// per codec, a measured sensitivity for pre, plans at 2 bits above the code),
// and that policy again with alpha-relative options and steps.
void kcache(const fs::path& dir) {
  const fs::path model_dir = fs::temp_directory_path() / ("vkq_fuzz_model_" + std::to_string(::getpid()));
  vkq_fuzz::write_fuzz_model(model_dir);
  const auto model = vkq::ModelFile::open(model_dir);
  vkq::write_kcache_artifact(dir / "rank2.vkq.safetensors", vkq_fuzz::fuzz_calibration(model, 2), "vkq_fuzz_make_corpus");
  vkq::write_kcache_artifact(dir / "rank0.vkq.safetensors", vkq_fuzz::fuzz_calibration(model, 0), "vkq_fuzz_make_corpus");
  auto other = vkq_fuzz::fuzz_calibration(model, 1);
  other.model_sha256 = std::string(64, '0');
  vkq::write_kcache_artifact(dir / "other-model.vkq.safetensors", other, "vkq_fuzz_make_corpus");
  {
    const vkq::ModelConfig& c = model.config();
    auto pol = vkq_fuzz::fuzz_calibration(model, c.head_dim);
    const auto options = vkq::policy_options(c.head_dim, c.head_dim);
    pol.budget = 1.0 + 16.0 / c.head_dim + 2.0;  // the code alone (5 bits at head_dim 4) + 2
    for (vkq::KRope r : {vkq::KRope::post, vkq::KRope::pre, vkq::KRope::ropemean}) {
      vkq::KPolicyTable t{c.layers, c.kv_heads, c.head_dim, vkq::KPolicyObjective::query, options, {}};
      for (std::uint32_t h = 0; h < c.layers * c.kv_heads; ++h)
        for (std::size_t o = 0; o < options.size(); ++o) t.loss.push_back(double(h + 1) / double(o + 1));
      if (r == vkq::KRope::pre) t.head_kl.assign(std::size_t(c.layers) * c.kv_heads, 0.125);
      pol.plans[r] = vkq::solve_policy(t, pol.budget).heads;
      pol.policy[r] = std::move(t);
    }
    vkq::write_kcache_artifact(dir / "policy.vkq.safetensors", pol, "vkq_fuzz_make_corpus");
    // The same with alpha-relative options: per-column steps and an encoder
    // basis in every codec, [rank, b, "alpha"] options (b = 4, 2, 1) and plans.
    const auto arel = vkq::policy_options(c.head_dim, c.head_dim, true);
    for (auto* mode : {&pol.post, &pol.pre, &pol.ropemean})
      for (auto& l : *mode) {
        for (const std::uint32_t b : {4u, 2u, 1u}) l.arel_step(b).assign(std::size_t(c.kv_heads) * c.head_dim, 0.25f * float(5 - b));
        l.enc_basis = l.basis;
        for (float& x : l.enc_basis) x *= 2.0f;
      }
    for (auto& [r, t] : pol.policy) {
      t.options = arel;
      t.loss.clear();
      for (std::uint32_t h = 0; h < c.layers * c.kv_heads; ++h)
        for (std::size_t o = 0; o < arel.size(); ++o) t.loss.push_back(double(h + 1) / double(o + 1));
      pol.plans[r] = vkq::solve_policy(t, pol.budget).heads;
    }
    vkq::write_kcache_artifact(dir / "policy-arel-widths.vkq.safetensors", pol, "vkq_fuzz_make_corpus");
  }
  {
    const auto v2 = vkq::SafetensorsFile::open(dir / "rank2.vkq.safetensors");
    std::vector<vkq::TensorWrite> t;
    for (const auto& info : v2.tensors())
      if (info.name.find(".k_rm_") == std::string::npos) t.push_back({info.name, info.dtype, info.shape, v2.data(info)});
    auto meta = v2.metadata();
    meta["format_version"] = "1";
    vkq::write_safetensors(dir / "v1.vkq.safetensors", t, meta);
  }
  fs::remove_all(model_dir);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <corpus-dir>\n", argv[0]);
    return 2;
  }
  const fs::path root = argv[1];
  for (const char* name : {"safetensors", "gguf", "config", "tokenizer", "sharded", "kcache"})
    fs::create_directories(root / name);
  safetensors(root / "safetensors");
  gguf(root / "gguf");
  config(root / "config");
  tokenizer(root / "tokenizer");
  sharded(root / "sharded");
  kcache(root / "kcache");
  return 0;
}
