#include "natgrad/app/jobs.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iomanip>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "natgrad/io/checkpoint.hpp"
#include "natgrad/core/error.hpp"
#include "natgrad/io/generator.hpp"
#include "natgrad/io/hdf5.hpp"
#include "natgrad/core/linalg.hpp"
#include "natgrad/core/memory.hpp"
#include "natgrad/io/npy.hpp"
#include "natgrad/io/output.hpp"
#include "natgrad/io/report.hpp"
#include "natgrad/core/inference.hpp"
#include "core/kernels.hpp"
#include "natgrad/core/glm.hpp"

namespace natgrad {

std::string describe_layout(const Communicator& comm, int threads) {
  const auto hosts = comm.gather(Communicator::processor_name());
  if (!comm.is_root()) return {};
  std::map<std::string, int> per_host;
  for (const auto& h : hosts) ++per_host[h];
  std::ostringstream o;
  o << comm.size() << " rank(s) on " << per_host.size() << " node(s), " << threads
    << " OpenMP thread(s) per rank; " << blas_description() << "; hosts:";
  for (const auto& [h, n] : per_host) o << ' ' << h << " (" << n << (n == 1 ? " rank)" : " ranks)");
  return o.str();
}

namespace {

/// Checks every label against the model on every rank (collective); names the row.
void check_labels(const Shard& s, const Model& m, const Communicator& comm) {
  std::string msg;
  for (std::int64_t i = 0; i < s.n_rows && msg.empty(); ++i) {
    const std::string why = m.check_label(s.y[i]);
    if (!why.empty()) {
      std::ostringstream o;
      o << s.source << ": data row " << s.first_row + i + 1 << ": label " << s.y[i] << " is invalid for "
        << m.name() << " (expected " << why << ")";
      msg = o.str();
    }
  }
  comm.check(msg.empty(), msg);
}

}  // namespace

namespace {

/// The largest label over all ranks (multinomial: K = 1 + max), collective.
int count_classes(const Shard& s, const Communicator& comm) {
  std::int64_t mx = 0;
  for (double y : s.y)
    if (std::isfinite(y) && y >= 0 && y < 1e6) mx = std::max<std::int64_t>(mx, static_cast<std::int64_t>(y));
  comm.allreduce_max(&mx, 1);
  return static_cast<int>(mx) + 1;
}

/// Removes columns from the row-major design in place (no second copy of X).
void drop_columns(Shard& s, const std::vector<std::int64_t>& cols) {
  std::vector<char> keep(static_cast<std::size_t>(s.n_cols), 1);
  for (auto c : cols) keep[static_cast<std::size_t>(c)] = 0;
  const std::int64_t d = s.n_cols, nd = d - static_cast<std::int64_t>(cols.size());
  for (std::int64_t i = 0; i < s.n_rows; ++i) {
    std::int64_t o = 0;
    for (std::int64_t j = 0; j < d; ++j)
      if (keep[j]) s.x[i * nd + o++] = s.x[i * d + j];
  }
  s.x.resize(static_cast<std::size_t>(s.n_rows * nd));
  std::vector<std::string> names;
  for (std::int64_t j = 0; j < d; ++j)
    if (keep[j]) names.push_back(s.names[j]);
  s.names = names;
  s.n_cols = nd;
}

/// Collective: a classifier's coefficients run away when the loss still falls far along
/// the last step's direction (a recession direction: separation). A finite optimum
/// makes the loss rise steeply there instead.
bool separated(const Shard& s, const Model& m, const FitResult& r, const FitOptions& o, const Communicator& comm) {
  if (!m.is_classifier() || r.last_step.empty()) return false;
  double norm = 0, big = 1;
  for (double v : r.last_step) norm += v * v;
  for (double v : r.theta) big = std::max(big, std::abs(v));
  norm = std::sqrt(norm);
  if (!(norm > 0)) return false;
  std::vector<double> far(r.theta);
  for (std::size_t j = 0; j < far.size(); ++j) far[j] += 10 * big * r.last_step[j] / norm;
  const double f0 = r.loss, f1 = global_loss(s, m, far, o, comm);  // r.loss: the fit's loss at theta
  if (f0 <= 0) return true;  // every row fitted exactly: probabilities 0 or 1
  return std::isfinite(f1) && f1 < f0 * (1 - 1e-9);
}

/// Collective: "coefficients" of a JSON file (a model.json) as a start; null -> 0.
std::vector<double> read_initial_coefficients(const std::filesystem::path& path, std::int64_t p,
                                              const Communicator& comm) {
  std::vector<double> theta;
  std::string err;
  try {
    std::ifstream in(path);
    if (!in) throw Error(path.string() + ": cannot open --init file");
    const auto j = nlohmann::json::parse(in);
    if (!j.contains("coefficients") || !j["coefficients"].is_array())
      throw Error(path.string() + ": no \"coefficients\" array");
    std::vector<double> fitted;  // without the NA (null) entries of dropped columns
    for (const auto& v : j["coefficients"]) {
      theta.push_back(v.is_null() ? 0.0 : v.get<double>());
      if (!v.is_null()) fitted.push_back(v.get<double>());
    }
    if (static_cast<std::int64_t>(theta.size()) != p && static_cast<std::int64_t>(fitted.size()) == p)
      theta = fitted;  // a model.json of a --drop-collinear fit of the same data
    if (static_cast<std::int64_t>(theta.size()) != p)
      throw Error(path.string() + ": " + std::to_string(theta.size()) + " coefficients, the model has " +
                  std::to_string(p));
  } catch (const nlohmann::json::exception& e) {
    err = path.string() + ": invalid JSON: " + e.what();
  } catch (const std::exception& e) {
    err = e.what();
  }
  comm.check(err.empty(), err);
  return theta;
}

void print_progress(std::ostream& out, const IterationRecord& r) {
  char line[200];
  std::snprintf(line, sizeof line,
                "iter %4d  loss %.10e  |g| %.3e  |step| %.3e  kl %.3e  damping %.1e  t %.3g  %.2fs\n", r.iter,
                r.loss, r.grad_norm, r.step_norm, r.kl, r.damping, r.step_length, r.seconds);
  out << line << std::flush;
}

/// Collective: every rank's \p v with \p decimals decimals, in rank order ("a b c ..."),
/// or for more than 16 ranks "min a (rank r), median b, max c (rank s)". "" off root.
std::string per_rank(const Communicator& comm, double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  const auto all = comm.gather(buf);
  if (!comm.is_root()) return {};
  std::string s;
  if (all.size() <= 16) {
    for (std::size_t r = 0; r < all.size(); ++r) s += (r ? " " : "") + all[r];
    return s;
  }
  std::vector<std::pair<double, std::size_t>> by;
  for (std::size_t r = 0; r < all.size(); ++r) by.emplace_back(std::stod(all[r]), r);
  std::sort(by.begin(), by.end());
  return "min " + all[by.front().second] + " (rank " + std::to_string(by.front().second) + "), median " +
         all[by[by.size() / 2].second] + ", max " + all[by.back().second] + " (rank " +
         std::to_string(by.back().second) + ")";
}

constexpr double kMiB = 1048576.0;

}  // namespace

FitResult run_fit(const FitJob& job, const Communicator& comm, std::ostream& out) {
  job.fit.validate();
  const std::string layout = describe_layout(comm, job.fit.threads);
  if (comm.is_root()) out << "natgrad fit: " << layout << '\n';
  const auto read_start = std::chrono::steady_clock::now();
  Shard shard = load_shard(job.read, comm);
  const double read_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - read_start).count();
  {  // each rank's rows and peak memory after reading; the read's speed (root's clock)
    const std::string rows_list = per_rank(comm, static_cast<double>(shard.n_rows), 0);
    const std::string rss_list = per_rank(comm, static_cast<double>(peak_rss_bytes()) / kMiB, 1);
    if (comm.is_root()) {
      std::error_code ec;
      const auto bytes = is_generator_spec(job.read.path) ? 0 : std::filesystem::file_size(job.read.path, ec);
      char line[160];
      if (!ec && bytes > 0)
        std::snprintf(line, sizeof line, "read: %.3f s, %.1f MB, %.1f MB/s", read_s, static_cast<double>(bytes) / 1e6,
                      static_cast<double>(bytes) / 1e6 / std::max(read_s, 1e-9));
      else
        std::snprintf(line, sizeof line, "read: %.3f s", read_s);
      out << line << "; rows per rank: " << rows_list << "; peak RSS per rank (MiB): " << rss_list << '\n';
    }
  }
  const int classes = job.family == "multinomial" ? (job.classes > 0 ? job.classes : count_classes(shard, comm)) : 0;
  const auto model = make_model(job.family, job.link, classes);
  check_labels(shard, *model, comm);
  if (!shard.weight.empty() && job.fit.method == Method::ngd && job.fit.fisher == FisherKind::empirical_centered)
    throw CollectiveError("--fisher empirical-centered is defined for unweighted rows; drop the weights or use "
                          "--fisher empirical or expected");
  std::int64_t rows[2] = {shard.n_rows, -shard.n_rows};
  comm.allreduce_max(rows, 2);
  if (comm.is_root())
    out << "data: " << shard.source << ", " << shard.n_global << " rows x " << shard.n_cols
        << " columns; rows per rank " << -rows[1] << " to " << rows[0] << "; model " << model->name()
        << "; method " << to_string(job.fit.method) << ", Fisher "
        << (job.fit.method == Method::ngd  ? to_string(job.fit.fisher)
            : job.fit.method == Method::diag ? "diagonal of expected"
                                             : "none")
        << ", step " << to_string(job.fit.step) << '\n';

