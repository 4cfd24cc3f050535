// CSV: header and column roles read by every rank, then each rank parses the lines of
// its byte range (OpenMP over the lines of each chunk).
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <map>
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

// ---------------------------------------------------------------------------
// Fields (RFC 4180 quoting, one line at a time): reader_detail, shared with frame.cpp

namespace reader_detail {

Next next_field(std::string_view line, std::size_t& pos, char delim, Field& f) {
  const std::size_t n = line.size();
  std::size_t i = pos;
  while (i < n && is_blank(line[i], delim)) ++i;
  if (i < n && line[i] == '"' && delim != '"') {
    const std::size_t b = ++i;
    f.quoted = true;
    f.escaped = false;
    for (;;) {
      const std::size_t q = line.find('"', i);
      if (q == std::string_view::npos) return Next::unterminated;
      if (q + 1 < n && line[q + 1] == '"') {
        f.escaped = true;
        i = q + 2;
        continue;
      }
      f.text = line.substr(b, q - b);
      i = q + 1;
      break;
    }
    while (i < n && is_blank(line[i], delim)) ++i;
    if (i == n) {
      pos = n;
      return Next::last;
    }
    if (line[i] != delim) return Next::text_after_quote;
    pos = i + 1;
    return Next::more;
  }
  const std::size_t at = line.find(delim, i);
  f.text =
      trim(line.substr(i, at == std::string_view::npos ? std::string_view::npos : at - i), delim);
  f.quoted = false;
  f.escaped = false;
  if (at == std::string_view::npos) {
    pos = n;
    return Next::last;
  }
  pos = at + 1;
  return Next::more;
}

std::string field_text(const Field& f) {
  if (!f.escaped) return std::string(f.text);
  std::string s;
  for (std::size_t i = 0; i < f.text.size(); ++i) {
    s.push_back(f.text[i]);
    if (f.text[i] == '"' && i + 1 < f.text.size() && f.text[i + 1] == '"') ++i;
  }
  return s;
}

bool field_number(const Field& f, char delim, double& v) {
  return !f.escaped && parse_double(f.quoted ? trim(f.text, delim) : f.text, v);
}

SplitLine split_line(std::string_view line, char delim) {
  SplitLine out;
  std::size_t pos = 0;
  for (;;) {
    Field f;
    const Next r = next_field(line, pos, delim, f);
    if (r == Next::unterminated || r == Next::text_after_quote) {
      out.error = "field " + std::to_string(out.fields.size() + 1) +
                  (r == Next::unterminated ? ": quoted field has no closing quote"
                                           : ": text after the closing quote of a quoted field");
      return out;
    }
    out.fields.push_back(f);
    if (r == Next::last) return out;
  }
}

}  // namespace reader_detail

