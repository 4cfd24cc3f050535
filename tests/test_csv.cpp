// CSV reader and load_shard, run at several rank counts. Every rank runs every test
// case and makes the same collective calls in the same order; checks use CHECK (not
// REQUIRE) after the collectives so a failing rank cannot leave the others waiting.
#include <catch2/catch.hpp>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "natgrad/core/communicator.hpp"
#include "natgrad/core/error.hpp"
#include "natgrad/io/generator.hpp"
#include "natgrad/core/partition.hpp"
#include "natgrad/io/reader.hpp"
#include "support/test_support.hpp"

namespace {

using Catch::Matchers::Contains;
using namespace natgrad;
using namespace natgrad::test;

/// Row i of the test data: its label and three features, the first the row index.
double label_of(std::int64_t i) { return i % 3 == 0 ? 1.0 : 0.0; }
std::vector<double> features_of(std::int64_t i) {
  return {static_cast<double>(i), 0.25 * static_cast<double>(i) - 3.0,
          static_cast<double>(i % 7 - 3)};
}

struct Style {
  std::string name;
  bool header = true;
  std::string eol = "\n";
  bool final_newline = true;
  int blank_every = 0;  ///< an empty line after every k-th row (0: none)
  bool bom = false;
};

/// A CSV of the test rows ("y,a,b,c"); row i is replaced by replace[i] if present.
/// line_of[i] is the 1-based file line of row i.
struct Csv {
  std::string text;
  std::vector<std::int64_t> line_of;
};

Csv make_csv(std::int64_t rows, const Style& st,
             const std::map<std::int64_t, std::string>& replace = {}) {
  Csv c;
  std::int64_t line = 0;
  if (st.bom) c.text += "\xEF\xBB\xBF";
  if (st.header) {
    c.text += "y, a ,b,c" + st.eol;
    ++line;
  }
  for (std::int64_t i = 0; i < rows; ++i) {
    const auto it = replace.find(i);
    if (it != replace.end()) {
      c.text += it->second;
    } else {
      const std::vector<double> f = features_of(i);
      // Varying widths and padding, so byte ranges cut lines at different places.
      c.text += num(label_of(i)) + "," + num(f[0]) + "," + std::string(i % 4, ' ') + num(f[1]) +
                " ," + num(f[2]);
    }
    c.line_of.push_back(++line);
    if (i + 1 < rows || st.final_newline) c.text += st.eol;
    if (st.blank_every > 0 && (i + 1) % st.blank_every == 0 && i + 1 < rows) {
      c.text += (i % 2 ? st.eol : "  " + st.eol);
      ++line;
    }
  }
  return c;
}

/// Collective. Checks that the shards hold rows [0, n) of the test data, each once, in
/// rank order (through first_row and the row index encoded in the first feature).
void check_test_rows(const Shard& s, const Communicator& comm, std::int64_t n,
                     std::int64_t label_shift = 0) {
  std::int64_t total = s.n_rows;
  comm.allreduce_sum(&total, 1);
  const std::int64_t expected_first = comm.exscan_sum(s.n_rows);
  CHECK(total == n);
  CHECK(s.n_global == n);
  CHECK(s.first_row == expected_first);
  CHECK(s.n_cols == 3);
  CHECK(s.x.size() == static_cast<std::size_t>(s.n_rows * 3));
  CHECK(s.y.size() == static_cast<std::size_t>(s.n_rows));
  // No REQUIRE: callers make more collective calls after this.
  if (s.n_cols != 3 || s.x.size() != static_cast<std::size_t>(s.n_rows * 3) ||
      s.y.size() != static_cast<std::size_t>(s.n_rows))
    return;
  std::int64_t bad = 0;
  for (std::int64_t k = 0; k < s.n_rows; ++k) {
    const std::int64_t i = s.first_row + k;
    const std::vector<double> f = features_of(i);
    if (s.y[k] != label_of(i) + static_cast<double>(label_shift) || s.row(k)[0] != f[0] ||
        s.row(k)[1] != f[1] || s.row(k)[2] != f[2])
      ++bad;
  }
  CHECK(bad == 0);
}

/// Collective. The message of the natgrad::Error read_csv throws ("" if none).
std::string read_error(const ReadOptions& opts, const Communicator& comm) {
  return natgrad::test::error_of([&] { natgrad::read_csv(opts, comm); });
}

}  // namespace

