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

// ---- matrix-free: Fisher-vector products and the conjugate gradient ----

FisherProducts::FisherProducts(const Shard& shard, const Model& model, const FitOptions& o, FisherKind kind,
                               const Communicator& comm, std::size_t p)
    : shard_(shard), model_(model), o_(o), kind_(kind), comm_(comm), msg_(p + 1, 0.0) {}

void FisherProducts::at(std::span<const double> theta) {
  theta_ = theta;
  prepared_ = false;
}

void FisherProducts::local(std::span<const double> v, std::span<double> out) {
  if (!prepared_) {
    op_.prepare(shard_, model_, theta_, kind_, o_.sample, o_.threads);
    prepared_ = true;
  }
  op_.apply(shard_, v, out, o_.threads);
}

void FisherProducts::product(std::span<const double> v, std::span<double> out) {
  msg_[0] = 1;
  std::copy(v.begin(), v.end(), msg_.begin() + 1);
  comm_.broadcast(msg_.data(), msg_.size());
  local(v, out);
  comm_.reduce_sum(out.data(), out.size());
  ++count_;
}

void FisherProducts::release() {
  if (comm_.size() == 1) return;
  msg_[0] = 0;
  comm_.broadcast(msg_.data(), msg_.size());  // the same message size as a product's
}

void FisherProducts::serve() {
  std::vector<double> out(msg_.size() - 1);
  for (;;) {
    comm_.broadcast(msg_.data(), msg_.size());
    if (msg_[0] == 0) return;
    local(std::span<const double>(msg_).subspan(1), out);
    comm_.reduce_sum(out.data(), out.size());
  }
}

