// The formula (natgrad/io/formula.hpp): parsing, R's term order and labels, R's
// model.matrix column names through code_terms, deparse, evaluate, the errors; and the
// design's JSON (design.hpp). References: R's terms() and model.matrix() on the cases of
// tests/fixtures/formula (make_model_matrix.R), and R's deparse() for the strings below.
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "formula_support.hpp"
#include "natgrad/core/error.hpp"
#include "natgrad/io/design.hpp"
#include "natgrad/io/formula.hpp"

using namespace natgrad;
using namespace natgrad::test;
using Catch::Matchers::Contains;

namespace {

const std::string kDir = std::string(NATGRAD_FIXTURES) + "/formula/";

std::vector<std::string> labels(const Formula& f) {
  std::vector<std::string> out;
  for (const Variable& v : f.variables) out.push_back(v.label);
  return out;
}
std::vector<std::string> term_labels(const Formula& f) {
  std::vector<std::string> out;
  for (const Term& t : f.terms) out.push_back(t.label);
  return out;
}

std::string parse_error(const std::string& text, const std::vector<std::string>& header) {
  try {
    parse_formula(text, header);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

Expr parse_expr(const std::string& text, const std::vector<std::string>& header) {
  const Formula f = parse_formula(text + " ~ 1", header);
  return f.variables.at(0).expr;
}

}  // namespace

TEST_CASE("formula: variables, terms and labels as R's terms()", "[formula]") {
  const Table t = read_table(kDir + "data.csv");
  for (const std::string& name : kFormulaCases) {
    const RCase c = read_case(kDir + "cases/" + name + ".json");
    INFO(c.name << ": " << c.formula);
    const Formula f = parse_formula(c.formula, t.header);
    CHECK(f.response == 0);
    CHECK(labels(f) == c.variables);
    CHECK(term_labels(f) == c.term_labels);
    CHECK(f.intercept == c.intercept);
  }
}

TEST_CASE("formula: code_terms gives R's model.matrix column names", "[formula]") {
  const Table t = read_table(kDir + "data.csv");
  for (const std::string& name : kFormulaCases) {
    const RCase c = read_case(kDir + "cases/" + name + ".json");
    INFO(c.name << ": " << c.formula);
    const Formula f = parse_formula(c.formula, t.header);
    std::vector<VariableLevels> levels(f.variables.size());
    for (std::size_t v = 1; v < f.variables.size(); ++v) {
      for (const auto& [label, lv] : c.levels) {
        if (label != f.variables[v].label) continue;
        levels[v].factor = true;
        // R's levels after relevel(): the reference first. natgrad keeps the sorted
        // order and the reference's index.
        levels[v].levels = lv;
        std::sort(levels[v].levels.begin(), levels[v].levels.end());
        levels[v].reference = static_cast<int>(
            std::find(levels[v].levels.begin(), levels[v].levels.end(), lv[0]) - levels[v].levels.begin());
      }
    }
    const std::vector<DesignColumn> cols = code_terms(f, levels);
    std::vector<std::string> names;
    for (const DesignColumn& d : cols) names.push_back(d.name);
    CHECK(names == c.colnames);
    // Each column's parts name the variables of its name, in order.
    for (const DesignColumn& d : cols) {
      std::string rebuilt;
      for (std::size_t p = 0; p < d.parts.size(); ++p) {
        const auto& part = d.parts[p];
        rebuilt += (p ? ":" : "") + f.variables[static_cast<std::size_t>(part.variable)].label;
        if (part.level >= 0) rebuilt += levels[static_cast<std::size_t>(part.variable)].levels[static_cast<std::size_t>(part.level)];
      }
      CHECK((d.parts.empty() ? std::string("(Intercept)") : rebuilt) == d.name);
    }
  }
}

TEST_CASE("formula: operators, intercept and the term order", "[formula]") {
  const std::vector<std::string> h = {"y", "a", "b", "c", "w"};
  {
    const Formula f = parse_formula("y ~ c + a*b", h);
    CHECK(term_labels(f) == std::vector<std::string>{"c", "a", "b", "a:b"});
    CHECK(labels(f) == std::vector<std::string>{"y", "c", "a", "b"});
  }
  {  // R: the term's variables in order of first appearance
    const Formula f = parse_formula("y ~ b:a + a", h);
    CHECK(term_labels(f) == std::vector<std::string>{"a", "b:a"});
  }
  CHECK(parse_formula("y ~ a - 1", h).intercept == false);
  CHECK(parse_formula("y ~ a + 0", h).intercept == false);
  CHECK(parse_formula("y ~ 0 + a + 1", h).intercept == true);
  CHECK(parse_formula("y ~ -1 + a", h).intercept == false);
  CHECK(term_labels(parse_formula("y ~ (a + b):c", h)) == std::vector<std::string>{"a:c", "b:c"});
  CHECK(term_labels(parse_formula("y ~ a*b*c - a:b:c", h)) ==
        std::vector<std::string>{"a", "b", "c", "a:b", "a:c", "b:c"});
  CHECK(term_labels(parse_formula("y ~ . - b", h, {"w"})) == std::vector<std::string>{"a", "c"});
  CHECK(term_labels(parse_formula("y ~ . + offset(log(w))", h)) == std::vector<std::string>{"a", "b", "c"});
  const Formula g = parse_formula("log(y) ~ factor(a) + `b` + offset(c)", h);
  CHECK(labels(g) == std::vector<std::string>{"log(y)", "factor(a)", "b", "offset(c)"});
  CHECK(g.variables[1].factor_call);
  CHECK(g.variables[3].offset);
  CHECK(g.columns() == std::vector<std::string>{"y", "a", "b", "c"});
  CHECK(g.factor_columns() == std::vector<std::string>{"a"});
  const Formula q = parse_formula("~ a", h);
  CHECK(q.response == -1);
  CHECK(term_labels(q) == std::vector<std::string>{"a"});
}

TEST_CASE("formula: deparse as R prints coefficient names", "[formula]") {
  const std::vector<std::string> h = {"x", "y", "odd name"};
  // The right-hand strings are R 4.2's deparse(str2lang(...)) of the left.
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"I(x/2)", "I(x/2)"},           {"I(x*1e6)", "I(x * 1e+06)"},     {"I(-x)", "I(-x)"},
      {"I((x+1)^2)", "I((x + 1)^2)"}, {"y>=4", "y >= 4"},               {"I(x - 20)", "I(x - 20)"},
      {"log(x)", "log(x)"},           {"I(x^-1)", "I(x^-1)"},           {"I(100000*x)", "I(1e+05 * x)"},
      {"I(0.1+x)", "I(0.1 + x)"},     {"I(-(x))", "I(-(x))"},           {"I(2.5e-7*x)", "I(2.5e-07 * x)"},
      {"I(1/3*x)", "I(1/3 * x)"},     {"`odd name`", "`odd name`"},      {"I(123456*x)", "I(123456 * x)"}};
  for (const auto& [in, out] : cases) {
    INFO(in);
    CHECK(deparse(parse_expr(in, h)) == out);
  }
}

