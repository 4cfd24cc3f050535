#pragma once
/// \file solver_parts.hpp (private: not installed)
/// The named parts of fit() (src/core/solver.cpp), none of them collective:
///
///   Direction        d from the reduced, normalised sums at theta_k (root only):
///                    CholeskyDirection (--method ngd), DiagonalDirection (diag),
///                    GradientDirection (gd). Also names the Fisher kind the pass must
///                    accumulate for it.
///   StepLengthRule   the first trial length along d, whether to backtrack, and the
///                    acceptance test of a trial: FixedStep, ArmijoStep, KlStep.
///   ConvergenceTest  the stopping test at a finite iterate: gradient max-norm, relative
///                    loss change, iteration limit.
///   Decision         what root broadcasts each iteration (proceed / halve / stop, with
///                    the step length, damping, model KL, loss, gradient norm and d),
///                    encoded to and decoded from the one message in one place.
///
/// Every direction shares the per-row numbers of the model, the one reduction of the
/// packed sums, the step rules and the stopping test; a new one is another Direction and
/// a line in make_direction(), with no edit to the others. Directions are root-only: a
/// conjugate gradient on the reduced Fisher fits as it is; a matrix-free one, whose
/// Fisher-vector products are passes over every rank's rows, needs in addition a
/// collective phase in Solver::run (root broadcasts "compute a direction", every rank
/// joins the products), which the Cholesky, diagonal and gradient directions never enter.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/fisher_vector.hpp"
#include "core/kernels.hpp"
#include "natgrad/core/communicator.hpp"
#include "natgrad/core/fit_options.hpp"
#include "natgrad/core/solver.hpp"

namespace natgrad {

// ---------------------------------------------------------------------------------------
// Directions

/// What a direction reports besides d.
struct DirectionOutcome {
  Reason status = Reason::running;  ///< running, or why no direction exists (singular_fisher)
  double damping = 0;               ///< damping actually used (the input one unless raised)
  double kl_unit = 0;               ///< model KL per unit step, 0.5 d^T F d (0 when unknown)
  /// The Newton decrement sqrt(g^T M^-1 g) in the direction's metric M (F + damping S),
  /// from the solve itself; NaN when there is none (no metric) or the damping had to be
  /// raised (the raised metric would understate it).
  double decrement = std::numeric_limits<double>::quiet_NaN();
};

/// A search direction from the normalised sums (loss, gradient, Fisher of the kind
/// fisher_kind()) at the current iterate. Root only, local: no collective.
class Direction {
 public:
  virtual ~Direction() = default;
  /// The Fisher the per-iteration pass must accumulate for this direction.
  virtual FisherKind fisher_kind() const = 0;
  /// Writes d (p = nz.grad.size() values) for the sums \p nz with the damping \p damping
  /// asked for. \p log (may be empty) receives notes such as a raised damping, prefixed
  /// with the iteration \p iter. When the status is not running, d holds whatever the
  /// attempt left in it.
  virtual DirectionOutcome compute(const Normalized& nz, double damping, int iter,
                                   const std::function<void(const std::string&)>& log,
                                   std::span<double> d) = 0;
};

/// --method ngd: d = -(F + lambda S)^{-1} g, S = diag(F), by damped Cholesky of the
/// equilibrated Fisher (damped_cholesky_solve), the damping raised until the factorisation
/// succeeds; KL 0.5 d^T F d by dsymv; decrement sqrt(-g^T d).
class CholeskyDirection final : public Direction {
 public:
  explicit CholeskyDirection(FisherKind kind) : kind_(kind) {}
  FisherKind fisher_kind() const override { return kind_; }
  DirectionOutcome compute(const Normalized& nz, double damping, int iter,
                           const std::function<void(const std::string&)>& log, std::span<double> d) override;

