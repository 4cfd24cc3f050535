#pragma once
// Private to the readers (src/reader*.cpp): file access, number parsing, column roles
// and this rank's byte range of lines, shared by the CSV, NPY and LIBSVM readers.
// Not installed; nothing here communicates.
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "natgrad/core/partition.hpp"
#include "natgrad/core/shard.hpp"
#include "natgrad/io/reader.hpp"

namespace natgrad::reader_detail {

// The fuzz build (fuzz/CMakeLists.txt) makes these tiny, so that short inputs cross
// chunk boundaries and lines outgrow the reads.
#ifndef NATGRAD_READER_CHUNK_BYTES
#define NATGRAD_READER_CHUNK_BYTES (std::int64_t{1} << 22)
#endif
#ifndef NATGRAD_READER_SCAN_BYTES
#define NATGRAD_READER_SCAN_BYTES (std::int64_t{1} << 16)
#endif
constexpr std::int64_t kChunkBytes = NATGRAD_READER_CHUNK_BYTES;  // 4 MiB per read
constexpr std::int64_t kScanBytes = NATGRAD_READER_SCAN_BYTES;    // finishing or skipping a line

// ---------------------------------------------------------------------------
// File access: POSIX pread, so errors carry errno and each rank reads only the bytes
// it asks for.

class File {
 public:
  explicit File(const std::string& path);
  ~File();
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  std::int64_t size() const { return size_; }

  /// Appends bytes [offset, offset + n) to \p out (clamped at the end of file).
  /// Returns false (and sets error()) on a read failure.
  bool append(std::string& out, std::int64_t offset, std::int64_t n);

  /// Reads exactly bytes [offset, offset + n) into \p out. Returns "" or what went wrong
  /// (errno's text, or "file shrank while reading"); leaves error() alone, so that
  /// threads may read disjoint ranges of one File at once.
  std::string read_at(char* out, std::int64_t offset, std::int64_t n) const {
    std::int64_t done = 0;
    while (done < n) {
      const ssize_t got = ::pread(fd_, out + done, static_cast<std::size_t>(n - done),
                                  static_cast<off_t>(offset + done));
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) return std::strerror(errno);
      if (got == 0) return "file shrank while reading";
      done += got;
    }
    return {};
  }

 private:
  int fd_ = -1;
  std::int64_t size_ = 0;
  std::string error_;
};

/// Reads the line starting at \p offset (without its '\n'); \p next gets the offset
/// after it (the file size for a last line without '\n').
bool read_line(File& f, std::int64_t offset, std::string& line, std::int64_t& next);

// ---------------------------------------------------------------------------
// Text helpers.

/// Space, tab or '\r', unless it is the delimiter.
inline bool is_blank(char c, char delim) {
  return (c == ' ' || c == '\t' || c == '\r') && c != delim;
}
std::string_view trim(std::string_view s, char delim = '\0');
bool is_empty_line(std::string_view line);

/// Parses the whole of \p s as a double (a leading '+' allowed). Overflow gives +-inf
/// and underflow 0 or a denormal, as strtod would.
bool parse_double(std::string_view s, double& v);

/// "" if \p s is valid UTF-8 (no overlong forms, surrogates or code points above
/// U+10FFFF), else where it is not, e.g. "byte 0xFF at offset 3".
std::string utf8_error(std::string_view s);

/// \p s, cut to a length fit for an error message.
std::string shown(std::string_view s);

/// "v" formatted for messages (shortest round-trip form).
std::string number_text(double v);

// ---------------------------------------------------------------------------
// CSV fields and header (reader_csv.cpp; shared with read_frame, frame.cpp).

/// One field of a CSV line (RFC 4180 quoting, one line at a time).
struct Field {
  std::string_view text;  ///< without surrounding blanks and quotes; "" not yet collapsed
  bool quoted = false;
  bool escaped = false;  ///< holds a doubled quote ""
};

enum class Next { more, last, unterminated, text_after_quote };

/// Reads the field at \p pos of \p line into \p f and moves \p pos past its delimiter.
/// A field is quoted when its first non-blank character is '"'.
Next next_field(std::string_view line, std::size_t& pos, char delim, Field& f);

/// The field's text with doubled quotes collapsed.
std::string field_text(const Field& f);

/// A field as a number: quoted numbers ("1.5", " 2 ") count.
bool field_number(const Field& f, char delim, double& v);

/// A missing value: the field's text, unquoted and trimmed, is empty, "NA" or "NaN".
inline bool is_missing_text(std::string_view t) { return t.empty() || t == "NA" || t == "NaN"; }
inline bool field_missing(const Field& f, char delim) {
  return !f.escaped && is_missing_text(f.quoted ? trim(f.text, delim) : f.text);
}

