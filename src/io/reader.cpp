// Shared reader machinery (file access, column roles, byte ranges of lines) and
// load_shard's dispatch on the input format. The formats: reader_csv.cpp,
// reader_npy.cpp, reader_libsvm.cpp.
#include "natgrad/io/reader.hpp"

#include <fcntl.h>
#include <omp.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <utility>

#include "natgrad/core/error.hpp"
#include "natgrad/core/memory.hpp"
#include "natgrad/io/generator.hpp"
#include "natgrad/core/partition.hpp"
#include "io/reader_detail.hpp"

#if defined(__linux__) && !defined(MADV_POPULATE_WRITE)
#define MADV_POPULATE_WRITE 23  // Linux 5.14; older kernels answer EINVAL: place_pages then touches the pages
#endif

namespace natgrad {

// In place: the file readers reserve the intercept's column, so the resize does not
// reallocate and no second copy of X exists; rows move right, the last one first.
namespace reader_detail {

// ---------------------------------------------------------------------------
// File

// O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer (a hang);
// it has no effect on regular files, and anything else is rejected below.
File::File(const std::string& path) : fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK)) {
  if (fd_ < 0) {
    error_ = std::strerror(errno);
    return;
  }
  struct stat st {};
  if (::fstat(fd_, &st) != 0)
    error_ = std::strerror(errno);
  else if (S_ISDIR(st.st_mode))
    error_ = std::strerror(EISDIR);
  else if (!S_ISREG(st.st_mode))
    error_ = "not a regular file";
  else
    size_ = static_cast<std::int64_t>(st.st_size);
}

File::~File() {
  if (fd_ >= 0) ::close(fd_);
}

bool File::append(std::string& out, std::int64_t offset, std::int64_t n) {
  n = std::max<std::int64_t>(0, std::min(n, size_ - offset));
  const std::size_t old = out.size();
  out.resize(old + static_cast<std::size_t>(n));
  std::int64_t done = 0;
  while (done < n) {
    const ssize_t got = ::pread(fd_, out.data() + old + done, static_cast<std::size_t>(n - done),
                                static_cast<off_t>(offset + done));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      error_ = got < 0 ? std::strerror(errno) : "file shrank while reading";
      out.resize(old + static_cast<std::size_t>(done));
      return false;
    }
    done += got;
  }
  return true;
}

bool read_line(File& f, std::int64_t offset, std::string& line, std::int64_t& next) {
  line.clear();
  for (std::int64_t pos = offset; pos < f.size(); pos += kScanBytes) {
    const std::size_t old = line.size();
    if (!f.append(line, pos, kScanBytes)) return false;
    const std::size_t nl = line.find('\n', old);
    if (nl != std::string::npos) {
      line.resize(nl);
      next = offset + static_cast<std::int64_t>(nl) + 1;
      return true;
    }
  }
  next = f.size();
  return true;
}

// ---------------------------------------------------------------------------
// Text helpers

std::string_view trim(std::string_view s, char delim) {
  while (!s.empty() && is_blank(s.front(), delim)) s.remove_prefix(1);
  while (!s.empty() && is_blank(s.back(), delim)) s.remove_suffix(1);
  return s;
}

bool is_empty_line(std::string_view line) {
  for (char c : line)
    if (c != ' ' && c != '\t' && c != '\r') return false;
  return true;
}

bool parse_double(std::string_view s, double& v) {
  if (s.size() > 1 && s.front() == '+' && s[1] != '-') s.remove_prefix(1);
  const char* end = s.data() + s.size();
  const auto [ptr, ec] = std::from_chars(s.data(), end, v);
  if (s.empty() || ptr != end) return false;
  if (ec == std::errc::result_out_of_range) v = std::strtod(std::string(s).c_str(), nullptr);
  return ec == std::errc() || ec == std::errc::result_out_of_range;
}

std::string utf8_error(std::string_view s) {
  const auto* u = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  for (std::size_t i = 0; i < n;) {
    const unsigned c = u[i];
    std::size_t len = 0;
    unsigned lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (c < 0x80) {
      ++i;
      continue;
    } else if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;  // overlong
      if (c == 0xED) hi = 0x9F;  // surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;  // overlong
      if (c == 0xF4) hi = 0x8F;  // above U+10FFFF
    }
    bool ok = len > 0 && i + len <= n;
    for (std::size_t k = 1; ok && k < len; ++k) {
      const unsigned b = u[i + k];
      ok = k == 1 ? b >= lo && b <= hi : b >= 0x80 && b <= 0xBF;
    }
    if (!ok) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "0x%02X", c);
      return std::string("byte ") + buf + " at offset " + std::to_string(i);
    }
    i += len;
  }
  return {};
}

