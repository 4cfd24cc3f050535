// NumPy .npy: every rank parses the (small) header, then preads only the bytes of its
// rows and scatters their columns into x / y / weight / offset. No number parsing.
// read_table (shared with the HDF5 reader's contiguous datasets): each thread reads its
// static part of the rows in blocks of about 512 KiB, straight into X when a file row is
// a row of X, else through its own buffer; X's pages are placed first (allocate_shard).
#include <omp.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
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

namespace {

using namespace reader_detail;

// '<f8' / '<f4' data is copied as is.
static_assert(std::endian::native == std::endian::little,
              "the NPY reader assumes a little-endian host");

constexpr char kExpectedDtype[] = "expected '<f8' (float64) or '<f4' (float32), little-endian";

/// What the header says.
struct NpyHeader {
  std::string descr;  ///< the dtype as written ('<f8'), or the raw text of a non-string descr
  bool fortran_order = false;
  std::vector<std::int64_t> shape;
  std::int64_t data_offset = 0;
  std::int64_t item = 0;  ///< bytes per value: 8 or 4
};

/// A minimal parser for the Python dict literal of an NPY header:
/// {'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }
class DictParser {
 public:
  explicit DictParser(std::string_view s) : s_(s) {}

  /// Fills \p h (descr, fortran_order, shape); returns the error, or "".
  std::string parse(NpyHeader& h) {
    bool have_descr = false, have_order = false, have_shape = false;
    skip();
    if (!eat('{')) return "expected '{'";
    for (;;) {
      skip();
      if (eat('}')) break;
      std::string key;
      if (!string_literal(key)) return "expected a quoted key at offset " + std::to_string(i_);
      skip();
      if (!eat(':')) return "expected ':' after '" + key + "'";
      skip();
      if (key == "descr") {
        have_descr = true;
        if (peek() == '\'' || peek() == '"') {
          if (!string_literal(h.descr)) return "unterminated string for 'descr'";
        } else {
          h.descr = raw_value();  // a structured dtype: a list of fields
        }
      } else if (key == "fortran_order") {
        have_order = true;
        if (word("True"))
          h.fortran_order = true;
        else if (word("False"))
          h.fortran_order = false;
        else
          return "'fortran_order' is neither True nor False";
      } else if (key == "shape") {
        have_shape = true;
        if (!tuple(h.shape)) return "'shape' is not a tuple of non-negative integers";
      } else {
        raw_value();  // unknown keys are ignored
      }
      skip();
      if (eat(',')) continue;
      skip();
      if (eat('}')) break;
      return "expected ',' or '}' after the value of '" + key + "'";
    }
    if (!have_descr) return "no 'descr' key";
    if (!have_order) return "no 'fortran_order' key";
    if (!have_shape) return "no 'shape' key";
    return {};
  }

 private:
  char peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
  void skip() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r'))
      ++i_;
  }
  bool eat(char c) {
    if (peek() != c) return false;
    ++i_;
    return true;
  }
  bool word(std::string_view w) {
    if (s_.substr(i_, w.size()) != w) return false;
    i_ += w.size();
    return true;
  }
  bool string_literal(std::string& out) {
    const char q = peek();
    if (q != '\'' && q != '"') return false;
    ++i_;
    out.clear();
    while (i_ < s_.size() && s_[i_] != q) {
      if (s_[i_] == '\\' && i_ + 1 < s_.size()) ++i_;
      out.push_back(s_[i_++]);
    }
    return eat(q);
  }
  bool tuple(std::vector<std::int64_t>& out) {
    out.clear();
    if (!eat('(')) return false;
    for (;;) {
      skip();
      if (eat(')')) return true;
      std::int64_t v = 0;
      const std::size_t b = i_;
      while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') {
        if (v > (INT64_MAX - 9) / 10) return false;
        v = v * 10 + (s_[i_++] - '0');
      }
      if (i_ == b) return false;
      eat('L');  // Python 2 long
      out.push_back(v);
      skip();
      if (eat(',')) continue;
      skip();
      if (eat(')')) return true;
      return false;
    }
  }
  /// Skips a value of any kind (nested brackets, strings); returns its text.
  std::string raw_value() {
    const std::size_t b = i_;
    int depth = 0;
    while (i_ < s_.size()) {
      const char c = s_[i_];
      if (c == '\'' || c == '"') {
        std::string ignored;
        if (!string_literal(ignored)) break;
        continue;
      }
      if (depth == 0 && (c == ',' || c == '}')) break;
      if (c == '(' || c == '[' || c == '{') ++depth;
      if (c == ')' || c == ']' || c == '}') --depth;
      ++i_;
    }
    return std::string(trim(s_.substr(b, i_ - b)));
  }

  std::string_view s_;
  std::size_t i_ = 0;
};

