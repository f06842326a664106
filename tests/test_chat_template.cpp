// Chat templates: each family's real template text (tests/data/chat/templates)
// rendered for each conversation of tests/data/chat/cases.json must equal,
// byte for byte, what real Jinja2 with Hugging Face's settings produced
// (tests/data/chat/expected, from tools/chatref/render.py).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "vkquant/chat.hpp"
#include "vkquant/mapped_file.hpp"

namespace vkq {
namespace {

namespace fs = std::filesystem;

fs::path chat_data(const std::string& rel) { return fs::path(VKQ_SOURCE_DIR) / "tests" / "data" / "chat" / rel; }

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + p.string());
  return {std::istreambuf_iterator<char>(in), {}};
}

const nlohmann::json& cases() {
  static const nlohmann::json j = nlohmann::json::parse(read_file(chat_data("cases.json")));
  return j;
}

struct Case {
  std::string tmpl, conversation;
  bool generation_prompt;
};

std::vector<Case> all_cases() {
  std::vector<Case> out;
  for (const auto& [name, t] : cases()["templates"].items()) {
    for (const auto& [conv, msgs] : cases()["conversations"].items()) out.push_back({name, conv, true});
    out.push_back({name, "sys_user_asst_user", false});
  }
  return out;
}

ChatTemplate load(const std::string& name) {
  const auto& t = cases()["templates"][name];
  const fs::path file = chat_data("templates/" + name + ".jinja");
  return ChatTemplate(read_file(file), t["bos"], t["eos"], file, "chat_template");
}

class ChatTemplateVsJinja2 : public testing::TestWithParam<Case> {};

TEST_P(ChatTemplateVsJinja2, SameBytes) {
  const Case& c = GetParam();
  const ChatTemplate t = load(c.tmpl);
  std::vector<ChatMessage> msgs;
  for (const auto& m : cases()["conversations"][c.conversation]) msgs.push_back({m["role"], m["content"]});
  const std::string expected =
      read_file(chat_data("expected/" + c.tmpl + "." + c.conversation + (c.generation_prompt ? "" : ".nogen") + ".txt"));
  ChatRenderOptions o;
  o.add_generation_prompt = c.generation_prompt;
  o.now = cases()["now"].get<std::int64_t>();
  if (expected.starts_with("error: ")) {
    try {
      t.render(msgs, o);
      FAIL() << "rendered, but Jinja2 raised: " << expected;
    } catch (const FormatError& e) {
      EXPECT_NE(std::string(e.what()).find(expected.substr(7)), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(c.tmpl + ".jinja: chat_template: "), std::string::npos) << e.what();
    }
    return;
  }
  EXPECT_EQ(t.render(msgs, o), expected);
}

INSTANTIATE_TEST_SUITE_P(Families, ChatTemplateVsJinja2, testing::ValuesIn(all_cases()),
                         [](const testing::TestParamInfo<Case>& i) {
                           return i.param.tmpl + "_" + i.param.conversation + (i.param.generation_prompt ? "_gen" : "_nogen");
                         });

TEST(ChatTemplateFamily, each_template_family_and_end_of_turn) {
  for (const auto& [name, t] : cases()["templates"].items()) {
    const ChatTemplate ct = load(name);
    EXPECT_EQ(ct.family(), t["family"].get<std::string>()) << name;
    const auto eot = ct.end_of_turn_pieces();
    EXPECT_FALSE(eot.empty()) << name;
    const std::string fam = ct.family();
    const std::string want = fam == "llama3" ? "<|eot_id|>" : fam == "chatml" ? "<|im_end|>" : fam == "phi3" ? "<|end|>" : "</s>";
    EXPECT_NE(std::find(eot.begin(), eot.end(), want), eot.end()) << name;
  }
  EXPECT_TRUE(load("llama3_1").writes_bos());
  EXPECT_FALSE(load("qwen2_5").writes_bos());
}

