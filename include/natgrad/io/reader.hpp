#pragma once
/// \file reader.hpp
/// Loading this rank's rows. Collective: each rank reads only its part, and any
/// rank's failure (bad line, missing file) stops every rank with one message.
#include <string>

#include "natgrad/core/communicator.hpp"
#include "natgrad/core/option_table.hpp"
#include "natgrad/core/shard.hpp"

namespace natgrad {

struct ReadOptions {
  std::string path;    ///< file, or a generator spec "gen:..."
  std::string format;  ///< "", "csv", "libsvm", "npy", "hdf5" ("": by extension)
  /// Columns by 0-based index or header name. The label defaults to column 0; weight
  /// and offset columns are optional (empty = none); \p columns selects the features
  /// (comma-separated; empty = every column not used otherwise).
  std::string label_column = "0";  ///< or "none" (predict: no label; y is all 0)
  std::string weight_column;
  std::string offset_column;
  std::string columns;
  std::string dataset;  ///< HDF5: the 2-D dataset, or a CSR group (data/indices/indptr), in the file ("": "data")
  std::string label_dataset;   ///< HDF5 CSR group: the 1-D label dataset ("": "y" beside the group's arrays, else at the root)
  std::int64_t n_features = 0;  ///< sparse inputs (LIBSVM, HDF5 CSR): the feature count (0: from the data)
  /// Storage of X: auto (sparse inputs stay CSR below kSparseDensity, dense inputs stay
  /// dense), dense, or sparse (CSR).
  enum class Layout { auto_detect, dense, sparse } layout = Layout::auto_detect;
  char delimiter = ',';
  enum class Header { auto_detect, yes, no } header = Header::auto_detect;
  bool intercept = false;  ///< prepend a column of ones
  /// R model formula (io/formula.hpp; CSV with a header): "y ~ x1 + factor(g)". When set it
  /// replaces the column roles label/columns/offset (design.hpp builds the rows).
  std::string formula;
  /// Missing values (empty, NA, NaN) in a used column: omit drops the row (R's na.omit),
  /// fail stops at the first one naming file, line and column.
  enum class Na { omit, fail } na = Na::omit;
  std::string reference;  ///< "column=level,...": reference levels of factors (formula)
  std::string positive;   ///< binomial text label: the level counted as success (formula)
  int threads = 1;         ///< OpenMP threads for parsing / generating
};

/// Under --layout auto, a sparse input (LIBSVM, HDF5 CSR, gen:sparse-*) whose density
/// (nonzeros / (rows * columns), over all ranks, before the intercept) is below this stays
/// CSR; at or above it, each rank densifies its rows.
constexpr double kSparseDensity = 0.25;

/// "auto", "dense", "sparse" <-> ReadOptions::Layout; throws natgrad::Error naming --layout.
ReadOptions::Layout layout_from_string(const std::string& s);
const char* to_string(ReadOptions::Layout l);

/// "omit", "fail" <-> ReadOptions::Na; throws natgrad::Error naming --na.
ReadOptions::Na na_from_string(const std::string& s);
const char* to_string(ReadOptions::Na n);

/// "auto", "yes", "no" <-> ReadOptions::Header; throws natgrad::Error naming --header.
ReadOptions::Header header_from_string(const std::string& s);
const char* to_string(ReadOptions::Header h);

/// The command-line options that set ReadOptions members (declared once, here): data,
/// format, label-column, weight-column, offset-column, columns, dataset, delimiter,
/// header, intercept. The reader options that change what is read (format, column
/// roles, dataset, intercept) are part of the checkpoint fingerprint, the path is not (the
/// fingerprint holds the data's content instead); all are recorded in model.json, from
/// where predict takes its defaults.
const OptionTable<ReadOptions>& read_option_table();

/// Collective. Reads (or generates) this rank's rows: generator specs ("gen:..."), and
/// files in the format input_format() names; stores them as opts.layout says (auto:
/// sparse inputs below kSparseDensity stay CSR, the others are dense; dense refuses rows
/// that would not fit in memory); then adds the intercept column if asked.
/// Throws CollectiveError (on every rank, with one message) on any failure, including
/// a dataset without rows.
///
/// Column roles, for every file format. A file is a table of columns: CSV its fields;
/// NPY the array's columns; LIBSVM column 0 the label token and column j (j >= 1) the
/// feature of index j. label_column / weight_column / offset_column / the entries of
/// \p columns are each a 0-based index (a token of digits is always an index) or a
/// header name (CSV with a header only). A column may have one role only; columns
/// given no role are ignored (CSV: not even parsed, so they may hold text). Shard.names
/// are the header names of the feature columns, else "x1".."xP" by feature order (the
/// P features as selected, so a header-less CSV, an NPY file and a LIBSVM file of the
/// same table get the same names). Shard.weight / Shard.offset are empty unless a
/// weight / offset column is given; weights must be finite and >= 0.
Shard load_shard(const ReadOptions& opts, const Communicator& comm);

/// What a table's header says before any data line is read.
struct TableShape {
  std::int64_t rows = -1;      ///< data rows (NPY, HDF5), -1 when not known before the read
  std::int64_t features = -1;  ///< columns of X load_shard would give (intercept included), -1 when unknown
};

/// Local, no communication, never throws. The shape of \p opts.path from its header
/// alone, with the column roles of \p opts resolved as load_shard resolves them: CSV, the
/// first non-empty line's fields (the reader's delimiter and quoting); NPY, the header's
/// shape; HDF5, the dataset's dimensions. features is -1 where it is not known before the
/// read (LIBSVM, whose largest feature index only the read finds; generator specs, see
/// generator.hpp) and where the file or its header cannot be read or the roles do not
/// resolve: load_shard then reports that with its own message. Used by the memory
/// admission (app/admission.hpp) to check the Fisher before the data are read.
TableShape peek_shape(const ReadOptions& opts);

/// Local. The format load_shard reads \p opts.path in: "csv", "npy", "libsvm" or "hdf5".
/// An explicit opts.format wins (case-insensitive; "svmlight" and "svm" mean "libsvm");
/// else by extension: .npy; .svm, .libsvm, .svmlight; .h5, .hdf5, .he5; .csv, .tsv; any
/// other name by content: LIBSVM when the first line that is neither empty nor a '#'
/// comment (within the first 4 KiB, read by this rank) is a number followed by
/// index:value tokens, else CSV. Throws CollectiveError on an unknown opts.format. "hdf5" is recognised so
/// that load_shard can say it is not available in this build.
std::string input_format(const ReadOptions& opts);

/// Collective. CSV: the file's bytes after the header are split evenly across ranks;
/// a line belongs to the rank whose byte range holds its first byte. Each rank reads
/// only its range (plus the end of its last line). Errors name file and line.
/// Fields may be quoted (RFC 4180: "a,b" holds a delimiter, "" is a quote), in the
/// header and in data rows ("1.5" is a number); a quoted field may not span lines.
/// A used field that is empty, "NA" or "NaN" is missing: under ReadOptions::Na::omit its
/// row is dropped (counted in Shard::rows_dropped and Shard::missing), under fail the
/// first one stops every rank naming file, line and column.
Shard read_csv(const ReadOptions& opts, const Communicator& comm);

/// Collective. NumPy .npy (format 1.0, 2.0 or 3.0): a 2-D C-order array of dtype '<f8'
/// or '<f4' (float32 values are widened to double). Rows are split evenly across ranks
/// (partition()); each rank preads only its rows' bytes. Columns have no names: roles
/// are by index, features are named x1..xP. Values of used columns must be finite;
/// errors name the file and the 0-based array row and column.
Shard read_npy(const ReadOptions& opts, const Communicator& comm);

/// Collective. LIBSVM / svmlight text: `label idx:val idx:val ... [# comment]`, indices
/// 1-based and strictly increasing, `qid:N` ignored, absent features 0. Byte ranges per
/// rank as for CSV, parsed in two passes straight into a CSR shard of exactly the final
/// size; the number of columns is 1 + the largest index on any rank, or 1 +
/// opts.n_features (a larger index is a bad line). Labels: when every label of the file is -1 or +1 (binary LIBSVM),
/// -1 becomes 0 (so binomial fits see {0, 1}); otherwise labels are kept as given (class
/// ids, counts, responses). Errors name file and line.
Shard read_libsvm(const ReadOptions& opts, const Communicator& comm);

/// Collective. HDF5 through MPI-IO (parallel HDF5): the 2-D float64 or float32 dataset
/// \p opts.dataset ("data" if empty) of the file, stored in any layout and byte order.
/// Rows are split evenly across ranks (partition()); each rank reads its rows by
/// hyperslab in blocks of about 4 MiB with collective transfers. Columns as for NPY (by
/// index, features x1..xP). Errors name the file, the dataset and, for values, the
/// 0-based row and column. When opts.dataset is a group holding data / indices / indptr
/// (a CSR matrix as scipy + h5py or anndata write it), each rank reads its rows' slices
/// by hyperslab into a CSR shard; columns from the group's `shape` attribute,
/// opts.n_features or the largest index; labels from opts.label_dataset. In a build without parallel HDF5 (NATGRAD_HDF5 off) it
/// throws CollectiveError saying so.
Shard read_hdf5(const ReadOptions& opts, const Communicator& comm);

/// True if this build reads HDF5 files (built with parallel HDF5).
bool hdf5_available();

}  // namespace natgrad