TEST_CASE("formula: evaluate follows IEEE and R's comparisons", "[formula]") {
  const std::vector<std::string> h = {"x", "y"};
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const std::vector<double> x = {-1.0, 0.0, 2.0, nan, 4.0};
  const std::vector<double> y = {3.0, 0.5, 2.0, 1.0, nan};
  const auto col = [&](const std::string& n) -> const std::vector<double>& { return n == "x" ? x : y; };
  const auto eval = [&](const std::string& e) { return evaluate(parse_expr(e, h), x.size(), col); };
  const std::vector<double> l = eval("log(x)");
  CHECK(std::isnan(l[0]));
  CHECK(l[1] == -std::numeric_limits<double>::infinity());
  CHECK(l[2] == std::log(2.0));
  CHECK(std::isnan(l[3]));
  const std::vector<double> c = eval("x >= y");
  CHECK(c[0] == 0.0);
  CHECK(c[1] == 0.0);
  CHECK(c[2] == 1.0);
  CHECK(std::isnan(c[3]));
  CHECK(std::isnan(c[4]));
  const std::vector<double> a = eval("I((x + 1)^2 / y - sqrt(exp(y)) * log1p(y))");
  for (std::size_t i = 0; i < 3; ++i)
    CHECK(a[i] == Approx((x[i] + 1) * (x[i] + 1) / y[i] - std::sqrt(std::exp(y[i])) * std::log1p(y[i])).epsilon(1e-15));
  CHECK(columns_of(parse_expr("I(y*x + y)", h)) == std::vector<std::string>{"y", "x"});
}

