#include "core/kernels.hpp"
#include "natgrad/core/solver.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <sstream>

#include "natgrad/core/error.hpp"
#include "natgrad/core/glm.hpp"
#include "natgrad/core/linalg.hpp"

namespace natgrad {

const char* to_string(Reason r) {
  switch (r) {
    case Reason::running: return "running";
    case Reason::converged_gradient: return "converged: gradient max-norm below tol";
    case Reason::converged_loss: return "converged: relative loss change below ftol";
    case Reason::max_iterations: return "stopped: iteration limit reached";
    case Reason::non_finite: return "diverged: loss or gradient not finite";
    case Reason::line_search_failed: return "diverged: line search found no decrease";
    case Reason::singular_fisher: return "diverged: Fisher singular after raising the damping";
    case Reason::interrupted: return "stopped: signal received (state saved if checkpointing)";
    case Reason::separation:
      return "diverged: separation: the loss keeps decreasing along the last step, the "
             "coefficients run away (no finite maximum-likelihood estimate)";
  }
  return "?";
}
namespace {

enum Control : int { kContinue = 0, kHalve = 100 };

double max_abs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::isnan(x) ? INFINITY : std::abs(x));
  return m;
}
bool all_finite(const std::vector<double>& v) {
  return std::all_of(v.begin(), v.end(), [](double x) { return std::isfinite(x); });
}

/// The ridge term l2/2 sum_j theta_j^2 over penalised parameters.
double penalty(const FitOptions& o, std::span<const double> theta) {
  if (o.l2 == 0) return 0;
  double s = 0;
  for (std::size_t j = 0; j < theta.size(); ++j)
    if (o.penalized.empty() || o.penalized[j]) s += theta[j] * theta[j];
  return 0.5 * o.l2 * s;
}

/// Adds the ridge term to normalised sums (root): loss, gradient, Fisher diagonal.
void add_penalty(const FitOptions& o, std::span<const double> theta, Normalized& nz) {
  if (o.l2 == 0) return;
  const double W = nz.weight_sum;
  const std::size_t p = theta.size();
  nz.loss += penalty(o, theta) / W;
  for (std::size_t j = 0; j < p; ++j) {
    if (!(o.penalized.empty() || o.penalized[j])) continue;
    nz.grad[j] += o.l2 * theta[j] / W;
    if (nz.fisher.size() == p) nz.fisher[j] += o.l2 / W;
    else if (nz.fisher.size() == p * p) nz.fisher[j + j * p] += o.l2 / W;
  }
}

/// Root-only state of the iteration: the last normalised sums and the direction.
struct RootState {
  Normalized nz;
  std::vector<double> factor, Fd;
  double prev_loss = NAN;
};

/// Direction d and its model KL 0.5 d^T F d (per unit step). Root only.
Reason direction(const FitOptions& o, RootState& st, std::int64_t p, std::vector<double>& d,
                 double& damping, double& kl_unit, const FitObserver& obs, int iter) {
  const auto& g = st.nz.grad;
  const auto& F = st.nz.fisher;
  kl_unit = 0;
  switch (o.method) {
    case Method::gd:
      for (std::int64_t j = 0; j < p; ++j) d[j] = -g[j];
      return Reason::running;
    case Method::diag: {
      double floor = 0;
      for (double f : F) floor = std::max(floor, f);
      floor = std::max(1e-12 * floor, 1e-300);
      for (std::int64_t j = 0; j < p; ++j) {
        const double h = std::max(F[j] + damping, floor);
        d[j] = -g[j] / h;
        kl_unit += 0.5 * F[j] * d[j] * d[j];
      }
      return Reason::running;
    }
    case Method::ngd: {
      DampedSolve s = damped_cholesky_solve(F, p, g, damping, d, st.factor);
      if (s.attempts > 1 && obs.log) {
        std::ostringstream m;
        m << "iteration " << iter << ": Cholesky of F + " << damping << " I failed; damping raised to "
          << s.damping << (s.ok ? "" : " without success") << " after " << s.attempts << " attempts";
        obs.log(m.str());
      }
      if (!s.ok) return Reason::singular_fisher;
      damping = s.damping;
      for (double& v : d) v = -v;
      st.Fd.resize(static_cast<std::size_t>(p));
      symv(F, p, d, st.Fd);
      double q = 0;
      for (std::int64_t j = 0; j < p; ++j) q += d[j] * st.Fd[j];
      kl_unit = 0.5 * q;
      return Reason::running;
    }
  }
  return Reason::running;
}

}  // namespace

