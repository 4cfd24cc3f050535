#pragma once
// Test-local helpers for the formula tests (test_formula.cpp, test_design.cpp): a tiny
// CSV loader (no quoting; "NA" and "" are missing), a Frame built by hand from a slice of
// its rows with the levels of the whole table (as read_frame promises), and the R cases of
// tests/fixtures/formula (make_model_matrix.R).
#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "natgrad/io/frame.hpp"

namespace natgrad::test {

struct Table {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;  ///< fields, one vector per data row
};

inline std::vector<std::string> split_fields(const std::string& line) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : line) {
    if (c == ',') {
      out.push_back(cur);
      cur.clear();
    } else if (c != '\r') {
      cur += c;
    }
  }
  out.push_back(cur);
  return out;
}

inline Table read_table(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path);
  Table t;
  std::string line;
  std::getline(in, line);
  t.header = split_fields(line);
  while (std::getline(in, line))
    if (!line.empty()) t.rows.push_back(split_fields(line));
  return t;
}

inline bool is_missing(const std::string& f) { return f.empty() || f == "NA" || f == "NaN"; }

inline bool as_number(const std::string& f, double& v) {
  const char* b = f.data();
  const char* e = b + f.size();
  auto r = std::from_chars(b, e, v);
  return r.ec == std::errc() && r.ptr == e;
}

inline std::string shortest(double v) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

/// Rows [begin, end) of \p t as read_frame would return them for \p columns, with the
/// levels of the whole table (sorted: text in byte order, numeric factors numerically).
inline Frame make_frame(const Table& t, const std::vector<std::string>& columns,
                        const std::vector<std::string>& as_factor, std::int64_t begin, std::int64_t end) {
  Frame f;
  f.n_rows = end - begin;
  f.first_row = begin;
  f.n_global = static_cast<std::int64_t>(t.rows.size());
  f.source = "data.csv";
  for (std::int64_t i = begin; i < end; ++i) f.line.push_back(i + 2);
  for (const std::string& name : columns) {
    const auto it = std::find(t.header.begin(), t.header.end(), name);
    if (it == t.header.end()) throw std::runtime_error("no column " + name);
    const std::size_t j = static_cast<std::size_t>(it - t.header.begin());
    FrameColumn c;
    c.name = name;
    c.index = static_cast<std::int64_t>(j);
    bool numeric = true;
    for (const auto& r : t.rows) {
      double v;
      if (!is_missing(r[j]) && !as_number(r[j], v)) numeric = false;
    }
    const bool factor = !numeric || std::find(as_factor.begin(), as_factor.end(), name) != as_factor.end();
    if (!factor) {
      c.kind = FrameColumn::Kind::numeric;
      for (std::int64_t i = begin; i < end; ++i) {
        double v = std::nan("");
        if (!is_missing(t.rows[static_cast<std::size_t>(i)][j])) as_number(t.rows[static_cast<std::size_t>(i)][j], v);
        c.values.push_back(v);
      }
    } else {
      c.kind = FrameColumn::Kind::factor;
      c.numeric_levels = numeric;
      if (numeric) {
        std::vector<double> lv;
        for (const auto& r : t.rows) {
          double v;
          if (!is_missing(r[j]) && as_number(r[j], v) && std::find(lv.begin(), lv.end(), v) == lv.end()) lv.push_back(v);
        }
        std::sort(lv.begin(), lv.end());
        for (double v : lv) c.levels.push_back(shortest(v));
        for (std::int64_t i = begin; i < end; ++i) {
          const std::string& s = t.rows[static_cast<std::size_t>(i)][j];
          double v;
          c.codes.push_back(is_missing(s) || !as_number(s, v)
                                ? -1
                                : static_cast<std::int32_t>(std::find(lv.begin(), lv.end(), v) - lv.begin()));
        }
      } else {
        for (const auto& r : t.rows)
          if (!is_missing(r[j])) c.levels.push_back(r[j]);
        std::sort(c.levels.begin(), c.levels.end());
        c.levels.erase(std::unique(c.levels.begin(), c.levels.end()), c.levels.end());
        for (std::int64_t i = begin; i < end; ++i) {
          const std::string& s = t.rows[static_cast<std::size_t>(i)][j];
          c.codes.push_back(is_missing(s) ? -1
                                          : static_cast<std::int32_t>(std::lower_bound(c.levels.begin(), c.levels.end(), s) -
                                                                      c.levels.begin()));
        }
      }
    }
    f.columns.push_back(std::move(c));
  }
  return f;
}

/// One case written by make_model_matrix.R.
struct RCase {
  std::string name, formula, reference, kind;
  bool intercept = true;
  std::vector<std::string> variables, term_labels, colnames;
  std::vector<std::int64_t> rows;             ///< 1-based rows of data.csv kept
  std::vector<std::vector<double>> matrix;    ///< model.matrix, one vector per row kept
  std::vector<double> response, offset;
  std::vector<std::pair<std::string, std::int64_t>> missing;
  std::vector<std::pair<std::string, std::vector<std::string>>> levels;  ///< by variable label
};

inline std::vector<double> numbers(const nlohmann::ordered_json& a) {
  std::vector<double> out;
  for (const auto& s : a) out.push_back(std::strtod(s.get<std::string>().c_str(), nullptr));
  return out;
}

inline RCase read_case(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  const auto j = nlohmann::ordered_json::parse(ss.str());
  RCase c;
  c.name = j.at("name");
  c.formula = j.at("formula");
  c.reference = j.at("reference");
  c.kind = j.at("kind");
  c.intercept = j.at("intercept");
  c.variables = j.at("variables").get<std::vector<std::string>>();
  c.term_labels = j.at("term_labels").get<std::vector<std::string>>();
  c.colnames = j.at("colnames").get<std::vector<std::string>>();
  c.rows = j.at("rows").get<std::vector<std::int64_t>>();
  for (const auto& r : j.at("matrix")) c.matrix.push_back(numbers(r));
  c.response = numbers(j.at("response"));
  c.offset = numbers(j.at("offset"));
  if (j.at("missing").is_object())
    for (const auto& [k, v] : j.at("missing").items()) c.missing.emplace_back(k, v.get<std::int64_t>());
  if (j.at("levels").is_object())
    for (const auto& [k, v] : j.at("levels").items()) c.levels.emplace_back(k, v.get<std::vector<std::string>>());
  return c;
}

inline const std::vector<std::string> kFormulaCases = {
    "main", "factor_by_numeric", "factor_by_factor", "two_factors_no_intercept", "interaction_only",
    "numeric_by_factor_no_main", "transforms", "offset_factor_call", "dot", "reference", "binary_text",
    "comparison_response", "no_intercept_interaction_first", "factor_call_by_numeric", "three_way",
    "removal_keeps_na"};

}  // namespace natgrad::test