// What the subset refuses is refused at load, naming the construct.
TEST(ChatTemplateRefused, unknown_filter_macro_block_set_named) {
  auto refused = [](const std::string& text) -> std::string {
    try {
      ChatTemplate t(text, "", "", "dir/tokenizer_config.json", "chat_template");
    } catch (const FormatError& e) {
      return e.what();
    }
    return "accepted";
  };
  EXPECT_EQ(refused("{{ x | frobnicate }}"),
            "dir/tokenizer_config.json: chat_template: not a template vkquant can render (unknown filter 'frobnicate')");
  EXPECT_NE(refused("{% macro m() %}x{% endmacro %}").find("(unsupported tag {% macro %})"), std::string::npos);
  EXPECT_NE(refused("{% set x %}y{% endset %}").find("{% set %} ... {% endset %} is not supported"), std::string::npos);
  EXPECT_NE(refused("{% if x %}y").find("missing {% elif %}"), std::string::npos);
  EXPECT_NE(refused("{{ 'abc }}").find("unterminated string"), std::string::npos);
  EXPECT_NE(refused("{{ x is frob }}").find("unknown test 'frob'"), std::string::npos);
  EXPECT_NE(refused("{{ frob(1) }}").find("unknown function 'frob'"), std::string::npos);
  EXPECT_NE(refused("{{ " + std::string(300, '(') + "1" + std::string(300, ')') + " }}").find("nesting deeper than 256"),
            std::string::npos);
  std::string nested_ifs;
  for (int i = 0; i < 300; ++i) nested_ifs += "{% if true %}";
  EXPECT_NE(refused(nested_ifs).find("nesting deeper than 256"), std::string::npos);
  EXPECT_EQ(refused("{{ x | trim }}"), "accepted");
}

std::string render(const std::string& text, std::vector<ChatMessage> msgs = {}) {
  return ChatTemplate(text, "<s>", "</s>", "t.jinja", "chat_template").render(msgs, ChatRenderOptions{.now = 0});
}

// Semantics the family templates lean on, each against the value Jinja2 gives.
TEST(ChatTemplateSubset, scoping_slices_whitespace_and_operators) {
  // A set inside a for body stays there; a namespace attribute does not.
  EXPECT_EQ(render("{% set x = 1 %}{% set ns = namespace(y=1) %}{% for i in [1,2] %}{% set x = x + i %}"
                   "{% set ns.y = ns.y + i %}{% endfor %}{{ x }} {{ ns.y }}"),
            "1 4");
  EXPECT_EQ(render("{{ [1,2,3,4][::-1] }} {{ 'abcd'[1:3] }} {{ [1,2,3][-1] }} {{ 'a,b,c'.split(',')[-1] }}"), "[4, 3, 2, 1] bc 3 c");
  EXPECT_EQ(render("a\n  {% if true %}\nb\n  {% endif %}\nc"), "a\nb\nc");  // lstrip_blocks + trim_blocks
  EXPECT_EQ(render("a  {{- ' b ' -}}  c"), "a b c");
  EXPECT_EQ(render("{{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 1 ~ 'x' }} {{ 'b' in 'abc' }} {{ 3 not in [1] }}"), "3 -4 2 1x True True");
  EXPECT_EQ(render("{{ none is none }} {{ x is defined }} {{ (x or 'd') }} {{ 'y' if false else 'n' }} {{ x | default('z') }}"),
            "True False d n z");
  EXPECT_EQ(render("{% for m in messages if m.role != 'system' %}{{ loop.index }}{{ m.role }}{% if loop.last %}.{% endif %}"
                   "{% endfor %}",
                   {{"system", "s"}, {"user", "u"}, {"assistant", "a"}}),
            "1user2assistant.");
  EXPECT_EQ(render("{% for i in range(5) %}{% if i == 1 %}{% continue %}{% endif %}{% if i == 3 %}{% break %}{% endif %}"
                   "{{ i }}{% endfor %}"),
            "02");
  EXPECT_EQ(render("{{ '  x \n'.strip() }}|{{ 'xxaxx'.lstrip('x') }}|{{ ['a','b'] | join(', ') }}|{{ {'k': 'v'} | tojson }}"),
            "x|axx|a, b|{\"k\": \"v\"}");
  EXPECT_EQ(render("{{ strftime_now('%Y-%m-%d') }}"), "1970-01-01");
}

TEST(ChatTemplateSubset, loops_and_output_bounded) {
  EXPECT_THROW(render("{% for i in range(1000000) %}{% for j in range(1000000) %}{% endfor %}{% endfor %}"), FormatError);
  EXPECT_THROW(render("{% for i in range(1000000) %}{{ 'x' * 100 }}{% endfor %}"), FormatError);
  EXPECT_EQ(render("{% for i in range(500) %}{% for j in range(1000) %}{% endfor %}{% endfor %}ok"), "ok");
}

TEST(ChatTemplateSubset, raise_exception_names_source_and_key) {
  try {
    render("{{ raise_exception('roles must alternate') }}");
    FAIL();
  } catch (const FormatError& e) {
    EXPECT_STREQ(e.what(), "t.jinja: chat_template: the template raised an error: roles must alternate");
  }
}

}  // namespace
}  // namespace vkq
