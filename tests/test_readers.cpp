// Readers beyond plain CSV: column roles (label / weight / offset / features by index
// or name), quoted CSV fields, NPY and LIBSVM files, load_shard's format dispatch, and
// that one table written as CSV, NPY and LIBSVM loads to the same rows at the current
// rank count. Every rank runs every test case and makes the same collective calls in
// the same order; error messages are checked on every rank.
#include <sys/stat.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "natgrad/core/communicator.hpp"
#include "natgrad/core/error.hpp"
#include "natgrad/io/npy.hpp"
#include "natgrad/io/reader.hpp"
#include "support/test_support.hpp"

namespace {

using Catch::Matchers::Contains;
using namespace natgrad;
using namespace natgrad::test;

// ---------------------------------------------------------------------------
// A table (column 0 the label by default), and writers for each format.

struct Table {
  std::int64_t rows = 0, cols = 0;
  std::vector<double> v;  ///< row-major
  double at(std::int64_t i, std::int64_t j) const { return v[i * cols + j]; }
};

/// Row i: label in {0, 1}, then columns with zeros in places (sparse in LIBSVM), a
/// positive "weight-like" column, and values that need all 17 digits.
Table make_table(std::int64_t rows, bool float32_exact = false) {
  Table t;
  t.rows = rows;
  t.cols = 5;
  for (std::int64_t i = 0; i < rows; ++i) {
    const auto d = static_cast<double>(i);
    t.v.push_back(i % 3 == 0 ? 1.0 : 0.0);
    t.v.push_back(0.5 * d + 0.25);  // weight-like: > 0
    t.v.push_back(i % 5 == 0 ? 0.0 : static_cast<double>(i % 7) - 3.0);
    t.v.push_back(float32_exact ? 0.125 * static_cast<double>(i % 64) : 1.0 / (d + 3.0));
    t.v.push_back(i % 4 == 1 ? 0.0 : -0.75 * static_cast<double>(i % 9 + 1));  // never -0
  }
  return t;
}

std::string to_csv(const Table& t, const std::vector<std::string>& header) {
  std::string s;
  for (std::size_t j = 0; j < header.size(); ++j) s += (j ? "," : "") + header[j];
  if (!header.empty()) s += "\n";
  for (std::int64_t i = 0; i < t.rows; ++i) {
    for (std::int64_t j = 0; j < t.cols; ++j) s += (j ? "," : "") + num(t.at(i, j));
    s += "\n";
  }
  return s;
}

/// Column 0 the label, column j >= 1 feature j; zeros left out.
std::string to_libsvm(const Table& t) {
  std::string s;
  for (std::int64_t i = 0; i < t.rows; ++i) {
    s += num(t.at(i, 0));
    for (std::int64_t j = 1; j < t.cols; ++j)
      if (t.at(i, j) != 0.0) s += " " + std::to_string(j) + ":" + num(t.at(i, j));
    s += i % 10 == 3 ? "  # a comment\n" : "\n";
  }
  return s;
}

/// An NPY file: \p dict (the header dict) padded as NumPy does, then \p data.
std::string npy_file(const std::string& dict, int major, const std::string& data) {
  const std::size_t pre = major == 1 ? 10 : 12;
  std::string h = dict;
  const std::size_t total = (pre + h.size() + 1 + 63) / 64 * 64;
  h.append(total - pre - h.size() - 1, ' ');
  h.push_back('\n');
  std::string s = "\x93NUMPY";
  s.push_back(static_cast<char>(major));
  s.push_back('\0');
  const std::size_t len = h.size();
  s.push_back(static_cast<char>(len & 0xff));
  s.push_back(static_cast<char>((len >> 8) & 0xff));
  if (major != 1) {
    s.push_back(static_cast<char>((len >> 16) & 0xff));
    s.push_back(static_cast<char>((len >> 24) & 0xff));
  }
  return s + h + data;
}

std::string npy_dict(const std::string& descr, const std::string& shape, bool fortran = false) {
  return "{'descr': '" + descr + "', 'fortran_order': " + (fortran ? "True" : "False") +
         ", 'shape': " + shape + ", }";
}

std::string npy_data(const Table& t, bool float32) {
  std::string s;
  for (const double x : t.v) {
    char b[8];
    if (float32) {
      const auto f = static_cast<float>(x);
      std::memcpy(b, &f, 4);
      s.append(b, 4);
    } else {
      std::memcpy(b, &x, 8);
      s.append(b, 8);
    }
  }
  return s;
}

std::string to_npy(const Table& t, bool float32 = false, int major = 1) {
  return npy_file(npy_dict(float32 ? "<f4" : "<f8",
                           "(" + std::to_string(t.rows) + ", " + std::to_string(t.cols) + ")"),
                  major, npy_data(t, float32));
}

// ---------------------------------------------------------------------------
// Checks

/// The roles of one load, by column index of the table.
struct Roles {
  std::int64_t label = 0, weight = -1, offset = -1;
  std::vector<std::int64_t> features;  ///< empty: all others
};

std::vector<std::int64_t> features_of(const Table& t, const Roles& r) {
  if (!r.features.empty()) return r.features;
  std::vector<std::int64_t> f;
  for (std::int64_t j = 0; j < t.cols; ++j)
    if (j != r.label && j != r.weight && j != r.offset) f.push_back(j);
  return f;
}

/// Collective. The shards hold the rows of \p t, each once, in rank order, with the
/// columns \p r says; the names are \p names.
void check_shard(const Shard& s, const Communicator& comm, const Table& t, const Roles& r,
                 const std::vector<std::string>& names) {
  const std::vector<std::int64_t> f = features_of(t, r);
  const auto p = static_cast<std::int64_t>(f.size());
  std::int64_t total = s.n_rows;
  comm.allreduce_sum(&total, 1);
  CHECK(total == t.rows);
  CHECK(s.n_global == t.rows);
  CHECK(s.first_row == comm.exscan_sum(s.n_rows));
  CHECK(s.n_cols == p);
  CHECK(s.names == names);
  CHECK(s.weight.size() == (r.weight >= 0 ? static_cast<std::size_t>(s.n_rows) : 0));
  CHECK(s.offset.size() == (r.offset >= 0 ? static_cast<std::size_t>(s.n_rows) : 0));
  const bool shapes_ok = s.n_cols == p && s.x.size() == static_cast<std::size_t>(s.n_rows * p) &&
                         s.y.size() == static_cast<std::size_t>(s.n_rows) &&
                         s.first_row + s.n_rows <= t.rows;
  CHECK(shapes_ok);
  if (!shapes_ok) return;
  std::int64_t bad = 0;
  for (std::int64_t k = 0; k < s.n_rows; ++k) {
    const std::int64_t i = s.first_row + k;
    if (s.y[k] != t.at(i, r.label)) ++bad;
    for (std::int64_t j = 0; j < p; ++j)
      if (s.row(k)[j] != t.at(i, f[j])) ++bad;
    if (r.weight >= 0 && s.weight.size() == static_cast<std::size_t>(s.n_rows) &&
        s.weight[k] != t.at(i, r.weight))
      ++bad;
    if (r.offset >= 0 && s.offset.size() == static_cast<std::size_t>(s.n_rows) &&
        s.offset[k] != t.at(i, r.offset))
      ++bad;
  }
  CHECK(bad == 0);
}

std::vector<std::string> xnames(std::int64_t p) {
  std::vector<std::string> n;
  for (std::int64_t k = 1; k <= p; ++k) n.push_back("x" + std::to_string(k));
  return n;
}

}  // namespace

// ===========================================================================
// CSV column roles

