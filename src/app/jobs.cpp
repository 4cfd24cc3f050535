#include "natgrad/app/jobs.hpp"

#include <omp.h>

#include <thread>

#include <condition_variable>
#include <csignal>
#include <functional>
#include <iostream>
#include <memory>
#include <mutex>
#include <span>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <fstream>
#include <iomanip>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "natgrad/app/admission.hpp"
#include "natgrad/app/options.hpp"
#include "natgrad/app/residuals.hpp"
#include "natgrad/io/checkpoint.hpp"
#include "io/rformat.hpp"
#include "natgrad/io/design.hpp"
#include "natgrad/core/error.hpp"
#include "natgrad/io/generator.hpp"
#include "natgrad/io/hdf5.hpp"
#include "natgrad/core/cpu.hpp"
#include "natgrad/core/linalg.hpp"
#include "natgrad/core/memory.hpp"
#include "natgrad/io/npy.hpp"
#include "natgrad/io/output.hpp"
#include "natgrad/io/report.hpp"
#include "natgrad/core/inference.hpp"
#include "natgrad/core/glm.hpp"

namespace natgrad {

std::string describe_layout(const Communicator& comm, int threads, std::vector<std::string>* warnings) {
  // Each rank's CPU and BLAS core (nodes of one job can differ); root lists the distinct
  // ones, with their hosts when there are several.
  const BlasVerdict v = blas_check();
  const CpuInfo& cpu = cpu_info();
  std::string mine = "core " + (v.core.empty() ? std::string("?") : v.core) + " (" +
                     (v.core_known ? to_string(v.blas_isa) : "?") +
                     (v.older ? ", older than the CPU's: see the warning" : "") + "); CPU " + cpu.model_name + " (" +
                     to_string(cpu.isa) + "), natgrad kernels " + to_string(detail::kernel_isa());
  const auto hosts = comm.gather(Communicator::processor_name());
  const auto cpus = comm.gather(mine);
  const auto messages = comm.gather(v.message);
  if (!comm.is_root()) return {};
  std::map<std::string, int> per_host;
  for (const auto& h : hosts) ++per_host[h];
  // distinct values in rank order, each with the hosts that have it
  auto distinct = [&](const std::vector<std::string>& vals) {
    std::vector<std::pair<std::string, std::set<std::string>>> d;
    for (std::size_t r = 0; r < vals.size(); ++r) {
      auto it = std::find_if(d.begin(), d.end(), [&](const auto& e) { return e.first == vals[r]; });
      if (it == d.end()) d.push_back({vals[r], {hosts[r]}});
      else it->second.insert(hosts[r]);
    }
    return d;
  };
  auto on_hosts = [](const std::set<std::string>& hs) {
    std::string t = " [on";
    for (const auto& h : hs) t += ' ' + h;
    return t + ']';
  };
  std::ostringstream o;
  o << comm.size() << " rank(s) on " << per_host.size() << " node(s), " << threads
    << " OpenMP thread(s) per rank; " << blas_description() << ", ";
  const auto dc = distinct(cpus);
  for (std::size_t i = 0; i < dc.size(); ++i)
    o << (i ? "; " : "") << dc[i].first << (dc.size() > 1 ? on_hosts(dc[i].second) : "");
  o << "; hosts:";
  for (const auto& [h, n] : per_host) o << ' ' << h << " (" << n << (n == 1 ? " rank)" : " ranks)");
  if (warnings != nullptr) {
    warnings->clear();
    const auto dm = distinct(messages);
    for (const auto& [m, hs] : dm)
      if (!m.empty()) warnings->push_back(m + (per_host.size() > 1 ? on_hosts(hs) : ""));
  }
  return o.str();
}

int use_threads(int requested, const Communicator& comm) {
  int threads = requested;
  if (threads < 0) throw CollectiveError("--threads must be >= 1");
  if (threads == 0) {
    if (std::getenv("OMP_NUM_THREADS") != nullptr) {
      threads = omp_get_max_threads();
    } else {
      MPI_Comm node;
      MPI_Comm_split_type(comm.handle(), MPI_COMM_TYPE_SHARED, comm.rank(), MPI_INFO_NULL, &node);
      int local = 1;
      MPI_Comm_size(node, &local);
      MPI_Comm_free(&node);
      const int bound = omp_get_num_procs();  // honours the affinity mask
      const int total = static_cast<int>(std::thread::hardware_concurrency());
      if (total > 0 && bound < total) threads = std::max(1, bound);
      else threads = std::max(1, (total > 0 ? total : bound) / std::max(local, 1));
    }
  }
  omp_set_num_threads(threads);
  set_blas_threads(threads);
  return threads;
}

std::string shell_command(const std::vector<std::string>& words) {
  std::string line;
  for (std::size_t k = 0; k < words.size(); ++k) {
    const std::string& w = words[k];
    if (k) line += ' ';
    const bool plain = !w.empty() && std::all_of(w.begin(), w.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || std::strchr("_@%+=:,./-", c) != nullptr;
    });
    if (plain) {
      line += w;
      continue;
    }
    line += '\'';
    for (char c : w) line += c == '\'' ? std::string("'\\''") : std::string(1, c);
    line += '\'';
  }
  return line;
}

