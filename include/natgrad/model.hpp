#pragma once
/// \file model.hpp
/// The Model contract (see docs/model-contract.md). A model maps the linear predictor
/// eta_i = x_i^T theta + offset_i of one row to three numbers:
///   nll_i      = -log p(y_i | eta_i)                    (the row's loss)
///   dnll_i     = d nll_i / d eta_i                      (so the row's score is -dnll_i x_i)
///   fisher_i   = E_y[(d nll / d eta)^2] at eta_i        (expected-Fisher weight, >= 0)
/// The solver assembles from these, per observation (divided by the weight sum W):
///   loss      = sum_i w_i nll_i / W
///   gradient  = sum_i w_i dnll_i x_i / W
///   expected Fisher   = sum_i w_i fisher_i x_i x_i^T / W
///   empirical Fisher  = sum_i w_i dnll_i^2 x_i x_i^T / W
/// Models are stateless and thread-safe; no MPI.
#include <cstddef>
#include <memory>
#include <string>

namespace natgrad {

class Model {
 public:
  virtual ~Model() = default;
  /// Short name, e.g. "binomial/logit".
  virtual std::string name() const = 0;
  /// Empty if \p y is a valid label, else a phrase saying what was expected.
  virtual std::string check_label(double y) const = 0;
  /// Per-row evaluation of n rows. Any output pointer may be null (not wanted).
  virtual void eval(std::size_t n, const double* eta, const double* y, double* nll,
                    double* dnll, double* fisher) const = 0;
};

/// Logistic regression: y in {0,1} (or a proportion in [0,1]), p = sigmoid(eta).
class LogisticModel final : public Model {
 public:
  std::string name() const override { return "binomial/logit"; }
  std::string check_label(double y) const override;
  void eval(std::size_t n, const double* eta, const double* y, double* nll, double* dnll,
            double* fisher) const override;
};

/// Builds a model by name ("logistic" / "binomial"); throws natgrad::Error if unknown.
std::unique_ptr<Model> make_model(const std::string& family, const std::string& link);

}  // namespace natgrad