TEST_CASE("csv: label, weight, offset and feature columns by name and by index", "[readers]") {
  const Communicator comm = Communicator::world();
  const Table t = make_table(1001);
  const std::string path = write_file(comm, "rd_roles.csv", to_csv(t, {"y", "w", "a", "b", "off"}));
  ReadOptions opts;
  opts.path = path;

  // Default: label column 0, every other column a feature.
  check_shard(natgrad::load_shard(opts, comm), comm, t, {0, -1, -1, {}}, {"w", "a", "b", "off"});

  // By name; features default to the columns left, in file order.
  opts.label_column = "y";
  opts.weight_column = "w";
  opts.offset_column = "off";
  check_shard(natgrad::load_shard(opts, comm), comm, t, {0, 1, 4, {}}, {"a", "b"});

  // By index, the same.
  opts.label_column = "0";
  opts.weight_column = "1";
  opts.offset_column = " 4 ";
  check_shard(natgrad::load_shard(opts, comm), comm, t, {0, 1, 4, {}}, {"a", "b"});

  // --columns picks and orders the features; names and indices mix.
  opts.columns = "b, 2";
  check_shard(natgrad::load_shard(opts, comm), comm, t, {0, 1, 4, {3, 2}}, {"b", "a"});

  // Another label, a feature subset, no weight: the weight vector stays empty.
  opts.label_column = "off";
  opts.weight_column = "";
  opts.offset_column = "";
  opts.columns = "y,a";
  opts.threads = 3;
  check_shard(natgrad::load_shard(opts, comm), comm, t, {4, -1, -1, {0, 2}}, {"y", "a"});

  // Without a header: indices only, names x1.. by feature order.
  ReadOptions bare;
  bare.path = write_file(comm, "rd_roles_noheader.csv", to_csv(t, {}));
  bare.weight_column = "1";
  bare.columns = "4,2";
  check_shard(natgrad::load_shard(bare, comm), comm, t, {0, 1, -1, {4, 2}}, {"x1", "x2"});

  // With --intercept the ones column comes first.
  opts = ReadOptions{};
  opts.path = path;
  opts.weight_column = "w";
  opts.intercept = true;
  const Shard s = natgrad::load_shard(opts, comm);
  CHECK(s.names == std::vector<std::string>{"(Intercept)", "a", "b", "off"});
  CHECK(s.weight.size() == static_cast<std::size_t>(s.n_rows));
}

TEST_CASE("csv: columns without a role are not parsed", "[readers]") {
  const Communicator comm = Communicator::world();
  std::string text = "id,y,x,comment\n";
  for (int i = 0; i < 203; ++i)
    text += "row" + std::to_string(i) + "," + std::to_string(i % 2) + "," + num(0.5 * i) +
            ",\"free text, with a comma\"\n";
  ReadOptions opts;
  opts.path = write_file(comm, "rd_text_columns.csv", text);
  opts.label_column = "y";
  opts.columns = "x";
  const Shard s = natgrad::load_shard(opts, comm);
  std::int64_t total = s.n_rows, bad = 0;
  comm.allreduce_sum(&total, 1);
  CHECK(total == 203);
  CHECK(s.names == std::vector<std::string>{"x"});
  for (std::int64_t k = 0; k < s.n_rows && s.n_cols == 1; ++k) {
    const std::int64_t i = s.first_row + k;
    if (s.y[k] != static_cast<double>(i % 2) || s.row(k)[0] != 0.5 * static_cast<double>(i)) ++bad;
  }
  CHECK(bad == 0);
  // The same file with every other column a feature: 'row0' is not a number.
  opts.columns = "";
  CHECK_THAT(load_error(opts, comm),
             Contains("rd_text_columns.csv:2: column 0 ('id'): 'row0' is not a number"));
}

TEST_CASE("csv: column role errors", "[readers]") {
  const Communicator comm = Communicator::world();
  const Table t = make_table(60);
  const std::string path =
      write_file(comm, "rd_role_errors.csv", to_csv(t, {"y", "w", "a", "b", "off"}));
  auto err = [&](const std::string& label, const std::string& weight, const std::string& offset,
                 const std::string& columns, const std::string& file = "") {
    ReadOptions o;
    o.path = file.empty() ? path : file;
    o.label_column = label;
    o.weight_column = weight;
    o.offset_column = offset;
    o.columns = columns;
    return load_error(o, comm);
  };
  CHECK_THAT(err("yy", "", "", ""),
             Contains("--label-column 'yy': " + path +
                      " has no column of that name; its columns: y, w, a, b, off"));
  CHECK_THAT(err("y", "weight", "", ""),
             Contains("--weight-column 'weight': " + path + " has no column"));
  CHECK_THAT(err("y", "", "", "a,c"),
             Contains("--columns 'c': " + path + " has no column of that name"));
  CHECK_THAT(err("5", "", "", ""),
             Contains("--label-column 5 but " + path + " has 5 columns (0-based indices 0 to 4)"));
  CHECK_THAT(err("-1", "", "", ""), Contains("--label-column -1 but " + path + " has 5 columns"));
  CHECK_THAT(err("0", "", "9", ""), Contains("--offset-column 9 but " + path + " has 5 columns"));
  CHECK_THAT(err("0", "", "", "1,7"), Contains("--columns 7 but " + path + " has 5 columns"));
  CHECK_THAT(err("y", "0", "", ""), Contains("column 0 ('y') of " + path +
                                             " is used twice: --label-column and --weight-column"));
  CHECK_THAT(err("y", "w", "w", ""),
             Contains("column 1 ('w') of " + path +
                      " is used twice: --weight-column and --offset-column"));
  CHECK_THAT(err("y", "", "", "a,y"), Contains("column 0 ('y') of " + path +
                                               " is used twice: --label-column and --columns"));
  CHECK_THAT(err("y", "", "", "a,2"),
             Contains("column 2 ('a') of " + path + " is used twice: --columns and --columns"));
  CHECK_THAT(err("y", "", "", "a,,b"), Contains("--columns 'a,,b' has an empty entry"));
  CHECK_THAT(err("", "", "", ""), Contains("--label-column is empty"));

  // Names without a header.
  const std::string bare = write_file(comm, "rd_role_errors_noheader.csv", to_csv(t, {}));
  CHECK_THAT(err("y", "", "", "", bare),
             Contains("--label-column 'y' is a column name, but " + bare + " has no header line"));
  ReadOptions o;
  o.path = path;
  o.header = ReadOptions::Header::no;
  o.label_column = "y";
  CHECK_THAT(load_error(o, comm), Contains("is read without a header line (--header no)"));

  // Two columns of the same name.
  const std::string dup = write_file(comm, "rd_dup_names.csv", "y,a,a\n1,2,3\n");
  CHECK_THAT(err("y", "a", "", "", dup), Contains("--weight-column 'a' is ambiguous"));
}

TEST_CASE("csv: weights must be finite and >= 0, with file and line", "[readers]") {
  const Communicator comm = Communicator::world();
  const Table t = make_table(1001);
  std::string text = to_csv(t, {"y", "w", "a", "b", "off"});
  ReadOptions opts;
  opts.weight_column = "w";
  // Negative weight near the end (the last rank's range): data row 990 is line 991.
  const std::size_t at = [&] {
    std::size_t p = 0;
    for (int k = 0; k < 991; ++k) p = text.find('\n', p) + 1;
    return p;
  }();
  std::string neg = text;
  neg.replace(at, text.find('\n', at) - at, "1,-0.5,1,2,3");
  opts.path = write_file(comm, "rd_neg_weight.csv", neg);
  CHECK_THAT(load_error(opts, comm),
             Contains("rd_neg_weight.csv:992: weight -0.5 in column 1 ('w') must be >= 0"));
  // A zero weight is fine; a NaN weight is not finite.
  std::string zero = text;
  zero.replace(at, text.find('\n', at) - at, "1,0,1,2,3");
  opts.path = write_file(comm, "rd_zero_weight.csv", zero);
  CHECK(load_error(opts, comm).empty());
  std::string nan = text;
  nan.replace(at, text.find('\n', at) - at, "1,nan,1,2,3");
  opts.path = write_file(comm, "rd_nan_weight.csv", nan);
  CHECK_THAT(load_error(opts, comm),
             Contains("rd_nan_weight.csv:992: weight nan in column 1 ('w') must be finite and >= 0"));
  // Without a weight role, the negative value is an ordinary feature.
  opts.weight_column = "";
  opts.path = write_file(comm, "rd_neg_feature.csv", neg);
  CHECK(load_error(opts, comm).empty());
}

