// R's model formula: parsing, term expansion (R's terms()), TermCode and model.matrix's
// column layout, and the evaluation of expressions. Local, no MPI, no I/O.
#include "natgrad/io/formula.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iterator>
#include <optional>
#include <set>
#include <string_view>

#include "formula_detail.hpp"
#include "natgrad/core/error.hpp"

namespace natgrad {

namespace {

// ---------------------------------------------------------------------------- numbers

/// R's deparse of a non-negative double: up to 15 significant digits, the fixed notation
/// unless the scientific one is shorter ("1e+05", "2.5e-07", "0.1", "123456").
std::string r_number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Inf" : "-Inf";
  if (v == 0) return "0";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.14e", v);
  const double target = std::strtod(buf, nullptr);
  int digits = 15;
  for (int d = 1; d <= 15; ++d) {
    std::snprintf(buf, sizeof buf, "%.*e", d - 1, v);
    if (std::strtod(buf, nullptr) == target) {
      digits = d;
      break;
    }
  }
  std::snprintf(buf, sizeof buf, "%.*e", digits - 1, v);
  std::string sci = buf;
  const int exponent = std::atoi(sci.c_str() + sci.find('e') + 1);
  const int decimals = std::max(0, digits - 1 - exponent);
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  std::string fixed = buf;
  return fixed.size() > sci.size() ? sci : fixed;
}

bool syntactic_name(const std::string& s) {
  if (s.empty()) return false;
  const auto c0 = static_cast<unsigned char>(s[0]);
  if (!(std::isalpha(c0) || s[0] == '.')) return false;
  if (s[0] == '.' && s.size() > 1 && std::isdigit(static_cast<unsigned char>(s[1]))) return false;
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (!(std::isalnum(c) || ch == '.' || ch == '_')) return false;
  }
  static const std::set<std::string> reserved = {"if", "else", "repeat", "while", "function", "for", "next",
                                                 "break", "TRUE", "FALSE", "NULL", "Inf", "NaN", "NA", "in"};
  return reserved.count(s) == 0;
}

// ---------------------------------------------------------------------------- parsing

struct Node {
  enum class Kind { number, name, dot, call, binary, unary, paren } kind = Kind::number;
  double number = 0;
  std::string text;  ///< name, function, or operator
  std::vector<Node> kids;
  std::size_t begin = 0, end = 0;  ///< span in the formula text
};

struct Token {
  enum class Kind { number, name, op, end } kind = Kind::end;
  std::string text;
  double number = 0;
  std::size_t begin = 0, end = 0;
};

class Parser {
 public:
  Parser(const std::string& text, std::string prefix) : s_(text), prefix_(std::move(prefix)) { tokenize(); }

  /// lhs (may be absent) and rhs of the formula.
  std::pair<std::optional<Node>, Node> formula() {
    std::optional<Node> lhs;
    if (!is_op("~")) lhs = comparison();
    if (!is_op("~")) fail("no '~' (write response ~ terms)");
    ++pos_;
    if (peek().kind == Token::Kind::end) fail("no terms after '~'");
    Node rhs = comparison();
    if (peek().kind != Token::Kind::end) fail("unexpected '" + peek().text + "'");
    return {std::move(lhs), std::move(rhs)};
  }

  /// A bare expression (a variable's label).
  Node expression() {
    Node e = comparison();
    if (peek().kind != Token::Kind::end) fail("unexpected '" + peek().text + "'");
    return e;
  }

  [[noreturn]] void fail(const std::string& what) const { throw Error(prefix_ + what); }