/// The fields of a whole line, or the 1-based field and text of its quoting error.
struct SplitLine {
  std::vector<Field> fields;
  std::string error;
};
SplitLine split_line(std::string_view line, char delim);

/// The first non-empty line of a CSV file, and whether it is a header.
struct HeaderInfo {
  std::int64_t body_begin = 0;         ///< file offset where data lines start
  std::int64_t lines_before_body = 0;  ///< file lines before body_begin
  std::vector<std::string> fields;     ///< the first non-empty line's fields
  bool is_header = false;
};

/// Finds the first non-empty line and decides whether it is a header (opts.header).
/// Returns the complete error message, or "" on success.
std::string read_header(File& f, const ReadOptions& opts, HeaderInfo& h);

// ---------------------------------------------------------------------------
// Column roles: which column of the table is the label, weight, offset and features.
// Every format is seen as a table of n columns (CSV: its fields; NPY: the array's
// columns; LIBSVM: column 0 the label, column j feature index j).

struct ColumnRoles {
  std::int64_t label = -1;             ///< -1: none (--label-column none: y is all 0)
  std::int64_t weight = -1;            ///< -1: none
  std::int64_t offset = -1;            ///< -1: none
  std::vector<std::int64_t> features;  ///< columns of x, in order
  std::vector<std::string> names;      ///< one per feature
  bool implicit_features = false;      ///< every column without a role (sparse tables; features empty)

  /// Per column: the feature slot (>= 0) or one of the negative roles below.
  static constexpr std::int32_t kLabel = -1, kWeight = -2, kOffset = -3, kUnused = -4;
  std::vector<std::int32_t> role_of_column(std::int64_t n_columns) const;
};

/// What the table offers for resolving ReadOptions' label/weight/offset/columns.
struct TableColumns {
  std::string path;
  std::int64_t n = 0;
  /// Column names, or nullopt when the file has none (then \p no_names_reason says why,
  /// e.g. "has no header line").
  std::optional<std::vector<std::string>> names;
  std::string no_names_reason;
  /// Sparse tables (LIBSVM, HDF5 CSR): without --columns, resolve_columns leaves
  /// ColumnRoles::features and names empty (every other column is a feature, possibly
  /// billions of them) and the caller maps columns with SparseColumnMap.
  bool implicit_features = false;
};

/// True for the column reference "none" (no such column: label, weight or offset).
bool is_none(std::string_view column);

/// Resolves the roles. Returns the complete error message, or "" on success. Local and
/// deterministic: ranks that see the same table get the same answer.
std::string resolve_columns(const ReadOptions& opts, const TableColumns& table, ColumnRoles& roles);

// ---------------------------------------------------------------------------
// This rank's lines of a text body: the body's bytes [body_begin, file end) are split
// evenly across ranks; a line belongs to the rank whose byte range holds its first byte.

/// A line of a chunk buffer: bytes [begin, end) (no '\n') and its local line index
/// (0 = this rank's first line, empty lines counted).
struct LineSpan {
  std::size_t begin, end;
  std::int64_t line;
};

/// Calls \p on_chunk with each buffer of this rank's complete, non-empty lines, in
/// file order; stops early when it returns false. \p lines gets the number of lines
/// owned (empty ones included; up to the stop). Returns "" or a read error.
std::string for_each_line_chunk(
    File& f, std::int64_t body_begin, const Range& mine, std::int64_t& lines,
    const std::function<bool(const std::string&, const std::vector<LineSpan>&)>& on_chunk);

/// This rank's first error: local line index (-1 if not tied to a line) and text.
struct LocalError {
  std::int64_t local_line = -1;
  std::string what;
  bool any() const { return !what.empty(); }
};

/// Sizes \p shard for \p rows rows of \p d columns of X (d = the features, plus one when the
/// reader writes the intercept's column itself), the labels, and weights / offsets when
/// asked. X's pages are placed before it is sized: \p threads threads each fault in (as
/// transparent huge pages where the kernel offers them) the contiguous part of the rows
/// that the same thread of a static split reads and later computes on, so that the pages
/// sit on that thread's NUMA node and no thread takes 2 GB of page faults alone. A failed
/// allocation is recorded in \p local, not thrown, so the rank still takes part in the
/// collectives that follow.
void allocate_shard(Shard& shard, std::int64_t rows, std::int64_t d, bool weights, bool offsets, int threads,
                    LocalError& local);