TEST_CASE("formula: errors name the offending part", "[formula]") {
  const std::vector<std::string> h = {"y", "x", "g"};
  CHECK_THAT(parse_error("y ~ x + f(g)", h),
             Contains("unknown function 'f' in term 'f(g)'") && Contains("supported: log, log1p, sqrt, exp, I, factor, offset"));
  CHECK_THAT(parse_error("y ~ x + z", h), Contains("column 'z' is not in the header"));
  CHECK_THAT(parse_error("y ~ log(z)", h), Contains("column 'z' is not in the header"));
  CHECK_THAT(parse_error("y x", h), Contains("no '~'"));
  CHECK_THAT(parse_error("y ~ x^2", h), Contains("'^' between terms") && Contains("I(x^2)"));
  CHECK_THAT(parse_error("y ~ x %in% g", h), Contains("'%in%'"));
  CHECK_THAT(parse_error("y ~ x | g", h), Contains("'|' is not supported"));
  CHECK_THAT(parse_error("y == \"a\" ~ x", h), Contains("compare numbers only"));
  CHECK_THAT(parse_error("y ~ x + 2", h), Contains("the number 2 is not a term"));
  CHECK_THAT(parse_error("y ~ log(x, 2)", h), Contains("log() takes one argument"));
  CHECK_THAT(parse_error("y ~ factor(log(x))", h), Contains("factor() takes one column name"));
  CHECK_THAT(parse_error("y ~ (x + g", h), Contains("expected ')'"));
  CHECK_THAT(parse_error("y ~ ", h), Contains("no terms after '~'"));
  for (const std::string s : {"y ~ x + f(g)", "y ~ x + z"}) CHECK_THAT(parse_error(s, h), Contains("--formula '" + s + "'"));
}

TEST_CASE("formula: a factor with one level is refused by code_terms", "[formula]") {
  const Formula f = parse_formula("y ~ x + g", {"y", "x", "g"});
  std::vector<VariableLevels> levels(f.variables.size());
  levels[2].factor = true;
  levels[2].levels = {"a"};
  try {
    code_terms(f, levels);
    FAIL("no error");
  } catch (const Error& e) {
    CHECK_THAT(std::string(e.what()), Contains("factor 'g' has one level ('a') in the rows used"));
  }
  levels[2].levels = {"a", "b", "c"};
  levels[2].reference = 2;  // --reference g=c
  std::vector<std::string> names;
  for (const DesignColumn& d : code_terms(f, levels)) names.push_back(d.name);
  CHECK(names == std::vector<std::string>{"(Intercept)", "x", "ga", "gb"});
}

TEST_CASE("design: model.json's design object round-trips", "[formula]") {
  DesignInfo d;
  d.formula = "low ~ age + race + offset(log(n))";
  d.response = "low";
  d.response_levels = {"no", "yes"};
  d.predictors = {"age", "race"};
  d.factors.push_back(FactorLevels{"race", "race", {"black", "other", "white"}, 2, false});
  d.factors.push_back(FactorLevels{"factor(k)", "k", {"1", "2.5"}, 0, true});
  d.offsets = {"offset(log(n))"};
  d.weight = "w";
  d.intercept = false;
  d.rows_read = 189;
  d.rows_dropped = 4;
  d.missing = {{"age", 3}, {"race", 2}};
  const std::string j = design_json(d);
  const DesignInfo b = design_from_json(j);
  CHECK(b.formula == d.formula);
  CHECK(b.response == d.response);
  CHECK(b.response_levels == d.response_levels);
  CHECK(b.predictors == d.predictors);
  REQUIRE(b.factors.size() == 2);
  for (std::size_t i = 0; i < 2; ++i) {
    CHECK(b.factors[i].variable == d.factors[i].variable);
    CHECK(b.factors[i].column == d.factors[i].column);
    CHECK(b.factors[i].levels == d.factors[i].levels);
    CHECK(b.factors[i].reference == d.factors[i].reference);
    CHECK(b.factors[i].numeric_levels == d.factors[i].numeric_levels);
  }
  CHECK(b.offsets == d.offsets);
  CHECK(b.weight == d.weight);
  CHECK(b.intercept == d.intercept);
  CHECK(b.rows_read == 189);
  CHECK(b.rows_dropped == 4);
  CHECK(b.missing == d.missing);
  CHECK(design_json(b) == j);
  CHECK_THROWS_WITH(design_from_json("{\"response\": \"y\"}"), Contains("no 'formula'"));
  CHECK_THROWS_WITH(design_from_json("[1"), Contains("not JSON"));
}