 private:
  void tokenize() {
    std::size_t i = 0;
    const std::size_t n = s_.size();
    while (i < n) {
      const char c = s_[i];
      if (std::isspace(static_cast<unsigned char>(c))) {
        ++i;
        continue;
      }
      Token t;
      t.begin = i;
      if (std::isdigit(static_cast<unsigned char>(c)) ||
          (c == '.' && i + 1 < n && std::isdigit(static_cast<unsigned char>(s_[i + 1])))) {
        char* endp = nullptr;
        t.number = std::strtod(s_.c_str() + i, &endp);
        std::size_t j = static_cast<std::size_t>(endp - s_.c_str());
        if (j < n && (s_[j] == 'L' || s_[j] == 'i')) fail("number '" + s_.substr(i, j + 1 - i) + "' is not supported");
        t.kind = Token::Kind::number;
        t.text = s_.substr(i, j - i);
        i = j;
      } else if (std::isalpha(static_cast<unsigned char>(c)) || c == '.' || c == '_') {
        std::size_t j = i;
        while (j < n && (std::isalnum(static_cast<unsigned char>(s_[j])) || s_[j] == '.' || s_[j] == '_')) ++j;
        t.kind = Token::Kind::name;
        t.text = s_.substr(i, j - i);
        i = j;
      } else if (c == '`') {
        const std::size_t j = s_.find('`', i + 1);
        if (j == std::string::npos) fail("unterminated `name`");
        t.kind = Token::Kind::name;
        t.text = s_.substr(i + 1, j - i - 1);
        t.number = 1;  // marks a backquoted name: never '.' the operator
        i = j + 1;
      } else if (c == '%') {
        const std::size_t j = s_.find('%', i + 1);
        if (j == std::string::npos) fail("unterminated operator '" + s_.substr(i) + "'");
        t.kind = Token::Kind::op;
        t.text = s_.substr(i, j + 1 - i);
        i = j + 1;
      } else if (c == '"' || c == '\'') {
        fail("text constants (" + s_.substr(i) + ") are not supported: compare numbers only");
      } else {
        static const char* two[] = {">=", "<=", "==", "!=", "&&", "||", "<-", "->", "|>"};
        t.kind = Token::Kind::op;
        t.text = std::string(1, c);
        for (const char* op : two)
          if (s_.compare(i, 2, op) == 0) t.text = op;
        i += t.text.size();
        static const std::set<std::string> ok = {"+", "-", "*", "/", "^", ":", "~", "(", ")", ",",
                                                 ">=", "<=", "==", "!=", ">", "<"};
        if (!ok.count(t.text)) fail("'" + t.text + "' is not supported in a formula");
      }
      t.end = i;
      tokens_.push_back(t);
    }
    Token e;
    e.begin = e.end = n;
    tokens_.push_back(e);
  }

  const Token& peek() const { return tokens_[pos_]; }
  bool is_op(const char* op) const { return peek().kind == Token::Kind::op && peek().text == op; }

  Node binary(std::string op, Node l, Node r) {
    Node b;
    b.kind = Node::Kind::binary;
    b.text = std::move(op);
    b.begin = l.begin;
    b.end = r.end;
    b.kids.push_back(std::move(l));
    b.kids.push_back(std::move(r));
    return b;
  }