 private:
  FisherKind kind_;
  std::vector<double> factor_, Fd_;  // scratch, reused across iterations
};

/// --method diag: d_j = -g_j / ((1 + lambda) F_jj), 0 where F_jj is not positive (a column
/// with no curvature: the same at any scaling of the other columns); KL sum_j 0.5 F_jj d_j^2;
/// decrement sqrt(-g^T d).
class DiagonalDirection final : public Direction {
 public:
  FisherKind fisher_kind() const override { return FisherKind::diagonal; }
  DirectionOutcome compute(const Normalized& nz, double damping, int iter,
                           const std::function<void(const std::string&)>& log, std::span<double> d) override;
};

/// --method gd: d = -g, no Fisher, KL 0 (the KL step rule then uses lr).
class GradientDirection final : public Direction {
 public:
  FisherKind fisher_kind() const override { return FisherKind::none; }
  DirectionOutcome compute(const Normalized& nz, double damping, int iter,
                           const std::function<void(const std::string&)>& log, std::span<double> d) override;
};

/// The collective Fisher-vector products a matrix-free direction asks for. Root drives:
/// product() broadcasts v, every rank applies its FisherOperator to its own rows, and the
/// sums are reduced onto root (one broadcast and one reduction of p doubles each). The
/// other ranks wait in serve() meanwhile, which returns when root calls release(). The
/// per-row curvature is evaluated lazily, at the first product after at(), so an
/// iteration that needs no direction costs no pass.
class FisherProducts {
 public:
  FisherProducts(const Shard& shard, const Model& model, const FitOptions& o, FisherKind kind,
                 const Communicator& comm, std::size_t p);
  /// Every rank, before each decision: the point the next products are taken at (kept by
  /// reference: it must stay alive and unchanged until release() / serve() returns).
  void at(std::span<const double> theta);
  /// Root: \p out = sum over every rank's rows of x_i (x) C_i (x_i (x) I)^T v, unnormalised.
  void product(std::span<const double> v, std::span<double> out);
  /// Root: ends the other ranks' serve(). Call once after every decision.
  void release();
  /// Other ranks: joins root's products until release().
  void serve();
  /// Products taken since construction (root).
  std::int64_t count() const { return count_; }

 private:
  void local(std::span<const double> v, std::span<double> out);
  const Shard& shard_;
  const Model& model_;
  const FitOptions& o_;
  FisherKind kind_;
  const Communicator& comm_;
  FisherOperator op_;
  std::span<const double> theta_;
  bool prepared_ = false;
  std::vector<double> msg_;  // [command, v]
  std::int64_t count_ = 0;
};

/// --method ngd --solver cg: d approximately solves (F + lambda S) d = -g, S = diag(F), by
/// the conjugate gradient preconditioned with S (Jacobi), on Fisher-vector products
/// (FisherProducts): nothing p x p is formed. An inexact Newton step: CG stops when the
/// preconditioned residual r^T S^-1 r is at most eta^2 g^T S^-1 g, with the forcing term
/// eta = min(cg_tol, (g^T S^-1 g)^(1/4)) (superlinear near the optimum), after
/// cg_max_iter iterations, or at a direction of non-positive curvature (truncation:
/// the last iterate, or the preconditioned gradient at the first). Every quantity is
/// scale-invariant, as the Cholesky direction's. KL 0.5 d^T F d = 0.5 (-g^T d -
/// lambda d^T S d) (CG's residual is orthogonal to d); decrement sqrt(-g^T d). The pass
/// accumulates the Fisher's diagonal only (the preconditioner). Under --step kl the CG is
/// truncated at the trust region 0.5 d^T (F + lambda S) d <= --kl (Steihaug-Toint, in the
/// Fisher metric), so a step the KL rule would shorten costs fewer products.
class CgDirection final : public Direction {
 public:
  CgDirection(FisherProducts& products, const FitOptions& o) : products_(products), o_(o) {}
  FisherKind fisher_kind() const override { return FisherKind::diagonal; }
  DirectionOutcome compute(const Normalized& nz, double damping, int iter,
                           const std::function<void(const std::string&)>& log, std::span<double> d) override;
  /// CG iterations of the last compute().
  int iterations() const { return iterations_; }