std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::string s = "(";
  for (std::size_t k = 0; k < shape.size(); ++k) s += (k ? ", " : "") + std::to_string(shape[k]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

/// Reads and checks the header. Returns the complete error message, or "".
std::string read_npy_header(File& f, const std::string& path, NpyHeader& h) {
  std::string pre;
  if (!f.append(pre, 0, 12)) return path + ": read error: " + f.error();
  if (pre.size() < 10 || pre.compare(0, 6, "\x93NUMPY") != 0)
    return path + ": not an NPY file: bad magic (expected the bytes \\x93NUMPY at the start)";
  const auto major = static_cast<unsigned char>(pre[6]), minor = static_cast<unsigned char>(pre[7]);
  std::int64_t len = 0, start = 0;
  if (major == 1) {
    len = static_cast<unsigned char>(pre[8]) | static_cast<unsigned char>(pre[9]) << 8;
    start = 10;
  } else if ((major == 2 || major == 3) && pre.size() >= 12) {
    for (int k = 3; k >= 0; --k) len = len << 8 | static_cast<unsigned char>(pre[8 + k]);
    start = 12;
  } else {
    return path + ": unsupported NPY format version " + std::to_string(major) + "." +
           std::to_string(minor) + " (expected 1.0, 2.0 or 3.0)";
  }
  if (start + len > f.size())
    return path + ": truncated NPY header: it says " + std::to_string(len) +
           " bytes, the file has " + std::to_string(f.size() - start) + " after the preamble";
  std::string dict;
  if (!f.append(dict, start, len)) return path + ": read error: " + f.error();
  const std::string bad = DictParser(dict).parse(h);
  if (!bad.empty())
    return path + ": malformed NPY header: " + bad + " (header: " + shown(trim(dict)) + ")";
  h.data_offset = start + len;

  if (h.descr == "<f8")
    h.item = 8;
  else if (h.descr == "<f4")
    h.item = 4;
  else
    return path + ": unsupported dtype '" + shown(h.descr) + "' (" + kExpectedDtype + ")";
  if (h.fortran_order)
    return path +
           ": fortran_order is True (column-major); only C-order arrays are supported "
           "(save np.ascontiguousarray(a))";
  if (h.shape.size() != 2)
    return path + ": array is " + std::to_string(h.shape.size()) + "-D (shape " +
           shape_text(h.shape) + "), expected a 2-D array (rows, columns)";
  const std::int64_t rows = h.shape[0], cols = h.shape[1];
  const std::int64_t have = f.size() - h.data_offset;
  // rows * cols * item without overflow: compare against what the file holds.
  const bool fits = cols == 0 || rows <= have / h.item / cols;
  if (!fits)
    return path + ": truncated: shape " + shape_text(h.shape) + " of '" + h.descr + "' needs " +
           (rows <= INT64_MAX / h.item / std::max<std::int64_t>(cols, 1)
                ? std::to_string(rows * cols * h.item)
                : std::string("more than 2^63")) +
           " bytes of data after the header, the file holds " + std::to_string(have);
  return {};
}

double load(const char* p, std::int64_t item) {
  if (item == 8) {
    double v;
    std::memcpy(&v, p, 8);
    return v;
  }
  float v;
  std::memcpy(&v, p, 4);
  return static_cast<double>(v);
}

/// True if all \p n values are finite (no inf or nan): an exponent field of all ones
/// carries into bit 63 when 2^52 is added to it. Integer operations without an early
/// exit, so that the loop vectorises.
inline bool all_finite(const double* v, std::int64_t n) {
  constexpr std::uint64_t kExponent = 0x7ff0000000000000, kCarry = std::uint64_t{1} << 52;
  std::uint64_t any = 0;
  for (std::int64_t j = 0; j < n; ++j)
    any |= (std::bit_cast<std::uint64_t>(v[j]) & kExponent) + kCarry;
  return (any >> 63) == 0;
}

/// The features of one row into \p xr (p values); true if all are finite.
/// \p first >= 0: the features are the columns first, first + 1, ... in order (the usual
/// layout, a copy); else the column list \p features (a gather).
bool copy_features(const char* src, std::int64_t item, std::int64_t first,
                   const std::vector<std::int64_t>& features, double* xr) {
  const auto p = static_cast<std::int64_t>(features.size());
  if (p == 0) return true;
  if (first >= 0 && item == 8) {
    std::memcpy(xr, src + first * 8, static_cast<std::size_t>(p) * 8);
  } else if (first >= 0) {
    const char* s = src + first * 4;
    for (std::int64_t j = 0; j < p; ++j) {
      float v;
      std::memcpy(&v, s + j * 4, 4);
      xr[j] = static_cast<double>(v);
    }
  } else {
    for (std::int64_t j = 0; j < p; ++j)
      xr[j] = load(src + features[static_cast<std::size_t>(j)] * item, item);
  }
  return all_finite(xr, p);
}

/// Bytes per read: a block that stays in the core's cache while its rows are checked
/// (read straight into X) or scattered (read into the thread's buffer).
constexpr std::int64_t kTableReadBytes = std::min<std::int64_t>(kChunkBytes, std::int64_t{1} << 19);

/// Reverses the bytes of each of the \p n values of \p item (8 or 4) bytes at \p p.
void swap_bytes(char* p, std::int64_t n, std::int64_t item) {
  if (item == 8) {
    for (std::int64_t k = 0; k < n; ++k) {
      std::uint64_t v;
      std::memcpy(&v, p + k * 8, 8);
      v = __builtin_bswap64(v);
      std::memcpy(p + k * 8, &v, 8);
    }
  } else {
    for (std::int64_t k = 0; k < n; ++k) {
      std::uint32_t v;
      std::memcpy(&v, p + k * 4, 4);
      v = __builtin_bswap32(v);
      std::memcpy(p + k * 4, &v, 4);
    }
  }
}

}  // namespace

