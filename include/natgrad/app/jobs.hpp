#pragma once
/// \file app.hpp
/// The jobs behind the CLI's subcommands, as library calls taking plain option
/// structs and a communicator, so that the executable only parses options.
#include <filesystem>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include "natgrad/core/communicator.hpp"
#include "natgrad/io/reader.hpp"
#include "natgrad/core/glm_fit.hpp"
#include "natgrad/core/solver.hpp"

namespace natgrad {

/// Everything `natgrad fit` does: read, fit_glm, report, write. Its options are
/// fit_job_table() (options.hpp).
struct FitJob {
  /// The data and the design. A fit has an intercept unless told --no-intercept (R's
  /// default): read.intercept starts true here, and fit_job_table() defaults it to true.
  ReadOptions read = [] {
    ReadOptions r;
    r.intercept = true;
    return r;
  }();
  GlmOptions glm;
  int threads = 0;                ///< OpenMP threads per rank (0: default_threads())
  std::filesystem::path init;     ///< start from the "coefficients" of this JSON (a model.json)
  bool covariance = false;        ///< store the covariance matrix in model.json
  std::filesystem::path out_dir;  ///< empty: write nothing
  std::string command;            ///< the command line, for the summary's "Call:"
  bool quiet = false;             ///< no per-iteration progress lines
  /// Checkpoint file (empty: none): written every checkpoint_every iterations and when
  /// glm.fit.interrupt is raised (see checkpoint.hpp). The fit then ends with Reason::interrupted.
  std::filesystem::path checkpoint;
  int checkpoint_every = 10;
  /// Continue from this checkpoint (empty: start afresh). A checkpoint of other data or
  /// options is refused with a CollectiveError naming the difference.
  std::filesystem::path resume;
  /// "on": refuse, before reading and before allocating the Fisher, a fit that does not
  /// fit in the memory this rank and its node can get (admission.hpp); "off": skip.
  std::string memory_check = "on";
  /// --residuals: after the fit, a CSV with one line per data row (residuals.hpp):
  /// row, y, fitted mean, linear predictor and R's deviance, Pearson, working and response
  /// residuals. Empty: none.
  std::filesystem::path residuals;

  /// Throws natgrad::Error: every option's check, then the relations between them.
  void validate() const;
};

/// Collective. Loads the data, checks it (labels, linearly dependent columns), fits,
/// checks for separation, computes inference, prints progress and an R-style summary on
/// root, and writes out_dir/{model.json,history.csv,summary.txt}. Throws CollectiveError
/// for bad data or options; a diverged fit is returned with its reason.
FitResult run_fit(const FitJob& job, const Communicator& comm, std::ostream& out);

struct PredictJob {
  std::filesystem::path model;    ///< model.json of a fit, or the fit's --out directory (DIR/model.json)
  ReadOptions read;               ///< the data; label column may be "none"
  std::filesystem::path out;      ///< CSV of predictions
  bool se = false;                ///< standard errors of eta and of mu (model fitted with --covariance)
  int threads = 0;                ///< 0: default_threads()
  /// Options given on the command line (or config file); reader options not among them
  /// are taken from the model's recorded options (model.json "options").
  std::set<std::string> given;
};

/// Collective. Linear predictor, mean (class probabilities and class for multinomial)
/// and optionally se(eta) and se(mu) = |dmu/deta| se(eta) for each row, written in row
/// order by all ranks into one file. The data's columns are matched to the model's by
/// position, or, for a CSV with a header whose names include every named feature of the
/// model (and no --columns given here), by header name in any order: extra columns are
/// ignored and the label is the fit's --label-column name when the header has it (else
/// none).
void run_predict(const PredictJob& job, const Communicator& comm, std::ostream& out);

struct GenerateJob {
  std::string spec;               ///< "gen:..."
  std::filesystem::path out;      ///< .csv or .npy
  std::string format;             ///< "", "csv" or "npy" (empty: by extension)
  std::filesystem::path truth;    ///< optional JSON file with the true coefficients
  int threads = 0;                ///< 0: default_threads()
};

/// Collective (root writes). Writes the generated dataset; label in column 0.
void run_generate(const GenerateJob& job, const Communicator& comm, std::ostream& out);

/// \p words as one line a POSIX shell reads back as the same words: a word of letters,
/// digits and _@%+=:,./- only stays as it is, any other is single-quoted (a ' inside as
/// '\''). The summary's "Call:" line, which can be pasted back into a shell.
std::string shell_command(const std::vector<std::string>& words);

/// Root-only text: ranks, nodes, threads per rank, the BLAS and its core, the CPU and its
/// ISA family, natgrad's kernel family, and hosts (collective; nodes with another CPU or
/// core are listed with their hosts). \p warnings, when given, gets on root one sentence
/// per distinct blas_check() warning (cpu.hpp: OpenBLAS runs an older kernel family than
/// the CPU supports), each naming the fix; empty when all is well.
std::string describe_layout(const Communicator& comm, int threads, std::vector<std::string>* warnings = nullptr);

/// Collective. Threads per rank when none are asked for (\p requested 0): OMP_NUM_THREADS
/// if set, else the cores this process is bound to, else the node's cores shared among the
/// ranks on the node, so that ranks x threads never exceeds the cores. Sets OpenMP's and
/// the BLAS's thread counts to the result and returns it. Throws CollectiveError for < 0.
int use_threads(int requested, const Communicator& comm);

/// Collective. The checkpoint fingerprint of \p job (checkpoint.hpp): its options flagged
/// kOptionFingerprint, the model's name and classes, and the data.
std::string fit_fingerprint(const FitJob& job, const Shard& shard, const std::string& model_name, int classes,
                            const Communicator& comm);

}  // namespace natgrad