  // Linearly dependent (collinear or constant) columns: name them, fail or drop.
  const std::vector<std::string> all_columns = shard.names;
  std::vector<std::string> dropped;
  // One pass gives both the Gram matrix for the collinearity check and R's starting
  // values (StartSystem). With --fisher-sample the sampled rows' Gram is looked at
  // first, with a 100x stricter tolerance; only if it flags a column are all rows used.
  constexpr double kCollinearTol = 1e-11;
  StartSystem sys = start_system(shard, *model, job.fit, comm, job.fit.sample.active());
  auto dep = dependent_columns(sys, sys.sampled ? 100 * kCollinearTol : kCollinearTol, comm);
  if (sys.sampled && !dep.empty()) {
    sys = start_system(shard, *model, job.fit, comm, false);
    dep = dependent_columns(sys, kCollinearTol, comm);
  }
  if (!dep.empty()) {
    std::string list;
    for (auto c : dep) list += (list.empty() ? "" : ", ") + shard.names[static_cast<std::size_t>(c)];
    if (!job.drop_collinear)
      throw CollectiveError(std::string("column") + (dep.size() > 1 ? "s " : " ") + list +
                            (dep.size() > 1 ? " are" : " is") +
                            " linearly dependent on earlier columns (collinear, constant or all zero); remove " +
                            (dep.size() > 1 ? "them" : "it") +
                            " or pass --drop-collinear (coefficients then reported as NA, as R does)");
    for (auto c : dep) dropped.push_back(shard.names[static_cast<std::size_t>(c)]);
    drop_columns(shard, dep);
    if (comm.is_root()) out << "note: dropped linearly dependent column(s): " << list << '\n';
  }

