// LIBSVM / svmlight: each rank parses the lines of its byte range straight into CSR
// arrays, in two passes (count, then parse into arrays of the exact size; OpenMP: each
// thread a contiguous block of a chunk's lines), the ranks agree on the number of
// features (allreduce max), and the column roles rewrite the rows in place. The shard
// is sparse; load_shard decides the layout.
#include <omp.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
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
  const std::int64_t base = csr.nnz();
  if (o.csr.wide) set_index_width(csr, std::numeric_limits<std::int64_t>::max());
  for (std::size_t r = 1; r < o.csr.row_ptr.size(); ++r) csr.row_ptr.push_back(base + o.csr.row_ptr[r]);
  for (std::int64_t k = 0; k < o.csr.nnz(); ++k) {
    if (csr.wide) csr.index64.push_back(o.csr.index(k));
    else csr.index32.push_back(static_cast<std::uint32_t>(o.csr.index(k)));
  }
  csr.values.insert(csr.values.end(), o.csr.values.begin(), o.csr.values.begin() + static_cast<std::ptrdiff_t>(o.csr.nnz()));
  label.insert(label.end(), o.label.begin(), o.label.end());
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

std::string_view without_comment(std::string_view line) {
  const std::size_t hash = line.find('#');
  return hash == std::string_view::npos ? line : line.substr(0, hash);
}

/// The first pass: rows, pairs (tokens after the label but qid:) and the largest index of
/// a block of lines, without parsing values. For a valid line the counts are exactly what
/// the second pass stores.
struct Count {
  std::int64_t rows = 0, pairs = 0, max_index = 0;
};

void count_line(std::string_view line, Count& c) {
  line = without_comment(line);
  std::size_t pos = 0;
  if (next_token(line, pos).empty()) return;  // a comment line
  ++c.rows;
  for (;;) {
    const std::string_view tok = next_token(line, pos);
    if (tok.empty()) break;
    const std::size_t colon = tok.find(':');
    if (colon == 3 && tok.substr(0, 3) == "qid") continue;
    ++c.pairs;
    std::int64_t idx = 0;
    if (colon != std::string_view::npos &&
        std::from_chars(tok.data(), tok.data() + colon, idx).ptr == tok.data() + colon)
      c.max_index = std::max(c.max_index, idx);
  }
}

/// Where the second pass writes: the part's CSR arrays, sized from the counts.
struct Sink {
  SparseRows* csr;
  double* label;
  std::int64_t n_features;  ///< > 0: largest allowed index (--n-features)
};

/// Parses one line into row \p row (< \p row_end) at pair position \p pos (advanced, <
/// \p pos_end), unless the line is only a comment (then \p is_row is false). Returns the error (without file and line),
/// or "".
std::string parse_line(std::string_view line, const Sink& out, std::int64_t row, std::int64_t row_end,
                       std::int64_t& pos, std::int64_t pos_end, std::int64_t& max_index, bool& is_row) {
  line = without_comment(line);
  std::size_t at = 0;
  const std::string_view label = next_token(line, at);
  is_row = !label.empty();
  if (!is_row) return {};
  if (row >= row_end) return "the file changed while it was read";
  double y = 0.0;
  if (!parse_double(label, y)) return "label '" + shown(label) + "' is not a number";
  if (!std::isfinite(y)) return "label is not finite (" + shown(label) + ")";
  SparseRows& c = *out.csr;
  std::int64_t prev = 0;
  for (;;) {
    const std::string_view tok = next_token(line, at);
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
    if (out.n_features > 0 && idx > out.n_features)
      return "feature index " + std::to_string(idx) + " is above --n-features " + std::to_string(out.n_features);
    double v = 0.0;
    if (!parse_double(val, v))
      return "feature " + std::to_string(idx) + ": value '" + shown(val) + "' is not a number";
    if (!std::isfinite(v))
      return "feature " + std::to_string(idx) + ": value is not finite (" + shown(val) + ")";
    if (pos >= pos_end || (!c.wide && idx > static_cast<std::int64_t>(std::numeric_limits<std::uint32_t>::max())))
      return "the file changed while it was read";
    prev = idx;
    const auto k = static_cast<std::size_t>(pos++);
    if (c.wide) c.index64[k] = idx;
    else c.index32[k] = static_cast<std::uint32_t>(idx);
    c.values[k] = v;
  }
  out.label[row] = y;
  c.row_ptr[static_cast<std::size_t>(row) + 1] = pos;
  max_index = std::max(max_index, prev);
  return {};
}

