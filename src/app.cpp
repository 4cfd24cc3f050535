#include "natgrad/app.hpp"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iomanip>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "natgrad/error.hpp"
#include "natgrad/generator.hpp"
#include "natgrad/linalg.hpp"
#include "natgrad/npy.hpp"
#include "natgrad/output.hpp"

namespace natgrad {

std::string describe_layout(const Communicator& comm, int threads) {
  const auto hosts = comm.gather(Communicator::processor_name());
  if (!comm.is_root()) return {};
  std::map<std::string, int> per_host;
  for (const auto& h : hosts) ++per_host[h];
  std::ostringstream o;
  o << comm.size() << " rank(s) on " << per_host.size() << " node(s), " << threads
    << " OpenMP thread(s) per rank; " << blas_description() << "; hosts:";
  for (const auto& [h, n] : per_host) o << ' ' << h << 'x' << n;
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

void print_summary(std::ostream& out, const FitResult& r, const std::vector<std::string>& names) {
  out << "\n" << to_string(r.reason) << " after " << r.iterations << " iteration(s), "
      << std::setprecision(6) << r.seconds << " s\n";
  out << "mean loss " << std::setprecision(12) << r.loss << ", max |gradient| " << std::setprecision(3)
      << r.grad_norm << ", n_obs " << r.n_obs << "\n\n";
  std::size_t w = 12;
  for (const auto& n : names) w = std::max(w, n.size() + 2);
  out << std::left << std::setw(static_cast<int>(w)) << "coefficient" << std::right << std::setw(22)
      << "estimate" << '\n';
  for (std::size_t j = 0; j < r.theta.size(); ++j)
    out << std::left << std::setw(static_cast<int>(w)) << (j < names.size() ? names[j] : "?")
        << std::right << std::setw(22) << std::setprecision(12) << r.theta[j] << '\n';
}

}  // namespace

FitResult run_fit(const FitJob& job, const Communicator& comm, std::ostream& out) {
  const auto model = make_model(job.family, job.link);
  job.fit.validate();
  const std::string layout = describe_layout(comm, job.fit.threads);
  if (comm.is_root()) out << "natgrad fit: " << layout << '\n';
  Shard shard = load_shard(job.read, comm);
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

  // Output directory first: a bad --out fails before the fit, on every rank.
  std::string err;
  if (comm.is_root() && !job.out_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(job.out_dir, ec);
    if (ec) err = job.out_dir.string() + ": cannot create output directory: " + ec.message();
  }
  comm.check(err.empty(), err);

  FitObserver obs;
  if (comm.is_root()) {
    if (!job.quiet)
      obs.on_iteration = [&out](const IterationRecord& r) {
        char line[200];
        std::snprintf(line, sizeof line,
                      "iter %4d  loss %.10e  |g| %.3e  |step| %.3e  kl %.3e  damping %.1e  t %.3g  %.2fs\n",
                      r.iter, r.loss, r.grad_norm, r.step_norm, r.kl, r.damping, r.step_length, r.seconds);
        out << line << std::flush;
      };
    obs.log = [&out](const std::string& m) { out << "note: " << m << '\n' << std::flush; };
  }
  FitResult res = fit(shard, *model, job.fit, comm, obs);

  if (comm.is_root()) {
    print_summary(out, res, shard.names);
    if (!job.out_dir.empty()) {
      RunInfo info;
      info.options_json = job.options_json;
      info.model_name = model->name();
      info.data = job.read.path;
      info.ranks = comm.size();
      info.threads = job.fit.threads;
      write_model_json(job.out_dir / "model.json", res, shard.names, info);
      write_history_csv(job.out_dir / "history.csv", res);
      out << "wrote " << (job.out_dir / "model.json").string() << " and "
          << (job.out_dir / "history.csv").string() << '\n';
    }
  }
  return res;
}

void run_generate(const GenerateJob& job, const Communicator& comm, std::ostream& out) {
  const GeneratorSpec spec = parse_generator_spec(job.spec);
  std::string format = job.format;
  if (format.empty()) {
    const auto ext = job.out.extension().string();
    format = ext == ".npy" ? "npy" : ext == ".csv" ? "csv" : "";
    if (format.empty())
      throw CollectiveError("generate: cannot tell the format of '" + job.out.string() +
                            "' from its extension: use .csv or .npy, or --format");
  }
  if (format != "csv" && format != "npy")
    throw CollectiveError("generate: --format '" + format + "' is not one of: csv, npy");
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