FitResult fit(const Shard& shard, const Model& model, const FitOptions& o, const Communicator& comm,
              const FitObserver& obs) {
  o.validate();
  const auto t0 = std::chrono::steady_clock::now();
  const double t_offset = o.resume ? o.resume->seconds : 0.0;  // time of the run(s) before a resume
  auto elapsed = [&] {
    return t_offset + std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };

  // Every rank must agree on the parameter count.
  std::int64_t pr[2] = {shard.n_cols, -shard.n_cols};
  comm.allreduce_max(pr, 2);
  comm.check(pr[0] == -pr[1], "ranks disagree on the number of columns (" + std::to_string(pr[0]) +
                                  " vs " + std::to_string(-pr[1]) + ")");
  const std::int64_t p = shard.n_cols * model.n_outputs();  // class-major parameters
  const std::size_t np = static_cast<std::size_t>(p);
  if (!o.theta0.empty() && o.theta0.size() != np)
    throw Error("initial coefficients have " + std::to_string(o.theta0.size()) +
                " entries, the model has " + std::to_string(p));

  const FisherKind kind = o.method == Method::ngd    ? o.fisher
                          : o.method == Method::diag ? FisherKind::diagonal
                                                     : FisherKind::none;
  FitResult res;
  res.theta = o.theta0.empty() ? std::vector<double>(np, 0.0) : o.theta0;
  comm.broadcast(res.theta.data(), np);  // identical start on every rank

  Workspace ws;
  ws.prepare(o.threads, shard.n_cols, o.block_rows, kind, model.n_outputs(), model.n_factors());
  PackedSums sums;
  RootState st;
  std::vector<double> d(np, 0.0), prev_theta(np), trial(np);
  // Control message from root: [status, step length, damping, kl_unit, loss, grad_norm] + d.
  constexpr std::size_t kHdr = 6;
  std::vector<double> ctl(kHdr + np, 0.0);
  double damping = o.damping, t_prev = 0, kl_prev = 0, damp_prev = 0, step_norm_prev = 0;
  int halvings_nonfinite = 0;

  // Resuming: continue the same iteration sequence from the checkpointed state. Only
  // quantities that outlive an iteration are restored (the damping is reset every step).
  const int start = o.resume ? o.resume->iteration : 0;
  if (o.resume) {
    const FitState& r = *o.resume;
    if (r.theta.size() != np)
      throw Error("the checkpoint has " + std::to_string(r.theta.size()) + " coefficients, the model has " +
                  std::to_string(p));
    if (r.iteration < 0 || r.history.size() != static_cast<std::size_t>(r.iteration))
      throw Error("the checkpoint's history has " + std::to_string(r.history.size()) + " rows for iteration " +
                  std::to_string(r.iteration));
    res.theta = r.theta;
    comm.broadcast(res.theta.data(), np);
    if (comm.is_root()) res.history = r.history;  // like every history row: root's
    res.last_step = r.last_step;
    t_prev = r.step_length;
    kl_prev = r.kl;
    damp_prev = r.damping;
    step_norm_prev = r.step_norm;
    st.prev_loss = r.prev_loss;
  }
  // The state before theta_k is evaluated (root): row k of the history is not in it.
  auto state_at = [&](int k, double seconds, double prev_loss) {
    FitState s;
    s.iteration = k;
    s.theta = res.theta;
    s.history.assign(res.history.begin(),
                     res.history.begin() + std::min<std::ptrdiff_t>(k, std::ssize(res.history)));
    s.step_length = t_prev;
    s.kl = kl_prev;
    s.damping = damp_prev;
    s.step_norm = step_norm_prev;
    s.last_step = res.last_step;
    s.seconds = seconds;
    s.prev_loss = prev_loss;
    return s;
  };

  // One fused pass at \p at: loss, gradient and Fisher, reduced to root. Every rank's
  // interrupt flag rides along in the reduction: no extra collective. Returns the flag
  // (meaningful on root).
  auto evaluate = [&](std::span<const double> at) {
    accumulate(shard, model, at, kind, o.threads, ws, sums, o.sample);
    sums.buf.push_back(o.interrupt != nullptr && *o.interrupt != 0 ? 1.0 : 0.0);
    comm.reduce_sum(sums.buf.data(), sums.buf.size());
    const bool stop = sums.buf.back() > 0;
    sums.buf.pop_back();
    return stop;
  };
  bool have_sums = false;  // sums already hold theta_k's evaluation (an accepted fused trial)
  bool stop_requested = false;
  for (int k = start;; ++k) {
    if (!have_sums) stop_requested = evaluate(res.theta);
    have_sums = false;
    if (comm.is_root()) {
      Reason status = Reason::running;
      int control = kContinue;
      finalize(sums, st.nz);
      add_penalty(o, res.theta, st.nz);
      const double gnorm = max_abs(st.nz.grad);
      const bool finite = std::isfinite(st.nz.loss) && all_finite(st.nz.grad) && all_finite(st.nz.fisher);
      double t = 0, kl_unit = 0;
      if (!finite) {
        // A step that left the finite region: halve it (fixed rule) or give up.
        if (k > start && halvings_nonfinite < o.max_halvings) {
          control = kHalve;
          ++halvings_nonfinite;
          if (obs.log) obs.log("iteration " + std::to_string(k) + ": non-finite loss; halving the step");
        } else {
          status = Reason::non_finite;
        }
      } else {
        IterationRecord rec{k, st.nz.loss, gnorm, step_norm_prev, kl_prev, damp_prev, t_prev, elapsed()};
        if (gnorm <= o.tol)
          status = Reason::converged_gradient;
        else if (k > 0 && o.ftol > 0 &&
                 std::abs(st.nz.loss - st.prev_loss) <= o.ftol * std::max(1.0, std::abs(st.nz.loss)))
          status = Reason::converged_loss;
        else if (k >= o.max_iter)
          status = Reason::max_iterations;
        else
          status = direction(o, st, p, d, damping, kl_unit, obs, k);
        if (status == Reason::singular_fisher && k > start && halvings_nonfinite < o.max_halvings) {
          // The last step left the region where the Fisher is usable: retreat.
          status = Reason::running;
          control = kHalve;
          ++halvings_nonfinite;
          if (obs.log) obs.log("iteration " + std::to_string(k) + ": Fisher singular; halving the step");
        } else {
          res.history.push_back(rec);
          if (obs.on_iteration) obs.on_iteration(rec);
        }
        if (status == Reason::running && control == kContinue &&
            (stop_requested || (o.checkpoint_every > 0 && k > start && k % o.checkpoint_every == 0))) {
          // A regular iterate whose direction exists: a resume from here re-evaluates
          // theta_k and takes exactly the steps this run would have taken.
          if (obs.on_checkpoint) obs.on_checkpoint(state_at(k, rec.seconds, st.prev_loss));
          if (stop_requested) status = Reason::interrupted;
        }
        st.prev_loss = st.nz.loss;
        if (control != kHalve) halvings_nonfinite = 0;
        if (status == Reason::running && control != kHalve) {
          t = o.lr;
          if (o.step == StepRule::kl && kl_unit > 0) t = std::min(o.lr, std::sqrt(o.kl / kl_unit));
        }
      }
      ctl[0] = control == kHalve ? double{kHalve} : static_cast<double>(static_cast<int>(status));
      ctl[1] = t;
      ctl[2] = damping;
      ctl[3] = kl_unit;
      ctl[4] = st.nz.loss;
      ctl[5] = gnorm;
      std::copy(d.begin(), d.end(), ctl.begin() + kHdr);
    }
    comm.broadcast(ctl.data(), ctl.size());
    const int code = static_cast<int>(ctl[0]);
    res.loss = ctl[4];
    res.grad_norm = ctl[5];
    res.iterations = k;
    if (code == kHalve) {
      // Every rank retreats identically from the same previous point.
      t_prev *= 0.5;
      kl_prev *= 0.25;
      step_norm_prev *= 0.5;
      for (std::size_t j = 0; j < np; ++j) res.theta[j] = prev_theta[j] + t_prev * d[j];
      --k;
      continue;
    }
    if (code != 0) {
      res.reason = static_cast<Reason>(code);
      break;
    }
    std::copy(ctl.begin() + kHdr, ctl.end(), d.begin());
    double t = ctl[1];
    const double kl_unit = ctl[3];
    prev_theta = res.theta;

    if (o.step == StepRule::fixed) {
      for (std::size_t j = 0; j < np; ++j) res.theta[j] = prev_theta[j] + t * d[j];
    } else {
      // Backtracking: loss-only trials, decided on root, decision broadcast.
      double slope = 0;
      if (comm.is_root())
        for (std::size_t j = 0; j < np; ++j) slope += st.nz.grad[j] * d[j];
      // The first trial is a full pass (loss, gradient, Fisher) when the last step was
      // accepted at its first trial (or this is the first step): if it is accepted, as
      // near the optimum it is, the next iteration needs no pass of its own. Otherwise
      // the trials evaluate the loss only. The rule depends only on the checkpointed
      // step length, so a resumed fit takes the same path.
      const bool fuse_first = t_prev == 0 || t_prev == t;
      bool accepted = false;
      for (int h = 0; h <= o.max_halvings && !accepted; ++h) {
        for (std::size_t j = 0; j < np; ++j) trial[j] = prev_theta[j] + t * d[j];
        double lw[2];
        const bool full = h == 0 && fuse_first;
        if (full) {
          stop_requested = evaluate(trial);
          lw[0] = sums.buf[0];  // root's reduced sums (the other ranks' are partial)
          lw[1] = sums.buf[1];
        } else {
          accumulate_loss(shard, model, trial, o.threads, ws, lw);
          comm.reduce_sum(lw, 2);
        }
        double decision = 0;
        if (comm.is_root()) {
          const double f = (lw[0] + penalty(o, trial)) / lw[1];
          // Armijo, with an allowance of a few ulps of the loss: near the optimum the
          // predicted decrease falls below the loss's rounding and could never be seen.
          const double noise = 16 * std::numeric_limits<double>::epsilon() * std::abs(res.loss);
          decision = (std::isfinite(f) && f <= res.loss + o.armijo_c1 * t * slope + noise) ? 1.0 : 0.0;
          // At the rounding floor of the loss (a sum over all rows, relative error up to
          // ~1e-13 at 1e6 rows) Armijo cannot see a decrease; a full trial then also
          // accepts a step whose loss is level to 1e-12 and whose gradient max-norm falls.
          if (decision == 0.0 && full && std::isfinite(f) && f - res.loss <= 1e-12 * std::abs(res.loss)) {
            double gt = 0;
            for (std::size_t j = 0; j < np; ++j) {
              double g = sums.buf[3 + j] / lw[1];
              if (o.l2 > 0 && (o.penalized.empty() || o.penalized[j])) g += o.l2 * trial[j] / lw[1];
              gt = std::max(gt, std::isnan(g) ? INFINITY : std::abs(g));
            }
            if (gt < res.grad_norm) decision = 1.0;
          }
        }
        comm.broadcast(&decision, 1);
        if (decision == 1.0) {
          accepted = true;
          have_sums = full;
          res.theta = trial;
        } else {
          t *= 0.5;
        }
      }
      if (!accepted) {
        res.theta = prev_theta;
        res.reason = Reason::line_search_failed;
        break;
      }
    }
    t_prev = t;
    res.last_step.resize(np);
    for (std::size_t j = 0; j < np; ++j) res.last_step[j] = t * d[j];
    kl_prev = t * t * kl_unit;
    damp_prev = ctl[2];
    double s2 = 0;
    for (std::size_t j = 0; j < np; ++j) s2 += (t * d[j]) * (t * d[j]);
    step_norm_prev = std::sqrt(s2);
    damping = o.damping;  // a raised damping holds for one iteration only
  }
  res.weight_sum = st.nz.weight_sum;
  comm.broadcast(&res.weight_sum, 1);
  std::int64_t nobs = shard.n_rows;
  comm.allreduce_sum(&nobs, 1);
  res.n_obs = nobs;
  if (comm.is_root()) res.fisher = std::move(st.nz.fisher);
  res.fisher_kind = kind;
  res.fisher_sampled = o.sample.active() && kind != FisherKind::none;
  res.seconds = elapsed();
  return res;
}

}  // namespace natgrad

