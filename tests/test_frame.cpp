// read_frame (io/frame.hpp) at several rank counts, against a naive single-process reading
// of the same file (std::getline, a character-by-character field split): kinds, levels,
// codes, values and lines must equal it whatever the rank count. The files are laid out
// (lines of equal length) so that at 3 and 4 ranks some rank sees a level no other rank
// has, and some rank sees no level of a column at all.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "natgrad/core/communicator.hpp"
#include "natgrad/core/error.hpp"
#include "natgrad/io/frame.hpp"
#include "natgrad/io/reader.hpp"
#include "support/test_support.hpp"

namespace {

using Catch::Matchers::Contains;
using namespace natgrad;
using namespace natgrad::test;

// ---------------------------------------------------------------------------
// The naive reading.

std::string naive_trim(const std::string& s) {
  std::size_t b = 0, e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t' || s[b] == '\r')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t' || s[e - 1] == '\r')) --e;
  return s.substr(b, e - b);
}

/// Fields of a line: quotes toggle, "" inside quotes is a quote, then blanks trimmed.
std::vector<std::string> naive_split(const std::string& line, char delim) {
  std::vector<std::string> out;
  std::string cur;
  bool in_quotes = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (in_quotes) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        cur += '"';
        ++i;
      } else if (c == '"') {
        in_quotes = false;
      } else {
        cur += c;
      }
    } else if (c == '"') {
      in_quotes = true;
    } else if (c == delim) {
      out.push_back(naive_trim(cur));
      cur.clear();
    } else {
      cur += c;
    }
  }
  out.push_back(naive_trim(cur));
  return out;
}

bool naive_missing(const std::string& s) { return s.empty() || s == "NA" || s == "NaN"; }

bool naive_number(const std::string& s, double& v) {
  if (s.empty()) return false;
  char* end = nullptr;
  v = std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size();
}

/// One column as the naive reading sees it: every row's text and line.
struct NaiveColumn {
  bool factor = false, numeric_levels = false;
  std::vector<std::string> levels;
  std::vector<std::int32_t> codes;
  std::vector<double> values;
};

struct Naive {
  std::vector<std::int64_t> line;
  std::map<std::string, NaiveColumn> cols;
};

Naive naive_read(const std::string& path, const std::vector<std::string>& names,
                 const std::set<std::string>& as_factor, char delim = ',') {
  std::ifstream in(path);
  std::string line;
  std::int64_t lineno = 0;
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  Naive nv;
  while (std::getline(in, line)) {
    ++lineno;
    if (naive_trim(line).empty()) continue;
    if (header.empty()) {
      header = naive_split(line, delim);
      continue;
    }
    rows.push_back(naive_split(line, delim));
    nv.line.push_back(lineno);
  }
  for (const std::string& name : names) {
    std::size_t j = 0;
    while (j < header.size() && header[j] != name) ++j;
    REQUIRE(j < header.size());
    NaiveColumn c;
    bool numeric = true;
    for (const auto& r : rows) {
      double v = 0;
      if (!naive_missing(r[j]) && !naive_number(r[j], v)) numeric = false;
    }
    c.factor = !numeric || as_factor.count(name) > 0;
    c.numeric_levels = numeric && c.factor;
    if (numeric) {
      for (const auto& r : rows) {
        double v = std::nan("");
        if (!naive_missing(r[j])) naive_number(r[j], v);
        c.values.push_back(v);
      }
    }
    if (c.numeric_levels) {
      std::set<double> lv;
      for (double v : c.values)
        if (!std::isnan(v)) lv.insert(v);
      std::vector<double> sorted(lv.begin(), lv.end());
      for (double v : sorted) c.levels.push_back(num(v));
      for (double v : c.values) {
        std::int32_t code = -1;
        for (std::size_t k = 0; k < sorted.size(); ++k)
          if (sorted[k] == v) code = static_cast<std::int32_t>(k);
        c.codes.push_back(code);
      }
      c.values.clear();
    } else if (c.factor) {
      std::set<std::string> lv;
      for (const auto& r : rows)
        if (!naive_missing(r[j])) lv.insert(r[j]);
      c.levels.assign(lv.begin(), lv.end());  // std::set<std::string>: byte order
      for (const auto& r : rows) {
        std::int32_t code = -1;
        if (!naive_missing(r[j]))
          code = static_cast<std::int32_t>(std::distance(lv.begin(), lv.find(r[j])));
        c.codes.push_back(code);
      }
    }
    nv.cols[name] = c;
  }
  return nv;
}