std::string shown(std::string_view s) {
  constexpr std::size_t kMax = 40;
  if (s.size() <= kMax) return std::string(s);
  return std::string(s.substr(0, kMax)) + "...";
}

std::string number_text(double v) {
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

// ---------------------------------------------------------------------------
// Column roles

std::vector<std::int32_t> ColumnRoles::role_of_column(std::int64_t n_columns) const {
  std::vector<std::int32_t> role(static_cast<std::size_t>(n_columns), kUnused);
  for (std::size_t k = 0; k < features.size(); ++k)
    role[static_cast<std::size_t>(features[k])] = static_cast<std::int32_t>(k);
  if (label >= 0) role[static_cast<std::size_t>(label)] = kLabel;
  if (weight >= 0) role[static_cast<std::size_t>(weight)] = kWeight;
  if (offset >= 0) role[static_cast<std::size_t>(offset)] = kOffset;
  return role;
}

namespace {

std::string plural(std::int64_t n, const std::string& word) {
  return std::to_string(n) + " " + word + (n == 1 ? "" : "s");
}

/// "a, b, c" (at most 20 names shown).
std::string name_list(const std::vector<std::string>& names) {
  constexpr std::size_t kMaxShown = 20;
  std::string out;
  for (std::size_t j = 0; j < names.size() && j < kMaxShown; ++j)
    out += (j ? ", " : "") + shown(names[j]);
  if (names.size() > kMaxShown) out += ", ... (" + std::to_string(names.size()) + " in all)";
  return out;
}

}  // namespace

bool is_none(std::string_view column) { return trim(column, '\0') == "none"; }

namespace {

/// True if \p t is an optionally signed run of digits: a column index, not a name.
bool is_index_token(std::string_view t) {
  if (!t.empty() && (t.front() == '-' || t.front() == '+')) t.remove_prefix(1);
  return !t.empty() && std::all_of(t.begin(), t.end(), [](char c) { return c >= '0' && c <= '9'; });
}

/// Resolves one column reference of option \p opt. Returns the error, or "".
std::string resolve_one(std::string_view token, const std::string& opt, const TableColumns& table,
                        std::int64_t& col) {
  const std::string t(trim(token, '\0'));
  if (is_index_token(t)) {
    std::int64_t v = -1;
    const char* b = t.data() + (t.front() == '+' ? 1 : 0);
    const auto [p, ec] = std::from_chars(b, t.data() + t.size(), v);
    if (ec != std::errc() || p != t.data() + t.size() || v < 0 || v >= table.n)
      return opt + " " + t + " but " + table.path + " has " + plural(table.n, "column") +
             (table.n > 0 ? " (0-based indices 0 to " + std::to_string(table.n - 1) + ")" : "");
    col = v;
    return {};
  }
  if (!table.names)
    return opt + " '" + shown(t) + "' is a column name, but " + table.path + " " +
           table.no_names_reason + ": give a 0-based column index";
  const std::vector<std::string>& names = *table.names;
  col = -1;
  for (std::size_t j = 0; j < names.size(); ++j) {
    if (names[j] != t) continue;
    if (col >= 0)
      return opt + " '" + shown(t) + "' is ambiguous: " + table.path + " has columns " +
             std::to_string(col) + " and " + std::to_string(j) + " of that name (give an index)";
    col = static_cast<std::int64_t>(j);
  }
  if (col < 0)
    return opt + " '" + shown(t) + "': " + table.path +
           " has no column of that name; its columns: " + name_list(names);
  return {};
}

}  // namespace

std::string resolve_columns(const ReadOptions& opts, const TableColumns& table,
                            ColumnRoles& roles) {
  roles = ColumnRoles{};
  // Which option claimed each column, to catch a column used twice.
  // (A map: a sparse table may have billions of columns.)
  std::map<std::int64_t, std::string> used_by;
  auto claim = [&](std::int64_t col, const std::string& opt) -> std::string {
    std::string& by = used_by[col];
    if (!by.empty()) {
      std::string which = "column " + std::to_string(col);
      if (table.names) which += " ('" + shown((*table.names)[static_cast<std::size_t>(col)]) + "')";
      return which + " of " + table.path + " is used twice: " + by + " and " + opt;
    }
    by = opt;
    return {};
  };

  if (trim(opts.label_column, '\0').empty())
    return "--label-column is empty: the label column is required (or 'none')";
  std::string err;
  if (!is_none(opts.label_column)) {
    err = resolve_one(opts.label_column, "--label-column", table, roles.label);
    if (err.empty()) err = claim(roles.label, "--label-column");
  }
  if (err.empty() && !trim(opts.weight_column, '\0').empty() && !is_none(opts.weight_column)) {
    err = resolve_one(opts.weight_column, "--weight-column", table, roles.weight);
    if (err.empty()) err = claim(roles.weight, "--weight-column");
  }
  if (err.empty() && !trim(opts.offset_column, '\0').empty() && !is_none(opts.offset_column)) {
    err = resolve_one(opts.offset_column, "--offset-column", table, roles.offset);
    if (err.empty()) err = claim(roles.offset, "--offset-column");
  }
  if (!err.empty()) return err;

  if (trim(opts.columns, '\0').empty() && table.implicit_features) {
    roles.implicit_features = true;  // the caller maps the columns (SparseColumnMap)
    return {};
  }
  if (trim(opts.columns, '\0').empty()) {
    for (std::int64_t j = 0; j < table.n; ++j)
      if (!used_by.count(j)) roles.features.push_back(j);
  } else {
    std::string_view list = opts.columns;
    for (;;) {
      const std::size_t at = list.find(',');
      const std::string_view token = list.substr(0, at);
      if (trim(token, '\0').empty())
        return "--columns '" + shown(opts.columns) + "' has an empty entry";
      std::int64_t col = -1;
      err = resolve_one(token, "--columns", table, col);
      if (err.empty()) err = claim(col, "--columns");
      if (!err.empty()) return err;
      roles.features.push_back(col);
      if (at == std::string_view::npos) break;
      list.remove_prefix(at + 1);
    }
  }
  for (std::size_t k = 0; k < roles.features.size(); ++k)
    roles.names.push_back(table.names ? (*table.names)[static_cast<std::size_t>(roles.features[k])]
                                      : "x" + std::to_string(k + 1));
  return {};
}

// ---------------------------------------------------------------------------
// This rank's lines

std::string for_each_line_chunk(
    File& f, std::int64_t body_begin, const Range& mine, std::int64_t& lines,
    const std::function<bool(const std::string&, const std::vector<LineSpan>&)>& on_chunk) {
  lines = 0;
  if (mine.size() <= 0) return {};
  const std::int64_t end = body_begin + mine.end;  // lines starting before `end` are ours
  std::int64_t start = body_begin + mine.begin;
  if (mine.begin > 0) {
    // Our first line starts after the first '\n' at or after byte start - 1.
    std::string skipped;
    if (!read_line(f, start - 1, skipped, start)) return "read error: " + f.error();
  }
  std::string buf;
  std::int64_t buf_off = start, read_pos = start;
  std::int64_t tail = kScanBytes;  // read size past the range's end, doubled per read
  std::size_t searched = 0;        // buf[0, searched) holds no '\n' (an unfinished line)
  std::vector<LineSpan> spans;
  while (buf_off < end) {
    // Up to a chunk of our range; past its end, only enough to finish the last line
    // (in reads growing from 64 KiB to a chunk, so that a long line costs few reads).
    std::int64_t want = tail;
    if (read_pos < end)
      want = std::min(kChunkBytes, end - read_pos);
    else
      tail = std::min(2 * tail, kChunkBytes);
    if (!f.append(buf, read_pos, want)) return "read error: " + f.error();
    read_pos = std::min(read_pos + want, f.size());
    const bool eof = read_pos >= f.size();
    // Cut the complete lines that start before `end`.
    std::size_t i = 0;
    bool done = false;
    spans.clear();
    for (;;) {
      if (buf_off + static_cast<std::int64_t>(i) >= end) {
        done = true;
        break;
      }
      // A line longer than a read is searched once, not again after every read.
      std::size_t nl = buf.find('\n', std::max(i, searched));
      if (nl == std::string::npos) {
        if (!eof) {
          searched = buf.size();
          break;
        }
        nl = buf.size();  // the last line of a file without a final newline
      }
      if (!is_empty_line(std::string_view(buf.data() + i, nl - i))) spans.push_back({i, nl, lines});
      ++lines;
      i = std::min(nl + 1, buf.size());
    }
    if (!spans.empty() && !on_chunk(buf, spans)) return {};
    if (done) return {};
    buf.erase(0, i);
    searched = searched > i ? searched - i : 0;
    buf_off += static_cast<std::int64_t>(i);
  }
  return {};
}

std::string located(const std::string& path, const LocalError& err, std::int64_t first_line) {
  if (err.local_line < 0) return path + ": " + err.what;
  return path + ":" + std::to_string(first_line + err.local_line + 1) + ": " + err.what;
}

}  // namespace reader_detail

