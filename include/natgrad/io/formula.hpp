#pragma once
/// \file formula.hpp
/// R's model formula, the subset everyday models use (docs/cli.md, "Formulas"). Local,
/// no MPI, no I/O: parsing, term expansion, R's coding of factors in terms (treatment
/// contrasts), and the evaluation of a variable's expression on numeric columns.
///
///   response ~ term + term + ...
///
/// - Variables: a column name (letters, digits, '.', '_'; or `backquoted` for any other
///   name), log(e), log1p(e), sqrt(e), exp(e), I(e) where e is arithmetic on columns and
///   numbers (+ - * / ^, unary minus, parentheses), factor(column), offset(e).
/// - Operators: a + b, a:b (interaction), a*b (= a + b + a:b), - term (removal), '.' (every
///   column not otherwise used: not the response, not in an offset, not the weight
///   column), '- 1' / '+ 0' (no intercept), '+ 1' (intercept), parentheses around terms.
/// - The response is any expression of columns, comparisons included (y >= 4, y == "Yes"
///   is not: compare numbers only), or a plain column that may be a factor (binomial /
///   multinomial text labels, design.hpp).
/// Anything else (another function, '%in%', '^' between terms, '|') is an Error naming it.
///
/// Terms follow R's terms(): each term is a set of variables; duplicates are removed;
/// terms are ordered by their number of variables (main effects, then two-way
/// interactions, ...), ties in the order they appear; a term's variables are ordered and
/// its label written ("smoke:race") in the order the variables first appear in the formula
/// (response first). Column names of the design follow R's model.matrix(): the variable's
/// label, then the level for a factor ("raceblack", "factor(race)2"), joined by ':' in
/// interactions, the first variable's levels varying fastest.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace natgrad {

/// An arithmetic expression of columns.
struct Expr {
  enum class Op { number, column, neg, add, sub, mul, div, pow, call, lt, le, gt, ge, eq, ne };
  Op op = Op::number;
  double number = 0;          ///< Op::number
  std::string name;           ///< Op::column: the column; Op::call: log, log1p, sqrt, exp, I
  std::vector<Expr> args;     ///< operands (1 for neg and call, 2 for binary operators)
};

/// R's deparse of an expression, as R prints it in coefficient names: "log(x2)",
/// "I(x^2)", "I(age - 20)", "y >= 4" (spaces around binary operators except ^, none
/// inside calls' parentheses).
std::string deparse(const Expr& e);

/// The columns an expression reads, in order of first appearance, each once.
std::vector<std::string> columns_of(const Expr& e);

/// Evaluates \p e on n rows: \p column(name) returns the column's n values (numeric; NaN
/// = missing). Comparisons give 1 or 0 (NaN when an operand is NaN). Arithmetic follows
/// IEEE (log of a negative number is NaN, a missing value propagates).
std::vector<double> evaluate(const Expr& e, std::size_t n,
                             const std::function<const std::vector<double>&(const std::string&)>& column);

/// A variable of the formula: one of its distinct expressions.
struct Variable {
  std::string label;   ///< deparse of the expression ("race", "log(conc)", "factor(race)")
  Expr expr;           ///< for factor(x): the column x; for offset(e): e
  bool factor_call = false;  ///< written factor(column): a factor even when the column is numeric
  bool offset = false;       ///< offset(e): added to the linear predictor, not a term
  /// A plain column (not a call or an operator): may be a factor when the column is text.
  bool plain_column() const { return expr.op == Expr::Op::column && !offset; }
};

struct Term {
  std::vector<int> variables;  ///< indices into Formula::variables, increasing
  std::string label;           ///< "a", "a:b"
};

struct Formula {
  std::string text;                  ///< as given
  int response = -1;                 ///< index into variables (-1: none, e.g. '~ x' for predict)
  std::vector<Variable> variables;   ///< response first, then in order of first appearance
  std::vector<Term> terms;           ///< R's order (see above)
  bool intercept = true;
  /// Columns the formula reads (response, terms, offsets), each once, in order.
  std::vector<std::string> columns() const;
  /// Columns that factor(...) names.
  std::vector<std::string> factor_columns() const;
};

/// Parses \p text. \p header: the table's column names ('.' expands to those not used
/// otherwise; a name not among them is an error); \p exclude: columns '.' leaves out
/// besides the response and offsets (the weight column). Throws natgrad::Error naming the
/// offending part: "--formula 'y ~ x + f(z)': unknown function 'f' in term 'f(z)'
/// (supported: log, log1p, sqrt, exp, I, factor, offset)", "... column 'z' is not in the
/// header of data.csv", "... no '~'".
Formula parse_formula(const std::string& text, const std::vector<std::string>& header,
                      const std::vector<std::string>& exclude = {});

/// What the coding needs to know of a variable once the data are read.
struct VariableLevels {
  bool factor = false;              ///< factor-valued (text column, or factor_call)
  std::vector<std::string> levels;  ///< factor: its levels in order (R's)
  int reference = 0;                ///< factor: the reference level (--reference), dropped under contrasts
};

/// One column of the design matrix: the product of its parts.
struct DesignColumn {
  std::string name;  ///< R's model.matrix column name
  struct Part {
    int variable;    ///< index into Formula::variables
    int level;       ///< factor: the level whose indicator this is; numeric: -1 (the value)
  };
  std::vector<Part> parts;  ///< empty: the intercept
};

/// R's model.matrix coding of \p f's terms (R's TermCode: a factor in a term is coded by
/// contrasts when the term without it is the empty term or contained in a preceding term,
/// else by indicators of every level; without an intercept the first factor of the first
/// term holding one gets every level). \p levels: one per variable of f. The intercept is
/// column 0 ("(Intercept)") when f.intercept. Throws natgrad::Error for a factor with fewer
/// than two levels ("factor 'g' has one level ('a') in the rows used: ...").
std::vector<DesignColumn> code_terms(const Formula& f, const std::vector<VariableLevels>& levels);

}  // namespace natgrad
