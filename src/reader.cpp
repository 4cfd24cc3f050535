#include "natgrad/reader.hpp"

#include <fcntl.h>
#include <omp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <utility>

#include "natgrad/error.hpp"
#include "natgrad/generator.hpp"
#include "natgrad/partition.hpp"

namespace natgrad {

void add_intercept(Shard& shard) {
  const std::int64_t n = shard.n_rows, p = shard.n_cols;
  std::vector<double> x(static_cast<std::size_t>(n * (p + 1)));
  for (std::int64_t i = 0; i < n; ++i) {
    double* dst = x.data() + i * (p + 1);
    dst[0] = 1.0;
    std::copy_n(shard.x.data() + i * p, p, dst + 1);
  }
  shard.x = std::move(x);
  shard.n_cols = p + 1;
  shard.names.insert(shard.names.begin(), "(Intercept)");
}

namespace {

constexpr std::int64_t kChunkBytes = std::int64_t{1} << 22;  // 4 MiB per read
constexpr std::int64_t kScanBytes = std::int64_t{1} << 16;   // skipping a partial line
constexpr std::size_t kMaxShownField = 40;

// ---------------------------------------------------------------------------
// File access: POSIX pread, so errors carry errno and each rank reads only the
// bytes it asks for.

class File {
 public:
  explicit File(const std::string& path) : fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {
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
  ~File() {
    if (fd_ >= 0) ::close(fd_);
  }
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  std::int64_t size() const { return size_; }

  /// Appends bytes [offset, offset + n) to \p out (clamped at the end of file).
  /// Returns false (and sets error()) on a read failure.
  bool append(std::string& out, std::int64_t offset, std::int64_t n) {
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

 private:
  int fd_ = -1;
  std::int64_t size_ = 0;
  std::string error_;
};

// ---------------------------------------------------------------------------
// Field splitting and number parsing.

bool is_blank(char c, char delim) { return (c == ' ' || c == '\t' || c == '\r') && c != delim; }

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

std::vector<std::string_view> split(std::string_view line, char delim) {
  std::vector<std::string_view> fields;
  for (;;) {
    const std::size_t at = line.find(delim);
    fields.push_back(trim(line.substr(0, at), delim));
    if (at == std::string_view::npos) return fields;
    line.remove_prefix(at + 1);
  }
}

/// Parses the whole of \p s as a double (a leading '+' allowed). Overflow gives
/// +-inf and underflow 0 or a denormal, as strtod would.
bool parse_double(std::string_view s, double& v) {
  if (s.size() > 1 && s.front() == '+' && s[1] != '-') s.remove_prefix(1);
  const char* end = s.data() + s.size();
  const auto [ptr, ec] = std::from_chars(s.data(), end, v);
  if (s.empty() || ptr != end) return false;
  if (ec == std::errc::result_out_of_range) v = std::strtod(std::string(s).c_str(), nullptr);
  return ec == std::errc() || ec == std::errc::result_out_of_range;
}

std::string shown(std::string_view field) {
  if (field.size() <= kMaxShownField) return std::string(field);
  return std::string(field.substr(0, kMaxShownField)) + "...";
}

/// The layout every data line must follow.
struct Layout {
  std::int64_t n_fields = 0;
  std::int64_t label = 0;
  char delim = ',';
};

/// Parses one data line into its feature row and label; false if anything is wrong
/// with it. Touches no shared state, so lines parse in parallel.
bool parse_row(std::string_view line, const Layout& lay, double* xrow, double* y) {
  std::int64_t field = 0;
  for (;; ++field) {
    const std::size_t at = line.find(lay.delim);
    double v = 0.0;
    if (field >= lay.n_fields || !parse_double(trim(line.substr(0, at), lay.delim), v) ||
        !std::isfinite(v))
      return false;
    if (field == lay.label)
      *y = v;
    else
      xrow[field < lay.label ? field : field - 1] = v;
    if (at == std::string_view::npos) break;
    line.remove_prefix(at + 1);
  }
  return field + 1 == lay.n_fields;
}

/// What is wrong with a line parse_row rejected (without file and line).
std::string describe_bad_line(std::string_view line, const Layout& lay) {
  const std::vector<std::string_view> fields = split(line, lay.delim);
  const auto found = static_cast<std::int64_t>(fields.size());
  if (found != lay.n_fields)
    return "expected " + std::to_string(lay.n_fields) + " fields, found " + std::to_string(found);
  for (std::size_t j = 0; j < fields.size(); ++j) {
    double v = 0.0;
    const std::string where = "field " + std::to_string(j + 1);
    if (!parse_double(fields[j], v)) return where + " '" + shown(fields[j]) + "' is not a number";
    if (!std::isfinite(v)) return where + " is not finite (" + shown(fields[j]) + ")";
  }
  return "malformed line";  // not reached: parse_row accepts such a line
}

// ---------------------------------------------------------------------------
// The header (or first data line): every rank reads it.

struct HeaderInfo {
  std::int64_t body_begin = 0;         ///< file offset where data lines start
  std::int64_t lines_before_body = 0;  ///< file lines before body_begin
  std::vector<std::string> fields;     ///< the first non-empty line's fields
  bool is_header = false;
};

/// Reads the line starting at \p offset (without its '\n'); \p next gets the offset
/// after it.
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

bool looks_like_header(const std::vector<std::string>& fields) {
  double v = 0.0;
  return std::any_of(fields.begin(), fields.end(),
                     [&](const std::string& s) { return !parse_double(s, v); });
}

std::string unquote(std::string_view s) {
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') s = s.substr(1, s.size() - 2);
  return std::string(s);
}

/// Finds the first non-empty line and decides whether it is a header. Returns the
/// complete error message, or "" on success.
std::string read_header(File& f, const ReadOptions& opts, HeaderInfo& h) {
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
  for (std::string_view s : split(line, opts.delimiter)) h.fields.push_back(unquote(s));
  using H = ReadOptions::Header;
  h.is_header =
      opts.header == H::yes || (opts.header == H::auto_detect && looks_like_header(h.fields));
  h.body_begin = h.is_header ? next : pos;
  h.lines_before_body = h.is_header ? lineno : lineno - 1;
  const auto n = static_cast<std::int64_t>(h.fields.size());
  if (opts.label_column < 0 || opts.label_column >= n)
    return "--label-column " + std::to_string(opts.label_column) + " but " + opts.path + " has " +
           std::to_string(n) + " column" + (n == 1 ? "" : "s");
  return {};
}

std::vector<std::string> column_names(const HeaderInfo& h, std::int64_t label) {
  std::vector<std::string> names;
  for (std::int64_t j = 0; j < static_cast<std::int64_t>(h.fields.size()); ++j) {
    if (j == label) continue;
    names.push_back(h.is_header ? h.fields[j] : "x" + std::to_string(names.size() + 1));
  }
  return names;
}

// ---------------------------------------------------------------------------
// The body: this rank's byte range.

/// The first error of this rank: local line index (-1 if not tied to a line) and text.
struct LocalError {
  std::int64_t local_line = -1;
  std::string what;
  bool any() const { return !what.empty(); }
};

/// Parsing state of this rank's range.
struct BodyReader {
  BodyReader(File& f, const Layout& layout, std::int64_t range_end, int nt)
      : file(f), lay(layout), end(range_end), threads(nt) {}

  File& file;
  Layout lay;
  std::int64_t end;  ///< lines whose first byte is before `end` are ours
  int threads;
  std::vector<double> x, y;
  std::int64_t lines = 0;  ///< lines owned so far, empty ones included
  LocalError err;

  /// A line of the buffer to parse: [begin, end) and its local line index.
  struct Span {
    std::size_t begin, end;
    std::int64_t line;
  };

  void run(std::int64_t start);
  bool cut_lines(const std::string& buf, std::int64_t buf_off, bool eof, std::size_t& used,
                 std::vector<Span>& spans);
  void parse(const std::string& buf, const std::vector<Span>& spans);
};

/// Offset of the first line start at or after \p b (b > body start, so b-1 exists).
std::int64_t first_line_start(File& f, std::int64_t b) {
  std::string line;
  std::int64_t next = f.size();
  if (!read_line(f, b - 1, line, next)) return -1;
  return next;
}

void BodyReader::run(std::int64_t start) {
  std::string buf;
  std::int64_t buf_off = start, read_pos = start;
  std::vector<Span> spans;
  for (;;) {
    // Up to a chunk of our range; past its end, only enough to finish the last line.
    const std::int64_t want = read_pos < end ? std::min(kChunkBytes, end - read_pos) : kScanBytes;
    if (!file.append(buf, read_pos, want)) {
      err.what = "read error: " + file.error();
      return;
    }
    read_pos = std::min(read_pos + want, file.size());
    std::size_t used = 0;
    spans.clear();
    const bool done = cut_lines(buf, buf_off, read_pos >= file.size(), used, spans);
    parse(buf, spans);
    if (done || err.any()) return;
    buf.erase(0, used);
    buf_off += static_cast<std::int64_t>(used);
  }
}

/// Splits the complete lines of \p buf (at file offset \p buf_off) that start before
/// `end` into \p spans, skipping empty ones; \p used gets the bytes consumed. Returns
/// true when this rank has no more lines.
bool BodyReader::cut_lines(const std::string& buf, std::int64_t buf_off, bool eof,
                           std::size_t& used, std::vector<Span>& spans) {
  std::size_t i = 0;
  for (;;) {
    if (buf_off + static_cast<std::int64_t>(i) >= end) return true;
    std::size_t nl = buf.find('\n', i);
    if (nl == std::string::npos) {
      if (!eof) break;
      nl = buf.size();  // the last line of a file without a final newline
    }
    if (!is_empty_line(std::string_view(buf.data() + i, nl - i))) spans.push_back({i, nl, lines});
    ++lines;
    i = std::min(nl + 1, buf.size());
  }
  used = i;
  return false;
}

void BodyReader::parse(const std::string& buf, const std::vector<Span>& spans) {
  const auto n = static_cast<std::int64_t>(spans.size());
  const auto row0 = static_cast<std::int64_t>(y.size());
  const std::int64_t p = lay.n_fields - 1;
  x.resize(static_cast<std::size_t>((row0 + n) * p));
  y.resize(static_cast<std::size_t>(row0 + n));
  std::int64_t first_bad = n;
#pragma omp parallel for num_threads(threads) schedule(static) reduction(min : first_bad)
  for (std::int64_t k = 0; k < n; ++k) {
    const Span& s = spans[k];
    const std::string_view line(buf.data() + s.begin, s.end - s.begin);
    if (!parse_row(line, lay, x.data() + (row0 + k) * p, y.data() + row0 + k))
      first_bad = std::min(first_bad, k);
  }
  if (first_bad == n) return;
  // Describe the first bad line (serially), and drop it and the rows after it.
  const Span& s = spans[first_bad];
  err.what = describe_bad_line(std::string_view(buf.data() + s.begin, s.end - s.begin), lay);
  err.local_line = s.line;
  y.resize(static_cast<std::size_t>(row0 + first_bad));
  x.resize(static_cast<std::size_t>((row0 + first_bad) * p));
}

}  // namespace

// ---------------------------------------------------------------------------

Shard read_csv(const ReadOptions& opts, const Communicator& comm) {
  const std::string& path = opts.path;
  File file(path);
  HeaderInfo head;
  const std::string err =
      file.ok() ? read_header(file, opts, head) : path + ": cannot open: " + file.error();
  comm.check(err.empty(), err);

  // This rank's bytes of the body; lines belong to the range holding their first byte.
  const Range mine = partition(file.size() - head.body_begin, comm.rank(), comm.size());
  const Layout lay{static_cast<std::int64_t>(head.fields.size()), opts.label_column,
                   opts.delimiter};
  BodyReader body(file, lay, head.body_begin + mine.end, std::max(opts.threads, 1));
  if (mine.size() > 0) {
    const std::int64_t b = head.body_begin + mine.begin;
    const std::int64_t start = mine.begin == 0 ? b : first_line_start(file, b);
    if (start < 0)
      body.err.what = "read error: " + file.error();
    else if (start < body.end)
      body.run(start);
  }

  // Collectives in the same order on every rank, failed or not.
  const std::int64_t line0 = head.lines_before_body + comm.exscan_sum(body.lines);
  Shard shard;
  shard.n_rows = static_cast<std::int64_t>(body.y.size());
  shard.first_row = comm.exscan_sum(shard.n_rows);
  std::string msg = path + ": " + body.err.what;
  if (body.err.local_line >= 0)
    msg = path + ":" + std::to_string(line0 + body.err.local_line + 1) + ": " + body.err.what;
  comm.check(!body.err.any(), msg);

  shard.n_global = shard.n_rows;
  comm.allreduce_sum(&shard.n_global, 1);
  shard.n_cols = static_cast<std::int64_t>(head.fields.size()) - 1;
  shard.x = std::move(body.x);
  shard.y = std::move(body.y);
  shard.x.shrink_to_fit();
  shard.y.shrink_to_fit();
  shard.names = column_names(head, opts.label_column);
  shard.source = path;
  return shard;
}

Shard load_shard(const ReadOptions& opts, const Communicator& comm) {
  Shard shard;
  if (is_generator_spec(opts.path)) {
    const GeneratorSpec spec = parse_generator_spec(opts.path);
    const Range r = partition(spec.rows, comm.rank(), comm.size());
    shard = generate_rows(spec, r.begin, r.end, std::max(opts.threads, 1));
    shard.first_row = r.begin;
    shard.n_global = spec.rows;
    if (shard.source.empty()) shard.source = opts.path;
  } else {
    shard = read_csv(opts, comm);
  }
  comm.check(shard.n_global > 0, "no data rows in " + opts.path);
  if (opts.intercept) add_intercept(shard);
  return shard;
}

}  // namespace natgrad
