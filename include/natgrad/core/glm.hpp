#pragma once
/// \file glm.hpp
/// Generalised linear models (family + link) and the multinomial (softmax) model.
/// Local, no MPI. See docs/model-contract.md.
#include "natgrad/core/model.hpp"

namespace natgrad {

enum class Family { binomial, poisson, gaussian, gamma };
enum class Link { logit, probit, cloglog, log, identity, inverse, sqrt };

/// A GLM with unit-dispersion loss:
///   binomial  nll = -(y log mu + (1-y) log(1-mu))   V = mu(1-mu)   (w = trials)
///   poisson   nll = mu - y log mu                    V = mu
///   gaussian  nll = (y - mu)^2 / 2                   V = 1
///   gamma     nll = y / mu + log mu                  V = mu^2
/// dnll/deta = -(y - mu) / V(mu) * dmu/deta, fisher = (dmu/deta)^2 / V(mu).
/// \p quasi (binomial, poisson): R's quasibinomial / quasipoisson: the same loss, mean,
/// variance and estimates; the dispersion is estimated (Pearson chi^2 / df_residual) and
/// there is no likelihood (loglik is NaN).
class Glm : public Model {
 public:
  Glm(Family f, Link l, bool quasi = false);
  std::string name() const override;
  std::string check_label(double y) const override;
  void eval(std::size_t n, const double* eta, const double* y, double* nll, double* dnll,
            double* fisher) const override;
  double unit_deviance(const double* eta, double y) const override;
  double pearson(const double* eta, double y) const override;
  double loglik(const double* eta, double y, double w, double phi) const override;
  bool estimates_dispersion() const override {
    return quasi_ || family_ == Family::gaussian || family_ == Family::gamma;
  }
  bool has_likelihood() const override { return !quasi_; }
  double loglik_dispersion(double deviance, double nobs, double wsum) const override;
  std::vector<double> null_eta(const std::vector<double>& label_sums, double wsum) const override;
  double mean(double eta) const override;
  double start_eta(double y) const override;
  bool is_classifier() const override { return family_ == Family::binomial; }
  Family family() const { return family_; }
  Link link() const { return link_; }
  bool quasi() const { return quasi_; }

 private:
  Family family_;
  Link link_;
  bool quasi_ = false;
};

/// MASS's negative.binomial(theta) with link log, sqrt or identity:
///   V = mu + mu^2 / theta,  nll = (y + theta) log1p(mu / theta) - y log mu
/// (-log p up to terms free of mu), dnll/deta = (mu - y) theta / (mu (mu + theta)) dmu/deta,
/// fisher = (dmu/deta)^2 / V; unit deviance 2 [y log(y/mu) - (y + theta) log((y + theta)/(mu + theta))];
/// loglik MASS's (lgamma(theta + y) - lgamma(theta) - lgamma(y + 1) + theta log theta +
/// y log mu - (theta + y) log(theta + mu), times w). Dispersion 1. theta = +infinity is the
/// Poisson limit (V = mu; glm.nb's starting fit). sqrt and identity need eta > 0 (nll = inf
/// outside, so that the solver backs off).
class NegativeBinomialModel final : public Model {
 public:
  NegativeBinomialModel(Link l, double theta);
  std::string name() const override;
  std::string check_label(double y) const override;
  void eval(std::size_t n, const double* eta, const double* y, double* nll, double* dnll,
            double* fisher) const override;
  double unit_deviance(const double* eta, double y) const override;
  double pearson(const double* eta, double y) const override;
  double loglik(const double* eta, double y, double w, double phi) const override;
  std::vector<double> null_eta(const std::vector<double>& label_sums, double wsum) const override;
  double mean(double eta) const override;
  /// MASS's negative.binomial start mu = y + (y == 0)/6; the Poisson limit: y + 0.1 (poisson's).
  double start_eta(double y) const override;
  double theta() const { return theta_; }
  Link link() const { return link_; }

 private:
  Link link_;
  double theta_;
};

/// Logistic regression, binomial/logit.
class LogisticModel final : public Glm {
 public:
  LogisticModel() : Glm(Family::binomial, Link::logit) {}
};

/// K-class multinomial logit, class 0 the reference: eta_k = x^T theta_k, k = 1..K-1,
/// p = softmax(0, eta_1, ..., eta_{K-1}). Labels are class ids 0..K-1. With K = 2 there
/// is one output, and eval() (the scalar path) is the binomial logit model of the label.
class MultinomialModel final : public Model {
 public:
  explicit MultinomialModel(int classes);
  std::string name() const override { return "multinomial/softmax"; }
  std::string check_label(double y) const override;
  int n_outputs() const override { return classes_ - 1; }
  int n_factors() const override { return classes_; }
  void eval(std::size_t n, const double* eta, const double* y, double* nll, double* dnll,
            double* fisher) const override;
  void eval_multi(std::size_t n, const double* eta, const double* y, double* nll, double* dnll,
                  double* factor) const override;
  double unit_deviance(const double* eta, double y) const override;
  double pearson(const double* eta, double y) const override;
  double loglik(const double* eta, double y, double w, double phi) const override;
  std::vector<double> null_eta(const std::vector<double>& label_sums, double wsum) const override;
  double mean(double eta) const override;
  /// Two classes: the binomial logit start; more: 0.
  double start_eta(double y) const override;
  int n_classes() const override { return classes_; }
  bool is_classifier() const override { return true; }
  /// Class probabilities of one row (K values) from its K-1 linear predictors.
  void probabilities(const double* eta, double* p) const;

 private:
  int classes_;
};

}  // namespace natgrad
