#pragma once
/// \file generator.hpp
/// Built-in datasets whose row i depends only on (seed, i): the same data at any rank
/// count. Spec syntax (also accepted by `fit --data`):
///   gen:mixture[:rows=200,cols=2,seed=1]
///       the seed's two-Gaussian mixture: label ~ Bernoulli(1/2), x ~ N(+-1, I)
///   gen:logit[:rows=100000,cols=16,seed=1,cond=100,rho=0.5,signal=2,intercept=0]
///       logistic rows with a known coefficient vector beta (true_coefficients()):
///       column j has scale cond^(-j/(cols-1)) (so scales span `cond`), columns share a
///       common factor with correlation rho, y ~ Bernoulli(sigmoid(intercept + x^T beta)),
///       beta_j = signal * b_j / (scale_j sqrt(cols)), b_j ~ N(0, 1).
#include <cstdint>
#include <string>
#include <vector>

#include "natgrad/core/shard.hpp"

namespace natgrad {

struct GeneratorSpec {
  std::string kind;  ///< "mixture" or "logit"
  std::int64_t rows = 0;
  std::int64_t cols = 0;
  std::uint64_t seed = 1;
  double cond = 100.0;
  double rho = 0.5;
  double signal = 2.0;
  double intercept = 0.0;
};

/// True if \p data starts with "gen:".
bool is_generator_spec(const std::string& data);
/// Parses "gen:KIND:k=v,..."; throws natgrad::Error on an unknown kind or key.
GeneratorSpec parse_generator_spec(const std::string& data);
/// Local: rows [begin, end) of the dataset (no intercept column).
Shard generate_rows(const GeneratorSpec& spec, std::int64_t begin, std::int64_t end,
                    int threads = 1);
/// The generating coefficients (logit: intercept first, then cols; mixture: empty).
std::vector<double> true_coefficients(const GeneratorSpec& spec);

}  // namespace natgrad
