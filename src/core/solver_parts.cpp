#include "core/solver_parts.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

#include "natgrad/core/error.hpp"
#include "natgrad/core/linalg.hpp"
#include "natgrad/core/memory.hpp"

namespace natgrad {

// ---- directions ----

DirectionOutcome CholeskyDirection::compute(const Normalized& nz, double damping, int iter,
                                            const std::function<void(const std::string&)>& log,
                                            std::span<double> d) {
  const std::int64_t p = std::ssize(d);
  DirectionOutcome out{Reason::running, damping, 0.0};
  const DampedSolve s = damped_cholesky_solve(nz.fisher, p, nz.grad, damping, d, factor_);
  if (s.attempts > 1 && log) {
    std::ostringstream m;
    m << "iteration " << iter << ": Cholesky of F + " << damping << " I failed; damping raised to " << s.damping
      << (s.ok ? "" : " without success") << " after " << s.attempts << " attempts";
    log(m.str());
  }
  if (!s.ok) {
    out.status = Reason::singular_fisher;
    return out;
  }
  out.damping = s.damping;
  double gx = 0;  // g^T (F + lambda S)^-1 g
  for (std::int64_t j = 0; j < p; ++j) gx += nz.grad[static_cast<std::size_t>(j)] * d[j];
  if (s.damping == std::max(damping, 0.0)) out.decrement = std::sqrt(std::max(gx, 0.0));
  for (double& v : d) v = -v;
  Fd_.resize(static_cast<std::size_t>(p));
  symv(nz.fisher, p, d, Fd_);
  double q = 0;
  for (std::int64_t j = 0; j < p; ++j) q += d[j] * Fd_[j];
  out.kl_unit = 0.5 * q;
  return out;
}

DirectionOutcome DiagonalDirection::compute(const Normalized& nz, double damping, int,
                                            const std::function<void(const std::string&)>&, std::span<double> d) {
  const auto& g = nz.grad;
  const auto& F = nz.fisher;
  DirectionOutcome out{Reason::running, damping, 0.0};
  // Scale-invariant: a column scaled by s has F_jj scaled by s^2 and g_j by s, so d_j
  // scales by 1/s whatever the other columns are (no floor relative to max_j F_jj).
  const double relative = 1 + std::max(damping, 0.0);
  double gx = 0;
  for (std::size_t j = 0; j < d.size(); ++j) {
    const double h = F[j] * relative;
    d[j] = F[j] > 0 && std::isfinite(h) ? -g[j] / h : 0.0;
    if (!std::isfinite(d[j])) d[j] = 0.0;
    out.kl_unit += 0.5 * F[j] * d[j] * d[j];
    gx -= g[j] * d[j];
  }
  out.decrement = std::sqrt(std::max(gx, 0.0));
  return out;
}

DirectionOutcome GradientDirection::compute(const Normalized& nz, double damping, int,
                                            const std::function<void(const std::string&)>&, std::span<double> d) {
  for (std::size_t j = 0; j < d.size(); ++j) d[j] = -nz.grad[j];
  return {Reason::running, damping, 0.0};
}

std::unique_ptr<Direction> make_direction(const FitOptions& o) {
  switch (o.method) {
    case Method::ngd: return std::make_unique<CholeskyDirection>(o.fisher);
    case Method::diag: return std::make_unique<DiagonalDirection>();
    case Method::gd: return std::make_unique<GradientDirection>();
  }
  return std::make_unique<GradientDirection>();
}

// ---- step-length rules ----

bool ArmijoStep::accept(const SearchStart& s, const Trial& x) const {
  if (!std::isfinite(x.loss)) return false;
  // Armijo, with an allowance of a few ulps of the loss: near the optimum the predicted
  // decrease falls below the loss's rounding and could never be seen.
  const double noise = 16 * std::numeric_limits<double>::epsilon() * std::abs(s.loss);
  if (x.loss <= s.loss + c1_ * x.t * s.slope + noise) return true;
  // At the rounding floor of the loss (a sum over all rows, relative error up to ~1e-13
  // at 1e6 rows) Armijo cannot see a decrease; a full trial then also accepts a step
  // whose loss is level to 1e-12 and whose gradient max-norm falls.
  return x.grad_norm && x.loss - s.loss <= 1e-12 * std::abs(s.loss) && x.grad_norm() < s.grad_norm;
}

double KlStep::initial(double kl_unit) const {
  return kl_unit > 0 ? std::min(lr_, std::sqrt(radius_ / kl_unit)) : lr_;
}

std::unique_ptr<StepLengthRule> make_step_rule(const FitOptions& o) {
  switch (o.step) {
    case StepRule::fixed: return std::make_unique<FixedStep>(o.lr);
    case StepRule::armijo: return std::make_unique<ArmijoStep>(o.lr, o.armijo_c1);
    case StepRule::kl: return std::make_unique<KlStep>(o.lr, o.armijo_c1, o.kl);
  }
  return std::make_unique<ArmijoStep>(o.lr, o.armijo_c1);
}

// ---- stopping test ----

Reason ConvergenceTest::check(int k, double loss, double prev_loss, double grad_norm, double decrement) const {
  // The decrement rule: 0.5 g^T F^-1 g, the decrease of the mean loss a full step predicts,
  // at most tol^2 (NaN: not available at this iterate).
  if (rule == StopRule::gradient ? grad_norm <= tol : 0.5 * decrement * decrement <= tol * tol)
    return rule == StopRule::gradient ? Reason::converged_gradient : Reason::converged_decrement;
  if (k > 0 && ftol > 0 && std::abs(loss - prev_loss) <= ftol * std::max(1.0, std::abs(loss)))
    return Reason::converged_loss;
  if (k >= max_iter) return Reason::max_iterations;
  return Reason::running;
}

// ---- decision ----

void Decision::set_status(Reason status) {
  reason = status;
  action = status == Reason::running ? Action::proceed : Action::stop;
}

std::string root_out_of_memory_message(RootAllocation what, double bytes, std::size_t p) {
  const char* name = what == RootAllocation::fisher      ? "the normalised p x p Fisher"
                     : what == RootAllocation::direction ? "the direction's work matrices (the equilibrated "
                                                           "Fisher and its Cholesky factor)"
                                                         : "the iteration's records (history, checkpoint state)";
  return out_of_memory_message(0, name + std::string(" for ") + std::to_string(p) + " parameters", bytes);
}



void DecisionChannel::encode(const Decision& dec) {
  if (dec.oom_what != 0) {
    msg_[0] = kOutOfMemoryCode;
    msg_[1] = dec.oom_bytes;
    msg_[2] = dec.oom_what;
    return;
  }
  msg_[0] = dec.action == Decision::Action::halve ? double{kHalveCode}
            : dec.action == Decision::Action::stop ? static_cast<double>(static_cast<int>(dec.reason))
                                                   : 0.0;
  msg_[1] = dec.step;
  msg_[2] = dec.damping;
  msg_[3] = dec.kl_unit;
  msg_[4] = dec.loss;
  msg_[5] = dec.grad_norm;
  std::copy(dec.direction.begin(), dec.direction.end(), msg_.begin() + kHeader);
}

void DecisionChannel::decode(Decision& dec) const {
  const int code = static_cast<int>(msg_[0]);
  if (code == kOutOfMemoryCode)
    throw CollectiveError(root_out_of_memory_message(static_cast<RootAllocation>(static_cast<int>(msg_[2])), msg_[1],
                                                     msg_.size() - kHeader));
  dec.action = code == kHalveCode ? Decision::Action::halve
               : code != 0        ? Decision::Action::stop
                                  : Decision::Action::proceed;
  dec.reason = dec.action == Decision::Action::stop ? static_cast<Reason>(code) : Reason::running;
  dec.step = msg_[1];
  dec.damping = msg_[2];
  dec.kl_unit = msg_[3];
  dec.loss = msg_[4];
  dec.grad_norm = msg_[5];
  if (dec.action == Decision::Action::proceed) {
    dec.direction.resize(msg_.size() - kHeader);
    std::copy(msg_.begin() + kHeader, msg_.end(), dec.direction.begin());
  }
}

void DecisionChannel::share(Decision& dec, const Communicator& comm) {
  if (comm.is_root()) encode(dec);
  comm.broadcast(msg_.data(), msg_.size());
  decode(dec);
}

// ---- divergence test ----

bool DivergenceTest::diverged(double loss0, double loss) const {
  return loss - loss0 > kGrowth * std::max(std::abs(loss0), 1.0);
}

}  // namespace natgrad
