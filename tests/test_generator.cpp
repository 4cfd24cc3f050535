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

TEST_CASE("sparse generators: rows depend only on the seed and the row index", "[generator]") {
  for (const char* spec : {"gen:sparse-logit:rows=1001,cols=300,nnz=7,seed=3", "gen:sparse-poisson:rows=777,cols=50,nnz=3"}) {
    const GeneratorSpec g = parse_generator_spec(spec);
    const Shard all = generate_rows(g, 0, g.rows, 2);
    REQUIRE(all.sparse);
    REQUIRE(all.csr.nnz() == g.rows * g.nnz);
    // Each row: nnz distinct, increasing columns in range, values 1 or 2 (counts).
    bool rows_ok = true;
    for (std::int64_t i = 0; i < all.n_rows; ++i)
      for (std::int64_t k = all.csr.row_ptr[i]; k < all.csr.row_ptr[i + 1]; ++k)
        rows_ok = rows_ok && (all.csr.values[k] == 1.0 || all.csr.values[k] == 2.0) && all.csr.index(k) >= 0 && all.csr.index(k) < g.cols &&
                  (k == all.csr.row_ptr[i] || all.csr.index(k) > all.csr.index(k - 1));
    CHECK(rows_ok);
    for (int size : {2, 3, 4}) {
      std::vector<std::int64_t> idx;
      std::vector<double> y, v;
      for (int r = 0; r < size; ++r) {
        const Range rg = partition(g.rows, r, size);
        const Shard part = generate_rows(g, rg.begin, rg.end, r + 1);
        CHECK(part.first_row == rg.begin);
        v.insert(v.end(), part.csr.values.begin(), part.csr.values.end());
        for (std::int64_t k = 0; k < part.csr.nnz(); ++k) idx.push_back(part.csr.index(k));
        y.insert(y.end(), part.y.begin(), part.y.end());
      }
      std::vector<std::int64_t> want;
      for (std::int64_t k = 0; k < all.csr.nnz(); ++k) want.push_back(all.csr.index(k));
      CHECK(idx == want);
      CHECK(v == all.csr.values);
      CHECK(y == all.y);
    }
  }
}

TEST_CASE("gen:sparse-logit: Zipf-like column frequencies, labels from the logistic model", "[generator]") {
  const GeneratorSpec g = parse_generator_spec("gen:sparse-logit:rows=20000,cols=1000,nnz=5,seed=7");
  const Shard s = generate_rows(g, 0, g.rows, 2);
  std::vector<double> freq(static_cast<std::size_t>(g.cols), 0.0);
  for (std::int64_t k = 0; k < s.csr.nnz(); ++k) freq[static_cast<std::size_t>(s.csr.index(k))] += 1;
  // Frequencies fall with the column: per decade of columns, and column 0 against 9.
  auto sum = [&](std::int64_t a, std::int64_t b) {
    double t = 0;
    for (std::int64_t j = a; j < b; ++j) t += freq[static_cast<std::size_t>(j)];
    return t / static_cast<double>(b - a);
  };
  CHECK(freq[0] > freq[9]);
  CHECK(sum(0, 10) > 3 * sum(10, 100));
  CHECK(sum(10, 100) > 3 * sum(100, 1000));
  CHECK(sum(900, 1000) > 0);  // the tail is reached
  // Labels: neither all one class nor separable by the intercept alone; the fraction of
  // ones agrees with the model's mean probability.
  const std::vector<double> beta = true_coefficients(g);
  REQUIRE(beta.size() == 1001);
  double ones = 0, expected = 0;
  for (std::int64_t i = 0; i < s.n_rows; ++i) {
    ones += s.y[i];
    double eta = beta[0];
    for (std::int64_t k = s.csr.row_ptr[i]; k < s.csr.row_ptr[i + 1]; ++k) eta += s.csr.values[k] * beta[s.csr.index(k) + 1];
    expected += 1 / (1 + std::exp(-eta));
  }
  CHECK(ones > 0.2 * s.n_rows);
  CHECK(ones < 0.8 * s.n_rows);
  CHECK(std::abs(ones - expected) < 4 * std::sqrt(0.25 * s.n_rows));
  // Poisson counts: mean close to the model's.
  const GeneratorSpec gp = parse_generator_spec("gen:sparse-poisson:rows=20000,cols=100,nnz=4,seed=2");
  const Shard sp = generate_rows(gp, 0, gp.rows, 1);
  const std::vector<double> bp = true_coefficients(gp);
  double total = 0, mean = 0;
  for (std::int64_t i = 0; i < sp.n_rows; ++i) {
    total += sp.y[i];
    double eta = bp[0];
    for (std::int64_t k = sp.csr.row_ptr[i]; k < sp.csr.row_ptr[i + 1]; ++k) eta += sp.csr.values[k] * bp[sp.csr.index(k) + 1];
    mean += std::exp(eta);
  }
  CHECK(std::abs(total - mean) < 5 * std::sqrt(mean));
  // Spec errors.
  CHECK_THROWS_WITH(parse_generator_spec("gen:sparse-logit:cols=5,nnz=6"), Catch::Contains("nnz must be between 1 and cols"));
  CHECK_THROWS_WITH(parse_generator_spec("gen:sparse-logit:cond=2"), Catch::Contains("keys: rows, cols, nnz, seed, zipf"));
}
