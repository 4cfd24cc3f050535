// residual_lines (app/residuals.hpp) against textbook formulas computed here: R's
// deviance, Pearson, working and response residuals per family, the offset and the prior
// weights, an NA coefficient counting 0, the kept mask (dropped rows: row number and NA)
// and the multinomial's class probabilities. The collective file (every rank's lines in
// order) and the comparison with R itself are in tests/cli/run_outputs_tests.sh.
#include <catch2/catch.hpp>
#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "natgrad/app/residuals.hpp"
#include "natgrad/core/error.hpp"
#include "natgrad/core/glm.hpp"

using namespace natgrad;
using Catch::Matchers::Contains;

namespace {

std::vector<std::vector<std::string>> rows_of(const std::string& text) {
  std::vector<std::vector<std::string>> rows;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    rows.emplace_back();
    std::istringstream f(line);
    for (std::string v; std::getline(f, v, ',');) rows.back().push_back(v);
  }
  return rows;
}

/// A dense shard of 5 rows x 2 columns (an intercept and a covariate).
Shard small_shard(std::vector<double> y) {
  Shard s;
  s.n_rows = 5;
  s.n_cols = 2;
  s.n_global = 5;
  s.x = {1, 0.5, 1, -0.2, 1, 1.3, 1, 0.1, 1, -0.9};
  s.y = std::move(y);
  s.names = {"(Intercept)", "x"};
  return s;
}

double sgn(double v) { return (v > 0) - (v < 0); }

}  // namespace

TEST_CASE("residuals: poisson/log with offset and weights, kept mask, NA coefficient", "[residuals]") {
  Shard s = small_shard({3, 0, 7, 2, 1});
  s.weight = {1, 2, 0.5, 1, 3};
  s.offset = {0.1, -0.3, 0.2, 0, 1};
  s.n_cols = 3;  // a third column whose coefficient is NA
  s.x = {1, 0.5, 9, 1, -0.2, 9, 1, 1.3, 9, 1, 0.1, 9, 1, -0.9, 9};
  const auto model = make_model("poisson", "log");
  const std::vector<double> theta{0.4, 0.7, NAN};
  const std::vector<char> kept{1, 0, 1, 1, 0, 0, 1, 1};  // 8 rows read, 5 kept
  const auto rows = rows_of(residual_lines(s, *model, theta, kept, 100));
  REQUIRE(rows.size() == 8);
  std::size_t i = 0;
  for (std::size_t r = 0; r < rows.size(); ++r) {
    INFO("line " << r);
    CHECK(rows[r][0] == std::to_string(101 + r));
    REQUIRE(rows[r].size() == 8);
    if (!kept[r]) {
      for (std::size_t k = 1; k < 8; ++k) CHECK(rows[r][k] == "NA");
      continue;
    }
    const double eta = s.offset[i] + 0.4 + 0.7 * s.x[i * 3 + 1], mu = std::exp(eta), y = s.y[i], w = s.weight[i];
    const double d = 2 * ((y > 0 ? y * std::log(y / mu) : 0.0) - (y - mu));
    CHECK(std::stod(rows[r][1]) == y);
    CHECK(std::stod(rows[r][2]) == Approx(mu).epsilon(1e-14));
    CHECK(std::stod(rows[r][3]) == Approx(eta).epsilon(1e-14));
    CHECK(std::stod(rows[r][4]) == Approx(sgn(y - mu) * std::sqrt(w * d)).epsilon(1e-12));
    CHECK(std::stod(rows[r][5]) == Approx((y - mu) * std::sqrt(w) / std::sqrt(mu)).epsilon(1e-12));
    CHECK(std::stod(rows[r][6]) == Approx((y - mu) / mu).epsilon(1e-12));
    CHECK(std::stod(rows[r][7]) == Approx(y - mu).epsilon(1e-12));
    ++i;
  }
  CHECK(i == 5);
  // the mask must hold as many kept rows as the shard
  CHECK_THROWS_WITH(residual_lines(s, *model, theta, {1, 1}), Contains("kept mask has 2 rows kept, the shard 5"));
  const std::vector<double> short_theta{0.4, 0.7};
  CHECK_THROWS_WITH(residual_lines(s, *model, short_theta), Contains("2 coefficients for 3 parameters"));
}

