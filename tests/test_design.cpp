// build_design (natgrad/io/design.hpp) at several rank counts: each rank holds a slice of
// the rows of tests/fixtures/formula/data.csv (as read_frame gives it: the levels of the
// whole file), and its design rows must be R's model.matrix rows (make_model_matrix.R)
// for the rows it kept, names to the letter and values to 1e-14; a level seen by one rank
// only, a level seen only in dropped rows, NA counts; the CSR layout of a many-level
// factor against the dense one; the errors, on every rank with one message.
#include <catch2/catch.hpp>
#include <cmath>
#include <string>
#include <vector>

#include "formula_support.hpp"
#include "natgrad/core/communicator.hpp"
#include "natgrad/core/error.hpp"
#include "natgrad/core/partition.hpp"
#include "natgrad/io/design.hpp"
#include "support/test_support.hpp"

using namespace natgrad;
using namespace natgrad::test;
using Catch::Matchers::Contains;

namespace {

const std::string kDir = std::string(NATGRAD_FIXTURES) + "/formula/";

bool close(double a, double b) { return std::abs(a - b) <= 1e-14 * std::max(1.0, std::abs(b)); }

/// This rank's slice of \p t read for \p f (and the weight column).
Frame frame_for(const Table& t, const Formula& f, const Communicator& comm, const std::string& weight = "") {
  std::vector<std::string> cols = f.columns();
  if (!weight.empty()) cols.push_back(weight);
  const Range r = partition(static_cast<std::int64_t>(t.rows.size()), comm.rank(), comm.size());
  return make_frame(t, cols, f.factor_columns(), r.begin, r.end);
}

std::string design_error(const Frame& frame, const Formula& f, const DesignOptions& o, const ReadOptions& opts,
                         const Communicator& comm) {
  return error_of([&] { build_design(frame, f, o, opts, comm); });
}

}  // namespace

TEST_CASE("design: rows split across ranks are R's model.matrix rows", "[design]") {
  const Communicator comm = Communicator::world();
  const Table t = read_table(kDir + "data.csv");
  for (const std::string& name : kFormulaCases) {
    const RCase c = read_case(kDir + "cases/" + name + ".json");
    INFO(c.name << ": " << c.formula << " at rank " << comm.rank() << " of " << comm.size());
    const Formula f = parse_formula(c.formula, t.header);
    const Frame frame = frame_for(t, f, comm);
    DesignOptions o;
    o.reference = c.reference;
    o.response = c.kind == "binary" ? ResponseKind::binary : ResponseKind::numeric;
    ReadOptions opts;
    for (ReadOptions::Layout layout : {ReadOptions::Layout::auto_detect, ReadOptions::Layout::sparse}) {
      opts.layout = layout;
      const Design d = build_design(frame, f, o, opts, comm);
      const Shard& s = d.shard;
      CHECK(s.names == c.colnames);
      CHECK(s.sparse == (layout == ReadOptions::Layout::sparse));
      CHECK(s.n_global == static_cast<std::int64_t>(c.rows.size()));
      CHECK(d.info.rows_read == 30);
      CHECK(d.info.rows_dropped == 30 - static_cast<std::int64_t>(c.rows.size()));
      CHECK(d.info.missing == c.missing);
      CHECK(d.info.intercept == c.intercept);
      // The rows kept: R's row numbers of this rank's slice.
      std::vector<std::int64_t> kept;
      for (std::size_t i = 0; i < d.info.kept.size(); ++i)
        if (d.info.kept[i]) kept.push_back(frame.first_row + static_cast<std::int64_t>(i) + 1);
      REQUIRE(static_cast<std::int64_t>(kept.size()) == s.n_rows);
      REQUIRE(s.first_row + s.n_rows <= static_cast<std::int64_t>(c.rows.size()));
      const Shard dense = densified(s);
      int bad = 0;
      for (std::int64_t r = 0; r < s.n_rows; ++r) {
        const std::size_t g = static_cast<std::size_t>(s.first_row + r);
        CHECK(kept[static_cast<std::size_t>(r)] == c.rows[g]);
        for (std::int64_t j = 0; j < s.n_cols && j < static_cast<std::int64_t>(c.matrix[g].size()); ++j)
          if (!close(dense.row(r)[j], c.matrix[g][static_cast<std::size_t>(j)])) ++bad;
        if (!close(s.y[static_cast<std::size_t>(r)], c.response[g])) ++bad;
        if (!c.offset.empty()) {
          REQUIRE(s.offset.size() == static_cast<std::size_t>(s.n_rows));
          if (!close(s.offset[static_cast<std::size_t>(r)], c.offset[g])) ++bad;
        }
      }
      CHECK(bad == 0);
      CHECK(s.offset.empty() == c.offset.empty());
    }
  }
}