namespace natgrad {

double global_loss(const Shard& shard, const Model& model, std::span<const double> theta,
                   const FitOptions& o, const Communicator& comm) {
  Workspace ws;
  ws.prepare(o.threads, shard.n_cols, o.block_rows, FisherKind::none, model.n_outputs(), model.n_factors());
  double lw[2];
  accumulate_loss(shard, model, theta, o.threads, ws, lw);
  comm.allreduce_sum(lw, 2);
  return (lw[0] + penalty(o, theta)) / lw[1];
}

namespace {
/// The working-response model of R's first IRLS step: a quadratic in eta around
/// eta0 = g(mustart(y)) with the family's Fisher weight at eta0.
class StartModel final : public Model {
 public:
  explicit StartModel(const Model& m) : m_(m) {}
  std::string name() const override { return "start/" + m_.name(); }
  std::string check_label(double y) const override { return m_.check_label(y); }
  void eval(std::size_t n, const double* eta, const double* y, double* nll, double* dnll,
            double* fisher) const override {
    for (std::size_t i = 0; i < n; ++i) {
      const double e0 = m_.start_eta(y[i]);
      double w0 = 0;
      m_.eval(1, &e0, &y[i], nullptr, nullptr, &w0);
      if (!std::isfinite(w0) || !std::isfinite(e0)) w0 = 0;
      const double r = std::isfinite(e0) ? e0 - eta[i] : 0.0;
      if (nll) nll[i] = 0.5 * w0 * r * r;
      if (dnll) dnll[i] = -w0 * r;
      if (fisher) fisher[i] = w0;
    }
  }
  double unit_deviance(const double*, double) const override { return 0; }
  double pearson(const double*, double) const override { return 0; }
  double loglik(const double*, double, double, double) const override { return 0; }
  std::vector<double> null_eta(const std::vector<double>&, double) const override { return {0}; }
  double mean(double eta) const override { return eta; }
  double start_eta(double y) const override { return m_.start_eta(y); }

