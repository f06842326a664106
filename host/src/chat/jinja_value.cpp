// Jinja values: truthiness, printing (Python str/repr), JSON and equality.
#include <charconv>
#include <cstdio>

#include "jinja.hpp"

namespace vkq::jinja {

namespace {

std::string float_str(double d) {
  char buf[64];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, d);
  std::string s(buf, ec == std::errc() ? end : buf);
  if (s.find_first_of(".eni") == std::string::npos) s += ".0";  // Python prints 1.0, not 1
  return s;
}

std::string quoted(const std::string& s, char q) {
  std::string r(1, q);
  for (const char c : s) {
    switch (c) {
      case '\\': r += "\\\\"; break;
      case '\n': r += "\\n"; break;
      case '\t': r += "\\t"; break;
      case '\r': r += "\\r"; break;
      default:
        if (c == q) r += '\\';
        r += c;
    }
  }
  return r + q;
}

std::string json_string(const std::string& s) {
  std::string r = "\"";
  for (const char c : s) {
    switch (c) {
      case '"': r += "\\\""; break;
      case '\\': r += "\\\\"; break;
      case '\n': r += "\\n"; break;
      case '\t': r += "\\t"; break;
      case '\r': r += "\\r"; break;
      case '\b': r += "\\b"; break;
      case '\f': r += "\\f"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", unsigned(static_cast<unsigned char>(c)));
          r += buf;
        } else {
          r += c;  // ensure_ascii=False, as Hugging Face's tojson
        }
    }
  }
  return r + '"';
}

}  // namespace

const char* kind_name(Value::Kind k) {
  switch (k) {
    case Value::Kind::undefined: return "undefined";
    case Value::Kind::none: return "none";
    case Value::Kind::boolean: return "boolean";
    case Value::Kind::integer: return "integer";
    case Value::Kind::number: return "float";
    case Value::Kind::string: return "string";
    case Value::Kind::list: return "list";
    case Value::Kind::dict: return "dict";
    case Value::Kind::ns: return "namespace";
    case Value::Kind::function: return "function";
  }
  return "?";
}

bool Value::truthy() const {
  switch (kind) {
    case Kind::undefined:
    case Kind::none: return false;
    case Kind::boolean: return b;
    case Kind::integer: return i != 0;
    case Kind::number: return d != 0;
    case Kind::string: return !s.empty();
    case Kind::list: return !list->empty();
    case Kind::dict: return !dict->empty();
    case Kind::ns:
    case Kind::function: return true;
  }
  return false;
}

std::string Value::str() const {
  switch (kind) {
    case Kind::undefined: return "";
    case Kind::string: return s;
    default: return repr();
  }
}

std::string Value::repr() const {
  switch (kind) {
    case Kind::undefined: return "";
    case Kind::none: return "None";
    case Kind::boolean: return b ? "True" : "False";
    case Kind::integer: return std::to_string(i);
    case Kind::number: return float_str(d);
    case Kind::string: return quoted(s, s.find('\'') != std::string::npos && s.find('"') == std::string::npos ? '"' : '\'');
    case Kind::list: {
      std::string r = "[";
      for (std::size_t k = 0; k < list->size(); ++k) r += (k ? ", " : "") + (*list)[k].repr();
      return r + "]";
    }
    case Kind::dict: {
      std::string r = "{";
      bool first = true;
      for (const auto& [key, v] : *dict) {
        r += (first ? "" : ", ") + quoted(key, '\'') + ": " + v.repr();
        first = false;
      }
      return r + "}";
    }
    case Kind::ns: return "<Namespace>";
    case Kind::function: return "<function " + s + ">";
  }
  return "";
}

std::string Value::json() const {
  switch (kind) {
    case Kind::undefined:
    case Kind::none: return "null";
    case Kind::boolean: return b ? "true" : "false";
    case Kind::integer: return std::to_string(i);
    case Kind::number: return float_str(d);
    case Kind::string: return json_string(s);
    case Kind::list: {
      std::string r = "[";
      for (std::size_t k = 0; k < list->size(); ++k) r += (k ? ", " : "") + (*list)[k].json();
      return r + "]";
    }
    case Kind::dict:
    case Kind::ns: {
      std::string r = "{";
      bool first = true;
      for (const auto& [key, v] : *dict) {
        r += (first ? "" : ", ") + json_string(key) + ": " + v.json();
        first = false;
      }
      return r + "}";
    }
    case Kind::function: throw JinjaError("tojson: a function is not JSON");
  }
  return "null";
}

bool equal(const Value& a, const Value& b) {
  using K = Value::Kind;
  auto numeric = [](const Value& v) { return v.kind == K::integer || v.kind == K::number || v.kind == K::boolean; };
  auto num = [](const Value& v) { return v.kind == K::number ? v.d : v.kind == K::integer ? double(v.i) : double(v.b); };
  if (numeric(a) && numeric(b)) {
    if (a.kind != K::number && b.kind != K::number) return (a.kind == K::integer ? a.i : a.b) == (b.kind == K::integer ? b.i : b.b);
    return num(a) == num(b);
  }
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case K::undefined:
    case K::none: return true;
    case K::string: return a.s == b.s;
    case K::list:
      if (a.list->size() != b.list->size()) return false;
      for (std::size_t k = 0; k < a.list->size(); ++k)
        if (!equal((*a.list)[k], (*b.list)[k])) return false;
      return true;
    case K::dict:
      if (a.dict->size() != b.dict->size()) return false;
      for (const auto& [key, v] : *a.dict) {
        const auto it = b.dict->find(key);
        if (it == b.dict->end() || !equal(v, it->second)) return false;
      }
      return true;
    case K::ns: return a.dict == b.dict;
    case K::function: return a.s == b.s;
    default: return false;
  }
}

}  // namespace vkq::jinja