TEST_CASE("csv: every row is read once, in order, at any rank count", "[csv]") {
  const Communicator comm = Communicator::world();
  const std::vector<Style> styles = {
      {"plain"},
      {"crlf", true, "\r\n"},
      {"noheader", false},
      {"no_final_newline", true, "\n", false},
      {"blank_lines", true, "\n", true, 5},
      {"bom_crlf_blank_noeol", true, "\r\n", false, 3, true},
      {"bom_noheader", false, "\n", true, 0, true},
  };
  for (const Style& st : styles) {
    INFO("style " << st.name);
    const std::int64_t n = 1001;
    ReadOptions opts;
    opts.path = write_file(comm, "csv_rows_" + st.name + ".csv", make_csv(n, st).text);
    const Shard s = natgrad::read_csv(opts, comm);
    check_test_rows(s, comm, n);
    // 1001 rows are enough for every rank of up to 4 to get some.
    CHECK(s.n_rows > 0);
    CHECK(s.source == opts.path);
    const std::vector<std::string> names = st.header ? std::vector<std::string>{"a", "b", "c"}
                                                     : std::vector<std::string>{"x1", "x2", "x3"};
    CHECK(s.names == names);
    CHECK(s.weight.empty());
    CHECK(s.offset.empty());
  }
}

TEST_CASE("csv: explicit header modes", "[csv]") {
  const Communicator comm = Communicator::world();
  ReadOptions opts;
  // A numeric first line is data under auto-detect, names under Header::yes.
  opts.path = write_file(comm, "csv_numeric_header.csv", "1,2,3,4\n" + make_csv(50, {"", false}).text);
  opts.header = ReadOptions::Header::yes;
  const Shard s = natgrad::read_csv(opts, comm);
  check_test_rows(s, comm, 50);
  CHECK(s.names == std::vector<std::string>{"2", "3", "4"});
  // Header::no on a file with names: the names line is a bad data line, line 1.
  opts.path = write_file(comm, "csv_named_as_data.csv", make_csv(50, {}).text);
  opts.header = ReadOptions::Header::no;
  CHECK_THAT(read_error(opts, comm), Contains("named_as_data.csv:1: column 0: 'y' is not a number; text labels and factors are read with --formula (docs/cli.md)"));
}

TEST_CASE("csv: large file read in several chunks", "[csv]") {
  const Communicator comm = Communicator::world();
  const std::int64_t n = 300000;  // about 7 MB: more than one read chunk per rank at 1 rank
  ReadOptions opts;
  opts.path = write_file(comm, "csv_large.csv", make_csv(n, {"large", true, "\n", true, 1000}).text);
  check_test_rows(natgrad::read_csv(opts, comm), comm, n);
}

TEST_CASE("csv: lines longer than a scan block", "[csv]") {
  const Communicator comm = Communicator::world();
  const std::int64_t rows = 24, cols = 12000;  // about 100 kB per line
  std::string text;
  for (std::int64_t j = 0; j <= cols; ++j) text += (j ? ",c" + std::to_string(j) : "label");
  text += "\n";
  for (std::int64_t i = 0; i < rows; ++i) {
    text += std::to_string(i);
    for (std::int64_t j = 0; j < cols; ++j)
      text += "," + num(static_cast<double>(i) + 0.5 * static_cast<double>(j));
    text += "\n";
  }
  ReadOptions opts;
  opts.path = write_file(comm, "csv_wide.csv", text);
  const Shard s = natgrad::read_csv(opts, comm);
  std::int64_t total = s.n_rows;
  comm.allreduce_sum(&total, 1);
  CHECK(total == rows);
  CHECK(s.n_cols == cols);
  CHECK(s.names.back() == "c" + std::to_string(cols));
  std::int64_t bad = 0;
  for (std::int64_t k = 0; k < s.n_rows; ++k) {
    const auto i = static_cast<double>(s.first_row + k);
    if (s.y[k] != i) ++bad;
    for (std::int64_t j = 0; j < cols; ++j)
      if (s.row(k)[j] != i + 0.5 * static_cast<double>(j)) ++bad;
  }
  CHECK(bad == 0);
}

