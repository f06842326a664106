// The parsed form of a Jinja template (jinja.hpp): expressions and nodes.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "jinja.hpp"

namespace vkq::jinja {

using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    literal,  // value
    name,     // name
    list,     // args
    dict,     // args: key, value, key, value, ...
    attr,     // a.name
    index,    // a[b]
    slice,    // a[args[0]:args[1]:args[2]] (null: omitted)
    call,     // a(args, kwargs)
    filter,   // a | name(args, kwargs)
    test,     // a is [not] name(args)
    unary,    // op a: "not", "-", "+"
    binary,   // a op b
    cond,     // b if a else c
  };
  Kind kind = Kind::literal;
  Value value;
  std::string name;  // name, attribute, filter, test or operator
  bool negated = false;
  ExprPtr a, b, c;
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
};

using Body = std::vector<std::unique_ptr<Node>>;

struct Node {
  enum class Kind { text, output, if_, for_, set, break_, continue_ };
  Kind kind = Kind::text;
  std::string text;
  ExprPtr expr;                                   // output, set's value, for's iterable
  std::vector<std::pair<ExprPtr, Body>> branches; // if / elif conditions and bodies
  Body else_body;                                 // if's else, for's else
  std::vector<std::string> targets;               // for's loop variables, set's name
  std::string attr;                               // set ns.attr
  ExprPtr filter;                                 // for ... if filter
  Body body;                                      // for's body
};

// What the evaluator implements (checked while parsing, so a template using
// anything else is refused when it is loaded, not half-way through a chat).
bool known_filter(const std::string& name);
bool known_test(const std::string& name);
bool known_function(const std::string& name);

}  // namespace vkq::jinja
