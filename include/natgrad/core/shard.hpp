#pragma once
/// \file shard.hpp
/// The rows of the dataset one rank holds, dense (row-major) or sparse (CSR). Local data,
/// no MPI.
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

namespace natgrad {

/// Compressed sparse rows: row i's nonzeros are entries [row_ptr[i], row_ptr[i+1]) of the
/// column indices and values, columns strictly increasing within a row. The column
/// index width is chosen for the data: 32-bit indices when every column index fits
/// (n_cols <= 2^32), 64-bit otherwise; exactly one of index32 / index64 is used.
/// Row pointers are 64-bit (a rank may hold more than 2^32 nonzeros).
struct SparseRows {
  std::vector<std::int64_t> row_ptr;     ///< n_rows + 1 offsets, row_ptr[0] = 0
  std::vector<std::uint32_t> index32;    ///< column indices (narrow)
  std::vector<std::int64_t> index64;     ///< column indices (wide)
  std::vector<double> values;            ///< nonzero values
  bool wide = false;                     ///< index64 in use

  /// Whether columns 0 .. n_cols-1 need 64-bit indices.
  static bool needs_wide(std::int64_t n_cols) {
    return n_cols > static_cast<std::int64_t>(std::numeric_limits<std::uint32_t>::max()) + 1;
  }
  std::int64_t nnz() const { return row_ptr.empty() ? 0 : row_ptr.back(); }
  std::int64_t index(std::int64_t k) const {
    return wide ? index64[static_cast<std::size_t>(k)] : static_cast<std::int64_t>(index32[static_cast<std::size_t>(k)]);
  }
  /// Calls f(indices) with a pointer to the index array of the width in use, so that a
  /// kernel is instantiated for each width: with_indices([&](const auto* idx) { ... }).
  template <class F>
  decltype(auto) with_indices(F&& f) const {
    return wide ? f(index64.data()) : f(index32.data());
  }
  std::size_t bytes() const {
    return row_ptr.capacity() * sizeof(std::int64_t) + index32.capacity() * sizeof(std::uint32_t) +
           index64.capacity() * sizeof(std::int64_t) + values.capacity() * sizeof(double);
  }
};

/// This rank's design matrix and per-row vectors.
///  - Dense (sparse == false): x holds n_rows * n_cols doubles, row i at x[i * n_cols].
///  - Sparse (sparse == true): csr holds the rows, x is empty.
///  If the fit has an intercept its column of ones is column 0 (added by the reader,
///  named "(Intercept)"; stored as an explicit nonzero in every sparse row).
///  - y: labels; weight: prior weights (empty = all 1); offset: linear-predictor
///    offsets (empty = all 0).
///  - first_row: global index of this rank's first row; n_global: rows on all ranks.
/// Code that does not need speed reads either layout through dot() and for_each_nonzero().
struct Shard {
  std::int64_t n_rows = 0;
  std::int64_t n_cols = 0;
  std::int64_t first_row = 0;
  std::int64_t n_global = 0;
  bool sparse = false;
  std::vector<double> x;
  SparseRows csr;
  std::vector<double> y;
  std::vector<double> weight;
  std::vector<double> offset;
  std::vector<std::string> names;  ///< one per column
  std::string source;              ///< where the rows came from, for messages
  /// Rows left out for missing values (ReadOptions::Na::omit; CSV: an empty, NA or NaN
  /// field in a used column), over all ranks; 0 for the other readers.
  std::int64_t rows_dropped = 0;
  /// Per column with missing values in the dropped rows, over all ranks: its header name
  /// (or "column N", 0-based, without a header) and the count; in column order.
  std::vector<std::pair<std::string, std::int64_t>> missing;

  /// Dense shards only: row i's n_cols values.
  const double* row(std::int64_t i) const { return x.data() + i * n_cols; }
  /// sum_j x_ij v[j], either layout.
  double dot(std::int64_t i, const double* v) const {
    if (!sparse) {
      const double* r = row(i);
      double s = 0;
      for (std::int64_t j = 0; j < n_cols; ++j) s += r[j] * v[j];
      return s;
    }
    double s = 0;
    for (std::int64_t k = csr.row_ptr[static_cast<std::size_t>(i)]; k < csr.row_ptr[static_cast<std::size_t>(i) + 1]; ++k)
      s += csr.values[static_cast<std::size_t>(k)] * v[csr.index(k)];
    return s;
  }
  /// f(j, x_ij) for row i's stored entries: every column of a dense row (zeros included),
  /// the nonzeros of a sparse one, by increasing j.
  template <class F>
  void for_each_nonzero(std::int64_t i, F&& f) const {
    if (!sparse) {
      const double* r = row(i);
      for (std::int64_t j = 0; j < n_cols; ++j) f(j, r[j]);
      return;
    }
    for (std::int64_t k = csr.row_ptr[static_cast<std::size_t>(i)]; k < csr.row_ptr[static_cast<std::size_t>(i) + 1]; ++k)
      f(csr.index(k), csr.values[static_cast<std::size_t>(k)]);
  }
  /// Stored design entries on this rank: n_rows * n_cols (dense) or the nonzeros.
  std::int64_t stored() const { return sparse ? csr.nnz() : n_rows * n_cols; }
  std::size_t bytes() const {
    return (x.capacity() + y.capacity() + weight.capacity() + offset.capacity()) * sizeof(double) + csr.bytes();
  }
};

/// Prepends a column of ones named "(Intercept)" (local; either layout).
void add_intercept(Shard& shard);

/// Local. The dense copy of a sparse shard (the shard itself when dense). For tests and
/// for small data only: it allocates n_rows * n_cols doubles.
Shard densified(const Shard& shard);

/// Local. The CSR copy of a dense shard (only its nonzeros; 32-bit indices unless the
/// column count needs 64).
Shard sparsified(const Shard& shard);

}  // namespace natgrad