 private:
  const Model& m_;
};
}  // namespace

StartSystem start_system(const Shard& shard, const Model& model, const FitOptions& options,
                         const Communicator& comm, bool sampled) {
  StartSystem sys;
  sys.p = shard.n_cols;
  sys.sampled = sampled && options.sample.active();
  const FisherSample sample = sys.sampled ? options.sample : FisherSample{};
  Workspace ws;
  ws.prepare(options.threads, shard.n_cols, options.block_rows, FisherKind::expected);
  PackedSums sums;
  const std::vector<double> zero(static_cast<std::size_t>(shard.n_cols), 0.0);
  if (model.n_outputs() == 1) {
    const StartModel start(model);  // at theta = 0: Fisher X^T W0 X, gradient -X^T W0 eta0
    accumulate(shard, start, zero, FisherKind::expected, options.threads, ws, sums, sample);
  } else {
    const Glm gram(Family::gaussian, Link::identity);  // prior weights only: X^T W X
    accumulate(shard, gram, zero, FisherKind::expected, options.threads, ws, sums, sample);
  }
  comm.reduce_sum(sums.buf.data(), sums.buf.size());
  if (comm.is_root()) {
    Normalized nz;
    finalize(sums, nz);
    sys.gram = std::move(nz.fisher);
    if (model.n_outputs() == 1) {
      sys.rhs = std::move(nz.grad);
      for (double& v : sys.rhs) v = -v;
    }
  }
  return sys;
}

std::vector<std::int64_t> dependent_columns(const StartSystem& sys, double tol, const Communicator& comm) {
  std::vector<std::int64_t> dep;
  if (comm.is_root()) dep = dependent_columns(sys.gram, sys.p, tol);
  std::int64_t n = static_cast<std::int64_t>(dep.size());
  comm.broadcast(&n, 1);
  dep.resize(static_cast<std::size_t>(n));
  comm.broadcast(dep.data(), dep.size());
  return dep;
}

std::vector<double> solve_start(const StartSystem& sys, const std::vector<std::int64_t>& dropped,
                                const FitOptions& options, const Communicator& comm) {
  std::vector<std::int64_t> keep;
  for (std::int64_t j = 0, k = 0; j < sys.p; ++j) {
    if (k < std::ssize(dropped) && dropped[static_cast<std::size_t>(k)] == j) ++k;
    else keep.push_back(j);
  }
  const std::int64_t q = std::ssize(keep);
  std::vector<double> theta(static_cast<std::size_t>(q), 0.0);
  std::int64_t has_rhs = sys.rhs.empty() ? 0 : 1;
  comm.broadcast(&has_rhs, 1);
  if (has_rhs == 0) return theta;  // several outputs: start from zero
  if (comm.is_root()) {
    std::vector<double> A(static_cast<std::size_t>(q * q)), b(static_cast<std::size_t>(q)), factor;
    for (std::int64_t c = 0; c < q; ++c) {
      b[static_cast<std::size_t>(c)] = sys.rhs[static_cast<std::size_t>(keep[static_cast<std::size_t>(c)])];
      for (std::int64_t r = 0; r < q; ++r)
        A[static_cast<std::size_t>(r + c * q)] =
            sys.gram[static_cast<std::size_t>(keep[static_cast<std::size_t>(r)] + keep[static_cast<std::size_t>(c)] * sys.p)];
    }
    const DampedSolve ds = damped_cholesky_solve(A, q, b, options.damping, theta, factor);
    if (!ds.ok || !all_finite(theta)) std::fill(theta.begin(), theta.end(), 0.0);
  }
  comm.broadcast(theta.data(), theta.size());
  return theta;
}

std::vector<double> irls_start(const Shard& shard, const Model& model, const FitOptions& options,
                               const Communicator& comm) {
  const StartSystem sys = start_system(shard, model, options, comm);
  std::vector<double> theta = solve_start(sys, {}, options, comm);
  theta.resize(static_cast<std::size_t>(shard.n_cols * model.n_outputs()), 0.0);
  return theta;
}

}  // namespace natgrad