// ---------------------------------------------------------------------------

std::string reader_detail::first_bad_value(const ColumnRoles& roles, std::int64_t cols,
                                           const std::function<double(std::int64_t)>& value,
                                           const std::function<std::string(std::int64_t)>& where) {
  const std::vector<std::int32_t> role = roles.role_of_column(cols);
  for (std::int64_t c = 0; c < cols; ++c) {
    if (role[static_cast<std::size_t>(c)] == ColumnRoles::kUnused) continue;
    const double v = value(c);
    const bool is_weight = role[static_cast<std::size_t>(c)] == ColumnRoles::kWeight;
    if (!std::isfinite(v))
      return where(c) + (is_weight ? "weight " + number_text(v) + " must be finite and >= 0"
                                   : "value " + number_text(v) + " is not finite");
    if (is_weight && v < 0.0) return where(c) + "weight " + number_text(v) + " must be >= 0";
  }
  return {};
}

void reader_detail::finish_shard(Shard& shard, std::int64_t first_row, std::int64_t n_rows, std::int64_t n_global,
                                 std::int64_t p, std::vector<std::string> names, const std::string& source) {
  shard.n_rows = n_rows;
  shard.n_cols = p;
  shard.first_row = first_row;
  shard.n_global = n_global;
  shard.names = std::move(names);
  shard.source = source;
}

