// Fisher-vector products (src/core/fisher_vector.hpp, the matrix-free half of --solver cg)
// against the naive Fisher formed in full (tests/reference.cpp) times a vector: every
// family and link, expected, empirical and the sandwich's middle, with weights, offsets and a Fisher subsample,
// dense rows and CSR rows with 32- and 64-bit column indices, 1 to 3 threads.
#include <catch2/catch.hpp>
#include <cmath>

#include "core/fisher_vector.hpp"
#include "natgrad/core/model.hpp"
#include "natgrad/core/rng.hpp"
#include "reference.hpp"

using namespace natgrad;

namespace {
/// \p s with about 60% of its entries set to 0 (column 0, the intercept, kept).
Shard thinned(Shard s, std::uint64_t seed) {
  for (std::int64_t i = 0; i < s.n_rows; ++i)
    for (std::int64_t j = 1; j < s.n_cols; ++j)
      if (rng::uniform(seed, 1, i, j) < 0.6) s.x[static_cast<std::size_t>(i * s.n_cols + j)] = 0.0;
  return s;
}
/// The CSR copy of \p s with 64-bit column indices (as for more than 2^32 columns).
Shard wide_csr(const Shard& s) {
  Shard w = sparsified(s);
  w.csr.index64.assign(w.csr.index32.begin(), w.csr.index32.end());
  w.csr.index32.clear();
  w.csr.wide = true;
  return w;
}
std::vector<double> product(const std::vector<double>& F, const std::vector<double>& v) {
  const std::size_t p = v.size();
  std::vector<double> out(p, 0.0);
  for (std::size_t r = 0; r < p; ++r)
    for (std::size_t c = 0; c < p; ++c) out[r] += F[r * p + c] * v[c];
  return out;
}
double fisher_weight(const Shard& s, const FisherSample& sample) {
  double w = 0;
  for (std::int64_t i = 0; i < s.n_rows; ++i)
    if (in_fisher_sample(s.first_row + i, sample)) w += s.weight.empty() ? 1.0 : s.weight[static_cast<std::size_t>(i)];
  return w;
}
}  // namespace

TEST_CASE("Fisher-vector products equal the naive Fisher times the vector, dense and CSR rows", "[cg][kernels]") {
  struct Case {
    const char* family;
    const char* link;
    int classes;
  };
  const Case cases[] = {{"binomial", "logit", 0}, {"binomial", "probit", 0}, {"binomial", "cloglog", 0},
                        {"poisson", "log", 0},    {"gaussian", "identity", 0}, {"gamma", "log", 0},
                        {"gamma", "inverse", 0},  {"multinomial", "", 3},     {"multinomial", "", 4}};
  for (const auto& c : cases) {
    const auto model = make_model(c.family, c.link, c.classes);
    const bool multi = std::string(c.family) == "multinomial";
    Shard s = thinned(ref::relabel(ref::random_shard(203, 6, 31, true, !multi), c.family, c.classes, 9), 4);
    s.first_row = 1000;  // the subsample follows global rows
    const std::int64_t p = s.n_cols * model->n_outputs();
    std::vector<double> theta(static_cast<std::size_t>(p)), v(static_cast<std::size_t>(p));
    for (std::int64_t j = 0; j < p; ++j) {
      theta[static_cast<std::size_t>(j)] = 0.3 * rng::normal(5, 7, 0, j);
      v[static_cast<std::size_t>(j)] = rng::normal(6, 7, 0, j);
    }
    if (std::string(c.link) == "inverse") {  // mu = 1/eta > 0
      for (auto& t : theta) t *= 0.01;
      for (auto& o : s.offset) o = 2.0 + 0.1 * o;
    }
    const Shard layouts[] = {s, sparsified(s), wide_csr(s)};
    REQUIRE(layouts[1].sparse);
    REQUIRE(layouts[1].csr.nnz() < s.n_rows * s.n_cols * 6 / 10);
    for (FisherKind kind : {FisherKind::expected, FisherKind::empirical, FisherKind::meat}) {
      for (double fraction : {1.0, 0.5}) {
        if (kind == FisherKind::meat && fraction < 1) continue;  // the sandwich uses every row
        const FisherSample sample{fraction, 3};
        const ref::Sums naive = ref::naive_sums(s, *model, theta, kind, sample);
        std::vector<double> want = product(naive.fisher, v);  // per observation of the sample
        const double W = fisher_weight(s, sample);
        for (double& x : want) x *= W;                         // the operator's sums are unnormalised
        for (int layout = 0; layout < 3; ++layout)
          for (int threads : {1, 2, 3}) {
            CAPTURE(model->name(), to_string(kind), fraction, layout, threads);
            FisherOperator op;
            op.prepare(layouts[layout], *model, theta, kind, sample, threads);
            std::vector<double> got(static_cast<std::size_t>(p), 7.0);  // overwritten
            op.apply(layouts[layout], v, got, threads);
            CHECK(ref::rel_diff(got, want) <= 1e-13);
          }
      }
    }
  }
}

TEST_CASE("Fisher-vector products: kinds without a product are refused, an empty shard gives zeros", "[cg][kernels]") {
  const auto model = make_model("binomial", "logit");
  Shard s = ref::random_shard(0, 3, 1, false, false);
  FisherOperator op;
  CHECK_THROWS_WITH(op.prepare(s, *model, std::vector<double>(3, 0.0), FisherKind::diagonal, {}, 1),
                    Catch::Matchers::Contains("expected or empirical"));
  op.prepare(s, *model, std::vector<double>(3, 0.0), FisherKind::expected, {}, 2);
  std::vector<double> out(3, 1.0);
  op.apply(s, std::vector<double>{1, 2, 3}, out, 2);
  CHECK(out == std::vector<double>(3, 0.0));
}