DirectionOutcome CgDirection::compute(const Normalized& nz, double damping, int iter,
                                      const std::function<void(const std::string&)>& log, std::span<double> d) {
  const std::size_t p = d.size();
  const auto& g = nz.grad;
  const auto& S = nz.fisher;  // diagonal of F, penalty included
  const double lambda = std::max(damping, 0.0);
  const double W = nz.fisher_weight > 0 ? nz.fisher_weight : nz.weight_sum;
  // The ridge term's curvature l2 / W on the penalised diagonal (the products are the data's).
  const double ridge = o_.l2 > 0 ? o_.l2 / nz.weight_sum : 0.0;
  auto penalised = [&](std::size_t j) { return o_.penalized.empty() || o_.penalized[j] != 0; };
  r_.resize(p);
  z_.resize(p);
  q_.resize(p);
  dir_.resize(p);
  prod_.resize(p);
  // Jacobi preconditioner: S, 1 on columns without curvature (there g_j = 0 as well).
  auto precond = [&](std::size_t j) {
    const double s = S[j] * (1 + lambda);
    return s > 0 && std::isfinite(s) ? s : 1.0;
  };
  // A v = F v + lambda S v, F v = (sum of the ranks' products) / W + ridge v.
  auto apply = [&](const std::vector<double>& v, std::vector<double>& out) {
    products_.product(v, out);
    for (std::size_t j = 0; j < p; ++j) {
      double a = out[j] / W;
      if (ridge > 0 && penalised(j)) a += ridge * v[j];
      out[j] = a + lambda * S[j] * v[j];
    }
  };
  double gmg = 0;
  for (std::size_t j = 0; j < p; ++j) gmg += g[j] * g[j] / precond(j);
  const double eta = std::min(o_.cg_tol, std::sqrt(std::sqrt(gmg)));
  const double goal = eta * eta * gmg;
  std::fill(d.begin(), d.end(), 0.0);
  double rz = 0;
  for (std::size_t j = 0; j < p; ++j) {
    r_[j] = -g[j];
    z_[j] = r_[j] / precond(j);
    dir_[j] = z_[j];
    rz += r_[j] * z_[j];
  }
  iterations_ = 0;
  boundary_ = false;
  bool truncated = false;
  // --step kl: Steihaug-Toint truncation at the trust region 0.5 d^T A d <= --kl (the
  // model KL). d_j^T A d_j = -g^T d_j grows monotonically along the CG iterates, so the
  // first iterate past the boundary is replaced by the boundary point on its segment.
  const bool trust = o_.step == StepRule::kl;
  double dad = 0;  // d^T A d of the current iterate
  while (rz > goal && iterations_ < o_.cg_max_iter) {
    apply(dir_, q_);
    double pq = 0, dq = 0;
    for (std::size_t j = 0; j < p; ++j) {
      pq += dir_[j] * q_[j];
      dq += d[j] * q_[j];
    }
    ++iterations_;
    if (!(pq > 0) || !std::isfinite(pq)) {  // no positive curvature along dir: stop here
      if (iterations_ == 1) std::copy(z_.begin(), z_.end(), d.begin());
      truncated = true;
      break;
    }
    const double alpha = rz / pq;
    const double dad_next = dad + 2 * alpha * dq + alpha * alpha * pq;
    if (trust && 0.5 * dad_next > o_.kl) {
      // tau in (0, alpha]: 0.5 (dad + 2 tau dq + tau^2 pq) = kl.
      const double tau = (-dq + std::sqrt(std::max(dq * dq + pq * (2 * o_.kl - dad), 0.0))) / pq;
      for (std::size_t j = 0; j < p; ++j) d[j] += tau * dir_[j];
      boundary_ = true;
      break;
    }
    dad = dad_next;
    double rz_new = 0;
    for (std::size_t j = 0; j < p; ++j) {
      d[j] += alpha * dir_[j];
      r_[j] -= alpha * q_[j];
      z_[j] = r_[j] / precond(j);
      rz_new += r_[j] * z_[j];
    }
    const double beta = rz_new / rz;
    rz = rz_new;
    for (std::size_t j = 0; j < p; ++j) dir_[j] = z_[j] + beta * dir_[j];
  }
  if (log && (truncated || (!boundary_ && rz > goal && iterations_ >= o_.cg_max_iter))) {
    std::ostringstream m;
    m << "iteration " << iter << ": conjugate gradient "
      << (truncated ? "met a direction without positive curvature" : "reached --cg-max-iter") << " after "
      << iterations_ << " products (relative residual " << std::sqrt(rz / std::max(gmg, 1e-300)) << ")";
    log(m.str());
  }
  DirectionOutcome out{Reason::running, lambda, 0.0};
  double gd = 0, dsd = 0;
  for (std::size_t j = 0; j < p; ++j) {
    gd += g[j] * d[j];
    dsd += S[j] * d[j] * d[j];
  }
  if (!std::isfinite(gd)) {
    out.status = Reason::singular_fisher;
    return out;
  }
  if (boundary_) {
    // A truncated step: d^T A d = 2 kl exactly; -g^T d understates the decrement.
    out.kl_unit = std::max(o_.kl - 0.5 * lambda * dsd, 0.0);
    return out;  // decrement NaN: never "converged" on a step cut by the trust region
  }
  out.decrement = std::sqrt(std::max(-gd, 0.0));
  out.kl_unit = 0.5 * std::max(-gd - lambda * dsd, 0.0);
  return out;
}

bool matrix_free(const FitOptions& o, std::int64_t n_params, bool sparse) {
  return o.method == Method::ngd && resolved_solver(o, n_params, sparse) == LinearSolver::cg;
}

std::unique_ptr<Direction> make_direction(const FitOptions& o, std::int64_t n_params, FisherProducts* products,
                                          bool sparse) {
  switch (o.method) {
    case Method::ngd:
      if (matrix_free(o, n_params, sparse)) {
        if (products == nullptr) throw Error("--solver cg needs the Fisher-vector products (internal)");
        return std::make_unique<CgDirection>(*products, o);
      }
      return std::make_unique<CholeskyDirection>(o.fisher);
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