namespace {

/// Faults in \p bytes of fresh memory at \p data: hugepage-advised, then each of \p threads
/// threads populates its static part (thread_rows' split of the bytes, on the 2 MiB grid so
/// that a huge page is faulted whole by one thread) with MADV_POPULATE_WRITE, or, where
/// the kernel lacks it (before Linux 5.14), by writing one byte per page. Faulting in 2 GB
/// page by page from the one thread that zero-fills it in vector::resize costs more than
/// reading the file.
void place_pages(void* data, std::size_t bytes, int threads) {
#if defined(__linux__)
  constexpr std::size_t kMin = std::size_t{4} << 20;
  if (bytes < kMin) return;
  const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto begin = reinterpret_cast<std::uintptr_t>(data);
  const std::uintptr_t end = begin + bytes;
  const std::uintptr_t first = (begin + page - 1) / page * page;  // madvise wants page alignment
  constexpr std::uintptr_t kHuge = std::uintptr_t{2} << 20;
#ifdef MADV_HUGEPAGE
  {
    const std::uintptr_t hb = (begin + kHuge - 1) / kHuge * kHuge, he = end / kHuge * kHuge;
    if (he > hb) ::madvise(reinterpret_cast<void*>(hb), he - hb, MADV_HUGEPAGE);
  }
#endif
  const auto cut = [&](int t) {  // thread t's first byte, on the 2 MiB grid, within [first, end]
    if (t == 0) return first;
    if (t == threads) return end;
    const Range r = reader_detail::thread_rows(static_cast<std::int64_t>(bytes), t, threads);
    const std::uintptr_t at = (begin + static_cast<std::uintptr_t>(r.begin) + kHuge / 2) / kHuge * kHuge;
    return std::clamp(at, first, end);
  };
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    const std::uintptr_t b = nt == threads ? cut(t) : (t == 0 ? first : end);
    const std::uintptr_t e = nt == threads ? cut(t + 1) : end;
    if (b < e && ::madvise(reinterpret_cast<void*>(b), e - b, MADV_POPULATE_WRITE) != 0)
      for (std::uintptr_t q = b; q < e; q += page) *reinterpret_cast<volatile char*>(q) = 0;
  }
#else
  (void)data, (void)bytes, (void)threads;
#endif
}

}  // namespace

void reader_detail::allocate_shard(Shard& shard, std::int64_t rows, std::int64_t d, bool weights, bool offsets,
                                   int threads, LocalError& local) {
  try {
    shard.x.reserve(static_cast<std::size_t>(rows * d));
    place_pages(shard.x.data(), shard.x.capacity() * sizeof(double), std::max(threads, 1));
    shard.x.resize(static_cast<std::size_t>(rows * d));  // zeroes pages already in place
    shard.y.resize(static_cast<std::size_t>(rows));
    if (weights) shard.weight.resize(shard.y.size());
    if (offsets) shard.offset.resize(shard.y.size());
  } catch (const std::bad_alloc&) {
    local.what = shard_out_of_memory(rows, d);
  }
}

std::string reader_detail::shard_out_of_memory(std::int64_t rows, std::int64_t p) {
  return out_of_memory_message(-1, "this rank's " + std::to_string(rows) + " rows x " + std::to_string(p) + " features",
                               static_cast<double>(rows) * static_cast<double>(p + 1) * 8);
}

