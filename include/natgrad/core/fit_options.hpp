#pragma once
/// \file fit_options.hpp
/// The options of one fit (method, Fisher, step rule, stopping rule, penalty, threads,
/// checkpointing hooks). Local, no MPI.
#include <csignal>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "natgrad/core/fisher.hpp"
#include "natgrad/core/option_table.hpp"

namespace natgrad {

enum class Method { ngd, gd, diag };
enum class StepRule { fixed, armijo, kl };
/// The stopping rule: decrement, 0.5 g^T F^-1 g <= tol^2 in the direction's metric (the
/// Newton decrement, halved and squared: scale-invariant; --method gd has no metric and
/// uses the gradient), or gradient, max_j |g_j| <= tol (depends on how the columns are
/// scaled).
enum class StopRule { decrement, gradient };
/// How --method ngd solves (F + damping diag F) d = -g: cholesky forms the p x p Fisher
/// (once per iteration, reduced onto root) and factors it; cg never forms it: a
/// preconditioned conjugate gradient on Fisher-vector products, each a pass over every
/// rank's rows and one reduction of p doubles (matrix-free: memory O(p) per rank);
/// automatic picks cholesky when the parameter count is at most kCholeskyAutoMax, cg above.
enum class LinearSolver { automatic, cholesky, cg };

const char* to_string(Method m);
const char* to_string(StepRule s);
Method method_from_string(const std::string& s);
StepRule step_rule_from_string(const std::string& s);
const char* to_string(StopRule s);
StopRule stop_rule_from_string(const std::string& s);
const char* to_string(LinearSolver s);
LinearSolver linear_solver_from_string(const std::string& s);

struct FitState;  // solver.hpp: what a checkpoint holds

/// Plain options of one fit, validated by validate().
struct FitOptions {
  Method method = Method::ngd;
  FisherKind fisher = FisherKind::expected;
  StepRule step = StepRule::armijo;
  double lr = 1.0;           ///< learning rate / first trial step length
  double kl = 0.1;           ///< KL radius c for StepRule::kl: 0.5 d^T F d <= c
  double damping = 0.0;      ///< initial damping added to the Fisher diagonal
  int max_iter = 100;
  StopRule stop = StopRule::decrement;  ///< what tol bounds (gd: always the gradient)
  double tol = 1e-8;         ///< decrement: 0.5 g^T F^-1 g <= tol^2; gradient: max |g| <= tol
  double ftol = 0.0;         ///< relative loss change (0 = off)
  double armijo_c1 = 1e-4;
  int max_halvings = 40;
  LinearSolver solver = LinearSolver::automatic;  ///< --method ngd: Cholesky or matrix-free CG
  int cg_max_iter = 250;     ///< conjugate-gradient iterations per natural-gradient step
  /// Forcing term: CG stops when ||(F + damping diag F) d + g|| <= cg_tol ||g|| (inexact Newton).
  double cg_tol = 0.1;
  int threads = 1;           ///< OpenMP threads per rank
  std::int64_t block_rows = 256;
  /// Fisher from a fraction of the rows (chosen by global row index, so the same rows at
  /// any rank count); loss, gradient and the stopping rule always use every row.
  /// fraction 1 = the exact Fisher. Kinds expected, empirical and the diagonal only.
  FisherSample sample;
  /// --fisher-precision: the arithmetic of the steps' Fisher sum (fisher.hpp).
  FisherPrecision fisher_precision = FisherPrecision::float64;
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

  /// Throws natgrad::Error naming the first inconsistent option: each option's check from
  /// fit_option_table(), then the relations between options.
  void validate() const;
};

/// --solver auto: dense rows use cholesky up to this many parameters (the p x p Fisher is
/// then at most 128 MiB and its factorisation about 2e10 flops), cg above.
inline constexpr std::int64_t kCholeskyAutoMax = 4096;
/// --solver auto: sparse (CSR) rows use cholesky up to this many parameters, cg above:
/// a product costs 2 nnz flops against p^2 per row for the Fisher of dense rows, so the
/// matrix-free solve wins much earlier on sparse data.
inline constexpr std::int64_t kSparseCholeskyAutoMax = 1024;
/// The solver \p o asks for, with automatic resolved for \p n_params parameters of dense
/// (\p sparse false) or CSR rows. Only the expected and empirical Fisher have products:
/// automatic stays cholesky for the others.
LinearSolver resolved_solver(const FitOptions& o, std::int64_t n_params, bool sparse = false);
/// One phrase for the header line: the solver and, under auto, why, e.g. "cg (auto: 20000
/// parameters > 1024, sparse rows)".
std::string solver_choice_text(const FitOptions& o, std::int64_t n_params, bool sparse);

/// The command-line options that set FitOptions members (declared once, here).
const OptionTable<FitOptions>& fit_option_table();

}  // namespace natgrad
