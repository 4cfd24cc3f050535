#pragma once
/// \file app.hpp
/// The jobs behind the CLI's subcommands, as library calls taking plain option
/// structs and a communicator, so that the executable only parses options.
#include <filesystem>
#include <ostream>
#include <string>

#include "natgrad/core/communicator.hpp"
#include "natgrad/io/reader.hpp"
#include "natgrad/core/solver.hpp"

namespace natgrad {

struct FitJob {
  ReadOptions read;
  std::string family = "binomial";
  std::string link;
  int classes = 0;                ///< multinomial K (0: 1 + the largest label)
  FitOptions fit;
  std::string start = "irls";     ///< "irls" (R's starting values) or "zero"
  std::filesystem::path init;     ///< start from the "coefficients" of this JSON (a model.json)
  bool drop_collinear = false;    ///< drop linearly dependent columns instead of failing
  bool penalize_intercept = false;
  bool covariance = false;        ///< store the covariance matrix in model.json
  bool inference = true;          ///< standard errors, deviances, AIC/BIC
  std::filesystem::path out_dir;  ///< empty: write nothing
  std::string options_json = "{}";
  std::string command;            ///< the command line, for the summary's "Call:"
  bool quiet = false;             ///< no per-iteration progress lines
  /// Checkpoint file (empty: none): written every fit.checkpoint_every iterations and when
  /// fit.interrupt is raised (see checkpoint.hpp). The fit then ends with Reason::interrupted.
  std::filesystem::path checkpoint;
  /// Continue from this checkpoint (empty: start afresh). A checkpoint of other data or
  /// options is refused with a CollectiveError naming the difference.
  std::filesystem::path resume;
};

/// Collective. Loads the data, checks it (labels, linearly dependent columns), fits,
/// checks for separation, computes inference, prints progress and an R-style summary on
/// root, and writes out_dir/{model.json,history.csv,summary.txt}. Throws CollectiveError
/// for bad data or options; a diverged fit is returned with its reason.
FitResult run_fit(const FitJob& job, const Communicator& comm, std::ostream& out);

struct PredictJob {
  std::filesystem::path model;    ///< model.json of a fit
  ReadOptions read;               ///< the data; label column may be "none"
  std::filesystem::path out;      ///< CSV of predictions
  bool se = false;                ///< standard errors of the linear predictor
  int threads = 1;
};

/// Collective. Linear predictor, mean (class probabilities and class for multinomial)
/// and optionally se(eta) for each row, written in row order by all ranks into one file.
void run_predict(const PredictJob& job, const Communicator& comm, std::ostream& out);

struct GenerateJob {
  std::string spec;               ///< "gen:..."
  std::filesystem::path out;      ///< .csv or .npy
  std::string format;             ///< "", "csv" or "npy" (empty: by extension)
  std::filesystem::path truth;    ///< optional JSON file with the true coefficients
  int threads = 1;
};

/// Collective (root writes). Writes the generated dataset; label in column 0.
void run_generate(const GenerateJob& job, const Communicator& comm, std::ostream& out);

/// Root-only text: ranks, nodes, threads per rank, BLAS and hosts (collective).
std::string describe_layout(const Communicator& comm, int threads);

}  // namespace natgrad