namespace {

/// Collective: before any data is read, root creates and probes --out and takes its lock
/// (output.hpp), so that an unwritable or busy --out fails at once on every rank. The
/// lock (root's only) is held until the returned pointer goes, on every exit path.
std::unique_ptr<OutputLock> claim_output_directory(const FitJob& job, const Communicator& comm) {
  std::unique_ptr<OutputLock> lock;
  if (job.out_dir.empty()) return lock;
  std::string err;
  if (comm.is_root()) {
    try {
      probe_output_directory(job.out_dir, "--out");
      lock = std::make_unique<OutputLock>(job.out_dir, job.command.empty() ? "natgrad fit" : job.command);
    } catch (const std::exception& e) {
      err = e.what();
    }
  }
  comm.check(err.empty(), err);
  return lock;
}

/// R's summary prints the deviance residuals' quantiles; they are exact (every rank's
/// residuals gathered on root) up to this many rows, and left out above.
constexpr std::int64_t kResidualQuantileRows = 2000000;

/// Collective. Min, quartiles and max (R's quantile type 7) of the deviance residuals
/// sign(y - mu) sqrt(w d(y, mu)) of a scalar model at \p theta, on root; empty elsewhere,
/// for multinomial models and above kResidualQuantileRows rows.
std::vector<double> deviance_quantiles(const Shard& s, const Model& m, const std::vector<double>& theta,
                                       const Communicator& comm) {
  if (m.n_outputs() != 1 || s.n_global > kResidualQuantileRows ||
      static_cast<std::int64_t>(theta.size()) != s.n_cols)
    return {};
  std::string mine(static_cast<std::size_t>(s.n_rows) * sizeof(double), '\0');
  for (std::int64_t i = 0; i < s.n_rows; ++i) {
    const double eta = s.dot(i, theta.data()) + (s.offset.empty() ? 0.0 : s.offset[i]);
    const double w = s.weight.empty() ? 1.0 : s.weight[i];
    const double mu = m.mean(eta);
    const double r = (s.y[i] > mu ? 1.0 : s.y[i] < mu ? -1.0 : 0.0) * std::sqrt(std::max(w * m.unit_deviance(&eta, s.y[i]), 0.0));
    std::memcpy(mine.data() + static_cast<std::size_t>(i) * sizeof(double), &r, sizeof r);
  }
  const std::vector<std::string> all = comm.gather(mine);
  if (!comm.is_root()) return {};
  std::vector<double> r;
  r.reserve(static_cast<std::size_t>(s.n_global));
  for (const auto& part : all)
    for (std::size_t k = 0; k + sizeof(double) <= part.size(); k += sizeof(double)) {
      double v;
      std::memcpy(&v, part.data() + k, sizeof v);
      r.push_back(v);
    }
  return rformat::quantiles5(r);
}

/// summary.txt's "Response: y; predictors: a, b" for a fit by column options: the label
/// column's header name where the file has one (else its index), the design's columns.
std::string response_line(const ReadOptions& ro, const std::vector<std::string>& columns) {
  std::string label = ro.label_column;
  const bool index = !label.empty() && std::all_of(label.begin(), label.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (index && !is_generator_spec(ro.path) && input_format(ro) == "csv") {
    try {
      const auto header = frame_header(ro);
      const auto k = static_cast<std::size_t>(std::stoll(label));
      if (k < header.size()) label = header[k];
    } catch (const std::exception&) {  // no header: the index stays
      label = "column " + label;
    }
  } else if (index) {
    label = "column " + label;
  }
  std::string line = "Response: " + label + "; predictors: ";
  std::size_t shown = 0;
  for (const auto& c : columns) {
    if (c == "(Intercept)") continue;
    if (shown == 12) {
      line += ", ... (" + std::to_string(columns.size()) + " columns in all)";
      break;
    }
    line += (shown++ ? ", " : "") + c;
  }
  return line;
}

/// How the formula's response is coded for the job's family.
DesignOptions design_options(const FitJob& job) {
  DesignOptions d;
  const ModelFamily f = job.glm.family;
  d.response = f == ModelFamily::multinomial                                        ? ResponseKind::classes
               : (f == ModelFamily::binomial || f == ModelFamily::quasibinomial) ? ResponseKind::binary
                                                                                    : ResponseKind::numeric;
  d.reference = job.read.reference;
  d.positive = job.read.positive;
  return d;
}

/// "" or the log's line on rows dropped for missing values: "12 rows with a missing value
/// dropped (age: 7, race: 5); 177 rows used".
std::string missing_note(bool with_formula, const DesignInfo& design, const Shard& shard) {
  const std::int64_t dropped = with_formula ? design.rows_dropped : shard.rows_dropped;
  if (dropped == 0) return {};
  const auto& missing = with_formula ? design.missing : shard.missing;
  std::string by;
  for (std::size_t k = 0; k < missing.size() && k < 12; ++k)
    by += (k ? ", " : "") + missing[k].first + ": " + std::to_string(missing[k].second);
  if (missing.size() > 12) by += ", ...";
  return std::to_string(dropped) + " of " + std::to_string(dropped + shard.n_global) +
         " rows have a missing value and were dropped (--na omit; by " + (with_formula ? "variable" : "column") +
         ": " + by + "); " + std::to_string(shard.n_global) + " rows used";
}

/// The note printed when no --columns or --formula named the predictors: which columns
/// the fit took (the first 12 of \p names, "(Intercept)" left out).
std::string predictors_note(const ReadOptions& ro, const std::vector<std::string>& names) {
  std::vector<std::string> used;
  for (const auto& n : names)
    if (n != "(Intercept)") used.push_back(n);
  std::vector<std::string> roles{"the label"};
  if (!ro.weight_column.empty() && ro.weight_column != "none") roles.emplace_back("the weight");
  if (!ro.offset_column.empty() && ro.offset_column != "none") roles.emplace_back("the offset");
  std::string others = roles[0];
  for (std::size_t k = 1; k < roles.size(); ++k) others += (k + 1 == roles.size() ? " and " : ", ") + roles[k];
  std::string list;
  for (std::size_t j = 0; j < used.size() && j < 12; ++j) list += (j ? ", " : "") + used[j];
  if (used.size() > 12) list += ", ... (" + std::to_string(used.size()) + " in all)";
  if (used.empty()) list = "none";
  return "note: predictors (all columns but " + others + "): " + list + "; name them with --columns or --formula";
}

}  // namespace

namespace {

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

/// Root's checkpoint writes: the regular ones (solver thread) and the one on a signal
/// (watcher thread) go through one lock, never write an older state over a newer one, and
/// the last state the solver reported is kept here (theta copied, history rows appended).
struct CheckpointSaver {
  std::mutex m;
  std::string written_by;
  FitState last;
  bool have = false;
  int written = -1;  // iteration of the checkpoint on disk

