#include "natgrad/model.hpp"

#include <cmath>

#include "natgrad/error.hpp"

namespace natgrad {

namespace {
// log(1 + exp(x)) without overflow or loss of precision for large |x|.
inline double softplus(double x) { return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x)); }
inline double sigmoid(double x) {
  if (x >= 0) return 1.0 / (1.0 + std::exp(-x));
  const double e = std::exp(x);
  return e / (1.0 + e);
}
}  // namespace

std::string LogisticModel::check_label(double y) const {
  if (std::isfinite(y) && y >= 0.0 && y <= 1.0) return {};
  return "a binomial label in {0, 1} (or a proportion in [0, 1])";
}

void LogisticModel::eval(std::size_t n, const double* eta, const double* y, double* nll,
                         double* dnll, double* fisher) const {
  for (std::size_t i = 0; i < n; ++i) {
    const double e = eta[i];
    if (nll) nll[i] = softplus(e) - y[i] * e;
    if (dnll || fisher) {
      const double p = sigmoid(e);
      if (dnll) dnll[i] = p - y[i];
      if (fisher) fisher[i] = p * (1.0 - p);
    }
  }
}

std::unique_ptr<Model> make_model(const std::string& family, const std::string& link) {
  if (family == "binomial" || family == "logistic") {
    if (link.empty() || link == "logit") return std::make_unique<LogisticModel>();
    throw Error("--link " + link + " is not available for family " + family +
                " (expected: logit)");
  }
  throw Error("unknown --family '" + family + "' (expected: binomial)");
}

}  // namespace natgrad