/// Thread \p t of \p threads's part [begin, end) of \p n rows: the static split that
/// allocate_shard places pages for and read_table reads by (as OpenMP's schedule(static)).
inline Range thread_rows(std::int64_t n, int t, int threads) {
  return {n * t / threads, n * (t + 1) / threads};
}

/// A row-major table of floats at a file offset: an NPY array's data, or a contiguous
/// HDF5 dataset's storage (H5Dget_offset).
struct RawTable {
  std::int64_t offset = 0;  ///< file offset of row 0
  std::int64_t cols = 0;
  std::int64_t item = 8;    ///< bytes per value: 8 (float64) or 4 (float32)
  bool swap = false;        ///< stored in the other byte order (big-endian)
};

/// Local. Reads rows [mine.begin, mine.end) of \p t in \p f into \p shard, which it allocates
/// (allocate_shard): X with the features of \p roles, after a column of ones when
/// \p intercept; y, weight, offset as \p roles say. \p threads threads each read their
/// static part of the rows (thread_rows) with pread in blocks of about 512 KiB: straight
/// into X when a file row is laid out as a row of X (float64 in native order, the features
/// one run of columns, and no other column but the label in the intercept's place: the
/// label is then taken out and the 1 put in), else through the thread's own buffer, from
/// which the thread swaps bytes, widens float32 and scatters the columns. The outcome is
/// the sequential one: the first failure in row order (a read error, a value that is not
/// finite, a negative weight) goes to \p local, a value's message starting with
/// \p where(global row, column), a read error's with "read error: ".
void read_table(const File& f, const RawTable& t, const ColumnRoles& roles, const Range& mine, bool intercept,
                int threads, Shard& shard, LocalError& local,
                const std::function<std::string(std::int64_t, std::int64_t)>& where);

/// read_npy / read_hdf5 (reader.hpp) that, when \p with_intercept and opts.intercept, write
/// the intercept's column of ones as column 0 of X (named "(Intercept)") as they read, so
/// that load_shard need not move X to insert it (add_intercept). A dense dataset only: an
/// HDF5 CSR group is read as read_hdf5 reads it, without the intercept.
Shard read_npy_rows(const ReadOptions& opts, const Communicator& comm, bool with_intercept);
Shard read_hdf5_rows(const ReadOptions& opts, const Communicator& comm, bool with_intercept);

/// "out of memory: this rank's R rows x P features (about X GiB) could not be allocated;
/// see 'Memory admission' in docs/cluster.md".
std::string shard_out_of_memory(std::int64_t rows, std::int64_t p);

/// Why a row of a binary table (NPY, HDF5) was refused: the first used column whose value
/// (\p value(c)) is not finite, or a negative weight, as "<where(c)>weight -1 must be >= 0"
/// or "<where(c)>value inf is not finite"; "" if none.
std::string first_bad_value(const ColumnRoles& roles, std::int64_t cols, const std::function<double(std::int64_t)>& value,
                            const std::function<std::string(std::int64_t)>& where);

/// Sets the shard's bookkeeping once its rows (\p rows of \p n_global) are in.
void finish_shard(Shard& shard, std::int64_t first_row, std::int64_t n_rows, std::int64_t n_global, std::int64_t p,
                  std::vector<std::string> names, const std::string& source);

/// "PATH:LINE: what" (or "PATH: what" when not tied to a line), given the file line
/// of this rank's local line 0.
std::string located(const std::string& path, const LocalError& err, std::int64_t first_line);

// ---------------------------------------------------------------------------
// The local part of each text reader: what rank \p rank of \p size parses, without
// communication. read_csv / read_libsvm call these and then agree across ranks; the
// fuzz targets (fuzz/) call them directly, for several (rank, size) of one file.

/// CSV: header, column roles and this part's rows.
struct CsvPart {
  std::string error;  ///< open / header / column-role error (complete message), else ""
  std::int64_t lines_before_body = 0;  ///< file lines before the first data line
  std::int64_t lines = 0;              ///< lines of this part (empty ones included)
  LocalError bad;                      ///< this part's first bad line (local line index)
  std::int64_t n_features = 0;
  std::vector<double> x, y, weight, offset;  ///< rows before the bad line, as in Shard
  /// Missing values (empty, NA, NaN) under ReadOptions::Na::omit: rows dropped, and per
  /// column of the file the missing values of those rows.
  std::int64_t rows_dropped = 0;
  std::vector<std::int64_t> missing;
  std::vector<std::string> header;  ///< the header's names (empty without a header line)
  std::vector<std::string> names;
  std::string warning;  ///< e.g. repeated header names (complete text), else ""
};
CsvPart parse_csv_part(const ReadOptions& opts, int rank, int size);

