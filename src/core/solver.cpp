#include "natgrad/core/solver.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <new>
#include <cmath>
#include <cstdio>
#include <functional>
#include <memory>

#include "core/kernels.hpp"
#include "core/solver_parts.hpp"

#include "natgrad/core/error.hpp"
#include "natgrad/core/glm.hpp"
#include "natgrad/core/linalg.hpp"
#include "natgrad/core/memory.hpp"

namespace natgrad {

const char* to_string(Reason r) {
  switch (r) {
    case Reason::running: return "running";
    case Reason::converged_gradient: return "converged: gradient max-norm below tol";
    case Reason::converged_loss: return "converged: relative loss change below ftol";
    case Reason::converged_decrement: return "converged: Newton decrement below tol";
    case Reason::max_iterations: return "stopped: iteration limit reached";
    case Reason::non_finite: return "diverged: loss or gradient not finite";
    case Reason::line_search_failed: return "diverged: line search found no decrease";
    case Reason::singular_fisher: return "diverged: Fisher singular after raising the damping";
    case Reason::interrupted: return "stopped: signal received (state saved if checkpointing)";
    case Reason::loss_diverged: return "diverged: the loss grew more than 1000 x max(|starting loss|, 1) above its start";
    case Reason::separation:
      return "diverged: separation: the loss keeps decreasing along the last step, the "
             "coefficients run away (no finite maximum-likelihood estimate)";
  }
  return "?";
}
namespace {

double max_abs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::isnan(x) ? INFINITY : std::abs(x));
  return m;
}
bool all_finite(const std::vector<double>& v) {
  return std::all_of(v.begin(), v.end(), [](double x) { return std::isfinite(x); });
}
/// \p v in 6 significant digits, for notes.
std::string number_text(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.6g", v);
  return b;
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

/// Gradient max-norm at \p trial from a full pass's reduced sums (root), penalty included.
double trial_grad_norm(const FitOptions& o, const PackedSums& sums, double weight_sum, std::span<const double> trial) {
  double gt = 0;
  for (std::size_t j = 0; j < trial.size(); ++j) {
    double g = sums.buf[3 + j] / weight_sum;
    if (o.l2 > 0 && (o.penalized.empty() || o.penalized[j])) g += o.l2 * trial[j] / weight_sum;
    gt = std::max(gt, std::isnan(g) ? INFINITY : std::abs(g));
  }
  return gt;
}

/// Every rank must agree on the parameter count: returns it (columns x outputs).
std::int64_t agreed_parameters(const Shard& shard, const Model& model, const FitOptions& o, const Communicator& comm) {
  std::int64_t pr[2] = {shard.n_cols, -shard.n_cols};
  comm.allreduce_max(pr, 2);
  comm.check(pr[0] == -pr[1], "ranks disagree on the number of columns (" + std::to_string(pr[0]) +
                                  " vs " + std::to_string(-pr[1]) + ")");
  const std::int64_t p = shard.n_cols * model.n_outputs();  // class-major parameters
  if (!o.theta0.empty() && o.theta0.size() != static_cast<std::size_t>(p))
    throw Error("initial coefficients have " + std::to_string(o.theta0.size()) +
                " entries, the model has " + std::to_string(p));
  return p;
}

/// Collective: sizes \p ws and \p sums (with room for the stop flag) on every rank. A
/// failed allocation on any rank stops every rank with one message giving its size,
/// instead of one rank aborting while the others wait in the next reduction.
void prepare_collectively(Workspace& ws, PackedSums& sums, const Communicator& comm, int threads, std::int64_t d,
                          std::int64_t block, FisherKind kind, int outputs = 1, int factors = 1, bool sparse = false) {
  std::string err;
  try {
    ws.prepare(threads, d, block, kind, outputs, factors, sparse);
    const std::int64_t p = d * outputs;
    sums.resize(p, kind);
    sums.buf.reserve(sums.buf.size() + 1);
  } catch (const std::bad_alloc&) {
    const double p = static_cast<double>(d * outputs);
    // Dense: one p x p accumulator per thread (one shared above the per-thread limit); sparse:
    // packed triangles, one per thread while small, else the output's alone.
    const double slots = sparse ? (ws.split_ ? 0.0 : 0.5 * (threads - 1))
                                : (detail::shared_fisher_accumulator(d, threads, outputs) ? 1.0 : static_cast<double>(threads));
    err = out_of_memory_message(comm.rank(),
                                "the p x p Fisher accumulators of " + std::to_string(threads) +
                                    " thread(s) and the reduction buffer for " + std::to_string(d * outputs) +
                                    " parameters",
                                (slots + 0.5) * p * p * 8);
  }
  comm.check(err.empty(), err);
}

/// The collective passes of a fit over this rank's rows, reduced onto root.
class Passes {
 public:
  Passes(const Shard& shard, const Model& model, const FitOptions& o, FisherKind kind, const Communicator& comm)
      : shard_(shard), model_(model), o_(o), kind_(kind), comm_(comm) {
    ws_.fisher_precision = o.fisher_precision;
    prepare_collectively(ws_, sums_, comm, o.threads, shard.n_cols, o.block_rows, kind, model.n_outputs(),
                         model.n_factors(), shard.sparse);
  }
  /// One fused pass at \p at: loss, gradient and Fisher, reduced to root (sums()). Every
  /// rank's interrupt flag rides along in the reduction: no extra collective. Returns the
  /// flag (meaningful on root).
  bool full(std::span<const double> at) {
    accumulate(shard_, model_, at, kind_, o_.threads, ws_, sums_, o_.sample);
    sums_.buf.push_back(o_.interrupt != nullptr && *o_.interrupt != 0 ? 1.0 : 0.0);
    comm_.reduce_sum(sums_.buf.data(), sums_.buf.size());
    const bool stop = sums_.buf.back() > 0;
    sums_.buf.pop_back();
    return stop;
  }
  /// Loss-only pass at \p at: [sum w nll, sum w] reduced to root.
  void loss_only(std::span<const double> at, double lw[2]) {
    accumulate_loss(shard_, model_, at, o_.threads, ws_, lw);
    comm_.reduce_sum(lw, 2);
  }
  PackedSums& sums() { return sums_; }

 private:
  const Shard& shard_;
  const Model& model_;
  const FitOptions& o_;
  FisherKind kind_;
  const Communicator& comm_;
  Workspace ws_;
  PackedSums sums_;
};

/// The step that led to theta_k: history row k and a checkpoint at k report it.
struct LastStep {
  double length = 0, kl = 0, damping = 0, norm = 0;
};

/// One fit: the iterate and the parts that move it. run() is collective.
class Solver {
 public:
  Solver(const Shard& shard, const Model& model, const FitOptions& o, const Communicator& comm,
         const FitObserver& obs, std::int64_t p)
      : o_(o), comm_(comm), obs_(obs), np_(static_cast<std::size_t>(p)),
        products_(matrix_free(o, p, shard.sparse) ? std::make_unique<FisherProducts>(shard, model, o, o.fisher, comm, np_)
                                                  : nullptr),
        direction_(make_direction(o, p, products_.get(), shard.sparse)),
        rule_(make_step_rule(o)), stop_test_(o), passes_(shard, model, o, direction_->fisher_kind(), comm),
        channel_(np_) {
    res_.theta = o.theta0.empty() ? std::vector<double>(np_, 0.0) : o.theta0;
    comm.broadcast(res_.theta.data(), np_);  // identical start on every rank
    dec_.direction.assign(np_, 0.0);
    next_direction_.assign(np_, 0.0);
    prev_theta_.resize(np_);
    trial_.resize(np_);
    damping_ = o.damping;
    if (o.resume) resume(*o.resume);
  }

  /// The iterations: evaluate theta_k, root decides, every rank follows the decision.
  FitResult& run(const std::function<double()>& elapsed) {
    elapsed_ = elapsed;
    bool have_sums = false;  // the sums already hold theta_k's evaluation (an accepted fused trial)
    for (int k = start_;; ++k) {
      if (!have_sums) stop_requested_ = passes_.full(res_.theta);
      have_sums = false;
      // A matrix-free direction's products are collective: root drives them from inside
      // decide(), the other ranks serve them until root releases them.
      if (products_) products_->at(res_.theta);
      if (comm_.is_root()) {
        decide(k);
        if (products_) products_->release();
      } else if (products_) {
        products_->serve();
      }
      channel_.share(dec_, comm_);
      res_.loss = dec_.loss;
      res_.grad_norm = dec_.grad_norm;
      res_.iterations = k;
      if (dec_.action == Decision::Action::halve) {
        retreat();
        --k;
        continue;
      }
      if (dec_.action == Decision::Action::stop) {
        res_.reason = dec_.reason;
        break;
      }
      prev_theta_ = res_.theta;
      double t = dec_.step;
      if (!rule_->backtracks()) {
        move(res_.theta, t);
      } else if (!line_search(t, have_sums)) {
        res_.theta = prev_theta_;
        res_.reason = Reason::line_search_failed;
        break;
      }
      record_step(t);
    }
    return res_;
  }

  /// Root's last normalised sums (the Fisher of FitResult).
  Normalized& root_sums() { return nz_; }
  FisherKind fisher_kind() const { return direction_->fisher_kind(); }
  std::int64_t fisher_products() const { return products_ ? products_->count() : 0; }

 private:
  /// Continue the same iteration sequence from a checkpointed state. Only quantities that
  /// outlive an iteration are restored (the damping is reset every step).
  void resume(const FitState& r) {
    // Every rank holds the same state (root read it and broadcast it): these failures are
    // collective, one message on rank 0.
    if (r.theta.size() != np_)
      throw CollectiveError("the checkpoint has " + std::to_string(r.theta.size()) + " coefficients, the model has " +
                  std::to_string(np_));
    if (r.iteration < 0 || r.history.size() != static_cast<std::size_t>(r.iteration))
      throw CollectiveError("the checkpoint's history has " + std::to_string(r.history.size()) + " rows for iteration " +
                  std::to_string(r.iteration));
    start_ = r.iteration;
    res_.theta = r.theta;
    comm_.broadcast(res_.theta.data(), np_);
    if (comm_.is_root()) res_.history = r.history;  // like every history row: root's
    res_.last_step = r.last_step;
    last_ = {r.step_length, r.kl, r.damping, r.step_norm};
    prev_loss_ = r.prev_loss;
  }

  /// The state before theta_k is evaluated (root): row k of the history is not in it.
  FitState state_at(int k, double seconds, bool with_history = true) const {
    FitState s;
    s.iteration = k;
    s.theta = res_.theta;
    if (with_history)
      s.history.assign(res_.history.begin(),
                       res_.history.begin() + std::min<std::ptrdiff_t>(k, std::ssize(res_.history)));
    s.step_length = last_.length;
    s.kl = last_.kl;
    s.damping = last_.damping;
    s.step_norm = last_.norm;
    s.last_step = res_.last_step;
    s.seconds = seconds;
    s.prev_loss = prev_loss_;
    return s;
  }

  /// A retreat of the last step (non-finite iterate, or a Fisher unusable there): on
  /// root, counts it and says so; proceed and stop unchanged otherwise.
  bool try_halve(int k, const char* what) {
    if (k <= start_ || halvings_ >= o_.max_halvings) return false;
    dec_.action = Decision::Action::halve;
    ++halvings_;
    if (obs_.log) obs_.log("iteration " + std::to_string(k) + ": " + what + "; halving the step");
    return true;
  }

  /// Root: from theta_k's reduced sums to the decision (dec_), with its history row,
  /// observer calls and checkpoint. A failed allocation here (root's p x p matrices) is
  /// not root's alone: the decision becomes "out of memory", and the broadcast that every
  /// rank is already waiting in makes each of them throw the same CollectiveError.
  void decide(int k) {
    dec_.oom_what = 0;
    oom_stage_ = RootAllocation::fisher;
    try {
      decide_iteration(k);
    } catch (const std::bad_alloc&) {
      const double p = static_cast<double>(np_);
      const FisherKind kind = direction_->fisher_kind();
      dec_.oom_what = static_cast<int>(oom_stage_);
      dec_.oom_bytes = oom_stage_ == RootAllocation::fisher      ? 8 * (kind == FisherKind::none || kind == FisherKind::diagonal ? p : p * p)
                       : oom_stage_ == RootAllocation::direction ? 8 * std::max(2.0 * static_cast<double>(nz_.fisher.size()), 4 * p)
                                                                 : 8 * (p + 8 * static_cast<double>(k + 1));
    }
  }

  void decide_iteration(int k) {
    finalize(passes_.sums(), nz_);
    add_penalty(o_, res_.theta, nz_);
    dec_.step = dec_.kl_unit = 0;
    dec_.damping = damping_;
    dec_.loss = nz_.loss;
    dec_.grad_norm = max_abs(nz_.grad);
    dec_.set_status(Reason::running);
    if (!(std::isfinite(nz_.loss) && all_finite(nz_.grad) && all_finite(nz_.fisher))) {
      // A step that left the finite region. --step fixed takes its length as given, so
      // a retreat would change it silently: the fit has diverged. Otherwise halve the
      // step or give up.
      if (!rule_->backtracks() && k > start_) {
        if (obs_.log)
          obs_.log("iteration " + std::to_string(k) + ": non-finite loss after a fixed step of length " +
                   number_text(last_.length) + " (--step fixed never shortens a step: lower --lr, or use "
                   "--step armijo or kl)");
        dec_.set_status(Reason::non_finite);
      } else if (!try_halve(k, "non-finite loss")) {
        dec_.set_status(Reason::non_finite);
      }
      return;
    }
    const IterationRecord rec{k,           nz_.loss,   dec_.grad_norm, last_.norm, last_.kl,
                              last_.damping, last_.length, elapsed_()};
    // The decrement rule needs the direction first: its solve yields g^T F^-1 g.
    DirectionOutcome out;
    oom_stage_ = RootAllocation::direction;
    const bool early = stop_test_.needs_decrement();
    // Into scratch space: a failed solve may leave anything there, and root must keep
    // the d that every rank holds (a retreat below moves along it on every rank).
    if (early) out = direction_->compute(nz_, damping_, k, obs_.log, next_direction_);
    const double decrement = early && out.status == Reason::running ? out.decrement : NAN;
    Reason status = stop_test_.check(k, nz_.loss, prev_loss_, dec_.grad_norm, decrement);
    if (status == Reason::running) {
      if (!early) out = direction_->compute(nz_, damping_, k, obs_.log, next_direction_);
      status = out.status;
      damping_ = dec_.damping = out.damping;
      dec_.kl_unit = out.kl_unit;
      if (status == Reason::running) std::swap(next_direction_, dec_.direction);
    }
    oom_stage_ = RootAllocation::records;
    // Singular: the last step left the region where the Fisher is usable: retreat along
    // the last step's d, which every rank holds.
    if (status == Reason::singular_fisher && try_halve(k, "Fisher singular")) {
      status = Reason::running;
    } else {
      // An iterate the fit keeps: has the loss run away from its start?
      const double loss0 = res_.history.empty() ? nz_.loss : res_.history.front().loss;
      if (divergence_test_.diverged(loss0, nz_.loss)) {
        if (obs_.log)
          obs_.log("iteration " + std::to_string(k) + ": loss " + number_text(nz_.loss) + ", starting loss " +
                   number_text(loss0) + ": diverged (lower --lr, or use --step armijo or kl)");
        status = Reason::loss_diverged;
      }
      res_.history.push_back(rec);
      if (obs_.on_iteration) obs_.on_iteration(rec);
    }
    const bool halve = dec_.action == Decision::Action::halve;
    if (status == Reason::running && !halve && obs_.on_state)
      obs_.on_state(state_at(k, rec.seconds, false),
                    std::span<const IterationRecord>(res_.history.data(),
                                                     static_cast<std::size_t>(std::min<std::ptrdiff_t>(k, std::ssize(res_.history)))));
    if (status == Reason::running && !halve &&
        (stop_requested_ || (o_.checkpoint_every > 0 && k > start_ && k % o_.checkpoint_every == 0))) {
      // A regular iterate whose direction exists: a resume from here re-evaluates
      // theta_k and takes exactly the steps this run would have taken.
      if (obs_.on_checkpoint) obs_.on_checkpoint(state_at(k, rec.seconds));
      if (stop_requested_) status = Reason::interrupted;
    }
    prev_loss_ = nz_.loss;
    if (halve) return;
    halvings_ = 0;
    dec_.set_status(status);
    if (status == Reason::running) dec_.step = rule_->initial(dec_.kl_unit);
  }

  /// Every rank retreats identically from the same previous point.
  void retreat() {
    last_.length *= 0.5;
    last_.kl *= 0.25;
    last_.norm *= 0.5;
    move(res_.theta, last_.length);
  }

  /// \p out = theta_prev + t d.
  void move(std::vector<double>& out, double t) const {
    for (std::size_t j = 0; j < np_; ++j) out[j] = prev_theta_[j] + t * dec_.direction[j];
  }

  /// Backtracking from the first length \p t (updated to the accepted one): trials
  /// evaluated by every rank, judged by root, the verdict broadcast. \p have_sums: the
  /// accepted trial was a full pass, whose sums are theta_(k+1)'s. false: no trial
  /// accepted.
  bool line_search(double& t, bool& have_sums) {
    SearchStart start{res_.loss, res_.grad_norm, 0.0};
    if (comm_.is_root())
      for (std::size_t j = 0; j < np_; ++j) start.slope += nz_.grad[j] * dec_.direction[j];
    // The first trial is a full pass (loss, gradient, Fisher) when the last step was
    // accepted at its first trial (or this is the first step): if it is accepted, as
    // near the optimum it is, the next iteration needs no pass of its own. Otherwise
    // the trials evaluate the loss only. The rule depends only on the checkpointed
    // step length, so a resumed fit takes the same path.
    const bool fuse_first = last_.length == 0 || last_.length == t;
    for (int h = 0; h <= o_.max_halvings; ++h) {
      move(trial_, t);
      double lw[2];
      const bool full = h == 0 && fuse_first;
      if (full) {
        stop_requested_ = passes_.full(trial_);
        lw[0] = passes_.sums().buf[0];  // root's reduced sums (the other ranks' are partial)
        lw[1] = passes_.sums().buf[1];
      } else {
        passes_.loss_only(trial_, lw);
      }
      double verdict = 0;
      if (comm_.is_root()) {
        Trial trial{t, (lw[0] + penalty(o_, trial_)) / lw[1], {}};
        if (full) trial.grad_norm = [&] { return trial_grad_norm(o_, passes_.sums(), lw[1], trial_); };
        verdict = rule_->accept(start, trial) ? 1.0 : 0.0;
      }
      comm_.broadcast(&verdict, 1);
      if (verdict == 1.0) {
        have_sums = full;
        res_.theta = trial_;
        return true;
      }
      t = rule_->shrink(t);
    }
    return false;
  }

  /// After a step of length \p t along d: what history row k+1 and a checkpoint report.
  void record_step(double t) {
    last_.length = t;
    res_.last_step.resize(np_);
    for (std::size_t j = 0; j < np_; ++j) res_.last_step[j] = t * dec_.direction[j];
    last_.kl = t * t * dec_.kl_unit;
    last_.damping = dec_.damping;
    double s2 = 0;
    for (std::size_t j = 0; j < np_; ++j) s2 += (t * dec_.direction[j]) * (t * dec_.direction[j]);
    last_.norm = std::sqrt(s2);
    damping_ = o_.damping;  // a raised damping holds for one iteration only
  }

  const FitOptions& o_;
  const Communicator& comm_;
  const FitObserver& obs_;
  std::size_t np_;
  std::unique_ptr<FisherProducts> products_;  // --solver cg only
  std::unique_ptr<Direction> direction_;
  std::unique_ptr<StepLengthRule> rule_;
  ConvergenceTest stop_test_;
  DivergenceTest divergence_test_;
  Passes passes_;
  DecisionChannel channel_;
  std::function<double()> elapsed_;

  FitResult res_;
  Decision dec_;
  std::vector<double> prev_theta_, trial_;
  LastStep last_;
  int start_ = 0;
  bool stop_requested_ = false;
  double damping_ = 0;  // root: asked of the direction; raised for one iteration at most
  // Root only.
  Normalized nz_;
  std::vector<double> next_direction_;  // the direction being computed (becomes dec_.direction)
  double prev_loss_ = NAN;
  int halvings_ = 0;  // consecutive retreats
  RootAllocation oom_stage_ = RootAllocation::none;  // what decide() is allocating
};

}  // namespace

