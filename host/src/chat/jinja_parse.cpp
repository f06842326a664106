// Jinja subset: the lexer (tags, whitespace control with trim_blocks and
// lstrip_blocks as Hugging Face sets them) and the recursive-descent parser.
#include <cctype>
#include <charconv>

#include "jinja_ast.hpp"

namespace vkq::jinja {

namespace {

// ---------------------------------------------------------------- lexer

struct Token {
  enum class Kind { name, string, integer, number, op, end } kind = Kind::end;
  std::string text;
};

// One piece of the template: text, {{ ... }} or {% ... %} (comments dropped).
struct Item {
  enum class Kind { text, output, stmt } kind = Kind::text;
  std::string text;
  std::vector<Token> tokens;
};

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

// Lexes expression tokens from src[pos] up to the closing `close` ("}}" or
// "%}", possibly preceded by '-' or '+'); returns the position after it.
std::size_t lex_tag(std::string_view src, std::size_t pos, std::string_view close, std::vector<Token>& out, bool& strip_after,
                    bool& keep_after) {
  static const char* const ops[] = {"//", "**", "==", "!=", "<=", ">=", "(", ")", "[", "]", "{", "}", ".", ",", ":",
                                    "|",  "+",  "-",  "*",  "/",  "%",  "~", "<", ">", "="};
  while (pos < src.size()) {
    const char c = src[pos];
    if (is_space(c)) {
      ++pos;
      continue;
    }
    for (const char mod : {'-', '+'})
      if (c == mod && src.substr(pos + 1, close.size()) == close) {
        (mod == '-' ? strip_after : keep_after) = true;
        return pos + 1 + close.size();
      }
    if (src.substr(pos, close.size()) == close) return pos + close.size();
    Token t;
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      const std::size_t start = pos;
      while (pos < src.size() && (std::isalnum(static_cast<unsigned char>(src[pos])) || src[pos] == '_')) ++pos;
      t.kind = Token::Kind::name;
      t.text = src.substr(start, pos - start);
    } else if (std::isdigit(static_cast<unsigned char>(c))) {
      const std::size_t start = pos;
      while (pos < src.size() && std::isdigit(static_cast<unsigned char>(src[pos]))) ++pos;
      t.kind = Token::Kind::integer;
      if (pos + 1 < src.size() && src[pos] == '.' && std::isdigit(static_cast<unsigned char>(src[pos + 1]))) {
        ++pos;
        while (pos < src.size() && std::isdigit(static_cast<unsigned char>(src[pos]))) ++pos;
        t.kind = Token::Kind::number;
      }
      t.text = src.substr(start, pos - start);
    } else if (c == '\'' || c == '"') {
      ++pos;
      t.kind = Token::Kind::string;
      for (;;) {
        if (pos >= src.size()) throw JinjaError("unterminated string");
        const char d = src[pos++];
        if (d == c) break;
        if (d != '\\') {
          t.text += d;
          continue;
        }
        if (pos >= src.size()) throw JinjaError("unterminated string");
        const char e = src[pos++];
        switch (e) {
          case 'n': t.text += '\n'; break;
          case 't': t.text += '\t'; break;
          case 'r': t.text += '\r'; break;
          case '\\': case '\'': case '"': t.text += e; break;
          default: t.text += '\\'; t.text += e;  // Python keeps unknown escapes
        }
      }
    } else {
      for (const char* op : ops)
        if (src.substr(pos, std::char_traits<char>::length(op)) == op) {
          t.kind = Token::Kind::op;
          t.text = op;
          break;
        }
      if (t.kind != Token::Kind::op) throw JinjaError(std::string("unexpected character '") + c + "'");
      pos += t.text.size();
    }
    out.push_back(std::move(t));
  }
  throw JinjaError(std::string("a tag is not closed with '") + std::string(close) + "'");
}

// Splits the source into items, applying whitespace control: '-' strips all
// whitespace on that side; block and comment tags also strip the spaces
// before them on their line (lstrip_blocks, unless '{%+') and one newline
// after them (trim_blocks, unless '+%}').
std::vector<Item> lex(std::string_view src) {
  std::vector<Item> items;
  std::size_t pos = 0;
  bool strip_next = false, trim_next = false;
  auto add_text = [&](std::string text) {
    if (strip_next) {
      std::size_t k = 0;
      while (k < text.size() && is_space(text[k])) ++k;
      text.erase(0, k);
    } else if (trim_next) {
      if (text.starts_with("\r\n")) text.erase(0, 2);
      else if (text.starts_with("\n")) text.erase(0, 1);
    }
    strip_next = trim_next = false;
    items.push_back({Item::Kind::text, std::move(text), {}});
  };
  while (pos <= src.size()) {
    std::size_t open = src.find('{', pos);
    while (open != std::string_view::npos && open + 1 < src.size() && src[open + 1] != '{' && src[open + 1] != '%' &&
           src[open + 1] != '#')
      open = src.find('{', open + 1);
    if (open == std::string_view::npos || open + 1 >= src.size()) {
      add_text(std::string(src.substr(pos)));
      break;
    }
    const char kind = src[open + 1];
    const bool minus = open + 2 < src.size() && src[open + 2] == '-';
    const bool plus = open + 2 < src.size() && src[open + 2] == '+';
    add_text(std::string(src.substr(pos, open - pos)));
    std::string& before = items.back().text;
    if (minus) {
      while (!before.empty() && is_space(before.back())) before.pop_back();
    } else if (kind != '{' && !plus) {
      const std::size_t nl = before.find_last_of('\n');
      const std::size_t line = nl == std::string::npos ? 0 : nl + 1;
      const bool at_line_start = nl != std::string::npos || items.size() == 1;
      if (at_line_start && before.find_first_not_of(" \t", line) == std::string::npos) before.resize(line);
    }
    std::size_t body = open + 2 + ((minus || plus) ? 1 : 0);
    bool strip_after = false, keep_after = false;
    if (kind == '#') {
      const std::size_t end = src.find("#}", body);
      if (end == std::string_view::npos) throw JinjaError("a comment is not closed with '#}'");
      strip_after = end > body && src[end - 1] == '-';
      keep_after = end > body && src[end - 1] == '+';
      pos = end + 2;
    } else {
      Item it;
      it.kind = kind == '{' ? Item::Kind::output : Item::Kind::stmt;
      pos = lex_tag(src, body, kind == '{' ? "}}" : "%}", it.tokens, strip_after, keep_after);
      if (it.tokens.empty()) throw JinjaError("an empty tag");
      items.push_back(std::move(it));
    }
    strip_next = strip_after;
    trim_next = kind != '{' && !keep_after;
  }
  return items;
}

// ---------------------------------------------------------------- expressions

// Nesting bound (expressions and blocks): a hostile template cannot recurse
// the parser (or the renderer, which walks the same tree) off the stack.
constexpr int kMaxDepth = 256;
struct Depth {
  explicit Depth(int& d) : d_(d) {
    if (++d_ > kMaxDepth) throw JinjaError("nesting deeper than " + std::to_string(kMaxDepth));
  }
  ~Depth() { --d_; }
  Depth(const Depth&) = delete;
  Depth& operator=(const Depth&) = delete;
  int& d_;
};

class ExprParser {
 public:
  explicit ExprParser(const std::vector<Token>& t, std::size_t from = 0) : t_(t), i_(from) {}

