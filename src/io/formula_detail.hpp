#pragma once
// Private to natgrad_io: the term coding in the form the design builder uses (one block
// of columns per term, each row of a term a single column), shared by code_terms
// (formula.cpp) and build_design (design.cpp).
#include <string>
#include <vector>

#include "natgrad/io/formula.hpp"

namespace natgrad::detail {

/// One variable of a term: numeric (one value) or a factor coded by contrasts or by
/// indicators of every level.
struct TermPart {
  int variable = -1;
  bool factor = false;
  /// factor: position of each level (by level index) among the term's columns for this
  /// variable; -1 for the reference level under contrasts (the term is 0 in that row).
  std::vector<int> position;
  int width = 1;   ///< columns this variable spans (1 for numeric)
  int stride = 1;  ///< product of the widths of the variables before it (first varies fastest)
};

struct TermBlock {
  int first_column = 0;  ///< the term's first design column
  int width = 1;         ///< its number of columns
  std::vector<TermPart> parts;
};

struct Coding {
  bool intercept = true;         ///< column 0 is the intercept
  std::vector<TermBlock> terms;  ///< in Formula::terms order
  std::vector<DesignColumn> columns;
};

/// R's TermCode + model.matrix column layout. Throws natgrad::Error for a factor with
/// fewer than two levels.
Coding code_formula(const Formula& f, const std::vector<VariableLevels>& levels);

/// Parses \p text against \p header. \p source names the file in messages ("" = none);
/// columns in \p optional may be absent from the header (predict: the response).
Formula parse_formula_in(const std::string& text, const std::vector<std::string>& header,
                         const std::vector<std::string>& exclude, const std::string& source,
                         const std::vector<std::string>& optional);

/// The columns that an expression text (a variable's label, "log(x)") reads; {} when it
/// does not parse.
std::vector<std::string> columns_of_label(const std::string& label);

}  // namespace natgrad::detail
