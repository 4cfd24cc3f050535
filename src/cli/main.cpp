// natgrad command line: parses options (Boost.Program_options, command line and an
// optional config file), initialises MPI, and hands plain option structs to the
// library. Usage: natgrad <fit|generate|demo|selftest> [options]; natgrad <cmd> --help.
#include <mpi.h>
#include <omp.h>

#include <boost/program_options.hpp>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>
#include <algorithm>
#include <cstdlib>

#include "natgrad/app/jobs.hpp"
#include "natgrad/app/demo.hpp"
#include "natgrad/core/error.hpp"
#include "natgrad/io/generator.hpp"
#include "natgrad/core/model.hpp"
#include "natgrad/core/linalg.hpp"
#include "natgrad/plot/plot.hpp"
#include "natgrad/app/selftest.hpp"

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

/// Exit status of a fit stopped by a signal after writing its checkpoint (jobs requeue on it).
constexpr int kExitInterrupted = 3;

constexpr const char* kUsage =
    "natgrad: distributed natural-gradient fitting of probabilistic models\n\n"
    "usage: natgrad <command> [options]      (under mpirun: mpirun -n P natgrad ...)\n\n"
    "commands:\n"
    "  fit       fit a model to a dataset (CSV, LIBSVM or NPY file, or a built-in generator)\n"
    "  predict   apply a fitted model.json to data\n"
    "  generate  write a built-in dataset to CSV or NPY\n"
    "  demo      the seed's experiment: NGD vs gradient descent on a Gaussian mixture\n"
    "  selftest  post-install checks (gradient, Fisher, reduction, Cholesky)\n"
    "  plot      a CSV's columns as a line chart, PNG, SVG or PDF (e.g. a scaling study's results)\n\n"
    "'natgrad <command> --help' lists the command's options.\n";

/// Threads per rank when neither --threads nor OMP_NUM_THREADS says: the cores this
/// process is bound to, or, if it is not bound, the node's cores shared among the ranks
/// on the node, so that ranks x threads never exceeds the cores.
int default_threads(const Communicator& comm) {
  if (std::getenv("OMP_NUM_THREADS") != nullptr) return omp_get_max_threads();
  MPI_Comm node;
  MPI_Comm_split_type(comm.handle(), MPI_COMM_TYPE_SHARED, comm.rank(), MPI_INFO_NULL, &node);
  int local = 1;
  MPI_Comm_size(node, &local);
  MPI_Comm_free(&node);
  const int bound = omp_get_num_procs();  // honours the affinity mask
  const int total = static_cast<int>(std::thread::hardware_concurrency());
  if (total > 0 && bound < total) return std::max(1, bound);
  return std::max(1, (total > 0 ? total : bound) / std::max(local, 1));
}

/// Options shared by every command.
po::options_description common_options(int& threads, std::string& config, const Communicator& comm) {
  po::options_description d("common options");
  d.add_options()
      ("help,h", "show this help and exit")
      ("threads", po::value<int>(&threads)->default_value(default_threads(comm)),
       "OpenMP threads per rank (default: OMP_NUM_THREADS, else the cores this rank is "
       "bound to, else the node's cores divided by the ranks on the node)")
      ("config", po::value<std::string>(&config),
       "read further options from this file (lines 'name = value'; the command line wins)");
  return d;
}

/// Parses argv (without the command word) and the optional config file. Every rank
/// parses the same input, so errors are collective.
po::variables_map parse(int argc, char** argv, const po::options_description& desc,
                        const std::string& cmd, std::string& config) {
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(desc).run(), vm);
    if (vm.count("help")) return vm;  // --help needs no required option
    if (vm.count("config")) {
      config = vm["config"].as<std::string>();
      std::ifstream in(config);
      if (!in) throw CollectiveError("natgrad " + cmd + ": cannot read --config file '" + config + "'");
      po::store(po::parse_config_file(in, desc), vm);
    }
    po::notify(vm);
  } catch (const po::error& e) {
    throw CollectiveError("natgrad " + cmd + ": " + e.what() + " (see 'natgrad " + cmd + " --help')");
  }
  return vm;
}

