// `vkquant tokenize MODEL (--text FILE | --prompt TEXT)`: the model's token
// ids of a text, one `id -> 'piece'` line per token as llama.cpp's
// llama-tokenize prints them, or JSON. Host only: no Vulkan device is made.
#include <fmt/core.h>

#include <nlohmann/json.hpp>

#include <memory>

#include "commands.hpp"
#include "vkquant/error.hpp"
#include "vkquant/mapped_file.hpp"
#include "vkquant/model/model_file.hpp"

namespace vkq::cli {

namespace {

struct TokenizeFlags {
  std::string model;
  std::string text;
  std::string prompt;
  const CLI::Option* text_given = nullptr;
  const CLI::Option* prompt_given = nullptr;
  bool json = false;
  bool special = false;
  bool bos = false;
  bool ids_only = false;
  bool show_count = false;
};

// Length of the valid UTF-8 sequence at s[i], or 0 when it is not one.
std::size_t utf8_len(std::string_view s, std::size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  std::size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  for (std::size_t k = 1; k < n; ++k)
    if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return 0;
  return n;
}

// The piece for JSON: valid UTF-8 kept, any other byte written as \xNN (a
// byte-level token may hold part of a character).
std::string json_piece(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t n = utf8_len(s, i);
    if (n == 0) {
      out += fmt::format("\\x{:02x}", static_cast<unsigned char>(s[i]));
      ++i;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return out;
}

void tokenize(const TokenizeFlags& f) {
  const bool has_text = f.text_given->count() > 0, has_prompt = f.prompt_given->count() > 0;
  if (has_text == has_prompt) throw UsageError("tokenize: give exactly one of --text FILE and --prompt TEXT");
  const auto model = ModelFile::open(f.model);
  const auto tok = model.tokenizer();
  std::string text = f.prompt;
  if (has_text) {
    const auto file = MappedFile::open(f.text);
    const auto bytes = file.bytes();
    text.assign(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  }
  std::vector<std::int32_t> ids;
  if (f.bos) {
    if (!tok->bos()) throw Error("--bos: " + f.model + " has no BOS token");
    ids.push_back(*tok->bos());
  }
  const auto body = f.special ? tok->encode_special(text) : tok->encode(text);
  ids.insert(ids.end(), body.begin(), body.end());

  // A special token shows as its name; any other token as the bytes it adds.
  auto piece = [&](std::int32_t id) { return tok->is_special(id) ? tok->token_piece(id) : tok->token_bytes(id); };
  if (f.json) {
    nlohmann::ordered_json pieces = nlohmann::ordered_json::array();
    for (const auto id : ids) pieces.push_back(json_piece(piece(id)));
    const nlohmann::ordered_json j{{"model", f.model}, {"tokenizer", tok->kind()}, {"count", ids.size()}, {"ids", ids},
                                   {"pieces", pieces}};
    fmt::print("{}\n", j.dump(2));
    return;
  }
  if (f.ids_only) {
    std::string line = "[";
    for (std::size_t i = 0; i < ids.size(); ++i) line += (i ? ", " : "") + std::to_string(ids[i]);
    fmt::print("{}]\n", line);
  } else {
    // Control bytes and invalid UTF-8 are escaped (\xNN) so each token keeps one line.
    for (const auto id : ids) fmt::print("{:6} -> '{}'\n", id, escape_bytes(piece(id)));
  }
  if (f.show_count) fmt::print("Total number of tokens: {}\n", ids.size());
}

}  // namespace

void add_tokenize(CLI::App& app) {
  auto f = std::make_shared<TokenizeFlags>();
  auto* cmd = app.add_subcommand("tokenize", "Token ids and pieces of a text under a model's tokenizer (no device needed)");
  cmd->add_option("model", f->model, "model: .gguf, .safetensors, index .json or a Hugging Face directory")->required();
  f->text_given = cmd->add_option("--text,-f", f->text, "file whose bytes are tokenized");
  f->prompt_given = cmd->add_option("--prompt,-p", f->prompt, "text to tokenize");
  cmd->add_flag("--special", f->special,
                "match special tokens written in the text (e.g. <|im_start|>) whole, as llama-tokenize does by default");
  cmd->add_flag("--bos", f->bos, "put the model's BOS token first (an error when it has none)");
  cmd->add_flag("--ids", f->ids_only, "print only the ids, as one list [a, b, ...]");
  cmd->add_flag("--show-count", f->show_count, "print the number of tokens last");
  cmd->add_flag("--json", f->json, "print JSON: {model, tokenizer, count, ids, pieces}");
  cmd->callback([f] { tokenize(*f); });
}

}  // namespace vkq::cli
