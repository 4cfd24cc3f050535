// natgrad command line: a thin shell. It initialises MPI, builds each command's
// Boost.Program_options description from the library's option table
// (natgrad/app/options.hpp), reads the command line and an optional --config file, and
// hands the parsed job to the library. Usage: natgrad <command> [options]; natgrad <command> --help.
#include <mpi.h>

#include <boost/program_options.hpp>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "natgrad/app/jobs.hpp"
#include "natgrad/app/options.hpp"
#include "natgrad/core/error.hpp"

namespace po = boost::program_options;
using natgrad::CollectiveError;
using natgrad::Communicator;

namespace {

/// Set by SIGTERM / SIGUSR1 while a checkpointing fit runs (Slurm's --signal, scancel,
/// mpirun and srun forward them); the fit polls it once per iteration on every rank.
volatile std::sig_atomic_t g_stop_signal = 0;
extern "C" void on_stop_signal(int) { g_stop_signal = 1; }

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGUSR1, &sa, nullptr);
}

constexpr const char* kUsage =
    "natgrad: distributed natural-gradient fitting of probabilistic models\n\n"
    "usage: natgrad <command> [options]      (under mpirun: mpirun -n P natgrad ...)\n\n"
    "commands:\n"
    "  fit       fit a model to a dataset (CSV, LIBSVM, NPY or HDF5 file, or a built-in generator)\n"
    "  predict   apply a fitted model.json to data\n"
    "  generate  write a built-in dataset to CSV, NPY or HDF5\n"
    "  demo      the seed's experiment: NGD vs gradient descent on a Gaussian mixture\n"
    "  selftest  post-install checks (gradient, Fisher, reduction, Cholesky, BLAS core, DGEMM rate)\n"
    "  plot      a CSV's columns as a line chart, PNG, SVG or PDF (e.g. a scaling study's results)\n\n"
    "'natgrad <command> --help' lists the command's options.\n";

/// The Boost description of a table: every row a string-valued option (the table parses
/// the text), switches as flags, defaults shown as the user would type them.
template <class T>
po::options_description describe(const std::string& title, const natgrad::OptionTable<T>& table) {
  po::options_description d(title);
  d.add_options()("help,h", "show this help and exit")(
      "config", po::value<std::string>(), "read further options from this file (lines 'name = value'; the command line wins)");
  for (const auto& o : table) {
    if (o.has(natgrad::kOptionSwitch)) {
      d.add_options()(o.name.c_str(), po::bool_switch(), o.help.c_str());
      continue;
    }
    auto* v = po::value<std::string>();
    if (!o.default_text.empty()) v->default_value(o.default_text);
    if (o.has(natgrad::kOptionRequired)) v->required();
    d.add_options()(o.name.c_str(), v, o.help.c_str());
  }
  return d;
}

/// Parses one command's options into \p job (collective: every rank parses the same
/// input and fails alike) and runs it. Returns the exit status.
template <class T, class Run>
int command(int argc, char** argv, const Communicator& comm, const std::string& cmd, const std::string& usage,
            const natgrad::OptionTable<T>& table, T job, Run run) {
  const po::options_description desc = describe(cmd + " options", table);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(desc).run(), vm);
    if (vm.count("help")) {
      if (comm.is_root()) std::cout << usage << "\n" << desc << '\n';
      return 0;
    }
    if (vm.count("config")) {
      const std::string config = vm["config"].as<std::string>();
      std::ifstream in(config);
      if (!in) throw CollectiveError("natgrad " + cmd + ": cannot read --config file '" + config + "'");
      po::store(po::parse_config_file(in, desc), vm);
    }
    po::notify(vm);
  } catch (const po::error& e) {
    throw CollectiveError("natgrad " + cmd + ": " + e.what() + " (see 'natgrad " + cmd + " --help')");
  }
  std::map<std::string, std::string> given;  // typed by the user (not Boost's defaults)
  for (const auto& o : table) {
    if (!vm.count(o.name) || vm[o.name].defaulted()) continue;
    given[o.name] = o.has(natgrad::kOptionSwitch) ? (vm[o.name].template as<bool>() ? "true" : "false")
                                                  : vm[o.name].template as<std::string>();
  }
  try {
    natgrad::apply_options(table, given, job);
  } catch (const natgrad::Error& e) {
    throw CollectiveError(e.what());
  }
  if constexpr (requires { job.given; })
    for (const auto& [name, text] : given) job.given.insert(name);
  return run(job);
}