  void keep(const FitState& s, std::span<const IterationRecord> h) {
    std::lock_guard lock(m);
    std::vector<IterationRecord> rows = std::move(last.history);
    if (rows.size() > h.size()) rows.resize(h.size());
    rows.insert(rows.end(), h.begin() + static_cast<std::ptrdiff_t>(rows.size()), h.end());
    last = s;
    last.history = std::move(rows);
    have = true;
  }
  /// Writes \p s unless a newer state is on disk already. Returns whether it wrote.
  bool write(const std::filesystem::path& path, const FitState& s, const std::string& fingerprint) {
    std::lock_guard lock(m);
    if (s.iteration < written) return false;
    write_checkpoint(path, s, fingerprint, written_by);
    written = s.iteration;
    return true;
  }
  /// The last kept state (if newer than the file): its iteration, or -1 if none was kept.
  int write_last(const std::filesystem::path& path, const std::string& fingerprint) {
    std::lock_guard lock(m);
    if (!have) return -1;
    if (last.iteration > written) {
      write_checkpoint(path, last, fingerprint, written_by);
      written = last.iteration;
    }
    return last.iteration;
  }
};

/// A thread that polls a signal flag every 20 ms and runs \p action once when it is
/// raised. Touches no MPI (the program runs MPI_THREAD_FUNNELED). Joined on destruction.
class SignalWatcher {
 public:
  SignalWatcher(const volatile std::sig_atomic_t* flag, std::function<void()> action)
      : flag_(flag), action_(std::move(action)), thread_([this] { loop(); }) {}
  ~SignalWatcher() {
    {
      std::lock_guard lock(m_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  SignalWatcher(const SignalWatcher&) = delete;
  SignalWatcher& operator=(const SignalWatcher&) = delete;

 private:
  void loop() {
    std::unique_lock lock(m_);
    // The flag is looked at once more after done_: a signal raised in the last 20 ms of a
    // fit (which the solver then ended on) still gets its action, and its log line.
    for (;;) {
      if (*flag_ != 0) {
        lock.unlock();
        action_();
        return;
      }
      if (done_) return;
      cv_.wait_for(lock, std::chrono::milliseconds(20));
    }
  }
  const volatile std::sig_atomic_t* flag_;
  std::function<void()> action_;
  std::mutex m_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

}  // namespace

FitResult run_fit(const FitJob& job_in, const Communicator& comm, std::ostream& out) {
  FitJob job = job_in;
  job.threads = use_threads(job.threads, comm);
  job.glm.fit.threads = job.read.threads = job.threads;
  job.glm.fit.checkpoint_every = job.checkpoint.empty() ? 0 : job.checkpoint_every;
  try {
    job.validate();
  } catch (const Error& e) {
    throw CollectiveError(e.what());  // identical options: every rank fails alike
  }
  std::vector<std::string> blas_warnings;
  const std::string layout = describe_layout(comm, job.threads, &blas_warnings);
  if (comm.is_root()) {
    out << "natgrad fit: " << layout << '\n';
    // As every warning: on stderr, once, from root (the log's stdout keeps its lines).
    if (!blas_warnings.empty()) out << std::flush;
    for (const auto& w : blas_warnings) std::cerr << "natgrad: warning: " << w << std::endl;
  }
  // Memory admission: what is known before reading (a generator's rows and columns, a
  // file's size), then, before any p x p buffer exists, the Fisher of the actual columns.
  // The first check has no side effect, so it comes before --out is created and locked.
  // A CSV, NPY or HDF5 file's header gives its columns, so its Fisher is checked before
  // the read too; after the read the Fisher is checked again with the columns read (for
  // LIBSVM the first time).
  const bool admit = job.memory_check == "on";
  if (admit) admit_memory(read_memory_need(job, comm.rank(), comm.size()), "for this fit", comm);
  const std::unique_ptr<OutputLock> out_lock = claim_output_directory(job, comm);
  const auto read_start = std::chrono::steady_clock::now();
  // With --formula the rows are R's model frame and model matrix (design.hpp); else the
  // column options select them (reader.hpp).
  DesignInfo design;
  const bool with_formula = !job.read.formula.empty();
  Shard shard;
  if (with_formula) {
    Design d = load_design(job.read, design_options(job), comm);
    shard = std::move(d.shard);
    design = std::move(d.info);
    // Text classes: K is the number of levels (the first the reference).
    if (job.glm.family == ModelFamily::multinomial && !design.response_levels.empty() && job.glm.classes == 0)
      job.glm.classes = static_cast<int>(design.response_levels.size());
    // R's glm drops aliased columns (singular.ok = TRUE): a formula fit does too, reporting
    // them as NA, wherever the p x p Gram that finds them is formed.
    const std::int64_t outputs = job.glm.family == ModelFamily::multinomial ? std::max(job.glm.classes - 1, 1) : 1;
    if (shard.n_cols * outputs <= kCholeskyAutoMax) job.glm.drop_collinear = true;
  } else {
    shard = load_shard(job.read, comm);
  }
  if (admit) admit_memory(fisher_memory_need(job, shard.n_cols, shard.sparse), "for the Fisher", comm);
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

  if (comm.is_root()) {
    if (const std::string note = missing_note(with_formula, design, shard); !note.empty()) out << "note: " << note << '\n';
    if (with_formula)
      out << "formula: " << job.read.formula << '\n';
  }
  if (comm.is_root() && job.read.columns.empty() && job.read.formula.empty() && !is_generator_spec(job.read.path))
    out << predictors_note(job.read, shard.names) << '\n';

  GlmHooks hooks;
  CheckpointSaver saver;  // root: every checkpoint write, from either thread
  const FitOptions& fo = job.glm.fit;
  hooks.on_model = [&](const Shard& s, const Model& model) {
    std::int64_t rows[2] = {s.n_rows, -s.n_rows};
    comm.allreduce_max(rows, 2);
    if (comm.is_root())
      out << "data: " << s.source << ", " << s.n_global << " rows x " << s.n_cols << " columns; rows per rank "
          << -rows[1] << " to " << rows[0] << "; model " << model.name() << "; method " << to_string(fo.method)
          << ", Fisher "
          << (fo.method == Method::ngd    ? to_string(fo.fisher)
              : fo.method == Method::diag ? "diagonal of expected"
                                          : "none")
          << (fo.method == Method::ngd
                  ? ", solver " + solver_choice_text(fo, s.n_cols * model.n_outputs(), s.sparse)
                  : std::string())
          << ", step " << to_string(fo.step) << '\n';
  };
  // Warm start, checkpoint and resume: the fingerprint ties a checkpoint to this data and
  // these options (after any dropped column, so a resume sees the same design).
  std::string fingerprint;
  hooks.prepare = [&](const Shard& s, const Model& model, FitOptions& o) {
    if (!job.init.empty()) o.theta0 = read_initial_coefficients(job.init, s.n_cols * model.n_outputs(), comm);
    if (!job.checkpoint.empty() || !job.resume.empty())
      fingerprint = fit_fingerprint(job, s, model.name(), model.n_classes(), comm);
    if (!job.checkpoint.empty()) {
      std::string msg;
      if (comm.is_root() && job.checkpoint.has_parent_path()) {
        std::error_code ec;
        std::filesystem::create_directories(job.checkpoint.parent_path(), ec);
        if (ec) msg = job.checkpoint.string() + ": cannot create the checkpoint's directory: " + ec.message();
      }
      comm.check(msg.empty(), msg);
    }
    if (!job.resume.empty()) {
      o.resume = std::make_shared<const FitState>(read_checkpoint(job.resume, fingerprint, comm));
      if (comm.is_root())
        out << "resuming from " << job.resume.string() << " at iteration " << o.resume->iteration << '\n';
    }
  };
  std::unique_ptr<SignalWatcher> watcher;  // root, with --checkpoint: saves on the signal at once
  if (comm.is_root()) {
    if (!job.quiet) hooks.observer.on_iteration = [&out](const IterationRecord& r) { print_progress(out, r); };
    hooks.observer.log = [&out](const std::string& m) { out << "note: " << m << '\n' << std::flush; };
    if (!job.checkpoint.empty()) {
      nlohmann::ordered_json by;
      by["ranks"] = comm.size();
      by["threads"] = job.threads;
      by["layout"] = layout;
      saver.written_by = by.dump();
      hooks.observer.on_checkpoint = [&out, &job, &fingerprint, &saver](const FitState& s) {
        if (saver.write(job.checkpoint, s, fingerprint) && !job.quiet)
          out << "checkpoint: iteration " << s.iteration << " -> " << job.checkpoint.string() << '\n';
      };
      if (job.glm.fit.interrupt != nullptr) {
        // On the signal, the last completed iteration is saved at once by a watcher thread,
        // not at the end of the iteration in progress, which may outlast the launcher's grace.
        hooks.observer.on_state = [&saver](const FitState& s, std::span<const IterationRecord> h) { saver.keep(s, h); };
        watcher = std::make_unique<SignalWatcher>(job.glm.fit.interrupt, [&] {
          int k = -1;
          try {
            k = saver.write_last(job.checkpoint, fingerprint);
          } catch (const std::exception& e) {
            std::cerr << "natgrad: warning: writing the checkpoint on the signal failed: " << e.what() << std::endl;
            return;
          }
          std::ostringstream line;
          if (k >= 0)
            line << "signal received: checkpoint of iteration " << k << " written to " << job.checkpoint.string()
                 << "; stopping after the current iteration\n";
          else
            line << "signal received: no completed iteration to save yet; stopping after the current iteration\n";
          out << line.str() << std::flush;
        });
      }
    }
  }
  GlmFit g = fit_glm(shard, job.glm, comm, hooks);
  watcher.reset();  // joins the thread
  const FitResult& res = g.fit;

  if (res.reason == Reason::interrupted && comm.is_root())
    out << "stopped on a signal at iteration " << res.iterations
        << (job.checkpoint.empty() ? std::string()
                                   : "; checkpoint written to " + job.checkpoint.string() +
                                         " (continue with --resume " + job.checkpoint.string() + ")")
        << '\n' << std::flush;
  {
    const std::string rss_list = per_rank(comm, static_cast<double>(peak_rss_bytes()) / kMiB, 1);
    const std::string shard_list = per_rank(comm, static_cast<double>(shard.bytes()) / kMiB, 1);
    if (comm.is_root())
      out << "memory: peak RSS per rank (MiB): " << rss_list << "; shard per rank (MiB): " << shard_list << '\n';
  }

  const std::vector<double> dev_quantiles =
      g.has_inference ? deviance_quantiles(shard, *g.model, res.theta, comm) : std::vector<double>();
  std::string write_err;
  if (comm.is_root()) try {
    FitReport rep;
    rep.deviance_quantiles = dev_quantiles;
    if (with_formula) {
      rep.model_line = "Formula: " + job.read.formula;
      rep.rows_dropped = design.rows_dropped;
      rep.design_json = design_json(design);
      if (g.classes > 1 && design.response_levels.size() == static_cast<std::size_t>(g.classes))
        rep.class_labels = design.response_levels;
    } else {
      rep.model_line = response_line(job.read, g.all_columns);
      rep.rows_dropped = shard.rows_dropped;
    }
    rep.model_name = g.model->name();
    rep.family = to_string(job.glm.family);
    rep.link = rep.model_name.substr(rep.model_name.find('/') + 1);
    rep.classes = g.classes;
    rep.columns = g.columns;
    rep.all_columns = g.all_columns;
    rep.dropped = g.dropped;
    rep.intercept = g.intercept;
    rep.fit = &res;
    rep.inference = g.has_inference ? &g.inference : nullptr;
    rep.command = job.command;
    rep.options_json = options_json(fit_job_table(), job, kOptionRecorded);
    rep.data = job.read.path;
    rep.ranks = comm.size();
    rep.threads = job.threads;
    rep.covariance = job.covariance;
    const std::string text = summary_text(rep);
    out << '\n' << text;
    if (!job.out_dir.empty()) {
      // All three under temporary names first, then renamed with model.json last: the
      // directory holds this fit's set or the previous one, never a mix.
      try {
        OutputSet set(job.out_dir);
        set.write("history.csv", [&](std::ostream& os) { write_history_csv(os, res); });
        set.write("summary.txt", [&](std::ostream& os) { os << text; });
        set.write("model.json", [&](std::ostream& os) { write_model_json(os, rep); });
        set.commit();
        out << "wrote " << (job.out_dir / "model.json").string() << ", history.csv and summary.txt\n";
      } catch (const std::bad_alloc&) {
        throw;
      } catch (const std::exception& e) {
        write_err = e.what();
      }
    }
  } catch (const std::bad_alloc&) {
    // Root alone formats and writes the report: its failure is carried to every rank.
    // The report's text: about 200 bytes per history row and per coefficient, 25 per
    // entry of a --covariance matrix.
    const double p = static_cast<double>(g.columns.size()) * g.model->n_outputs();
    write_err = out_of_memory_message(
        0, "the report of " + std::to_string(static_cast<std::int64_t>(p)) + " coefficients (summary, history.csv, model.json)",
        static_cast<double>(res.history.size()) * 200 + p * 200 + (job.covariance ? 25 * p * p : 0));
  }
  comm.check(write_err.empty(), write_err);
  if (!job.residuals.empty()) {
    if (res.reason == Reason::interrupted) {
      if (comm.is_root()) out << "note: stopped on a signal: no --residuals written\n";
    } else {
      // A formula fit writes every row read, those dropped for a missing value as NA, so
      // that the file's rows align with the data file's.
      const std::int64_t first_read = comm.exscan_sum(static_cast<std::int64_t>(design.kept.size()));
      write_residuals(job.residuals, shard, *g.model, res.theta, comm, design.kept,
                      with_formula ? first_read : -1);
      if (comm.is_root())
        out << "wrote " << job.residuals.string() << ": residuals of " << shard.n_global << " rows"
            << (with_formula && design.rows_dropped > 0
                    ? " (and " + std::to_string(design.rows_dropped) + " rows with a missing value as NA)"
                    : std::string())
            << "\n";
    }
  }
  return res;
}

std::string fit_fingerprint(const FitJob& job, const Shard& shard, const std::string& model_name, int classes,
                            const Communicator& comm) {
  nlohmann::ordered_json o = nlohmann::ordered_json::parse(options_json(fit_job_table(), job, kOptionFingerprint));
  o["model"] = model_name;
  o["classes"] = classes;
  return data_fingerprint(o.dump(), shard, comm, std::max(job.threads, 1));
}

void run_generate(const GenerateJob& job, const Communicator& comm, std::ostream& out) {
  const GeneratorSpec spec = parse_generator_spec(job.spec);
  std::string format = job.format;
  if (format.empty()) {
    const auto ext = job.out.extension().string();
    format = ext == ".npy"                                          ? "npy"
             : ext == ".csv"                                        ? "csv"
             : ext == ".h5" || ext == ".hdf5"                       ? "hdf5"
             : ext == ".svm" || ext == ".libsvm" || ext == ".svmlight" ? "libsvm"
                                                                    : "";
    if (format.empty())
      throw CollectiveError("generate: cannot tell the format of '" + job.out.string() +
                            "' from its extension: use .csv, .npy, .h5 or .svm, or --format");
  }
  if (format != "csv" && format != "npy" && format != "hdf5" && format != "libsvm")
    throw CollectiveError("generate: --format '" + format + "' is not one of: csv, npy, hdf5, libsvm");
  std::string err;
  if (comm.is_root()) {
    try {
      const std::int64_t cols = spec.cols + 1;  // label first
      auto fill = [&](std::int64_t b, std::int64_t e, std::span<double> buf) {
        const Shard s = densified(generate_rows(spec, b, e, job.threads));
        for (std::int64_t i = 0; i < e - b; ++i) {
          buf[i * cols] = s.y[i];
          std::copy(s.row(i), s.row(i) + spec.cols, buf.begin() + i * cols + 1);
        }
      };
      if (format == "libsvm") {  // label, then index:value of the non-zeros (1-based)
        write_atomically(job.out, [&](std::ostream& os) {
          os << std::setprecision(17);
          const std::int64_t chunk = 65536;
          for (std::int64_t b = 0; b < spec.rows; b += chunk) {
            const Shard s = generate_rows(spec, b, std::min(spec.rows, b + chunk), job.threads);
            for (std::int64_t i = 0; i < s.n_rows; ++i) {
              os << s.y[static_cast<std::size_t>(i)];
              s.for_each_nonzero(i, [&](std::int64_t j, double v) {
                if (v != 0.0) os << ' ' << j + 1 << ':' << v;
              });
              os << '\n';
            }
          }
        });
      } else if (format == "npy") {
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
      if (!job.truth.empty() && !true_coefficients(spec).empty()) {
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

namespace {

/// predict on a sparse table (LIBSVM, HDF5 CSR; ignored for the other formats): the
/// --n-features that gives the model's \p model_columns columns (the intercept included
/// when \p ro.intercept), from the column roles: with --columns, the largest column
/// listed or given a role; else every column of 0..N without a role is a feature
/// (LIBSVM's column 0, the label token, never is under --label-column none). 0 when the
/// roles are not all column indices (the reader then says what is wrong).
std::int64_t sparse_table_features(const ReadOptions& ro, std::int64_t model_columns) {
  auto index_of = [](const std::string& t, std::int64_t& v) {
    if (t.empty() || t == "none") return true;  // no such column
    v = -1;
    const auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    return ec == std::errc() && p == t.data() + t.size() && v >= 0;
  };
  std::int64_t label = -1, weight = -1, offset = -1;
  if (!index_of(ro.label_column, label) || !index_of(ro.weight_column, weight) || !index_of(ro.offset_column, offset))
    return 0;
  const std::int64_t p = model_columns - (ro.intercept ? 1 : 0);
  if (!ro.columns.empty()) {
    std::int64_t top = std::max({label, weight, offset, std::int64_t{0}});
    std::size_t at = 0;
    while (at <= ro.columns.size()) {
      const std::size_t comma = std::min(ro.columns.find(',', at), ro.columns.size());
      std::int64_t c = -1;
      std::string t = ro.columns.substr(at, comma - at);
      t.erase(0, t.find_first_not_of(' '));
      t.erase(t.find_last_not_of(' ') + 1);
      if (!index_of(t, c) || c < 0) return 0;
      top = std::max(top, c);
      at = comma + 1;
    }
    return top;
  }
  std::vector<std::int64_t> claimed;
  for (const std::int64_t c : {label < 0 ? std::int64_t{0} : label, weight, offset})
    if (c >= 0 && std::find(claimed.begin(), claimed.end(), c) == claimed.end()) claimed.push_back(c);
  // Columns 0..N, |claimed| of them without a feature slot: N + 1 - |claimed| = p.
  return std::max<std::int64_t>(p - 1 + static_cast<std::int64_t>(claimed.size()), 0);
}

/// Local. The header names of a CSV file (its first non-empty line, quotes removed) when
/// that line is a header under \p ro.header; empty when it is not, or the file cannot be
/// read (load_shard then says why).
std::vector<std::string> csv_header_names(const ReadOptions& ro) {
  std::ifstream in(ro.path, std::ios::binary);
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with("\xEF\xBB\xBF")) line.erase(0, 3);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") != std::string::npos) break;
    line.clear();
  }
  if (line.empty()) return {};
  std::vector<std::string> fields(1);
  bool quoted = false;
  for (std::size_t k = 0; k < line.size(); ++k) {
    const char c = line[k];
    if (quoted) {
      if (c == '"' && k + 1 < line.size() && line[k + 1] == '"') fields.back() += '"', ++k;
      else if (c == '"') quoted = false;
      else fields.back() += c;
    } else if (c == '"') {
      quoted = true;
    } else if (c == ro.delimiter) {
      fields.emplace_back();
    } else {
      fields.back() += c;
    }
  }
  bool any_text = false;
  for (auto& f : fields) {
    f.erase(0, f.find_first_not_of(" \t"));
    f.erase(f.find_last_not_of(" \t") + 1);
    char* end = nullptr;
    std::strtod(f.c_str(), &end);
    if (f.empty() || end != f.c_str() + f.size()) any_text = true;
  }
  using H = ReadOptions::Header;
  if (ro.header == H::no || (ro.header == H::auto_detect && !any_text)) return {};
  return fields;
}

/// predict by name: for a CSV with a header naming every feature of the model (whose
/// features have names, not the reader's x1..xP), \p ro selects them by name in the
/// model's order (other columns ignored); the label is the fit's --label-column when the
/// header has that name, else none; the weight (not used by predictions) is dropped.
/// Options given on predict's command line are kept. Returns whether it applied.
bool match_columns_by_name(ReadOptions& ro, const std::vector<std::string>& model_columns,
                           const std::set<std::string>& given) {
  if (given.count("columns") || !ro.formula.empty() || ro.path.empty() || is_generator_spec(ro.path)) return false;
  std::vector<std::string> features;
  for (const auto& c : model_columns)
    if (c != "(Intercept)") features.push_back(c);
  if (features.empty()) return false;
  bool generic = true;  // x1..xP: the reader's names for unnamed columns
  for (std::size_t j = 0; j < features.size() && generic; ++j) {
    const std::string number = std::to_string(j + 1);
    generic = features[j].size() == number.size() + 1 && features[j][0] == 'x' && features[j].ends_with(number);
  }
  if (generic) return false;
  for (const auto& f : features)
    if (f.find(ro.delimiter) != std::string::npos || f.find(',') != std::string::npos || f.empty()) return false;
  try {
    if (input_format(ro) != "csv") return false;
  } catch (const std::exception&) {
    return false;
  }
  const std::vector<std::string> header = csv_header_names(ro);
  const std::set<std::string> names(header.begin(), header.end());
  if (names.size() != header.size()) return false;  // repeated names select by index only
  for (const auto& f : features)
    if (!names.count(f)) return false;
  std::string list;
  for (const auto& f : features) list += (list.empty() ? "" : ",") + f;
  ro.columns = list;
  if (!given.count("label-column") && !names.count(ro.label_column)) ro.label_column = "none";
  if (!given.count("weight-column")) ro.weight_column.clear();
  return true;
}

/// |dmu/deta| at \p eta of a scalar model, from its expected-Fisher weight
/// (dmu/deta)^2 / V(mu) and its Pearson term (y - mu)^2 / V(mu) at y = mu + 1:
/// |dmu/deta| = sqrt(fisher V), V = (y - mu)^2 / pearson.
double abs_mu_eta(const Model& model, double eta) {
  const double mu = model.mean(eta);
  double fisher = 0;
  model.eval(1, &eta, &mu, nullptr, nullptr, &fisher);
  const double dy = (mu + 1) - mu;
  return dy * std::sqrt(fisher / model.pearson(&eta, mu + 1));
}

}  // namespace

void run_predict(const PredictJob& job_in, const Communicator& comm, std::ostream& out) {
  PredictJob job = job_in;
  job.threads = job.read.threads = use_threads(job.threads, comm);
  // Every rank reads the (small) model file; failures are agreed on.
  nlohmann::json m;
  std::string err;
  {  // the fit's --out directory stands for its model.json
    std::error_code ec;
    if (std::filesystem::is_directory(job.model, ec)) job.model /= "model.json";
  }
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
  // Reader options not given here are the fit's, as model.json recorded them: each is
  // parsed by its own row of the option table, so a bad recorded value fails as typed.
  const nlohmann::json recorded = m.value("options", nlohmann::json::object());
  try {
    for (const auto& o : read_option_table()) {
      if (o.name == "data" || o.name == "format" || o.name == "intercept") continue;  // this data's own
      if (job.given.count(o.name) || !recorded.contains(o.name)) continue;
      o.parse(job.read, option_text(recorded[o.name].dump()));
    }
  } catch (const Error& e) {
    throw CollectiveError(job.model.string() + ": recorded option: " + e.what());
  }
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
  // A formula fit's design (formula, factor levels) is applied to the new data: columns by
  // name, the same coding; rows with a missing predictor are predicted as NA.
  const bool with_design = m.contains("design") && m["design"].is_object();
  bool by_name = false;
  Shard s;
  std::vector<char> kept;  // with_design: per row read, whether it is in s
  if (with_design) {
    DesignInfo fitted_design;
    try {
      fitted_design = design_from_json(m["design"].dump());
    } catch (const std::exception& e) {
      throw CollectiveError(job.model.string() + ": \"design\": " + e.what());
    }
    ro.formula = fitted_design.formula;
    Design dd = apply_design(ro, fitted_design, comm);
    s = std::move(dd.shard);
    kept = std::move(dd.info.kept);
  } else {
    by_name = match_columns_by_name(ro, columns, job.given);
    if (ro.n_features == 0) ro.n_features = sparse_table_features(ro, static_cast<std::int64_t>(columns.size()));
    s = load_shard(ro, comm);
  }
  if (s.names != columns) {
    auto list = [](const std::vector<std::string>& v) {
      std::string l;
      for (std::size_t j = 0; j < v.size() && j < 12; ++j) l += (j ? ", " : "") + v[j];
      return v.size() > 12 ? l + ", ... (" + std::to_string(v.size()) + " in all)" : l;
    };
    throw CollectiveError(ro.path + ": the data's columns do not match the model's: the model was fitted on (" +
                          list(columns) + "), the data gives (" + list(s.names) +
                          ") (data without a label column: --label-column none; a CSV whose header names every column of the model is matched by name)");
  }
  const std::int64_t d = s.n_cols, K = model->n_outputs();
  std::vector<double> cov;
  if (job.se) {
    comm.check(model->n_outputs() == 1, job.model.string() +
                                            ": --se is for scalar GLMs; a multinomial model has no single linear "
                                            "predictor");
    comm.check(m.contains("covariance") && m["covariance"].is_array(),
               job.model.string() +
                   ": no covariance matrix in the model, which --se needs: refit with --covariance (natgrad fit "
                   "... --covariance --out DIR)");
    for (const auto& row : m["covariance"])
      for (const auto& v : row) cov.push_back(v.is_null() ? NAN : v.get<double>());
  }
  comm.check(cov.empty() || cov.size() == fitted.size() * fitted.size(),
             job.model.string() + ": the covariance does not match the estimated coefficients");

  std::ostringstream body;
  body << std::setprecision(17);
  std::vector<double> eta(static_cast<std::size_t>(K)), p(static_cast<std::size_t>(classes > 0 ? classes : 1));
  const auto* mn = dynamic_cast<const MultinomialModel*>(model.get());
  // A row's stored entries (every column of a dense row, the non-zeros of a CSR one).
  std::vector<std::pair<std::int64_t, double>> x;
  std::vector<std::int64_t> fitted_at;  // --se: the position of column j among the fitted ones, or -1
  if (job.se) {
    fitted_at.assign(static_cast<std::size_t>(d), -1);
    for (std::size_t a = 0; a < fitted.size(); ++a)
      if (fitted[a] < d) fitted_at[static_cast<std::size_t>(fitted[a])] = static_cast<std::int64_t>(a);
  }
  const auto class_labels = m.value("class_labels", std::vector<std::string>());
  const bool labelled = class_labels.size() == static_cast<std::size_t>(classes) && classes > 1;
  // The NA line of a row dropped for a missing value: as many fields as a predicted row.
  const std::int64_t n_fields = mn ? K + classes + 1 : (job.se ? 4 : 2);
  std::string na_line;
  for (std::int64_t k = 0; k < n_fields; ++k) na_line += k ? ",NA" : "NA";
  na_line += '\n';
  const auto n_read = with_design ? static_cast<std::int64_t>(kept.size()) : s.n_rows;
  std::int64_t i = -1;  // the row of s
  for (std::int64_t r = 0; r < n_read; ++r) {
    if (with_design && !kept[static_cast<std::size_t>(r)]) {
      body << na_line;
      continue;
    }
    ++i;
    x.clear();
    s.for_each_nonzero(i, [&](std::int64_t j, double v) { x.emplace_back(j, v); });
    for (std::int64_t k = 0; k < K; ++k) {
      double e = s.offset.empty() ? 0.0 : s.offset[i];
      for (const auto& [j, v] : x) e += v * theta[j + d * k];
      eta[k] = e;
    }
    if (mn) {
      mn->probabilities(eta.data(), p.data());
      for (std::int64_t k = 0; k < K; ++k) body << eta[k] << ',';
      for (int c = 0; c < classes; ++c) body << p[c] << ',';
      const auto best = std::max_element(p.begin(), p.end()) - p.begin();
      if (labelled)
        body << class_labels[static_cast<std::size_t>(best)] << '\n';
      else
        body << best << '\n';
    } else {
      body << eta[0] << ',' << model->mean(eta[0]);
      if (job.se) {
        double q = 0;
        const auto nf = fitted.size();
        for (const auto& [ja, va] : x) {
          const std::int64_t a = fitted_at[static_cast<std::size_t>(ja)];
          if (a < 0) continue;
          for (const auto& [jb, vb] : x) {
            const std::int64_t b = fitted_at[static_cast<std::size_t>(jb)];
            if (b >= 0) q += va * cov[static_cast<std::size_t>(a) * nf + static_cast<std::size_t>(b)] * vb;
          }
        }
        const double se_eta = std::sqrt(q);
        body << ',' << se_eta << ',' << abs_mu_eta(*model, eta[0]) * se_eta;
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
    header = job.se ? "eta,mu,se_eta,se_mu\n" : "eta,mu\n";
  }
  write_collectively(job.out, header, body.str(), comm);
  std::int64_t n_na = with_design ? static_cast<std::int64_t>(kept.size()) - s.n_rows : 0;
  comm.allreduce_sum(&n_na, 1);
  if (comm.is_root())
    out << "wrote " << job.out.string() << ": " << s.n_global << " predictions (" << model->name() << ")"
        << (by_name ? "; columns matched by header name" : "")
        << (with_design ? "; formula " + ro.formula + " applied with the fit's factor levels" : std::string())
        << (n_na > 0 ? "; " + std::to_string(n_na) + " rows with a missing predictor written as NA" : std::string())
        << '\n';
}

}  // namespace natgrad