void apply_threads(int threads) {
  if (threads < 1) throw CollectiveError("--threads must be >= 1");
  omp_set_num_threads(threads);
  natgrad::set_blas_threads(threads);
}

/// The options actually in force, for model.json.
std::string options_json(const po::variables_map& vm) {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  for (const auto& [name, v] : vm) {
    const auto& a = v.value();
    if (a.type() == typeid(std::string)) j[name] = v.as<std::string>();
    else if (a.type() == typeid(int)) j[name] = v.as<int>();
    else if (a.type() == typeid(double)) j[name] = v.as<double>();
    else if (a.type() == typeid(bool)) j[name] = v.as<bool>();
    else if (a.type() == typeid(std::int64_t)) j[name] = v.as<std::int64_t>();
    else if (a.empty()) j[name] = true;  // a switch without a value, e.g. --no-inference
  }
  return j.dump();
}

/// Converts errors raised while turning identical options into structs into collective
/// ones: every rank fails the same way, so they may all exit normally.
template <class F>
void on_every_rank(F&& f) {
  try {
    f();
  } catch (const CollectiveError&) {
    throw;
  } catch (const natgrad::Error& e) {
    throw CollectiveError(e.what());
  }
}

bool help(const po::variables_map& vm, const Communicator& comm, const std::string& usage,
          const po::options_description& desc) {
  if (!vm.count("help")) return false;
  if (comm.is_root()) std::cout << usage << "\n" << desc << '\n';
  return true;
}

