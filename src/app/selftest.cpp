#include "natgrad/app/selftest.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "natgrad/io/generator.hpp"
#include "core/kernels.hpp"
#include "natgrad/core/cpu.hpp"
#include "natgrad/core/linalg.hpp"
#include "natgrad/core/model.hpp"
#include "natgrad/core/partition.hpp"
#include "natgrad/core/rng.hpp"

namespace natgrad {

namespace {

struct Check {
  std::string name;
  bool ok;
  std::string detail;
  bool warn = false;  // printed WARN: worth acting on, but nothing is wrong (no failure)
};

/// Collective: global normalised loss/gradient/Fisher at theta (valid on root).
Normalized global_sums(const Shard& s, const Model& m, const std::vector<double>& theta, FisherKind kind,
                       int threads, const Communicator& comm) {
  Workspace ws;
  ws.prepare(threads, s.n_cols, 64, kind);
  PackedSums sums;
  accumulate(s, m, theta, kind, threads, ws, sums);
  comm.reduce_sum(sums.buf.data(), sums.buf.size());
  Normalized nz;
  if (comm.is_root()) finalize(sums, nz);
  return nz;
}

double global_loss(const Shard& s, const Model& m, const std::vector<double>& theta, int threads,
                   const Communicator& comm) {
  Workspace ws;
  ws.prepare(threads, s.n_cols, 64, FisherKind::none);
  double lw[2];
  accumulate_loss(s, m, theta, threads, ws, lw);
  comm.allreduce_sum(lw, 2);
  return lw[0] / lw[1];
}

std::string fixed(double v, int digits) {
  std::ostringstream o;
  o.setf(std::ios::fixed);
  o.precision(digits);
  o << v;
  return o.str();
}

std::string sci(double v) {
  std::ostringstream o;
  o.precision(2);
  o << std::scientific << v;
  return o.str();
}

}  // namespace

int run_selftest(const Communicator& comm, int threads, std::ostream& out) {
  std::vector<Check> checks;
  const GeneratorSpec spec = parse_generator_spec("gen:logit:rows=3001,cols=6,seed=7,cond=10");
  const Range r = partition(spec.rows, comm.rank(), comm.size());
  const Shard shard = generate_rows(spec, r.begin, r.end, threads);
  const LogisticModel model;
  const auto p = static_cast<std::size_t>(spec.cols);
  std::vector<double> theta(p);
  for (std::size_t j = 0; j < p; ++j) theta[j] = 0.3 * rng::normal(99, 1, 0, j);

  // 1. Gradient against central finite differences of the loss.
  {
    const Normalized nz = global_sums(shard, model, theta, FisherKind::none, threads, comm);
    double worst = 0;
    for (std::size_t j = 0; j < p; ++j) {
      const double h = 1e-5 * std::max(1.0, std::abs(theta[j]));
      auto tp = theta, tm = theta;
      tp[j] += h;
      tm[j] -= h;
      const double fd = (global_loss(shard, model, tp, threads, comm) -
                         global_loss(shard, model, tm, threads, comm)) / (2 * h);
      if (comm.is_root())
        worst = std::max(worst, std::abs(fd - nz.grad[j]) / std::max(1e-3, std::abs(nz.grad[j])));
    }
    checks.push_back({"gradient matches central finite differences", worst < 1e-6, "max rel. error " + sci(worst)});
  }
  // 2. Every Fisher is symmetric positive semi-definite.
  for (FisherKind k : {FisherKind::expected, FisherKind::empirical, FisherKind::empirical_centered}) {
    const Normalized nz = global_sums(shard, model, theta, k, threads, comm);
    if (!comm.is_root()) continue;
    double asym = 0, maxabs = 0;
    for (std::size_t i = 0; i < p; ++i)
      for (std::size_t j = 0; j < p; ++j) {
        asym = std::max(asym, std::abs(nz.fisher[i + j * p] - nz.fisher[j + i * p]));
        maxabs = std::max(maxabs, std::abs(nz.fisher[i + j * p]));
      }
    const auto ev = symmetric_eigenvalues(nz.fisher, static_cast<std::int64_t>(p));
    const bool ok = asym <= 1e-15 * maxabs && ev.front() >= -1e-12 * ev.back();
    checks.push_back({std::string(to_string(k)) + " Fisher is symmetric PSD", ok,
                      "min/max eigenvalue " + sci(ev.front()) + " / " + sci(ev.back())});
  }
  // 3. The reduction on this communicator: known sums, and the distributed loss equals a
  //    single-process computation over all rows on the root.
  {
    std::vector<double> v(1000);
    for (std::size_t j = 0; j < v.size(); ++j) v[j] = (comm.rank() + 1.0) * static_cast<double>(j + 1);
    comm.reduce_sum(v.data(), v.size());
    const double ranks = comm.size();
    double err = 0;
    for (std::size_t j = 0; j < v.size(); ++j)
      err = std::max(err, std::abs(v[j] - ranks * (ranks + 1) / 2 * static_cast<double>(j + 1)));
    const Normalized dist = global_sums(shard, model, theta, FisherKind::expected, threads, comm);
    if (comm.is_root()) {
      const Shard all = generate_rows(spec, 0, spec.rows, threads);
      const Communicator self(MPI_COMM_SELF);
      const Normalized one = global_sums(all, model, theta, FisherKind::expected, threads, self);
      double rel = std::abs(one.loss - dist.loss) / std::abs(one.loss);
      for (std::size_t j = 0; j < p; ++j)
        rel = std::max(rel, std::abs(one.grad[j] - dist.grad[j]) / std::max(1e-12, std::abs(one.grad[j])));
      checks.push_back({"reduction over " + std::to_string(comm.size()) + " rank(s)", err == 0 && rel < 1e-12,
                        "exact sums " + std::string(err == 0 ? "ok" : "WRONG") + ", distributed vs single-rank rel. diff " + sci(rel)});
    }
  }
  // 4. Cholesky solve residual on an SPD matrix, and damping on a singular one.
  if (comm.is_root()) {
    const std::int64_t n = 60;
    std::vector<double> B(n * n), A(n * n, 0.0), b(n), x(n), f;
    for (std::int64_t i = 0; i < n * n; ++i) B[i] = rng::normal(5, 2, 0, static_cast<std::uint64_t>(i));
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t j = 0; j < n; ++j)
        for (std::int64_t k = 0; k < n; ++k) A[i + j * n] += B[i + k * n] * B[j + k * n];
    for (std::int64_t i = 0; i < n; ++i) b[i] = rng::normal(5, 3, 0, static_cast<std::uint64_t>(i));
    const DampedSolve s = damped_cholesky_solve(A, n, b, 0.0, x, f);
    double res = 0, bn = 0;
    for (std::int64_t i = 0; i < n; ++i) {
      double ax = 0;
      for (std::int64_t j = 0; j < n; ++j) ax += A[i + j * n] * x[j];
      res += (ax - b[i]) * (ax - b[i]);
      bn += b[i] * b[i];
    }
    res = std::sqrt(res / bn);
    std::vector<double> S(n * n, 1.0);  // rank one: singular
    std::vector<double> xs(n);
    const DampedSolve ds = damped_cholesky_solve(S, n, b, 0.0, xs, f);
    checks.push_back({"Cholesky solve residual", s.ok && res < 1e-10,
                      "||Ax-b||/||b|| = " + sci(res) + "; singular matrix solved with damping " + sci(ds.damping)});
    if (!ds.ok) checks.back().ok = false;
  }

