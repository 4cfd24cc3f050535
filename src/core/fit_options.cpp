#include "natgrad/core/fit_options.hpp"

#include <cmath>

#include "natgrad/core/error.hpp"

namespace natgrad {

namespace {
constexpr Choice<Method> kMethods[] = {{Method::ngd, "ngd"}, {Method::gd, "gd"}, {Method::diag, "diag"}};
constexpr Choice<StepRule> kStepRules[] = {{StepRule::fixed, "fixed"}, {StepRule::armijo, "armijo"}, {StepRule::kl, "kl"}};
constexpr Choice<LinearSolver> kSolvers[] = {
    {LinearSolver::automatic, "auto"}, {LinearSolver::cholesky, "cholesky"}, {LinearSolver::cg, "cg"}};
constexpr Choice<StopRule> kStopRules[] = {{StopRule::decrement, "decrement"}, {StopRule::gradient, "gradient"}};
}  // namespace

const char* to_string(StopRule s) { return choice_name(kStopRules, s); }
StopRule stop_rule_from_string(const std::string& s) { return parse_choice(kStopRules, "stop", s); }
const char* to_string(LinearSolver s) { return choice_name(kSolvers, s); }
LinearSolver linear_solver_from_string(const std::string& s) { return parse_choice(kSolvers, "solver", s); }
LinearSolver resolved_solver(const FitOptions& o, std::int64_t n_params, bool sparse) {
  if (o.solver != LinearSolver::automatic) return o.solver;
  const bool products = o.fisher == FisherKind::expected || o.fisher == FisherKind::empirical;
  const std::int64_t limit = sparse ? kSparseCholeskyAutoMax : kCholeskyAutoMax;
  return n_params <= limit || !products ? LinearSolver::cholesky : LinearSolver::cg;
}
std::string solver_choice_text(const FitOptions& o, std::int64_t n_params, bool sparse) {
  const LinearSolver s = resolved_solver(o, n_params, sparse);
  std::string t = to_string(s);
  if (o.solver != LinearSolver::automatic) return t;
  const std::int64_t limit = sparse ? kSparseCholeskyAutoMax : kCholeskyAutoMax;
  const bool products = o.fisher == FisherKind::expected || o.fisher == FisherKind::empirical;
  if (!products && n_params > limit) return t + " (auto: --fisher " + to_string(o.fisher) + " has no Fisher-vector products)";
  return t + " (auto: " + std::to_string(n_params) + " parameters " + (n_params <= limit ? "<= " : "> ") +
         std::to_string(limit) + ", " + (sparse ? "sparse" : "dense") + " rows)";
}
const char* to_string(Method m) { return choice_name(kMethods, m); }
const char* to_string(StepRule s) { return choice_name(kStepRules, s); }
Method method_from_string(const std::string& s) { return parse_choice(kMethods, "method", s); }
StepRule step_rule_from_string(const std::string& s) { return parse_choice(kStepRules, "step", s); }

const OptionTable<FitOptions>& fit_option_table() {
  using O = FitOptions;
  using S = FisherSample;  // its rows reached through FitOptions::sample
  static const OptionTable<O> table = join<O>({
      {choice_option("method", &O::method, "ngd",
                     "ngd (natural gradient, full Fisher) | gd (vanilla gradient descent) | diag (diagonal Fisher)",
                     &method_from_string, &to_string, kOptionResult),
       choice_option("solver", &O::solver, "auto",
                     "how --method ngd solves for the natural gradient: cholesky (forms and factors the p x p "
                     "Fisher: exact, few iterations, needs p^2 memory) | cg (matrix-free conjugate gradient on "
                     "Fisher-vector products, memory O(p): for wide or sparse data) | auto (cholesky up to "
                     "4096 parameters, cg above)",
                     &linear_solver_from_string, &to_string, kOptionResult),
       number_option<O, int>("cg-max-iter", &O::cg_max_iter, "250",
                             "--solver cg: conjugate-gradient iterations per step at most", kOptionResult, at_least(1)),
       number_option<O, double>("cg-tol", &O::cg_tol, "0.1",
                                "--solver cg: stop CG when the residual is below cg-tol x |gradient| (the forcing "
                                "term of the inexact Newton step)",
                                kOptionResult,
                                [](double f) { return f > 0 && f < 1 ? std::string() : "must be in (0, 1)"; }),
       choice_option("fisher", &O::fisher, "expected",
                     "expected (X^T W X, Fisher scoring) | empirical (sum of score outer products) | "
                     "empirical-centered (covariance of the scores, as the seed's np.cov)",
                     &fisher_kind_from_string, &to_string, kOptionResult)},
      nest<O>(OptionTable<S>{number_option<S, double>(
                                 "fisher-sample", &S::fraction, "1",
                                 "form the Fisher from this fraction of the rows (chosen by global row index: the "
                                 "same rows at any rank count); loss, gradient and --tol use every row, so the "
                                 "answer is the same, in more but cheaper iterations. 1 = exact Fisher",
                                 kOptionResult,
                                 [](double f) { return f > 0 && f <= 1 ? std::string() : "must be in (0, 1]"; }),
                             number_option<S, std::uint64_t>("fisher-sample-seed", &S::seed, "0",
                                                             "which rows --fisher-sample picks", kOptionResult)},
              [](auto& o) -> auto& { return o.sample; }),
      {choice_option("fisher-precision", &O::fisher_precision, "float64",
                     "float64 | float32: the steps' Fisher summed from float copies of the scaled rows (about 2x "
                     "the flops per cycle); loss, gradient, line search and --tol stay float64, so the answer is "
                     "the same; standard errors always use a float64 Fisher. Dense rows, single-output models",
                     &fisher_precision_from_string, &to_string, kOptionResult)},
      {choice_option("step", &O::step, "armijo",
                     "fixed (theta -= lr * direction, the seed's rule) | armijo (backtracking from lr) | kl (KL "
                     "trust region: 0.5 d^T F d <= --kl, then backtracking)",
                     &step_rule_from_string, &to_string, kOptionResult),
       number_option<O, double>("lr", &O::lr, "1", "learning rate / first trial step", kOptionResult,
                                positive_number()),
       number_option<O, double>("kl", &O::kl, "0.1", "KL radius c for --step kl", kOptionResult, positive_number()),
       number_option<O, double>("damping", &O::damping, "0",
                                "added to the Fisher diagonal; raised automatically when Cholesky fails",
                                kOptionResult, finite_at_least(0)),
       number_option<O, int>("max-iter", &O::max_iter, "100", "iteration limit", kOptionRecorded, at_least(0)),
       choice_option("stop", &O::stop, "decrement",
                     "stopping rule: decrement (converged when 0.5 g^T F^-1 g, the decrease of the mean loss a "
                     "full natural-gradient step predicts, is <= tol^2: the same at any scaling of the columns; "
                     "--method gd, which has no Fisher, uses the gradient rule) | gradient (converged when "
                     "max |gradient of the mean loss| <= tol, which depends on how the columns are scaled)",
                     &stop_rule_from_string, &to_string, kOptionResult),
       number_option<O, double>("tol", &O::tol, "1e-8",
                                "tolerance of the --stop rule", kOptionResult,
                                at_least(0.0)),
       number_option<O, double>("ftol", &O::ftol, "0", "converged when the relative loss change <= ftol (0: off)",
                                kOptionResult, at_least(0.0)),
       number_option<O, std::int64_t>("block-rows", &O::block_rows, "256", "rows per block in the Fisher pass",
                                      kOptionRecorded, at_least<std::int64_t>(1)),
       number_option<O, double>("l2", &O::l2, "0",
                                "ridge penalty: minimise sum_i w_i nll_i + l2/2 ||theta||^2 (intercept not "
                                "penalised)",
                                kOptionResult, finite_at_least(0))},
  });
  return table;
}

void FitOptions::validate() const {
  check_options(fit_option_table(), *this);
  auto bad = [](const std::string& m) { throw Error(m); };
  if (threads < 1) bad("--threads must be >= 1");
  if (step == StepRule::kl && method == Method::gd)
    bad("--step kl needs a Fisher metric: use --method ngd or diag");
  if (solver == LinearSolver::cg && method != Method::ngd)
    bad("--solver cg solves for the natural gradient of --method ngd; --method " + std::string(to_string(method)) +
        " needs no solver");
  if (solver == LinearSolver::cg && fisher != FisherKind::expected && fisher != FisherKind::empirical)
    bad("--solver cg works with --fisher expected or empirical");
  if (sample.active() && method == Method::gd) bad("--fisher-sample needs a Fisher: use --method ngd or diag");
  if (sample.active() && method == Method::ngd && fisher != FisherKind::expected && fisher != FisherKind::empirical)
    bad("--fisher-sample works with --fisher expected or empirical");
}

}  // namespace natgrad
