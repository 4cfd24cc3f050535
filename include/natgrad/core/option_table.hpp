#pragma once
/// \file option_table.hpp
/// Options declared once. Each option of natgrad is one row of a table: its name, the
/// struct member it sets, its default, its help text, its check, and whether it belongs
/// in the checkpoint fingerprint and in model.json. Everything else iterates the tables:
/// the command line's Boost.Program_options descriptions and `--config` files (src/cli),
/// validation (FitOptions::validate, GlmOptions::validate, ReadOptions::validate), the
/// checkpoint fingerprint, model.json's "options" and predict's reading of a model's
/// options. Each layer owns the rows of its own structs (core: fit_option_table,
/// glm_option_table; io: read_option_table; app: the command tables) and a layer above
/// nests them with nest(). Local, no MPI, no Boost.
#include <charconv>
#include <cmath>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <limits>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <vector>

#include "natgrad/core/error.hpp"

namespace natgrad {

/// What else an option's row says about it.
enum OptionFlags : unsigned {
  kOptionRequired = 1u,     ///< must be given on the command line or in the config file
  kOptionSwitch = 2u,       ///< a flag without a value: "true" when given, else "false"
  kOptionFingerprint = 4u,  ///< part of the checkpoint fingerprint: it changes the iterates
  kOptionRecorded = 8u,     ///< written into model.json's "options" (and read back by predict)
  kOptionResult = kOptionFingerprint | kOptionRecorded,  ///< changes the answer, and recorded
};

/// One option of a struct T.
template <class T>
struct Option {
  std::string name;           ///< as on the command line, without the leading "--"
  std::string help;           ///< one line (or a few) for --help
  std::string default_text;   ///< the default as the user would type it; "" = none
  unsigned flags = 0;         ///< OptionFlags
  /// Sets the member from text; throws natgrad::Error naming the option on bad text.
  std::function<void(T&, const std::string&)> parse;
  /// The member's value as a JSON literal (number, "string", true/false).
  std::function<std::string(const T&)> json;
  /// Throws natgrad::Error naming the option when the member's value is out of range.
  std::function<void(const T&)> check;