  Node comparison() {
    Node l = additive();
    for (const char* op : {">=", "<=", "==", "!=", ">", "<"}) {
      if (is_op(op)) {
        ++pos_;
        Node r = additive();
        for (const char* op2 : {">=", "<=", "==", "!=", ">", "<"})
          if (is_op(op2)) fail("chained comparison '" + s_.substr(l.begin, peek().end - l.begin) + "'");
        return binary(op, std::move(l), std::move(r));
      }
    }
    return l;
  }
  Node additive() {
    Node l = multiplicative();
    while (is_op("+") || is_op("-")) {
      std::string op = peek().text;
      ++pos_;
      l = binary(op, std::move(l), multiplicative());
    }
    return l;
  }
  Node multiplicative() {
    Node l = special();
    while (is_op("*") || is_op("/")) {
      std::string op = peek().text;
      ++pos_;
      l = binary(op, std::move(l), special());
    }
    return l;
  }
  Node special() {
    Node l = colon();
    while (peek().kind == Token::Kind::op && peek().text.size() > 1 && peek().text[0] == '%') {
      std::string op = peek().text;
      ++pos_;
      l = binary(op, std::move(l), colon());
    }
    return l;
  }
  Node colon() {
    Node l = unary();
    while (is_op(":")) {
      ++pos_;
      l = binary(":", std::move(l), unary());
    }
    return l;
  }
  Node unary() {
    if (is_op("-") || is_op("+")) {
      Node u;
      u.kind = Node::Kind::unary;
      u.text = peek().text;
      u.begin = peek().begin;
      ++pos_;
      u.kids.push_back(unary());
      u.end = u.kids[0].end;
      return u;
    }
    return power();
  }
  Node power() {
    Node b = primary();
    if (is_op("^")) {
      ++pos_;
      return binary("^", std::move(b), unary());
    }
    return b;
  }
  Node primary() {
    const Token t = peek();
    Node n;
    n.begin = t.begin;
    n.end = t.end;
    if (t.kind == Token::Kind::number) {
      ++pos_;
      n.kind = Node::Kind::number;
      n.number = t.number;
      n.text = t.text;
      return n;
    }
    if (t.kind == Token::Kind::name) {
      ++pos_;
      n.text = t.text;
      if (is_op("(") && t.number == 0) {
        ++pos_;
        n.kind = Node::Kind::call;
        if (!is_op(")")) {
          while (true) {
            if (peek().kind == Token::Kind::name && pos_ + 1 < tokens_.size() &&
                tokens_[pos_ + 1].kind == Token::Kind::op && tokens_[pos_ + 1].text == "=")
              fail("named arguments ('" + peek().text + " =') are not supported");
            n.kids.push_back(comparison());
            if (is_op(",")) {
              ++pos_;
              continue;
            }
            break;
          }
        }
        if (!is_op(")")) fail("expected ')' after the arguments of '" + t.text + "('");
        n.end = peek().end;
        ++pos_;
        return n;
      }
      n.kind = (t.text == "." && t.number == 0) ? Node::Kind::dot : Node::Kind::name;
      return n;
    }
    if (t.kind == Token::Kind::op && t.text == "(") {
      ++pos_;
      n.kind = Node::Kind::paren;
      n.kids.push_back(comparison());
      if (!is_op(")")) fail("expected ')'");
      n.end = peek().end;
      ++pos_;
      return n;
    }
    if (t.kind == Token::Kind::end) fail("the formula ends where a term was expected");
    fail("unexpected '" + t.text + "'");
  }

  const std::string& s_;
  std::string prefix_;
  std::vector<Token> tokens_;
  std::size_t pos_ = 0;
};

const std::set<std::string>& expression_functions() {
  static const std::set<std::string> f = {"log", "log1p", "sqrt", "exp", "I"};
  return f;
}
const char* kSupported = "(supported: log, log1p, sqrt, exp, I, factor, offset)";

/// Term encoding, as R's terms.formula (EncodeVars and friends).
class Encoder {
 public:
  Encoder(Formula& f, const std::string& text, const std::vector<std::string>& header,
          const std::vector<std::string>& exclude, const std::string& source,
          const std::vector<std::string>& optional)
      : f_(f), text_(text), header_(header), exclude_(exclude), source_(source), optional_(optional),
        prefix_("--formula '" + text + "': ") {}

  using Set = std::vector<int>;  // variable indices, increasing

  void response(const Node& lhs) {
    term_ = span(lhs);
    Variable v;
    v.expr = to_expr(lhs);
    v.label = deparse(v.expr);
    f_.variables.push_back(std::move(v));
    f_.response = 0;
    for (const std::string& c : columns_of(f_.variables[0].expr)) response_columns_.insert(c);
  }

  void prescan_offsets(const Node& n) {
    if (n.kind == Node::Kind::call && n.text == "offset") {
      for (const Node& k : n.kids) collect_names(k, offset_columns_);
      return;
    }
    if (n.kind == Node::Kind::binary || n.kind == Node::Kind::unary || n.kind == Node::Kind::paren)
      for (const Node& k : n.kids) prescan_offsets(k);
  }