TableShape reader_detail::peek_npy(const ReadOptions& opts) {
  TableShape shape;
  try {
    File file(opts.path);
    NpyHeader h;
    if (!file.ok() || !read_npy_header(file, opts.path, h).empty()) return shape;
    ColumnRoles roles;
    if (!resolve_columns(opts, {opts.path, h.shape[1], std::nullopt, "is an NPY file"}, roles).empty()) return shape;
    shape.rows = h.shape[0];
    shape.features = static_cast<std::int64_t>(roles.features.size()) + (opts.intercept ? 1 : 0);
  } catch (const std::exception&) {
  }
  return shape;
}

void reader_detail::read_table(const File& f, const RawTable& t, const ColumnRoles& roles, const Range& mine,
                               bool intercept, int threads, Shard& shard, LocalError& local,
                               const std::function<std::string(std::int64_t, std::int64_t)>& where) {
  const auto p = static_cast<std::int64_t>(roles.features.size());
  const std::int64_t ic = intercept ? 1 : 0, d = p + ic, n = mine.size();
  const bool has_w = roles.weight >= 0, has_o = roles.offset >= 0;
  threads = std::max(threads, 1);
  allocate_shard(shard, n, d, has_w, has_o, threads, local);
  if (local.any()) return;
  const std::int64_t row_bytes = t.cols * t.item;
  // The features as one run of columns (first, first + 1, ...)? Then each row is a copy.
  std::int64_t first = p > 0 ? roles.features[0] : 0;
  for (std::int64_t j = 1; j < p && first >= 0; ++j)
    if (roles.features[static_cast<std::size_t>(j)] != first + j) first = -1;
  // A file row laid out as a row of X: [label, features] with the intercept (the label
  // then sits where the 1 goes), [features] without one and without a label.
  const bool direct = p > 0 && t.item == 8 && !t.swap && !has_w && !has_o &&
                      (intercept ? roles.label == 0 && first == 1 && t.cols == p + 1
                                 : roles.label < 0 && first == 0 && t.cols == p);
  const std::int64_t block = std::max<std::int64_t>(1, kTableReadBytes / std::max<std::int64_t>(row_bytes, 1));
  // Per thread: its first failure in its rows (n: none) and, for a read error, why. Each
  // thread stops at its first, so the least over the threads is the sequential outcome.
  std::vector<std::int64_t> fail_row(static_cast<std::size_t>(threads), n);
  std::vector<std::string> fail_why(static_cast<std::size_t>(threads));
  double* const x = shard.x.data();
#pragma omp parallel num_threads(threads)
  {
    const int tid = omp_get_thread_num();
    const auto me = static_cast<std::size_t>(tid);
    const Range part = omp_get_num_threads() == threads ? thread_rows(n, tid, threads)
                                                        : (tid == 0 ? Range{0, n} : Range{n, n});
    std::unique_ptr<double[]> buf;  // 8-byte aligned; no zero fill
    if (!direct && part.size() > 0) {
      try {
        buf.reset(new double[static_cast<std::size_t>((std::min(block, part.size()) * row_bytes + 7) / 8)]);
      } catch (const std::bad_alloc&) {
        fail_row[me] = part.begin;
        fail_why[me] = "cannot allocate the read buffer";
      }
    }
    for (std::int64_t r0 = part.begin; r0 < part.end && fail_row[me] == n; r0 += block) {
      const std::int64_t m = std::min(block, part.end - r0);
      char* const dst = direct ? reinterpret_cast<char*>(x + r0 * d) : reinterpret_cast<char*>(buf.get());
      std::string why = f.read_at(dst, t.offset + (mine.begin + r0) * row_bytes, m * row_bytes);
      if (!why.empty()) {
        fail_row[me] = r0;
        fail_why[me] = std::move(why);
        break;
      }
      if (direct) {
        for (std::int64_t k = 0; k < m; ++k) {
          double* const xr = x + (r0 + k) * d;
          bool ok = all_finite(xr + ic, p);
          if (intercept) {
            shard.y[static_cast<std::size_t>(r0 + k)] = xr[0];
            ok = ok && std::isfinite(xr[0]);
            xr[0] = 1.0;
          }
          if (!ok) {
            fail_row[me] = r0 + k;
            break;
          }
        }
        continue;
      }
      if (t.swap) swap_bytes(dst, m * t.cols, t.item);
      for (std::int64_t k = 0; k < m; ++k) {
        const char* const src = dst + k * row_bytes;
        const auto i = static_cast<std::size_t>(r0 + k);
        double* const xr = x + (r0 + k) * d;
        if (intercept) xr[0] = 1.0;
        bool ok = copy_features(src, t.item, first, roles.features, xr + ic);
        if (roles.label >= 0) {  // else y stays 0 (--label-column none)
          shard.y[i] = load(src + roles.label * t.item, t.item);
          ok = ok && std::isfinite(shard.y[i]);
        }
        if (has_w) {
          shard.weight[i] = load(src + roles.weight * t.item, t.item);
          ok = ok && std::isfinite(shard.weight[i]) && shard.weight[i] >= 0.0;
        }
        if (has_o) {
          shard.offset[i] = load(src + roles.offset * t.item, t.item);
          ok = ok && std::isfinite(shard.offset[i]);
        }
        if (!ok) {
          fail_row[me] = r0 + k;
          break;
        }
      }
    }
  }

  std::size_t at = 0;
  for (std::size_t k = 1; k < fail_row.size(); ++k)
    if (fail_row[k] < fail_row[at]) at = k;
  const std::int64_t bad = fail_row[at];
  if (bad == n) return;
  if (!fail_why[at].empty()) {
    local.what = "read error: " + fail_why[at];
    return;
  }
  // Describe the first bad value of the first bad row, in column order.
  std::string row(static_cast<std::size_t>(row_bytes), '\0');
  const std::string why = f.read_at(row.data(), t.offset + (mine.begin + bad) * row_bytes, row_bytes);
  if (!why.empty()) {
    local.what = "read error: " + why;
    return;
  }
  if (t.swap) swap_bytes(row.data(), t.cols, t.item);
  local.what = first_bad_value(
      roles, t.cols, [&](std::int64_t c) { return load(row.data() + c * t.item, t.item); },
      [&](std::int64_t c) { return where(mine.begin + bad, c); });
}

