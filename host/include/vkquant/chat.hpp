// Chat templates: a model's own Jinja chat_template (tokenizer_config.json
// beside a safetensors model, or GGUF tokenizer.chat_template), rendered by a
// Jinja subset with Hugging Face's settings (trim_blocks, lstrip_blocks,
// raise_exception, strftime_now). Covers the Llama 2/3.x, Mistral, ChatML
// (Qwen2.5, Qwen3, SmolLM2), Phi-3/3.5 and Zephyr/TinyLlama templates; a
// template using anything outside the subset is refused by name.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace vkq {

class ModelFile;

struct ChatMessage {
  std::string role;  // "system", "user", "assistant"
  std::string content;
};

struct ChatRenderOptions {
  bool add_generation_prompt = true;
  // strftime_now()'s time (seconds since the epoch); unset: now.
  std::optional<std::int64_t> now;
};

class ChatTemplate {
 public:
  // Parses `text`; `source` and `key` name where it came from in errors:
  // vkq::FormatError "SOURCE: KEY: not a template vkquant can render (why)".
  // bos_token / eos_token are the strings the template sees under those names.
  ChatTemplate(const std::string& text, std::string bos_token, std::string eos_token, std::filesystem::path source,
               std::string key);
  ChatTemplate(ChatTemplate&&) noexcept;
  ChatTemplate& operator=(ChatTemplate&&) noexcept;
  ~ChatTemplate();

  // The prompt for `messages`. Throws vkq::FormatError naming the source and
  // key when the template fails (e.g. its raise_exception on roles that do
  // not alternate).
  std::string render(std::span<const ChatMessage> messages, const ChatRenderOptions& o = {}) const;
  // The family recognised from the template's text: "llama3", "chatml",
  // "phi3", "zephyr", "inst" ([INST] ... [/INST]: Llama 2, Mistral) or "other".
  std::string family() const;
  // End-of-turn markers the template writes, of <|eot_id|>, <|im_end|>,
  // <|end|>, </s>, <|endoftext|> (and its eos_token): generation stops there.
  std::vector<std::string> end_of_turn_pieces() const;
  // Whether the template writes bos_token itself (then no BOS is prepended).
  bool writes_bos() const;
  const std::filesystem::path& source() const;
  const std::string& key() const;  // "chat_template" or "tokenizer.chat_template"

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The model's chat template: `chat_template` of tokenizer_config.json beside a
// safetensors model (a string, or a list of {name, template} of which the one
// named "default" is used), or GGUF tokenizer.chat_template. nullopt when the
// model has none; throws vkq::FormatError naming the file and key when it is
// malformed or not a template vkquant can render.
std::optional<ChatTemplate> load_chat_template(const ModelFile& model);
// Where load_chat_template looks, for messages: "DIR/tokenizer_config.json:
// chat_template" or "FILE.gguf: tokenizer.chat_template".
std::string chat_template_location(const ModelFile& model);

}  // namespace vkq
