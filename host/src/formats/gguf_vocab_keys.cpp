// tokenizer.json -> tokenizer.ggml.* (vkquant/gguf_convert.hpp), and the byte
// vocabulary of the bundled byte-level models.
#include "vkquant/gguf_convert.hpp"

#include <cstdio>
#include <map>
#include <optional>

#include "vkquant/error.hpp"
#include "vkquant/mapped_file.hpp"

namespace vkq {

namespace {

using json = nlohmann::json;

enum TokenType : std::int64_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

// gguf-py's does_token_look_special().
bool looks_special(const std::string& t) {
  if (t == "<pad>" || t == "<mask>" || t == "<2mass>" || t == "[@BOS@]") return true;
  auto wrapped = [&](std::string_view a, std::string_view b) { return t.size() >= a.size() + b.size() && t.starts_with(a) && t.ends_with(b); };
  return wrapped("<|", "|>") || wrapped("<\xEF\xBD\x9C", "\xEF\xBD\x9C>") || wrapped("<unused", ">");
}

bool is_byte_token(const std::string& t) {
  auto hex = [](char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f'); };
  return t.size() == 6 && t.starts_with("<0x") && t[5] == '>' && hex(t[3]) && hex(t[4]);
}

// bos_token etc. of tokenizer_config.json: a string, {"content": ...} or null.
std::optional<std::string> config_token(const json& cfg, const char* key) {
  if (!cfg.contains(key) || cfg.at(key).is_null()) return std::nullopt;
  const json& v = cfg.at(key);
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v.at("content").is_string()) return v.at("content").get<std::string>();
  return std::nullopt;
}

}  // namespace

GgufKeys gguf_vocab_keys(const json& tok, const json& tcfg, const json& config, std::uint32_t n, const std::string& pre,
                         const std::filesystem::path& path) {
  auto fail = [&](const std::string& key, const std::string& what) { throw FormatError(path, key + ": " + what); };
  if (!tok.contains("model") || !tok.at("model").is_object()) fail("model", "missing");
  const json& model = tok.at("model");
  if (model.value("type", std::string()) != "BPE") fail("model.type", "only BPE vocabularies are converted");
  const bool spm = model.value("byte_fallback", false);

  std::vector<std::optional<std::string>> text(n);
  std::vector<char> added(n, 0), special(n, 0);
  std::map<std::string, std::int64_t> ids;
  for (const auto& [t, id] : model.at("vocab").items()) {
    const auto i = id.get<std::int64_t>();
    if (i < 0 || i >= std::int64_t(n)) fail("model.vocab", "id " + std::to_string(i) + " of '" + t + "' is past vocab_size " + std::to_string(n));
    text[std::size_t(i)] = t;
    ids[t] = i;
  }
  for (const auto& a : tok.value("added_tokens", json::array())) {
    const auto i = a.at("id").get<std::int64_t>();
    if (i < 0 || i >= std::int64_t(n)) fail("added_tokens", "id " + std::to_string(i) + " is past vocab_size " + std::to_string(n));
    text[std::size_t(i)] = a.at("content").get<std::string>();
    added[std::size_t(i)] = 1;
    special[std::size_t(i)] = a.value("special", false);
    ids[a.at("content").get<std::string>()] = i;
  }

  std::vector<std::string> tokens(n);
  std::vector<std::int64_t> types(n);
  std::vector<double> scores;
  std::int64_t first_normal = -1;
  for (std::uint32_t i = 0; i < n; ++i) {
    if (!text[i]) {
      tokens[i] = "[PAD" + std::to_string(i) + "]";
      types[i] = kUnused;
      continue;
    }
    tokens[i] = *text[i];
    if (added[i]) {
      types[i] = special[i] || looks_special(tokens[i]) ? kControl : kUserDefined;
      if (spm && tokens[i] == "<unk>") types[i] = kUnknown;
    } else if (spm && is_byte_token(tokens[i])) {
      types[i] = kByte;
    } else {
      types[i] = kNormal;
      if (first_normal < 0) first_normal = i;
    }
  }

  GgufKeys kv;
  if (spm) {
    // SentencePiece BPE orders pieces by score; tokenizer.json keeps the order, not the scores.
    for (std::uint32_t i = 0; i < n; ++i)
      scores.push_back(types[i] == kNormal ? -double(std::int64_t(i) - first_normal)
                                           : (types[i] == kUnused || (added[i] && i >= std::uint32_t(first_normal)) ? -1000.0 : 0.0));
    kv.emplace_back("tokenizer.ggml.model", gguf_string("llama"));
    kv.emplace_back("tokenizer.ggml.pre", gguf_string("default"));
    kv.emplace_back("tokenizer.ggml.tokens", gguf_string_array(tokens));
    kv.emplace_back("tokenizer.ggml.scores", gguf_float_array(scores));
    kv.emplace_back("tokenizer.ggml.token_type", gguf_int_array(types));
  } else {
    std::vector<std::string> merges;
    for (const auto& m : model.value("merges", json::array())) {
      if (m.is_string()) merges.push_back(m.get<std::string>());
      else if (m.is_array() && m.size() == 2) merges.push_back(m.at(0).get<std::string>() + " " + m.at(1).get<std::string>());
      else fail("model.merges", "an entry is neither \"a b\" nor [\"a\", \"b\"]");
    }
    kv.emplace_back("tokenizer.ggml.model", gguf_string("gpt2"));
    kv.emplace_back("tokenizer.ggml.pre", gguf_string(pre));
    kv.emplace_back("tokenizer.ggml.tokens", gguf_string_array(tokens));
    kv.emplace_back("tokenizer.ggml.token_type", gguf_int_array(types));
    kv.emplace_back("tokenizer.ggml.merges", gguf_string_array(merges));
  }

  // Special tokens: tokenizer_config.json by name, then config.json's *_token_id (gguf-py SpecialVocab).
  for (auto [typ, gkey] : {std::pair{"bos", "bos_token_id"}, std::pair{"eos", "eos_token_id"},
                           std::pair{"unk", "unknown_token_id"}, std::pair{"sep", "seperator_token_id"},
                           std::pair{"pad", "padding_token_id"}}) {
    std::optional<std::int64_t> id;
    if (const auto t = config_token(tcfg, (std::string(typ) + "_token").c_str()))
      if (const auto it = ids.find(*t); it != ids.end()) id = it->second;
    const std::string ck = std::string(typ) + "_token_id";
    if (!id && config.contains(ck) && config.at(ck).is_number_integer() && config.at(ck).get<std::int64_t>() >= 0 &&
        config.at(ck).get<std::int64_t>() < std::int64_t(n))
      id = config.at(ck).get<std::int64_t>();
    if (id) kv.emplace_back(std::string("tokenizer.ggml.") + gkey, gguf_uint(std::uint64_t(*id)));
  }
  // add_bos / add_eos: tokenizer_config.json, else the post-processor's single template.
  std::optional<bool> add_bos, add_eos;
  if (tcfg.contains("add_bos_token") && tcfg.at("add_bos_token").is_boolean()) add_bos = tcfg.at("add_bos_token").get<bool>();
  if (tcfg.contains("add_eos_token") && tcfg.at("add_eos_token").is_boolean()) add_eos = tcfg.at("add_eos_token").get<bool>();
  if (!add_bos && tok.contains("post_processor") && tok.at("post_processor").is_object()) {
    const json& pp = tok.at("post_processor");
    const json* tp = pp.value("type", "") == "TemplateProcessing" ? &pp : nullptr;
    // tp points into tok: iterate the member itself (value() would return a temporary copy).
    if (!tp && pp.value("type", "") == "Sequence" && pp.contains("processors") && pp.at("processors").is_array())
      for (const auto& p : pp.at("processors"))
        if (p.value("type", "") == "TemplateProcessing") tp = &p;
    if (tp && tp->contains("single") && tp->at("single").is_array() && !tp->at("single").empty()) {
      const json& single = tp->at("single");
      add_bos = single.front().contains("SpecialToken");
      add_eos = single.size() > 1 && single.back().contains("SpecialToken");
    }
  }
  if (add_bos) kv.emplace_back("tokenizer.ggml.add_bos_token", gguf_bool(*add_bos));
  if (add_eos) kv.emplace_back("tokenizer.ggml.add_eos_token", gguf_bool(*add_eos));
  if (spm) {
    bool prefix = false;  // the normalizer's Prepend("▁") is SentencePiece's add_dummy_prefix
    const json& norm = tok.contains("normalizer") && !tok.at("normalizer").is_null() ? tok.at("normalizer") : json();
    for (const auto& s : norm.is_object() ? norm.value("normalizers", json::array({norm})) : json::array())
      if (s.value("type", "") == "Prepend") prefix = true;
    kv.emplace_back("tokenizer.ggml.add_space_prefix", gguf_bool(prefix));
  }
  if (tcfg.contains("chat_template") && tcfg.at("chat_template").is_string())
    kv.emplace_back("tokenizer.chat_template", gguf_string(tcfg.at("chat_template").get<std::string>()));
  return kv;
}

GgufKeys gguf_byte_vocab_keys(std::uint32_t n, std::optional<std::int32_t> bos, std::optional<std::int32_t> eos) {
  std::vector<std::string> tokens;
  std::vector<std::int64_t> types;
  for (std::uint32_t i = 0; i < n; ++i) {
    char hex[16];
    std::snprintf(hex, sizeof hex, "<0x%02X>", unsigned(i));
    if (i == 0x20) tokens.emplace_back("\xE2\x96\x81");  // llama.cpp's SPM tokenizer sees the space as U+2581
    else if (i < 256) tokens.emplace_back(hex);
    else if (bos && std::int64_t(i) == *bos) tokens.emplace_back("<s>");
    else if (eos && std::int64_t(i) == *eos) tokens.emplace_back("</s>");
    else tokens.push_back("<special" + std::to_string(i) + ">");
    types.push_back(i == 0x20 ? kNormal : i < 256 ? kByte : kControl);
  }
  GgufKeys kv;
  kv.emplace_back("tokenizer.ggml.model", gguf_string("llama"));
  kv.emplace_back("tokenizer.ggml.tokens", gguf_string_array(std::move(tokens)));
  kv.emplace_back("tokenizer.ggml.scores", gguf_float_array(std::vector<double>(n, 0.0)));
  kv.emplace_back("tokenizer.ggml.token_type", gguf_int_array(std::move(types)));
  if (bos) kv.emplace_back("tokenizer.ggml.bos_token_id", gguf_uint(std::uint64_t(*bos)));
  if (eos) kv.emplace_back("tokenizer.ggml.eos_token_id", gguf_uint(std::uint64_t(*eos)));
  kv.emplace_back("tokenizer.ggml.add_bos_token", gguf_bool(bos.has_value()));
  kv.emplace_back("tokenizer.ggml.add_eos_token", gguf_bool(false));
  kv.emplace_back("tokenizer.ggml.add_space_prefix", gguf_bool(false));
  kv.emplace_back("vkquant.tokenizer", gguf_string("bytes"));
  return kv;
}

std::optional<std::string> gguf_pre_for_split(const std::string& split) {
  // llama.cpp's names for the three regexes vkquant reads (llama-vocab.cpp).
  if (split == "llama3") return "llama-bpe";
  if (split == "qwen2") return "qwen2";
  if (split == "gpt2") return "gpt-2";
  return std::nullopt;
}

}  // namespace vkq
