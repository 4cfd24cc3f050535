// LIBSVM / svmlight: each rank parses the lines of its byte range into sparse rows
// (OpenMP: each thread a contiguous block of a chunk's lines), the ranks agree on the
// number of features (allreduce max), and the rows are then stored densely.
#include <omp.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "natgrad/core/error.hpp"
#include "natgrad/core/partition.hpp"
#include "natgrad/io/reader.hpp"
#include "io/reader_detail.hpp"

namespace natgrad {

void reader_detail::ParsedRows::append(const ParsedRows& o) {
  const std::int64_t base = ptr.back();
  for (std::size_t r = 1; r < o.ptr.size(); ++r) ptr.push_back(base + o.ptr[r]);
  index.insert(index.end(), o.index.begin(), o.index.end());
  value.insert(value.end(), o.value.begin(), o.value.end());
  label.insert(label.end(), o.label.begin(), o.label.end());
  line.insert(line.end(), o.line.begin(), o.line.end());
  max_index = std::max(max_index, o.max_index);
}

namespace {

using namespace reader_detail;

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

/// The next whitespace-separated token of \p s at or after \p pos ("" at the end).
std::string_view next_token(std::string_view s, std::size_t& pos) {
  while (pos < s.size() && is_space(s[pos])) ++pos;
  const std::size_t b = pos;
  while (pos < s.size() && !is_space(s[pos])) ++pos;
  return s.substr(b, pos - b);
}

/// Parses one line into \p out (a row, unless the line is only a comment). Returns the
/// error (without file and line), or "".
std::string parse_pairs(std::string_view line, std::int64_t local_line, ParsedRows& out) {
  const std::size_t hash = line.find('#');
  if (hash != std::string_view::npos) line = line.substr(0, hash);
  std::size_t pos = 0;
  const std::string_view label = next_token(line, pos);
  if (label.empty()) return {};  // a comment line
  double y = 0.0;
  if (!parse_double(label, y)) return "label '" + shown(label) + "' is not a number";
  if (!std::isfinite(y)) return "label is not finite (" + shown(label) + ")";
  std::int64_t prev = 0;
  for (;;) {
    const std::string_view tok = next_token(line, pos);
    if (tok.empty()) break;
    const std::size_t colon = tok.find(':');
    if (colon == std::string_view::npos || colon == 0)
      return "'" + shown(tok) + "' is not an index:value pair";
    const std::string_view key = tok.substr(0, colon), val = tok.substr(colon + 1);
    if (key == "qid") continue;
    std::int64_t idx = -1;
    const auto [p, ec] = std::from_chars(key.data(), key.data() + key.size(), idx);
    if (ec != std::errc() || p != key.data() + key.size() || idx < 0)
      return "'" + shown(tok) +
             "' is not an index:value pair (the index must be a positive integer)";
    if (idx == 0) return "feature index 0 in '" + shown(tok) + "': indices start at 1";
    if (idx == prev) return "duplicate feature index " + std::to_string(idx);
    if (idx < prev)
      return "feature index " + std::to_string(idx) + " after " + std::to_string(prev) +
             ": indices must be strictly increasing";
    double v = 0.0;
    if (!parse_double(val, v))
      return "feature " + std::to_string(idx) + ": value '" + shown(val) + "' is not a number";
    if (!std::isfinite(v))
      return "feature " + std::to_string(idx) + ": value is not finite (" + shown(val) + ")";
    prev = idx;
    out.index.push_back(idx);
    out.value.push_back(v);
  }
  out.label.push_back(y);
  out.line.push_back(local_line);
  out.ptr.push_back(static_cast<std::int64_t>(out.index.size()));
  out.max_index = std::max(out.max_index, prev);
  return {};
}

/// parse_pairs, leaving \p out as it was when the line is bad.
std::string parse_line(std::string_view line, std::int64_t local_line, ParsedRows& out) {
  const std::size_t n0 = out.index.size();
  std::string err = parse_pairs(line, local_line, out);
  if (!err.empty()) {
    out.index.resize(n0);
    out.value.resize(n0);
  }
  return err;
}

/// Parses a chunk's lines: each thread a contiguous block, merged in order (block 0
/// appends to \p rows itself while the others fill their own). Returns
/// false (with \p err set, rows after the bad line dropped) at the first bad line.
bool parse_chunk(const std::string& buf, const std::vector<LineSpan>& spans, int threads,
                 ParsedRows& rows, LocalError& err) {
  const auto n = static_cast<std::int64_t>(spans.size());
  const int nt = static_cast<int>(std::max<std::int64_t>(1, std::min<std::int64_t>(threads, n)));
  std::vector<ParsedRows> part(static_cast<std::size_t>(nt));
  std::vector<LocalError> part_err(static_cast<std::size_t>(nt));
#pragma omp parallel num_threads(nt)
  {
    const int t = omp_get_thread_num(), got = omp_get_num_threads();
    // Blocks by the team actually granted; with fewer threads, one thread does more.
    for (int b = t; b < nt; b += got) {
      const Range r = partition(n, b, nt);
      // Block 0 goes straight into rows (no copy); the others are appended after it.
      ParsedRows& out = b == 0 ? rows : part[static_cast<std::size_t>(b)];
      for (std::int64_t k = r.begin; k < r.end; ++k) {
        const LineSpan& s = spans[static_cast<std::size_t>(k)];
        std::string e;
        try {  // no exception may leave the parallel region
          e = parse_line(std::string_view(buf.data() + s.begin, s.end - s.begin), s.line, out);
        } catch (const std::bad_alloc&) {
          e = "out of memory";
        }
        if (!e.empty()) {
          part_err[static_cast<std::size_t>(b)] = {s.line, std::move(e)};
          break;
        }
      }
    }
  }
  for (std::size_t b = 0; b < part.size(); ++b) {
    if (b > 0) rows.append(part[b]);
    if (part_err[b].any()) {
      err = part_err[b];
      return false;
    }
  }
  return true;
}

}  // namespace

LibsvmPart reader_detail::parse_libsvm_part(const ReadOptions& opts, int rank, int size) {
  const std::string& path = opts.path;
  LibsvmPart part;
  File file(path);
  std::int64_t body_begin = 0;
  if (!file.ok()) {
    part.error = path + ": cannot open: " + file.error();
    return part;
  }
  std::string bom;
  if (!file.append(bom, 0, 3)) {
    part.error = path + ": read error: " + file.error();
    return part;
  }
  if (bom == "\xEF\xBB\xBF") body_begin = 3;

  const int threads = std::max(opts.threads, 1);
  const Range mine = partition(file.size() - body_begin, rank, size);
  std::string read_err;
  try {
    read_err = for_each_line_chunk(file, body_begin, mine, part.lines,
                                   [&](const std::string& buf, const std::vector<LineSpan>& spans) {
                                     return parse_chunk(buf, spans, threads, part.rows, part.bad);
                                   });
  } catch (const std::bad_alloc&) {  // fail with the others, not alone
    read_err = "out of memory after " + std::to_string(part.rows.rows()) + " rows of this rank";
  }
  if (!read_err.empty() && !part.bad.any()) part.bad = {-1, read_err};
  return part;
}

Shard read_libsvm(const ReadOptions& opts, const Communicator& comm) {
  const std::string& path = opts.path;
  LibsvmPart part = parse_libsvm_part(opts, comm.rank(), comm.size());
  comm.check(part.error.empty(), part.error);
  ParsedRows& rows = part.rows;
  LocalError& local = part.bad;
  const int threads = std::max(opts.threads, 1);

  // Collectives in the same order on every rank, failed or not.
  const std::int64_t line0 = comm.exscan_sum(part.lines);
  Shard shard;
  shard.n_rows = rows.rows();
  shard.first_row = comm.exscan_sum(shard.n_rows);
  comm.check(!local.any(), located(path, local, line0));

  // Columns: 0 the label, j the feature of index j. Labels: -1/+1 files become 0/1.
  std::int64_t agreed[3] = {rows.max_index, 0, 0};  // max index, any -1, any other label
  for (const double y : rows.label) {
    if (y == -1.0)
      agreed[1] = 1;
    else if (y != 1.0)
      agreed[2] = 1;
  }
  comm.allreduce_max(agreed, 3);
  if (agreed[1] == 1 && agreed[2] == 0)
    for (double& y : rows.label) y = y == -1.0 ? 0.0 : y;
  const std::int64_t n_columns = agreed[0] + 1;
  ColumnRoles roles;
  std::string err =
      resolve_columns(opts,
                      {path, n_columns, std::nullopt,
                       "is a LIBSVM file, whose columns have no names (column 0 is the label, "
                       "column j the feature of index j)"},
                      roles);
  if (err.empty() && roles.label < 0 && trim(opts.columns).empty() && !roles.features.empty() &&
      roles.features.front() == 0) {
    // --label-column none: the label token (column 0) is still no feature.
    roles.features.erase(roles.features.begin());
    roles.names.pop_back();  // names are x1..xP by feature order
  }
  comm.check(err.empty(), err);

  // Dense rows.
  const auto p = static_cast<std::int64_t>(roles.features.size());
  const bool has_w = roles.weight >= 0, has_o = roles.offset >= 0;
  const std::int64_t n = rows.rows();
  try {
    shard.x.reserve(
        static_cast<std::size_t>(n * (p + (opts.intercept ? 1 : 0))));  // see add_intercept
    shard.x.assign(static_cast<std::size_t>(n * p), 0.0);
    shard.y.assign(static_cast<std::size_t>(n), 0.0);
    if (has_w) shard.weight.assign(shard.y.size(), 0.0);
    if (has_o) shard.offset.assign(shard.y.size(), 0.0);
  } catch (const std::bad_alloc&) {
    local.what = "cannot allocate " + std::to_string(n) + " dense rows of " + std::to_string(p) +
                 " features (the largest feature index is " + std::to_string(agreed[0]) + ")";
  }
  if (!local.any()) {
    const std::vector<std::int32_t> role = roles.role_of_column(n_columns);
    std::int64_t first_bad = n;
#pragma omp parallel for num_threads(threads) schedule(static) reduction(min : first_bad)
    for (std::int64_t i = 0; i < n; ++i) {
      const auto r = static_cast<std::size_t>(i);
      double* xr = shard.x.data() + i * p;
      auto put = [&](std::int64_t col, double v) {
        const std::int32_t k = role[static_cast<std::size_t>(col)];
        if (k >= 0)
          xr[k] = v;
        else if (k == ColumnRoles::kLabel)
          shard.y[r] = v;
        else if (k == ColumnRoles::kWeight)
          shard.weight[r] = v;
        else if (k == ColumnRoles::kOffset)
          shard.offset[r] = v;
      };
      put(0, rows.label[r]);
      for (std::int64_t e = rows.ptr[r]; e < rows.ptr[r + 1]; ++e)
        put(rows.index[static_cast<std::size_t>(e)], rows.value[static_cast<std::size_t>(e)]);
      if (has_w && shard.weight[r] < 0.0) first_bad = std::min(first_bad, i);
    }
    if (first_bad < n) {
      const auto r = static_cast<std::size_t>(first_bad);
      local = {rows.line[r], "weight " + number_text(shard.weight[r]) + " (column " +
                                 std::to_string(roles.weight) + ") must be >= 0"};
    }
  }
  comm.check(!local.any(), located(path, local, line0));

  shard.n_global = shard.n_rows;
  comm.allreduce_sum(&shard.n_global, 1);
  shard.n_cols = p;
  shard.names = std::move(roles.names);
  shard.source = path;
  return shard;
}

}  // namespace natgrad
