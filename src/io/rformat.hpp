#pragma once
// Private to src/io: R's number formatting, so that summary.txt prints the numbers R's
// summary() prints (format(), format.pval(), printCoefmat(), quantile type 7). Local.
#include <string>
#include <vector>

namespace natgrad::rformat {

/// R's format(x, digits = d) of a vector: a common format for all entries (fixed with the
/// decimals the entry needing most significant digits (at most d) requires, or scientific
/// when that is narrower, as formatReal in R's format.c), each entry right-aligned to the
/// common width. NaN prints "NA", infinities "Inf" / "-Inf".
std::vector<std::string> format(const std::vector<double>& x, int digits);

/// R's round(x, digits) (half away from zero at the decimal, as R >= 4.0 for the
/// representable cases that matter here).
double round_to(double x, int digits);

/// R's format.pval(pv, digits, eps = 2.220446e-16).
std::vector<std::string> format_pval(const std::vector<double>& pv, int digits);

/// R's printCoefmat(x, digits) as summary.glm calls it (digits = 4): columns Estimate and
/// Std. Error formatted together, the statistic rounded to digits - 1 decimals, P-values
/// by format.pval, significance stars. \p rows names; \p est, \p se, \p stat, \p p per
/// row (NaN: NA). \p stat_name "z value" or "t value", \p p_name "Pr(>|z|)" / "Pr(>|t|)".
/// \p has_p false: only Estimate and Std. Error (and the statistic when \p stat is not empty).
/// Returns the printed lines, header first.
std::vector<std::string> coef_table(const std::vector<std::string>& rows, const std::vector<double>& est,
                                    const std::vector<double>& se, const std::vector<double>& stat,
                                    const std::vector<double>& p, const std::string& stat_name,
                                    const std::string& p_name, int digits = 4);

/// R's quantile(x, type = 7) at 0, .25, .5, .75, 1 (x sorted in place).
std::vector<double> quantiles5(std::vector<double>& x);

/// R's print of a named numeric vector with print.gap = 2 (the "Deviance Residuals"
/// block): two lines, names right-aligned over the values formatted with \p digits.
std::vector<std::string> named_vector(const std::vector<std::string>& names, const std::vector<double>& v,
                                      int digits);

/// R's zapsmall(x, digits).
std::vector<double> zapsmall(std::vector<double> x, int digits);

}  // namespace natgrad::rformat
