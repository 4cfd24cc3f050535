#pragma once
/// \file shard.hpp
/// The rows of the dataset one rank holds. Local data, no MPI.
#include <cstdint>
#include <string>
#include <vector>

namespace natgrad {

/// Row-major design matrix and per-row vectors of this rank.
///  - x: n_rows * n_cols doubles, row i at x[i * n_cols]. If the fit has an intercept
///    its column of ones is column 0 (added by the reader, named "(Intercept)").
///  - y: labels; weight: prior weights (empty = all 1); offset: linear-predictor
///    offsets (empty = all 0).
///  - first_row: global index of this rank's first row; n_global: rows on all ranks.
struct Shard {
  std::int64_t n_rows = 0;
  std::int64_t n_cols = 0;
  std::int64_t first_row = 0;
  std::int64_t n_global = 0;
  std::vector<double> x;
  std::vector<double> y;
  std::vector<double> weight;
  std::vector<double> offset;
  std::vector<std::string> names;  ///< one per column of x
  std::string source;              ///< where the rows came from, for messages

  const double* row(std::int64_t i) const { return x.data() + i * n_cols; }
  std::size_t bytes() const {
    return (x.capacity() + y.capacity() + weight.capacity() + offset.capacity()) * sizeof(double);
  }
};

/// Prepends a column of ones named "(Intercept)" (local).
void add_intercept(Shard& shard);

}  // namespace natgrad
