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

#include "natgrad/core/communicator.hpp"
#include "natgrad/core/fisher.hpp"
#include "natgrad/core/fit_options.hpp"
#include "natgrad/core/model.hpp"
#include "natgrad/core/shard.hpp"

namespace natgrad {

/// Why a fit stopped: positive = converged, negative = diverged or stopped early.
enum class Reason : int {
  running = 0,
  converged_gradient = 1,   ///< max |gradient| <= tol
  converged_loss = 2,       ///< relative loss change <= ftol
  converged_decrement = 3,  ///< 0.5 g^T F^-1 g <= tol^2 (--stop decrement, the Newton decrement)
  max_iterations = -1,      ///< iteration limit reached first
  non_finite = -2,          ///< loss or gradient not finite: at the start, after a fixed step, or
                            ///< after step halving did not help
  line_search_failed = -3,  ///< no decrease found along the direction
  singular_fisher = -4,     ///< Fisher stayed singular after raising the damping
  separation = -5,          ///< (quasi-)separation: the loss decreases without bound
  interrupted = -6,         ///< FitOptions::interrupt was raised (a signal): stopped at an iteration boundary
  loss_diverged = -7,       ///< the loss grew more than 1e3 max(|loss_0|, 1) above its start loss_0
};
const char* to_string(Reason r);

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
  /// --solver cg: Fisher-vector products taken (each a pass over every rank's rows); 0 otherwise.
  std::int64_t fisher_products = 0;
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
  /// After every iterate at which a checkpoint could be taken (a regular iterate whose
  /// direction exists): that state without its history (FitState::history empty), and
  /// history rows 0 .. iteration-1 in \p history (valid during the call only). Cheap: a
  /// caller keeps the last state by copying theta and appending the new rows, e.g. to
  /// write it when a signal arrives in the middle of the next iteration.
  std::function<void(const FitState&, std::span<const IterationRecord> history)> on_state;
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
  double weight_sum = 0;       ///< W, the sum of the prior weights (root only)
  bool sampled = false;        ///< formed from FitOptions::sample's rows only
  /// Empty, or the power of two each column was multiplied by before gram and rhs were
  /// formed: set when a column's scale put its squares near the ends of the double range
  /// (e.g. a column of 1e-300s, whose Gram entry would underflow to 0).
  std::vector<double> scale;
  /// The Gram was summed in float32 (start_system's \p rounded): entries good to about
  /// 1e-6 relative, for a cheap first look.
  bool rounded = false;
};

/// Collective. \p sampled: use options.sample's rows for the Gram (the right-hand side
/// always comes from every row), as a cheap first look. \p rounded: the Gram summed in
/// float32 (FisherPrecision::float32), another cheap first look.
StartSystem start_system(const Shard& shard, const Model& model, const FitOptions& options,
                         const Communicator& comm, bool sampled = false, bool rounded = false);

/// Collective. Columns of the system's Gram matrix that depend linearly on earlier
/// columns (tolerance \p tol on the squared residual in correlation scaling), on every rank.
std::vector<std::int64_t> dependent_columns(const StartSystem& sys, double tol, const Communicator& comm);

/// Collective. The start: the least-squares solution on the columns not in \p dropped
/// (sorted), broadcast to every rank; zeros when the system has no right-hand side or the
/// solution is not finite. Costs no pass over the rows. With options.l2 > 0 it is the
/// ridge solution, (gram + l2/W on the penalised diagonal) theta = rhs (options.penalized
/// indexes the kept columns; empty: all penalised): R's first IRLS step of the penalised
/// objective, defined also when penalised columns are linearly dependent.
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