Shard reader_detail::read_npy_rows(const ReadOptions& opts, const Communicator& comm, bool with_intercept) {
  const std::string& path = opts.path;
  File file(path);
  NpyHeader h;
  ColumnRoles roles;
  std::string err =
      file.ok() ? read_npy_header(file, path, h) : path + ": cannot open: " + file.error();
  if (err.empty())
    err = resolve_columns(
        opts, {path, h.shape[1], std::nullopt, "is an NPY file, whose columns have no names"},
        roles);
  comm.check(err.empty(), err);

  const std::int64_t n_global = h.shape[0];
  const Range mine = partition(n_global, comm.rank(), comm.size());
  const bool intercept = with_intercept && opts.intercept;
  Shard shard;
  LocalError local;
  read_table(file, RawTable{h.data_offset, h.shape[1], h.item, false}, roles, mine, intercept, opts.threads, shard,
             local, [](std::int64_t row, std::int64_t c) {
               return "array row " + std::to_string(row) + ", column " + std::to_string(c) + " (0-based): ";
             });
  comm.check(!local.any(), located(path, local, 0));
  if (intercept) roles.names.insert(roles.names.begin(), "(Intercept)");
  const auto d = static_cast<std::int64_t>(roles.names.size());
  finish_shard(shard, mine.begin, mine.size(), n_global, d, std::move(roles.names), path);
  return shard;
}

Shard read_npy(const ReadOptions& opts, const Communicator& comm) {
  return reader_detail::read_npy_rows(opts, comm, false);
}

}  // namespace natgrad
