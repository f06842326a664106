// Model loading, the CPU reference forward, sampling and the perplexity plan.
// The CPU forward is checked against PyTorch's logits for the bundled models
// in every exported format (safetensors, GGUF F32, GGUF F16).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>

#include "format_error.hpp"
#include "model_data.hpp"
#include "vk_test.hpp"
#include "vkquant/gguf.hpp"
#include "vkquant/mapped_file.hpp"
#include "vkquant/model/cpu_forward.hpp"
#include "vkquant/model/model_file.hpp"
#include "vkquant/model/sampling.hpp"
#include "vkquant/safetensors.hpp"

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
        BadConfig{"rope_scaling_dynamic", [](Json& j, Tensors&) { j["rope_scaling"] = {{"rope_type", "dynamic"}, {"factor", 2.0}}; }, "rope_scaling.rope_type: 'dynamic' is not supported"},
        BadConfig{"rope_scaling_llama3_incomplete", [](Json& j, Tensors&) { j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}}; }, "rope_scaling.low_freq_factor: missing (rope_type 'llama3' needs it)"},
        BadConfig{"rope_scaling_unknown_key", [](Json& j, Tensors&) { j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}, {"beta", 3}}; }, "rope_scaling.beta: 3 is not understood for rope_type 'linear'"},
        BadConfig{"rope_scaling_bad_factor", [](Json& j, Tensors&) { j["rope_scaling"] = {{"type", "linear"}, {"factor", -2.0}}; }, "rope_scaling.factor: -2.0 is not a positive number"},
        BadConfig{"longrope_wrong_count", [](Json& j, Tensors&) { j["rope_scaling"] = {{"type", "longrope"}, {"long_factor", {1.0, 2.0}}, {"short_factor", {1.0, 1.0}}}; j["original_max_position_embeddings"] = 16; }, "rope_scaling: longrope needs 6 factors, got 2"},
        BadConfig{"attention_bias", [](Json& j, Tensors&) { j["attention_bias"] = true; }, "attention_bias: true is not supported"},
        BadConfig{"partial_rotary", [](Json& j, Tensors&) { j["partial_rotary_factor"] = 0.5; }, "partial_rotary_factor: 0.5 is not supported"},
        BadConfig{"sliding_window_zero", [](Json& j, Tensors&) { j["sliding_window"] = 0; }, "sliding_window: 0 is not a window"},
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

// ---- hostile config.json text and GGUF metadata: one test per case, each
// error naming the file, the key and (for JSON syntax) the byte offset ----

// Opening `dir` throws a FormatError for `file` holding `fragment` and `key`, at `at`.
void expect_model_refused(const std::filesystem::path& dir, const std::filesystem::path& file, const std::string& fragment,
                          const std::string& key, std::uint64_t at = FormatError::kNoOffset) {
  expect_format_error([&] { (void)ModelFile::open(dir); }, file, fragment, key, at);
}

// A tiny model whose config.json is replaced by `text`.
std::filesystem::path model_with_config_text(const std::string& name, const std::string& text) {
  const auto dir = temp_dir(name);
  write_tiny_model(dir, TinyModel{});
  std::ofstream(dir / "config.json", std::ios::binary | std::ios::trunc) << text;
  return dir;
}