TEST_CASE("csv: quoted fields (RFC 4180)", "[readers]") {
  const Communicator comm = Communicator::world();
  std::string text = "\"y\", \"a,b\" ,\"say \"\"hi\"\"\",c\r\n";
  for (int i = 0; i < 401; ++i) {
    const std::string x = num(0.5 * i);
    if (i % 3 == 0)
      text += "\"" + std::to_string(i % 2) + "\",\" " + x + " \",\"1.5\"," + x + "\r\n";
    else
      text += std::to_string(i % 2) + "," + x + ", \"1.5\" ," + x + "\r\n";
  }
  ReadOptions opts;
  opts.path = write_file(comm, "rd_quoted.csv", text);
  const Shard s = natgrad::load_shard(opts, comm);
  CHECK(s.names == std::vector<std::string>{"a,b", "say \"hi\"", "c"});
  std::int64_t total = s.n_rows, bad = 0;
  comm.allreduce_sum(&total, 1);
  CHECK(total == 401);
  for (std::int64_t k = 0; k < s.n_rows && s.n_cols == 3; ++k) {
    const auto i = static_cast<double>(s.first_row + k);
    if (s.y[k] != static_cast<double>((s.first_row + k) % 2) || s.row(k)[0] != 0.5 * i ||
        s.row(k)[1] != 1.5 || s.row(k)[2] != 0.5 * i)
      ++bad;
  }
  CHECK(bad == 0);
  // Column roles by a quoted name holding the delimiter.
  opts.label_column = "c";
  opts.columns = "a,b";
  CHECK_THAT(load_error(opts, comm),
             Contains("--columns 'a': " + opts.path + " has no column of that name"));

  // Quoting errors, in the header and in a data row near the end.
  ReadOptions bad_opts;
  bad_opts.path = write_file(comm, "rd_open_quote_header.csv", "y,\"a\n1,2\n");
  CHECK_THAT(load_error(bad_opts, comm),
             Contains("rd_open_quote_header.csv:1: field 2: quoted field has no closing quote"));
  std::string rows = "y,a,b\n";
  for (int i = 0; i < 500; ++i) rows += (i == 480 ? "1,\"2\"x,3\n" : "1,2,3\n");
  bad_opts.path = write_file(comm, "rd_after_quote.csv", rows);
  CHECK_THAT(
      load_error(bad_opts, comm),
      Contains("rd_after_quote.csv:482: field 2: text after the closing quote of a quoted field"));
  rows = "y,a,b\n";
  for (int i = 0; i < 500; ++i) rows += (i == 470 ? "1,\"2,3\n" : "1,2,3\n");
  bad_opts.path = write_file(comm, "rd_open_quote_row.csv", rows);
  CHECK_THAT(load_error(bad_opts, comm),
             Contains("rd_open_quote_row.csv:472: field 2: quoted field has no closing quote"));
  // A quoted delimiter does not split: "2,3" is one field, so the row has 2 fields.
  rows = "y,a,b\n1,\"2,3\"\n";
  bad_opts.path = write_file(comm, "rd_quoted_delim.csv", rows);
  CHECK_THAT(load_error(bad_opts, comm),
             Contains("rd_quoted_delim.csv:2: expected 3 fields, found 2"));
  // A doubled quote makes a field text, not a number.
  bad_opts.path = write_file(comm, "rd_escaped_number.csv", "y,a\n1,\"2\"\"\"\n");
  CHECK_THAT(load_error(bad_opts, comm),
             Contains("rd_escaped_number.csv:2: column 1 ('a'): '2\"' is not a number"));
}

// ===========================================================================
// NPY

TEST_CASE("npy: rows by rank, dtypes, versions and column roles", "[readers]") {
  const Communicator comm = Communicator::world();
  const Table t = make_table(1003);
  ReadOptions opts;
  opts.path = write_file(comm, "rd_v1.npy", to_npy(t));
  check_shard(natgrad::load_shard(opts, comm), comm, t, {0, -1, -1, {}}, xnames(4));
  // Rows are split by partition(): every rank's count is known exactly.
  const Shard s = natgrad::load_shard(opts, comm);
  const std::int64_t q = t.rows / comm.size(), r = t.rows % comm.size();
  CHECK(s.n_rows == q + (comm.rank() < r ? 1 : 0));

  for (const int major : {2, 3}) {
    opts.path = write_file(comm, "rd_v" + std::to_string(major) + ".npy", to_npy(t, false, major));
    check_shard(natgrad::load_shard(opts, comm), comm, t, {0, -1, -1, {}}, xnames(4));
  }
  // float32, widened to double (values exact in float32).
  const Table t32 = make_table(517, true);
  opts.path = write_file(comm, "rd_f4.npy", to_npy(t32, true));
  check_shard(natgrad::load_shard(opts, comm), comm, t32, {0, -1, -1, {}}, xnames(4));

  // Roles by index; the format from ReadOptions.format, whatever the extension.
  opts.path = write_file(comm, "rd_roles.data", to_npy(t, false, 2));
  opts.format = "npy";
  opts.weight_column = "1";
  opts.offset_column = "4";
  opts.columns = "3,2";
  opts.threads = 3;
  check_shard(natgrad::load_shard(opts, comm), comm, t, {0, 1, 4, {3, 2}}, xnames(2));
  opts.label_column = "2";
  opts.columns = "";
  check_shard(natgrad::load_shard(opts, comm), comm, t, {2, 1, 4, {}}, xnames(2));

  // natgrad's own writer (generate --out X.npy): label in column 0.
  opts = ReadOptions{};
  opts.path = tmp_path("rd_written.npy");
  if (comm.is_root())
    natgrad::write_npy(opts.path, t.rows, t.cols,
                       [&](std::int64_t b, std::int64_t e, std::span<double> buf) {
                         std::copy(t.v.begin() + b * t.cols, t.v.begin() + e * t.cols, buf.begin());
                       });
  comm.barrier();
  check_shard(natgrad::load_shard(opts, comm), comm, t, {0, -1, -1, {}}, xnames(4));

  // A header with the keys in another order, double quotes and a Python 2 long.
  const std::string odd = "{\"shape\": (3L, 2L), \"fortran_order\": False, \"descr\": \"<f8\"}";
  Table small;
  small.rows = 3;
  small.cols = 2;
  small.v = {1, 2, 0, 4, 1, 6};
  opts.path = write_file(comm, "rd_odd_header.npy", npy_file(odd, 1, npy_data(small, false)));
  check_shard(natgrad::load_shard(opts, comm), comm, small, {0, -1, -1, {}}, xnames(1));
}

/// Collective: \p a holds the same rows as \p b (compared over all ranks), bit for bit.
static void check_same_rows(const Shard& a, const Shard& b, const Communicator& comm) {
  CHECK(a.n_global == b.n_global);
  CHECK(a.n_cols == b.n_cols);
  CHECK(a.names == b.names);
  CHECK(a.x.size() == static_cast<std::size_t>(a.n_rows * a.n_cols));
  CHECK(a.weight.empty() == b.weight.empty());
  CHECK(a.offset.empty() == b.offset.empty());
  const std::string ra = global_rows(a, comm), rb = global_rows(b, comm);
  CHECK(ra.size() ==
        static_cast<std::size_t>(
            comm.is_root() ? a.n_global * (1 + a.n_cols + !a.weight.empty() + !a.offset.empty()) * 8 : 0));
  CHECK(ra == rb);
}

TEST_CASE("npy: threads split the rows, the intercept written as the rows are read", "[readers]") {
  const Communicator comm = Communicator::world();
  // 5 float64 columns: 13107 rows per 512 KiB read, so a thread's part spans several
  // reads; 40003 rows divide evenly by none of the thread counts or rank counts.
  const Table t = make_table(40003);
  const Table t32 = make_table(517, true);
  const std::string f64 = write_file(comm, "rd_thr.npy", to_npy(t));
  const std::string f32 = write_file(comm, "rd_thr_f4.npy", to_npy(t32, true, 2));
  const std::string c64 = write_file(comm, "rd_thr.csv", to_csv(t, {}));
  const std::string c32 = write_file(comm, "rd_thr_f4.csv", to_csv(t32, {}));
  // Roles: label 0 and features 1..4 (a file row is a row of X with the intercept: read
  // straight into X); no label and every column a feature (straight into X without the
  // intercept); weights, offsets and reordered features (through the thread's buffer).
  struct Case {
    const char *label, *weight, *offset, *columns;
  };
  const Case cases[] = {{"0", "", "", ""}, {"none", "", "", ""}, {"0", "1", "4", "3,2"}, {"2", "", "", "1,3,4"}};
  for (const bool intercept : {false, true}) {
    for (const Case& c : cases) {
      for (const bool f4 : {false, true}) {
        ReadOptions npy, csv;
        for (ReadOptions* o : {&npy, &csv}) {
          o->label_column = c.label;
          o->weight_column = c.weight;
          o->offset_column = c.offset;
          o->columns = c.columns;
          o->intercept = intercept;
        }
        npy.path = f4 ? f32 : f64;
        csv.path = f4 ? c32 : c64;
        csv.header = ReadOptions::Header::no;
        const Shard want = natgrad::load_shard(csv, comm);
        for (const int threads : {1, 2, 3, 8}) {
          INFO("threads " << threads << ", intercept " << intercept << ", label " << c.label << ", weight "
                          << c.weight << ", columns " << c.columns << (f4 ? ", float32" : ", float64"));
          npy.threads = threads;
          const Shard got = natgrad::load_shard(npy, comm);
          check_same_rows(got, want, comm);
          if (intercept && !got.names.empty()) CHECK(got.names[0] == "(Intercept)");
        }
      }
    }
  }
  // The public read_npy leaves the intercept to the caller (load_shard adds it otherwise).
  ReadOptions o;
  o.path = f64;
  o.intercept = true;
  o.threads = 3;
  const Shard plain = natgrad::read_npy(o, comm);
  CHECK(plain.n_cols == 4);
  CHECK(plain.names == xnames(4));

  // Fewer rows than threads (and than ranks): 1 and 2 rows at 8 threads.
  for (const std::int64_t rows : {1, 2}) {
    const Table tiny = make_table(rows);
    ReadOptions npy, csv;
    npy.path = write_file(comm, "rd_tiny" + std::to_string(rows) + ".npy", to_npy(tiny));
    csv.path = write_file(comm, "rd_tiny" + std::to_string(rows) + ".csv", to_csv(tiny, {}));
    csv.header = ReadOptions::Header::no;
    npy.threads = 8;
    npy.intercept = csv.intercept = true;
    check_same_rows(natgrad::load_shard(npy, comm), natgrad::load_shard(csv, comm), comm);
  }
}