int cmd_fit(int argc, char** argv, const Communicator& comm) {
  natgrad::FitJob job;
  int threads = 1;
  std::string config, method, fisher, step, header, out, delim, init, checkpoint, resume;
  po::options_description d = common_options(threads, config, comm);
  po::options_description f("fit options");
  f.add_options()
      ("data", po::value<std::string>(&job.read.path)->required(),
       "CSV, LIBSVM or NPY file (format from --format or the extension; label in --label-column), "
       "or a generator spec such as "
       "gen:logit:rows=1000000,cols=64 or gen:mixture:rows=200 (see docs/cli.md)")
      ("out", po::value<std::string>(&out), "directory for model.json and history.csv")
      ("family", po::value<std::string>(&job.family)->default_value("binomial"),
       "binomial | poisson | gaussian | gamma | multinomial (labels 0..K-1, class 0 the reference)")
      ("link", po::value<std::string>(&job.link)->default_value(""),
       "link function (default: the family's canonical one; binomial: logit | probit | cloglog; "
       "poisson: log; gaussian: identity | log; gamma: inverse | log; multinomial: softmax)")
      ("method", po::value<std::string>(&method)->default_value("ngd"),
       "ngd (natural gradient, full Fisher) | gd (vanilla gradient descent) | diag (diagonal Fisher)")
      ("fisher", po::value<std::string>(&fisher)->default_value("expected"),
       "expected (X^T W X, Fisher scoring) | empirical (sum of score outer products) | "
       "empirical-centered (covariance of the scores, as the seed's np.cov)")
      ("fisher-sample", po::value<double>(&job.fit.sample.fraction)->default_value(1.0),
       "form the Fisher from this fraction of the rows (chosen by global row index: the same rows at "
       "any rank count); loss, gradient and --tol use every row, so the answer is the same, in more but "
       "cheaper iterations. 1 = exact Fisher")
      ("fisher-sample-seed", po::value<std::uint64_t>(&job.fit.sample.seed)->default_value(0),
       "which rows --fisher-sample picks")
      ("step", po::value<std::string>(&step)->default_value("armijo"),
       "fixed (theta -= lr * direction, the seed's rule) | armijo (backtracking from lr) | "
       "kl (KL trust region: 0.5 d^T F d <= --kl, then backtracking)")
      ("lr", po::value<double>(&job.fit.lr)->default_value(1.0), "learning rate / first trial step")
      ("kl", po::value<double>(&job.fit.kl)->default_value(0.1), "KL radius c for --step kl")
      ("damping", po::value<double>(&job.fit.damping)->default_value(0.0),
       "added to the Fisher diagonal; raised automatically when Cholesky fails")
      ("max-iter", po::value<int>(&job.fit.max_iter)->default_value(100), "iteration limit")
      ("tol", po::value<double>(&job.fit.tol)->default_value(1e-8),
       "converged when max |gradient of the mean loss| <= tol")
      ("ftol", po::value<double>(&job.fit.ftol)->default_value(0.0),
       "converged when the relative loss change <= ftol (0: off)")
      ("intercept", po::bool_switch(&job.read.intercept), "add an intercept as coefficient 0")
      ("label-column", po::value<std::string>(&job.read.label_column)->default_value("0"),
       "column of the label: 0-based index or header name")
      ("weight-column", po::value<std::string>(&job.read.weight_column),
       "column of prior weights (index or name); binomial: trial counts with a proportion label")
      ("offset-column", po::value<std::string>(&job.read.offset_column),
       "column added to the linear predictor (index or name), e.g. log exposure for poisson")
      ("columns", po::value<std::string>(&job.read.columns),
       "comma-separated feature columns (indices or names; default: all other columns)")
      ("format", po::value<std::string>(&job.read.format),
       "csv | libsvm | npy | hdf5 (default: from the file extension)")
      ("dataset", po::value<std::string>(&job.read.dataset)->default_value("data"),
       "HDF5: the 2-D dataset to read (a path in the file)")
      ("delimiter", po::value<std::string>(&delim)->default_value(","), "CSV field delimiter (one character)")
      ("header", po::value<std::string>(&header)->default_value("auto"), "CSV header line: auto | yes | no")
      ("block-rows", po::value<std::int64_t>(&job.fit.block_rows)->default_value(256),
       "rows per block in the Fisher pass")
      ("l2", po::value<double>(&job.fit.l2)->default_value(0.0),
       "ridge penalty: minimise sum_i w_i nll_i + l2/2 ||theta||^2 (intercept not penalised)")
      ("penalize-intercept", po::bool_switch(&job.penalize_intercept), "apply --l2 to the intercept too")
      ("classes", po::value<int>(&job.classes)->default_value(0),
       "multinomial: number of classes K (default: 1 + the largest label)")
      ("start", po::value<std::string>(&job.start)->default_value("irls"),
       "irls (R's starting values: one weighted least-squares step) | zero")
      ("init", po::value<std::string>(&init),
       "start from the \"coefficients\" of this JSON file (e.g. a previous model.json)")
      ("drop-collinear", po::bool_switch(&job.drop_collinear),
       "drop linearly dependent columns (reported as NA) instead of stopping with an error")
      ("covariance", po::bool_switch(&job.covariance), "store the covariance matrix in model.json")
      ("no-inference", "skip standard errors, deviances and AIC/BIC")
      ("quiet", po::bool_switch(&job.quiet), "no per-iteration progress lines")
      ("checkpoint", po::value<std::string>(&checkpoint),
       "write the fit's state to this file every --checkpoint-every iterations and on SIGTERM or "
       "SIGUSR1 (then stop, exit status 3); atomic, so a kill leaves the previous checkpoint")
      ("checkpoint-every", po::value<int>(&job.fit.checkpoint_every)->default_value(10),
       "iterations between checkpoints")
      ("resume", po::value<std::string>(&resume),
       "continue the fit saved in this checkpoint (same data and options; ranks, threads and --max-iter "
       "may differ); usually the --checkpoint file itself");
  d.add(f);
  const auto vm = parse(argc, argv, d, "fit", config);
  if (help(vm, comm, "usage: natgrad fit --data FILE|gen:SPEC [--out DIR] [options]", d)) return 0;
  on_every_rank([&] {
    apply_threads(threads);
    job.fit.threads = threads;
    job.read.threads = threads;
    job.fit.method = natgrad::method_from_string(method);
    job.fit.fisher = natgrad::fisher_kind_from_string(fisher);
    job.fit.step = natgrad::step_rule_from_string(step);
    job.fit.validate();
    natgrad::make_model(job.family, job.link, 2);
    if (job.start != "irls" && job.start != "zero")
      throw CollectiveError("--start '" + job.start + "' is not one of: irls, zero");
    if (job.classes == 1 || job.classes < 0) throw CollectiveError("--classes must be >= 2");
    if (job.read.label_column == "none")
      throw CollectiveError("--label-column none: fit needs a label column (none is for predict)");
    job.inference = !vm.count("no-inference");
    job.init = init;
    job.checkpoint = checkpoint;
    job.resume = resume;
    if (job.fit.checkpoint_every < 1) throw CollectiveError("--checkpoint-every must be >= 1");
    if (checkpoint.empty()) job.fit.checkpoint_every = 0;
    if (!resume.empty() && !init.empty()) throw CollectiveError("--init and --resume exclude each other");
    if (natgrad::is_generator_spec(job.read.path)) natgrad::parse_generator_spec(job.read.path);
    job.out_dir = out;
    if (delim.size() != 1) throw CollectiveError("--delimiter must be one character");
    job.read.delimiter = delim[0];
    using H = natgrad::ReadOptions::Header;
    if (header == "auto") job.read.header = H::auto_detect;
    else if (header == "yes") job.read.header = H::yes;
    else if (header == "no") job.read.header = H::no;
    else throw CollectiveError("--header '" + header + "' is not one of: auto, yes, no");
    job.options_json = options_json(vm);
  });
  for (int i = 0; i < argc; ++i) job.command += (i ? " " : "natgrad ") + std::string(argv[i]);
  if (!job.checkpoint.empty()) {
    // Only a checkpointing fit catches these: it can stop cleanly and be resumed.
    install_stop_handlers();
    job.fit.interrupt = &g_stop_signal;
  }
  const auto res = natgrad::run_fit(job, comm, std::cout);
  if (res.converged() || res.reason == natgrad::Reason::max_iterations) return 0;
  if (res.reason == natgrad::Reason::interrupted) return kExitInterrupted;
  if (comm.is_root()) std::cerr << "natgrad: fit " << natgrad::to_string(res.reason) << std::endl;
  return 2;
}

