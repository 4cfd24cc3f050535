#pragma once
/// \file frame.hpp
/// A rank's rows of a CSV table as typed columns (R's data frame): what a model formula
/// reads (formula.hpp, design.hpp). Collective reading; the Frame itself is local data.
///
/// Missing values: a field that is empty, "NA" or "NaN" (after unquoting and trimming
/// blanks) is missing, in numeric and in text columns alike. A numeric column holds NaN
/// for a missing value, a factor column the code -1. Under ReadOptions::Na::fail the
/// first missing value of a requested column stops every rank with a message naming the
/// file, the line and the column.
///
/// Kinds: a requested column whose non-missing fields are all numbers on every rank is
/// numeric; a column with any other field on any rank is a factor (text). Columns listed
/// in FrameRequest::as_factor are factors even when numeric (R's factor(x)). Factor levels
/// are the union over all ranks, sorted: text levels in byte order (R's sort() in the C
/// locale), the levels of a numeric factor in numeric order. In a text column a field
/// that reads as a number is the level its text spells (after unquoting and trimming).
/// The levels of a numeric column read as a factor are named by the shortest decimal that
/// reads back as the same double (std::to_chars: 1, 2.5, 1e+06), as R's as.character does
/// for such values.
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "natgrad/core/communicator.hpp"
#include "natgrad/io/reader.hpp"

namespace natgrad {

struct FrameColumn {
  std::string name;             ///< the header name
  std::int64_t index = -1;      ///< 0-based column of the file
  enum class Kind { numeric, factor } kind = Kind::numeric;
  std::vector<double> values;         ///< numeric: one per row; NaN = missing
  std::vector<std::int32_t> codes;    ///< factor: one per row, 0-based into levels; -1 = missing
  std::vector<std::string> levels;    ///< factor: identical on every rank, sorted (see above)
  bool numeric_levels = false;        ///< factor read from a numeric column (levels in numeric order)
};

/// Which columns read_frame reads, and how.
struct FrameRequest {
  /// Header names (or 0-based indices as digits) of the columns to read, in this order.
  /// Columns not listed are not parsed.
  std::vector<std::string> columns;
  /// Columns (names as in \p columns) read as factors even when their fields are numbers.
  std::vector<std::string> as_factor;
  /// Columns whose levels are given (predict: the levels stored at fit time), by name.
  /// Codes index these levels; a value that is not one of them is an error naming the
  /// file, line, column and value ("level 'x' of column 'race' was not seen when the
  /// model was fitted"). No level discovery collective is needed for these columns.
  std::map<std::string, std::vector<std::string>> fixed_levels;
  /// Columns that may be absent from the file (predict: the response). An absent column
  /// is returned with index -1 and no values.
  std::vector<std::string> optional;
};

/// This rank's rows, as read (missing values included; rows are dropped by the design).
struct Frame {
  std::int64_t n_rows = 0;     ///< rows on this rank
  std::int64_t first_row = 0;  ///< global 0-based index of this rank's first row
  std::int64_t n_global = 0;   ///< rows on all ranks
  std::vector<FrameColumn> columns;  ///< in request order
  std::vector<std::int64_t> line;    ///< per row: its 1-based line in the file (for messages)
  std::string source;                ///< the file
  /// The column of that name, or null.
  const FrameColumn* find(std::string_view name) const;
};

/// Local. The header names of a CSV file with a header line (opts.path, opts.delimiter,
/// quoting as the CSV reader). Throws natgrad::Error naming the file when it cannot be read
/// or has no header line (a formula names columns, so it needs one).
std::vector<std::string> frame_header(const ReadOptions& opts);

/// Collective. Reads the requested columns of this rank's byte range of the CSV file
/// (the same split as read_csv: each rank parses its lines, OpenMP threads within), decides
/// each column's kind over all ranks and discovers the factor levels (one small exchange of
/// the kinds and the local level sets). opts.na = fail: the first missing value stops every
/// rank (file, line, column). Throws CollectiveError, with one message on every rank, on
/// any failure: a missing file, a requested column not in the header, a bad line (wrong
/// number of fields, quoting), an unknown level of a fixed_levels column.
Frame read_frame(const ReadOptions& opts, const FrameRequest& request, const Communicator& comm);

}  // namespace natgrad
