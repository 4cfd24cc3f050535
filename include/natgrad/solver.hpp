#pragma once
/// \file solver.hpp
/// Natural-gradient fitting. fit() is collective over the communicator: every rank
/// passes its own shard and identical options, and every rank returns the same result
/// with bit-identical coefficients.
#include <csignal>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "natgrad/communicator.hpp"
#include "natgrad/kernels.hpp"
#include "natgrad/model.hpp"
#include "natgrad/shard.hpp"

namespace natgrad {

enum class Method { ngd, gd, diag };
enum class StepRule { fixed, armijo, kl };

/// Why a fit stopped: positive = converged, negative = diverged or stopped early.
enum class Reason : int {
  running = 0,
  converged_gradient = 1,   ///< max |gradient| <= tol
  converged_loss = 2,       ///< relative loss change <= ftol
  max_iterations = -1,      ///< iteration limit reached first
  non_finite = -2,          ///< loss or gradient not finite, and step halving did not help
  line_search_failed = -3,  ///< no decrease found along the direction
  singular_fisher = -4,     ///< Fisher stayed singular after raising the damping
  separation = -5,          ///< (quasi-)separation: the loss decreases without bound
  interrupted = -6,         ///< FitOptions::interrupt was raised (a signal): stopped at an iteration boundary
};
const char* to_string(Reason r);
const char* to_string(Method m);
const char* to_string(StepRule s);
Method method_from_string(const std::string& s);
StepRule step_rule_from_string(const std::string& s);

struct FitState;  // below: what a checkpoint holds

/// Plain options of one fit, validated by validate().
struct FitOptions {
  Method method = Method::ngd;
  FisherKind fisher = FisherKind::expected;
  StepRule step = StepRule::armijo;
  double lr = 1.0;           ///< learning rate / first trial step length
  double kl = 0.1;           ///< KL radius c for StepRule::kl: 0.5 d^T F d <= c
  double damping = 0.0;      ///< initial damping added to the Fisher diagonal
  int max_iter = 100;
  double tol = 1e-8;         ///< max |gradient of the mean loss|
  double ftol = 0.0;         ///< relative loss change (0 = off)
  double armijo_c1 = 1e-4;
  int max_halvings = 40;
  int threads = 1;           ///< OpenMP threads per rank
  std::int64_t block_rows = 256;
  /// Fisher from a fraction of the rows (chosen by global row index, so the same rows at
  /// any rank count); loss, gradient and the stopping rule always use every row.
  /// fraction 1 = the exact Fisher. Kinds expected, empirical and the diagonal only.
  FisherSample sample;
  std::vector<double> theta0;  ///< start (empty = zeros)
  double l2 = 0;               ///< ridge penalty: objective sum_i w_i nll_i + l2/2 ||theta||^2
  std::vector<char> penalized; ///< per parameter, whether l2 applies (empty = all)
  /// Continue a checkpointed fit: start at iteration resume->iteration from resume->theta
  /// (theta0 is then ignored), with its history. Same rank and thread counts as the
  /// checkpointed run give bit-identical iterates; other counts agree to rounding.
  std::shared_ptr<const FitState> resume;
  /// Call FitObserver::on_checkpoint every this many iterations (0 = never).
  int checkpoint_every = 0;
  /// Polled on every rank once per iteration (may be null). Nonzero on any rank stops the
  /// fit at the next iteration boundary with Reason::interrupted, after on_checkpoint.
  /// Meant for a flag set by a SIGTERM/SIGUSR1 handler. Carried to root inside the
  /// iteration's reduction, so it costs no extra collective.
  const volatile std::sig_atomic_t* interrupt = nullptr;