TEST_CASE("design: binary text response, --positive, multinomial classes", "[design]") {
  const Communicator comm = Communicator::world();
  const Table t = read_table(kDir + "data.csv");
  const Formula f = parse_formula("race ~ x1", t.header);
  const Frame frame = frame_for(t, f, comm);
  ReadOptions opts;
  DesignOptions o;
  o.response = ResponseKind::classes;
  const Design d = build_design(frame, f, o, opts, comm);
  CHECK(d.info.response_levels == std::vector<std::string>{"black", "other", "white"});
  std::size_t r = 0;
  for (std::size_t i = 0; i < d.info.kept.size(); ++i) {
    if (!d.info.kept[i]) continue;
    const std::string& race = t.rows[static_cast<std::size_t>(frame.first_row) + i][4];
    CHECK(d.shard.y[r++] == (race == "black" ? 0.0 : race == "other" ? 1.0 : 2.0));
  }
  o.response = ResponseKind::binary;
  CHECK_THAT(design_error(frame, f, o, opts, comm), Contains("binomial response 'race' has 3 levels"));
  o.response = ResponseKind::numeric;
  CHECK_THAT(design_error(frame, f, o, opts, comm), Contains("response 'race' holds text"));
  const Formula b = parse_formula("yn ~ x1", t.header);
  const Frame fb = frame_for(t, b, comm);
  o.response = ResponseKind::binary;
  o.positive = "no";
  const Design db = build_design(fb, b, o, opts, comm);
  CHECK(db.info.response_levels == std::vector<std::string>{"yes", "no"});
  r = 0;
  for (std::size_t i = 0; i < db.info.kept.size(); ++i)
    if (db.info.kept[i]) CHECK(db.shard.y[r++] == (t.rows[static_cast<std::size_t>(fb.first_row) + i][7] == "no" ? 1.0 : 0.0));
  o.positive = "maybe";
  CHECK_THAT(design_error(fb, b, o, opts, comm), Contains("--positive 'maybe' is not a level"));
}

TEST_CASE("design: the weight column, and a missing weight drops the row", "[design]") {
  const Communicator comm = Communicator::world();
  Table t = read_table(kDir + "data.csv");
  t.header.push_back("w");
  for (std::size_t i = 0; i < t.rows.size(); ++i) t.rows[i].push_back(i == 13 ? "NA" : std::to_string(i % 5));
  const Formula f = parse_formula("y ~ x1", t.header, {"w"});
  const Frame frame = frame_for(t, f, comm, "w");
  ReadOptions opts;
  opts.weight_column = "w";
  const Design d = build_design(frame, f, DesignOptions{}, opts, comm);
  CHECK(d.shard.n_global == 30 - 4);  // y, x1 twice, w
  CHECK(d.info.missing.back() == std::pair<std::string, std::int64_t>{"w", 1});
  REQUIRE(d.shard.weight.size() == static_cast<std::size_t>(d.shard.n_rows));
  std::size_t r = 0;
  for (std::size_t i = 0; i < d.info.kept.size(); ++i)
    if (d.info.kept[i]) CHECK(d.shard.weight[r++] == static_cast<double>((frame.first_row + static_cast<std::int64_t>(i)) % 5));
  t.rows[4].back() = "-2";
  const Frame bad = frame_for(t, f, comm, "w");
  CHECK_THAT(error_of([&] { build_design(bad, f, DesignOptions{}, opts, comm); }),
             Contains("data.csv line 6: weight 'w' is -2"));
}