 private:
  FisherProducts& products_;
  const FitOptions& o_;
  std::vector<double> r_, z_, q_, dir_, prod_;  // scratch
  int iterations_ = 0;
  bool boundary_ = false;  // the last step was cut at the --step kl trust region
};

/// The direction of FitOptions::method (and solver, resolved for \p n_params parameters);
/// \p products must be given when that is --solver cg.
std::unique_ptr<Direction> make_direction(const FitOptions& o, std::int64_t n_params = 0,
                                          FisherProducts* products = nullptr, bool sparse = false);
/// Whether the direction of \p o for \p n_params parameters of dense or CSR (\p sparse)
/// rows is matrix-free (needs FisherProducts).
bool matrix_free(const FitOptions& o, std::int64_t n_params, bool sparse = false);

// ---------------------------------------------------------------------------------------
// Step-length rules

/// The start of a line search: mean loss and gradient max-norm at theta_k, slope g^T d.
struct SearchStart {
  double loss = 0, grad_norm = 0, slope = 0;
};

/// One trial theta_k + t d.
struct Trial {
  double t = 0;     ///< its step length
  double loss = 0;  ///< mean loss at it (penalty included)
  /// Gradient max-norm at it: only for a full trial (one whose pass also formed the
  /// gradient), else empty. Called only when the rule needs it.
  std::function<double()> grad_norm;
};

/// How far to go along d. Root only, local: the solver runs the trials (collective
/// passes) and broadcasts each verdict.
class StepLengthRule {
 public:
  virtual ~StepLengthRule() = default;
  /// The first trial length, given the model KL per unit step 0.5 d^T F d.
  virtual double initial(double kl_unit) const = 0;
  /// false: take the first length without evaluating it (no trials).
  virtual bool backtracks() const = 0;
  /// Whether \p trial is accepted (backtracking rules only).
  virtual bool accept(const SearchStart& start, const Trial& trial) const = 0;
  /// The next trial length after \p t was rejected.
  double shrink(double t) const { return t * 0.5; }
};

/// --step fixed: t = lr, taken as it is.
class FixedStep final : public StepLengthRule {
 public:
  explicit FixedStep(double lr) : lr_(lr) {}
  double initial(double) const override { return lr_; }
  bool backtracks() const override { return false; }
  bool accept(const SearchStart&, const Trial&) const override { return true; }

 private:
  double lr_;
};

/// --step armijo: first trial lr, halved until the Armijo condition
/// f(t) <= f(0) + c1 t g^T d holds (with an allowance of 16 ulps of f(0)); at the loss's
/// rounding floor a full trial whose loss is level to 1e-12 and whose gradient max-norm
/// falls is accepted too.
class ArmijoStep : public StepLengthRule {
 public:
  ArmijoStep(double lr, double c1) : lr_(lr), c1_(c1) {}
  double initial(double) const override { return lr_; }
  bool backtracks() const override { return true; }
  bool accept(const SearchStart& start, const Trial& trial) const override;

 protected:
  double lr_, c1_;
};

/// --step kl: first trial min(lr, sqrt(c / kl_unit)), so that the model KL of the step
/// t^2 kl_unit is at most c (lr when kl_unit is 0); then as ArmijoStep.
class KlStep final : public ArmijoStep {
 public:
  KlStep(double lr, double c1, double radius) : ArmijoStep(lr, c1), radius_(radius) {}
  double initial(double kl_unit) const override;