  std::vector<Set> encode(const Node& n) {
    switch (n.kind) {
      case Node::Kind::paren:
        return encode(n.kids[0]);
      case Node::Kind::unary: {
        if (n.text == "+") return encode(n.kids[0]);
        parity_ = !parity_;
        encode(n.kids[0]);
        parity_ = !parity_;
        return {};
      }
      case Node::Kind::binary: {
        const std::string& op = n.text;
        if (op == "+") {
          std::vector<Set> l = encode(n.kids[0]);
          std::vector<Set> r = encode(n.kids[1]);
          l.insert(l.end(), r.begin(), r.end());
          return trim(std::move(l));
        }
        if (op == ":") {
          std::vector<Set> l = encode(n.kids[0]);
          std::vector<Set> r = encode(n.kids[1]);
          return trim(interact(l, r));
        }
        if (op == "*") {
          std::vector<Set> l = encode(n.kids[0]);
          std::vector<Set> r = encode(n.kids[1]);
          std::vector<Set> out = l;
          out.insert(out.end(), r.begin(), r.end());
          std::vector<Set> lr = interact(l, r);
          out.insert(out.end(), lr.begin(), lr.end());
          return trim(std::move(out));
        }
        if (op == "-") {
          std::vector<Set> l = encode(n.kids[0]);
          parity_ = !parity_;
          std::vector<Set> r = encode(n.kids[1]);
          parity_ = !parity_;
          std::vector<Set> out;
          for (Set& t : l)
            if (std::find(r.begin(), r.end(), t) == r.end()) out.push_back(std::move(t));
          return out;
        }
        if (op == "^")
          fail("'^' between terms is not supported in '" + span(n) + "' (write I(" + span(n) + ") for a power)");
        if (op == "/") fail("'/' (nesting) is not supported in '" + span(n) + "' (write I(" + span(n) + ") for a ratio)");
        fail("operator '" + op + "' is not supported in term '" + span(n) + "'");
      }
      case Node::Kind::number: {
        if (n.number == 1) {
          f_.intercept = parity_;
          return {};
        }
        if (n.number == 0) {
          f_.intercept = !parity_;
          return {};
        }
        fail("the number " + n.text + " is not a term (only 0 and 1, for the intercept)");
      }
      case Node::Kind::dot: {
        std::vector<Set> out;
        std::set<std::string> skip(exclude_.begin(), exclude_.end());
        skip.insert(response_columns_.begin(), response_columns_.end());
        skip.insert(offset_columns_.begin(), offset_columns_.end());
        for (const std::string& c : header_) {
          if (skip.count(c)) continue;
          Variable v;
          v.expr.op = Expr::Op::column;
          v.expr.name = c;
          v.label = deparse(v.expr);
          out.push_back({variable(std::move(v))});
        }
        return trim(std::move(out));
      }
      case Node::Kind::name:
      case Node::Kind::call: {
        term_ = span(n);
        Variable v;
        if (n.kind == Node::Kind::call && n.text == "factor") {
          if (n.kids.size() != 1 || n.kids[0].kind != Node::Kind::name)
            fail("factor() takes one column name, in term '" + term_ + "'");
          v.expr = to_expr(n.kids[0]);
          v.factor_call = true;
          v.label = "factor(" + deparse(v.expr) + ")";
          variable(std::move(v));
          return {{index_of_last_}};
        }
        if (n.kind == Node::Kind::call && n.text == "offset") {
          if (n.kids.size() != 1) fail("offset() takes one expression, in term '" + term_ + "'");
          v.expr = to_expr(n.kids[0]);
          v.offset = true;
          v.label = "offset(" + deparse(v.expr) + ")";
          variable(std::move(v));
          return {};
        }
        v.expr = to_expr(n);
        v.label = deparse(v.expr);
        variable(std::move(v));
        return {{index_of_last_}};
      }
    }
    fail("unexpected term");
  }