TEST_CASE("csv: fewer rows than ranks", "[csv]") {
  const Communicator comm = Communicator::world();
  ReadOptions opts;
  opts.path = write_file(comm, "csv_two_rows.csv", make_csv(2, {}).text);
  check_test_rows(natgrad::read_csv(opts, comm), comm, 2);
  opts.path = write_file(comm, "csv_one_row_noeol.csv", make_csv(1, {"", false, "\n", false}).text);
  check_test_rows(natgrad::load_shard(opts, comm), comm, 1);
}

TEST_CASE("csv: a file without data rows", "[csv]") {
  const Communicator comm = Communicator::world();
  ReadOptions opts;
  opts.path = write_file(comm, "csv_header_only.csv", "y,a,b\n\n");
  const Shard s = natgrad::read_csv(opts, comm);
  CHECK(s.n_global == 0);
  CHECK(s.n_rows == 0);
  CHECK(s.n_cols == 2);
  std::string msg;
  try {
    natgrad::load_shard(opts, comm);
  } catch (const natgrad::Error& e) {
    msg = e.what();
  }
  CHECK_THAT(msg, Contains("no data rows in " + opts.path));
  opts.path = write_file(comm, "csv_empty.csv", "");
  CHECK_THAT(read_error(opts, comm), Contains("empty.csv: no data rows"));
}

TEST_CASE("csv: label column other than 0, other delimiters", "[csv]") {
  const Communicator comm = Communicator::world();
  // Columns a, b, y, c: the label is column 2; features keep file order.
  std::string text = "a;b;y;c\n";
  for (std::int64_t i = 0; i < 301; ++i) {
    const std::vector<double> f = features_of(i);
    text += num(f[0]) + " ; " + num(f[1]) + ";" + num(label_of(i) + 10) + ";" + num(f[2]) + "\n";
  }
  ReadOptions opts;
  opts.delimiter = ';';
  opts.label_column = "2";
  opts.path = write_file(comm, "csv_label2.csv", text);
  const Shard s = natgrad::read_csv(opts, comm);
  check_test_rows(s, comm, 301, 10);
  CHECK(s.names == std::vector<std::string>{"a", "b", "c"});

  // Tab-separated, last column the label, no header.
  std::string tsv;
  for (std::int64_t i = 0; i < 77; ++i) {
    const std::vector<double> f = features_of(i);
    tsv += num(f[0]) + "\t" + num(f[1]) + "\t" + num(f[2]) + "\t" + num(label_of(i)) + "\r\n";
  }
  opts.delimiter = '\t';
  opts.label_column = "3";
  opts.path = write_file(comm, "csv_last_label.tsv", tsv);
  const Shard t = natgrad::read_csv(opts, comm);
  check_test_rows(t, comm, 77);
  CHECK(t.names == std::vector<std::string>{"x1", "x2", "x3"});

  opts.delimiter = ',';
  opts.label_column = "7";
  opts.path = write_file(comm, "csv_label7.csv", make_csv(10, {}).text);
  CHECK_THAT(read_error(opts, comm),
             Contains("--label-column 7 but " + opts.path + " has 4 columns"));
}

