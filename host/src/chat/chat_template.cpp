// A model's chat template: where it is read from, how it is rendered, and
// what it says about turns (family, end-of-turn markers, BOS).
#include <algorithm>
#include <chrono>

#include "jinja.hpp"
#include "vkquant/chat.hpp"
#include "vkquant/gguf.hpp"
#include "vkquant/json_strict.hpp"
#include "vkquant/mapped_file.hpp"
#include "vkquant/model/model_file.hpp"

namespace vkq {

struct ChatTemplate::Impl {
  std::string text, bos, eos;
  std::filesystem::path source;
  std::string key;
  jinja::Template tmpl;
};

ChatTemplate::ChatTemplate(const std::string& text, std::string bos_token, std::string eos_token,
                           std::filesystem::path source, std::string key) {
  try {
    impl_.reset(new Impl{text, std::move(bos_token), std::move(eos_token), source, key, jinja::Template(text)});
  } catch (const jinja::JinjaError& e) {
    throw FormatError(source, key + ": not a template vkquant can render (" + e.what() + ")");
  }
}
ChatTemplate::ChatTemplate(ChatTemplate&&) noexcept = default;
ChatTemplate& ChatTemplate::operator=(ChatTemplate&&) noexcept = default;
ChatTemplate::~ChatTemplate() = default;

std::string ChatTemplate::render(std::span<const ChatMessage> messages, const ChatRenderOptions& o) const {
  jinja::List msgs;
  for (const auto& m : messages)
    msgs.push_back(jinja::Value::of_dict({{"role", jinja::Value::string(m.role)}, {"content", jinja::Value::string(m.content)}}));
  const jinja::Dict context{{"messages", jinja::Value::of_list(std::move(msgs))},
                            {"add_generation_prompt", jinja::Value::boolean(o.add_generation_prompt)},
                            {"bos_token", jinja::Value::string(impl_->bos)},
                            {"eos_token", jinja::Value::string(impl_->eos)}};
  const std::int64_t now =
      o.now ? *o.now
            : std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  try {
    return impl_->tmpl.render(context, now);
  } catch (const jinja::JinjaError& e) {
    throw FormatError(impl_->source, impl_->key + ": " + e.what());
  }
}

std::string ChatTemplate::family() const {
  const std::string& t = impl_->text;
  auto has = [&](const char* s) { return t.find(s) != std::string::npos; };
  if (has("<|start_header_id|>")) return "llama3";
  if (has("<|im_start|>")) return "chatml";
  if (has("<|user|>")) return has("<|end|>") ? "phi3" : "zephyr";
  if (has("[INST]")) return "inst";
  return "other";
}

std::vector<std::string> ChatTemplate::end_of_turn_pieces() const {
  std::vector<std::string> out;
  for (const char* p : {"<|eot_id|>", "<|im_end|>", "<|end|>", "</s>", "<|endoftext|>"})
    if (impl_->text.find(p) != std::string::npos) out.push_back(p);
  if (!impl_->eos.empty() && std::find(out.begin(), out.end(), impl_->eos) == out.end()) out.push_back(impl_->eos);
  return out;
}

bool ChatTemplate::writes_bos() const { return impl_->text.find("bos_token") != std::string::npos; }
const std::filesystem::path& ChatTemplate::source() const { return impl_->source; }
const std::string& ChatTemplate::key() const { return impl_->key; }

namespace {

// tokenizer_config.json's bos_token / eos_token: a string, an AddedToken
// object ({"content": ...}) or null.
std::string special_string(const nlohmann::json& cfg, const char* key, const std::filesystem::path& file) {
  if (!cfg.contains(key) || cfg[key].is_null()) return "";
  const auto& v = cfg[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  throw FormatError(file, std::string(key) + ": neither a string nor an object with a string \"content\"");
}

std::optional<std::filesystem::path> tokenizer_config(const ModelFile& model) {
  for (const auto& f : model.files())
    if (f.filename() == "tokenizer_config.json") return f;
  return std::nullopt;
}

std::filesystem::path model_directory(const ModelFile& model) {
  for (const auto& f : model.files())
    if (f.filename() == "config.json") return f.parent_path();
  return model.path().parent_path();
}

std::optional<ChatTemplate> from_gguf(const std::filesystem::path& path) {
  const auto g = GgufFile::open(path);
  const auto text = g.get_string("tokenizer.chat_template");
  if (!text) return std::nullopt;
  std::string bos, eos;
  if (const auto tokens = g.get_strings("tokenizer.ggml.tokens")) {
    auto piece = [&](const char* key) -> std::string {
      const auto id = g.get_uint(key);
      return id && *id < tokens->size() ? (*tokens)[*id] : "";
    };
    bos = piece("tokenizer.ggml.bos_token_id");
    eos = piece("tokenizer.ggml.eos_token_id");
  }
  return ChatTemplate(*text, bos, eos, path, "tokenizer.chat_template");
}

}  // namespace

std::string chat_template_location(const ModelFile& model) {
  if (model.format() == Format::gguf) return model.path().string() + ": tokenizer.chat_template";
  return (model_directory(model) / "tokenizer_config.json").string() + ": chat_template";
}

std::optional<ChatTemplate> load_chat_template(const ModelFile& model) {
  if (model.format() == Format::gguf) return from_gguf(model.path());
  const auto file = tokenizer_config(model);
  if (!file) return std::nullopt;
  const auto cfg = read_json_file(*file, "tokenizer_config.json");
  if (!cfg.is_object()) throw FormatError(*file, "not a JSON object");
  if (!cfg.contains("chat_template") || cfg["chat_template"].is_null()) return std::nullopt;
  const auto& ct = cfg["chat_template"];
  std::string text;
  std::string key = "chat_template";
  if (ct.is_string()) {
    text = ct.get<std::string>();
  } else if (ct.is_array()) {
    bool found = false;
    for (std::size_t i = 0; i < ct.size(); ++i) {
      const auto& e = ct[i];
      const std::string at = "chat_template[" + std::to_string(i) + "]";
      if (!e.is_object() || !e.contains("name") || !e["name"].is_string() || !e.contains("template") ||
          !e["template"].is_string())
        throw FormatError(*file, at + ": not an object with string \"name\" and \"template\"");
      if (e["name"] == "default") {
        text = e["template"].get<std::string>();
        key = at;
        found = true;
      }
    }
    if (!found) throw FormatError(*file, "chat_template: a list of templates with none named \"default\"");
  } else {
    throw FormatError(*file, "chat_template: neither a string nor a list of {name, template}");
  }
  return ChatTemplate(text, special_string(cfg, "bos_token", *file), special_string(cfg, "eos_token", *file), *file, key);
}

}  // namespace vkq