FitResult fit(const Shard& shard, const Model& model, const FitOptions& o, const Communicator& comm,
              const FitObserver& obs) {
  o.validate();
  const auto t0 = std::chrono::steady_clock::now();
  const double t_offset = o.resume ? o.resume->seconds : 0.0;  // time of the run(s) before a resume
  auto elapsed = [&] {
    return t_offset + std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  const std::int64_t p = agreed_parameters(shard, model, o, comm);
  Solver solver(shard, model, o, comm, obs, p);
  FitResult res = std::move(solver.run(elapsed));
  Normalized& nz = solver.root_sums();
  res.weight_sum = nz.weight_sum;
  comm.broadcast(&res.weight_sum, 1);
  std::int64_t nobs = shard.n_rows;
  comm.allreduce_sum(&nobs, 1);
  res.n_obs = nobs;
  if (comm.is_root()) res.fisher = std::move(nz.fisher);
  res.fisher_kind = solver.fisher_kind();
  res.fisher_products = solver.fisher_products();
  comm.broadcast(&res.fisher_products, 1);
  res.fisher_sampled = o.sample.active() && res.fisher_kind != FisherKind::none;
  res.seconds = elapsed();
  return res;
}
}  // namespace natgrad

namespace natgrad {

double global_loss(const Shard& shard, const Model& model, std::span<const double> theta,
                   const FitOptions& o, const Communicator& comm) {
  Workspace ws;
  ws.prepare(o.threads, shard.n_cols, o.block_rows, FisherKind::none, model.n_outputs(), model.n_factors(),
             shard.sparse);
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

namespace {
/// The message of every rank when rank 0 could not allocate \p count p x p matrices of
/// \p what for \p p columns.
std::string root_matrices_message(const char* what, double count, std::int64_t p) {
  const double dp = static_cast<double>(p);
  return out_of_memory_message(0, std::string(what) + " for " + std::to_string(p) + " columns", count * 8 * dp * dp);
}

/// Root's Gram of one pass (see start_system), unscaled. Returns false on root when its
/// p x p Gram could not be allocated: the caller carries that to every rank in its next
/// broadcast.
bool start_sums(const Shard& shard, const Model& model, const FitOptions& options, const FisherSample& sample,
                const Communicator& comm, StartSystem& sys) {
  Workspace ws;
  ws.fisher_precision = sys.rounded ? FisherPrecision::float32 : FisherPrecision::float64;
  PackedSums sums;
  prepare_collectively(ws, sums, comm, options.threads, shard.n_cols, options.block_rows, FisherKind::expected, 1, 1,
                       shard.sparse);
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
    try {
      Normalized nz;
      finalize(sums, nz);
      sys.gram = std::move(nz.fisher);
      sys.weight_sum = nz.weight_sum;
      if (model.n_outputs() == 1) {
        sys.rhs = std::move(nz.grad);
        for (double& v : sys.rhs) v = -v;
      }
    } catch (const std::bad_alloc&) {
      return false;
    }
  }
  return true;
}

/// A Gram diagonal entry whose square-root scale is near the ends of the double range:
/// the products x_ij x_ik under- or overflowed (0 for a column of 1e-300s).
bool extreme_scale(double g) { return !(g > 0x1p-900 && g < 0x1p+900); }
}  // namespace

StartSystem start_system(const Shard& shard, const Model& model, const FitOptions& options,
                         const Communicator& comm, bool sampled, bool rounded) {
  StartSystem sys;
  sys.p = shard.n_cols;
  sys.rounded = rounded;
  sys.sampled = sampled && options.sample.active();
  const FisherSample sample = sys.sampled ? options.sample : FisherSample{};
  constexpr const char* kGram = "the start system's p x p Gram matrix";
  const bool ok = start_sums(shard, model, options, sample, comm, sys);
  // Columns so small (or large) that their squares leave the double range: a second pass
  // on the columns scaled by powers of two (exact), so that the collinearity check and the
  // start see them as they are, not as "all zero". Only then is X scanned and copied.
  // -1: root could not allocate the Gram.
  std::int64_t rescale = ok ? 0 : -1;
  if (comm.is_root() && ok)
    for (std::int64_t j = 0; j < sys.p; ++j) rescale |= extreme_scale(sys.gram[static_cast<std::size_t>(j + j * sys.p)]) ? 1 : 0;
  comm.broadcast(&rescale, 1);
  if (rescale < 0) throw CollectiveError(root_matrices_message(kGram, 1, sys.p));
  if (rescale == 0) return sys;
  constexpr std::int64_t kNone = -100000;  // a column of zeros (and non-finite values) keeps its scale
  std::vector<std::int64_t> ex(static_cast<std::size_t>(sys.p), kNone);
  for (std::int64_t i = 0; i < shard.n_rows; ++i)
    shard.for_each_nonzero(i, [&](std::int64_t j, double v) {
      if (v == 0 || !std::isfinite(v)) return;
      int e = 0;
      (void)std::frexp(v, &e);
      ex[static_cast<std::size_t>(j)] = std::max<std::int64_t>(ex[static_cast<std::size_t>(j)], e);
    });
  comm.allreduce_max(ex.data(), ex.size());
  sys.scale.assign(static_cast<std::size_t>(sys.p), 1.0);
  for (std::int64_t j = 0; j < sys.p; ++j) {
    const std::int64_t e = ex[static_cast<std::size_t>(j)];
    if (e != kNone && (e < -400 || e > 400)) sys.scale[static_cast<std::size_t>(j)] = std::ldexp(1.0, static_cast<int>(-e));
  }
  Shard scaled;
  std::string err;
  try {
    scaled = shard;
  } catch (const std::bad_alloc&) {
    err = out_of_memory_message(comm.rank(), "a scaled copy of this rank's rows", static_cast<double>(shard.bytes()));
  }
  comm.check(err.empty(), err);
  if (scaled.sparse) {
    std::vector<double>& v = scaled.csr.values;
    for (std::int64_t k = 0; k < std::ssize(v); ++k)
      v[static_cast<std::size_t>(k)] *= sys.scale[static_cast<std::size_t>(scaled.csr.index(k))];
  } else {
    for (std::int64_t i = 0; i < scaled.n_rows; ++i)
      for (std::int64_t j = 0; j < sys.p; ++j)
        scaled.x[static_cast<std::size_t>(i * sys.p + j)] *= sys.scale[static_cast<std::size_t>(j)];
  }
  sys.gram.clear();
  sys.rhs.clear();
  std::int64_t status = start_sums(scaled, model, options, sample, comm, sys) ? 0 : -1;
  comm.broadcast(&status, 1);
  if (status < 0) throw CollectiveError(root_matrices_message(kGram, 1, sys.p));
  return sys;
}

std::vector<std::int64_t> dependent_columns(const StartSystem& sys, double tol, const Communicator& comm) {
  std::vector<std::int64_t> dep;
  std::int64_t n = 0;
  if (comm.is_root()) {
    try {
      dep = dependent_columns(sys.gram, sys.p, tol);
      n = static_cast<std::int64_t>(dep.size());
    } catch (const std::bad_alloc&) {
      n = -1;  // every rank stops with root's message
    }
  }
  comm.broadcast(&n, 1);
  if (n < 0)
    throw CollectiveError(root_matrices_message("the collinearity check's work matrices (3 of p x p)", 3, sys.p));
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
  // One more entry, the status: -1 when root could not allocate its matrices.
  theta.push_back(0.0);
  const std::span<double> x(theta.data(), static_cast<std::size_t>(q));
  if (comm.is_root()) try {
    std::vector<double> A(static_cast<std::size_t>(q * q)), b(static_cast<std::size_t>(q)), factor;
    for (std::int64_t c = 0; c < q; ++c) {
      b[static_cast<std::size_t>(c)] = sys.rhs[static_cast<std::size_t>(keep[static_cast<std::size_t>(c)])];
      for (std::int64_t r = 0; r < q; ++r)
        A[static_cast<std::size_t>(r + c * q)] =
            sys.gram[static_cast<std::size_t>(keep[static_cast<std::size_t>(r)] + keep[static_cast<std::size_t>(c)] * sys.p)];
    }
    // R's first IRLS step of the penalised objective: the ridge l2/W on the penalised
    // columns' diagonal (the Gram is X^T W0 X / W), in the scaled columns' units
    // (theta_j = theta'_j s_j: l2 theta_j^2 = l2 s_j^2 theta'_j^2). It makes the system
    // positive definite when only penalised columns are linearly dependent.
    if (options.l2 > 0 && sys.weight_sum > 0)
      for (std::int64_t c = 0; c < q; ++c) {
        const auto k = static_cast<std::size_t>(keep[static_cast<std::size_t>(c)]);
        if (!options.penalized.empty() && !options.penalized[static_cast<std::size_t>(c)]) continue;
        const double s = sys.scale.empty() ? 1.0 : sys.scale[k];
        A[static_cast<std::size_t>(c + c * q)] += options.l2 * s * s / sys.weight_sum;
      }
    const DampedSolve ds = damped_cholesky_solve(A, q, b, options.damping, x, factor);
    if (!sys.scale.empty())  // the system of the scaled columns x_j s_j: theta_j = theta'_j s_j
      for (std::int64_t c = 0; c < q; ++c)
        x[static_cast<std::size_t>(c)] *= sys.scale[static_cast<std::size_t>(keep[static_cast<std::size_t>(c)])];
    if (!ds.ok || !std::all_of(x.begin(), x.end(), [](double v) { return std::isfinite(v); }))
      std::fill(x.begin(), x.end(), 0.0);
  } catch (const std::bad_alloc&) {
    theta.back() = -1;
  }
  comm.broadcast(theta.data(), theta.size());
  if (theta.back() < 0)
    throw CollectiveError(root_matrices_message("the starting values' work matrices (3 of p x p)", 3, q));
  theta.pop_back();
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