TEST_CASE("residuals: working residuals carry the sign of dmu/deta (gamma/inverse, binomial/probit)",
          "[residuals]") {
  {
    Shard s = small_shard({1.5, 0.8, 2.5, 1.1, 0.6});
    const auto model = make_model("gamma", "inverse");
    const std::vector<double> theta{1.0, 0.3};
    const auto rows = rows_of(residual_lines(s, *model, theta));
    REQUIRE(rows.size() == 5);
    for (std::size_t i = 0; i < 5; ++i) {
      const double eta = 1.0 + 0.3 * s.x[i * 2 + 1], mu = 1 / eta, y = s.y[i];
      const double d = -2 * (std::log(y / mu) - (y - mu) / mu);
      CHECK(rows[i][0] == std::to_string(i + 1));
      CHECK(std::stod(rows[i][4]) == Approx(sgn(y - mu) * std::sqrt(d)).epsilon(1e-12));
      CHECK(std::stod(rows[i][5]) == Approx((y - mu) / mu).epsilon(1e-12));
      CHECK(std::stod(rows[i][6]) == Approx((y - mu) / (-1 / (eta * eta))).epsilon(1e-12));  // dmu/deta < 0
    }
  }
  {
    Shard s = small_shard({1, 0, 1, 0.25, 0});
    s.first_row = 40;
    const auto model = make_model("binomial", "probit");
    const std::vector<double> theta{-0.2, 0.8};
    const auto rows = rows_of(residual_lines(s, *model, theta));
    for (std::size_t i = 0; i < 5; ++i) {
      const double eta = -0.2 + 0.8 * s.x[i * 2 + 1], mu = 0.5 * std::erfc(-eta / std::sqrt(2.0)), y = s.y[i];
      const double dmu = std::exp(-eta * eta / 2) / std::sqrt(2 * M_PI);
      CHECK(rows[i][0] == std::to_string(41 + i));
      CHECK(std::stod(rows[i][5]) == Approx((y - mu) / std::sqrt(mu * (1 - mu))).epsilon(1e-12));
      CHECK(std::stod(rows[i][6]) == Approx((y - mu) / dmu).epsilon(1e-12));
    }
  }
}

TEST_CASE("residuals: multinomial rows hold the observed class and the class probabilities", "[residuals]") {
  Shard s = small_shard({0, 2, 1, 2, 0});
  const MultinomialModel model(3);
  CHECK(residuals_header(model) == "row,y,p0,p1,p2\n");
  const std::vector<double> theta{0.1, 0.5, -0.3, 1.2};  // class 1: (0.1, 0.5), class 2: (-0.3, 1.2)
  const auto rows = rows_of(residual_lines(s, model, theta, {1, 1, 0, 1, 1, 1}));
  REQUIRE(rows.size() == 6);
  CHECK(rows[2] == std::vector<std::string>{"3", "NA", "NA", "NA", "NA"});
  std::size_t i = 0;
  for (std::size_t r = 0; r < 6; ++r) {
    if (r == 2) continue;
    const double x = s.x[i * 2 + 1], e1 = 0.1 + 0.5 * x, e2 = -0.3 + 1.2 * x;
    const double z = 1 + std::exp(e1) + std::exp(e2);
    REQUIRE(rows[r].size() == 5);
    CHECK(std::stod(rows[r][1]) == s.y[i]);
    CHECK(std::stod(rows[r][2]) == Approx(1 / z).epsilon(1e-13));
    CHECK(std::stod(rows[r][3]) == Approx(std::exp(e1) / z).epsilon(1e-13));
    CHECK(std::stod(rows[r][4]) == Approx(std::exp(e2) / z).epsilon(1e-13));
    ++i;
  }
}
