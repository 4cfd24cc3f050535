#include <catch2/catch.hpp>
#include <cmath>

#include "natgrad/core/error.hpp"
#include "natgrad/io/generator.hpp"
#include "natgrad/core/partition.hpp"

using namespace natgrad;

TEST_CASE("partition covers every item once, sizes differ by at most one", "[generator]") {
  for (std::int64_t n : {0, 1, 3, 10, 1001})
    for (int size = 1; size <= 7; ++size) {
      std::int64_t next = 0, lo = n, hi = 0;
      for (int r = 0; r < size; ++r) {
        const Range g = partition(n, r, size);
        CHECK(g.begin == next);
        next = g.end;
        lo = std::min(lo, g.size());
        hi = std::max(hi, g.size());
      }
      CHECK(next == n);
      CHECK(hi - lo <= 1);
    }
}

TEST_CASE("generated rows depend only on the seed and the row index", "[generator]") {
  for (const char* spec : {"gen:logit:rows=1001,cols=7,seed=5,cond=1e4,rho=0.3", "gen:mixture:rows=333"}) {
    const GeneratorSpec g = parse_generator_spec(spec);
    const Shard all = generate_rows(g, 0, g.rows, 2);
    for (int size : {2, 3, 4}) {
      std::vector<double> x, y;
      for (int r = 0; r < size; ++r) {
        const Range rg = partition(g.rows, r, size);
        const Shard part = generate_rows(g, rg.begin, rg.end, 1);
        CHECK(part.first_row == rg.begin);
        x.insert(x.end(), part.x.begin(), part.x.end());
        y.insert(y.end(), part.y.begin(), part.y.end());
      }
      CHECK(x == all.x);
      CHECK(y == all.y);
    }
  }
}

TEST_CASE("the logit generator's scales span cond and labels follow the model", "[generator]") {
  const GeneratorSpec g = parse_generator_spec("gen:logit:rows=20000,cols=5,seed=2,cond=1000,rho=0");
  const Shard s = generate_rows(g, 0, g.rows, 2);
  std::vector<double> sd(5, 0.0);
  for (std::int64_t i = 0; i < s.n_rows; ++i)
    for (int j = 0; j < 5; ++j) sd[j] += s.row(i)[j] * s.row(i)[j] / double(s.n_rows);
  CHECK(std::sqrt(sd[0]) == Approx(1.0).epsilon(0.05));
  CHECK(std::sqrt(sd[4]) == Approx(1e-3).epsilon(0.05));
  const auto beta = true_coefficients(g);
  REQUIRE(beta.size() == 6);
  double ones = 0;
  for (double v : s.y) ones += v;
  CHECK(ones > 0.2 * s.n_rows);
  CHECK(ones < 0.8 * s.n_rows);
}

TEST_CASE("the mixture generator matches the seed's two Gaussians", "[generator]") {
  const GeneratorSpec g = parse_generator_spec("gen:mixture:rows=40000");
  const Shard s = generate_rows(g, 0, g.rows, 1);
  double m1[2] = {0, 0}, n1 = 0, m0[2] = {0, 0}, n0 = 0;
  for (std::int64_t i = 0; i < s.n_rows; ++i) {
    double* m = s.y[i] > 0 ? m1 : m0;
    (s.y[i] > 0 ? n1 : n0) += 1;
    m[0] += s.row(i)[0];
    m[1] += s.row(i)[1];
  }
  CHECK(m1[0] / n1 == Approx(1.0).margin(0.03));
  CHECK(m1[1] / n1 == Approx(1.0).margin(0.03));
  CHECK(m0[0] / n0 == Approx(-1.0).margin(0.03));
  CHECK(n1 / (n0 + n1) == Approx(0.5).margin(0.02));
}

TEST_CASE("bad generator specs are rejected with a clear message", "[generator]") {
  CHECK_THROWS_WITH(parse_generator_spec("gen:foo"), Catch::Contains("unknown kind 'foo'"));
  CHECK_THROWS_WITH(parse_generator_spec("gen:logit:rows=abc"), Catch::Contains("rows=abc"));
  CHECK_THROWS_WITH(parse_generator_spec("gen:logit:colour=3"), Catch::Contains("unknown key 'colour'"));
  CHECK_THROWS_WITH(parse_generator_spec("gen:logit:rows=0"), Catch::Contains("rows must be >= 1"));
  CHECK_THROWS_WITH(parse_generator_spec("gen:mixture:cond=3"), Catch::Contains("unknown key 'cond'"));
  CHECK_THROWS_WITH(parse_generator_spec("gen:logit:rho=1"), Catch::Contains("rho"));
  CHECK(parse_generator_spec("gen:logit:rows=1e6").rows == 1000000);
}