namespace {
constexpr Choice<ReadOptions::Header> kHeaders[] = {
    {ReadOptions::Header::auto_detect, "auto"}, {ReadOptions::Header::yes, "yes"}, {ReadOptions::Header::no, "no"}};
constexpr Choice<ReadOptions::Na> kNas[] = {{ReadOptions::Na::omit, "omit"}, {ReadOptions::Na::fail, "fail"}};

Option<ReadOptions> delimiter_option() {
  Option<ReadOptions> o;
  o.name = "delimiter";
  o.help = "CSV field delimiter (one character)";
  o.default_text = ",";
  o.flags = kOptionRecorded;
  o.parse = [](ReadOptions& r, const std::string& s) {
    if (s.size() != 1) throw Error("--delimiter must be one character");
    r.delimiter = s[0];
  };
  o.json = [](const ReadOptions& r) { return option_detail::json_string(std::string(1, r.delimiter)); };
  return o;
}

constexpr Choice<ReadOptions::Layout> kLayouts[] = {{ReadOptions::Layout::auto_detect, "auto"},
                                                    {ReadOptions::Layout::dense, "dense"},
                                                    {ReadOptions::Layout::sparse, "sparse"}};
}  // namespace

ReadOptions::Layout layout_from_string(const std::string& s) { return parse_choice(kLayouts, "layout", s); }
const char* to_string(ReadOptions::Layout l) { return choice_name(kLayouts, l); }
ReadOptions::Na na_from_string(const std::string& s) { return parse_choice(kNas, "na", s); }
const char* to_string(ReadOptions::Na n) { return choice_name(kNas, n); }
ReadOptions::Header header_from_string(const std::string& s) { return parse_choice(kHeaders, "header", s); }
const char* to_string(ReadOptions::Header h) { return choice_name(kHeaders, h); }

const OptionTable<ReadOptions>& read_option_table() {
  using O = ReadOptions;
  constexpr unsigned F = kOptionResult;  // what the data are
  static const OptionTable<O> table{
      text_option<O>("data", &O::path, "",
                     "CSV, LIBSVM, NPY or HDF5 file (format from --format or the extension; label in --label-column), "
                     "or a generator spec such as gen:logit:rows=1000000,cols=64 or gen:mixture:rows=200 (see "
                     "docs/cli.md)",
                     kOptionRecorded | kOptionRequired,  // not fingerprinted: the content is (checkpoint.hpp)
                     [](const std::string& v) {
                       if (is_generator_spec(v)) parse_generator_spec(v);  // throws its own message
                       return std::string();
                     }),
      text_option<O>("format", &O::format, "", "csv | libsvm | npy | hdf5 (default: from the file extension)", F),
      text_option<O>("label-column", &O::label_column, "0", "column of the label: 0-based index or header name", F),
      text_option<O>("weight-column", &O::weight_column, "",
                     "column of prior weights (index or name); binomial: trial counts with a proportion label", F),
      text_option<O>("offset-column", &O::offset_column, "",
                     "column added to the linear predictor (index or name), e.g. log exposure for poisson", F),
      text_option<O>("columns", &O::columns, "",
                     "comma-separated feature columns (indices or names; default: all other columns)", F),
      text_option<O>("dataset", &O::dataset, "data",
                     "HDF5: the 2-D dataset to read, or a group holding a CSR matrix (data, indices, indptr)", F),
      text_option<O>("label-dataset", &O::label_dataset, "",
                     "HDF5 CSR group: the 1-D label dataset (default: 'y' in the group, else at the file's root)", F),
      number_option<O, std::int64_t>(
          "n-features", &O::n_features, "0",
          "LIBSVM and HDF5 CSR: the number of features (0: the largest index in the data); an index above it is an "
          "error. predict takes it from the model",
          kOptionRecorded, at_least<std::int64_t>(0)),
      choice_option("layout", &O::layout, "auto",
                    "storage of the rows: auto (sparse inputs below 25% nonzeros stay sparse, others dense) | dense | "
                    "sparse (CSR)",
                    &layout_from_string, &to_string, kOptionRecorded),
      delimiter_option(),
      choice_option("header", &O::header, "auto", "CSV header line: auto | yes | no", &header_from_string, &to_string,
                    kOptionRecorded),
      switch_option<O>("intercept", &O::intercept, "add an intercept as coefficient 0", F),
      text_option<O>("formula", &O::formula, "",
                     "R model formula, e.g. 'y ~ x1 + log(x2) + factor(g) + a:b + offset(log(t))' (CSV with a header; "
                     "replaces --label-column, --columns and --offset-column; see docs/cli.md)",
                     F),
      choice_option("na", &O::na, "omit",
                    "missing values (empty, NA, NaN) in a used column: omit (drop the row, as R) | fail (stop at the "
                    "first, naming file, line and column)",
                    &na_from_string, &to_string, F),
      text_option<O>("reference", &O::reference, "",
                     "reference levels of factors, 'column=level,...' (default: the first level in sorted order)", F),
      text_option<O>("positive", &O::positive, "",
                     "binomial with a text label: the level counted as success (default: the second in sorted order, "
                     "as R)",
                     F),
  };
  return table;
}