// The tiny model's config.json as written.
std::string tiny_config_text() {
  const auto dir = temp_dir("cfg_text");
  write_tiny_model(dir, TinyModel{});
  std::ifstream in(dir / "config.json", std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

TEST(ModelFileConfig, TruncatedConfig) {
  const std::string full = tiny_config_text();
  const std::string cut = full.substr(0, full.size() / 2);
  const auto dir = model_with_config_text("cfg_trunc", cut);
  // Cut mid-document: the error lies at or before the cut, never past it.
  try {
    (void)ModelFile::open(dir);
    ADD_FAILURE() << "a truncated config.json was accepted";
  } catch (const FormatError& e) {
    EXPECT_EQ(e.file(), dir / "config.json") << e.what();
    EXPECT_NE(std::string(e.what()).find("invalid JSON"), std::string::npos) << e.what();
    EXPECT_LE(e.offset(), cut.size()) << e.what();
  }
  const auto empty = model_with_config_text("cfg_empty", "");
  expect_model_refused(empty, empty / "config.json", "invalid JSON", "unexpected end of input", 0);
}

TEST(ModelFileConfig, InvalidUtf8) {
  // 0xed 0xa0 0x80 encodes a UTF-16 surrogate: 0xa0 (byte 21) cannot follow 0xed.
  const auto dir = model_with_config_text("cfg_utf8", "{\"architectures\": [\"\xed\xa0\x80\"]}");
  expect_model_refused(dir, dir / "config.json", "invalid JSON", "ill-formed UTF-8", 21);
}

TEST(ModelFileConfig, DuplicateKey) {
  // A second hidden_size that a lenient parser would let win.
  std::string text = tiny_config_text();
  text.insert(1, "\"hidden_size\": 4096, ");
  const auto dir = model_with_config_text("cfg_dup", text);
  expect_model_refused(dir, dir / "config.json", "duplicate JSON key", "\"hidden_size\"");
}

TEST(ModelFileConfig, NestedTenThousandDeep) {
  std::string text = tiny_config_text();
  text.insert(1, "\"deep\": " + std::string(10000, '[') + std::string(10000, ']') + ", ");
  const auto dir = model_with_config_text("cfg_deep", text);
  expect_model_refused(dir, dir / "config.json", "nested deeper than 64 levels", "JSON");
}

TEST(ModelFileConfig, CountOf2To64Minus1) {
  const auto dir = temp_dir("cfg_u64max");
  write_tiny_model(dir, TinyModel{}, [](Json& j, Tensors&) { j["vocab_size"] = ~std::uint64_t(0); });
  expect_model_refused(dir, dir / "config.json", "18446744073709551615 is absurdly large", "vocab_size");
  write_tiny_model(dir, TinyModel{}, [](Json& j, Tensors&) { j["num_attention_heads"] = std::uint64_t(1) << 63; });
  expect_model_refused(dir, dir / "config.json", "9223372036854775808 is absurdly large", "num_attention_heads");
}

TEST(ModelFileConfig, AbsurdHiddenSize) {
  // Fits 32 bits, but would size every buffer by it: refused by the bounds.
  const auto dir = temp_dir("cfg_hidden");
  write_tiny_model(dir, TinyModel{}, [](Json& j, Tensors&) { j["hidden_size"] = 4000000000u; j.erase("head_dim"); });
  expect_model_refused(dir, dir / "config.json", "hidden_size: 4000000000 is outside 1..65536", "hidden_size");
}

TEST(ModelFileConfig, ZeroHeadsRefused) {
  const auto dir = temp_dir("cfg_zero_heads");
  write_tiny_model(dir, TinyModel{}, [](Json& j, Tensors&) { j["num_attention_heads"] = 0; });
  expect_model_refused(dir, dir / "config.json", "num_attention_heads: 0", "num_attention_heads");
}

// GGUF metadata is the config of a GGUF model: the same contradictions, named
// by their GGUF keys (tensors are checked after the config, so none are needed).
std::filesystem::path gguf_config(const std::string& name, std::uint64_t dim, std::uint64_t heads, std::uint64_t kv_heads) {
  const auto p = temp_dir(name) / "m.gguf";
  write_gguf(p,
             {{"general.architecture", gguf_string("llama")}, {"llama.embedding_length", gguf_uint(dim, GgufType::u64)},
              {"llama.block_count", gguf_uint(2)}, {"llama.attention.head_count", gguf_uint(heads)},
              {"llama.attention.head_count_kv", gguf_uint(kv_heads)}, {"llama.feed_forward_length", gguf_uint(40)}},
             {});
  return p;
}

TEST(ModelFileConfig, GgufHeadsNotDividingHidden) {
  const auto p = gguf_config("gguf_heads", 48, 5, 5);
  expect_model_refused(p, p, "5 heads do not divide embedding_length 48", "llama.attention.head_count");
}

TEST(ModelFileConfig, GgufKvHeadsNotDividingHeads) {
  const auto p = gguf_config("gguf_kv", 48, 4, 3);
  expect_model_refused(p, p, "4 query heads are not a multiple of 3 key/value heads", "llama.attention.head_count_kv");
}

TEST(ModelFileConfig, GgufAbsurdEmbeddingLength) {
  const auto p = gguf_config("gguf_dim", ~std::uint64_t(0), 4, 4);
  expect_model_refused(p, p, "18446744073709551615 is absurdly large", "llama.embedding_length");
}

// A GGUF model whose vocabulary is broken: the tokenizer's error names the
// GGUF file and the key (the vocabulary code alone knows only the key).
TEST(ModelFileConfig, GgufBadVocabularyNamesTheFile) {
  const auto src = GgufFile::open(source_path("models/kjv-llama.gguf"));
  std::vector<std::pair<std::string, GgufValue>> md;
  for (const auto& [k, v] : src.metadata())
    if (k != "vkquant.tokenizer" && !k.starts_with("tokenizer.")) md.emplace_back(k, v);
  md.emplace_back("tokenizer.ggml.model", gguf_string("bogus"));
  md.emplace_back("tokenizer.ggml.tokens", gguf_string_array({"a", "b"}));
  std::vector<GgufTensorWrite> ts;
  for (const auto& t : src.tensors()) ts.push_back({t.name, t.type, t.ne, src.data(t)});
  const auto p = temp_dir("gguf_vocab") / "m.gguf";
  write_gguf(p, md, ts, std::uint32_t(src.alignment()));
  const auto f = ModelFile::open(p);
  try {
    (void)f.tokenizer();
    ADD_FAILURE() << "an unknown tokenizer model was accepted";
  } catch (const FormatError& e) {
    const std::string what = e.what();
    EXPECT_EQ(e.file(), p) << what;
    EXPECT_NE(what.find(p.string()), std::string::npos) << what;
    EXPECT_NE(what.find("tokenizer.ggml.model: unsupported tokenizer"), std::string::npos) << what;
  }
}

// The bundled GGUF with extra RoPE metadata / tensors: what changes the math
// and is not implemented is refused, naming the key or tensor.
std::filesystem::path gguf_with_rope(const std::string& name, std::vector<std::pair<std::string, GgufValue>> extra,
                                     const std::vector<std::pair<std::string, std::vector<float>>>& tensors = {}) {
  const auto src = GgufFile::open(source_path("models/kjv-llama.gguf"));
  std::vector<std::pair<std::string, GgufValue>> md(src.metadata().begin(), src.metadata().end());
  md.insert(md.end(), extra.begin(), extra.end());
  std::vector<GgufTensorWrite> ts;
  for (const auto& t : src.tensors()) ts.push_back({t.name, t.type, t.ne, src.data(t)});
  for (const auto& [n, v] : tensors)
    ts.push_back({n, 0 /*F32*/, {v.size()}, std::as_bytes(std::span<const float>(v))});
  const auto p = temp_dir(name) / "m.gguf";
  write_gguf(p, md, ts, std::uint32_t(src.alignment()));
  return p;
}

TEST(ModelFileConfig, GgufRopeRefusals) {
  const std::uint32_t half = ModelFile::open(source_path("models/kjv-llama.gguf")).config().head_dim / 2;
  const std::vector<float> ones(half, 1.0f), two(2, 1.0f);
  std::vector<float> negative(half, 1.0f);
  negative[1] = -1.0f;
  struct Case {
    const char* name;
    std::filesystem::path file;
    const char* message;
  } cases[] = {
      {"type", gguf_with_rope("gguf_rope_type", {{"llama.rope.scaling.type", gguf_string("ntk")}}),
       "llama.rope.scaling.type: 'ntk' is not supported (none, linear, yarn, longrope)"},
      {"log_multiplier", gguf_with_rope("gguf_rope_log", {{"llama.rope.scaling.type", gguf_string("yarn")}, {"llama.rope.scaling.factor", gguf_float(4)}, {"llama.rope.scaling.yarn_log_multiplier", gguf_float(0.1f)}}),
       "llama.rope.scaling.yarn_log_multiplier: is not supported"},
      {"factor_without_type", gguf_with_rope("gguf_rope_factor", {{"llama.rope.scaling.factor", gguf_float(4)}}),
       "llama.rope.scaling.factor: 4.000000 without a scaling type"},
      {"freqs_count", gguf_with_rope("gguf_rope_count", {}, {{"rope_freqs.weight", two}}),
       "tensor 'rope_freqs.weight': 2 factors, heads of"},
      {"freqs_negative", gguf_with_rope("gguf_rope_neg", {}, {{"rope_freqs.weight", negative}}),
       "tensor 'rope_freqs.weight': holds -1.000000, not a positive factor"},
      {"longrope_half", gguf_with_rope("gguf_rope_half", {{"llama.rope.scaling.original_context_length", gguf_uint(64)}}, {{"rope_factors_long.weight", ones}}),
       "rope_factors_long.weight / rope_factors_short.weight: LongRoPE needs both"},
  };
  for (const auto& c : cases) expect_model_refused(c.file, c.file, c.message, "");
  // And a valid rope_freqs.weight is taken: factors of 1 leave the table plain.
  const auto ok = ModelFile::open(gguf_with_rope("gguf_rope_ok", {}, {{"rope_freqs.weight", ones}}));
  EXPECT_EQ(ok.config().rope_scaling.freq_factors.size(), half);
}

// What writers refuse to overwrite (vkquant calibrate -o, gauge --html).
TEST(ModelFile, FilesAreEveryFileRead) {
  const auto gguf = source_path("models/kjv-llama.gguf");
  EXPECT_EQ(ModelFile::open(gguf).files(), std::vector<std::filesystem::path>{gguf});

  const auto dir = temp_dir("files");
  write_tiny_model(dir, TinyModel{});
  EXPECT_EQ(ModelFile::open(dir).files(), (std::vector<std::filesystem::path>{dir / "model.safetensors", dir / "config.json"}));

  // The same model in two shards with its index, and a tokenizer beside it.
  std::vector<std::pair<std::string, std::vector<TensorWrite>>> shards{{"model-00001-of-00002.safetensors", {}},
                                                                      {"model-00002-of-00002.safetensors", {}}};
  nlohmann::json map = nlohmann::json::object();
  {
    const auto whole = SafetensorsFile::open(dir / "model.safetensors");
    std::size_t i = 0;
    for (const auto& t : whole.tensors()) {
      auto& [name, writes] = shards[i++ % 2];
      writes.push_back(TensorWrite{t.name, t.dtype, t.shape, whole.data(t)});
      map[t.name] = name;
    }
    for (const auto& [name, writes] : shards) write_safetensors(dir / name, writes);
  }
  std::filesystem::remove(dir / "model.safetensors");
  std::ofstream(dir / "model.safetensors.index.json") << nlohmann::json{{"metadata", nlohmann::json::object()}, {"weight_map", map}};
  std::ofstream(dir / "tokenizer_config.json") << "{}";
  const std::vector<std::filesystem::path> want{dir / shards[0].first, dir / shards[1].first, dir / "model.safetensors.index.json",
                                                dir / "config.json", dir / "tokenizer_config.json"};
  EXPECT_EQ(ModelFile::open(dir).files(), want);
}

TEST(ModelFile, AllowNonfiniteZeroesAndWarnsOncePerTensor) {
  const auto dir = temp_dir("nonfinite_allowed");
  write_tiny_model(dir, TinyModel{}, [](Json&, Tensors& ts) {
    auto& w = ts["model.layers.1.self_attn.o_proj.weight"];
    w[3] = NAN;
    w[7] = -INFINITY;
  });
  std::vector<std::string> warnings;
  const auto f = ModelFile::open(dir, ModelOpenOptions{.allow_nonfinite = true, .warn = [&](const std::string& m) { warnings.push_back(m); }});
  for (int i = 0; i < 2; ++i) {
    const auto w = f.load(Role::wo, 1);
    EXPECT_EQ(w[3], 0.0f);
    EXPECT_EQ(w[7], 0.0f);
    EXPECT_TRUE(std::isfinite(w[4]));
  }
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find(dir.string()), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[0].find("tensor 'model.layers.1.self_attn.o_proj.weight': 2 of 2304 values are NaN or Inf; replaced by 0"),
            std::string::npos)
      << warnings[0];
  // Refused by default, naming the tensor and the count.
  try {
    (void)ModelFile::open(dir).load(Role::wo, 1);
    ADD_FAILURE() << "NaN weights loaded without allow_nonfinite";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("'model.layers.1.self_attn.o_proj.weight': 2 of 2304"), std::string::npos) << e.what();
  }
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