namespace {

using namespace reader_detail;

// ---------------------------------------------------------------------------
// Data rows

/// The layout every data line must follow, and where each field goes.
struct Layout {
  std::int64_t n_fields = 0;
  char delim = ',';
  std::vector<std::int32_t> role;  ///< per field: feature slot or ColumnRoles::k*
  std::int64_t n_features = 0;
  bool weight = false, offset = false;
  ReadOptions::Na na = ReadOptions::Na::omit;
  std::vector<std::string> names;  ///< header names (empty without a header), for messages
};

/// "column 3 ('w')" (0-based, as --label-column counts), or "column 3" without a header.
std::string column_words(const Layout& lay, std::size_t j) {
  std::string s = "column " + std::to_string(j);
  if (j < lay.names.size()) s += " ('" + shown(lay.names[j]) + "')";
  return s;
}

enum class RowStatus : std::uint8_t { ok, missing, bad };

struct RowOut {
  double* x;
  double* y;
  double* w;
  double* o;
};

/// Parses one data line: bad if anything is wrong with it, else missing if a used field
/// is missing (empty, NA, NaN; its slot is not written). Fields without a role are
/// counted but not parsed. Touches no shared state, so lines parse in parallel.
RowStatus parse_row(std::string_view line, const Layout& lay, const RowOut& out) {
  std::size_t pos = 0;
  Field f;
  bool missing = false;
  for (std::int64_t field = 0;; ++field) {
    if (field >= lay.n_fields) return RowStatus::bad;
    const Next r = next_field(line, pos, lay.delim, f);
    if (r == Next::unterminated || r == Next::text_after_quote) return RowStatus::bad;
    const std::int32_t role = lay.role[static_cast<std::size_t>(field)];
    if (role != ColumnRoles::kUnused && field_missing(f, lay.delim)) {
      missing = true;
    } else if (role != ColumnRoles::kUnused) {
      double v = 0.0;
      if (!field_number(f, lay.delim, v) || !std::isfinite(v)) return RowStatus::bad;
      if (role >= 0)
        out.x[role] = v;
      else if (role == ColumnRoles::kLabel)
        *out.y = v;
      else if (role == ColumnRoles::kWeight) {
        if (v < 0.0) return RowStatus::bad;
        *out.w = v;
      } else {
        *out.o = v;
      }
    }
    if (r == Next::last)
      return field + 1 != lay.n_fields ? RowStatus::bad : missing ? RowStatus::missing : RowStatus::ok;
  }
}

/// What is wrong with a line parse_row rejected, or its first missing value under
/// --na fail (without file and line).
std::string describe_bad_line(std::string_view line, const Layout& lay) {
  const SplitLine s = split_line(line, lay.delim);
  if (!s.error.empty()) return s.error;
  const auto found = static_cast<std::int64_t>(s.fields.size());
  if (found != lay.n_fields)
    return "expected " + std::to_string(lay.n_fields) + " fields, found " + std::to_string(found);
  for (std::size_t j = 0; j < s.fields.size(); ++j) {
    const std::int32_t role = lay.role[j];
    if (role == ColumnRoles::kUnused) continue;
    const Field& f = s.fields[j];
    const std::string where = column_words(lay, j);
    if (field_missing(f, lay.delim)) {
      if (lay.na == ReadOptions::Na::fail)
        return where + ": missing value '" + shown(field_text(f)) +
               "' (--na fail; --na omit drops the rows with missing values)";
      continue;
    }
    double v = 0.0;
    if (!field_number(f, lay.delim, v)) {
      std::string hint;  // a field holding another usual delimiter: the wrong --delimiter?
      for (const char d : {',', ';', '\t', '|'})
        if (d != lay.delim && f.text.find(d) != std::string_view::npos && hint.empty() && !f.quoted)
          hint = std::string(" (is the delimiter '") + (d == '\t' ? "\\t" : std::string(1, d)) +
                 "'? see --delimiter)";
      return where + ": '" + shown(field_text(f)) + "' is not a number" + hint +
             (role == ColumnRoles::kLabel && hint.empty() ? "; text labels and factors are read with --formula (docs/cli.md)" : "");
    }
    if (!std::isfinite(v))
      return role == ColumnRoles::kWeight
                 ? "weight " + shown(f.text) + " in " + where + " must be finite and >= 0"
                 : where + " is not finite (" + shown(f.text) + ")";
    if (role == ColumnRoles::kWeight && v < 0.0)
      return "weight " + shown(f.text) + " in " + where + " must be >= 0";
  }
  return "malformed line";  // not reached: parse_row accepts such a line
}

/// Parsed rows of this rank's range.
struct Body {
  Body(const Layout& layout, int nt, std::int64_t range, std::int64_t extra)
      : lay(layout), threads(nt), range_bytes(range), extra_cols(extra) {}

  const Layout& lay;
  int threads;
  std::int64_t range_bytes;  ///< bytes of this rank's range
  std::int64_t extra_cols;   ///< columns to reserve beyond the features (the intercept)
  std::int64_t seen_bytes = 0;
  std::vector<double> x, y, w, o;
  LocalError err;
  std::vector<RowStatus> status;      ///< per line of the chunk
  std::int64_t rows_dropped = 0;      ///< rows with a missing value (--na omit)
  std::vector<std::int64_t> missing;  ///< per column: missing values in the dropped rows

  /// Drops the rows [row0, row0 + n) whose status is missing (keeping the order of the
  /// others) and counts their missing values per column. Returns the rows kept.
  std::int64_t drop_missing(const std::string& buf, const std::vector<LineSpan>& spans, std::int64_t row0,
                            std::int64_t n) {
    const std::int64_t p = lay.n_features;
    std::int64_t kept = row0;
    for (std::int64_t k = 0; k < n; ++k) {
      const auto r = static_cast<std::size_t>(row0 + k);
      if (status[static_cast<std::size_t>(k)] == RowStatus::missing) {
        const LineSpan& s = spans[static_cast<std::size_t>(k)];
        const SplitLine sl = split_line(std::string_view(buf.data() + s.begin, s.end - s.begin), lay.delim);
        missing.resize(static_cast<std::size_t>(lay.n_fields), 0);
        for (std::size_t j = 0; j < sl.fields.size(); ++j)
          if (lay.role[j] != ColumnRoles::kUnused && field_missing(sl.fields[j], lay.delim)) ++missing[j];
        ++rows_dropped;
        continue;
      }
      const auto to = static_cast<std::size_t>(kept++);
      if (to == r) continue;
      std::copy_n(x.begin() + static_cast<std::ptrdiff_t>(r * static_cast<std::size_t>(p)), p,
                  x.begin() + static_cast<std::ptrdiff_t>(to * static_cast<std::size_t>(p)));
      y[to] = y[r];
      if (lay.weight) w[to] = w[r];
      if (lay.offset) o[to] = o[r];
    }
    return kept;
  }

