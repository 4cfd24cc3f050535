#include "natgrad/app/options.hpp"

#include <nlohmann/json.hpp>

#include "natgrad/io/generator.hpp"

namespace natgrad {

namespace {

constexpr unsigned kRecorded = kOptionRecorded;

/// --threads, declared once for every command; 0 in T::*member stands for "not given".
template <class T>
Option<T> threads_option(int T::*member) {
  Option<T> o;
  o.name = "threads";
  o.help =
      "OpenMP threads per rank (default: OMP_NUM_THREADS, else the cores this rank is bound to, else the node's "
      "cores divided by the ranks on the node)";
  o.flags = kRecorded;
  o.parse = [member](T& t, const std::string& s) {
    const int n = option_detail::parse_number<int>("threads", s);
    if (n < 1) throw Error("--threads must be >= 1");
    t.*member = n;
  };
  o.json = [member](const T& t) { return std::to_string(t.*member); };
  return o;
}

}  // namespace

/// The reader's rows for `natgrad fit`: an intercept unless --no-intercept (R's default).
/// --intercept (kept for old scripts) defaults to true and records the choice; the
/// --no-intercept row after it has no default, so only when given does it clear the
/// member (apply_options refuses both given together).
OptionTable<ReadOptions> fit_read_table() {
  using R = ReadOptions;
  OptionTable<R> t;
  for (Option<R> o : read_option_table()) {
    if (o.name != "intercept") {
      t.push_back(std::move(o));
      continue;
    }
    o.default_text = "true";
    o.help = "fit an intercept as coefficient 0 (the default, as R's glm; kept for old scripts)";
    t.push_back(std::move(o));
    Option<R> no = switch_option<R>("no-intercept", &R::intercept,
                                    "fit without an intercept (R's y ~ x - 1); the default fits one", 0, true);
    no.default_text.clear();
    t.push_back(std::move(no));
  }
  return t;
}

const OptionTable<FitJob>& fit_job_table() {
  using J = FitJob;
  static const OptionTable<J> table = join<J>({
      nest<J>(fit_read_table(), [](auto& j) -> auto& { return j.read; }),
      {text_option<J>("out", &J::out_dir, "", "directory for model.json, history.csv and summary.txt", kRecorded)},
      nest<J>(glm_option_table(), [](auto& j) -> auto& { return j.glm; }),
      {threads_option<J>(&J::threads),
       text_option<J>("init", &J::init, "",
                      "start from the \"coefficients\" of this JSON file (e.g. a previous model.json)", kRecorded),
       switch_option<J>("covariance", &J::covariance, "store the covariance matrix in model.json", kRecorded),
       switch_option<J>("quiet", &J::quiet, "no per-iteration progress lines", kRecorded),
       text_option<J>("checkpoint", &J::checkpoint, "",
                      "write the fit's state to this file every --checkpoint-every iterations and on SIGTERM or "
                      "SIGUSR1 (then stop, exit status 3); atomic, so a kill leaves the previous checkpoint",
                      kRecorded),
       number_option<J, int>("checkpoint-every", &J::checkpoint_every, "10", "iterations between checkpoints",
                             kRecorded, at_least(1)),
       text_option<J>("resume", &J::resume, "",
                      "continue the fit saved in this checkpoint (same data and options; ranks, threads and "
                      "--max-iter may differ); usually the --checkpoint file itself",
                      kRecorded),
       text_option<J>("residuals", &J::residuals, "",
                      "after the fit, write this CSV: one line per data row in order: row,y,mu,eta,deviance,"
                      "pearson,working,response (R's residuals(fit, type = ...); multinomial: row,y,p0..pK-1)",
                      kRecorded),
       text_option<J>("memory-check", &J::memory_check, "on",
                      "on: before reading the data and before allocating the Fisher, stop every rank with one "
                      "message when the fit needs more memory than the ranks can get (cgroup limit, MemAvailable, "
                      "ulimit -v); off: skip the check",
                      kRecorded, [](const std::string& v) { return v == "on" || v == "off" ? "" : "must be on or off"; })},
  });
  return table;
}

void FitJob::validate() const {
  check_options(fit_job_table(), *this);
  glm.validate();
  if (threads < 0) throw Error("--threads must be >= 1");
  if (read.label_column == "none")
    throw Error("--label-column none: fit needs a label column (none is for predict)");
  if (!resume.empty() && !init.empty()) throw Error("--init and --resume exclude each other");
}

const OptionTable<PredictJob>& predict_job_table() {
  using J = PredictJob;
  static const OptionTable<J> table = [] {
    OptionTable<J> t{
        text_option<J>("model", &J::model, "",
                       "model.json written by 'natgrad fit --out DIR', or DIR itself", kOptionRequired),
        text_option<J>("out", &J::out, "",
                       "CSV of predictions: eta,mu[,se_eta,se_mu] (multinomial: eta1..,p0..pK-1,class), one line per row "
                       "in order",
                       kOptionRequired),
        switch_option<J>("se", &J::se,
                         "standard errors of the linear predictor and of the mean, se_mu = |dmu/deta| se_eta (R's "
                         "predict.glm se.fit; the model must be fitted with --covariance)"),
        threads_option<J>(&J::threads)};
    // The reader's rows; those not given default to the fit's (model.json "options").
    for (Option<J> o : nest<J>(read_option_table(), [](auto& j) -> auto& { return j.read; })) {
      if (o.name == "intercept") continue;  // the model says whether it has one
      if (o.name == "data") {
        o.help =
            "rows to predict (the fit's columns in the same order, or a CSV with a header naming them in any "
            "order)";
      } else {
        o.help += " (default: as in the fit";
        o.help += o.name == "label-column" ? "; 'none' for data without a label)" : ")";
      }
      t.push_back(std::move(o));
    }
    return t;
  }();
  return table;
}

const OptionTable<GenerateJob>& generate_job_table() {
  using J = GenerateJob;
  static const OptionTable<J> table{
      text_option<J>("data", &J::spec, "",
                     "generator spec: gen:mixture[:rows=,cols=,seed=] or "
                     "gen:logit[:rows=,cols=,seed=,cond=,rho=,signal=,intercept=]",
                     kOptionRequired,
                     [](const std::string& v) {
                       parse_generator_spec(v);  // throws its own message
                       return std::string();
                     }),
      text_option<J>("out", &J::out, "", "output file (.csv, .npy, .h5 or .svm); label in column 0", kOptionRequired),
      text_option<J>("format", &J::format, "",
                     "csv | npy | hdf5 (dataset 'data') | libsvm (non-zeros only; default: from the extension: .csv, .npy, .h5, "
                     ".svm)"),
      text_option<J>("truth", &J::truth, "", "also write the true coefficients (JSON) here"),
      threads_option<J>(&J::threads),
  };
  return table;
}

const OptionTable<DemoOptions>& demo_option_table() {
  using J = DemoOptions;
  static const OptionTable<J> table{
      number_option<J, int>("repetitions", &J::repetitions, "100", "independent repetitions", 0, at_least(1)),
      number_option<J, int>("iterations", &J::iterations, "5", "iterations per fit", 0, at_least(1)),
      number_option<J, double>("lr", &J::lr, "1", "learning rate of both methods", 0, positive_number()),
      number_option<J, std::uint64_t>("seed", &J::seed, "2018", "random seed"),
      text_option<J>("out", &J::out_dir, "natgrad-demo", "directory for curves.csv and curves.png"),
      threads_option<J>(&J::threads),
  };
  return table;
}

const OptionTable<PlotJob>& plot_job_table() {
  using J = PlotJob;
  using P = PlotOptions;
  static const OptionTable<J> table = join<J>({
      {text_option<J>("csv", &J::csv, "", "CSV file with a header line", kOptionRequired),
       text_option<J>("x", &J::x, "", "column for the x axis", kOptionRequired),
       text_option<J>("y", &J::y, "", "column(s) for the y axis, comma-separated: one line each", kOptionRequired),
       text_option<J>("out", &J::out, "", "file to write: .png, .svg or .pdf", kOptionRequired)},
      nest<J>(OptionTable<P>{text_option<P>("title", &P::title, "", "title (default: the CSV's file name)"),
                             text_option<P>("x-label", &P::x_label, "", "x axis label (default: the column name)"),
                             text_option<P>("y-label", &P::y_label, "", "y axis label (default: the column name)"),
                             switch_option<P>("log-y", &P::log_y, "logarithmic y axis")},
              [](auto& j) -> auto& { return j.plot; }),
      {threads_option<J>(&J::threads)},
  });
  return table;
}

const OptionTable<SelftestJob>& selftest_option_table() {
  static const OptionTable<SelftestJob> table{threads_option<SelftestJob>(&SelftestJob::threads)};
  return table;
}

std::string option_text(const std::string& json_value) {
  const auto v = nlohmann::json::parse(json_value);
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return {};
  return v.dump();
}

}  // namespace natgrad