int dispatch(int argc, char** argv, const Communicator& comm) {
  using namespace natgrad;
  const std::string cmd = argc > 1 ? argv[1] : "";
  if (cmd.empty() || cmd == "--help" || cmd == "-h" || cmd == "help") {
    if (comm.is_root()) std::cout << kUsage;
    return cmd.empty() ? 1 : 0;
  }
  // Boost sees the arguments after the command word (argv[1] stands in for argv[0]).
  const int n = argc - 1;
  char** a = argv + 1;
  std::ostream& out = std::cout;
  if (cmd == "fit")
    return command(n, a, comm, cmd, "usage: natgrad fit --data FILE|gen:SPEC [--out DIR] [options]", fit_job_table(),
                   FitJob{}, [&](FitJob& job) {
                     std::vector<std::string> words{"natgrad"};
                     for (int i = 0; i < n; ++i) words.emplace_back(a[i]);
                     job.command = shell_command(words);  // "Call:", pasteable into a shell
                     if (!job.checkpoint.empty()) {
                       // Only a checkpointing fit catches these: it can stop cleanly and be resumed.
                       install_stop_handlers();
                       job.glm.fit.interrupt = &g_stop_signal;
                     }
                     return run_fit_command(job, comm, out);
                   });
  if (cmd == "predict")
    return command(n, a, comm, cmd, "usage: natgrad predict --model DIR/model.json --data FILE --out FILE [--se]",
                   predict_job_table(), PredictJob{}, [&](PredictJob& j) { return run_predict_command(j, comm, out); });
  if (cmd == "generate")
    return command(n, a, comm, cmd, "usage: natgrad generate --data gen:SPEC --out FILE.csv|FILE.npy|FILE.h5",
                   generate_job_table(), GenerateJob{}, [&](GenerateJob& j) { return run_generate_command(j, comm, out); });
  if (cmd == "demo")
    return command(n, a, comm, cmd, "usage: natgrad demo [options]", demo_option_table(), DemoOptions{},
                   [&](DemoOptions& j) { return run_demo_command(j, comm, out); });
  if (cmd == "selftest")
    return command(n, a, comm, cmd, "usage: natgrad selftest [--threads N]", selftest_option_table(), SelftestJob{},
                   [&](SelftestJob& j) { return run_selftest_command(j, comm, out); });
  if (cmd == "plot")
    return command(n, a, comm, cmd, "usage: natgrad plot --csv FILE --x COLUMN --y COLUMN[,COLUMN...] --out FILE.{png,svg,pdf}",
                   plot_job_table(), PlotJob{}, [&](PlotJob& j) { return run_plot_command(j, comm, out); });
  throw CollectiveError("unknown command '" + cmd + "' (expected fit, predict, generate, demo, selftest or plot)");
}

/// Started without a launcher (no mpirun/srun/hydra rank variable): Open MPI's singleton
/// start-up otherwise forks a runtime daemon and initialises UCX, ~0.4 s of the ~0.5 s
/// a small fit takes on a 2-core VM (measured, Open MPI 4.1.4). A process alone needs
/// neither: isolated singleton, ob1 (self) transport. Variables the user set are kept.
void quick_singleton_start() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"})
    if (std::getenv(v) != nullptr) return;
  setenv("OMPI_MCA_ess_singleton_isolated", "1", 0);
  setenv("OMPI_MCA_pml", "ob1", 0);
}

}  // namespace

int main(int argc, char** argv) {
  quick_singleton_start();
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  const Communicator comm = Communicator::world();
  int rc = 0;
  try {
    rc = dispatch(argc, argv, comm);
  } catch (const CollectiveError& e) {
    // Every rank holds the same error: rank 0 says it once, all exit non-zero.
    if (comm.is_root()) std::cerr << "natgrad: error: " << e.what() << std::endl;
    rc = 1;
  } catch (const std::bad_alloc& e) {
    // An allocation the memory admission did not foresee: one line from this rank, then
    // every rank stops (the others may wait in a collective).
    std::cerr << "natgrad: error on rank " << comm.rank() << ": out of memory (" << e.what()
              << "); see 'Memory admission' in docs/cluster.md" << std::endl;
    if (comm.size() > 1) comm.abort(1);
    rc = 1;
  } catch (const std::exception& e) {
    // One rank failed on its own: say which and stop every rank now, never hang.
    std::cerr << "natgrad: error on rank " << comm.rank() << ": " << e.what() << std::endl;
    if (comm.size() > 1) comm.abort(1);
    rc = 1;
  }
  MPI_Finalize();
  return rc;
}