/// The blocks of a chunk's lines that its threads take (by the team size asked for, so
/// that the two passes cut the same blocks).
int blocks_of(std::size_t lines, int threads) {
  return static_cast<int>(std::max<std::int64_t>(1, std::min<std::int64_t>(threads, static_cast<std::int64_t>(lines))));
}

/// Pass 1 over a chunk: each block's counts, appended to \p counts.
void count_chunk(const std::string& buf, const std::vector<LineSpan>& spans, int threads, std::vector<Count>& counts) {
  const auto n = static_cast<std::int64_t>(spans.size());
  const int nt = blocks_of(spans.size(), threads);
  const std::size_t first = counts.size();
  counts.resize(first + static_cast<std::size_t>(nt));
#pragma omp parallel num_threads(nt)
  {
    const int t = omp_get_thread_num(), got = omp_get_num_threads();
    for (int b = t; b < nt; b += got) {
      const Range r = partition(n, b, nt);
      Count c;
      for (std::int64_t k = r.begin; k < r.end; ++k) {
        const LineSpan& s = spans[static_cast<std::size_t>(k)];
        count_line(std::string_view(buf.data() + s.begin, s.end - s.begin), c);
      }
      counts[first + static_cast<std::size_t>(b)] = c;
    }
  }
}

/// Pass 2 over a chunk: each block parses its lines into the rows and pairs its counts
/// reserved. \p block_at: the chunk's first entry of \p counts; \p row / \p pos: where the
/// chunk's rows and pairs start (advanced past them). Returns false at the first bad
/// line (\p err set; the rows are cut just before it).
bool parse_chunk(const std::string& buf, const std::vector<LineSpan>& spans, int threads, const std::vector<Count>& counts,
                 std::size_t block_at, const Sink& out, std::int64_t& row, std::int64_t& pos, std::int64_t& max_index,
                 LocalError& err) {
  const auto n = static_cast<std::int64_t>(spans.size());
  const int nt = blocks_of(spans.size(), threads);
  if (block_at + static_cast<std::size_t>(nt) > counts.size()) {
    err = {-1, "the file changed while it was read"};
    return false;
  }
  struct Done {
    std::int64_t rows = 0, pairs = 0, max_index = 0;
    LocalError err;
  };
  std::vector<Done> done(static_cast<std::size_t>(nt));
  std::vector<std::int64_t> row0(static_cast<std::size_t>(nt) + 1, row), pos0(static_cast<std::size_t>(nt) + 1, pos);
  for (int b = 0; b < nt; ++b) {
    row0[b + 1] = row0[b] + counts[block_at + b].rows;
    pos0[b + 1] = pos0[b] + counts[block_at + b].pairs;
  }
  const auto rows_cap = static_cast<std::int64_t>(out.csr->row_ptr.size()) - 1;
  const auto pos_cap = static_cast<std::int64_t>(out.csr->values.size());
  if (row0[nt] > rows_cap || pos0[nt] > pos_cap) {
    err = {-1, "the file changed while it was read"};
    return false;
  }
#pragma omp parallel num_threads(nt)
  {
    const int t = omp_get_thread_num(), got = omp_get_num_threads();
    for (int b = t; b < nt; b += got) {
      const Range r = partition(n, b, nt);
      Done& d = done[static_cast<std::size_t>(b)];
      std::int64_t p = pos0[b];
      for (std::int64_t k = r.begin; k < r.end; ++k) {
        const LineSpan& s = spans[static_cast<std::size_t>(k)];
        bool is_row = false;
        std::string e;
        try {  // no exception may leave the parallel region
          e = parse_line(std::string_view(buf.data() + s.begin, s.end - s.begin), out, row0[b] + d.rows, row0[b + 1],
                         p, pos0[b + 1], d.max_index, is_row);
        } catch (const std::bad_alloc&) {
          e = "out of memory";
        }
        if (!e.empty()) {
          d.err = {s.line, std::move(e)};
          break;
        }
        if (is_row) ++d.rows;
      }
      d.pairs = p - pos0[b];
    }
  }
  for (int b = 0; b < nt; ++b) {
    const Done& d = done[static_cast<std::size_t>(b)];
    max_index = std::max(max_index, d.max_index);
    if (d.err.any()) {
      err = d.err;
      row = row0[b] + d.rows;
      pos = out.csr->row_ptr[static_cast<std::size_t>(row)];
      return false;
    }
    if (d.rows != counts[block_at + b].rows || d.pairs != counts[block_at + b].pairs) {
      err = {-1, "the file changed while it was read"};
      row = row0[b];
      pos = out.csr->row_ptr[static_cast<std::size_t>(row)];
      return false;
    }
  }
  row = row0[nt];
  pos = pos0[nt];
  return true;
}