  // Output directory first: a bad --out fails before the fit, on every rank.
  std::string err;
  if (comm.is_root() && !job.out_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(job.out_dir, ec);
    if (ec) err = job.out_dir.string() + ": cannot create output directory: " + ec.message();
  }
  comm.check(err.empty(), err);

  FitOptions fo = job.fit;
  const bool intercept = !shard.names.empty() && shard.names[0] == "(Intercept)";
  if (fo.l2 > 0 && intercept && !job.penalize_intercept) {
    fo.penalized.assign(static_cast<std::size_t>(shard.n_cols * model->n_outputs()), 1);
    for (int k = 0; k < model->n_outputs(); ++k) fo.penalized[static_cast<std::size_t>(k * shard.n_cols)] = 0;
  }
  if (!job.init.empty()) fo.theta0 = read_initial_coefficients(job.init, shard.n_cols * model->n_outputs(), comm);
  // Checkpoint and resume: the fingerprint ties a checkpoint to this data and these options.
  std::string fingerprint;
  if (!job.checkpoint.empty() || !job.resume.empty())
    fingerprint = fit_fingerprint(job, shard, model->name(), classes, comm);
  if (!job.checkpoint.empty()) {
    std::string cerr_msg;
    if (comm.is_root() && job.checkpoint.has_parent_path()) {
      std::error_code ec;
      std::filesystem::create_directories(job.checkpoint.parent_path(), ec);
      if (ec) cerr_msg = job.checkpoint.string() + ": cannot create the checkpoint's directory: " + ec.message();
    }
    comm.check(cerr_msg.empty(), cerr_msg);
  }
  if (!job.resume.empty()) {
    fo.resume = std::make_shared<const FitState>(read_checkpoint(job.resume, fingerprint, comm));
    fo.theta0.clear();
    if (comm.is_root())
      out << "resuming from " << job.resume.string() << " at iteration " << fo.resume->iteration << '\n';
  }
  if (!fo.resume && fo.theta0.empty() && job.start == "irls" && model->n_outputs() == 1)
    fo.theta0 = solve_start(sys, job.drop_collinear ? dep : std::vector<std::int64_t>{}, fo, comm);
  sys = StartSystem{};  // its p x p Gram is not needed during the fit