  /// Throws natgrad::Error naming the first inconsistent option.
  void validate() const;
};

/// One row of history.csv: the state after \p iter steps.
struct IterationRecord {
  int iter = 0;
  double loss = 0;       ///< mean loss at theta_iter
  double grad_norm = 0;  ///< max |gradient|
  double step_norm = 0;  ///< ||theta_iter - theta_{iter-1}||_2
  double kl = 0;         ///< 0.5 d^T F d of that step (model-predicted KL)
  double damping = 0;    ///< damping used for that step
  double step_length = 0;///< accepted multiple of the direction
  double seconds = 0;    ///< wall time since the start of fit()
};

/// Everything a fit needs to continue exactly where it was: the contents of a
/// checkpoint. Taken at an iteration boundary, before theta_iteration is evaluated.
struct FitState {
  int iteration = 0;                     ///< steps taken: theta is theta_iteration
  std::vector<double> theta;             ///< theta_iteration
  std::vector<IterationRecord> history;  ///< rows 0 .. iteration-1
  /// Of the step that led to theta (history row `iteration` reports them).
  double step_length = 0, kl = 0, damping = 0, step_norm = 0;
  std::vector<double> last_step;         ///< theta_iteration - theta_(iteration-1)
  double seconds = 0;                    ///< fit wall time spent so far
  double prev_loss = 0;                  ///< loss the --ftol test compares with (root's)
};

struct FitResult {
  std::vector<double> theta;
  int iterations = 0;
  Reason reason = Reason::running;
  double loss = 0;            ///< mean loss at theta
  double grad_norm = 0;
  double weight_sum = 0;
  std::int64_t n_obs = 0;
  std::vector<IterationRecord> history;
  /// p x p Fisher (per observation) of the last evaluation, at theta: root only, may be
  /// empty. Of kind fisher_kind; the ridge term l2/W is on its penalised diagonal; from
  /// the sampled rows when fisher_sampled.
  std::vector<double> fisher;
  FisherKind fisher_kind = FisherKind::none;
  bool fisher_sampled = false;
  std::vector<double> last_step;  ///< theta_k - theta_{k-1} of the last accepted step
  double seconds = 0;
  bool converged() const { return static_cast<int>(reason) > 0; }
};

/// Callbacks, invoked on the root rank only.
struct FitObserver {
  std::function<void(const IterationRecord&)> on_iteration;
  std::function<void(const std::string&)> log;  ///< notes such as raised damping
  /// Every FitOptions::checkpoint_every iterations and when interrupted: the state to save.
  std::function<void(const FitState&)> on_checkpoint;
};

/// Collective. Mean loss (objective / weight sum, penalty included) at \p theta.
double global_loss(const Shard& shard, const Model& model, std::span<const double> theta,
                   const FitOptions& options, const Communicator& comm);

/// R's first IRLS step as a weighted least-squares system, from one pass over the rows:
/// gram = X^T W0 X / sum W0 and rhs = X^T W0 eta0 / sum W0, with eta0_i = g(mustart(y_i))
/// and W0 the prior weight times the family's working weight at mustart. For a model
/// with several outputs (multinomial) W0 is the prior weight and rhs is empty (no start).
/// The same Gram matrix serves the collinearity check: W0 > 0 wherever the prior weight
/// is, so it has the null space of the prior-weighted X^T W X (R's QR also works on the
/// working-weighted design).
struct StartSystem {
  std::int64_t p = 0;          ///< design columns
  std::vector<double> gram;    ///< p x p (root only)
  std::vector<double> rhs;     ///< p (root only; empty without a start)
  bool sampled = false;        ///< formed from FitOptions::sample's rows only
};

/// Collective. \p sampled: use options.sample's rows for the Gram (the right-hand side
/// always comes from every row), as a cheap first look.
StartSystem start_system(const Shard& shard, const Model& model, const FitOptions& options,
                         const Communicator& comm, bool sampled = false);

/// Collective. Columns of the system's Gram matrix that depend linearly on earlier
/// columns (tolerance \p tol on the squared residual in correlation scaling), on every rank.
std::vector<std::int64_t> dependent_columns(const StartSystem& sys, double tol, const Communicator& comm);

/// Collective. The start: the least-squares solution on the columns not in \p dropped
/// (sorted), broadcast to every rank; zeros when the system has no right-hand side or the
/// solution is not finite. Costs no pass over the rows.
std::vector<double> solve_start(const StartSystem& sys, const std::vector<std::int64_t>& dropped,
                                const FitOptions& options, const Communicator& comm);

/// Collective. R's starting values: one weighted least-squares step from theta = 0 towards
/// the working response eta0_i = g(mustart(y_i)) (identity: the exact least-squares fit).
/// start_system + solve_start with no column dropped.
std::vector<double> irls_start(const Shard& shard, const Model& model, const FitOptions& options,
                               const Communicator& comm);

/// Collective. Fits \p model to the union of all ranks' shards.
FitResult fit(const Shard& shard, const Model& model, const FitOptions& options,
              const Communicator& comm, const FitObserver& observer = {});

}  // namespace natgrad