TEST_CASE("design: a many-level factor is CSR, equal to the dense layout", "[design]") {
  const Communicator comm = Communicator::world();
  Table t;
  t.header = {"y", "x", "f", "h"};
  const int n = 3000;
  for (int i = 0; i < n; ++i) {
    char lv[16];
    std::snprintf(lv, sizeof lv, "L%03d", (i * 7) % 400);
    t.rows.push_back({std::to_string(i % 3), shortest(0.001 * i - 1), lv, i % 4 == 0 ? "p" : "q"});
  }
  t.rows[5][2] = "NA";
  const Formula f = parse_formula("y ~ x + f + h:x", t.header);
  const Frame frame = frame_for(t, f, comm);
  ReadOptions opts;
  const Design s = build_design(frame, f, DesignOptions{}, opts, comm);
  CHECK(s.shard.sparse);
  CHECK(s.shard.n_cols == 1 + 1 + 399 + 1);  // h:x by contrasts: x precedes it (R)
  CHECK(s.shard.names[2] == "fL001");
  CHECK(s.shard.names.back() == "x:hq");
  opts.layout = ReadOptions::Layout::dense;
  const Design d = build_design(frame, f, DesignOptions{}, opts, comm);
  CHECK_FALSE(d.shard.sparse);
  const Shard sd = densified(s.shard);
  CHECK(sd.x == d.shard.x);
  CHECK(s.shard.y == d.shard.y);
  CHECK(s.shard.first_row == d.shard.first_row);
  // Threads fill the same rows.
  ReadOptions threaded;
  threaded.threads = 2;
  const Design st = build_design(frame, f, DesignOptions{}, threaded, comm);
  CHECK(st.shard.csr.row_ptr == s.shard.csr.row_ptr);
  CHECK(st.shard.csr.index32 == s.shard.csr.index32);
  CHECK(st.shard.csr.values == s.shard.csr.values);
  threaded.layout = ReadOptions::Layout::dense;
  CHECK(build_design(frame, f, DesignOptions{}, threaded, comm).shard.x == d.shard.x);
  // Naive: each row's entries from the table.
  int bad = 0;
  std::int64_t r = 0;
  for (std::size_t i = 0; i < s.info.kept.size(); ++i) {
    if (!s.info.kept[i]) continue;
    const auto& row = t.rows[static_cast<std::size_t>(frame.first_row) + i];
    std::vector<double> want(static_cast<std::size_t>(d.shard.n_cols), 0.0);
    const double x = std::strtod(row[1].c_str(), nullptr);
    want[0] = 1;
    want[1] = x;
    const int level = std::atoi(row[2].c_str() + 1);
    if (level > 0) want[static_cast<std::size_t>(1 + level)] = 1;
    if (row[3] == "q") want[401] = x;
    for (std::size_t j = 0; j < want.size(); ++j)
      if (d.shard.row(r)[j] != want[j]) ++bad;
    ++r;
  }
  CHECK(bad == 0);
  CHECK(s.shard.n_global == n - 1);
}