namespace {

/// True if \p t is LIBSVM's "index:value" (or "qid:N"): digits, a colon, a number.
bool is_pair_token(std::string_view t) {
  const std::size_t colon = t.find(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  const std::string_view key = t.substr(0, colon);
  double v = 0;
  if (!reader_detail::parse_double(t.substr(colon + 1), v)) return false;
  return key == "qid" || std::all_of(key.begin(), key.end(), [](char c) { return c >= '0' && c <= '9'; });
}

/// Content sniffing for a file without a known extension: true if its first line that is
/// neither empty nor a '#' comment (within the first 4 KiB) reads as LIBSVM: a number,
/// then one or more index:value tokens (and nothing else, but a trailing comment).
bool looks_like_libsvm(const std::string& path) {
  reader_detail::File f(path);
  std::string head;
  if (!f.ok() || !f.append(head, 0, 4096)) return false;
  if (head.rfind("\xEF\xBB\xBF", 0) == 0) head.erase(0, 3);
  const bool whole = f.size() <= 4096;
  std::size_t at = 0;
  while (at < head.size()) {
    std::size_t nl = head.find('\n', at);
    const bool complete = nl != std::string::npos || whole;
    if (nl == std::string::npos) nl = head.size();
    std::string_view line(head.data() + at, nl - at);
    at = nl + 1;
    const std::size_t hash = line.find('#');
    if (hash != std::string_view::npos) line = line.substr(0, hash);
    std::vector<std::string_view> tokens;
    std::size_t pos = 0;
    auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r'; };
    while (pos < line.size()) {
      while (pos < line.size() && blank(line[pos])) ++pos;
      const std::size_t b = pos;
      while (pos < line.size() && !blank(line[pos])) ++pos;
      if (pos > b) tokens.emplace_back(line.substr(b, pos - b));
    }
    if (tokens.empty()) continue;  // empty or comment line
    if (!complete && hash == std::string_view::npos) tokens.pop_back();  // cut by the 4 KiB
    double y = 0;
    if (tokens.size() < 2 || !reader_detail::parse_double(tokens[0], y)) return false;
    return std::all_of(tokens.begin() + 1, tokens.end(), is_pair_token);
  }
  return false;
}

}  // namespace

std::string input_format(const ReadOptions& opts) {
  auto lower = [](std::string s) {
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  };
  const std::string f = lower(opts.format);
  if (f == "csv" || f == "npy" || f == "libsvm" || f == "hdf5") return f;
  if (f == "svmlight" || f == "svm") return "libsvm";
  if (f == "h5") return "hdf5";
  if (!f.empty())
    throw CollectiveError("--format '" + opts.format + "' is not one of: csv, libsvm, npy, hdf5");
  const std::string ext = lower(std::filesystem::path(opts.path).extension().string());
  if (ext == ".npy") return "npy";
  if (ext == ".svm" || ext == ".libsvm" || ext == ".svmlight") return "libsvm";
  if (ext == ".h5" || ext == ".hdf5" || ext == ".he5") return "hdf5";
  if (ext == ".csv" || ext == ".tsv") return "csv";
  return looks_like_libsvm(opts.path) ? "libsvm" : "csv";
}

TableShape peek_shape(const ReadOptions& opts) {
  try {
    // A formula's columns (factor levels, interactions) are known only after the read.
    if (is_generator_spec(opts.path) || !opts.formula.empty()) return {};
    const std::string format = input_format(opts);
    if (format == "csv") return reader_detail::peek_csv(opts);
    if (format == "npy") return reader_detail::peek_npy(opts);
#ifdef NATGRAD_HAVE_HDF5
    if (format == "hdf5") return reader_detail::peek_hdf5(opts);
#endif
  } catch (const std::exception&) {  // an unknown --format: load_shard says so
  }
  return {};
}

#ifdef NATGRAD_HAVE_HDF5
bool hdf5_available() { return true; }
#else
bool hdf5_available() { return false; }

Shard read_hdf5(const ReadOptions& opts, const Communicator&) {
  throw CollectiveError(opts.path +
                        ": HDF5 input is not available in this build (built without parallel "
                        "HDF5; convert the data to .npy, CSV or LIBSVM)");
}

Shard reader_detail::read_hdf5_rows(const ReadOptions& opts, const Communicator& comm, bool) {
  return read_hdf5(opts, comm);
}
#endif

namespace {

/// "" or why \p path cannot be read as it is: a compressed file (by its magic bytes).
/// A file that cannot be opened is left to the format's reader, which says so.
std::string compressed_file_message(const std::string& path) {
  reader_detail::File f(path);
  std::string head;
  if (!f.ok() || !f.append(head, 0, 6)) return {};
  struct Magic {
    const char* bytes;
    std::size_t n;
    const char* kind;
    const char* tool;
  };
  static const Magic kMagic[] = {
      {"\x1f\x8b", 2, "gzip", "gzip -dk"},           {"\x28\xb5\x2f\xfd", 4, "zstd", "zstd -d"},
      {"\xfd" "7zXZ\x00", 6, "xz", "xz -dk"},        {"BZh", 3, "bzip2", "bzip2 -dk"},
      {"PK\x03\x04", 4, "zip", "unzip"},
  };
  for (const Magic& m : kMagic) {
    if (head.size() < m.n || head.compare(0, m.n, m.bytes, m.n) != 0) continue;
    if (std::string(m.kind) == "bzip2" && (head.size() < 4 || head[3] < '1' || head[3] > '9')) continue;
    return path + ": the file is " + m.kind + "-compressed: decompress it first (" + m.tool +
           "); natgrad reads uncompressed CSV, LIBSVM, NPY and HDF5 files";
  }
  return {};
}

}  // namespace

namespace {

constexpr double kGiB = 1073741824.0;

std::string gib(double bytes) {
  char b[32];
  std::snprintf(b, sizeof b, "%.2f GiB", bytes / kGiB);
  return b;
}

/// The rows of a sparse shard, densified in place of the CSR (room for the intercept
/// reserved, so that add_intercept does not reallocate). "" or why it could not be.
std::string to_dense(Shard& s, bool intercept, int threads) {
  const std::int64_t n = s.n_rows, p = s.n_cols, d = p + (intercept ? 1 : 0);
  const double need = static_cast<double>(n) * static_cast<double>(d) * 8;
  const MemoryAvailable have = memory_available();
  const double limit = std::min(have.process >= 0 ? static_cast<double>(have.process) : HUGE_VAL,
                                have.shared >= 0 ? static_cast<double>(have.shared) : HUGE_VAL);
  const std::string what = std::to_string(n) + " rows x " + std::to_string(d) + " columns as dense doubles need " +
                           gib(need) + " on this rank";
  if (need > 9e18 || need > limit)
    return what + ", " + gib(limit) + " available: keep the data sparse (--layout sparse, or auto)";
  try {
    std::vector<double> x;
    x.reserve(static_cast<std::size_t>(n * d));
    x.assign(static_cast<std::size_t>(n * p), 0.0);
    const SparseRows& c = s.csr;
#pragma omp parallel for num_threads(std::max(threads, 1)) schedule(static)
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t k = c.row_ptr[static_cast<std::size_t>(i)]; k < c.row_ptr[static_cast<std::size_t>(i) + 1]; ++k)
        x[static_cast<std::size_t>(i * p + c.index(k))] = c.values[static_cast<std::size_t>(k)];
    s.csr = SparseRows{};
    s.x = std::move(x);
    s.sparse = false;
  } catch (const std::bad_alloc&) {
    return what + ": out of memory: keep the data sparse (--layout sparse, or auto)";
  }
  return {};
}

/// The CSR form of a dense shard (its non-zeros, sized exactly, room for the intercept),
/// in place of the dense rows. "" or why it could not be.
std::string to_sparse(Shard& s, bool intercept, int threads) {
  const std::int64_t n = s.n_rows, p = s.n_cols;
  try {
    SparseRows c;
    c.wide = SparseRows::needs_wide(p + (intercept ? 1 : 0));
    c.row_ptr.assign(static_cast<std::size_t>(n) + 1, 0);
#pragma omp parallel for num_threads(std::max(threads, 1)) schedule(static)
    for (std::int64_t i = 0; i < n; ++i) {
      const double* r = s.row(i);
      std::int64_t k = 0;
      for (std::int64_t j = 0; j < p; ++j) k += r[j] != 0.0;
      c.row_ptr[static_cast<std::size_t>(i) + 1] = k;
    }
    for (std::int64_t i = 0; i < n; ++i) c.row_ptr[static_cast<std::size_t>(i) + 1] += c.row_ptr[static_cast<std::size_t>(i)];
    const auto nnz = static_cast<std::size_t>(c.nnz()), room = nnz + static_cast<std::size_t>(intercept ? n : 0);
    c.values.reserve(room);
    c.values.resize(nnz);
    if (c.wide) {
      c.index64.reserve(room);
      c.index64.resize(nnz);
    } else {
      c.index32.reserve(room);
      c.index32.resize(nnz);
    }
#pragma omp parallel for num_threads(std::max(threads, 1)) schedule(static)
    for (std::int64_t i = 0; i < n; ++i) {
      const double* r = s.row(i);
      auto k = static_cast<std::size_t>(c.row_ptr[static_cast<std::size_t>(i)]);
      for (std::int64_t j = 0; j < p; ++j) {
        if (r[j] == 0.0) continue;
        c.values[k] = r[j];
        if (c.wide) c.index64[k] = j;
        else c.index32[k] = static_cast<std::uint32_t>(j);
        ++k;
      }
    }
    s.x = {};
    s.csr = std::move(c);
    s.sparse = true;
  } catch (const std::bad_alloc&) {
    return "out of memory storing " + std::to_string(n) + " rows as CSR";
  }
  return {};
}

/// Collective. Stores the rows as --layout says (see ReadOptions::Layout).
/// \p intercept: the intercept's column is still to be added (room for it is reserved).
void apply_layout(Shard& shard, const ReadOptions& opts, bool intercept, const Communicator& comm) {
  bool sparse = shard.sparse;
  if (opts.layout == ReadOptions::Layout::sparse) {
    sparse = true;
  } else if (opts.layout == ReadOptions::Layout::dense) {
    sparse = false;
  } else if (shard.sparse) {
    double nnz = static_cast<double>(shard.csr.nnz());
    comm.allreduce_sum(&nnz, 1);
    const double cells = static_cast<double>(shard.n_global) * static_cast<double>(shard.n_cols);
    sparse = cells > 0 && nnz / cells < kSparseDensity;
  }
  std::string err;
  if (sparse && !shard.sparse) err = to_sparse(shard, intercept, opts.threads);
  if (!sparse && shard.sparse) {
    err = to_dense(shard, intercept, opts.threads);
    if (!err.empty())
      err = shard.source + ": " + (opts.layout == ReadOptions::Layout::dense ? "--layout dense: " : "") + err;
  }
  comm.check(err.empty(), err);
}

}  // namespace