 private:
  double radius_;
};

/// The rule of FitOptions::step.
std::unique_ptr<StepLengthRule> make_step_rule(const FitOptions& o);

// ---------------------------------------------------------------------------------------
// Stopping test

/// At a finite iterate k, in order: with the gradient rule, converged_gradient when
/// max |g| <= tol; with the decrement rule, converged_decrement when half the square of
/// the direction's Newton decrement, 0.5 g^T F^-1 g (the decrease of the mean loss that a
/// full step predicts), is <= tol^2 (NaN: not available at this iterate); then converged_loss
/// when k > 0, ftol > 0 and |f - f_prev| <= ftol max(1, |f|); then max_iterations when
/// k >= max_iter; else running. --method gd has no metric: the gradient rule.
struct ConvergenceTest {
  StopRule rule = StopRule::gradient;
  double tol = 0, ftol = 0;
  int max_iter = 0;
  ConvergenceTest() = default;
  explicit ConvergenceTest(const FitOptions& o)
      : rule(o.method == Method::gd ? StopRule::gradient : o.stop), tol(o.tol), ftol(o.ftol), max_iter(o.max_iter) {}
  /// Whether check() needs the decrement, i.e. the direction at this iterate.
  bool needs_decrement() const { return rule == StopRule::decrement; }
  Reason check(int k, double loss, double prev_loss, double grad_norm,
               double decrement = std::numeric_limits<double>::quiet_NaN()) const;
};

// ---------------------------------------------------------------------------------------
// The per-iteration decision

/// What every rank does after root has looked at theta_k.
struct Decision {
  enum class Action {
    proceed,  ///< step along direction with first trial length step
    halve,    ///< retreat: half the last step from the previous iterate (not an iteration)
    stop,     ///< leave the loop with reason
  };
  Action action = Action::proceed;
  Reason reason = Reason::running;  ///< running unless action is stop
  double step = 0;                  ///< first trial length (proceed), else 0
  double damping = 0;               ///< damping the direction used
  double kl_unit = 0;               ///< 0.5 d^T F d
  double loss = 0;                  ///< mean loss at theta_k
  double grad_norm = 0;             ///< max |gradient| at theta_k
  std::vector<double> direction;    ///< d (p); replaced only by a proceed decision
  /// Root ran out of memory while deciding (a std::bad_alloc in Solver::decide): what it
  /// could not allocate (RootAllocation) and about how many bytes; 0 = no failure.
  int oom_what = 0;
  double oom_bytes = 0;

  /// Root: proceed when \p status is running, else stop with it.
  void set_status(Reason status);
};

/// What rank 0 allocates while deciding an iteration, named in the out-of-memory message.
enum class RootAllocation {
  none = 0,
  fisher = 1,     ///< the normalised p x p Fisher (finalize, penalty)
  direction = 2,  ///< the direction's work matrices (the Cholesky's equilibrated copy and factor)
  records = 3,    ///< the iteration's records: history row, observers, checkpoint state
};

/// The one message every rank throws when rank 0 could not allocate \p what (about
/// \p bytes) for a fit with \p p parameters: names it, its size in GiB, and where the
/// memory admission is described.
std::string root_out_of_memory_message(RootAllocation what, double bytes, std::size_t p);

/// The broadcast of a Decision: [code, step, damping, kl_unit, loss, grad_norm] + d,
/// code = the Reason (0 = proceed), kHalveCode, or kOutOfMemoryCode (then step holds the
/// bytes and damping the RootAllocation). Collective.
class DecisionChannel {
 public:
  static constexpr std::size_t kHeader = 6;
  static constexpr int kHalveCode = 100;
  static constexpr int kOutOfMemoryCode = 101;
  explicit DecisionChannel(std::size_t p) : msg_(kHeader + p, 0.0) {}
  /// Root encodes \p dec, broadcasts, and every rank decodes into \p dec; the direction
  /// is taken from the message on a proceed decision only. An out-of-memory decision
  /// (Decision::oom_what set on root) makes every rank throw CollectiveError with
  /// root_out_of_memory_message(): one message on rank 0, every rank exits non-zero.
  void share(Decision& dec, const Communicator& comm);
  void encode(const Decision& dec);
  void decode(Decision& dec) const;
  std::span<double> message() { return msg_; }

 private:
  std::vector<double> msg_;
};

// ---------------------------------------------------------------------------------------
// Divergence test

/// At a finite iterate the fit keeps (not one it retreats from): diverged when the loss
/// has grown more than kGrowth max(|f_0|, 1) above the loss f_0 of the first iterate
/// (history row 0, so a resumed fit compares with the same start). The backtracking
/// rules (armijo, kl) never accept a loss increase, so only a fixed step that overshoots
/// (any method) reaches it. The companion rule, in Solver::decide: under --step fixed a
/// non-finite iterate ends the fit as non_finite at once, since a retreat would silently
/// change the fixed step length.
struct DivergenceTest {
  static constexpr double kGrowth = 1e3;
  /// The loss \p loss at theta_k against the start's \p loss0.
  bool diverged(double loss0, double loss) const;
};

}  // namespace natgrad