/// Opens the file and finds the body (after a UTF-8 byte-order mark). "" or the error.
std::string open_body(const std::string& path, File& file, std::int64_t& body_begin) {
  body_begin = 0;
  if (!file.ok()) return path + ": cannot open: " + file.error();
  std::string bom;
  if (!file.append(bom, 0, 3)) return path + ": read error: " + file.error();
  if (bom == "\xEF\xBB\xBF") body_begin = 3;
  return {};
}

}  // namespace

LibsvmPart reader_detail::parse_libsvm_part(const ReadOptions& opts, int rank, int size) {
  const std::string& path = opts.path;
  LibsvmPart part;
  File file(path);
  std::int64_t body_begin = 0;
  part.error = open_body(path, file, body_begin);
  if (!part.error.empty()) return part;

  const int threads = std::max(opts.threads, 1);
  const Range mine = partition(file.size() - body_begin, rank, size);
  ParsedRows& rows = part.rows;
  std::string read_err;
  try {
    // Pass 1: count rows and pairs per block of lines, so that pass 2 writes the CSR
    // arrays in place, sized exactly (no growth, no copy: peak memory is the CSR itself).
    std::vector<Count> counts;
    read_err = for_each_line_chunk(file, body_begin, mine, part.lines,
                                   [&](const std::string& buf, const std::vector<LineSpan>& spans) {
                                     count_chunk(buf, spans, threads, counts);
                                     return true;
                                   });
    Count total;
    for (const Count& c : counts) {
      total.rows += c.rows;
      total.pairs += c.pairs;
      total.max_index = std::max(total.max_index, c.max_index);
    }
    if (read_err.empty()) {
      SparseRows& c = rows.csr;
      c.wide = SparseRows::needs_wide(total.max_index + 1);
      // Room for add_intercept's column of ones: it then moves the entries in place.
      const auto room = static_cast<std::size_t>(total.pairs + (opts.intercept ? total.rows : 0));
      c.values.reserve(room);
      c.values.resize(static_cast<std::size_t>(total.pairs));
      if (c.wide) {
        c.index64.reserve(room);
        c.index64.resize(static_cast<std::size_t>(total.pairs));
      } else {
        c.index32.reserve(room);
        c.index32.resize(static_cast<std::size_t>(total.pairs));
      }
      c.row_ptr.assign(static_cast<std::size_t>(total.rows) + 1, 0);
      rows.label.assign(static_cast<std::size_t>(total.rows), 0.0);

      // Pass 2: parse into the arrays.
      const Sink sink{&c, rows.label.data(), opts.n_features};
      std::int64_t row = 0, pos = 0, lines2 = 0;
      std::size_t block_at = 0;
      read_err = for_each_line_chunk(file, body_begin, mine, lines2,
                                     [&](const std::string& buf, const std::vector<LineSpan>& spans) {
                                       const bool ok = parse_chunk(buf, spans, threads, counts, block_at, sink, row,
                                                                   pos, rows.max_index, part.bad);
                                       block_at += static_cast<std::size_t>(blocks_of(spans.size(), threads));
                                       return ok;
                                     });
      // Cut at a bad line (and keep pass 1's line count, which covers the whole range).
      rows.label.resize(static_cast<std::size_t>(row));
      c.row_ptr.resize(static_cast<std::size_t>(row) + 1);
      c.values.resize(static_cast<std::size_t>(pos));
      if (c.wide) c.index64.resize(static_cast<std::size_t>(pos));
      else c.index32.resize(static_cast<std::size_t>(pos));
      if (part.bad.any()) part.lines = lines2;
    }
  } catch (const std::bad_alloc&) {  // fail with the others, not alone
    read_err = "out of memory reading the rows of this rank";
  }
  if (!read_err.empty() && !part.bad.any()) part.bad = {-1, read_err};
  return part;
}

