#pragma once
/// \file report.hpp
/// What a fit reports: the R-style coefficient table (printed and summary.txt) and
/// model.json. Local functions, called on the root rank.
#include <cstdint>
#include <filesystem>
#include <ostream>
#include <string>
#include <vector>

#include "natgrad/core/inference.hpp"
#include "natgrad/core/solver.hpp"

namespace natgrad {

/// Everything a fitted model's outputs need.
struct FitReport {
  std::string model_name, family, link;
  int classes = 0;                 ///< multinomial K, else 0
  std::vector<std::string> columns;   ///< design columns as fitted (after any drop)
  std::vector<std::string> dropped;   ///< columns dropped as linearly dependent
  std::vector<std::string> all_columns;  ///< design columns before dropping, in order
  bool intercept = false;
  const FitResult* fit = nullptr;
  const Inference* inference = nullptr;  ///< may be null (diverged fits)
  std::string command;             ///< the command line, for "Call:"
  std::string options_json = "{}"; ///< options in force (JSON object)
  std::string data;
  int ranks = 1, threads = 1;
  bool covariance = false;         ///< include the covariance matrix in model.json
  /// What the rows were: "Formula: y ~ ..." (a formula fit) or "Response: y; predictors: ..."
  /// (column options), printed under "Call:" ("" = nothing).
  std::string model_line;
  /// R's "Deviance Residuals:" block: min, quartiles and max of the deviance residuals
  /// (empty: not computed, the block is left out).
  std::vector<double> deviance_quantiles;
  std::int64_t rows_dropped = 0;   ///< rows dropped for missing values ("(N observations deleted ...)")
  std::string design_json;         ///< model.json's "design" object (formula fits), "" = none
  std::vector<std::string> class_labels;  ///< multinomial text classes (names by level), else empty
};

/// Parameter names: columns, or "column:classk" for k = 1..K-1 (class-major); with \p labels
/// (the K class levels of a text response) "column:LEVEL" for the levels after the first.
std::vector<std::string> parameter_names(const std::vector<std::string>& columns, int classes,
                                         const std::vector<std::string>& labels = {});

/// "" for a converged (or interrupted) fit; otherwise one line saying it did not converge
/// and why: "did not converge: iteration limit N reached (max |gradient| G)", or
/// "did not converge: " and the reason (diverged fits). summary_text() starts with it, and
/// the CLI prints it on stderr (a warning at the iteration limit).
std::string nonconvergence_note(const FitResult& f);

/// The R-style summary (coefficient table, dispersion, deviances, AIC, iterations),
/// starting with nonconvergence_note() and a blank line when that is not empty.
std::string summary_text(const FitReport& r);

/// history.csv: iter,loss,grad_norm,step_norm,kl,damping,step_length,seconds (atomically).
void write_history_csv(const std::filesystem::path& path, const FitResult& result);
/// history.csv's text, to a stream (an OutputSet's file).
void write_history_csv(std::ostream& os, const FitResult& result);

/// model.json (atomically).
void write_model_json(const std::filesystem::path& path, const FitReport& r);
/// model.json's text, to a stream (an OutputSet's file).
void write_model_json(std::ostream& os, const FitReport& r);

}  // namespace natgrad