  FitObserver obs;
  if (comm.is_root()) {
    if (!job.quiet) obs.on_iteration = [&out](const IterationRecord& r) { print_progress(out, r); };
    obs.log = [&out](const std::string& m) { out << "note: " << m << '\n' << std::flush; };
    if (!job.checkpoint.empty()) {
      nlohmann::ordered_json by;
      by["ranks"] = comm.size();
      by["threads"] = fo.threads;
      by["layout"] = layout;
      obs.on_checkpoint = [&out, &job, &fingerprint, written_by = by.dump()](const FitState& s) {
        write_checkpoint(job.checkpoint, s, fingerprint, written_by);
        if (!job.quiet) out << "checkpoint: iteration " << s.iteration << " -> " << job.checkpoint.string() << '\n';
      };
    }
  }
  FitResult res = fit(shard, *model, fo, comm, obs);
  if ((res.converged() || res.reason == Reason::max_iterations || res.reason == Reason::line_search_failed) &&
      separated(shard, *model, res, fo, comm))
    res.reason = Reason::separation;

  Inference inf;
  if (res.reason == Reason::interrupted && comm.is_root())
    out << "stopped on a signal at iteration " << res.iterations
        << (job.checkpoint.empty() ? std::string()
                                   : "; checkpoint written to " + job.checkpoint.string() +
                                         " (continue with --resume " + job.checkpoint.string() + ")")
        << '\n' << std::flush;
  const bool with_inference = job.inference && res.reason != Reason::non_finite && res.reason != Reason::interrupted &&
                              res.reason != Reason::separation && res.reason != Reason::singular_fisher;
  if (with_inference) {
    InferenceOptions io;
    io.threads = fo.threads;
    io.block_rows = fo.block_rows;
    io.l2 = fo.l2;
    io.penalized = fo.penalized;
    // The fit's last evaluation was the exact expected Fisher at the estimate: reuse it.
    io.fisher_from_fit = res.fisher_kind == FisherKind::expected && !res.fisher_sampled;
    if (io.fisher_from_fit) io.fit_fisher = std::move(res.fisher);
    inf = infer(shard, *model, res.theta, comm, io);
  }

  {
    const std::string rss_list = per_rank(comm, static_cast<double>(peak_rss_bytes()) / kMiB, 1);
    const std::string shard_list = per_rank(comm, static_cast<double>(shard.bytes()) / kMiB, 1);
    if (comm.is_root())
      out << "memory: peak RSS per rank (MiB): " << rss_list << "; shard per rank (MiB): " << shard_list << '\n';
  }

