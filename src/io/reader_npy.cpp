// NumPy .npy: every rank parses the (small) header, then preads only the bytes of its
// rows and scatters their columns into x / y / weight / offset. No number parsing.
// The threads read and scatter blocks of about 1 MiB each; x is faulted in up front
// (prefault). A 2 GB file reads at the speed of memcpy from the page cache.
#include <omp.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
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

#if defined(__linux__) && !defined(MADV_POPULATE_WRITE)
#define MADV_POPULATE_WRITE 23  // Linux 5.14; older kernels answer EINVAL, and that is fine
#endif

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

/// Bytes per read: a block of rows is read into a per-thread buffer that stays in the
/// core's cache while its columns are scattered into the shard (a read straight into x
/// would need the same copy again to drop the label and the unused columns).
constexpr std::int64_t kNpyReadBytes = std::min<std::int64_t>(kChunkBytes, std::int64_t{1} << 20);

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

/// Large vectors are faulted in before use, in parallel and, where the kernel allows it,
/// as transparent huge pages: faulting in 2 GB of fresh memory page by page from the one
/// thread that zero-fills it in vector::resize costs more than reading the file.
/// Only hints: on failure (an old kernel, THP off) the first touch faults them as before.
void prefault(void* data, std::size_t bytes, int threads) {
#if defined(__linux__)
  constexpr std::size_t kMin = std::size_t{16} << 20;
  if (bytes < kMin) return;
  const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto begin = reinterpret_cast<std::uintptr_t>(data);
  const std::uintptr_t end = begin + bytes;
  const std::uintptr_t first = (begin + page - 1) / page * page;  // madvise wants page alignment
#ifdef MADV_HUGEPAGE
  {
    constexpr std::uintptr_t kHuge = std::uintptr_t{2} << 20;
    const std::uintptr_t hb = (begin + kHuge - 1) / kHuge * kHuge, he = end / kHuge * kHuge;
    if (he > hb) ::madvise(reinterpret_cast<void*>(hb), he - hb, MADV_HUGEPAGE);
  }
#endif
  // Pieces on the 2 MiB grid (a huge page is faulted whole, by one thread), a few per thread.
  const std::uintptr_t unit = std::uintptr_t{2} << 20;
  const std::uintptr_t base = first / unit * unit;
  const std::uintptr_t units = (end - base + unit - 1) / unit;
  const std::uintptr_t per = (units + 4 * static_cast<std::uintptr_t>(threads) - 1) /
                             (4 * static_cast<std::uintptr_t>(threads));  // units per piece
  const auto pieces = static_cast<std::int64_t>((units + per - 1) / per);
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
  for (std::int64_t k = 0; k < pieces; ++k) {
    const std::uintptr_t b = std::max(first, base + static_cast<std::uintptr_t>(k) * per * unit);
    const std::uintptr_t e = std::min(end, base + static_cast<std::uintptr_t>(k + 1) * per * unit);
    if (b < e) ::madvise(reinterpret_cast<void*>(b), e - b, MADV_POPULATE_WRITE);
  }
#else
  (void)data, (void)bytes, (void)threads;
#endif
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
  // The features as one run of columns (first, first + 1, ...)? Then each row is a copy.
  std::int64_t first = p > 0 ? roles.features[0] : 0;
  for (std::int64_t j = 1; j < p && first >= 0; ++j)
    if (roles.features[static_cast<std::size_t>(j)] != first + j) first = -1;

  Shard shard;
  LocalError local;
  allocate_shard(shard, mine.size(), p, opts.intercept, has_w, has_o, local, [threads](Shard& s) {
    prefault(s.x.data(), s.x.capacity() * sizeof(double), threads);
  });

  // Blocks of rows, read and scattered by the threads in any order; the outcome is the
  // sequential one: the first block (in file order) that fails to read or holds a bad
  // row decides the error, and blocks after it need not be read.
  const std::int64_t chunk_rows =
      std::max<std::int64_t>(1, kNpyReadBytes / std::max<std::int64_t>(row_bytes, 1));
  const std::int64_t n_chunks = local.any() ? 0 : (mine.size() + chunk_rows - 1) / chunk_rows;
  std::atomic<std::int64_t> stop{n_chunks};  // chunks after it are skipped
  const auto stop_at = [&stop](std::int64_t c) {  // stop = min(stop, c)
    std::int64_t s = stop.load(std::memory_order_relaxed);
    while (c < s && !stop.compare_exchange_weak(s, c, std::memory_order_relaxed)) {
    }
  };
  std::int64_t bad_row = mine.size();        // first bad row (local index)
  std::int64_t read_fail = n_chunks;         // first chunk that could not be read ...
  std::string read_what;                     // ... and why
#pragma omp parallel num_threads(threads)
  {
    std::unique_ptr<double[]> buf;  // 8-byte aligned; no zero fill
    try {
      buf.reset(new double[static_cast<std::size_t>((chunk_rows * row_bytes + 7) / 8)]);
    } catch (const std::bad_alloc&) {
    }
    const char* b = reinterpret_cast<const char*>(buf.get());
#pragma omp for schedule(dynamic, 1) reduction(min : bad_row)
    for (std::int64_t c = 0; c < n_chunks; ++c) {
      if (c > stop.load(std::memory_order_relaxed)) continue;
      const std::int64_t r0 = c * chunk_rows, n = std::min(chunk_rows, mine.size() - r0);
      std::string why = buf ? file.read_at(reinterpret_cast<char*>(buf.get()),
                                           h.data_offset + (mine.begin + r0) * row_bytes,
                                           n * row_bytes)
                            : std::string("cannot allocate the read buffer");
      if (!why.empty()) {
#pragma omp critical(natgrad_npy_read_error)
        if (c < read_fail) {
          read_fail = c;
          read_what = std::move(why);
        }
        stop_at(c);
        continue;
      }
      for (std::int64_t k = 0; k < n; ++k) {
        const char* src = b + k * row_bytes;
        const auto i = static_cast<std::size_t>(r0 + k);
        bool ok = copy_features(src, h.item, first, roles.features, shard.x.data() + (r0 + k) * p);
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
        if (!ok) {
          bad_row = std::min(bad_row, r0 + k);
          stop_at(c);
          break;
        }
      }
    }
  }

  if (!local.any() && read_fail < n_chunks && read_fail * chunk_rows <= bad_row)
    local.what = "read error: " + read_what;
  if (!local.any() && bad_row < mine.size()) {
    // Describe the first bad value of the first bad row, in column order.
    std::string row(static_cast<std::size_t>(row_bytes), '\0');
    const std::string why =
        file.read_at(row.data(), h.data_offset + (mine.begin + bad_row) * row_bytes, row_bytes);
    if (!why.empty()) local.what = "read error: " + why;
    const std::int64_t at = mine.begin + bad_row;
    if (!local.any())
      local.what = first_bad_value(
          roles, cols, [&](std::int64_t c) { return load(row.data() + c * h.item, h.item); },
          [&](std::int64_t c) { return "array row " + std::to_string(at) + ", column " + std::to_string(c) + " (0-based): "; });
  }

  comm.check(!local.any(), located(path, local, 0));
  finish_shard(shard, mine.begin, mine.size(), n_global, p, std::move(roles.names), path);
  return shard;
}

}  // namespace natgrad