  ExprPtr expression() {
    const Depth guard(depth_);
    ExprPtr e = or_expr();
    if (is_name("if")) {
      ++i_;
      auto c = std::make_unique<Expr>();
      c->kind = Expr::Kind::cond;
      c->a = or_expr();
      c->b = std::move(e);
      if (is_name("else")) {
        ++i_;
        c->c = expression();
      }
      return c;
    }
    return e;
  }
  bool done() const { return i_ >= t_.size(); }
  std::size_t pos() const { return i_; }
  bool is_name(std::string_view n) const {
    return i_ < t_.size() && t_[i_].kind == Token::Kind::name && t_[i_].text == n;
  }
  bool is_op(std::string_view o) const { return i_ < t_.size() && t_[i_].kind == Token::Kind::op && t_[i_].text == o; }
  void expect_op(std::string_view o) {
    if (!is_op(o)) throw JinjaError("expected '" + std::string(o) + "' " + where());
    ++i_;
  }
  std::string name() {
    if (i_ >= t_.size() || t_[i_].kind != Token::Kind::name) throw JinjaError("expected a name " + where());
    return t_[i_++].text;
  }
  std::string where() const { return i_ < t_.size() ? "at '" + t_[i_].text + "'" : "at the end of a tag"; }

 private:
  static ExprPtr make(Expr::Kind k, ExprPtr a = nullptr, ExprPtr b = nullptr, std::string name = {}) {
    auto e = std::make_unique<Expr>();
    e->kind = k;
    e->a = std::move(a);
    e->b = std::move(b);
    e->name = std::move(name);
    return e;
  }
  ExprPtr or_expr() {
    ExprPtr e = and_expr();
    while (is_name("or")) {
      ++i_;
      e = make(Expr::Kind::binary, std::move(e), and_expr(), "or");
    }
    return e;
  }
  ExprPtr and_expr() {
    ExprPtr e = not_expr();
    while (is_name("and")) {
      ++i_;
      e = make(Expr::Kind::binary, std::move(e), not_expr(), "and");
    }
    return e;
  }
  ExprPtr not_expr() {
    const Depth guard(depth_);
    if (is_name("not")) {
      ++i_;
      return make(Expr::Kind::unary, not_expr(), nullptr, "not");
    }
    return compare();
  }
  ExprPtr compare() {
    ExprPtr e = math1();
    for (;;) {
      std::string op;
      for (const char* o : {"==", "!=", "<", ">", "<=", ">="})
        if (is_op(o)) op = o;
      if (op.empty() && is_name("in")) op = "in";
      if (op.empty() && is_name("not") && i_ + 1 < t_.size() && t_[i_ + 1].kind == Token::Kind::name &&
          t_[i_ + 1].text == "in") {
        op = "not in";
        ++i_;
      }
      if (op.empty()) return e;
      ++i_;
      e = make(Expr::Kind::binary, std::move(e), math1(), op);
    }
  }
  ExprPtr math1() {
    ExprPtr e = concat();
    while (is_op("+") || is_op("-")) {
      const std::string op = t_[i_++].text;
      e = make(Expr::Kind::binary, std::move(e), concat(), op);
    }
    return e;
  }
  ExprPtr concat() {
    ExprPtr e = math2();
    while (is_op("~")) {
      ++i_;
      e = make(Expr::Kind::binary, std::move(e), math2(), "~");
    }
    return e;
  }
  ExprPtr math2() {
    ExprPtr e = unary();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const std::string op = t_[i_++].text;
      e = make(Expr::Kind::binary, std::move(e), unary(), op);
    }
    return e;
  }
  ExprPtr unary() {
    const Depth guard(depth_);
    if (is_op("-") || is_op("+")) {
      const std::string op = t_[i_++].text;
      return make(Expr::Kind::unary, unary(), nullptr, op);
    }
    if (is_op("**")) throw JinjaError("'**' is not supported");
    return filters(postfix(primary()));
  }
  void call_args(Expr& e) {
    expect_op("(");
    while (!is_op(")")) {
      if (i_ + 1 < t_.size() && t_[i_].kind == Token::Kind::name && t_[i_ + 1].kind == Token::Kind::op &&
          t_[i_ + 1].text == "=") {
        std::string key = t_[i_].text;
        i_ += 2;
        e.kwargs.emplace_back(std::move(key), expression());
      } else {
        e.args.push_back(expression());
      }
      if (!is_op(")")) expect_op(",");
    }
    ++i_;
  }
  ExprPtr filters(ExprPtr e) {
    for (;;) {
      if (is_op("|")) {
        ++i_;
        auto f = make(Expr::Kind::filter, std::move(e), nullptr, name());
        if (!known_filter(f->name)) throw JinjaError("unknown filter '" + f->name + "'");
        if (is_op("(")) call_args(*f);
        e = std::move(f);
      } else if (is_name("is")) {
        ++i_;
        const bool negated = is_name("not");
        if (negated) ++i_;
        std::string test = name();  // none, true and false lex as names too
        if (!known_test(test)) throw JinjaError("unknown test '" + test + "'");
        auto t = make(Expr::Kind::test, std::move(e), nullptr, test);
        t->negated = negated;
        if (is_op("(")) {
          call_args(*t);
        } else if (!done() && (t_[i_].kind == Token::Kind::string || t_[i_].kind == Token::Kind::integer ||
                               t_[i_].kind == Token::Kind::number ||
                               (t_[i_].kind == Token::Kind::name && !is_name("and") && !is_name("or") &&
                                !is_name("else") && !is_name("if")))) {
          t->args.push_back(postfix(primary()));  // `is equalto 'x'`
        }
        e = std::move(t);
      } else {
        return e;
      }
    }
  }
  ExprPtr postfix(ExprPtr e) {
    for (;;) {
      if (is_op(".")) {
        ++i_;
        e = make(Expr::Kind::attr, std::move(e), nullptr, name());
      } else if (is_op("[")) {
        ++i_;
        ExprPtr parts[3];
        int n = 0;
        bool slice = false;
        for (;;) {
          if (!is_op(":") && !is_op("]")) parts[n] = expression();
          if (is_op(":")) {
            slice = true;
            if (++n > 2) throw JinjaError("a slice takes at most three parts");
            ++i_;
            continue;
          }
          break;
        }
        expect_op("]");
        if (slice) {
          auto s = make(Expr::Kind::slice, std::move(e));
          for (auto& p : parts) s->args.push_back(std::move(p));
          e = std::move(s);
        } else {
          if (!parts[0]) throw JinjaError("an empty subscript");
          e = make(Expr::Kind::index, std::move(e), std::move(parts[0]));
        }
      } else if (is_op("(")) {
        if (e->kind == Expr::Kind::name && !known_function(e->name))
          throw JinjaError("unknown function '" + e->name + "'");
        auto c = make(Expr::Kind::call, std::move(e));
        call_args(*c);
        e = std::move(c);
      } else {
        return e;
      }
    }
  }
  ExprPtr primary() {
    if (done()) throw JinjaError("an expression is missing " + where());
    const Token& t = t_[i_++];
    auto e = std::make_unique<Expr>();
    switch (t.kind) {
      case Token::Kind::string: {
        std::string s = t.text;
        while (i_ < t_.size() && t_[i_].kind == Token::Kind::string) s += t_[i_++].text;  // 'a' 'b'
        e->value = Value::string(std::move(s));
        return e;
      }
      case Token::Kind::integer: {
        std::int64_t v = 0;
        const auto [p, ec] = std::from_chars(t.text.data(), t.text.data() + t.text.size(), v);
        if (ec != std::errc()) throw JinjaError("integer '" + t.text + "' out of range");
        e->value = Value::integer(v);
        return e;
      }
      case Token::Kind::number:
        e->value = Value::number(std::stod(t.text));
        return e;
      case Token::Kind::name:
        if (t.text == "true" || t.text == "True") e->value = Value::boolean(true);
        else if (t.text == "false" || t.text == "False") e->value = Value::boolean(false);
        else if (t.text == "none" || t.text == "None") e->value = Value::none();
        else {
          e->kind = Expr::Kind::name;
          e->name = t.text;
        }
        return e;
      case Token::Kind::op:
        if (t.text == "(") {
          ExprPtr inner = expression();
          if (is_op(",")) throw JinjaError("tuples are not supported");
          expect_op(")");
          return inner;
        }
        if (t.text == "[") {
          e->kind = Expr::Kind::list;
          while (!is_op("]")) {
            e->args.push_back(expression());
            if (!is_op("]")) expect_op(",");
          }
          ++i_;
          return e;
        }
        if (t.text == "{") {
          e->kind = Expr::Kind::dict;
          while (!is_op("}")) {
            e->args.push_back(expression());
            expect_op(":");
            e->args.push_back(expression());
            if (!is_op("}")) expect_op(",");
          }
          ++i_;
          return e;
        }
        break;
      case Token::Kind::end:
        break;
    }
    --i_;
    throw JinjaError("unexpected " + where());
  }