  Expr to_expr(const Node& n) {
    Expr e;
    switch (n.kind) {
      case Node::Kind::number:
        e.op = Expr::Op::number;
        e.number = n.number;
        return e;
      case Node::Kind::name:
        check_column(n.text);
        e.op = Expr::Op::column;
        e.name = n.text;
        return e;
      case Node::Kind::dot:
        fail("'.' inside an expression, in term '" + term_ + "'");
      case Node::Kind::paren:
        e.op = Expr::Op::call;
        e.name = "(";
        e.args.push_back(to_expr(n.kids[0]));
        return e;
      case Node::Kind::unary:
        if (n.text == "+") return to_expr(n.kids[0]);
        e.op = Expr::Op::neg;
        e.args.push_back(to_expr(n.kids[0]));
        return e;
      case Node::Kind::binary: {
        static const std::pair<const char*, Expr::Op> ops[] = {
            {"+", Expr::Op::add}, {"-", Expr::Op::sub}, {"*", Expr::Op::mul}, {"/", Expr::Op::div},
            {"^", Expr::Op::pow}, {"<", Expr::Op::lt},  {"<=", Expr::Op::le}, {">", Expr::Op::gt},
            {">=", Expr::Op::ge}, {"==", Expr::Op::eq}, {"!=", Expr::Op::ne}};
        for (const auto& [name, op] : ops) {
          if (n.text == name) {
            e.op = op;
            e.args.push_back(to_expr(n.kids[0]));
            e.args.push_back(to_expr(n.kids[1]));
            return e;
          }
        }
        fail("operator '" + n.text + "' is not supported in '" + span(n) + "'");
      }
      case Node::Kind::call: {
        if (!expression_functions().count(n.text)) {
          if (n.text == "factor" || n.text == "offset")
            fail(n.text + "() inside an expression is not supported, in term '" + term_ + "'");
          fail("unknown function '" + n.text + "' in term '" + term_ + "' " + kSupported);
        }
        if (n.kids.size() != 1) fail(n.text + "() takes one argument, in term '" + term_ + "'");
        e.op = Expr::Op::call;
        e.name = n.text;
        e.args.push_back(to_expr(n.kids[0]));
        return e;
      }
    }
    fail("unexpected expression");
  }

  [[noreturn]] void fail(const std::string& what) const { throw Error(prefix_ + what); }

 private:
  std::string span(const Node& n) const {
    std::string s = text_.substr(n.begin, n.end - n.begin);
    return s;
  }

  void collect_names(const Node& n, std::set<std::string>& out) const {
    if (n.kind == Node::Kind::name) out.insert(n.text);
    for (const Node& k : n.kids) collect_names(k, out);
  }

  void check_column(const std::string& c) const {
    if (std::find(header_.begin(), header_.end(), c) != header_.end()) return;
    if (std::find(optional_.begin(), optional_.end(), c) != optional_.end()) return;
    std::string cols;
    for (std::size_t i = 0; i < header_.size() && i < 20; ++i) cols += (i ? ", " : "") + header_[i];
    if (header_.size() > 20) cols += ", ...";
    fail("column '" + c + "' is not in the header" + (source_.empty() ? "" : " of " + source_) + " (columns: " +
         cols + ")");
  }

  int variable(Variable v) {
    for (std::size_t i = 0; i < f_.variables.size(); ++i) {
      if (f_.variables[i].label == v.label && f_.variables[i].offset == v.offset) {
        index_of_last_ = static_cast<int>(i);
        return index_of_last_;
      }
    }
    f_.variables.push_back(std::move(v));
    index_of_last_ = static_cast<int>(f_.variables.size()) - 1;
    return index_of_last_;
  }

  std::vector<Set> interact(const std::vector<Set>& l, const std::vector<Set>& r) const {
    std::vector<Set> out;
    for (const Set& a : l) {
      for (const Set& b : r) {
        Set u;
        std::set_union(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(u));
        out.push_back(std::move(u));
      }
    }
    return out;
  }

  static std::vector<Set> trim(std::vector<Set> terms) {
    std::vector<Set> out;
    for (Set& t : terms)
      if (!t.empty() && std::find(out.begin(), out.end(), t) == out.end()) out.push_back(std::move(t));
    return out;
  }

