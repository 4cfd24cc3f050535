#pragma once
// Naive reference implementations: loops over rows with rank-1 updates, written for
// clarity, independent of the BLAS kernels they check.
#include <cstdint>
#include <string>
#include <vector>

#include "core/kernels.hpp"
#include "natgrad/core/model.hpp"
#include "natgrad/core/shard.hpp"

namespace natgrad::ref {

struct Sums {
  double loss = 0;             // mean loss
  std::vector<double> grad;    // p
  std::vector<double> fisher;  // p x p (full) or p (diagonal)
};

/// Loss, gradient and Fisher of \p kind at theta over all rows of \p s. The centred
/// empirical Fisher is computed in two passes (mean score first), as numpy.cov does.
/// With an active \p sample the Fisher sums only the rows with
/// in_fisher_sample(s.first_row + i) and is divided by their weight (the centred kind
/// ignores the sample); loss and gradient still use every row.
Sums naive_sums(const Shard& s, const Model& m, const std::vector<double>& theta, FisherKind kind,
                const FisherSample& sample = {});

/// max |a - b| / max |b|.
double rel_diff(const std::vector<double>& a, const std::vector<double>& b);

/// A random shard: n rows, p columns, optional weights and offsets, labels from the
/// logistic model at a random coefficient vector.
Shard random_shard(std::int64_t n, std::int64_t p, std::uint64_t seed, bool weights, bool offsets);

/// The same shard with labels drawn for another family ("poisson", "gaussian", "gamma",
/// "multinomial" with \p classes classes).
Shard relabel(Shard s, const std::string& family, int classes, std::uint64_t seed);

}  // namespace natgrad::ref