TEST_CASE("npy: the first bad row in file order wins over the threads, and truncated files", "[readers]") {
  const Communicator comm = Communicator::world();
  Table bad = make_table(40003);
  bad.v[39990 * 5 + 3] = std::numeric_limits<double>::infinity();  // the last thread's part
  bad.v[20001 * 5 + 0] = std::numeric_limits<double>::quiet_NaN();  // the label, mid-file
  const std::string path = write_file(comm, "rd_thr_bad.npy", to_npy(bad));
  Table inf = make_table(40003);
  inf.v[39990 * 5 + 3] = std::numeric_limits<double>::infinity();
  const std::string inf_only = write_file(comm, "rd_thr_inf.npy", to_npy(inf));
  for (const int threads : {1, 2, 3, 8}) {
    for (const bool intercept : {false, true}) {
      INFO("threads " << threads << ", intercept " << intercept);
      ReadOptions o;
      o.path = path;
      o.threads = threads;
      o.intercept = intercept;
      CHECK_THAT(load_error(o, comm),
                 Contains(path + ": array row 20001, column 0 (0-based): value nan is not finite"));
      o.label_column = "none";  // the label's column unused: its NaN no longer matters, the inf does
      o.columns = "1,2,3,4";
      CHECK_THAT(load_error(o, comm),
                 Contains(path + ": array row 39990, column 3 (0-based): value inf is not finite"));
      o.label_column = "0";  // the inf alone, with the label: read straight into X with the intercept
      o.columns = "";
      o.path = inf_only;
      CHECK_THAT(load_error(o, comm),
                 Contains(inf_only + ": array row 39990, column 3 (0-based): value inf is not finite"));
    }
  }
  // A file cut short anywhere in its data: refused before any row is read, on every rank.
  const std::string whole = to_npy(make_table(40003));
  for (const std::size_t cut : {std::size_t{1}, std::size_t{8}, whole.size() / 2}) {
    const std::string p = write_file(comm, "rd_thr_cut.npy", whole.substr(0, whole.size() - cut));
    ReadOptions o;
    o.path = p;
    o.threads = 3;
    o.intercept = true;
    CHECK_THAT(load_error(o, comm), Contains(p + ": truncated: shape (40003, 5) of '<f8' needs 1600120 bytes of "
                                                 "data after the header, the file holds"));
  }
}

TEST_CASE("npy: errors name the file and what was expected", "[readers]") {
  const Communicator comm = Communicator::world();
  const Table t = make_table(40);
  ReadOptions opts;
  auto err = [&](const std::string& name, const std::string& content) {
    opts.path = write_file(comm, "rd_" + name, content);
    return load_error(opts, comm);
  };
  const std::string data = npy_data(t, false);
  CHECK_THAT(
      err("truncated.npy", to_npy(t).substr(0, to_npy(t).size() - 9)),
      Contains("rd_truncated.npy: truncated: shape (40, 5) of '<f8' needs 1600 bytes of data "
               "after the header, the file holds 1591"));
  CHECK_THAT(err("i8.npy", npy_file(npy_dict("<i8", "(40, 5)"), 1, data)),
             Contains("rd_i8.npy: unsupported dtype '<i8' (expected '<f8' (float64) or '<f4' "
                      "(float32), little-endian)"));
  CHECK_THAT(err("big.npy", npy_file(npy_dict(">f8", "(40, 5)"), 1, data)),
             Contains("rd_big.npy: unsupported dtype '>f8'"));
  CHECK_THAT(
      err("struct.npy",
          npy_file(
              "{'descr': [('a', '<f8'), ('b', '<f8')], 'fortran_order': False, 'shape': (100,), }",
              1, data)),
      Contains("rd_struct.npy: unsupported dtype '[('a', '<f8'), ('b', '<f8')]'"));
  CHECK_THAT(err("fortran.npy", npy_file(npy_dict("<f8", "(40, 5)", true), 1, data)),
             Contains("rd_fortran.npy: fortran_order is True (column-major); only C-order arrays "
                      "are supported"));
  CHECK_THAT(
      err("1d.npy", npy_file(npy_dict("<f8", "(200,)"), 1, data)),
      Contains("rd_1d.npy: array is 1-D (shape (200,)), expected a 2-D array (rows, columns)"));
  CHECK_THAT(err("3d.npy", npy_file(npy_dict("<f8", "(2, 4, 25)"), 1, data)),
             Contains("rd_3d.npy: array is 3-D (shape (2, 4, 25)), expected a 2-D array"));
  CHECK_THAT(err("magic.npy", "y,a\n1,2\n"),
             Contains("rd_magic.npy: not an NPY file: bad magic (expected the bytes \\x93NUMPY"));
  CHECK_THAT(err("short.npy", ""), Contains("rd_short.npy: not an NPY file: bad magic"));
  std::string v4 = to_npy(t);
  v4[6] = 4;
  CHECK_THAT(err("v4.npy", v4),
             Contains("rd_v4.npy: unsupported NPY format version 4.0 (expected 1.0, 2.0 or 3.0)"));
  CHECK_THAT(err("no_shape.npy", npy_file("{'descr': '<f8', 'fortran_order': False}", 1, data)),
             Contains("rd_no_shape.npy: malformed NPY header: no 'shape' key"));
  CHECK_THAT(err("bad_shape.npy", npy_file(npy_dict("<f8", "(40, -5)"), 1, data)),
             Contains("rd_bad_shape.npy: malformed NPY header: 'shape' is not a tuple"));
  std::string short_header = to_npy(t).substr(0, 40);
  CHECK_THAT(err("short_header.npy", short_header),
             Contains("rd_short_header.npy: truncated NPY header"));

  // Values: non-finite in a used column, negative weight; the first bad row wins.
  Table bad = make_table(1001);
  bad.v[990 * 5 + 3] = std::numeric_limits<double>::quiet_NaN();
  CHECK_THAT(err("nan.npy", to_npy(bad)),
             Contains("rd_nan.npy: array row 990, column 3 (0-based): value nan is not finite"));
  opts.columns = "1,2";  // column 3 unused: its NaN does not matter
  CHECK(err("nan_unused.npy", to_npy(bad)).empty());
  opts.columns = "";
  bad.v[995 * 5 + 1] = -2.0;
  bad.v[10 * 5 + 1] = -1.0;
  opts.weight_column = "1";
  CHECK_THAT(
      err("neg_weight.npy", to_npy(bad)),
      Contains("rd_neg_weight.npy: array row 10, column 1 (0-based): weight -1 must be >= 0"));
  Table inf_w = make_table(100);
  inf_w.v[7 * 5 + 1] = std::numeric_limits<double>::infinity();
  CHECK_THAT(err("inf_weight.npy", to_npy(inf_w)),
             Contains("rd_inf_weight.npy: array row 7, column 1 (0-based): weight inf must be "
                      "finite and >= 0"));
  // (err() sets opts.path: call it before building the expected text.)
  opts.weight_column = "w";
  std::string e = err("named.npy", to_npy(t));
  CHECK_THAT(e,
             Contains("--weight-column 'w' is a column name, but " + opts.path +
                      " is an NPY file, whose columns have no names: give a 0-based column index"));
  opts.weight_column = "5";
  e = err("named.npy", to_npy(t));
  CHECK_THAT(e, Contains("--weight-column 5 but " + opts.path + " has 5 columns"));
}