  Formula& f_;
  const std::string& text_;
  const std::vector<std::string>& header_;
  const std::vector<std::string>& exclude_;
  const std::string& source_;
  const std::vector<std::string>& optional_;
  std::string prefix_;
  std::string term_;
  std::set<std::string> response_columns_;
  std::set<std::string> offset_columns_;
  bool parity_ = true;
  int index_of_last_ = -1;
};

void collect_columns(const Expr& e, std::vector<std::string>& out) {
  if (e.op == Expr::Op::column) {
    if (std::find(out.begin(), out.end(), e.name) == out.end()) out.push_back(e.name);
    return;
  }
  for (const Expr& a : e.args) collect_columns(a, out);
}

}  // namespace

// ---------------------------------------------------------------------------- public

std::string deparse(const Expr& e) {
  switch (e.op) {
    case Expr::Op::number:
      return r_number(e.number);
    case Expr::Op::column:
      return syntactic_name(e.name) ? e.name : "`" + e.name + "`";
    case Expr::Op::neg:
      return "-" + deparse(e.args.at(0));
    case Expr::Op::call:
      if (e.name == "(") return "(" + deparse(e.args.at(0)) + ")";
      return e.name + "(" + deparse(e.args.at(0)) + ")";
    default:
      break;
  }
  const char* op = "";
  switch (e.op) {
    case Expr::Op::add: op = " + "; break;
    case Expr::Op::sub: op = " - "; break;
    case Expr::Op::mul: op = " * "; break;
    case Expr::Op::div: op = "/"; break;
    case Expr::Op::pow: op = "^"; break;
    case Expr::Op::lt: op = " < "; break;
    case Expr::Op::le: op = " <= "; break;
    case Expr::Op::gt: op = " > "; break;
    case Expr::Op::ge: op = " >= "; break;
    case Expr::Op::eq: op = " == "; break;
    case Expr::Op::ne: op = " != "; break;
    default: break;
  }
  return deparse(e.args.at(0)) + op + deparse(e.args.at(1));
}

std::vector<std::string> columns_of(const Expr& e) {
  std::vector<std::string> out;
  collect_columns(e, out);
  return out;
}

std::vector<double> evaluate(const Expr& e, std::size_t n,
                             const std::function<const std::vector<double>&(const std::string&)>& column) {
  switch (e.op) {
    case Expr::Op::number:
      return std::vector<double>(n, e.number);
    case Expr::Op::column: {
      const std::vector<double>& c = column(e.name);
      if (c.size() != n) throw Error("column '" + e.name + "' has " + std::to_string(c.size()) + " values, not " + std::to_string(n));
      return c;
    }
    case Expr::Op::neg: {
      std::vector<double> a = evaluate(e.args.at(0), n, column);
      for (double& x : a) x = -x;
      return a;
    }
    case Expr::Op::call: {
      std::vector<double> a = evaluate(e.args.at(0), n, column);
      if (e.name == "log") {
        for (double& x : a) x = std::log(x);
      } else if (e.name == "log1p") {
        for (double& x : a) x = std::log1p(x);
      } else if (e.name == "sqrt") {
        for (double& x : a) x = std::sqrt(x);
      } else if (e.name == "exp") {
        for (double& x : a) x = std::exp(x);
      } else if (e.name != "I" && e.name != "(") {
        throw Error("unknown function '" + e.name + "' " + kSupported);
      }
      return a;
    }
    default:
      break;
  }
  std::vector<double> a = evaluate(e.args.at(0), n, column);
  const std::vector<double> b = evaluate(e.args.at(1), n, column);
  const auto cmp = [&](auto pred) {
    for (std::size_t i = 0; i < n; ++i)
      a[i] = (std::isnan(a[i]) || std::isnan(b[i])) ? std::nan("") : (pred(a[i], b[i]) ? 1.0 : 0.0);
  };
  switch (e.op) {
    case Expr::Op::add: for (std::size_t i = 0; i < n; ++i) a[i] += b[i]; break;
    case Expr::Op::sub: for (std::size_t i = 0; i < n; ++i) a[i] -= b[i]; break;
    case Expr::Op::mul: for (std::size_t i = 0; i < n; ++i) a[i] *= b[i]; break;
    case Expr::Op::div: for (std::size_t i = 0; i < n; ++i) a[i] /= b[i]; break;
    case Expr::Op::pow:
      for (std::size_t i = 0; i < n; ++i) a[i] = (b[i] == 2.0) ? a[i] * a[i] : std::pow(a[i], b[i]);
      break;
    case Expr::Op::lt: cmp([](double x, double y) { return x < y; }); break;
    case Expr::Op::le: cmp([](double x, double y) { return x <= y; }); break;
    case Expr::Op::gt: cmp([](double x, double y) { return x > y; }); break;
    case Expr::Op::ge: cmp([](double x, double y) { return x >= y; }); break;
    case Expr::Op::eq: cmp([](double x, double y) { return x == y; }); break;
    case Expr::Op::ne: cmp([](double x, double y) { return x != y; }); break;
    default: throw Error("evaluate: unknown operator");
  }
  return a;
}