  const std::vector<Token>& t_;
  std::size_t i_;
  int depth_ = 0;
};

// ---------------------------------------------------------------- statements

class Parser {
 public:
  explicit Parser(std::vector<Item> items) : items_(std::move(items)) {}

  // Nodes until a statement whose keyword is in `stops` (returned in `stop`)
  // or the end (stop empty; an error when `stops` is not empty).
  Body block(std::initializer_list<std::string_view> stops, std::string& stop) {
    const Depth guard(depth_);
    Body out;
    stop.clear();
    while (i_ < items_.size()) {
      Item& it = items_[i_];
      if (it.kind == Item::Kind::text) {
        ++i_;
        if (it.text.empty()) continue;
        auto n = std::make_unique<Node>();
        n->text = std::move(it.text);
        out.push_back(std::move(n));
        continue;
      }
      if (it.kind == Item::Kind::output) {
        ++i_;
        ExprParser p(it.tokens);
        auto n = std::make_unique<Node>();
        n->kind = Node::Kind::output;
        n->expr = p.expression();
        if (!p.done()) throw JinjaError("unexpected " + p.where() + " in {{ ... }}");
        out.push_back(std::move(n));
        continue;
      }
      const std::string kw = it.tokens[0].kind == Token::Kind::name ? it.tokens[0].text : "";
      for (auto s : stops)
        if (kw == s) {
          stop = kw;
          return out;
        }
      ++i_;
      out.push_back(statement(kw, it.tokens));
    }
    if (stops.size() > 0) throw JinjaError("missing {% " + std::string(*stops.begin()) + " %} (or its end tag)");
    return out;
  }

