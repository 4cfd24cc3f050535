// Column roles of sparse tables (LIBSVM, HDF5 CSR): the map from a table column to its
// feature slot or role without O(columns) memory, and the in-place rewrite of CSR rows
// from table columns to feature slots.
#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "io/reader_detail.hpp"

namespace natgrad::reader_detail {

SparseColumnMap::SparseColumnMap(const ColumnRoles& roles, std::int64_t n, std::int64_t skip)
    : implicit_(roles.implicit_features), label_(roles.label), weight_(roles.weight), offset_(roles.offset) {
  if (implicit_) {
    for (const std::int64_t c : {roles.label, roles.weight, roles.offset, skip})
      if (c >= 0 && c < n) claimed_.push_back(c);
    std::sort(claimed_.begin(), claimed_.end());
    claimed_.erase(std::unique(claimed_.begin(), claimed_.end()), claimed_.end());
    p_ = n - static_cast<std::int64_t>(claimed_.size());
    // Nothing claimed but column 0 (which a LIBSVM row never holds: it is the label
    // token): every other column c is feature c - shift.
    shift_only_ = claimed_.empty() || (claimed_.size() == 1 && claimed_[0] == 0);
    shift_ = static_cast<std::int64_t>(claimed_.size());
  } else {
    p_ = static_cast<std::int64_t>(roles.features.size());
    for (std::size_t k = 0; k < roles.features.size(); ++k) {
      listed_.emplace_back(roles.features[k], static_cast<std::int64_t>(k));
      if (k > 0 && roles.features[k] < roles.features[k - 1]) monotone_ = false;
    }
    std::sort(listed_.begin(), listed_.end());
  }
}

std::int64_t SparseColumnMap::slot(std::int64_t c) const {
  if (implicit_) {
    const auto it = std::lower_bound(claimed_.begin(), claimed_.end(), c);
    if (it != claimed_.end() && *it == c) return -1;
    return c - static_cast<std::int64_t>(it - claimed_.begin());
  }
  const auto it = std::lower_bound(listed_.begin(), listed_.end(), std::make_pair(c, std::int64_t{-1}));
  return it != listed_.end() && it->first == c ? it->second : -1;
}

std::int32_t SparseColumnMap::role(std::int64_t c) const {
  if (c == label_) return ColumnRoles::kLabel;
  if (c == weight_) return ColumnRoles::kWeight;
  if (c == offset_) return ColumnRoles::kOffset;
  return slot(c) >= 0 ? 0 : ColumnRoles::kUnused;  // 0: "a feature" (the slot is slot(c))
}

std::vector<std::string> x_names(std::int64_t p) {
  std::vector<std::string> names;
  if (p > kMaxNamedColumns) return names;
  names.reserve(static_cast<std::size_t>(p));
  for (std::int64_t k = 1; k <= p; ++k) names.push_back("x" + std::to_string(k));
  return names;
}

void set_index_width(SparseRows& c, std::int64_t n_cols) {
  const bool wide = SparseRows::needs_wide(n_cols);
  if (wide == c.wide) return;
  const auto nnz = static_cast<std::size_t>(c.nnz());
  if (wide) {
    c.index64.reserve(std::max(nnz, c.index32.capacity()));
    c.index64.assign(c.index32.begin(), c.index32.begin() + static_cast<std::ptrdiff_t>(nnz));
    c.index32 = {};
  } else {
    c.index32.reserve(std::max(nnz, c.index64.capacity()));
    for (std::size_t k = 0; k < nnz; ++k) c.index32.push_back(static_cast<std::uint32_t>(c.index64[k]));
    c.index64 = {};
  }
  c.wide = wide;
}

namespace {

template <class Index>
std::int64_t remap_rows(SparseRows& c, std::vector<Index>& idx, const SparseColumnMap& map, std::vector<double>& y,
                        std::vector<double>& weight, std::vector<double>& offset, int threads) {
  const auto n = static_cast<std::int64_t>(c.row_ptr.size()) - 1;
  std::int64_t bad_weight = -1;
  if (map.is_shift()) {  // the common case: only the label column (0) is claimed
    const auto s = static_cast<Index>(map.shift());
    const std::int64_t nnz = c.nnz();
#pragma omp parallel for num_threads(std::max(threads, 1)) schedule(static)
    for (std::int64_t k = 0; k < nnz; ++k) idx[static_cast<std::size_t>(k)] -= s;
    return -1;
  }
  // In place, front to back: a row's kept entries never move past where they were read.
  std::int64_t out = 0, begin = 0;
  for (std::int64_t r = 0; r < n; ++r) {
    const std::int64_t end = c.row_ptr[static_cast<std::size_t>(r) + 1];
    const std::int64_t row_out = out;
    for (std::int64_t k = begin; k < end; ++k) {
      const auto col = static_cast<std::int64_t>(idx[static_cast<std::size_t>(k)]);
      const double v = c.values[static_cast<std::size_t>(k)];
      const std::int32_t role = map.role(col);
      if (role >= 0) {
        idx[static_cast<std::size_t>(out)] = static_cast<Index>(map.slot(col));
        c.values[static_cast<std::size_t>(out)] = v;
        ++out;
      } else if (role == ColumnRoles::kLabel && !y.empty()) {
        y[static_cast<std::size_t>(r)] = v;
      } else if (role == ColumnRoles::kWeight && !weight.empty()) {
        weight[static_cast<std::size_t>(r)] = v;
        if (!(v >= 0.0) && bad_weight < 0) bad_weight = r;
      } else if (role == ColumnRoles::kOffset && !offset.empty()) {
        offset[static_cast<std::size_t>(r)] = v;
      }
    }
    if (!map.monotone() && out - row_out > 1) {
      std::vector<std::pair<Index, double>> row;
      for (std::int64_t k = row_out; k < out; ++k)
        row.emplace_back(idx[static_cast<std::size_t>(k)], c.values[static_cast<std::size_t>(k)]);
      std::sort(row.begin(), row.end());
      for (std::int64_t k = row_out; k < out; ++k) {
        idx[static_cast<std::size_t>(k)] = row[static_cast<std::size_t>(k - row_out)].first;
        c.values[static_cast<std::size_t>(k)] = row[static_cast<std::size_t>(k - row_out)].second;
      }
    }
    begin = end;
    c.row_ptr[static_cast<std::size_t>(r) + 1] = out;
  }
  idx.resize(static_cast<std::size_t>(out));  // keeps the capacity (room for the intercept)
  c.values.resize(static_cast<std::size_t>(out));
  return bad_weight;
}

}  // namespace

std::int64_t remap_sparse_rows(SparseRows& c, const SparseColumnMap& map, std::vector<double>& y,
                               std::vector<double>& weight, std::vector<double>& offset, int threads) {
  const std::int64_t bad = c.wide ? remap_rows(c, c.index64, map, y, weight, offset, threads)
                                  : remap_rows(c, c.index32, map, y, weight, offset, threads);
  set_index_width(c, map.features());
  return bad;
}

}  // namespace natgrad::reader_detail