std::vector<std::string> Formula::columns() const {
  std::vector<std::string> out;
  for (const Variable& v : variables) collect_columns(v.expr, out);
  return out;
}

std::vector<std::string> Formula::factor_columns() const {
  std::vector<std::string> out;
  for (const Variable& v : variables)
    if (v.factor_call) collect_columns(v.expr, out);
  return out;
}

namespace detail {

Formula parse_formula_in(const std::string& text, const std::vector<std::string>& header,
                         const std::vector<std::string>& exclude, const std::string& source,
                         const std::vector<std::string>& optional) {
  Formula f;
  f.text = text;
  Parser p(text, "--formula '" + text + "': ");
  auto [lhs, rhs] = p.formula();
  Encoder enc(f, text, header, exclude, source, optional);
  if (lhs) enc.response(*lhs);
  enc.prescan_offsets(rhs);
  std::vector<Encoder::Set> terms = enc.encode(rhs);
  // A term holding the response (y ~ y + x) is dropped, as R does.
  if (f.response >= 0)
    terms.erase(std::remove_if(terms.begin(), terms.end(),
                               [&](const Encoder::Set& t) {
                                 return std::find(t.begin(), t.end(), f.response) != t.end();
                               }),
                terms.end());
  std::stable_sort(terms.begin(), terms.end(),
                   [](const Encoder::Set& a, const Encoder::Set& b) { return a.size() < b.size(); });
  for (Encoder::Set& t : terms) {
    Term term;
    term.variables = std::move(t);
    for (std::size_t k = 0; k < term.variables.size(); ++k)
      term.label += (k ? ":" : "") + f.variables[static_cast<std::size_t>(term.variables[k])].label;
    f.terms.push_back(std::move(term));
  }
  return f;
}

std::vector<std::string> columns_of_label(const std::string& label) {
  try {
    Parser p(label, "");
    Node n = p.expression();
    std::vector<std::string> out;
    std::function<void(const Node&)> walk = [&](const Node& k) {
      if (k.kind == Node::Kind::name && std::find(out.begin(), out.end(), k.text) == out.end()) out.push_back(k.text);
      for (const Node& c : k.kids) walk(c);
    };
    walk(n);
    return out;
  } catch (const Error&) {
    return {};
  }
}

Coding code_formula(const Formula& f, const std::vector<VariableLevels>& levels) {
  const std::size_t nvar = f.variables.size();
  if (levels.size() != nvar)
    throw Error("code_terms: " + std::to_string(levels.size()) + " level sets for " + std::to_string(nvar) + " variables");
  const std::size_t nterm = f.terms.size();
  // Factors in terms need two or more levels.
  for (const Term& t : f.terms) {
    for (int v : t.variables) {
      const VariableLevels& L = levels[static_cast<std::size_t>(v)];
      if (!L.factor || L.levels.size() >= 2) continue;
      const std::string& label = f.variables[static_cast<std::size_t>(v)].label;
      if (L.levels.empty()) throw Error("factor '" + label + "' has no level in the rows used");
      throw Error("factor '" + label + "' has one level ('" + L.levels[0] +
                  "') in the rows used: a factor in a model needs two or more levels");
    }
  }
  // R's TermCode: 1 = contrasts, 2 = indicators of every level.
  std::vector<std::vector<int>> code(nterm, std::vector<int>(nvar, 0));
  for (std::size_t j = 0; j < nterm; ++j) {
    const std::vector<int>& tv = f.terms[j].variables;
    for (int v : tv) {
      std::vector<int> rest;
      for (int w : tv)
        if (w != v) rest.push_back(w);
      int c = 2;
      if (rest.empty()) {
        c = 1;
      } else {
        for (std::size_t p = 0; p < j && c == 2; ++p) {
          const std::vector<int>& pv = f.terms[p].variables;
          if (std::includes(pv.begin(), pv.end(), rest.begin(), rest.end())) c = 1;
        }
      }
      code[j][static_cast<std::size_t>(v)] = c;
    }
  }
  if (!f.intercept) {
    bool done = false;
    for (std::size_t j = 0; j < nterm && !done; ++j) {
      for (int v : f.terms[j].variables) {
        if (v == f.response) continue;
        if (levels[static_cast<std::size_t>(v)].factor) {
          code[j][static_cast<std::size_t>(v)] = 2;
          done = true;
          break;
        }
      }
    }
  }
  Coding c;
  c.intercept = f.intercept;
  if (f.intercept) c.columns.push_back(DesignColumn{"(Intercept)", {}});
  for (std::size_t j = 0; j < nterm; ++j) {
    TermBlock b;
    b.first_column = static_cast<int>(c.columns.size());
    int stride = 1;
    std::vector<std::vector<int>> level_at;  // per part: the level of each position
    for (int v : f.terms[j].variables) {
      const VariableLevels& L = levels[static_cast<std::size_t>(v)];
      TermPart part;
      part.variable = v;
      part.factor = L.factor;
      part.stride = stride;
      std::vector<int> at;
      if (L.factor) {
        const int nl = static_cast<int>(L.levels.size());
        const int ref = std::clamp(L.reference, 0, nl - 1);
        part.position.assign(static_cast<std::size_t>(nl), -1);
        if (code[j][static_cast<std::size_t>(v)] == 2) at.push_back(ref);
        for (int l = 0; l < nl; ++l)
          if (l != ref) at.push_back(l);
        for (std::size_t p = 0; p < at.size(); ++p) part.position[static_cast<std::size_t>(at[p])] = static_cast<int>(p);
        part.width = static_cast<int>(at.size());
      } else {
        at.push_back(-1);
      }
      stride *= part.width;
      level_at.push_back(std::move(at));
      b.parts.push_back(std::move(part));
    }
    b.width = stride;
    for (int k = 0; k < b.width; ++k) {
      DesignColumn col;
      for (std::size_t p = 0; p < b.parts.size(); ++p) {
        const TermPart& part = b.parts[p];
        const int pos = (k / part.stride) % part.width;
        const int level = level_at[p][static_cast<std::size_t>(pos)];
        const Variable& var = f.variables[static_cast<std::size_t>(part.variable)];
        if (p) col.name += ":";
        col.name += var.label;
        if (part.factor) col.name += levels[static_cast<std::size_t>(part.variable)].levels[static_cast<std::size_t>(level)];
        col.parts.push_back(DesignColumn::Part{part.variable, level});
      }
      c.columns.push_back(std::move(col));
    }
    c.terms.push_back(std::move(b));
  }
  return c;
}

}  // namespace detail

Formula parse_formula(const std::string& text, const std::vector<std::string>& header,
                      const std::vector<std::string>& exclude) {
  return detail::parse_formula_in(text, header, exclude, "", {});
}

std::vector<DesignColumn> code_terms(const Formula& f, const std::vector<VariableLevels>& levels) {
  return detail::code_formula(f, levels).columns;
}

}  // namespace natgrad
