#pragma once
/// \file options.hpp
/// The option tables of natgrad's commands (see core/option_table.hpp). Each table is
/// made of the rows its layers own: fit = read_option_table (io) + glm_option_table
/// (core, with fit_option_table nested) + the job's own rows (out, init, checkpoint, ...).
/// The command line (src/cli) builds its descriptions, its --config file reading and its
/// help from these tables and calls apply_options(); model.json's "options" and the
/// checkpoint fingerprint are options_json() of the fit table.
#include <map>
#include <set>
#include <string>

#include "natgrad/app/demo.hpp"
#include "natgrad/app/jobs.hpp"
#include "natgrad/core/option_table.hpp"
#include "natgrad/plot/plot.hpp"

namespace natgrad {

/// `natgrad plot`: columns of a CSV as a line chart.
struct PlotJob {
  std::string csv, x, y;  ///< y: comma-separated columns, one line each
  std::filesystem::path out;
  PlotOptions plot;
  int threads = 0;
};

/// `natgrad selftest`.
struct SelftestJob {
  int threads = 0;
};

const OptionTable<FitJob>& fit_job_table();
const OptionTable<PredictJob>& predict_job_table();
const OptionTable<GenerateJob>& generate_job_table();
const OptionTable<DemoOptions>& demo_option_table();
const OptionTable<PlotJob>& plot_job_table();
const OptionTable<SelftestJob>& selftest_option_table();

/// Sets \p job from \p given (option name -> text, as typed; switches "true") and, for
/// every row not given, from its default (a row without default_text is left alone), in
/// table order. Then runs every row's check. Throws natgrad::Error naming the option, and
/// for a switch pair --X / --no-X both given.
template <class T>
void apply_options(const OptionTable<T>& table, const std::map<std::string, std::string>& given, T& job) {
  // A switch pair (--intercept / --no-intercept): both given true contradict each other.
  for (const auto& o : table) {
    const auto yes = given.find(o.name), no = given.find("no-" + o.name);
    if (yes != given.end() && no != given.end() && yes->second == "true" && no->second == "true" &&
        find_option(table, "no-" + o.name) != nullptr)
      throw Error("--" + o.name + " and --no-" + o.name + " exclude each other");
  }
  for (const auto& o : table) {
    const auto it = given.find(o.name);
    if (it != given.end()) o.parse(job, it->second);
    else if (!o.default_text.empty()) o.parse(job, o.default_text);
  }
  check_options(table, job);
}

/// The text a user would type for a JSON value recorded in model.json's "options"
/// (strings as they are, true/false, numbers); "" for null.
std::string option_text(const std::string& json_value);

/// Collective. Runs \p job after parsing (the jobs' own entry points, with their threads
/// applied): the return value is the process's exit status.
int run_fit_command(FitJob& job, const Communicator& comm, std::ostream& out);
int run_predict_command(PredictJob& job, const Communicator& comm, std::ostream& out);
int run_generate_command(GenerateJob& job, const Communicator& comm, std::ostream& out);
int run_demo_command(DemoOptions& job, const Communicator& comm, std::ostream& out);
int run_plot_command(PlotJob& job, const Communicator& comm, std::ostream& out);
int run_selftest_command(SelftestJob& job, const Communicator& comm, std::ostream& out);

/// Exit statuses of `natgrad fit`: 0 converged or iteration limit, 1 error, 2 diverged,
/// 3 stopped on a signal after writing the checkpoint (jobs requeue on it).
constexpr int kExitDiverged = 2;
constexpr int kExitInterrupted = 3;

}  // namespace natgrad
