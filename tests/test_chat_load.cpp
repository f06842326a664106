// Where a model's chat template comes from: tokenizer_config.json beside a
// safetensors model (a string, or a list of {name, template}) or GGUF
// tokenizer.chat_template; malformed entries are refused naming file and key.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "vkquant/chat.hpp"
#include "vkquant/gguf.hpp"
#include "vkquant/mapped_file.hpp"
#include "vkquant/model/model_file.hpp"

namespace vkq {
namespace {

namespace fs = std::filesystem;

const fs::path kModels = fs::path(VKQ_SOURCE_DIR) / "models";
const std::string kChatml =
    "{% for m in messages %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

// A copy of the bundled safetensors model (links) with `config` as its tokenizer_config.json.
fs::path model_dir(const std::string& name, const nlohmann::json* config) {
  const fs::path dir = fs::temp_directory_path() / ("vkq_chat_" + std::to_string(::getpid())) / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  for (const char* f : {"model.safetensors", "config.json"}) fs::create_symlink(kModels / "kjv-llama" / f, dir / f);
  if (config) std::ofstream(dir / "tokenizer_config.json") << config->dump();
  return dir;
}

std::string load_error(const fs::path& dir) {
  try {
    load_chat_template(ModelFile::open(dir));
  } catch (const FormatError& e) {
    return e.what();
  }
  return "loaded";
}

TEST(ChatLoad, safetensors_string_template_object_bos) {
  const nlohmann::json cfg{{"chat_template", kChatml}, {"bos_token", {{"content", "<bos>"}}}, {"eos_token", "<eos>"}};
  const auto dir = model_dir("string", &cfg);
  const auto t = load_chat_template(ModelFile::open(dir));
  ASSERT_TRUE(t);
  EXPECT_EQ(t->family(), "chatml");
  EXPECT_EQ(t->key(), "chat_template");
  EXPECT_EQ(t->source(), dir / "tokenizer_config.json");
  const std::vector<ChatMessage> msgs{{"user", "hi"}};
  EXPECT_EQ(t->render(msgs), "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
  const auto eot = t->end_of_turn_pieces();
  EXPECT_EQ(eot, (std::vector<std::string>{"<|im_end|>", "<eos>"}));
}

TEST(ChatLoad, safetensors_list_template_default_used) {
  const nlohmann::json cfg{{"chat_template", nlohmann::json::array({{{"name", "tool_use"}, {"template", "{{ 'tools' }}"}},
                                                                    {{"name", "default"}, {"template", kChatml}}})}};
  const auto t = load_chat_template(ModelFile::open(model_dir("list", &cfg)));
  ASSERT_TRUE(t);
  EXPECT_EQ(t->key(), "chat_template[1]");
  EXPECT_EQ(t->family(), "chatml");
}

TEST(ChatLoad, safetensors_malformed_named) {
  const nlohmann::json no_default{{"chat_template", nlohmann::json::array({{{"name", "tool_use"}, {"template", "x"}}})}};
  EXPECT_NE(load_error(model_dir("nodefault", &no_default)).find("tokenizer_config.json: chat_template: a list of templates with none named \"default\""),
            std::string::npos);
  const nlohmann::json number{{"chat_template", 3}};
  EXPECT_NE(load_error(model_dir("number", &number)).find("tokenizer_config.json: chat_template: neither a string nor a list"),
            std::string::npos);
  const nlohmann::json entry{{"chat_template", nlohmann::json::array({{{"name", "default"}}})}};
  EXPECT_NE(load_error(model_dir("entry", &entry)).find("chat_template[0]: not an object with string \"name\" and \"template\""),
            std::string::npos);
  const nlohmann::json macro{{"chat_template", "{% macro f() %}{% endmacro %}"}};
  EXPECT_NE(load_error(model_dir("macro", &macro))
                .find("tokenizer_config.json: chat_template: not a template vkquant can render (unsupported tag {% macro %})"),
            std::string::npos);
  const nlohmann::json bos{{"chat_template", kChatml}, {"bos_token", 5}};
  EXPECT_NE(load_error(model_dir("bos", &bos)).find("tokenizer_config.json: bos_token: neither a string nor an object"),
            std::string::npos);
}

TEST(ChatLoad, safetensors_none_or_null_is_nullopt) {
  const auto bare = model_dir("bare", nullptr);
  const auto m = ModelFile::open(bare);
  EXPECT_FALSE(load_chat_template(m));
  EXPECT_EQ(chat_template_location(m), (bare / "tokenizer_config.json").string() + ": chat_template");
  const nlohmann::json null_template{{"chat_template", nullptr}};
  EXPECT_FALSE(load_chat_template(ModelFile::open(model_dir("null", &null_template))));
}

TEST(ChatLoad, gguf_tokenizer_chat_template) {
  const auto src = GgufFile::open(kModels / "kjv-llama.gguf");
  EXPECT_FALSE(load_chat_template(ModelFile::open(src.path())));
  auto meta = src.metadata();
  meta.emplace_back("tokenizer.chat_template", gguf_string(kChatml));
  std::vector<GgufTensorWrite> tensors;
  for (const auto& t : src.tensors()) tensors.push_back({t.name, t.type, t.ne, src.data(t)});
  const fs::path out = model_dir("gguf", nullptr) / "chat.gguf";
  write_gguf(out, meta, tensors, std::uint32_t(src.alignment()));
  const auto m = ModelFile::open(out);
  const auto t = load_chat_template(m);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->key(), "tokenizer.chat_template");
  EXPECT_EQ(t->source(), out);
  EXPECT_EQ(t->family(), "chatml");
  EXPECT_EQ(chat_template_location(m), out.string() + ": tokenizer.chat_template");
}

}  // namespace
}  // namespace vkq