TEST_CASE("npy: a file of many read blocks, read by several threads, loads as one read would",
          "[readers]") {
  const Communicator comm = Communicator::world();
  // 200003 rows of 40 bytes (8 MB): several of the reader's 1 MiB blocks on every rank
  // at 1 to 4 ranks, read and scattered by the threads in any order.
  const std::int64_t n = 200003;
  const Table t = make_table(n);
  ReadOptions opts;
  opts.threads = 3;
  opts.path = write_file(comm, "rd_blocks.npy", to_npy(t));
  check_shard(natgrad::load_shard(opts, comm), comm, t, {0, -1, -1, {}}, xnames(4));
  // Features not one run of columns (a gather), a weight and an offset.
  opts.weight_column = "1";
  opts.offset_column = "4";
  opts.columns = "3,2";
  check_shard(natgrad::load_shard(opts, comm), comm, t, {0, 1, 4, {3, 2}}, xnames(2));
  // float32.
  const Table t32 = make_table(n, true);
  opts = ReadOptions{};
  opts.threads = 2;
  opts.path = write_file(comm, "rd_blocks_f4.npy", to_npy(t32, true));
  check_shard(natgrad::load_shard(opts, comm), comm, t32, {0, -1, -1, {}}, xnames(4));
  // The intercept's column is added in place after the read.
  opts.intercept = true;
  const Shard with = natgrad::load_shard(opts, comm);
  REQUIRE(with.n_cols == 5);
  std::int64_t wrong = 0;
  for (std::int64_t k = 0; k < with.n_rows; ++k) {
    wrong += with.row(k)[0] != 1.0;
    for (std::int64_t j = 1; j < 5; ++j) wrong += with.row(k)[j] != t32.at(with.first_row + k, j);
  }
  CHECK(wrong == 0);

  // Bad values in several blocks: the first bad row in file order is the one reported.
  Table bad = make_table(n);
  bad.v[199000 * 5 + 2] = std::numeric_limits<double>::infinity();
  bad.v[150001 * 5 + 3] = std::numeric_limits<double>::quiet_NaN();
  bad.v[120000 * 5 + 4] = std::numeric_limits<double>::quiet_NaN();
  bad.v[120000 * 5 + 3] = std::numeric_limits<double>::quiet_NaN();
  opts = ReadOptions{};
  opts.threads = 4;
  opts.path = write_file(comm, "rd_blocks_nan.npy", to_npy(bad));
  CHECK_THAT(load_error(opts, comm),
             Contains("rd_blocks_nan.npy: array row 120000, column 3 (0-based): value nan is not finite"));
  opts.columns = "1,2";  // columns 3 and 4 unused: the infinity in column 2 is the first
  CHECK_THAT(load_error(opts, comm),
             Contains("rd_blocks_nan.npy: array row 199000, column 2 (0-based): value inf is not finite"));
}

// ===========================================================================
// LIBSVM

TEST_CASE("libsvm: sparse lines, comments, qid, labels, feature count across ranks", "[readers]") {
  const Communicator comm = Communicator::world();
  // 300 rows; features up to index 3, except the very last line, which has index 6:
  // every rank must learn the column count from the last rank.
  std::string text = "# leading comment\n\n";
  const std::int64_t n = 300;
  for (std::int64_t i = 0; i < n; ++i) {
    text += (i % 2 ? "+1" : "-1");
    if (i % 4 == 1) text += " qid:" + std::to_string(i / 10);
    if (i % 3 != 0) text += " 1:" + num(0.5 * static_cast<double>(i));
    if (i % 5 != 0) text += "\t3:" + num(-static_cast<double>(i));
    if (i == n - 1) text += " 6:7.5";
    text += i % 7 == 0 ? " # comment 1:2\r\n" : "\n";
    if (i % 50 == 0) text += "# comment line\n   \n";
  }
  ReadOptions opts;
  opts.path = write_file(comm, "rd_sparse.svm", text);
  const Shard raw = natgrad::load_shard(opts, comm);
  CHECK(raw.sparse);  // 441 non-zeros in 300 x 6: below 25%, so --layout auto keeps CSR
  const Shard s = densified(raw);
  std::int64_t total = s.n_rows;
  comm.allreduce_sum(&total, 1);
  CHECK(total == n);
  CHECK(s.n_global == n);
  CHECK(s.first_row == comm.exscan_sum(s.n_rows));
  CHECK(s.n_cols == 6);
  CHECK(s.names == xnames(6));
  CHECK(s.weight.empty());
  std::int64_t bad = 0;
  for (std::int64_t k = 0; k < s.n_rows && s.n_cols == 6; ++k) {
    const std::int64_t i = s.first_row + k;
    const double* x = s.row(k);
    if (s.y[k] != (i % 2 ? 1.0 : 0.0)) ++bad;  // -1 -> 0
    if (x[0] != (i % 3 != 0 ? 0.5 * static_cast<double>(i) : 0.0)) ++bad;
    if (x[1] != 0.0 || x[3] != 0.0 || x[4] != 0.0) ++bad;
    if (x[2] != (i % 5 != 0 ? -static_cast<double>(i) : 0.0)) ++bad;
    if (x[5] != (i == n - 1 ? 7.5 : 0.0)) ++bad;
  }
  CHECK(bad == 0);

  // Labels other than -1/+1 are kept as given (classes, counts, responses).
  std::string multi;
  for (int i = 0; i < 100; ++i)
    multi += std::to_string(i % 3 - 1) + " 2:" + std::to_string(i) + "\n";
  opts.path = write_file(comm, "rd_multi.libsvm", multi);
  opts.threads = 3;
  const Shard m = natgrad::load_shard(opts, comm);
  bad = 0;
  for (std::int64_t k = 0; k < m.n_rows && m.n_cols == 2; ++k) {
    const std::int64_t i = m.first_row + k;
    if (m.y[k] != static_cast<double>(i % 3 - 1) || m.row(k)[0] != 0.0 ||
        m.row(k)[1] != static_cast<double>(i))
      ++bad;
  }
  CHECK(m.n_cols == 2);
  CHECK(bad == 0);

  // Roles: column 0 is the label, column j feature j.
  opts.path = write_file(comm, "rd_roles.svmlight", to_libsvm(make_table(777)));
  opts.weight_column = "1";
  opts.offset_column = "4";
  opts.columns = "3,2";
  check_shard(natgrad::load_shard(opts, comm), comm, make_table(777), {0, 1, 4, {3, 2}}, xnames(2));

  // Labels only: one column.
  opts = ReadOptions{};
  opts.path = write_file(comm, "rd_labels_only.svm", "1\n0\n1\n");
  const Shard l = natgrad::load_shard(opts, comm);
  CHECK(l.n_cols == 0);
  CHECK(l.n_global == 3);
}

TEST_CASE("libsvm: errors with file and line", "[readers]") {
  const Communicator comm = Communicator::world();
  ReadOptions opts;
  // Line k (1-based) of a 600-line file is replaced by \p bad; comments before it.
  auto err = [&](const std::string& name, std::int64_t line, const std::string& bad) {
    std::string text = "# header comment\n";
    for (std::int64_t k = 2; k <= 600; ++k)
      text +=
          (k == line ? bad : std::string(k % 2 ? "+1" : "-1") + " 1:0.5 2:" + std::to_string(k)) +
          "\n";
    opts.path = write_file(comm, "rd_" + name, text);
    return load_error(opts, comm);
  };
  CHECK_THAT(err("index0.svm", 590, "1 0:1 2:3"),
             Contains("rd_index0.svm:590: feature index 0 in '0:1': indices start at 1"));
  CHECK_THAT(
      err("decreasing.svm", 311, "1 1:1 4:2 3:3"),
      Contains(
          "rd_decreasing.svm:311: feature index 3 after 4: indices must be strictly increasing"));
  CHECK_THAT(err("duplicate.svm", 599, "1 2:1 2:2"),
             Contains("rd_duplicate.svm:599: duplicate feature index 2"));
  CHECK_THAT(err("pair.svm", 450, "1 1:2 abc"),
             Contains("rd_pair.svm:450: 'abc' is not an index:value pair"));
  CHECK_THAT(err("pair2.svm", 450, "1 x:2"),
             Contains("rd_pair2.svm:450: 'x:2' is not an index:value pair (the index must be a "
                      "positive integer)"));
  CHECK_THAT(err("pair3.svm", 450, "1 :2"),
             Contains("rd_pair3.svm:450: ':2' is not an index:value pair"));
  CHECK_THAT(err("value.svm", 5, "1 1:abc"),
             Contains("rd_value.svm:5: feature 1: value 'abc' is not a number"));
  CHECK_THAT(err("empty_value.svm", 5, "1 1:"),
             Contains("rd_empty_value.svm:5: feature 1: value '' is not a number"));
  CHECK_THAT(err("inf.svm", 598, "1 1:2 7:inf"),
             Contains("rd_inf.svm:598: feature 7: value is not finite (inf)"));
  CHECK_THAT(err("label.svm", 300, "yes 1:2"),
             Contains("rd_label.svm:300: label 'yes' is not a number"));
  CHECK_THAT(err("nan_label.svm", 2, "nan 1:2"),
             Contains("rd_nan_label.svm:2: label is not finite (nan)"));
  // Two bad lines on different ranks: the first in the file is reported.
  {
    std::string text;
    for (int k = 1; k <= 600; ++k)
      text += (k == 20 || k == 580 ? "1 0:1" : "1 1:1") + std::string("\n");
    opts.path = write_file(comm, "rd_two_bad.svm", text);
    CHECK_THAT(load_error(opts, comm), Contains("rd_two_bad.svm:20: feature index 0"));
  }
  // Weights from a feature column: absent = 0 is fine, negative is not.
  opts.weight_column = "2";
  CHECK_THAT(err("neg_weight.svm", 590, "1 1:1 2:-3"),
             Contains("rd_neg_weight.svm:590: weight -3 (column 2) must be >= 0"));
  CHECK(err("absent_weight.svm", 590, "1 1:1").empty());
  opts.weight_column = "9";
  const std::string e = err("weight_range.svm", 590, "1 1:1");  // sets opts.path
  CHECK_THAT(e, Contains("--weight-column 9 but " + opts.path + " has 3 columns"));
  opts.weight_column = "w";
  CHECK_THAT(err("weight_name.svm", 590, "1 1:1"),
             Contains("is a LIBSVM file, whose columns have no names"));
}

