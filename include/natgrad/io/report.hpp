#pragma once
/// \file report.hpp
/// What a fit reports: the R-style coefficient table (printed and summary.txt) and
/// model.json. Local functions, called on the root rank.
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
};

/// Parameter names: columns, or "column:classk" for k = 1..K-1 (class-major).
std::vector<std::string> parameter_names(const std::vector<std::string>& columns, int classes);

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
