#pragma once
/// \file model.hpp
/// The Model contract (see docs/model-contract.md). A model maps the m linear predictors
/// eta_i = Theta^T x_i + offset_i of one row (m = n_outputs(): 1 for a GLM, K-1 for a
/// K-class multinomial) to:
///   nll_i     = -log p(y_i | eta_i)   at unit dispersion          (the row's loss)
///   dnll_i    = d nll_i / d eta_i     (m numbers; the score wrt theta is -dnll_i (x) x_i)
///   fisher_i  = E_y[dnll dnll^T]      (m x m; a scalar weight when m = 1)
/// The solver assembles, per observation (divided by the prior-weight sum W):
///   loss      = sum_i w_i nll_i / W
///   gradient  = sum_i w_i dnll_i (x) x_i / W
///   expected Fisher   = sum_i w_i fisher_i (x) x_i x_i^T / W
///   empirical Fisher  = sum_i w_i (dnll_i dnll_i^T) (x) x_i x_i^T / W
/// Parameters are class-major: coefficient of column j for output k at j + d*k.
/// Models are stateless and thread-safe; no MPI.
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

namespace natgrad {

class Model {
 public:
  virtual ~Model() = default;
  /// Short name, e.g. "binomial/logit".
  virtual std::string name() const = 0;
  /// Empty if \p y is a valid label, else a phrase saying what was expected.
  virtual std::string check_label(double y) const = 0;
  /// Linear predictors per row (m).
  virtual int n_outputs() const { return 1; }

  /// Scalar models (m = 1): per-row evaluation of n rows; fisher is the expected-Fisher
  /// weight. Any output pointer may be null (not wanted).
  virtual void eval(std::size_t n, const double* eta, const double* y, double* nll, double* dnll,
                    double* fisher) const = 0;

  /// Multi-output models: eta and dnll hold n x m values (row-major). \p factor, if not
  /// null, receives per row an m x n_factors() matrix M_i (row-major) with
  /// M_i M_i^T = fisher_i, so that the expected Fisher is a sum of outer products.
  virtual int n_factors() const { return 1; }
  virtual void eval_multi(std::size_t n, const double* eta, const double* y, double* nll,
                          double* dnll, double* factor) const;

  // ---- Inference hooks (per row; eta points at the row's m linear predictors) ----
  /// Unit deviance d(y, mu); the deviance is sum_i w_i d(y_i, mu_i).
  virtual double unit_deviance(const double* eta, double y) const = 0;
  /// Pearson contribution (y - mu)^2 / V(mu) (before the prior weight).
  virtual double pearson(const double* eta, double y) const = 0;
  /// Full log-likelihood of the row with prior weight w at dispersion phi.
  virtual double loglik(const double* eta, double y, double w, double phi) const = 0;
  /// True for families whose dispersion is estimated (gaussian, gamma, the quasi families).
  virtual bool estimates_dispersion() const { return false; }
  /// False for quasi-likelihood families (quasibinomial, quasipoisson): no log-likelihood,
  /// AIC or BIC (R reports NA).
  virtual bool has_likelihood() const { return true; }
  /// The dispersion the family's log-likelihood uses (as R's family$aic does), from the
  /// deviance, the count of rows with positive weight and the weight sum.
  virtual double loglik_dispersion(double /*deviance*/, double /*nobs*/, double /*wsum*/) const {
    return 1.0;
  }
  /// Linear predictor(s) of the intercept-only model without offset, given sum_i w_i y_i
  /// and sum_i w_i (scalar models), or weighted class counts (multinomial).
  virtual std::vector<double> null_eta(const std::vector<double>& label_sums, double wsum) const = 0;
  /// Inverse link (scalar models); class probabilities are computed by predict.
  virtual double mean(double eta) const = 0;
  /// A starting linear predictor for a label (R's mustart through the link).
  virtual double start_eta(double y) const = 0;
  /// Number of classes (multinomial) or 0.
  virtual int n_classes() const { return 0; }
  /// True for binomial / multinomial (separation can occur).
  virtual bool is_classifier() const { return false; }
};

/// The model families natgrad fits. quasibinomial / quasipoisson: binomial / poisson's
/// mean, variance and estimates with the dispersion estimated (R's quasi families);
/// negative_binomial: MASS's negative.binomial(theta) (glm.nb when theta is estimated).
enum class ModelFamily { binomial, poisson, gaussian, gamma, multinomial, quasibinomial, quasipoisson, negative_binomial };
/// Link functions; canonical = the family's default (logit, log, identity, inverse, softmax).
enum class LinkFunction { canonical, logit, probit, cloglog, log, identity, inverse, softmax, sqrt };

/// Parses a family name, case-insensitively and with R's spellings ("Gamma", "binomial",
/// "quasibinomial", "quasipoisson", "negative.binomial"; "logistic" = binomial, "negbin" =
/// negative.binomial). Throws natgrad::Error naming --family and the choices.
ModelFamily family_from_string(const std::string& s);
/// Parses a link name, case-insensitively; "" = canonical. Throws natgrad::Error naming --link.
LinkFunction link_from_string(const std::string& s);
const char* to_string(ModelFamily f);
const char* to_string(LinkFunction l);  ///< "" for canonical

/// Builds a model: family binomial and quasibinomial (links logit, probit, cloglog), poisson
/// and quasipoisson (log), gaussian (identity, log), gamma (inverse, log), multinomial (needs
/// \p classes >= 2), negative_binomial (log, sqrt, identity; theta 1 here: only its mean is
/// meaningful; fit_glm builds NegativeBinomialModel with its theta).
/// Throws natgrad::Error when the link is not available for the family.
std::unique_ptr<Model> make_model(ModelFamily family, LinkFunction link, int classes = 0);
/// The same from names (family_from_string, link_from_string); an empty link picks the
/// family's default.
std::unique_ptr<Model> make_model(const std::string& family, const std::string& link, int classes = 0);

}  // namespace natgrad

#include "natgrad/core/glm.hpp"