int cmd_generate(int argc, char** argv, const Communicator& comm) {
  natgrad::GenerateJob job;
  int threads = 1;
  std::string config, out, truth;
  po::options_description d = common_options(threads, config, comm);
  po::options_description g("generate options");
  g.add_options()
      ("data", po::value<std::string>(&job.spec)->required(),
       "generator spec: gen:mixture[:rows=,cols=,seed=] or "
       "gen:logit[:rows=,cols=,seed=,cond=,rho=,signal=,intercept=]")
      ("out", po::value<std::string>(&out)->required(), "output file (.csv or .npy); label in column 0")
      ("format", po::value<std::string>(&job.format),
       "csv | npy | hdf5 (dataset 'data'; default: from the extension: .csv, .npy, .h5)")
      ("truth", po::value<std::string>(&truth), "also write the true coefficients (JSON) here");
  d.add(g);
  const auto vm = parse(argc, argv, d, "generate", config);
  if (help(vm, comm, "usage: natgrad generate --data gen:SPEC --out FILE.csv|FILE.npy", d)) return 0;
  apply_threads(threads);
  job.threads = threads;
  job.out = out;
  job.truth = truth;
  on_every_rank([&] { natgrad::parse_generator_spec(job.spec); });
  natgrad::run_generate(job, comm, std::cout);
  return 0;
}

