#pragma once
/// \file glm_fit.hpp
/// The whole R-style GLM pipeline as one collective library call: what `natgrad fit`
/// does between reading the data and writing the outputs.
///
///   fit_glm(shard, options, comm):
///     labels checked against the family (the row is named on error)
///     -> one pass: the Gram matrix X^T W0 X and R's first IRLS step (StartSystem)
///     -> linearly dependent columns: an error naming them, or dropped (drop_collinear);
///        with fit.l2 > 0 only the unpenalised columns (the intercept) must be independent
///        among themselves: penalised ones are never refused or dropped
///     -> penalty mask (the intercept is not penalised unless penalize_intercept)
///     -> hooks.prepare (e.g. a warm start or a checkpoint to resume)
///     -> R's starting values (start = irls), the natural-gradient fit (solver.hpp)
///     -> negative_binomial with theta estimated (MASS::glm.nb): the fit above is the Poisson
///        limit; then theta by maximum likelihood at its mean (Newton on the score, one
///        all-reduce of two sums per step) and the coefficients refitted at that theta
///        (warm start), alternately, until both have converged (docs/inference.md)
///     -> separation check (classifiers) -> inference (standard errors, deviances, AIC/BIC,
///        Wald intervals)
///
/// Every rank passes its own shard and identical options; every rank returns the same
/// result (inference on root only, see GlmFit).
#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "natgrad/core/communicator.hpp"
#include "natgrad/core/inference.hpp"
#include "natgrad/core/model.hpp"
#include "natgrad/core/option_table.hpp"
#include "natgrad/core/shard.hpp"
#include "natgrad/core/solver.hpp"

namespace natgrad {

/// How the fit starts when no warm start is given: R's first IRLS step or all zeros.
enum class StartRule { irls, zero };
StartRule start_rule_from_string(const std::string& s);  ///< throws natgrad::Error naming --start
const char* to_string(StartRule s);

/// The options of a GLM fit: the model, the solver's FitOptions and the pipeline's steps.
struct GlmOptions {
  ModelFamily family = ModelFamily::binomial;
  LinkFunction link = LinkFunction::canonical;
  int classes = 0;                  ///< multinomial K (0: 1 + the largest label over all ranks)
  FitOptions fit;                   ///< the solver's options (fit.theta0: a warm start)
  StartRule start = StartRule::irls;
  bool drop_collinear = false;      ///< drop linearly dependent columns (reported as NA) instead of failing
  bool penalize_intercept = false;  ///< apply fit.l2 to the "(Intercept)" column too
  bool inference = true;            ///< standard errors, deviances, AIC/BIC after the fit
  /// Which standard errors: "" (all of them up to kCholeskyAutoMax parameters, none above),
  /// "all" (the full P x P covariance at any P), or a comma-separated list of design column
  /// names or 0-based parameter indices, computed above the threshold by one conjugate-
  /// gradient solve F x = e_j each (below it every standard error is computed anyway).
  std::string se_columns;
  /// negative_binomial: 0 = theta estimated by maximum likelihood, alternating with the
  /// coefficients as MASS::glm.nb does; > 0 = theta fixed (MASS's negative.binomial(theta)
  /// in glm()). Must be 0 for the other families.
  double theta = 0;
  /// Level of the Wald confidence intervals estimate +- qnorm(1 - (1 - level)/2) SE (R's
  /// confint.default), in (0, 1).
  double conf_level = 0.95;

  /// Throws natgrad::Error naming the first bad option: each row's check of
  /// glm_option_table(), then FitOptions::validate and the family/link combination.
  void validate() const;
};

/// The command-line options that set GlmOptions members, with fit_option_table()'s rows
/// nested (declared once, here and in fit_options.cpp).
const OptionTable<GlmOptions>& glm_option_table();

/// What fit_glm returns: the model, the design as fitted and the fit with its inference.
struct GlmFit {
  std::shared_ptr<const Model> model;
  int classes = 0;                        ///< multinomial K, else 0
  std::vector<std::string> columns;       ///< design columns as fitted (after any drop)
  std::vector<std::string> all_columns;   ///< design columns as given, in order
  std::vector<std::string> dropped;       ///< columns dropped as linearly dependent
  bool intercept = false;                 ///< column 0 is "(Intercept)"
  FitOptions fit_options;                 ///< as the solver ran (penalty mask, start, resume)
  FitResult fit;                          ///< every rank; FitResult::fisher moved into inference
  bool has_inference = false;             ///< same on every rank
  Inference inference;                    ///< root only (valid when has_inference)
  /// negative_binomial: theta as fitted (every rank; also in inference), its standard error
  /// 1/sqrt(information) (NaN when fixed), and the outer (theta, coefficients) iterations.
  double theta = NAN, theta_std_error = NAN;
  bool theta_estimated = false;
  int theta_iterations = 0;
};

/// Optional callbacks of fit_glm.
struct GlmHooks {
  /// Every rank, once the model is built and the labels are checked (e.g. to describe the run).
  std::function<void(const Shard&, const Model&)> on_model;
  /// Every rank, collective calls allowed: after linearly dependent columns are dropped and
  /// the penalty mask is set, before the starting values. May set fit.theta0 (a warm
  /// start of shard.n_cols * model.n_outputs() values) or fit.resume (a checkpoint).
  std::function<void(const Shard&, const Model&, FitOptions&)> prepare;
  /// Root only: per-iteration records, notes (dropped columns, raised damping), checkpoints.
  FitObserver observer;
};

/// Collective. Fits the GLM of \p options to the union of all ranks' shards, as
/// `natgrad fit` does. \p shard is changed only when drop_collinear drops columns (in place,
/// no second copy of X). Throws CollectiveError for bad labels, linearly dependent columns
/// (without drop_collinear; with fit.l2 > 0 only unpenalised ones) and bad options; a diverged fit is returned with its reason
/// (Reason::separation when a classifier's coefficients run away).
GlmFit fit_glm(Shard& shard, const GlmOptions& options, const Communicator& comm, const GlmHooks& hooks = {});

}  // namespace natgrad