  /// Parses one chunk's lines in parallel; false (with err set) at the first bad line.
  bool parse(const std::string& buf, const std::vector<LineSpan>& spans) {
    const auto n = static_cast<std::int64_t>(spans.size());
    const auto row0 = static_cast<std::int64_t>(y.size());
    const std::int64_t p = lay.n_features;
    for (const LineSpan& s : spans) seen_bytes += static_cast<std::int64_t>(s.end - s.begin) + 1;
    if (row0 + n > static_cast<std::int64_t>(y.capacity())) {
      // Reserve for the whole range at once, estimated from the bytes per line so far,
      // so that x is not grown by doubling (a copy, and up to twice the memory).
      const double per_line = static_cast<double>(seen_bytes) / static_cast<double>(row0 + n);
      const auto est = std::max<std::int64_t>(
          row0 + n + (row0 + n) / 8,
          static_cast<std::int64_t>(static_cast<double>(range_bytes) / per_line * 1.02) + 64);
      x.reserve(static_cast<std::size_t>(est * (p + extra_cols)));
      y.reserve(static_cast<std::size_t>(est));
      if (lay.weight) w.reserve(static_cast<std::size_t>(est));
      if (lay.offset) o.reserve(static_cast<std::size_t>(est));
    }
    x.resize(static_cast<std::size_t>((row0 + n) * p));
    y.resize(static_cast<std::size_t>(row0 + n));
    if (lay.weight) w.resize(y.size());
    if (lay.offset) o.resize(y.size());
    std::int64_t first_bad = n;
    const bool omit = lay.na == ReadOptions::Na::omit;
    status.resize(static_cast<std::size_t>(n));
    int any_missing = 0;
#pragma omp parallel for num_threads(threads) schedule(static) reduction(min : first_bad) reduction(max : any_missing)
    for (std::int64_t k = 0; k < n; ++k) {
      const LineSpan& s = spans[static_cast<std::size_t>(k)];
      const std::string_view line(buf.data() + s.begin, s.end - s.begin);
      const std::size_t r = static_cast<std::size_t>(row0 + k);
      // Weight / offset pointers are null when there is no such role (never written).
      const RowOut out{x.data() + (row0 + k) * p, y.data() + r, lay.weight ? w.data() + r : nullptr,
                       lay.offset ? o.data() + r : nullptr};
      const RowStatus st = parse_row(line, lay, out);
      status[static_cast<std::size_t>(k)] = st;
      if (st == RowStatus::bad || (st == RowStatus::missing && !omit)) first_bad = std::min(first_bad, k);
      if (st == RowStatus::missing) any_missing = 1;
    }
    // --na omit: drop the rows with missing values before the first bad line.
    const std::int64_t kept = any_missing && omit ? drop_missing(buf, spans, row0, first_bad) : row0 + first_bad;
    if (first_bad == n) {
      if (kept < row0 + n) {
        y.resize(static_cast<std::size_t>(kept));
        x.resize(static_cast<std::size_t>(kept * p));
        if (lay.weight) w.resize(y.size());
        if (lay.offset) o.resize(y.size());
      }
      return true;
    }
    // Describe the first bad line (serially), and drop it and the rows after it.
    const LineSpan& s = spans[static_cast<std::size_t>(first_bad)];
    err.what = describe_bad_line(std::string_view(buf.data() + s.begin, s.end - s.begin), lay);
    err.local_line = s.line;
    const auto keep = static_cast<std::size_t>(kept);
    y.resize(keep);
    x.resize(keep * static_cast<std::size_t>(p));
    if (lay.weight) w.resize(keep);
    if (lay.offset) o.resize(keep);
    return false;
  }
};

// ---------------------------------------------------------------------------
// The header (or first data line): every rank reads it.

bool looks_like_header(const std::vector<Field>& fields, char delim) {
  double v = 0.0;
  return std::any_of(fields.begin(), fields.end(),
                     [&](const Field& f) { return !field_number(f, delim, v); });
}

}  // namespace