// ===========================================================================
// One table, three formats

TEST_CASE("csv, npy and libsvm files of one table load to the same rows", "[readers]") {
  const Communicator comm = Communicator::world();
  // 1 and 2 rows: fewer rows than ranks (up to 4); 1001: every rank has rows.
  for (const std::int64_t rows : {std::int64_t{1}, std::int64_t{2}, std::int64_t{1001}}) {
    for (const bool roles : {false, true}) {
      INFO("rows " << rows << ", roles " << roles);
      const Table t = make_table(rows);
      const std::string stem = "rd_same" + std::to_string(rows);
      ReadOptions opts;
      if (roles) {
        opts.weight_column = "1";
        opts.offset_column = "4";
        opts.columns = "3,2";
      }
      opts.threads = 2;
      const Roles r = roles ? Roles{0, 1, 4, {3, 2}} : Roles{0, -1, -1, {}};
      const std::vector<std::string> names = xnames(roles ? 2 : 4);

      opts.path = write_file(comm, stem + ".csv", to_csv(t, {"y", "x1", "x2", "x3", "x4"}));
      const Shard csv = natgrad::load_shard(opts, comm);
      opts.path = write_file(comm, stem + "_noheader.csv", to_csv(t, {}));
      const Shard bare = natgrad::load_shard(opts, comm);
      opts.path = write_file(comm, stem + ".npy", to_npy(t));
      const Shard npy = natgrad::load_shard(opts, comm);
      opts.path = write_file(comm, stem + ".svm", to_libsvm(t));
      const Shard svm = natgrad::load_shard(opts, comm);

      // Each against the table (rows in order, right columns, names) ...
      const std::vector<std::string> csv_names =
          roles ? std::vector<std::string>{"x3", "x2"}
                : std::vector<std::string>{"x1", "x2", "x3", "x4"};
      check_shard(csv, comm, t, r, csv_names);
      check_shard(bare, comm, t, r, names);
      check_shard(npy, comm, t, r, names);
      check_shard(svm, comm, t, r, names);
      // ... and byte for byte against each other, gathered in row order.
      const std::string a = global_rows(csv, comm), b = global_rows(bare, comm),
                        c = global_rows(npy, comm), d = global_rows(svm, comm);
      if (comm.is_root()) {
        CHECK(!a.empty());
        CHECK(a == b);
        CHECK(a == c);
        CHECK(a == d);
      }
      CHECK(bare.names == npy.names);
      CHECK(npy.names == svm.names);
      CHECK(csv.n_cols == svm.n_cols);
    }
  }
}

// ===========================================================================
// Format dispatch

TEST_CASE("load_shard picks the format from ReadOptions.format or the extension", "[readers]") {
  const Communicator comm = Communicator::world();
  auto format_of = [](const std::string& path, const std::string& format = "") {
    ReadOptions o;
    o.path = path;
    o.format = format;
    return natgrad::input_format(o);
  };
  CHECK(format_of("a.csv") == "csv");
  CHECK(format_of("a.tsv") == "csv");
  CHECK(format_of("data") == "csv");
  CHECK(format_of("a.NPY") == "npy");
  CHECK(format_of("a.svm") == "libsvm");
  CHECK(format_of("a.libsvm") == "libsvm");
  CHECK(format_of("a.svmlight") == "libsvm");
  CHECK(format_of("a.h5") == "hdf5");
  CHECK(format_of("a.hdf5") == "hdf5");
  CHECK(format_of("a.npy", "csv") == "csv");
  CHECK(format_of("a.csv", "LIBSVM") == "libsvm");
  CHECK(format_of("a.csv", "svmlight") == "libsvm");
  CHECK_THROWS_WITH(format_of("a.csv", "parquet"),
                    Contains("--format 'parquet' is not one of: csv, libsvm, npy, hdf5"));

  const Table t = make_table(50);
  ReadOptions opts;
  // A LIBSVM file with an unknown extension is recognised by its content; told CSV, it
  // fails as CSV.
  opts.path = write_file(comm, "rd_svm_as.txt", to_libsvm(t));
  CHECK(natgrad::input_format(opts) == "libsvm");
  check_shard(natgrad::load_shard(opts, comm), comm, t, {0, -1, -1, {}}, xnames(4));
  opts.format = "csv";
  CHECK_THAT(load_error(opts, comm), Contains("rd_svm_as.txt:"));
  opts.format = "libsvm";
  check_shard(natgrad::load_shard(opts, comm), comm, t, {0, -1, -1, {}}, xnames(4));
  // An NPY file named .csv, read as NPY when told.
  opts.path = write_file(comm, "rd_npy_as.csv", to_npy(t));
  opts.format = "npy";
  check_shard(natgrad::load_shard(opts, comm), comm, t, {0, -1, -1, {}}, xnames(4));
  const std::string no_hdf5 = natgrad::hdf5_available()
                                  ? ": not an HDF5 file"
                                  : ": HDF5 input is not available in this build";
  opts.format = "hdf5";
  CHECK_THAT(load_error(opts, comm), Contains(opts.path + no_hdf5));
  opts.format = "";
  opts.path = write_file(comm, "rd_data.h5", "");
  CHECK_THAT(load_error(opts, comm), Contains(opts.path + no_hdf5));
  opts.format = "xml";
  CHECK_THAT(load_error(opts, comm), Contains("--format 'xml' is not one of"));
  // Missing files, every format.
  for (const std::string ext : {".csv", ".npy", ".svm"}) {
    opts.format = "";
    opts.path = tmp_path("rd_missing" + ext);
    CHECK_THAT(load_error(opts, comm),
               Contains(opts.path + ": cannot open: No such file or directory"));
  }
  // Files without rows, every format.
  opts.path = write_file(comm, "rd_empty.npy", npy_file(npy_dict("<f8", "(0, 3)"), 1, ""));
  CHECK_THAT(load_error(opts, comm), Contains("no data rows in " + opts.path));
  opts.path = write_file(comm, "rd_empty.svm", "# nothing\n\n");
  CHECK_THAT(load_error(opts, comm), Contains("no data rows in " + opts.path));
}