Shard load_shard(const ReadOptions& opts, const Communicator& comm) {
  Shard shard;
  bool has_intercept = false;  // the reader wrote the intercept's column (NPY, dense HDF5)
  if (is_generator_spec(opts.path)) {
    const GeneratorSpec spec = parse_generator_spec(opts.path);
    const Range r = partition(spec.rows, comm.rank(), comm.size());
    std::string err;
    try {
      shard = generate_rows(spec, r.begin, r.end, std::max(opts.threads, 1), opts.intercept);
    } catch (const std::bad_alloc&) {
      err = "rank " + std::to_string(comm.rank()) + ": " + reader_detail::shard_out_of_memory(r.end - r.begin, spec.cols);
    }
    comm.check(err.empty(), err);
    shard.first_row = r.begin;
    shard.n_global = spec.rows;
    if (shard.source.empty()) shard.source = opts.path;
  } else {
    const std::string format = input_format(opts);
    std::string compressed;
    if (comm.is_root()) compressed = compressed_file_message(opts.path);
    comm.check(compressed.empty(), compressed);
    if (format == "npy") {
      shard = reader_detail::read_npy_rows(opts, comm, true);
      has_intercept = opts.intercept;
    } else if (format == "libsvm") {
      shard = read_libsvm(opts, comm);
    } else if (format == "hdf5") {
      shard = reader_detail::read_hdf5_rows(opts, comm, true);
      has_intercept = opts.intercept && !shard.sparse;  // a CSR group is read without it
    } else {
      shard = read_csv(opts, comm);
    }
  }
  comm.check(shard.n_global > 0,
             "no data rows in " + opts.path +
                 (shard.rows_dropped > 0 ? ": each of its " + std::to_string(shard.rows_dropped) +
                                               " rows has a missing value (empty, NA or NaN) in a used column (--na omit)"
                                         : std::string()));
  apply_layout(shard, opts, !has_intercept && opts.intercept, comm);
  if (opts.intercept && !has_intercept) {
    std::string err;
    try {
      add_intercept(shard);
    } catch (const std::bad_alloc&) {
      err = "rank " + std::to_string(comm.rank()) + ": " + reader_detail::shard_out_of_memory(shard.n_rows, shard.n_cols + 1);
    }
    comm.check(err.empty(), err);
  }
  return shard;
}

}  // namespace natgrad