std::string reader_detail::read_header(File& f, const ReadOptions& opts, HeaderInfo& h) {
  std::string line;
  std::int64_t pos = 0, next = 0, lineno = 0;
  bool found = false;
  while (pos < f.size()) {
    if (!read_line(f, pos, line, next)) return opts.path + ": read error: " + f.error();
    if (pos == 0 && line.starts_with("\xEF\xBB\xBF")) {
      line.erase(0, 3);
      pos = 3;  // a header-less file's data starts after the BOM
    }
    ++lineno;
    if (!is_empty_line(line)) {
      found = true;
      break;
    }
    pos = next;
  }
  if (!found) return opts.path + ": no data rows (the file is empty)";
  const SplitLine s = split_line(line, opts.delimiter);
  if (!s.error.empty()) return opts.path + ":" + std::to_string(lineno) + ": " + s.error;
  for (const Field& fd : s.fields) h.fields.push_back(field_text(fd));
  using H = ReadOptions::Header;
  h.is_header = opts.header == H::yes ||
                (opts.header == H::auto_detect && looks_like_header(s.fields, opts.delimiter));
  h.body_begin = h.is_header ? next : pos;
  h.lines_before_body = h.is_header ? lineno : lineno - 1;
  return {};
}

namespace {

/// "" or a warning naming the header names that occur more than once (a coefficient
/// name would repeat, and such a name cannot select a column).
std::string repeated_names(const std::vector<std::string>& names, const std::string& where) {
  std::map<std::string, std::vector<std::size_t>> at;
  for (std::size_t j = 0; j < names.size(); ++j) at[names[j]].push_back(j);
  std::vector<std::pair<std::size_t, std::string>> repeated;  // by first column
  for (const auto& [name, cols] : at)
    if (cols.size() > 1) {
      std::string s = "'" + shown(name) + "' (columns";
      for (std::size_t k = 0; k < cols.size() && k < 6; ++k) s += (k ? ", " : " ") + std::to_string(cols[k]);
      repeated.emplace_back(cols.front(), s + (cols.size() > 6 ? ", ...)" : ")"));
    }
  if (repeated.empty()) return {};
  std::sort(repeated.begin(), repeated.end());
  std::string list;
  for (std::size_t k = 0; k < repeated.size() && k < 5; ++k) list += (k ? ", " : "") + repeated[k].second;
  if (repeated.size() > 5) list += ", ... (" + std::to_string(repeated.size()) + " names in all)";
  return where + ": the header repeats column names: " + list +
         "; coefficients of such columns share a name, and options select them by 0-based index only (rename "
         "them to tell them apart)";
}

}  // namespace

// ---------------------------------------------------------------------------