TEST_CASE("csv: bad input stops every rank with file and line", "[csv]") {
  const Communicator comm = Communicator::world();
  const std::int64_t n = 1001;
  ReadOptions opts;
  auto bad_file = [&](const std::string& name, const Style& st,
                      const std::map<std::int64_t, std::string>& replace) {
    const Csv c = make_csv(n, st, replace);
    opts.path = write_file(comm, "csv_" + name, c.text);
    return c;
  };

  // A ragged row near the end: in the last rank's byte range.
  Csv c = bad_file("ragged.csv", {}, {{995, "1,2,3"}});
  CHECK(c.line_of[995] == 997);
  CHECK_THAT(read_error(opts, comm), Contains("ragged.csv:997: expected 4 fields, found 3"));

  c = bad_file("too_many.csv", {"", true, "\r\n", true, 4}, {{700, "1,2,3,4,5"}});
  CHECK_THAT(read_error(opts, comm), Contains("too_many.csv:" + std::to_string(c.line_of[700]) +
                                              ": expected 4 fields, found 5"));

  c = bad_file("not_a_number.csv", {}, {{500, "0,1,abc,3"}});
  CHECK_THAT(read_error(opts, comm),
             Contains("not_a_number.csv:502: column 2 ('b'): 'abc' is not a number"));

  // A missing value (empty, NA, NaN) in a used column: --na fail names it.
  opts.na = ReadOptions::Na::fail;
  c = bad_file("empty_field.csv", {"", false}, {{20, "0,1,,3"}});
  CHECK_THAT(read_error(opts, comm),
             Contains("empty_field.csv:21: column 2: missing value '' (--na fail; --na omit drops the rows"));
  c = bad_file("na_label.csv", {}, {{700, "NA,1,2,3"}, {900, "0,NaN,2,3"}});
  CHECK_THAT(read_error(opts, comm), Contains("na_label.csv:702: column 0 ('y'): missing value 'NA'"));
  opts.na = ReadOptions::Na::omit;

  c = bad_file("nan.csv", {"", true, "\n", true, 6}, {{300, "0, nan ,2,3"}});
  CHECK_THAT(read_error(opts, comm), Contains("nan.csv:" + std::to_string(c.line_of[300]) +
                                              ": column 1 ('a') is not finite (nan)"));

  c = bad_file("inf_label.csv", {"", true, "\n", false}, {{1000, "-inf,1,2,3"}});
  CHECK_THAT(read_error(opts, comm), Contains("inf_label.csv:1002: column 0 ('y') is not finite (-inf)"));

  // Two bad lines on different ranks: every rank reports the first one in the file.
  c = bad_file("two_bad.csv", {}, {{10, "0,1,x,3"}, {990, "0,1"}});
  CHECK_THAT(read_error(opts, comm), Contains("two_bad.csv:12: column 2 ('b'): 'x' is not a number"));

  opts.path = natgrad::test::tmp_path("csv_does_not_exist.csv");
  CHECK_THAT(read_error(opts, comm),
             Contains(opts.path + ": cannot open: No such file or directory"));
  opts.path = NATGRAD_TEST_TMP;
  CHECK_THAT(read_error(opts, comm), Contains(": cannot open: Is a directory"));

  // The reader still works after failures (no rank left behind in a collective).
  opts.path = write_file(comm, "csv_after_errors.csv", make_csv(n, {}).text);
  check_test_rows(natgrad::read_csv(opts, comm), comm, n);
}

TEST_CASE("csv: missing values in used columns drop the row under --na omit", "[csv]") {
  const Communicator comm = Communicator::world();
  const std::int64_t n = 1001;
  // Missing values in rows 5 (label), 500 (a and b), 600 (a), 998 (c, quoted); an NA in
  // a column without a role (row 300, column c under --columns a,b) is not read.
  const std::map<std::int64_t, std::string> missing = {
      {5, "NA,5,-1.75,2"}, {500, "1,,NaN,0"}, {600, "1, NA ,147,-3"}, {998, "0,998,246.5,\"NA\""}};
  ReadOptions opts;
  opts.path = write_file(comm, "csv_missing.csv", make_csv(n, {}, missing).text);
  const Shard s = natgrad::read_csv(opts, comm);
  // The reference: the file without those rows.
  std::string kept_text = "y, a ,b,c\n";
  {
    const Csv all = make_csv(n, {});
    std::size_t at = all.text.find('\n') + 1;
    for (std::int64_t i = 0; i < n; ++i) {
      const std::size_t nl = all.text.find('\n', at);
      if (missing.count(i) == 0) kept_text += all.text.substr(at, nl + 1 - at);
      at = nl + 1;
    }
  }
  ReadOptions ref_opts;
  ref_opts.path = write_file(comm, "csv_missing_ref.csv", kept_text);
  const Shard ref = natgrad::read_csv(ref_opts, comm);
  CHECK(s.n_global == n - 4);
  CHECK(s.rows_dropped == 4);
  using Counts = std::vector<std::pair<std::string, std::int64_t>>;
  CHECK(s.missing == Counts{{"y", 1}, {"a", 2}, {"b", 1}, {"c", 1}});
  CHECK(ref.rows_dropped == 0);
  CHECK(ref.missing.empty());
  const std::string got = global_rows(s, comm), want = global_rows(ref, comm);
  CHECK(got == want);
  // Column c without a role: its NA is not read, row 998 stays.
  opts.columns = "a,b";
  const Shard ab = natgrad::read_csv(opts, comm);
  CHECK(ab.n_global == n - 3);
  CHECK(ab.missing == Counts{{"y", 1}, {"a", 2}, {"b", 1}});
  // Every row dropped: the message says why there are no rows.
  opts.path = write_file(comm, "csv_all_missing.csv", "y,a\nNA,1\n1,\n0,NaN\n");
  opts.columns = "";
  CHECK_THAT(load_error(opts, comm),
             Contains("no data rows in " + opts.path + ": each of its 3 rows has a missing value"));
}