TEST_CASE("--label-column none: every format, y all 0, the label column a feature", "[readers]") {
  const Communicator comm = Communicator::world();
  const Table t = make_table(41);
  ReadOptions opts;
  opts.label_column = "none";
  auto check_none = [&](const Shard& s, std::int64_t p) {
    CHECK(s.n_global == t.rows);
    CHECK(s.n_cols == p);
    CHECK(s.y == std::vector<double>(static_cast<std::size_t>(s.n_rows), 0.0));
    bool same = s.x.size() == static_cast<std::size_t>(s.n_rows * p);
    for (std::int64_t k = 0; same && k < s.n_rows; ++k)
      for (std::int64_t j = 0; j < p; ++j)
        same = same && s.row(k)[j] == t.at(s.first_row + k, j + 5 - p);
    CHECK(same);
  };
  opts.path = write_file(comm, "rd_none.csv", to_csv(t, {"y", "a", "b", "c", "d"}));
  check_none(natgrad::load_shard(opts, comm), 5);  // every column a feature
  opts.columns = "a,b,c,d";
  check_none(natgrad::load_shard(opts, comm), 4);
  opts.columns = "";
  opts.path = write_file(comm, "rd_none.npy", to_npy(t));
  check_none(natgrad::load_shard(opts, comm), 5);
  opts.weight_column = "none";  // none for weight and offset too: no such column
  opts.offset_column = "none";
  opts.path = write_file(comm, "rd_none.svm", to_libsvm(t));
  const Shard s = natgrad::load_shard(opts, comm);
  CHECK(s.weight.empty());
  CHECK(s.offset.empty());
  check_none(s, 4);  // LIBSVM: column 0 (the label token) is unused, features 1..4
}

TEST_CASE("readers: a FIFO, a directory and invalid UTF-8 in a used header name", "[readers]") {
  const Communicator comm = Communicator::world();
  ReadOptions opts;
  opts.path = tmp_path("rd_fifo.csv");
  if (comm.is_root()) {
    std::filesystem::remove(opts.path);
    REQUIRE(mkfifo(opts.path.c_str(), 0600) == 0);
  }
  comm.barrier();
  // Opening a FIFO for reading must not wait for a writer.
  CHECK_THAT(load_error(opts, comm), Contains(opts.path + ": cannot open: not a regular file"));
  opts.path = NATGRAD_TEST_TMP;
  CHECK_THAT(load_error(opts, comm), Contains(opts.path + ": cannot open: Is a directory"));
  opts.path = write_file(comm, "rd_latin1.csv", "y,caf\xE9,b,\xFF\n1,2,3,x\n0,4,5,y\n");
  opts.columns = "1,2";
  CHECK_THAT(load_error(opts, comm),
             Contains(opts.path + ":1: header field 2 is not valid UTF-8 (byte 0xE9 at offset 3"));
  opts.columns = "2";  // names of unused columns are not checked
  CHECK(load_error(opts, comm).empty());
}

// ===========================================================================
// Sparse input: LIBSVM straight into CSR, --layout, --n-features, content sniffing

namespace {

/// A LIBSVM text of \p rows rows over \p cols features, with about \p per_mille non-zeros
/// per thousand cells (a deterministic pattern), labels -1/+1, comments and blank lines.
std::string sparse_libsvm(std::int64_t rows, std::int64_t cols, std::int64_t per_mille) {
  std::string s = "# sparse test file\n";
  for (std::int64_t i = 0; i < rows; ++i) {
    s += (i % 3 ? "+1" : "-1");
    for (std::int64_t j = 1; j <= cols; ++j)
      if ((i * 7919 + j * 104729) % 1000 < per_mille) s += " " + std::to_string(j) + ":" + num(0.25 * double(j) - double(i % 11));
    s += i % 17 == 5 ? " # trailing\n" : "\n";
    if (i % 40 == 0) s += "\n# comment line\n";
  }
  return s;
}

/// CSR invariants: row pointers from 0 to nnz, indices strictly increasing within a row
/// and below n_cols, the index width what n_cols needs.
bool csr_ok(const Shard& s) {
  const SparseRows& c = s.csr;
  if (!s.sparse || !s.x.empty() || c.row_ptr.size() != static_cast<std::size_t>(s.n_rows) + 1 || c.row_ptr[0] != 0)
    return false;
  if (c.wide != SparseRows::needs_wide(s.n_cols)) return false;
  if (c.values.size() != static_cast<std::size_t>(c.nnz())) return false;
  for (std::int64_t i = 0; i < s.n_rows; ++i) {
    if (c.row_ptr[i + 1] < c.row_ptr[i]) return false;
    for (std::int64_t k = c.row_ptr[i]; k < c.row_ptr[i + 1]; ++k) {
      if (c.index(k) < 0 || c.index(k) >= s.n_cols) return false;
      if (k > c.row_ptr[i] && c.index(k) <= c.index(k - 1)) return false;
    }
  }
  return true;
}

}  // namespace

TEST_CASE("libsvm: the CSR read equals the dense read, every column role, with and without intercept",
          "[readers][sparse]") {
  const Communicator comm = Communicator::world();
  const std::string text = sparse_libsvm(503, 40, 90);
  const std::string path = write_file(comm, "rd_csr.svm", text);
  struct Case {
    const char *label, *weight, *offset, *columns;
  };
  // Default roles; weight (column 40: >= 0) and offset out of the sparse row; a reordered selection; no
  // label; a feature as label (then column 0, the label token, is a feature).
  for (const Case c : {Case{"0", "", "", ""}, Case{"0", "40", "7", ""}, Case{"0", "", "2", "9,4,12,1"},
                       Case{"none", "", "", ""}, Case{"5", "", "", ""}, Case{"5", "", "", "0,8,6"}}) {
    for (const bool intercept : {false, true}) {
      INFO("label " << c.label << ", weight " << c.weight << ", offset " << c.offset << ", columns " << c.columns
                    << ", intercept " << intercept);
      ReadOptions opts;
      opts.path = path;
      opts.label_column = c.label;
      opts.weight_column = c.weight;
      opts.offset_column = c.offset;
      opts.columns = c.columns;
      opts.intercept = intercept;
      opts.threads = 3;
      opts.layout = ReadOptions::Layout::sparse;
      const Shard sp = natgrad::load_shard(opts, comm);
      opts.layout = ReadOptions::Layout::dense;
      const Shard de = natgrad::load_shard(opts, comm);
      CHECK(csr_ok(sp));
      CHECK(!de.sparse);
      CHECK(sp.n_cols == de.n_cols);
      CHECK(sp.names == de.names);
      CHECK(sp.n_global == 503);
      CHECK(sp.first_row == de.first_row);
      const std::string a = global_rows(sp, comm), b = global_rows(de, comm);
      if (comm.is_root()) {
        CHECK(!b.empty());
        CHECK(a == b);
      }
    }
  }
  // The dense read against the table the text was made from (an independent parse: the
  // row/column pattern above, -1 -> 0).
  ReadOptions opts;
  opts.path = path;
  opts.layout = ReadOptions::Layout::dense;
  const Shard de = natgrad::load_shard(opts, comm);
  REQUIRE(de.n_cols == 40);
  std::int64_t bad = 0;
  for (std::int64_t k = 0; k < de.n_rows; ++k) {
    const std::int64_t i = de.first_row + k;
    if (de.y[k] != (i % 3 ? 1.0 : 0.0)) ++bad;
    for (std::int64_t j = 1; j <= 40; ++j) {
      const double want = (i * 7919 + j * 104729) % 1000 < 90 ? 0.25 * double(j) - double(i % 11) : 0.0;
      if (de.row(k)[j - 1] != want) ++bad;
    }
  }
  CHECK(bad == 0);
}

TEST_CASE("libsvm: CSR memory is the CSR itself, --layout auto by density", "[readers][sparse]") {
  const Communicator comm = Communicator::world();
  ReadOptions opts;
  opts.path = write_file(comm, "rd_csr_mem.svm", sparse_libsvm(2000, 300, 30));  // about 3% non-zeros
  for (const bool intercept : {false, true}) {
    opts.intercept = intercept;
    const Shard s = natgrad::load_shard(opts, comm);  // auto: stays sparse
    CHECK(csr_ok(s));
    // The arrays are sized exactly (the intercept's entries included): 8 bytes per row
    // pointer and label, 4 + 8 per non-zero; the bound of issue 13 is 1.5x.
    const double exact = 8.0 * double(s.n_rows + 1) + 8.0 * double(s.n_rows) + 12.0 * double(s.csr.nnz());
    CHECK(double(s.bytes()) <= exact);
    CHECK(double(s.bytes()) <= 1.5 * exact);
  }
  // Density 25% or more: --layout auto densifies (small dense LIBSVM files as before).
  opts.intercept = false;
  opts.path = write_file(comm, "rd_csr_dense.svm", sparse_libsvm(300, 10, 400));
  CHECK(!natgrad::load_shard(opts, comm).sparse);
  // A dense input stays dense under auto; --layout sparse converts it.
  const Table t = make_table(101);
  opts.path = write_file(comm, "rd_layout.csv", to_csv(t, {}));
  const Shard csv = natgrad::load_shard(opts, comm);
  CHECK(!csv.sparse);
  opts.layout = ReadOptions::Layout::sparse;
  opts.intercept = true;
  const Shard csr = natgrad::load_shard(opts, comm);
  CHECK(csr_ok(csr));
  opts.layout = ReadOptions::Layout::dense;
  const Shard dense = natgrad::load_shard(opts, comm);
  const std::string a = global_rows(csr, comm), b = global_rows(dense, comm);
  if (comm.is_root()) CHECK(a == b);
  // Generators: gen:sparse-logit stays sparse, gen:logit dense, under auto.
  opts = ReadOptions{};
  opts.path = "gen:sparse-logit:rows=400,cols=50,nnz=4";
  CHECK(csr_ok(natgrad::load_shard(opts, comm)));
  opts.path = "gen:logit:rows=40,cols=3";
  CHECK(!natgrad::load_shard(opts, comm).sparse);
  // --layout dense refused when the dense rows cannot fit.
  opts.path = "gen:sparse-logit:rows=1000,cols=1e12,nnz=1";
  opts.layout = ReadOptions::Layout::dense;
  CHECK_THAT(load_error(opts, comm), Contains("gen:sparse-logit: --layout dense: ") &&
                                         Contains("columns as dense doubles need") &&
                                         Contains("keep the data sparse (--layout sparse, or auto)"));
}