int cmd_predict(int argc, char** argv, const Communicator& comm) {
  natgrad::PredictJob job;
  int threads = 1;
  std::string config, model, out, header, delim;
  po::options_description d = common_options(threads, config, comm);
  po::options_description g("predict options");
  g.add_options()
      ("model", po::value<std::string>(&model)->required(), "model.json written by 'natgrad fit --out'")
      ("data", po::value<std::string>(&job.read.path)->required(), "rows to predict (same columns as the fit)")
      ("out", po::value<std::string>(&out)->required(),
       "CSV of predictions: eta,mu[,se_eta] (multinomial: eta1..,p0..pK-1,class), one line per row in order")
      ("se", po::bool_switch(&job.se), "standard error of the linear predictor (model fitted with --covariance)")
      ("label-column", po::value<std::string>(&job.read.label_column),
       "column of the label, or 'none' (default: as in the fit)")
      ("weight-column", po::value<std::string>(&job.read.weight_column), "as in fit (ignored for predictions)")
      ("offset-column", po::value<std::string>(&job.read.offset_column), "offset column (default: as in the fit)")
      ("columns", po::value<std::string>(&job.read.columns), "feature columns (default: as in the fit)")
      ("format", po::value<std::string>(&job.read.format), "csv | libsvm | npy | hdf5 (default: by extension)")
      ("dataset", po::value<std::string>(&job.read.dataset), "HDF5 dataset (default: as in the fit)")
      ("delimiter", po::value<std::string>(&delim), "CSV field delimiter (default: as in the fit)")
      ("header", po::value<std::string>(&header), "CSV header line: auto | yes | no (default: as in the fit)");
  d.add(g);
  const auto vm = parse(argc, argv, d, "predict", config);
  if (help(vm, comm, "usage: natgrad predict --model DIR/model.json --data FILE --out FILE [--se]", d)) return 0;
  on_every_rank([&] {
    apply_threads(threads);
    job.threads = threads;
    job.read.threads = threads;
    job.model = model;
    job.out = out;
    // Reader options not given here default to those recorded in model.json.
    std::ifstream in(model);
    nlohmann::json opts = nlohmann::json::object();
    if (in) {
      try {
        opts = nlohmann::json::parse(in).value("options", nlohmann::json::object());
      } catch (const nlohmann::json::exception&) {
      }
    }
    auto fill = [&](const char* name, std::string& field) {
      if (!vm.count(name) && opts.contains(name) && opts[name].is_string()) field = opts[name].get<std::string>();
    };
    fill("label-column", job.read.label_column);
    fill("weight-column", job.read.weight_column);
    fill("offset-column", job.read.offset_column);
    fill("columns", job.read.columns);
    fill("dataset", job.read.dataset);
    fill("delimiter", delim);
    fill("header", header);
    if (!delim.empty()) job.read.delimiter = delim[0];
    using H = natgrad::ReadOptions::Header;
    job.read.header = header == "yes" ? H::yes : header == "no" ? H::no : H::auto_detect;
  });
  natgrad::run_predict(job, comm, std::cout);
  return 0;
}

int cmd_demo(int argc, char** argv, const Communicator& comm) {
  natgrad::DemoOptions o;
  int threads = 1;
  std::string config, out;
  po::options_description d = common_options(threads, config, comm);
  po::options_description g("demo options");
  g.add_options()
      ("repetitions", po::value<int>(&o.repetitions)->default_value(100), "independent repetitions")
      ("iterations", po::value<int>(&o.iterations)->default_value(5), "iterations per fit")
      ("lr", po::value<double>(&o.lr)->default_value(1.0), "learning rate of both methods")
      ("seed", po::value<std::uint64_t>(&o.seed)->default_value(2018), "random seed")
      ("out", po::value<std::string>(&out)->default_value("natgrad-demo"),
       "directory for curves.csv and curves.png");
  d.add(g);
  const auto vm = parse(argc, argv, d, "demo", config);
  if (help(vm, comm, "usage: natgrad demo [options]", d)) return 0;
  apply_threads(threads);
  o.threads = threads;
  o.out_dir = out;
  on_every_rank([&] {
    if (o.repetitions < 1) throw CollectiveError("--repetitions must be >= 1");
    if (o.iterations < 1) throw CollectiveError("--iterations must be >= 1");
    if (!(o.lr > 0)) throw CollectiveError("--lr must be positive");
  });
  natgrad::run_demo(o, comm, std::cout);
  return 0;
}

