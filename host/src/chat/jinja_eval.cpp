// Jinja subset: rendering. Scopes as Jinja's (a for body is a scope, `set`
// inside it does not leak out; namespace attributes do), Python semantics for
// operators, and the filters, tests, functions and methods chat templates use.
#include <algorithm>
#include <cmath>
#include <ctime>
#include <set>

#include "jinja_ast.hpp"

namespace vkq::jinja {

namespace {

using K = Value::Kind;

const std::set<std::string> kFilters = {"trim",     "length",     "count",      "tojson", "join",  "lower",  "upper",
                                        "string",   "first",      "last",       "reverse", "list", "default", "d",
                                        "reject",   "select",     "rejectattr", "selectattr", "map", "capitalize",
                                        "title",    "replace",    "int",        "float",  "items", "safe",   "abs"};
const std::set<std::string> kTests = {"defined", "undefined", "none",   "string", "number",  "integer", "float",
                                      "boolean", "true",      "false",  "mapping", "sequence", "iterable", "odd",
                                      "even",    "divisibleby", "equalto", "eq",   "ne",      "sameas",  "lower",
                                      "upper",   "in"};
const std::set<std::string> kFunctions = {"raise_exception", "namespace", "range", "strftime_now"};

bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

std::string strip(const std::string& s, bool left, bool right, const Value* chars) {
  auto drop = [&](char c) { return chars && chars->kind == K::string ? chars->s.find(c) != std::string::npos : is_ws(c); };
  std::size_t a = 0, b = s.size();
  if (left)
    while (a < b && drop(s[a])) ++a;
  if (right)
    while (b > a && drop(s[b - 1])) --b;
  return s.substr(a, b - a);
}

const Value& arg(const std::vector<Value>& args, std::size_t i, const char* what) {
  if (i >= args.size()) throw JinjaError(std::string(what) + ": missing argument " + std::to_string(i + 1));
  return args[i];
}

const std::string& str_arg(const std::vector<Value>& args, std::size_t i, const char* what) {
  const Value& v = arg(args, i, what);
  if (v.kind != K::string) throw JinjaError(std::string(what) + ": argument " + std::to_string(i + 1) + " is not a string");
  return v.s;
}

// The items a for loop or a filter walks: a list, a dict's keys, a string's characters.
List items_of(const Value& v, const char* what) {
  switch (v.kind) {
    case K::list: return *v.list;
    case K::dict: {
      List out;
      for (const auto& [k, x] : *v.dict) out.push_back(Value::string(k));
      return out;
    }
    case K::string: {
      List out;
      for (char c : v.s) out.push_back(Value::string(std::string(1, c)));
      return out;
    }
    case K::undefined:
    case K::none: return {};
    default: throw JinjaError(std::string(what) + ": a " + kind_name(v.kind) + " is not iterable");
  }
}

double as_number(const Value& v, const char* what) {
  if (v.kind == K::integer) return double(v.i);
  if (v.kind == K::number) return v.d;
  if (v.kind == K::boolean) return v.b;
  throw JinjaError(std::string(what) + ": a " + kind_name(v.kind) + " is not a number");
}

bool is_int(const Value& v) { return v.kind == K::integer || v.kind == K::boolean; }
std::int64_t as_int(const Value& v) { return v.kind == K::boolean ? v.b : v.i; }

std::int64_t py_index(std::int64_t i, std::size_t n) { return i < 0 ? i + std::int64_t(n) : i; }

std::vector<std::string> split(const std::string& s, const Value* sep, std::int64_t maxsplit) {
  std::vector<std::string> out;
  if (sep && sep->kind == K::string) {
    if (sep->s.empty()) throw JinjaError("split: empty separator");
    std::size_t from = 0;
    for (;;) {
      const std::size_t at = s.find(sep->s, from);
      if (at == std::string::npos || (maxsplit >= 0 && std::int64_t(out.size()) >= maxsplit)) break;
      out.push_back(s.substr(from, at - from));
      from = at + sep->s.size();
    }
    out.push_back(s.substr(from));
    return out;
  }
  std::size_t i = 0;  // whitespace runs
  while (i < s.size()) {
    while (i < s.size() && is_ws(s[i])) ++i;
    if (i >= s.size()) break;
    if (maxsplit >= 0 && std::int64_t(out.size()) >= maxsplit) {
      out.push_back(strip(s.substr(i), false, true, nullptr));
      break;
    }
    std::size_t j = i;
    while (j < s.size() && !is_ws(s[j])) ++j;
    out.push_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

enum class Flow { normal, break_, continue_ };

// Work bounds: a template from a file cannot loop or print without end.
constexpr std::uint64_t kMaxIterations = 1'000'000;
constexpr std::size_t kMaxOutput = std::size_t(64) << 20;

class Renderer {
 public:
  Renderer(const Dict& context, std::int64_t now) : now_(now) {
    scopes_.push_back(context);
    scopes_.emplace_back();  // the template's own top-level `set`s
  }

  std::string out;

  Flow exec(const Body& body) {
    for (const auto& n : body) {
      const Flow f = exec(*n);
      if (f != Flow::normal) return f;
    }
    return Flow::normal;
  }

 private:
  Flow exec(const Node& n) {
    switch (n.kind) {
      case Node::Kind::text: append(n.text); return Flow::normal;
      case Node::Kind::output: append(eval(*n.expr).str()); return Flow::normal;
      case Node::Kind::if_:
        for (const auto& [cond, body] : n.branches)
          if (eval(*cond).truthy()) return exec(body);
        return exec(n.else_body);
      case Node::Kind::set: {
        Value v = eval(*n.expr);
        if (n.attr.empty()) {
          scopes_.back()[n.targets[0]] = std::move(v);
          return Flow::normal;
        }
        const Value ns = lookup(n.targets[0]);
        if (ns.kind != K::ns) throw JinjaError("set " + n.targets[0] + "." + n.attr + ": '" + n.targets[0] + "' is not a namespace");
        (*ns.dict)[n.attr] = std::move(v);
        return Flow::normal;
      }
      case Node::Kind::for_: return exec_for(n);
      case Node::Kind::break_: return Flow::break_;
      case Node::Kind::continue_: return Flow::continue_;
    }
    return Flow::normal;
  }

  void append(const std::string& s) {
    if (out.size() + s.size() > kMaxOutput) throw JinjaError("output over " + std::to_string(kMaxOutput) + " bytes");
    out += s;
  }

  void bind(const std::vector<std::string>& targets, const Value& item) {
    if (targets.size() == 1) {
      scopes_.back()[targets[0]] = item;
      return;
    }
    if (item.kind != K::list || item.list->size() != targets.size())
      throw JinjaError("for: cannot unpack a " + std::string(kind_name(item.kind)) + " into " + std::to_string(targets.size()) + " names");
    for (std::size_t k = 0; k < targets.size(); ++k) scopes_.back()[targets[k]] = (*item.list)[k];
  }

  Flow exec_for(const Node& n) {
    List all = items_of(eval(*n.expr), "for");
    List items;
    if (n.filter) {
      for (const auto& it : all) {
        scopes_.emplace_back();
        bind(n.targets, it);
        const bool keep = eval(*n.filter).truthy();
        scopes_.pop_back();
        if (keep) items.push_back(it);
      }
    } else {
      items = std::move(all);
    }
    if (items.empty()) return exec(n.else_body);
    const std::size_t len = items.size();
    for (std::size_t k = 0; k < len; ++k) {
      if (++iterations_ > kMaxIterations) throw JinjaError("over " + std::to_string(kMaxIterations) + " loop iterations");
      scopes_.emplace_back();
      Dict loop{{"index0", Value::integer(std::int64_t(k))},
                {"index", Value::integer(std::int64_t(k + 1))},
                {"revindex0", Value::integer(std::int64_t(len - k - 1))},
                {"revindex", Value::integer(std::int64_t(len - k))},
                {"first", Value::boolean(k == 0)},
                {"last", Value::boolean(k + 1 == len)},
                {"length", Value::integer(std::int64_t(len))}};
      if (k > 0) loop["previtem"] = items[k - 1];
      if (k + 1 < len) loop["nextitem"] = items[k + 1];
      scopes_.back()["loop"] = Value::of_dict(std::move(loop));
      bind(n.targets, items[k]);
      const Flow f = exec(n.body);
      scopes_.pop_back();
      if (f == Flow::break_) break;
    }
    return Flow::normal;
  }

  Value lookup(const std::string& name) const {
    for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it) {
      const auto found = it->find(name);
      if (found != it->end()) return found->second;
    }
    if (kFunctions.count(name)) return Value::function(name);
    return {};
  }

  Value eval(const Expr& e) {
    switch (e.kind) {
      case Expr::Kind::literal: return e.value;
      case Expr::Kind::name: return lookup(e.name);
      case Expr::Kind::list: {
        List l;
        for (const auto& a : e.args) l.push_back(eval(*a));
        return Value::of_list(std::move(l));
      }
      case Expr::Kind::dict: {
        Dict d;
        for (std::size_t k = 0; k + 1 < e.args.size(); k += 2) {
          const Value key = eval(*e.args[k]);
          if (key.kind != K::string) throw JinjaError("dict keys must be strings");
          d[key.s] = eval(*e.args[k + 1]);
        }
        return Value::of_dict(std::move(d));
      }
      case Expr::Kind::attr: return attribute(eval(*e.a), e.name);
      case Expr::Kind::index: return subscript(eval(*e.a), eval(*e.b));
      case Expr::Kind::slice: return slice(e);
      case Expr::Kind::call: return call(e);
      case Expr::Kind::filter: return filter(e);
      case Expr::Kind::test: return Value::boolean(test(e.name, eval(*e.a), values(e.args)) != e.negated);
      case Expr::Kind::unary: {
        const Value v = eval(*e.a);
        if (e.name == "not") return Value::boolean(!v.truthy());
        if (v.kind == K::number) return Value::number(e.name == "-" ? -v.d : v.d);
        if (is_int(v)) return Value::integer(e.name == "-" ? -as_int(v) : as_int(v));
        throw JinjaError("unary " + e.name + ": a " + kind_name(v.kind) + " is not a number");
      }
      case Expr::Kind::binary: return binary(e);
      case Expr::Kind::cond:
        if (eval(*e.a).truthy()) return eval(*e.b);
        return e.c ? eval(*e.c) : Value{};
    }
    return {};
  }

  std::vector<Value> values(const std::vector<ExprPtr>& args) {
    std::vector<Value> v;
    for (const auto& a : args) v.push_back(a ? eval(*a) : Value{});
    return v;
  }

  static Value attribute(const Value& v, const std::string& name) {
    if (v.kind == K::dict || v.kind == K::ns) {
      const auto it = v.dict->find(name);
      return it == v.dict->end() ? Value{} : it->second;
    }
    if (v.kind == K::undefined) throw JinjaError("'" + name + "' of an undefined value");
    return {};
  }

  static Value subscript(const Value& v, const Value& key) {
    if (v.kind == K::dict || v.kind == K::ns) return key.kind == K::string ? attribute(v, key.s) : Value{};
    if ((v.kind == K::list || v.kind == K::string) && is_int(key)) {
      const std::size_t n = v.kind == K::list ? v.list->size() : v.s.size();
      const std::int64_t i = py_index(as_int(key), n);
      if (i < 0 || i >= std::int64_t(n)) return {};
      return v.kind == K::list ? (*v.list)[std::size_t(i)] : Value::string(std::string(1, v.s[std::size_t(i)]));
    }
    if (v.kind == K::undefined) throw JinjaError("subscript of an undefined value");
    return {};
  }

  Value slice(const Expr& e) {
    const Value v = eval(*e.a);
    const auto parts = values(e.args);
    const std::int64_t step = parts[2].defined() && parts[2].kind != K::none ? as_int(parts[2]) : 1;
    if (step == 0) throw JinjaError("slice step cannot be zero");
    if (v.kind != K::list && v.kind != K::string) throw JinjaError(std::string("cannot slice a ") + kind_name(v.kind));
    const std::int64_t n = std::int64_t(v.kind == K::list ? v.list->size() : v.s.size());
    auto bound = [&](const Value& p, std::int64_t dflt) {
      if (!p.defined() || p.kind == K::none) return dflt;
      std::int64_t i = as_int(p);
      if (i < 0) i += n;
      return step > 0 ? std::clamp<std::int64_t>(i, 0, n) : std::clamp<std::int64_t>(i, -1, n - 1);
    };
    const std::int64_t a = bound(parts[0], step > 0 ? 0 : n - 1), b = bound(parts[1], step > 0 ? n : -1);
    List l;
    std::string s;
    for (std::int64_t i = a; step > 0 ? i < b : i > b; i += step) {
      if (v.kind == K::list) l.push_back((*v.list)[std::size_t(i)]);
      else s += v.s[std::size_t(i)];
    }
    return v.kind == K::list ? Value::of_list(std::move(l)) : Value::string(std::move(s));
  }

  Value binary(const Expr& e) {
    const std::string& op = e.name;
    const Value a = eval(*e.a);
    if (op == "and") return a.truthy() ? eval(*e.b) : a;
    if (op == "or") return a.truthy() ? a : eval(*e.b);
    const Value b = eval(*e.b);
    if (op == "==") return Value::boolean(equal(a, b));
    if (op == "!=") return Value::boolean(!equal(a, b));
    if (op == "~") return Value::string(a.str() + b.str());
    if (op == "in" || op == "not in") return Value::boolean(contains(b, a) == (op == "in"));
    if (op == "<" || op == ">" || op == "<=" || op == ">=") {
      int c = 0;
      if (a.kind == K::string && b.kind == K::string) c = a.s < b.s ? -1 : a.s > b.s ? 1 : 0;
      else {
        const double x = as_number(a, op.c_str()), y = as_number(b, op.c_str());
        c = x < y ? -1 : x > y ? 1 : 0;
      }
      return Value::boolean(op == "<" ? c < 0 : op == ">" ? c > 0 : op == "<=" ? c <= 0 : c >= 0);
    }
    if (op == "+" && a.kind == K::string && b.kind == K::string) return Value::string(a.s + b.s);
    if (op == "+" && a.kind == K::list && b.kind == K::list) {
      List l = *a.list;
      l.insert(l.end(), b.list->begin(), b.list->end());
      return Value::of_list(std::move(l));
    }
    if (op == "*" && a.kind == K::string && is_int(b)) {
      std::string s;
      for (std::int64_t k = 0; k < as_int(b); ++k) s += a.s;
      return Value::string(std::move(s));
    }
    if ((a.kind == K::string || b.kind == K::string) && op == "%") throw JinjaError("'%' string formatting is not supported");
    if (!(is_int(a) || a.kind == K::number) || !(is_int(b) || b.kind == K::number))
      throw JinjaError("'" + op + "' of a " + kind_name(a.kind) + " and a " + kind_name(b.kind));
    if (is_int(a) && is_int(b) && op != "/") {
      const std::int64_t x = as_int(a), y = as_int(b);
      if ((op == "//" || op == "%") && y == 0) throw JinjaError("division by zero");
      if (op == "+") return Value::integer(x + y);
      if (op == "-") return Value::integer(x - y);
      if (op == "*") return Value::integer(x * y);
      const std::int64_t q = x / y - ((x % y != 0) && ((x < 0) != (y < 0)));  // Python floors
      return Value::integer(op == "//" ? q : x - q * y);
    }
    const double x = as_number(a, op.c_str()), y = as_number(b, op.c_str());
    if ((op == "/" || op == "//" || op == "%") && y == 0) throw JinjaError("division by zero");
    if (op == "+") return Value::number(x + y);
    if (op == "-") return Value::number(x - y);
    if (op == "*") return Value::number(x * y);
    if (op == "/") return Value::number(x / y);
    if (op == "//") return Value::number(std::floor(x / y));
    return Value::number(x - std::floor(x / y) * y);
  }

  static bool contains(const Value& hay, const Value& needle) {
    if (hay.kind == K::string) {
      if (needle.kind != K::string) throw JinjaError("'in <string>' needs a string on the left");
      return hay.s.find(needle.s) != std::string::npos;
    }
    if (hay.kind == K::list) return std::any_of(hay.list->begin(), hay.list->end(), [&](const Value& x) { return equal(x, needle); });
    if (hay.kind == K::dict || hay.kind == K::ns) return needle.kind == K::string && hay.dict->count(needle.s) > 0;
    if (hay.kind == K::undefined) throw JinjaError("'in' an undefined value");
    throw JinjaError(std::string("'in' a ") + kind_name(hay.kind));
  }

  bool test(const std::string& name, const Value& v, const std::vector<Value>& args) const {
    if (name == "defined") return v.defined();
    if (name == "undefined") return !v.defined();
    if (name == "none") return v.kind == K::none;
    if (name == "string") return v.kind == K::string;
    if (name == "number") return v.kind == K::integer || v.kind == K::number;
    if (name == "integer") return v.kind == K::integer;
    if (name == "float") return v.kind == K::number;
    if (name == "boolean") return v.kind == K::boolean;
    if (name == "true") return v.kind == K::boolean && v.b;
    if (name == "false") return v.kind == K::boolean && !v.b;
    if (name == "mapping") return v.kind == K::dict;
    if (name == "sequence") return v.kind == K::list || v.kind == K::string || v.kind == K::dict;
    if (name == "iterable") return v.kind == K::list || v.kind == K::string || v.kind == K::dict;
    if (name == "odd" || name == "even") {
      if (!is_int(v)) throw JinjaError("test " + name + ": not an integer");
      return (as_int(v) % 2 != 0) == (name == "odd");
    }
    if (name == "divisibleby") {
      const Value& d = arg(args, 0, "divisibleby");
      if (!is_int(v) || !is_int(d) || as_int(d) == 0) throw JinjaError("test divisibleby: needs integers, not 0");
      return as_int(v) % as_int(d) == 0;
    }
    if (name == "equalto" || name == "eq" || name == "sameas") return equal(v, arg(args, 0, name.c_str()));
    if (name == "ne") return !equal(v, arg(args, 0, "ne"));
    if (name == "lower" || name == "upper") {
      if (v.kind != K::string) return false;
      return std::none_of(v.s.begin(), v.s.end(), [&](char c) { return name == "lower" ? std::isupper(static_cast<unsigned char>(c)) : std::islower(static_cast<unsigned char>(c)); });
    }
    if (name == "in") return contains(arg(args, 0, "in"), v);
    throw JinjaError("unknown test '" + name + "'");
  }

  const Value* kwarg(const Expr& e, const std::string& key, std::vector<Value>& store) {
    for (const auto& [k, x] : e.kwargs)
      if (k == key) {
        store.push_back(eval(*x));
        return &store.back();
      }
    return nullptr;
  }

  void no_kwargs(const Expr& e, const std::string& what, std::initializer_list<std::string_view> allowed = {}) {
    for (const auto& [k, x] : e.kwargs)
      if (std::find(allowed.begin(), allowed.end(), k) == allowed.end())
        throw JinjaError(what + ": unsupported argument '" + k + "'");
  }

  Value filter(const Expr& e) {
    const std::string& f = e.name;
    const Value v = eval(*e.a);
    auto args = values(e.args);
    std::vector<Value> store;
    store.reserve(4);
    if (f == "default" || f == "d") {
      no_kwargs(e, f, {"boolean"});
      const Value* boolean = kwarg(e, "boolean", store);
      const bool by_truth = (args.size() > 1 && args[1].truthy()) || (boolean && boolean->truthy());
      const bool use_default = by_truth ? !v.truthy() : !v.defined();
      return use_default ? (args.empty() ? Value::string("") : args[0]) : v;
    }
    if (f == "tojson") {
      no_kwargs(e, f, {"indent"});
      const Value* indent = kwarg(e, "indent", store);
      if ((indent && indent->kind != K::none) || !args.empty()) throw JinjaError("tojson: indent is not supported");
      return Value::string(v.json());
    }
    if (f == "map") {
      no_kwargs(e, f, {"attribute", "default"});
      const Value* attr = kwarg(e, "attribute", store);
      if (!attr || attr->kind != K::string || !args.empty()) throw JinjaError("map: only map(attribute='name') is supported");
      List out;
      for (const auto& x : items_of(v, "map")) out.push_back(attribute(x, attr->s));
      return Value::of_list(std::move(out));
    }
    no_kwargs(e, f);
    if (v.kind == K::undefined && f != "string" && f != "length" && f != "count" && f != "list")
      throw JinjaError("filter " + f + " of an undefined value");
    if (f == "trim") return Value::string(strip(v.str(), true, true, args.empty() ? nullptr : &args[0]));
    if (f == "length" || f == "count") {
      if (v.kind == K::string) return Value::integer(std::int64_t(v.s.size()));
      return Value::integer(std::int64_t(items_of(v, "length").size()));
    }
    if (f == "string") return Value::string(v.str());
    if (f == "safe") return v;
    if (f == "lower" || f == "upper" || f == "capitalize" || f == "title") {
      std::string s = v.str();
      bool start = true;
      for (char& c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (f == "lower" || ((f == "capitalize" || f == "title") && !start)) c = char(std::tolower(u));
        if (f == "upper" || ((f == "capitalize" || f == "title") && start)) c = char(std::toupper(u));
        start = f == "title" ? !std::isalnum(u) : false;
      }
      return Value::string(std::move(s));
    }
    if (f == "replace") {
      std::string s = v.str();
      const std::string& from = str_arg(args, 0, "replace");
      const std::string& to = str_arg(args, 1, "replace");
      if (from.empty()) throw JinjaError("replace: empty pattern");
      for (std::size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) s.replace(at, from.size(), to);
      return Value::string(std::move(s));
    }
    if (f == "int") {
      if (v.kind == K::number) return Value::integer(std::int64_t(v.d));
      if (is_int(v)) return Value::integer(as_int(v));
      if (v.kind == K::string) {
        try {
          return Value::integer(std::stoll(v.s));
        } catch (const std::exception&) {
          return Value::integer(0);
        }
      }
      return Value::integer(0);
    }
    if (f == "float") return Value::number(v.kind == K::string ? std::strtod(v.s.c_str(), nullptr) : as_number(v, "float"));
    if (f == "abs") return v.kind == K::number ? Value::number(std::fabs(v.d)) : Value::integer(std::llabs(as_int(v)));
    if (f == "items") {
      if (v.kind != K::dict) throw JinjaError("items: not a dict");
      List out;
      for (const auto& [k, x] : *v.dict) out.push_back(Value::of_list({Value::string(k), x}));
      return Value::of_list(std::move(out));
    }
    List l = items_of(v, f.c_str());
    if (f == "list") return Value::of_list(std::move(l));
    if (f == "first") return l.empty() ? Value{} : l.front();
    if (f == "last") return l.empty() ? Value{} : l.back();
    if (f == "reverse") {
      if (v.kind == K::string) return Value::string(std::string(v.s.rbegin(), v.s.rend()));
      std::reverse(l.begin(), l.end());
      return Value::of_list(std::move(l));
    }
    if (f == "join") {
      const std::string sep = args.empty() ? "" : str_arg(args, 0, "join");
      std::string s;
      for (std::size_t k = 0; k < l.size(); ++k) s += (k ? sep : "") + l[k].str();
      return Value::string(std::move(s));
    }
    if (f == "select" || f == "reject" || f == "selectattr" || f == "rejectattr") {
      const bool attr = f.ends_with("attr");
      const bool keep_if = f.starts_with("select");
      std::size_t k = 0;
      const std::string attr_name = attr ? str_arg(args, k++, f.c_str()) : "";
      const std::string test_name = k < args.size() ? str_arg(args, k++, f.c_str()) : "";
      if (!test_name.empty() && !kTests.count(test_name)) throw JinjaError(f + ": unknown test '" + test_name + "'");
      const std::vector<Value> test_args(args.begin() + std::ptrdiff_t(k), args.end());
      List out;
      for (const auto& x : l) {
        const Value subject = attr ? attribute(x, attr_name) : x;
        const bool pass = test_name.empty() ? subject.truthy() : test(test_name, subject, test_args);
        if (pass == keep_if) out.push_back(x);
      }
      return Value::of_list(std::move(out));
    }
    throw JinjaError("unknown filter '" + f + "'");
  }

  Value call(const Expr& e) {
    auto args = values(e.args);
    if (e.a->kind == Expr::Kind::attr) return method(eval(*e.a->a), e.a->name, args, e);
    const Value fn = eval(*e.a);
    if (fn.kind != K::function) throw JinjaError(std::string("cannot call a ") + kind_name(fn.kind));
    if (fn.s == "raise_exception") throw JinjaError("the template raised an error: " + arg(args, 0, "raise_exception").str());
    if (fn.s == "namespace") {
      Dict d;
      for (const auto& [k, x] : e.kwargs) d[k] = eval(*x);
      return Value::namespace_(std::move(d));
    }
    no_kwargs(e, fn.s);
    if (fn.s == "range") {
      std::int64_t a = 0, b = 0, step = 1;
      if (args.size() == 1) b = as_int(args[0]);
      else if (args.size() >= 2) a = as_int(args[0]), b = as_int(args[1]);
      if (args.size() == 3) step = as_int(args[2]);
      if (args.empty() || args.size() > 3 || step == 0) throw JinjaError("range: bad arguments");
      if ((b - a) / step > 1'000'000) throw JinjaError("range: over a million items");
      List l;
      for (std::int64_t i = a; step > 0 ? i < b : i > b; i += step) l.push_back(Value::integer(i));
      return Value::of_list(std::move(l));
    }
    if (fn.s == "strftime_now") {
      const std::string& fmt = str_arg(args, 0, "strftime_now");
      const std::time_t t = std::time_t(now_);
      std::tm tm{};
      localtime_r(&t, &tm);
      char buf[256];
      const std::size_t n = std::strftime(buf, sizeof buf, fmt.c_str(), &tm);
      return Value::string(std::string(buf, n));
    }
    throw JinjaError("unknown function '" + fn.s + "'");
  }

  Value method(const Value& self, const std::string& m, const std::vector<Value>& args, const Expr& e) {
    no_kwargs(e, m);
    if (self.kind == K::string) {
      const std::string& s = self.s;
      if (m == "startswith") return Value::boolean(s.starts_with(str_arg(args, 0, "startswith")));
      if (m == "endswith") return Value::boolean(s.ends_with(str_arg(args, 0, "endswith")));
      if (m == "strip" || m == "lstrip" || m == "rstrip")
        return Value::string(strip(s, m != "rstrip", m != "lstrip", args.empty() ? nullptr : &args[0]));
      if (m == "lower" || m == "upper") {
        std::string r = s;
        for (char& c : r) c = char(m == "lower" ? std::tolower(static_cast<unsigned char>(c)) : std::toupper(static_cast<unsigned char>(c)));
        return Value::string(std::move(r));
      }
      if (m == "split") {
        const Value* sep = args.empty() || args[0].kind == K::none ? nullptr : &args[0];
        List l;
        for (auto& p : split(s, sep, args.size() > 1 ? as_int(args[1]) : -1)) l.push_back(Value::string(std::move(p)));
        return Value::of_list(std::move(l));
      }
      if (m == "replace") {
        std::string r = s;
        const std::string& from = str_arg(args, 0, "replace");
        const std::string& to = str_arg(args, 1, "replace");
        if (from.empty()) throw JinjaError("replace: empty pattern");
        for (std::size_t at = r.find(from); at != std::string::npos; at = r.find(from, at + to.size())) r.replace(at, from.size(), to);
        return Value::string(std::move(r));
      }
    }
    if (self.kind == K::dict) {
      if (m == "get") {
        const auto it = self.dict->find(str_arg(args, 0, "get"));
        return it != self.dict->end() ? it->second : args.size() > 1 ? args[1] : Value::none();
      }
      if (m == "items" || m == "keys" || m == "values") {
        List l;
        for (const auto& [k, x] : *self.dict)
          l.push_back(m == "items" ? Value::of_list({Value::string(k), x}) : m == "keys" ? Value::string(k) : x);
        return Value::of_list(std::move(l));
      }
    }
    throw JinjaError("unsupported method " + std::string(kind_name(self.kind)) + "." + m + "()");
  }

  std::vector<Dict> scopes_;
  std::int64_t now_;
  std::uint64_t iterations_ = 0;
};

}  // namespace

bool known_filter(const std::string& name) { return kFilters.count(name) > 0; }
bool known_test(const std::string& name) { return kTests.count(name) > 0; }
bool known_function(const std::string& name) { return kFunctions.count(name) > 0; }

std::string Template::render(const Dict& context, std::int64_t now) const {
  Renderer r(context, now);
  r.exec(body_);
  return std::move(r.out);
}

}  // namespace vkq::jinja