std::int64_t reader_detail::libsvm_line_of_row(const ReadOptions& opts, int rank, int size, std::int64_t row) {
  File file(opts.path);
  std::int64_t body_begin = 0, lines = 0, seen = 0, found = -1;
  if (!open_body(opts.path, file, body_begin).empty()) return -1;
  const Range mine = partition(file.size() - body_begin, rank, size);
  for_each_line_chunk(file, body_begin, mine, lines, [&](const std::string& buf, const std::vector<LineSpan>& spans) {
    for (const LineSpan& s : spans) {
      std::size_t at = 0;
      if (next_token(without_comment(std::string_view(buf.data() + s.begin, s.end - s.begin)), at).empty()) continue;
      if (seen++ == row) {
        found = s.line;
        return false;
      }
    }
    return true;
  });
  return found;
}

namespace {

/// Column 0 (the label token) is a feature (--label-column elsewhere): each row with a
/// non-zero label token gains the entry (0, label) in front.
void insert_label_entries(ParsedRows& rows) {
  SparseRows& c = rows.csr;
  const std::int64_t n = rows.rows(), nnz = c.nnz();
  std::int64_t add = 0;
  for (const double y : rows.label) add += y != 0.0;
  c.values.resize(static_cast<std::size_t>(nnz + add));
  if (c.wide) c.index64.resize(static_cast<std::size_t>(nnz + add));
  else c.index32.resize(static_cast<std::size_t>(nnz + add));
  std::int64_t shift = add;  // entries of rows 0..i move up by the entries added up to row i
  for (std::int64_t i = n - 1; i >= 0; --i) {
    const bool has = rows.label[static_cast<std::size_t>(i)] != 0.0;
    const std::int64_t b = c.row_ptr[static_cast<std::size_t>(i)], e = c.row_ptr[static_cast<std::size_t>(i) + 1];
    c.row_ptr[static_cast<std::size_t>(i) + 1] = e + shift;
    for (std::int64_t k = e - 1; k >= b; --k) {
      const auto to = static_cast<std::size_t>(k + shift), from = static_cast<std::size_t>(k);
      c.values[to] = c.values[from];
      if (c.wide) c.index64[to] = c.index64[from];
      else c.index32[to] = c.index32[from];
    }
    if (has) {
      --shift;
      const auto at = static_cast<std::size_t>(b + shift);
      c.values[at] = rows.label[static_cast<std::size_t>(i)];
      if (c.wide) c.index64[at] = 0;
      else c.index32[at] = 0;
    }
  }
}

}  // namespace

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
  const std::int64_t n_columns = (opts.n_features > 0 ? opts.n_features : agreed[0]) + 1;
  ColumnRoles roles;
  TableColumns table{path, n_columns, std::nullopt,
                     "is a LIBSVM file, whose columns have no names (column 0 is the label, "
                     "column j the feature of index j)"};
  table.implicit_features = true;
  const std::string err = resolve_columns(opts, table, roles);
  comm.check(err.empty(), err);
  // --label-column none: the label token (column 0) is still no feature.
  const SparseColumnMap map(roles, n_columns, roles.label < 0 ? 0 : -1);

  const bool has_w = roles.weight >= 0, has_o = roles.offset >= 0;
  const std::int64_t n = rows.rows();
  std::int64_t bad_weight = -1;
  try {
    if (map.slot(0) >= 0) insert_label_entries(rows);
    if (roles.label == 0) shard.y = std::move(rows.label);
    else shard.y.assign(static_cast<std::size_t>(n), 0.0);  // from the rows, or 0 (absent, or none)
    rows.label = {};
    if (has_w) shard.weight.assign(static_cast<std::size_t>(n), 0.0);
    if (has_o) shard.offset.assign(static_cast<std::size_t>(n), 0.0);
    bad_weight = remap_sparse_rows(rows.csr, map, shard.y, shard.weight, shard.offset, threads);
  } catch (const std::bad_alloc&) {
    local.what = "out of memory arranging " + std::to_string(n) + " rows";
  }
  if (bad_weight >= 0)
    local = {libsvm_line_of_row(opts, comm.rank(), comm.size(), bad_weight),
             "weight " + number_text(shard.weight[static_cast<std::size_t>(bad_weight)]) + " (column " +
                 std::to_string(roles.weight) + ") must be >= 0"};
  comm.check(!local.any(), located(path, local, line0));

  shard.n_global = shard.n_rows;
  comm.allreduce_sum(&shard.n_global, 1);
  shard.sparse = true;
  shard.csr = std::move(rows.csr);
  shard.n_cols = map.features();
  shard.names = roles.implicit_features ? x_names(shard.n_cols) : std::move(roles.names);
  shard.source = path;
  return shard;
}

}  // namespace natgrad