/// LIBSVM rows as parsed, in CSR form: row r holds the pairs [csr.row_ptr[r],
/// csr.row_ptr[r + 1]) with the file's 1-based feature indices (32-bit unless an index of
/// this part needs 64 bits), and its label token in label[r]. Sized exactly from a first,
/// counting pass over the lines (plus one entry per row when opts.intercept, for
/// add_intercept), so nothing is copied or over-allocated.
struct ParsedRows {
  SparseRows csr;
  std::vector<double> label;
  std::int64_t max_index = 0;

  ParsedRows() { csr.row_ptr.assign(1, 0); }
  std::int64_t rows() const { return static_cast<std::int64_t>(label.size()); }
  /// Appends \p o's rows (for tests and the fuzz target).
  void append(const ParsedRows& o);
};

/// LIBSVM: this part's rows, before the ranks agree on the number of features. A line
/// with an index above opts.n_features (when > 0) is a bad line.
struct LibsvmPart {
  std::string error;  ///< open error (complete message), else ""
  std::int64_t lines = 0;
  LocalError bad;
  ParsedRows rows;
};
LibsvmPart parse_libsvm_part(const ReadOptions& opts, int rank, int size);

/// The local line index (as in LocalError) of this part's row \p row (0-based, counting
/// only lines that hold a row), found by scanning the lines again; -1 if not found.
std::int64_t libsvm_line_of_row(const ReadOptions& opts, int rank, int size, std::int64_t row);

// ---------------------------------------------------------------------------
// Sparse column roles (LIBSVM, HDF5 CSR): the table's columns are many and implicit.

/// Where each table column of a sparse table goes: a feature slot, or one of
/// ColumnRoles' negative roles. Built from resolved roles without any O(columns) memory
/// when the features are implicit (every column without a role).
class SparseColumnMap {
 public:
  /// \p roles from resolve_columns with TableColumns::implicit_features; \p n the table's
  /// column count; \p skip a column that is neither feature nor role (LIBSVM's label
  /// token under --label-column none), or -1.
  SparseColumnMap(const ColumnRoles& roles, std::int64_t n, std::int64_t skip);
  /// The role of column \p c (a feature slot >= 0, or ColumnRoles::kLabel etc.).
  std::int32_t role(std::int64_t c) const;
  std::int64_t slot(std::int64_t c) const;  ///< -1 unless a feature
  std::int64_t features() const { return p_; }
  /// True when no column but 0 has a role and the features are implicit: slot(c) =
  /// c - shift() for every c >= 1, so rows without column 0 need only the shift.
  bool is_shift() const { return shift_only_; }
  std::int64_t shift() const { return shift_; }
  /// Feature slots increase with the column (no --columns reordering).
  bool monotone() const { return monotone_; }

 private:
  bool implicit_ = true, shift_only_ = false, monotone_ = true;
  std::int64_t p_ = 0, shift_ = 0, label_ = -1, weight_ = -1, offset_ = -1;
  std::vector<std::int64_t> claimed_;                        ///< sorted columns without a feature slot (implicit)
  std::vector<std::pair<std::int64_t, std::int64_t>> listed_;  ///< (column, slot), sorted (explicit --columns)
};

/// Names x1..xP, or none when P > kMaxNamedColumns (Shard.names is then empty).
constexpr std::int64_t kMaxNamedColumns = std::int64_t{1} << 26;
std::vector<std::string> x_names(std::int64_t p);

/// Rewrites the CSR rows \p c (table column indices) to feature slots in place: entries
/// of feature columns are kept (re-sorted within the row if \p map is not monotone),
/// label / weight / offset entries go to \p y / \p weight / \p offset (when those are
/// sized; absent entries leave them as they are), other entries are dropped. Then the
/// index width is set for \p map.features() columns. Returns the first row whose weight
/// is negative or not finite, or -1.
std::int64_t remap_sparse_rows(SparseRows& c, const SparseColumnMap& map, std::vector<double>& y,
                               std::vector<double>& weight, std::vector<double>& offset, int threads);

/// Sets \p c's index width to what \p n_cols columns need (widening or narrowing).
void set_index_width(SparseRows& c, std::int64_t n_cols);
// ---------------------------------------------------------------------------
// peek_shape (reader.hpp) per format: the header only; throw nothing, -1 when unknown.

TableShape peek_csv(const ReadOptions& opts);
TableShape peek_npy(const ReadOptions& opts);
TableShape peek_hdf5(const ReadOptions& opts);  // HDF5 builds only (reader_hdf5.cpp)

}  // namespace natgrad::reader_detail
