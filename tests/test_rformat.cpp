// src/io/rformat.cpp against R: tests/fixtures/rformat/cases.txt holds R's own output of
// format(), format.pval() and printCoefmat() for random inputs (make_cases.R).
#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "io/rformat.hpp"

namespace {

std::vector<std::string> expected_fields(const std::string& line) {
  std::vector<std::string> out;
  std::string f;
  std::istringstream in(line);
  while (std::getline(in, f, '\t')) out.push_back(f.substr(1));  // each starts with '='
  return out;
}

}  // namespace

TEST_CASE("R number formatting: format, format.pval and printCoefmat as R prints them", "[rformat]") {
  std::ifstream in(std::string(NATGRAD_FIXTURES) + "/rformat/cases.txt");
  REQUIRE(in);
  std::string spec, want;
  int cases = 0;
  while (std::getline(in, spec) && std::getline(in, want)) {
    std::istringstream s(spec);
    std::string kind;
    int n = 0;
    s >> kind >> n;
    std::vector<double> v;
    double x = 0;
    while (s >> x) v.push_back(x);
    const auto expected = expected_fields(want);
    std::vector<std::string> got;
    if (kind == "format") {
      got = natgrad::rformat::format(v, n);
    } else if (kind == "pval") {
      got = natgrad::rformat::format_pval(v, n);
    } else {
      REQUIRE(v.size() == static_cast<std::size_t>(4 * n));
      const auto at = [&](int k) { return std::vector<double>(v.begin() + k * n, v.begin() + (k + 1) * n); };
      std::vector<std::string> rows;
      for (int i = 1; i <= n; ++i) rows.push_back("x" + std::to_string(i));
      got = natgrad::rformat::coef_table(rows, at(0), at(1), at(2), at(3), "z value", "Pr(>|z|)");
    }
    INFO(spec);
    CHECK(got == expected);
    ++cases;
  }
  CHECK(cases == 250);
}

TEST_CASE("R number formatting: quantile type 7 and zapsmall", "[rformat]") {
  std::vector<double> x{3, 1, 4, 1, 5, 9, 2, 6};
  const auto q = natgrad::rformat::quantiles5(x);  // R: quantile(c(3,1,4,1,5,9,2,6))
  CHECK(q == std::vector<double>{1, 1.75, 3.5, 5.25, 9});
  CHECK(natgrad::rformat::zapsmall({1.0, 1e-9, -2.123456789}, 5) == std::vector<double>{1.0, 0.0, -2.1235});
}
