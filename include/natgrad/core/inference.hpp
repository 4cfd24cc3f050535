#pragma once
/// \file inference.hpp
/// Standard errors and goodness of fit at a fitted coefficient vector, as R's
/// summary.glm reports them. Collective; results are complete on the root rank.
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "natgrad/core/communicator.hpp"
#include "natgrad/core/fit_options.hpp"
#include "natgrad/core/model.hpp"
#include "natgrad/core/shard.hpp"

namespace natgrad {

struct Inference {
  /// sqrt(diag(F^-1)) * sqrt(dispersion). Empty (as are the next three and the
  /// covariance, with the reason in note) when P > 20000 parameters or the P x P
  /// matrices would not fit in root's memory; NaN when the Fisher is singular.
  std::vector<double> std_errors;
  std::vector<double> robust_std_errors;  ///< HC0 sandwich F^-1 B F^-1 (B: sum of w^2 s s^T)
  std::vector<double> statistic;          ///< estimate / std_error (z, or t when estimated dispersion)
  std::vector<double> p_values;           ///< two-sided, normal or Student t(df_residual)
  std::vector<double> covariance;         ///< P x P, scaled by the dispersion
  /// Wald confidence intervals, R's confint.default: estimate -+ qnorm(1 - (1 - conf_level)/2)
  /// * std_error (the normal quantile for every family), per parameter; NaN where the
  /// standard error is.
  std::vector<double> conf_lower, conf_upper;
  double conf_level = 0.95;
  bool t_statistic = false;
  double dispersion = 1;                  ///< Pearson chi^2 / df_residual (gaussian, gamma, quasi), else 1
  /// NaN for the quasi families (no likelihood, R's NA); negative binomial with theta
  /// estimated: AIC and BIC count theta as a parameter (as MASS's glm.nb and logLik.negbin).
  double log_likelihood = 0, deviance = 0, null_deviance = 0, aic = 0, bic = 0;
  /// Negative binomial: theta, its standard error 1/sqrt(information) (NaN when fixed by
  /// --theta) and whether it was estimated; NaN / false for the other families (set by fit_glm).
  double theta = NAN, theta_std_error = NAN;
  bool theta_estimated = false;
  double nobs = 0;                        ///< rows with positive weight
  double df_residual = 0, df_null = 0;
  std::string note;                       ///< e.g. why standard errors are missing
};

/// Whether infer() forms the P x P covariance (every standard error): up to
/// kCholeskyAutoMax parameters, or at any P when \p all (--se-columns all).
bool forms_full_covariance(std::int64_t P, bool all);

struct InferenceOptions {
  int threads = 1;
  std::int64_t block_rows = 256;
  double l2 = 0;  ///< ridge penalty of the fit (added to the Fisher for the covariance)
  std::vector<char> penalized;  ///< per parameter; empty = all
  /// Same on every rank. True: fit_fisher (root) is the expected Fisher per observation
  /// at theta as the fit left it (FitResult::fisher, l2 / weight sum already on the
  /// penalised diagonal), and no pass recomputes it.
  bool fisher_from_fit = false;
  /// Form the full covariance at any P (--se-columns all).
  bool all_std_errors = false;
  /// Above the threshold: the parameters whose standard errors (model-based and HC0) are
  /// computed by conjugate-gradient solves F x = e_j on Fisher-vector products; the other
  /// entries of Inference's vectors are NaN.
  std::vector<std::int64_t> se_parameters;
  /// The most parameters for which the full covariance is formed without all_std_errors
  /// (kCholeskyAutoMax; tests lower it to check the listed solves against it).
  std::int64_t full_covariance_max = kCholeskyAutoMax;
  double conf_level = 0.95;  ///< of the Wald intervals (Inference::conf_lower, conf_upper)
  std::vector<double> fit_fisher;
};

/// Wald intervals estimate -+ qnorm(1 - (1 - level)/2) se into r.conf_lower / conf_upper
/// (NaN where se is not finite); r.std_errors must be set (none: both left empty).
void wald_intervals(Inference& r, std::span<const double> theta, double level);

/// Collective. \p theta: the fitted parameters (d * n_outputs, class-major). The shard's
/// first column is taken as the intercept when named "(Intercept)".
Inference infer(const Shard& shard, const Model& model, std::span<const double> theta,
                const Communicator& comm, const InferenceOptions& options);

}  // namespace natgrad
