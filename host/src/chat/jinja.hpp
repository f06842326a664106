// A small Jinja2 subset for chat templates, with Hugging Face's environment
// (trim_blocks, lstrip_blocks, loop controls, raise_exception, strftime_now):
// text, {{ expr }}, {% if/elif/else %}, {% for x in xs [if c] %} with loop.*,
// {% set %} (namespace attributes too), {% break/continue %}, comments and
// whitespace control. Expressions: literals, lists, dicts, attribute and
// subscript access, slices, calls, filters, tests, arithmetic, comparisons,
// `in`, `~`, `and`/`or`/`not` and the inline if. Anything else is refused at
// parse time, naming it (JinjaError).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "vkquant/error.hpp"

namespace vkq::jinja {

// A template the subset cannot parse or render; the message says what.
class JinjaError : public Error {
 public:
  using Error::Error;
};

struct Value;
using List = std::vector<Value>;
using Dict = std::map<std::string, Value>;

// A Jinja value: lists and dicts are shared (Python reference semantics, which
// namespace() attributes rely on).
struct Value {
  enum class Kind { undefined, none, boolean, integer, number, string, list, dict, ns, function };
  Kind kind = Kind::undefined;
  bool b = false;
  std::int64_t i = 0;
  double d = 0;
  std::string s;
  std::shared_ptr<List> list;
  std::shared_ptr<Dict> dict;  // also a namespace's attributes

  static Value none() { return with(Kind::none); }
  static Value boolean(bool v) { auto r = with(Kind::boolean); r.b = v; return r; }
  static Value integer(std::int64_t v) { auto r = with(Kind::integer); r.i = v; return r; }
  static Value number(double v) { auto r = with(Kind::number); r.d = v; return r; }
  static Value string(std::string v) { auto r = with(Kind::string); r.s = std::move(v); return r; }
  static Value of_list(List v) { auto r = with(Kind::list); r.list = std::make_shared<List>(std::move(v)); return r; }
  static Value of_dict(Dict v) { auto r = with(Kind::dict); r.dict = std::make_shared<Dict>(std::move(v)); return r; }
  static Value namespace_(Dict v) { auto r = of_dict(std::move(v)); r.kind = Kind::ns; return r; }
  static Value function(std::string name) { auto r = with(Kind::function); r.s = std::move(name); return r; }

  bool defined() const { return kind != Kind::undefined; }
  // Python truthiness (undefined is false).
  bool truthy() const;
  // What {{ value }} prints (Python str(); undefined prints nothing).
  std::string str() const;
  // Python repr(), for lists and dicts printed whole.
  std::string repr() const;
  // json.dumps(value) with Python's default separators.
  std::string json() const;

 private:
  static Value with(Kind k) { Value v; v.kind = k; return v; }
};

// Python ==.
bool equal(const Value& a, const Value& b);
// The kind's Jinja-facing name ("string", "list", ...), for messages.
const char* kind_name(Value::Kind k);

struct Node;
struct Expr;

// A parsed template: renders with a context of global variables.
class Template {
 public:
  // Throws JinjaError naming the construct the subset does not handle.
  explicit Template(std::string_view source);
  ~Template();
  Template(Template&&) noexcept;
  Template& operator=(Template&&) noexcept;
  // Throws JinjaError on a runtime failure (raise_exception, a bad operand).
  // strftime_now() formats `now` (seconds since the epoch, local time).
  std::string render(const Dict& context, std::int64_t now) const;

 private:
  std::vector<std::unique_ptr<Node>> body_;
};

}  // namespace vkq::jinja
