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
///   gen:sparse-logit[:rows=10000,cols=1000,nnz=10,seed=1,zipf=1,signal=2,intercept=0]
///   gen:sparse-poisson[:... the same keys, signal=0.5]
///       sparse binary rows (CSR shards): each row has nnz distinct columns, drawn with
///       probability ~ 1/(j+1)^zipf (column 0 the most frequent), value 1 or (with
///       probability 1/4) 2, like term counts; labels
///       y ~ Bernoulli(sigmoid(eta)) or Poisson(exp(eta)), eta = intercept + x^T beta,
///       beta_j = signal b_j / sqrt(nnz), b_j ~ N(0, 1) (true_coefficients()).
#include <cstdint>
#include <string>
#include <vector>

#include "natgrad/core/shard.hpp"

namespace natgrad {

struct GeneratorSpec {
  std::string kind;  ///< "mixture", "logit", "sparse-logit" or "sparse-poisson"
  std::int64_t rows = 0;
  std::int64_t cols = 0;
  std::uint64_t seed = 1;
  double cond = 100.0;
  double rho = 0.5;
  double signal = 2.0;
  double intercept = 0.0;
  std::int64_t nnz = 10;  ///< sparse kinds: non-zeros per row (<= cols)
  double zipf = 1.0;      ///< sparse kinds: column j drawn with probability ~ 1/(j+1)^zipf
  bool sparse() const { return kind.rfind("sparse-", 0) == 0; }
};

/// True if \p data starts with "gen:".
bool is_generator_spec(const std::string& data);
/// Parses "gen:KIND:k=v,..."; throws natgrad::Error on an unknown kind or key.
GeneratorSpec parse_generator_spec(const std::string& data);
/// Local: rows [begin, end) of the dataset (no intercept column). Sparse kinds give a
/// CSR shard (sized exactly; with \p intercept_room, room for add_intercept's column).
Shard generate_rows(const GeneratorSpec& spec, std::int64_t begin, std::int64_t end,
                    int threads = 1, bool intercept_room = false);
/// The generating coefficients (logit, sparse kinds: intercept first, then cols; mixture: empty).
std::vector<double> true_coefficients(const GeneratorSpec& spec);

}  // namespace natgrad