namespace reader_detail {

TableShape peek_csv(const ReadOptions& opts) {
  TableShape shape;
  try {
    File file(opts.path);
    HeaderInfo head;
    if (!file.ok() || !read_header(file, opts, head).empty()) return shape;
    TableColumns table{opts.path, static_cast<std::int64_t>(head.fields.size()), std::nullopt, {}};
    if (head.is_header) table.names = head.fields;
    ColumnRoles roles;
    if (resolve_columns(opts, table, roles).empty())
      shape.features = static_cast<std::int64_t>(roles.features.size()) + (opts.intercept ? 1 : 0);
  } catch (const std::exception&) {
  }
  return shape;
}

CsvPart parse_csv_part(const ReadOptions& opts, int rank, int size) {
  const std::string& path = opts.path;
  CsvPart part;
  File file(path);
  HeaderInfo head;
  ColumnRoles roles;
  std::string err =
      file.ok() ? read_header(file, opts, head) : path + ": cannot open: " + file.error();
  if (err.empty()) {
    TableColumns table{path, static_cast<std::int64_t>(head.fields.size()), std::nullopt, {}};
    if (head.is_header)
      table.names = head.fields;
    else
      table.no_names_reason = opts.header == ReadOptions::Header::no
                                  ? "is read without a header line (--header no)"
                                  : "has no header line (its first line is all numbers; use "
                                    "--header yes if it holds names)";
    err = resolve_columns(opts, table, roles);
    // Feature names go into model.json and the summary: they must be valid UTF-8.
    for (std::size_t k = 0; err.empty() && head.is_header && k < roles.features.size(); ++k) {
      const std::string bad = utf8_error(roles.names[k]);
      if (!bad.empty())
        err = path + ":" + std::to_string(head.lines_before_body) + ": header field " +
              std::to_string(roles.features[k] + 1) + " is not valid UTF-8 (" + bad +
              " of the name); save the file as UTF-8";
    }
  }
  if (!err.empty()) {
    part.error = std::move(err);
    return part;
  }
  if (head.is_header) part.warning = repeated_names(head.fields, path + ":" + std::to_string(head.lines_before_body));

  Layout lay;
  lay.n_fields = static_cast<std::int64_t>(head.fields.size());
  lay.delim = opts.delimiter;
  lay.role = roles.role_of_column(lay.n_fields);
  lay.n_features = static_cast<std::int64_t>(roles.features.size());
  lay.weight = roles.weight >= 0;
  lay.offset = roles.offset >= 0;
  lay.na = opts.na;
  if (head.is_header) lay.names = head.fields;

  // This rank's bytes of the body; lines belong to the range holding their first byte.
  const Range mine = partition(file.size() - head.body_begin, rank, size);
  Body body(lay, std::max(opts.threads, 1), mine.size(), opts.intercept ? 1 : 0);
  std::string read_err;
  try {
    read_err = for_each_line_chunk(file, head.body_begin, mine, part.lines,
                                   [&](const std::string& buf, const std::vector<LineSpan>& spans) {
                                     return body.parse(buf, spans);
                                   });
  } catch (const std::bad_alloc&) {  // fail with the others, not alone
    read_err = "out of memory after " + std::to_string(body.y.size()) + " rows of this rank";
  }
  if (!read_err.empty() && !body.err.any()) body.err = {-1, read_err};
  part.lines_before_body = head.lines_before_body;
  part.bad = std::move(body.err);
  part.n_features = lay.n_features;
  part.x = std::move(body.x);
  part.y = std::move(body.y);
  part.weight = std::move(body.w);
  part.offset = std::move(body.o);
  part.names = std::move(roles.names);
  part.rows_dropped = body.rows_dropped;
  part.missing = std::move(body.missing);
  part.missing.resize(static_cast<std::size_t>(lay.n_fields), 0);
  part.header = std::move(lay.names);
  return part;
}

}  // namespace reader_detail

Shard read_csv(const ReadOptions& opts, const Communicator& comm) {
  const std::string& path = opts.path;
  CsvPart part = parse_csv_part(opts, comm.rank(), comm.size());
  comm.check(part.error.empty(), part.error);
  if (comm.is_root() && !part.warning.empty()) std::cerr << "natgrad: warning: " << part.warning << std::endl;

  // Collectives in the same order on every rank, failed or not.
  const std::int64_t line0 = part.lines_before_body + comm.exscan_sum(part.lines);
  Shard shard;
  shard.n_rows = static_cast<std::int64_t>(part.y.size());
  shard.first_row = comm.exscan_sum(shard.n_rows);
  comm.check(!part.bad.any(), located(path, part.bad, line0));

  shard.n_global = shard.n_rows;
  comm.allreduce_sum(&shard.n_global, 1);
  shard.n_cols = part.n_features;
  shard.x = std::move(part.x);
  shard.y = std::move(part.y);
  shard.weight = std::move(part.weight);
  shard.offset = std::move(part.offset);
  // The reservation was an estimate: give back a large excess only (shrinking copies).
  const std::size_t x_want =
      shard.y.size() * static_cast<std::size_t>(shard.n_cols + (opts.intercept ? 1 : 0));
  if (shard.x.capacity() > x_want + x_want / 8 + 1024) {
    std::vector<double> fit;  // a copy, but only when the estimate was far off
    fit.reserve(x_want);
    fit.assign(shard.x.begin(), shard.x.end());
    shard.x.swap(fit);
  }
  for (std::vector<double>* v : {&shard.y, &shard.weight, &shard.offset})
    if (v->capacity() > v->size() + v->size() / 8 + 1024) v->shrink_to_fit();
  shard.names = std::move(part.names);
  shard.source = path;
  // Rows dropped for missing values (--na omit), over all ranks, and per column.
  shard.rows_dropped = part.rows_dropped;
  comm.allreduce_sum(&shard.rows_dropped, 1);
  if (shard.rows_dropped > 0) {
    comm.allreduce_sum(part.missing.data(), part.missing.size());
    for (std::size_t j = 0; j < part.missing.size(); ++j)
      if (part.missing[j] > 0)
        shard.missing.emplace_back(j < part.header.size() ? part.header[j] : "column " + std::to_string(j),
                                   part.missing[j]);
  }
  return shard;
}

}  // namespace natgrad