int cmd_selftest(int argc, char** argv, const Communicator& comm) {
  int threads = 1;
  std::string config;
  po::options_description d = common_options(threads, config, comm);
  const auto vm = parse(argc, argv, d, "selftest", config);
  if (help(vm, comm, "usage: natgrad selftest [--threads N]", d)) return 0;
  apply_threads(threads);
  if (comm.is_root()) std::cout << "natgrad selftest: " << natgrad::describe_layout(comm, threads) << '\n';
  else natgrad::describe_layout(comm, threads);
  return natgrad::run_selftest(comm, threads, std::cout) == 0 ? 0 : 1;
}

int cmd_plot(int argc, char** argv, const Communicator& comm) {
  int threads = 1;
  std::string config, csv, x, y, out;
  natgrad::PlotOptions opt;
  po::options_description d = common_options(threads, config, comm);
  po::options_description g("plot options");
  g.add_options()
      ("csv", po::value<std::string>(&csv)->required(), "CSV file with a header line")
      ("x", po::value<std::string>(&x)->required(), "column for the x axis")
      ("y", po::value<std::string>(&y)->required(), "column(s) for the y axis, comma-separated: one line each")
      ("out", po::value<std::string>(&out)->required(), "file to write: .png, .svg or .pdf")
      ("title", po::value<std::string>(&opt.title), "title (default: the CSV's file name)")
      ("x-label", po::value<std::string>(&opt.x_label), "x axis label (default: the column name)")
      ("y-label", po::value<std::string>(&opt.y_label), "y axis label (default: the column name)")
      ("log-y", po::bool_switch(&opt.log_y), "logarithmic y axis");
  d.add(g);
  const auto vm = parse(argc, argv, d, "plot", config);
  if (help(vm, comm, "usage: natgrad plot --csv FILE --x COLUMN --y COLUMN[,COLUMN...] --out FILE.{png,svg,pdf}", d)) return 0;
  std::vector<std::string> ys;
  std::stringstream ss(y);
  for (std::string c; std::getline(ss, c, ',');)
    if (!c.empty()) ys.push_back(c);
  std::string err;
  if (comm.is_root()) {
    try {
      natgrad::plot_csv(csv, x, ys, out, opt);
      std::cout << "wrote " << out << '\n';
    } catch (const std::exception& e) {
      err = std::string("natgrad plot: ") + e.what();
    }
  }
  comm.check(err.empty(), err);
  return 0;
}

int dispatch(int argc, char** argv, const Communicator& comm) {
  const std::string cmd = argc > 1 ? argv[1] : "";
  if (cmd.empty() || cmd == "--help" || cmd == "-h" || cmd == "help") {
    if (comm.is_root()) std::cout << kUsage;
    return cmd.empty() ? 1 : 0;
  }
  // Boost sees the arguments after the command word (argv[1] stands in for argv[0]).
  if (cmd == "fit") return cmd_fit(argc - 1, argv + 1, comm);
  if (cmd == "generate") return cmd_generate(argc - 1, argv + 1, comm);
  if (cmd == "demo") return cmd_demo(argc - 1, argv + 1, comm);
  if (cmd == "selftest") return cmd_selftest(argc - 1, argv + 1, comm);
  if (cmd == "predict") return cmd_predict(argc - 1, argv + 1, comm);
  if (cmd == "plot") return cmd_plot(argc - 1, argv + 1, comm);
  throw CollectiveError("unknown command '" + cmd + "' (expected fit, predict, generate, demo, selftest or plot)");
}

}  // namespace

int main(int argc, char** argv) {
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
  } catch (const std::exception& e) {
    // One rank failed on its own: say which and stop every rank now, never hang.
    std::cerr << "natgrad: error on rank " << comm.rank() << ": " << e.what() << std::endl;
    if (comm.size() > 1) comm.abort(1);
    rc = 1;
  }
  MPI_Finalize();
  return rc;
}