TEST_CASE("design: errors stop every rank with one message", "[design]") {
  const Communicator comm = Communicator::world();
  const Table t0 = read_table(kDir + "data.csv");
  ReadOptions opts;
  {  // one level in the rows used: g's other levels only where x1 is missing
    Table t = t0;
    for (std::size_t i = 0; i < t.rows.size(); ++i)
      if (i != 7 && i != 28) t.rows[i][5] = "a";
    const Formula f = parse_formula("y ~ x1 + g", t.header);
    CHECK_THAT(error_of([&] { build_design(frame_for(t, f, comm), f, DesignOptions{}, opts, comm); }),
               Contains("factor 'g' has one level ('a') in the rows used"));
  }
  {  // every row has a missing value
    Table t = t0;
    for (std::size_t i = 0; i < t.rows.size(); ++i)
      if (i % 2) t.rows[i][1] = "NA";
      else t.rows[i][2] = "NA";
    const Formula f = parse_formula("y ~ x1 + x2", t.header);
    const std::string e = error_of([&] { build_design(frame_for(t, f, comm), f, DesignOptions{}, opts, comm); });
    CHECK_THAT(e, Contains("all 30 rows of data.csv have a missing value") && Contains("x1 (16)") && Contains("x2 (15)"));
  }
  {  // log(0) = -Inf names the line and the variable
    Table t = t0;
    t.rows[21][2] = "0";
    const Formula f = parse_formula("y ~ log(x2)", t.header);
    CHECK_THAT(error_of([&] { build_design(frame_for(t, f, comm), f, DesignOptions{}, opts, comm); }),
               Contains("data.csv line 23: 'log(x2)' is -Inf"));
  }
  {  // fitting needs a response
    const Formula f = parse_formula("~ x1", t0.header);
    CHECK_THAT(error_of([&] { build_design(frame_for(t0, f, comm), f, DesignOptions{}, opts, comm); }),
               Contains("no response"));
  }
  {  // text in an expression; an unknown reference level
    const Formula f = parse_formula("y ~ log(race)", t0.header);
    CHECK_THAT(error_of([&] { build_design(frame_for(t0, f, comm), f, DesignOptions{}, opts, comm); }),
               Contains("column 'race' holds text"));
    const Formula g = parse_formula("y ~ race", t0.header);
    DesignOptions o;
    o.reference = "race=purple";
    CHECK_THAT(error_of([&] { build_design(frame_for(t0, g, comm), g, o, opts, comm); }),
               Contains("--reference race=purple: 'purple' is not a level of 'race'"));
    o.reference = "sex=m";
    CHECK_THAT(error_of([&] { build_design(frame_for(t0, g, comm), g, o, opts, comm); }),
               Contains("the formula has no factor 'sex'"));
  }
}

TEST_CASE("design: predict codes new rows with the fitted levels", "[design]") {
  const Communicator comm = Communicator::world();
  const Table t = read_table(kDir + "data.csv");
  const Formula f = parse_formula("y ~ race * x1 + factor(k)", t.header);
  DesignOptions o;
  o.reference = "race=other";
  const Design fit = build_design(frame_for(t, f, comm), f, o, ReadOptions{}, comm);
  const DesignInfo info = design_from_json(design_json(fit.info));
  // New data: only rows with race 'white' and k 4 (R's predict keeps the fitted levels).
  Table nt;
  nt.header = {"x1", "race", "k"};
  for (const auto& row : t.rows)
    if (row[4] == "white" && row[6] == "4") nt.rows.push_back({row[1], row[4], row[6]});
  REQUIRE(nt.rows.size() >= 2);
  const Formula pf = parse_formula(info.formula, {"y", "x1", "race", "k"});
  const Range pr = partition(static_cast<std::int64_t>(nt.rows.size()), comm.rank(), comm.size());
  Frame frame = make_frame(nt, {"x1", "race", "k"}, {"k"}, pr.begin, pr.end);
  // read_frame with fixed_levels: the codes index the fitted levels.
  for (FrameColumn& c : frame.columns) {
    for (const FactorLevels& fl : info.factors) {
      if (fl.column != c.name) continue;
      for (std::int32_t& code : c.codes)
        code = code < 0 ? -1 : static_cast<std::int32_t>(std::find(fl.levels.begin(), fl.levels.end(), c.levels[static_cast<std::size_t>(code)]) - fl.levels.begin());
      c.levels = fl.levels;
    }
  }
  FrameColumn y;
  y.name = "y";
  frame.columns.insert(frame.columns.begin(), y);  // absent: index -1, no values
  DesignOptions po;
  po.predict = true;
  po.reference = "race=other";
  const Design p = build_design(frame, pf, po, ReadOptions{}, comm);
  CHECK(p.shard.names == fit.shard.names);
  CHECK(p.shard.y == std::vector<double>(static_cast<std::size_t>(p.shard.n_rows), 0.0));
  const std::size_t white = std::find(p.shard.names.begin(), p.shard.names.end(), "racewhite") - p.shard.names.begin();
  const std::size_t k4 = std::find(p.shard.names.begin(), p.shard.names.end(), "factor(k)4") - p.shard.names.begin();
  REQUIRE(white < p.shard.names.size());
  REQUIRE(k4 < p.shard.names.size());
  for (std::int64_t r = 0; r < p.shard.n_rows; ++r) {
    CHECK(p.shard.row(r)[white] == 1.0);
    CHECK(p.shard.row(r)[k4] == 1.0);
  }
}