  if (comm.is_root()) {
    FitReport rep;
    rep.model_name = model->name();
    rep.family = job.family == "logistic" ? "binomial" : job.family;
    rep.link = model->name().substr(model->name().find('/') + 1);
    rep.classes = classes;
    rep.columns = shard.names;
    rep.all_columns = all_columns;
    rep.dropped = dropped;
    rep.intercept = intercept;
    rep.fit = &res;
    rep.inference = with_inference ? &inf : nullptr;
    rep.command = job.command;
    rep.options_json = job.options_json;
    rep.data = job.read.path;
    rep.ranks = comm.size();
    rep.threads = fo.threads;
    rep.covariance = job.covariance;
    const std::string text = summary_text(rep);
    out << '\n' << text;
    if (!job.out_dir.empty()) {
      write_model_json(job.out_dir / "model.json", rep);
      write_history_csv(job.out_dir / "history.csv", res);
      write_atomically(job.out_dir / "summary.txt", [&](std::ostream& os) { os << text; });
      out << "wrote " << (job.out_dir / "model.json").string() << ", history.csv and summary.txt\n";
    }
  }
  return res;
}

void run_generate(const GenerateJob& job, const Communicator& comm, std::ostream& out) {
  const GeneratorSpec spec = parse_generator_spec(job.spec);
  std::string format = job.format;
  if (format.empty()) {
    const auto ext = job.out.extension().string();
    format = ext == ".npy" ? "npy" : ext == ".csv" ? "csv" : ext == ".h5" || ext == ".hdf5" ? "hdf5" : "";
    if (format.empty())
      throw CollectiveError("generate: cannot tell the format of '" + job.out.string() +
                            "' from its extension: use .csv, .npy or .h5, or --format");
  }
  if (format != "csv" && format != "npy" && format != "hdf5")
    throw CollectiveError("generate: --format '" + format + "' is not one of: csv, npy, hdf5");
  std::string err;
  if (comm.is_root()) {
    try {
      const std::int64_t cols = spec.cols + 1;  // label first
      auto fill = [&](std::int64_t b, std::int64_t e, std::span<double> buf) {
        const Shard s = generate_rows(spec, b, e, job.threads);
        for (std::int64_t i = 0; i < e - b; ++i) {
          buf[i * cols] = s.y[i];
          std::copy(s.row(i), s.row(i) + spec.cols, buf.begin() + i * cols + 1);
        }
      };
      if (format == "npy") {
        write_npy(job.out, spec.rows, cols, fill);
      } else if (format == "hdf5") {
        write_hdf5(job.out, "data", spec.rows, cols, fill);
      } else {
        write_atomically(job.out, [&](std::ostream& os) {
          os << "y";
          for (std::int64_t j = 0; j < spec.cols; ++j) os << ",x" << j + 1;
          os << '\n' << std::setprecision(17);
          const std::int64_t chunk = 65536;
          std::vector<double> buf(static_cast<std::size_t>(chunk * cols));
          for (std::int64_t b = 0; b < spec.rows; b += chunk) {
            const std::int64_t e = std::min(spec.rows, b + chunk);
            fill(b, e, std::span<double>(buf.data(), static_cast<std::size_t>((e - b) * cols)));
            for (std::int64_t i = 0; i < e - b; ++i) {
              for (std::int64_t j = 0; j < cols; ++j) os << (j ? "," : "") << buf[i * cols + j];
              os << '\n';
            }
          }
        });
      }
      if (!job.truth.empty() && spec.kind == "logit") {
        nlohmann::ordered_json j;
        j["spec"] = job.spec;
        j["names"] = std::vector<std::string>{"(Intercept)"};
        for (std::int64_t c = 0; c < spec.cols; ++c) j["names"].push_back("x" + std::to_string(c + 1));
        j["coefficients"] = true_coefficients(spec);
        write_atomically(job.truth, [&](std::ostream& os) { os << j.dump(2) << '\n'; });
      }
      out << "wrote " << job.out.string() << ": " << spec.rows << " rows, label + " << spec.cols
          << " features (" << format << ")\n";
    } catch (const std::exception& e) {
      err = e.what();
    }
  }
  comm.check(err.empty(), err);
}

}  // namespace natgrad

