#include "natgrad/core/shard.hpp"

#include <algorithm>

namespace natgrad {

void add_intercept(Shard& shard) {
  const std::int64_t n = shard.n_rows, p = shard.n_cols;
  if (!shard.sparse) {
    shard.x.resize(static_cast<std::size_t>(n * (p + 1)));
    double* x = shard.x.data();
    for (std::int64_t i = n - 1; i >= 0; --i) {
      std::copy_backward(x + i * p, x + i * p + p, x + i * (p + 1) + 1 + p);
      x[i * (p + 1)] = 1.0;
    }
  } else {
    // Every row gains an explicit 1 at column 0; the other indices move up by one.
    SparseRows& c = shard.csr;
    const std::int64_t nnz = c.nnz();
    const bool wide = SparseRows::needs_wide(p + 1);
    if (wide && !c.wide) {
      c.index64.assign(c.index32.begin(), c.index32.end());
      c.index32.clear();
      c.index32.shrink_to_fit();
      c.wide = true;
    }
    c.values.resize(static_cast<std::size_t>(nnz + n));
    if (c.wide) c.index64.resize(static_cast<std::size_t>(nnz + n));
    else c.index32.resize(static_cast<std::size_t>(nnz + n));
    // Back to front, in place: row i's entries move up by i + 1 slots.
    for (std::int64_t i = n - 1; i >= 0; --i) {
      const std::int64_t b = c.row_ptr[static_cast<std::size_t>(i)], e = c.row_ptr[static_cast<std::size_t>(i) + 1];
      for (std::int64_t k = e - 1; k >= b; --k) {
        const auto to = static_cast<std::size_t>(k + i + 1), from = static_cast<std::size_t>(k);
        c.values[to] = c.values[from];
        if (c.wide) c.index64[to] = c.index64[from] + 1;
        else c.index32[to] = c.index32[from] + 1;
      }
      const auto at = static_cast<std::size_t>(b + i);
      c.values[at] = 1.0;
      if (c.wide) c.index64[at] = 0;
      else c.index32[at] = 0;
    }
    for (std::int64_t i = 0; i <= n; ++i) c.row_ptr[static_cast<std::size_t>(i)] += i;
  }
  shard.n_cols = p + 1;
  shard.names.insert(shard.names.begin(), "(Intercept)");
}

namespace {
/// \p s without its design matrix (neither x nor csr): the row vectors and metadata.
Shard rows_without_design(const Shard& s) {
  Shard d;
  d.n_rows = s.n_rows;
  d.n_cols = s.n_cols;
  d.first_row = s.first_row;
  d.n_global = s.n_global;
  d.y = s.y;
  d.weight = s.weight;
  d.offset = s.offset;
  d.names = s.names;
  d.source = s.source;
  d.rows_dropped = s.rows_dropped;
  d.missing = s.missing;
  return d;
}
}  // namespace

Shard densified(const Shard& s) {
  if (!s.sparse) return s;
  Shard d = rows_without_design(s);
  d.x.assign(static_cast<std::size_t>(s.n_rows * s.n_cols), 0.0);
  for (std::int64_t i = 0; i < s.n_rows; ++i)
    s.for_each_nonzero(i, [&](std::int64_t j, double v) { d.x[static_cast<std::size_t>(i * s.n_cols + j)] = v; });
  return d;
}

Shard sparsified(const Shard& s) {
  if (s.sparse) return s;
  Shard d = rows_without_design(s);
  d.sparse = true;
  SparseRows& c = d.csr;
  c.wide = SparseRows::needs_wide(s.n_cols);
  c.row_ptr.assign(static_cast<std::size_t>(s.n_rows + 1), 0);
  for (std::int64_t i = 0; i < s.n_rows; ++i) {
    const double* r = s.row(i);
    for (std::int64_t j = 0; j < s.n_cols; ++j) {
      if (r[j] == 0) continue;
      c.values.push_back(r[j]);
      if (c.wide) c.index64.push_back(j);
      else c.index32.push_back(static_cast<std::uint32_t>(j));
    }
    c.row_ptr[static_cast<std::size_t>(i) + 1] = static_cast<std::int64_t>(c.values.size());
  }
  return d;
}

}  // namespace natgrad