  bool has(unsigned f) const { return (flags & f) != 0; }
};

template <class T>
using OptionTable = std::vector<Option<T>>;

/// The rows of \p inner as rows of an outer struct that holds an Inner reached by \p get,
/// a generic callable (auto& outer) -> auto& giving the Inner of a (const) Outer.
template <class Outer, class Inner, class Get>
OptionTable<Outer> nest(const OptionTable<Inner>& inner, Get get) {
  OptionTable<Outer> out;
  out.reserve(inner.size());
  for (const Option<Inner>& o : inner) {
    Option<Outer> n;
    n.name = o.name;
    n.help = o.help;
    n.default_text = o.default_text;
    n.flags = o.flags;
    n.parse = [p = o.parse, get](Outer& t, const std::string& s) { p(get(t), s); };
    n.json = [j = o.json, get](const Outer& t) { return j(get(t)); };
    if (o.check) n.check = [c = o.check, get](const Outer& t) { c(get(t)); };
    out.push_back(std::move(n));
  }
  return out;
}

/// The rows of \p parts one after the other, e.g. join<T>({nest<T>(...), {row, row}}).
template <class T>
OptionTable<T> join(std::initializer_list<OptionTable<T>> parts) {
  OptionTable<T> t;
  for (const auto& p : parts) t.insert(t.end(), p.begin(), p.end());
  return t;
}

/// The row named \p name, or nullptr.
template <class T>
const Option<T>* find_option(const OptionTable<T>& table, std::string_view name) {
  for (const auto& o : table)
    if (o.name == name) return &o;
  return nullptr;
}

/// Runs every row's check on \p value (throws natgrad::Error at the first failure).
template <class T>
void check_options(const OptionTable<T>& table, const T& value) {
  for (const auto& o : table)
    if (o.check) o.check(value);
}

/// A JSON object {"name": value, ...} of the rows that have every flag in \p flags.
template <class T>
std::string options_json(const OptionTable<T>& table, const T& value, unsigned flags) {
  std::string s = "{";
  for (const auto& o : table) {
    if ((o.flags & flags) != flags) continue;
    if (s.size() > 1) s += ',';
    s += '"' + o.name + "\":" + o.json(value);
  }
  return s + '}';
}

namespace option_detail {

std::string json_string(std::string_view s);
std::string json_number(double v);

/// Text to a number with from_chars: the whole text, finite. Throws Error naming --name.
template <class N>
N parse_number(const std::string& name, const std::string& s) {
  N v{};
  const char* b = s.data();
  const char* e = b + s.size();
  while (b < e && (*b == ' ' || *b == '\t')) ++b;
  while (e > b && (e[-1] == ' ' || e[-1] == '\t')) --e;
  if (b < e && *b == '+') ++b;
  const auto [ptr, ec] = std::from_chars(b, e, v);
  if (ec != std::errc() || ptr != e || b == e) {
    const char* what = std::is_integral_v<N> ? "an integer" : "a number";
    throw Error("--" + name + " '" + s + "' is not " + what);
  }
  return v;
}

}  // namespace option_detail

/// A numeric option (int, std::int64_t, std::uint64_t or double) stored in T::*member.
/// \p check receives the value and returns "" or what is wrong ("must be >= 0"), which is
/// reported as "--name must be >= 0".
template <class T, class N>
Option<T> number_option(std::string name, N T::*member, std::string default_text, std::string help,
                        unsigned flags = 0, std::function<std::string(N)> check = {}) {
  Option<T> o;
  o.name = name;
  o.help = std::move(help);
  o.default_text = std::move(default_text);
  o.flags = flags;
  o.parse = [name, member](T& t, const std::string& s) { t.*member = option_detail::parse_number<N>(name, s); };
  o.json = [member](const T& t) {
    if constexpr (std::is_floating_point_v<N>) return option_detail::json_number(t.*member);
    else return std::to_string(t.*member);
  };
  if (check)
    o.check = [name, member, check](const T& t) {
      const std::string why = check(t.*member);
      if (!why.empty()) throw Error("--" + name + " " + why);
    };
  return o;
}

/// A text option stored in T::*member (std::string or std::filesystem::path).
template <class T, class S>
Option<T> text_option(std::string name, S T::*member, std::string default_text, std::string help,
                      unsigned flags = 0, std::function<std::string(const std::string&)> check = {}) {
  Option<T> o;
  o.name = name;
  o.help = std::move(help);
  o.default_text = std::move(default_text);
  o.flags = flags;
  o.parse = [member](T& t, const std::string& s) { t.*member = S(s); };
  o.json = [member](const T& t) { return option_detail::json_string(std::string(t.*member)); };
  if (check)
    o.check = [name, member, check](const T& t) {
      const std::string why = check(std::string(t.*member));
      if (!why.empty()) throw Error("--" + name + " " + why);
    };
  return o;
}

/// A switch (a flag without a value) stored in a bool T::*member; \p inverted: giving the
/// switch sets the member to false (e.g. --no-inference).
template <class T>
Option<T> switch_option(std::string name, bool T::*member, std::string help, unsigned flags = 0,
                        bool inverted = false) {
  Option<T> o;
  o.name = std::move(name);
  o.help = std::move(help);
  o.default_text = "false";
  o.flags = flags | kOptionSwitch;
  o.parse = [member, inverted](T& t, const std::string& s) { t.*member = (s == "true") != inverted; };
  o.json = [member, inverted](const T& t) { return (t.*member != inverted) ? "true" : "false"; };
  return o;
}

/// An enumeration stored in E T::*member: \p from_text parses (and throws the option's
/// message on an unknown value), \p to_text gives the canonical name.
template <class T, class E>
Option<T> choice_option(std::string name, E T::*member, std::string default_text, std::string help,
                        E (*from_text)(const std::string&), const char* (*to_text)(E), unsigned flags = 0) {
  Option<T> o;
  o.name = std::move(name);
  o.help = std::move(help);
  o.default_text = std::move(default_text);
  o.flags = flags;
  o.parse = [member, from_text](T& t, const std::string& s) { t.*member = from_text(s); };
  o.json = [member, to_text](const T& t) { return option_detail::json_string(to_text(t.*member)); };
  return o;
}

/// One name of an enumeration's value, for choice_name / parse_choice.
template <class E>
struct Choice {
  E value;
  const char* name;
};

/// The name of \p v among \p choices ("?" if absent).
template <class E, std::size_t N>
const char* choice_name(const Choice<E> (&choices)[N], E v) {
  for (const auto& c : choices)
    if (c.value == v) return c.name;
  return "?";
}

/// The value named \p text among \p choices, compared as is or, with \p ignore_case,
/// case-insensitively. Throws natgrad::Error("--option 'text' is not one of: a, b, c").
template <class E, std::size_t N>
E parse_choice(const Choice<E> (&choices)[N], const std::string& option, const std::string& text,
               bool ignore_case = false) {
  auto same = [ignore_case](std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
      char x = a[i], y = b[i];
      if (ignore_case) {
        if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
      }
      if (x != y) return false;
    }
    return true;
  };
  std::string list;
  for (const auto& c : choices) {
    if (same(c.name, text)) return c.value;
    if (*c.name) list += (list.empty() ? "" : ", ") + std::string(c.name);
  }
  throw Error("--" + option + " '" + text + "' is not one of: " + list);
}

/// Common checks for number_option.
template <class N>
std::function<std::string(N)> at_least(N lo) {
  return [lo](N v) {
    if (v >= lo) return std::string();
    std::ostringstream m;
    m << "must be >= " << lo;
    return m.str();
  };
}
std::function<std::string(double)> finite_at_least(double lo);
std::function<std::string(double)> positive_number();

}  // namespace natgrad