namespace natgrad {

void run_predict(const PredictJob& job, const Communicator& comm, std::ostream& out) {
  // Every rank reads the (small) model file; failures are agreed on.
  nlohmann::json m;
  std::string err;
  try {
    std::ifstream in(job.model);
    if (!in) throw Error(job.model.string() + ": cannot open the model file");
    m = nlohmann::json::parse(in);
    for (const char* key : {"family", "link", "columns", "coefficients"})
      if (!m.contains(key)) throw Error(job.model.string() + ": not a natgrad model.json (no \"" + key + "\")");
  } catch (const nlohmann::json::exception& e) {
    err = job.model.string() + ": invalid JSON: " + e.what();
  } catch (const std::exception& e) {
    err = e.what();
  }
  comm.check(err.empty(), err);
  const int classes = m.value("n_classes", 0);
  const std::string link = m["link"] == "softmax" ? "" : m["link"].get<std::string>();
  const auto model = make_model(m["family"], link, classes);
  const auto columns = m["columns"].get<std::vector<std::string>>();
  std::vector<double> theta;
  std::vector<std::int64_t> fitted;  // parameters that were estimated (not dropped as NA)
  for (const auto& v : m["coefficients"]) {
    if (!v.is_null()) fitted.push_back(static_cast<std::int64_t>(theta.size()));
    theta.push_back(v.is_null() ? 0.0 : v.get<double>());  // NA: dropped, contributes 0
  }

  ReadOptions ro = job.read;
  ro.intercept = m.value("intercept", false);
  const Shard s = load_shard(ro, comm);
  if (s.names != columns) {
    auto list = [](const std::vector<std::string>& v) {
      std::string l;
      for (std::size_t j = 0; j < v.size() && j < 12; ++j) l += (j ? ", " : "") + v[j];
      return v.size() > 12 ? l + ", ... (" + std::to_string(v.size()) + " in all)" : l;
    };
    throw CollectiveError(ro.path + ": the data's columns do not match the model's: the model was fitted on (" +
                          list(columns) + "), the data gives (" + list(s.names) +
                          ") (data without a label column: --label-column none)");
  }
  const std::int64_t d = s.n_cols, K = model->n_outputs();
  std::vector<double> cov;
  if (job.se) {
    comm.check(m.contains("covariance") && model->n_outputs() == 1,
               job.model.string() + ": --se needs a scalar GLM fitted with --covariance");
    for (const auto& row : m["covariance"])
      for (const auto& v : row) cov.push_back(v.is_null() ? NAN : v.get<double>());
  }
  comm.check(cov.empty() || cov.size() == fitted.size() * fitted.size(),
             job.model.string() + ": the covariance does not match the estimated coefficients");

  std::ostringstream body;
  body << std::setprecision(17);
  std::vector<double> eta(static_cast<std::size_t>(K)), p(static_cast<std::size_t>(classes > 0 ? classes : 1));
  const auto* mn = dynamic_cast<const MultinomialModel*>(model.get());
  for (std::int64_t i = 0; i < s.n_rows; ++i) {
    const double* x = s.row(i);
    for (std::int64_t k = 0; k < K; ++k) {
      double e = s.offset.empty() ? 0.0 : s.offset[i];
      for (std::int64_t j = 0; j < d; ++j) e += x[j] * theta[j + d * k];
      eta[k] = e;
    }
    if (mn) {
      mn->probabilities(eta.data(), p.data());
      for (std::int64_t k = 0; k < K; ++k) body << eta[k] << ',';
      for (int c = 0; c < classes; ++c) body << p[c] << ',';
      body << (std::max_element(p.begin(), p.end()) - p.begin()) << '\n';
    } else {
      body << eta[0] << ',' << model->mean(eta[0]);
      if (job.se) {
        double q = 0;
        const auto nf = fitted.size();
        for (std::size_t a = 0; a < nf; ++a)
          for (std::size_t b = 0; b < nf; ++b) q += x[fitted[a]] * cov[a * nf + b] * x[fitted[b]];
        body << ',' << std::sqrt(q);
      }
      body << '\n';
    }
  }
  std::string header;
  if (mn) {
    for (std::int64_t k = 1; k <= K; ++k) header += "eta" + std::to_string(k) + ",";
    for (int c = 0; c < classes; ++c) header += "p" + std::to_string(c) + ",";
    header += "class\n";
  } else {
    header = job.se ? "eta,mu,se_eta\n" : "eta,mu\n";
  }
  write_collectively(job.out, header, body.str(), comm);
  if (comm.is_root())
    out << "wrote " << job.out.string() << ": " << s.n_global << " predictions (" << model->name() << ")\n";
}

}  // namespace natgrad
