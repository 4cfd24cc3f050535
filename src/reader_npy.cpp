// NumPy .npy: every rank parses the (small) header, then preads only the bytes of its
// rows and scatters their columns into x / y / weight / offset. No number parsing.
#include <omp.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "natgrad/error.hpp"
#include "natgrad/partition.hpp"
#include "natgrad/reader.hpp"
#include "reader_detail.hpp"

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

}  // namespace

Shard read_npy(const ReadOptions& opts, const Communicator& comm) {
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

  const std::int64_t n_global = h.shape[0], cols = h.shape[1];
  const Range mine = partition(n_global, comm.rank(), comm.size());
  const auto p = static_cast<std::int64_t>(roles.features.size());
  const bool has_w = roles.weight >= 0, has_o = roles.offset >= 0;
  const int threads = std::max(opts.threads, 1);
  const std::int64_t row_bytes = cols * h.item;

  Shard shard;
  LocalError local;
  // First bad array row and its message.
  std::int64_t bad_row = -1;
  try {
    shard.x.reserve(static_cast<std::size_t>(mine.size() *
                                             (p + (opts.intercept ? 1 : 0))));  // see add_intercept
    shard.x.resize(static_cast<std::size_t>(mine.size() * p));
    shard.y.resize(static_cast<std::size_t>(mine.size()));
    if (has_w) shard.weight.resize(shard.y.size());
    if (has_o) shard.offset.resize(shard.y.size());
  } catch (const std::bad_alloc&) {
    local.what = "cannot allocate " + std::to_string(mine.size()) + " rows x " + std::to_string(p) +
                 " features";
  }

  std::string buf;
  const std::int64_t chunk_rows =
      std::max<std::int64_t>(1, kChunkBytes / std::max<std::int64_t>(row_bytes, 1));
  for (std::int64_t r0 = 0; r0 < mine.size() && !local.any(); r0 += chunk_rows) {
    const std::int64_t n = std::min(chunk_rows, mine.size() - r0);
    buf.clear();
    if (!file.append(buf, h.data_offset + (mine.begin + r0) * row_bytes, n * row_bytes) ||
        static_cast<std::int64_t>(buf.size()) != n * row_bytes) {
      local.what = "read error: " + (file.ok() ? std::string("short read") : file.error());
      break;
    }
    std::int64_t first_bad = n;
#pragma omp parallel for num_threads(threads) schedule(static) reduction(min : first_bad)
    for (std::int64_t k = 0; k < n; ++k) {
      const char* src = buf.data() + k * row_bytes;
      const auto i = static_cast<std::size_t>(r0 + k);
      bool ok = true;
      double* xr = shard.x.data() + (r0 + k) * p;
      for (std::int64_t j = 0; j < p; ++j) {
        xr[j] = load(src + roles.features[static_cast<std::size_t>(j)] * h.item, h.item);
        ok = ok && std::isfinite(xr[j]);
      }
      if (roles.label >= 0) {  // else y stays 0 (--label-column none)
        shard.y[i] = load(src + roles.label * h.item, h.item);
        ok = ok && std::isfinite(shard.y[i]);
      }
      if (has_w) {
        shard.weight[i] = load(src + roles.weight * h.item, h.item);
        ok = ok && std::isfinite(shard.weight[i]) && shard.weight[i] >= 0.0;
      }
      if (has_o) {
        shard.offset[i] = load(src + roles.offset * h.item, h.item);
        ok = ok && std::isfinite(shard.offset[i]);
      }
      if (!ok) first_bad = std::min(first_bad, k);
    }
    if (first_bad == n) continue;
    // Describe the first bad value of the first bad row, in column order.
    const char* src = buf.data() + first_bad * row_bytes;
    bad_row = mine.begin + r0 + first_bad;
    const std::vector<std::int32_t> role = roles.role_of_column(cols);
    for (std::int64_t c = 0; c < cols && !local.any(); ++c) {
      if (role[static_cast<std::size_t>(c)] == ColumnRoles::kUnused) continue;
      const double v = load(src + c * h.item, h.item);
      const std::string where =
          "array row " + std::to_string(bad_row) + ", column " + std::to_string(c) + " (0-based): ";
      const bool is_weight = role[static_cast<std::size_t>(c)] == ColumnRoles::kWeight;
      if (!std::isfinite(v))
        local.what = where + (is_weight ? "weight " + number_text(v) + " must be finite and >= 0"
                                        : "value " + number_text(v) + " is not finite");
      else if (is_weight && v < 0.0)
        local.what = where + "weight " + number_text(v) + " must be >= 0";
    }
  }

  comm.check(!local.any(), located(path, local, 0));
  shard.n_rows = mine.size();
  shard.n_cols = p;
  shard.first_row = mine.begin;
  shard.n_global = n_global;
  shard.names = std::move(roles.names);
  shard.source = path;
  return shard;
}

}  // namespace natgrad