TEST_CASE("libsvm: 64-bit column indices, --n-features", "[readers][sparse]") {
  const Communicator comm = Communicator::world();
  ReadOptions opts;
  opts.layout = ReadOptions::Layout::sparse;
  opts.path = write_file(comm, "rd_wide.svm", "1 3:0.5 5000000000:2.5\n");
  const Shard w = natgrad::load_shard(opts, comm);
  CHECK(w.n_cols == 5000000000);
  CHECK(w.n_global == 1);
  CHECK(w.csr.wide);
  CHECK(w.names.empty());  // more columns than natgrad names (x1..xP up to 2^26)
  if (w.n_rows == 1) {
    REQUIRE(w.csr.nnz() == 2);
    CHECK(w.csr.index(0) == 2);
    CHECK(w.csr.index(1) == 4999999999);
    CHECK(w.csr.values[1] == 2.5);
  }
  opts.intercept = true;
  const Shard wi = natgrad::load_shard(opts, comm);
  CHECK(wi.n_cols == 5000000001);
  if (wi.n_rows == 1) CHECK(wi.csr.index(2) == 5000000000);
  opts.intercept = false;
  opts.path = write_file(comm, "rd_narrow.svm", "1 3:0.5 4294967295:2\n");  // column 4294967294: 32 bits suffice
  const Shard nw = natgrad::load_shard(opts, comm);
  CHECK(!nw.csr.wide);
  CHECK(nw.n_cols == 4294967295);
  // --n-features: more columns than the file shows; an index above it names file and line.
  opts.path = write_file(comm, "rd_nfeat.svm", "1 1:1 3:2\n0 2:1\n\n1 7:1\n");
  opts.n_features = 9;
  const Shard nf = natgrad::load_shard(opts, comm);
  CHECK(nf.n_cols == 9);
  CHECK(nf.names == xnames(9));
  opts.n_features = 6;
  CHECK_THAT(load_error(opts, comm), Contains(opts.path + ":4: feature index 7 is above --n-features 6"));
}

TEST_CASE("libsvm: files without a known extension are recognised by their content", "[readers][sparse]") {
  const Communicator comm = Communicator::world();
  ReadOptions opts;
  // heart_scale as LIBSVM ships it (the first lines; no extension).
  opts.path = write_file(comm, "heart_scale",
                         "+1 1:0.708333 2:1 3:1 4:-0.320755 5:-0.105023 6:-1 7:1 8:-0.419847 9:-1 10:-0.225806 12:1 "
                         "13:-1 \n-1 1:0.583333 2:-1 3:0.333333 4:-0.603774 5:1 6:-1 7:1 8:0.358779 9:-1 10:-0.483871 "
                         "12:-1 13:1 \n+1 1:0.166667 2:1 3:-0.333333 4:-0.433962 5:-0.383562 6:-1 7:-1 8:0.0687023 9:-1 "
                         "10:-0.903226 11:-1 12:-1 13:1 \n");
  CHECK(natgrad::input_format(opts) == "libsvm");
  const Shard s = densified(natgrad::load_shard(opts, comm));
  CHECK(s.n_global == 3);
  CHECK(s.n_cols == 13);
  if (s.n_rows > 0 && s.first_row == 0) {
    CHECK(s.y[0] == 1.0);
    CHECK(s.row(0)[0] == 0.708333);
    CHECK(s.row(0)[10] == 0.0);  // index 11 absent
  }
  // A leading comment, qid, an extension natgrad does not know.
  opts.path = write_file(comm, "rd_rcv1_train.binary", "# made by hand\n\n2 qid:3 4:1.5\n1 qid:3 1:1\n");
  CHECK(natgrad::input_format(opts) == "libsvm");
  // CSV without an extension stays CSV; so do label-only lines and a .csv name.
  opts.path = write_file(comm, "rd_plain", "y,a\n1,2\n");
  CHECK(natgrad::input_format(opts) == "csv");
  opts.path = write_file(comm, "rd_spaces", "1 2 3\n4 5 6\n");
  CHECK(natgrad::input_format(opts) == "csv");
  opts.path = write_file(comm, "rd_labels", "1\n0\n");
  CHECK(natgrad::input_format(opts) == "csv");
  opts.path = write_file(comm, "rd_named.csv", "1 1:2\n");
  CHECK(natgrad::input_format(opts) == "csv");
  // --format wins.
  opts.path = write_file(comm, "a9a", "-1 3:1 11:1\n+1 5:1\n");
  CHECK(natgrad::input_format(opts) == "libsvm");
  opts.format = "csv";
  CHECK(natgrad::input_format(opts) == "csv");
}

// ===========================================================================
// peek_shape: the header alone gives what load_shard then reads (memory admission)

TEST_CASE("peek_shape: CSV and NPY headers give load_shard's columns (and NPY's rows) before the read", "[readers]") {
  const Communicator comm = Communicator::world();
  const Table t = make_table(1005);
  struct Case {
    std::string label, weight, offset, columns;
    bool intercept;
  };
  const std::vector<Case> cases = {{"0", "", "", "", false},   {"y", "w", "off", "", false},
                                   {"off", "", "", "y,a", true}, {"0", "1", "", "b, 2", true},
                                   {"none", "", "", "", false}};
  const std::string csv = write_file(comm, "rd_peek.csv", to_csv(t, {"y", "w", "a", "b", "off"}));
  const std::string quoted = write_file(comm, "rd_peek_quoted.csv", "\"y\";\"a;b\";c\n1;2;3\n0;4;5\n");
  const std::string npy = write_file(comm, "rd_peek.npy", to_npy(t));
  for (const Case& c : cases) {
    for (const std::string& path : {csv, npy}) {
      ReadOptions o;
      o.path = path;
      o.label_column = c.label;
      o.weight_column = c.weight;
      o.offset_column = c.offset;
      o.columns = c.columns;
      o.intercept = c.intercept;
      const bool names = path == csv;
      if (!names && (c.label == "y" || c.label == "off" || c.columns == "b, 2")) continue;  // NPY: indices only
      INFO(path << " label " << c.label << " columns '" << c.columns << "'");
      const natgrad::TableShape shape = natgrad::peek_shape(o);
      const Shard s = natgrad::load_shard(o, comm);  // the reference: what the read gives
      CHECK(shape.features == s.n_cols);
      CHECK(shape.rows == (names ? -1 : s.n_global));
    }
  }
  ReadOptions q;
  q.path = quoted;
  q.delimiter = ';';
  CHECK(natgrad::peek_shape(q).features == 2);  // "a;b" is one quoted field
  CHECK(natgrad::load_shard(q, comm).n_cols == 2);
  // Unknown before the read, or left to the reader's own message: -1.
  ReadOptions libsvm;
  libsvm.path = write_file(comm, "rd_peek.svm", "1 3:1.5 7:2\n0 1:1\n");
  CHECK(natgrad::peek_shape(libsvm).features == -1);
  ReadOptions missing;
  missing.path = "rd_peek_no_such_file.csv";
  CHECK(natgrad::peek_shape(missing).features == -1);
  ReadOptions bad_role;
  bad_role.path = csv;
  bad_role.columns = "nope";
  CHECK(natgrad::peek_shape(bad_role).features == -1);
  ReadOptions gen;
  gen.path = "gen:logit:rows=10,cols=3";
  CHECK(natgrad::peek_shape(gen).features == -1);
}