// ---------------------------------------------------------------------------
// The frame gathered on root.

template <class T>
void append_bytes(std::string& s, const std::vector<T>& v) {
  const std::uint64_t n = v.size();
  s.append(reinterpret_cast<const char*>(&n), sizeof n);
  s.append(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

template <class T>
std::vector<T> take_bytes(const std::string& s, std::size_t& at) {
  std::uint64_t n = 0;
  std::memcpy(&n, s.data() + at, sizeof n);
  at += sizeof n;
  std::vector<T> v(n);
  std::memcpy(v.data(), s.data() + at, n * sizeof(T));
  at += n * sizeof(T);
  return v;
}

/// Collective. The frame's rows of every rank, joined in rank order, on root (the levels
/// are root's; other ranks' levels must equal them: checked here on each rank against
/// root's broadcast).
Frame gather_frame(const Frame& f, const Communicator& comm) {
  std::string mine;
  append_bytes(mine, f.line);
  for (const FrameColumn& c : f.columns) {
    append_bytes(mine, c.values);
    append_bytes(mine, c.codes);
  }
  std::string levels;
  for (const FrameColumn& c : f.columns)
    for (const std::string& l : c.levels) levels += l + '\n';
  std::string root_levels = levels;
  comm.broadcast(root_levels);
  CHECK(levels == root_levels);
  const std::vector<std::string> all = comm.gather(mine);
  Frame out = f;
  if (!comm.is_root()) return out;
  out.line.clear();
  for (FrameColumn& c : out.columns) {
    c.values.clear();
    c.codes.clear();
  }
  for (const std::string& s : all) {
    std::size_t at = 0;
    const auto l = take_bytes<std::int64_t>(s, at);
    out.line.insert(out.line.end(), l.begin(), l.end());
    for (FrameColumn& c : out.columns) {
      const auto v = take_bytes<double>(s, at);
      const auto k = take_bytes<std::int32_t>(s, at);
      c.values.insert(c.values.end(), v.begin(), v.end());
      c.codes.insert(c.codes.end(), k.begin(), k.end());
    }
  }
  return out;
}

bool same_values(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (!(a[i] == b[i] || (std::isnan(a[i]) && std::isnan(b[i])))) return false;
  return true;
}

/// Collective. read_frame of \p names equals the naive reading.
void check_against_naive(const ReadOptions& opts, const std::vector<std::string>& names,
                         const std::set<std::string>& as_factor, const Communicator& comm) {
  FrameRequest req;
  req.columns = names;
  req.as_factor.assign(as_factor.begin(), as_factor.end());
  const Frame f = read_frame(opts, req, comm);
  std::int64_t total = f.n_rows;
  comm.allreduce_sum(&total, 1);
  CHECK(f.n_global == total);
  CHECK(f.first_row == comm.exscan_sum(f.n_rows));
  CHECK(static_cast<std::int64_t>(f.line.size()) == f.n_rows);
  const Frame g = gather_frame(f, comm);
  if (!comm.is_root()) return;
  const Naive nv = naive_read(opts.path, names, as_factor, opts.delimiter);
  CHECK(g.line == nv.line);
  CHECK(g.n_global == static_cast<std::int64_t>(nv.line.size()));
  REQUIRE(g.columns.size() == names.size());
  for (std::size_t k = 0; k < names.size(); ++k) {
    const FrameColumn& c = g.columns[k];
    const NaiveColumn& e = nv.cols.at(names[k]);
    INFO("column " << names[k]);
    CHECK(c.name == names[k]);
    CHECK((c.kind == FrameColumn::Kind::factor) == e.factor);
    CHECK(c.numeric_levels == e.numeric_levels);
    CHECK(c.levels == e.levels);
    if (e.factor) {
      CHECK(c.codes == e.codes);
    } else {
      CHECK(same_values(c.values, e.values));
    }
  }
}

/// \p fields joined by commas, the last padded with blanks to make the line \p width long.
std::string padded_line(const std::vector<std::string>& fields, std::size_t width) {
  std::string s;
  for (std::size_t j = 0; j < fields.size(); ++j) s += (j ? "," : "") + fields[j];
  if (s.size() < width) s += std::string(width - s.size(), ' ');
  return s;
}

/// 40 rows of equal length (so byte ranges split them evenly: 10 per rank at 4 ranks,
/// 13 or 14 at 3). Columns:
///  id   numbers 0..39
///  g    text levels: 'beta' on every rank; 'alpha' only in rows 0-3 (rank 0's);
///       'zeta' only in rows 37-39 (the last rank's)
///  h    'first' in rows 0-2, 'last' in rows 37-39, NA in between: the middle ranks see
///       no level at all
///  n    numbers 1, 2, 10 (read as a factor: levels in numeric order)
///  r    2.5, 1e6 (also spelled 1000000.0), NaN
///  q    quoted text holding the delimiter and doubled quotes
///  mix  numbers (1, 2, 3) except 'x' in row 38: text, so the ranks with numbers only
///       must contribute their numbers' texts as levels ('1', '2', '3', '03', 'x')
std::string levels_file() {
  std::string text = "id,g,h,n,r,q,mix,pad\n";
  for (int i = 0; i < 40; ++i) {
    const std::string g = i < 4 ? "alpha" : i >= 37 ? "zeta" : (i % 3 == 0 ? " beta " : "\"beta\"");
    const std::string h = i < 3 ? "first" : i >= 37 ? "last" : (i % 2 ? "NA" : "");
    const std::string n = i % 3 == 0 ? "1" : i % 3 == 1 ? "2" : "10";
    const std::string r = i % 4 == 0 ? "2.5" : i % 4 == 1 ? "1e6" : i % 4 == 2 ? "1000000.0" : "NaN";
    const std::string q = i % 2 ? "\"a,b\"" : "\"say \"\"hi\"\"\"";
    const std::string mix = i == 38 ? "x" : i == 5 ? "03" : std::to_string(i % 3 + 1);
    text += padded_line({std::to_string(i), g, h, n, r, q, mix, ""}, 60) + "\n";
  }
  return text;
}

/// Collective. The message of the error read_frame throws ("" if none).
std::string frame_error(const ReadOptions& opts, const FrameRequest& req, const Communicator& comm) {
  return error_of([&] { read_frame(opts, req, comm); });
}

}  // namespace

TEST_CASE("frame: kinds, levels and codes equal a naive reading at any rank count", "[frame]") {
  const Communicator comm = Communicator::world();
  ReadOptions opts;
  opts.path = write_file(comm, "frame_levels.csv", levels_file());
  CHECK(frame_header(opts) == std::vector<std::string>{"id", "g", "h", "n", "r", "q", "mix", "pad"});
  check_against_naive(opts, {"id", "g", "h", "n", "r", "q", "mix"}, {}, comm);
  // Numeric columns read as factors: levels in numeric order, named as to_chars names them.
  check_against_naive(opts, {"n", "r", "g", "id"}, {"n", "r", "id"}, comm);
  // The exact levels, not only agreement with the naive reading.
  FrameRequest req;
  req.columns = {"n", "r", "g", "h", "q", "mix"};
  req.as_factor = {"n", "r"};
  opts.threads = 2;
  const Frame f = read_frame(opts, req, comm);
  CHECK(f.columns[0].levels == std::vector<std::string>{"1", "2", "10"});
  CHECK(f.columns[0].numeric_levels);
  CHECK(f.columns[1].levels == std::vector<std::string>{"2.5", "1e+06"});
  CHECK(f.columns[2].levels == std::vector<std::string>{"alpha", "beta", "zeta"});
  CHECK(f.columns[3].levels == std::vector<std::string>{"first", "last"});
  CHECK(f.columns[4].levels == std::vector<std::string>{"a,b", "say \"hi\""});
  CHECK(f.columns[5].levels == std::vector<std::string>{"03", "1", "2", "3", "x"});
  CHECK(f.columns[5].kind == FrameColumn::Kind::factor);
  CHECK(!f.columns[5].numeric_levels);
  // Columns by 0-based index, in request order; find() by header name.
  req = {};
  req.columns = {"3", "1"};
  const Frame by_index = read_frame(opts, req, comm);
  CHECK(by_index.columns[0].name == "n");
  CHECK(by_index.columns[0].index == 3);
  CHECK(by_index.columns[1].name == "g");
  CHECK(by_index.find("g") == &by_index.columns[1]);
  CHECK(by_index.find("nope") == nullptr);
}

TEST_CASE("frame: a text column with many distinct numbers before its text", "[frame]") {
  // 'big' holds 3000 distinct numbers and one text at the end: more numbers than a rank
  // interns while the column looks numeric, so the ranks read the column again.
  const Communicator comm = Communicator::world();
  std::string text = "a,big,c\n";
  for (int i = 0; i < 3000; ++i)
    text += std::to_string(i % 5) + "," + (i == 2998 ? std::string("other") : num(0.5 * i)) + ",z" +
            std::to_string(i % 2) + "\n";
  ReadOptions opts;
  opts.path = write_file(comm, "frame_big.csv", text);
  opts.threads = 2;
  check_against_naive(opts, {"big", "a", "c"}, {}, comm);
  check_against_naive(opts, {"c", "big", "a"}, {"a", "big"}, comm);
}

TEST_CASE("frame: missing values under --na omit and --na fail", "[frame]") {
  const Communicator comm = Communicator::world();
  // Empty, NA and NaN (also quoted) are missing; 'nan' in a numeric column is a number.
  std::string text = "y,x,g,unused\n";
  std::int64_t bad_line = 0;
  for (int i = 0; i < 500; ++i) {
    std::string x = num(0.25 * i), g = i % 2 ? "u" : "v";
    if (i == 7) x = "NA";
    if (i == 100) g = "\"NA\"";
    if (i == 200) x = "";
    if (i == 431) {
      g = " NaN ";
      bad_line = i + 2;
    }
    text += num(i % 2) + "," + x + "," + g + "," + (i == 3 ? "NA" : "t") + "\n";
  }
  ReadOptions opts;
  opts.path = write_file(comm, "frame_na.csv", text);
  check_against_naive(opts, {"y", "x", "g"}, {}, comm);
  FrameRequest req;
  req.columns = {"y", "x", "g"};
  const Frame f = read_frame(opts, req, comm);
  std::int64_t missing_x = 0, missing_g = 0;
  for (std::int64_t r = 0; r < f.n_rows; ++r) {
    missing_x += std::isnan(f.columns[1].values[static_cast<std::size_t>(r)]) ? 1 : 0;
    missing_g += f.columns[2].codes[static_cast<std::size_t>(r)] < 0 ? 1 : 0;
  }
  comm.allreduce_sum(&missing_x, 1);
  comm.allreduce_sum(&missing_g, 1);
  CHECK(missing_x == 2);
  CHECK(missing_g == 2);
  CHECK(f.n_global == 500);

  // --na fail: the first missing value in file order, on whichever rank it is.
  opts.na = ReadOptions::Na::fail;
  CHECK_THAT(frame_error(opts, req, comm),
             Contains(opts.path + ":9: column 1 ('x'): missing value 'NA' (--na fail"));
  req.columns = {"g", "y"};  // the NA of row 7 is in a column not asked for
  CHECK_THAT(frame_error(opts, req, comm), Contains(opts.path + ":102: column 2 ('g'): missing value 'NA'"));
  // Only the last one: in the last rank's range.
  std::string late = "y,g\n";
  for (int i = 0; i < 500; ++i) late += "1," + std::string(i == 431 ? " NaN " : "a") + "\n";
  opts.path = write_file(comm, "frame_na_late.csv", late);
  CHECK_THAT(frame_error(opts, req, comm),
             Contains(opts.path + ":" + std::to_string(bad_line) + ": column 1 ('g'): missing value 'NaN'"));
  // The reader still works after a failure.
  opts.na = ReadOptions::Na::omit;
  CHECK(read_frame(opts, req, comm).n_global == 500);
}

TEST_CASE("frame: fixed levels, optional and absent columns, bad lines", "[frame]") {
  const Communicator comm = Communicator::world();
  std::string text = "y,race,k\n";
  for (int i = 0; i < 300; ++i)
    text += num(i % 2) + "," + (i == 250 ? "other" : i % 3 ? "black" : "white") + "," +
            (i % 2 ? "2.0" : "10") + "\n";
  ReadOptions opts;
  opts.path = write_file(comm, "frame_fixed.csv", text);
  FrameRequest req;
  req.columns = {"race", "k", "resp"};
  req.fixed_levels["race"] = {"black", "hispanic", "other", "white"};
  req.fixed_levels["k"] = {"2", "5", "10"};  // numeric levels: 2.0 is level '2'
  req.optional = {"resp"};
  const Frame f = read_frame(opts, req, comm);
  const Frame g = gather_frame(f, comm);
  if (comm.is_root()) {
    REQUIRE(g.columns.size() == 3);
    CHECK(g.columns[0].levels == req.fixed_levels["race"]);
    CHECK(g.columns[1].numeric_levels);
    CHECK(g.columns[2].index == -1);
    CHECK(g.columns[2].values.empty());
    CHECK(g.columns[2].codes.empty());
    bool ok = g.columns[0].codes.size() == 300 && g.columns[1].codes.size() == 300;
    for (std::size_t i = 0; ok && i < 300; ++i)
      ok = g.columns[0].codes[i] == (i == 250 ? 2 : i % 3 ? 0 : 3) && g.columns[1].codes[i] == (i % 2 ? 0 : 2);
    CHECK(ok);
  }
  // A level not among the fixed ones: file, line, column and value.
  req.fixed_levels["race"] = {"black", "white"};
  CHECK_THAT(frame_error(opts, req, comm),
             Contains(opts.path +
                      ":252: level 'other' of column 'race' (column 1) was not seen when the model was fitted"));
  // A column that is neither in the header nor optional.
  req.optional.clear();
  req.fixed_levels.erase("race");
  CHECK_THAT(frame_error(opts, req, comm), Contains(opts.path + ": no column 'resp' in the header"));
  // Bad lines: wrong number of fields, quoting.
  opts.path = write_file(comm, "frame_ragged.csv", text + "1,white\n");
  req.columns = {"y"};
  CHECK_THAT(frame_error(opts, req, comm), Contains(opts.path + ":302: expected 3 fields, found 2"));
  opts.path = write_file(comm, "frame_quote.csv", text + "1,\"white,2\n");
  CHECK_THAT(frame_error(opts, req, comm), Contains(opts.path + ":302: field 2: quoted field has no closing quote"));
  // No header line.
  opts.path = write_file(comm, "frame_noheader.csv", "1,2\n3,4\n");
  CHECK_THAT(frame_error(opts, req, comm), Contains("has no header line"));
  CHECK_THROWS_AS(frame_header(opts), natgrad::Error);
}