TEST_CASE("csv: load_shard adds the intercept column", "[csv]") {
  const Communicator comm = Communicator::world();
  ReadOptions opts;
  opts.path = write_file(comm, "csv_intercept.csv", make_csv(257, {}).text);
  opts.intercept = true;
  const Shard s = natgrad::load_shard(opts, comm);
  std::int64_t total = s.n_rows;
  comm.allreduce_sum(&total, 1);
  CHECK(total == 257);
  CHECK(s.n_global == 257);
  REQUIRE(s.n_cols == 4);
  CHECK(s.names == std::vector<std::string>{"(Intercept)", "a", "b", "c"});
  REQUIRE(s.x.size() == static_cast<std::size_t>(s.n_rows * 4));
  std::int64_t bad = 0;
  for (std::int64_t k = 0; k < s.n_rows; ++k) {
    const std::vector<double> f = features_of(s.first_row + k);
    if (s.row(k)[0] != 1.0 || s.row(k)[1] != f[0] || s.row(k)[2] != f[1] || s.row(k)[3] != f[2])
      ++bad;
  }
  CHECK(bad == 0);
}

TEST_CASE("csv: load_shard on a generator spec", "[csv]") {
  const Communicator comm = Communicator::world();
  for (const std::string spec_text :
       {"gen:logit:rows=1003,cols=3,seed=7", "gen:mixture:rows=2,cols=2,seed=3"}) {
    INFO(spec_text);
    const natgrad::GeneratorSpec spec = natgrad::parse_generator_spec(spec_text);
    const Shard full = natgrad::generate_rows(spec, 0, spec.rows);
    for (const bool intercept : {false, true}) {
      ReadOptions opts;
      opts.path = spec_text;
      opts.intercept = intercept;
      const Shard s = natgrad::load_shard(opts, comm);
      const natgrad::Range r = natgrad::partition(spec.rows, comm.rank(), comm.size());
      CHECK(s.n_rows == r.size());
      CHECK(s.first_row == r.begin);
      CHECK(s.n_global == spec.rows);
      const std::int64_t p = spec.cols + (intercept ? 1 : 0);
      CHECK(s.n_cols == p);
      CHECK(s.x.size() == static_cast<std::size_t>(s.n_rows * p));
      if (s.n_cols != p || s.x.size() != static_cast<std::size_t>(s.n_rows * p)) continue;
      CHECK((intercept ? s.names.front() == "(Intercept)" : s.names.front() == "x1"));
      std::int64_t bad = 0;
      for (std::int64_t k = 0; k < s.n_rows; ++k) {
        const std::int64_t i = r.begin + k;
        if (s.y[k] != full.y[i]) ++bad;
        if (intercept && s.row(k)[0] != 1.0) ++bad;
        for (std::int64_t j = 0; j < spec.cols; ++j)
          if (s.row(k)[j + (intercept ? 1 : 0)] != full.row(i)[j]) ++bad;
      }
      CHECK(bad == 0);
    }
  }
}