  // 5. BLAS threads come from the OpenMP runtime (or none): they cannot multiply.
  if (comm.is_root()) {
    const std::string blas = blas_description();
    const bool ok = blas.find("threading openmp") != std::string::npos ||
                    blas.find("threading serial") != std::string::npos;
    checks.push_back({"BLAS threading does not multiply with OpenMP", ok, blas});
  }

  // 6. The CPU and the kernels OpenBLAS chose for it (every rank: nodes can differ). A BLAS
  //    running an older family than the CPU supports is a warning, not a failure: the
  //    answers are right, only slower, and the fix is in the environment.
  {
    const BlasVerdict v = blas_check();
    const CpuInfo& cpu = cpu_info();
    const std::string mine = cpu.model_name + " (" + cpu.vendor + " family " + std::to_string(cpu.family) +
                             " model " + std::to_string(cpu.model) + ", " + to_string(cpu.isa) +
                             (cpu.avx512_bf16 ? " with bf16" : "") + "), OpenBLAS core " +
                             (v.core.empty() ? "?" : v.core) + " (" + (v.core_known ? to_string(v.blas_isa) : "not in natgrad's table") +
                             "), natgrad kernels " + to_string(detail::kernel_isa());
    const auto hosts = comm.gather(Communicator::processor_name());
    const auto all = comm.gather(mine + '\t' + v.message);
    if (comm.is_root()) {
      std::vector<std::string> seen;  // one line per distinct CPU and core, named by its first rank
      bool alike = true;
      for (const auto& a : all) alike = alike && a == all.front();
      for (std::size_t k = 0; k < all.size(); ++k) {
        if (std::find(seen.begin(), seen.end(), all[k]) != seen.end()) continue;
        seen.push_back(all[k]);
        const auto tab = all[k].find('\t');
        const std::string where = alike ? "" : " on " + hosts[k] + " (rank " + std::to_string(k) + ")";
        const std::string message = all[k].substr(tab + 1);
        checks.push_back({"OpenBLAS core fits the CPU" + where, true, all[k].substr(0, tab), !message.empty()});
        if (!message.empty()) checks.back().detail += ". " + message;
      }
    }
  }
  // 7. One DGEMM (n = 1024): right, and how fast against the CPU's peak, on one thread
  //    and on the rank's threads. The rate is reported, never failed: a shared or
  //    throttled machine is slow without anything being wrong.
  {
    constexpr int n = 1024;
    const CpuPeak peak = cpu_peak();
    const DgemmRate one = time_dgemm(n, 1, 3);
    const DgemmRate all = threads > 1 ? time_dgemm(n, threads, 3) : one;
    set_blas_threads(threads);
    const double g1 = one.dgemm_gflops, gt = all.dgemm_gflops, fma1 = one.fma_gflops, fmat = all.fma_gflops;
    const double err1 = one.max_error, errt = all.max_error;
    const auto per = comm.gather(fixed(g1, 6) + ' ' + fixed(gt, 6) + ' ' + sci(std::max(err1, errt)));
    if (comm.is_root()) {
      double min1 = g1, mint = gt, maxerr = std::max(err1, errt);
      for (const auto& line : per) {
        std::istringstream in(line);
        double a = 0, b = 0, e = 0;
        in >> a >> b >> e;
        min1 = std::min(min1, a);
        mint = std::min(mint, b);
        maxerr = std::max(maxerr, e);
      }
      auto ratio = [](double g, double peak_rate) {
        return peak_rate > 0 ? fixed(100 * g / peak_rate, 0) + "%" : std::string("n/a");
      };
      std::ostringstream d;
      d << "1 thread " << fixed(g1, 1) << " GFLOP/s = " << ratio(g1, fma1) << " of measured FMA peak " << fixed(fma1, 1)
        << ", " << ratio(g1, peak.nominal_gflops) << " of nominal " << fixed(peak.nominal_gflops, 1);
      if (threads > 1)
        d << "; " << threads << " threads " << fixed(gt, 1) << " GFLOP/s = " << ratio(gt, fmat) << " of measured "
          << fixed(fmat, 1) << ", " << ratio(gt, peak.nominal_gflops * threads) << " of nominal "
          << fixed(peak.nominal_gflops * threads, 1);
      d << " (nominal: " << fixed(peak.ghz, 2) << " GHz from " << (peak.clock_source.empty() ? "nowhere" : peak.clock_source)
        << " x " << peak.flops_per_cycle << " DP flops/cycle assumed for " << to_string(cpu_info().isa) << ")";
      if (comm.size() > 1) d << "; slowest rank " << fixed(min1, 1) << " / " << fixed(mint, 1) << " GFLOP/s";
      d << "; max rel. error " << sci(maxerr);
      checks.push_back({"DGEMM n=" + std::to_string(n) + " rate vs peak", maxerr < 1e-10 && g1 > 0, d.str()});
    }
  }

  std::int64_t failed = 0;
  if (comm.is_root()) {
    std::int64_t warned = 0;
    for (const auto& c : checks) {
      out << (!c.ok ? "FAIL  " : c.warn ? "WARN  " : "PASS  ") << c.name << "  (" << c.detail << ")\n";
      failed += c.ok ? 0 : 1;
      warned += c.ok && c.warn ? 1 : 0;
    }
    out << checks.size() - static_cast<std::size_t>(failed + warned) << " passed, " << failed << " failed";
    if (warned > 0) out << ", " << warned << " warning(s)";
    out << '\n';
  }
  comm.broadcast(&failed, 1);
  return static_cast<int>(failed);
}

}  // namespace natgrad