 private:
  static void end_of_tag(const ExprParser& p, std::string_view kw) {
    if (!p.done()) throw JinjaError("unexpected " + p.where() + " in {% " + std::string(kw) + " %}");
  }
  std::unique_ptr<Node> statement(const std::string& kw, const std::vector<Token>& tokens) {
    auto n = std::make_unique<Node>();
    ExprParser p(tokens, 1);
    std::string stop;
    if (kw == "if") {
      n->kind = Node::Kind::if_;
      ExprPtr cond = p.expression();
      end_of_tag(p, kw);
      for (;;) {
        Body body = block({"elif", "else", "endif"}, stop);
        n->branches.emplace_back(std::move(cond), std::move(body));
        const auto& t = items_[i_++].tokens;
        ExprParser q(t, 1);
        if (stop == "elif") {
          cond = q.expression();
          end_of_tag(q, stop);
          continue;
        }
        end_of_tag(q, stop);
        if (stop == "else") {
          n->else_body = block({"endif"}, stop);
          end_of_tag(ExprParser(items_[i_++].tokens, 1), stop);
        }
        return n;
      }
    }
    if (kw == "for") {
      n->kind = Node::Kind::for_;
      n->targets.push_back(p.name());
      while (p.is_op(",")) {
        p.expect_op(",");
        n->targets.push_back(p.name());
      }
      if (!p.is_name("in")) throw JinjaError("expected 'in' " + p.where());
      p.name();
      n->expr = p.expression();  // stops before a trailing `if` (parsed as inline if, which needs no else)
      if (n->expr->kind == Expr::Kind::cond && !n->expr->c) {
        n->filter = std::move(n->expr->a);
        n->expr = std::move(n->expr->b);
      }
      if (p.is_name("recursive")) throw JinjaError("recursive loops are not supported");
      end_of_tag(p, kw);
      n->body = block({"else", "endfor"}, stop);
      end_of_tag(ExprParser(items_[i_++].tokens, 1), stop);
      if (stop == "else") {
        n->else_body = block({"endfor"}, stop);
        end_of_tag(ExprParser(items_[i_++].tokens, 1), stop);
      }
      return n;
    }
    if (kw == "set") {
      n->kind = Node::Kind::set;
      n->targets.push_back(p.name());
      if (p.is_op(".")) {
        p.expect_op(".");
        n->attr = p.name();
      }
      if (!p.is_op("=")) throw JinjaError("block {% set %} ... {% endset %} is not supported");
      p.expect_op("=");
      n->expr = p.expression();
      end_of_tag(p, kw);
      return n;
    }
    if (kw == "break" || kw == "continue") {
      n->kind = kw == "break" ? Node::Kind::break_ : Node::Kind::continue_;
      end_of_tag(p, kw);
      return n;
    }
    throw JinjaError("unsupported tag {% " + (kw.empty() ? tokens[0].text : kw) + " %}");
  }

  std::vector<Item> items_;
  std::size_t i_ = 0;
  int depth_ = 0;
};

}  // namespace

Template::Template(std::string_view source) {
  Parser p(lex(source));
  std::string stop;
  body_ = p.block({}, stop);
}
Template::~Template() = default;
Template::Template(Template&&) noexcept = default;
Template& Template::operator=(Template&&) noexcept = default;

}  // namespace vkq::jinja
