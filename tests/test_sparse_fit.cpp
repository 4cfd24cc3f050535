// fit_glm and infer on CSR shards, at the current rank count: the same estimates,
// standard errors and deviances as on the dense shard holding the same numbers,
// linearly dependent columns dropped from the CSR, and inference past the P x P limit.
#include <catch2/catch.hpp>
#include <cmath>
#include <string>

#include "natgrad/core/glm_fit.hpp"
#include "natgrad/core/inference.hpp"
#include "natgrad/core/rng.hpp"
#include "natgrad/core/solver.hpp"
#include "natgrad/io/generator.hpp"
#include "support/test_support.hpp"

using namespace natgrad;
using Catch::Matchers::Contains;

namespace {

double rel(double a, double b) { return std::abs(a - b) / std::max(std::abs(b), 1e-300); }

/// This rank's rows of a generated dataset with about 60% of the non-intercept entries
/// zeroed (by global row and column: the same data at any rank count), labels of
/// \p family drawn from the row's first feature, weights and offsets when asked.
Shard sparse_rows(const std::string& family, int classes, bool extras, const Communicator& comm) {
  Shard s = test::my_rows(parse_generator_spec("gen:logit:rows=1500,cols=8,seed=21"), comm);
  const std::int64_t d = s.n_cols;
  for (std::int64_t i = 0; i < s.n_rows; ++i) {
    const std::int64_t g = s.first_row + i;
    for (std::int64_t j = 1; j < d; ++j)
      if (rng::uniform(9, 1, g, j) < 0.6) s.x[i * d + j] = 0.0;
    const double u = rng::uniform(9, 2, g, 0), e = 0.4 * s.x[i * d + 1] - 0.3 * s.x[i * d + 2];
    if (family == "poisson") s.y[i] = std::floor(-std::log(u) * std::exp(e) * 2);
    else if (family == "gaussian") s.y[i] = e + rng::normal(9, 3, g, 0);
    else if (family == "gamma") s.y[i] = std::exp(e) * (-std::log(u) + 0.05);
    else if (family == "multinomial") s.y[i] = std::floor(u * classes);
    if (extras) {
      s.weight.push_back(0.5 + rng::uniform(9, 4, g, 0));
      s.offset.push_back(0.1 * rng::normal(9, 5, g, 0));
    }
  }
  return s;
}

void check_same_fit(const GlmFit& sp, const GlmFit& de, const Communicator& comm) {
  REQUIRE(sp.fit.converged());
  REQUIRE(de.fit.converged());
  CHECK(sp.dropped == de.dropped);
  REQUIRE(sp.fit.theta.size() == de.fit.theta.size());
  double big = 0;
  for (double v : de.fit.theta) big = std::max(big, std::abs(v));
  for (std::size_t j = 0; j < de.fit.theta.size(); ++j) CHECK(std::abs(sp.fit.theta[j] - de.fit.theta[j]) <= 1e-8 * big);
  REQUIRE(sp.has_inference == de.has_inference);
  if (comm.is_root() && de.has_inference) {
    REQUIRE(sp.inference.std_errors.size() == de.inference.std_errors.size());
    for (std::size_t j = 0; j < de.inference.std_errors.size(); ++j) {
      CHECK(rel(sp.inference.std_errors[j], de.inference.std_errors[j]) <= 1e-8);
      CHECK(rel(sp.inference.robust_std_errors[j], de.inference.robust_std_errors[j]) <= 1e-8);
    }
    CHECK(rel(sp.inference.deviance, de.inference.deviance) <= 1e-10);
    CHECK(rel(sp.inference.null_deviance, de.inference.null_deviance) <= 1e-10);
    CHECK(rel(sp.inference.aic, de.inference.aic) <= 1e-10);
  }
}

}  // namespace

TEST_CASE("fit_glm on a CSR shard equals the fit on the dense shard", "[sparse]") {
  const Communicator comm = Communicator::world();
  struct Case {
    const char* family;
    const char* link;
    int classes;
    bool extras;
  };
  for (const Case c : {Case{"binomial", "logit", 0, false}, Case{"binomial", "probit", 0, true},
                       Case{"poisson", "log", 0, true}, Case{"gaussian", "identity", 0, false},
                       Case{"gamma", "log", 0, true}, Case{"multinomial", "", 3, false}}) {
    for (int threads : {1, 2}) {
      CAPTURE(c.family, c.link, c.extras, threads);
      Shard dense = sparse_rows(c.family, c.classes, c.extras, comm);
      Shard sp = sparsified(dense);
      REQUIRE(sp.sparse);
      GlmOptions o;
      o.family = family_from_string(c.family);
      o.link = link_from_string(c.link);
      o.fit.tol = 1e-10;
      o.fit.max_iter = 100;
      o.fit.threads = threads;
      const GlmFit de = fit_glm(dense, o, comm);
      const GlmFit sf = fit_glm(sp, o, comm);
      check_same_fit(sf, de, comm);
    }
  }
}

TEST_CASE("fit_glm on a CSR shard drops a linearly dependent column from the CSR", "[sparse]") {
  const Communicator comm = Communicator::world();
  const Shard base = sparse_rows("binomial", 0, true, comm);
  // A column in the middle: 2 x1 - x3 (nonzero where either is), named "dep".
  Shard dense = base;
  const std::int64_t d = base.n_cols;
  dense.n_cols = d + 1;
  dense.x.assign(static_cast<std::size_t>(base.n_rows * (d + 1)), 0.0);
  for (std::int64_t i = 0; i < base.n_rows; ++i) {
    const double* r = base.row(i);
    for (std::int64_t j = 0, o = 0; j < d; ++j) {
      dense.x[i * (d + 1) + o++] = r[j];
      if (j == 4) dense.x[i * (d + 1) + o++] = 2 * r[1] - r[3];
    }
  }
  dense.names.insert(dense.names.begin() + 5, "dep");
  Shard sp = sparsified(dense);
  GlmOptions o;
  o.fit.tol = 1e-10;
  CHECK_THROWS_WITH(fit_glm(sp, o, comm), Contains("column dep is linearly dependent on earlier columns"));
  o.drop_collinear = true;
  const GlmFit de = fit_glm(dense, o, comm);
  const GlmFit sf = fit_glm(sp, o, comm);
  CHECK(sf.dropped == std::vector<std::string>{"dep"});
  CHECK(sp.n_cols == d);
  CHECK(sp.csr.nnz() == sparsified(base).csr.nnz());  // the column's entries are gone
  check_same_fit(sf, de, comm);
  // ... and the CSR left is the one without the column: the same fit again.
  Shard again = sparsified(base);
  o.drop_collinear = false;
  const GlmFit plain = fit_glm(again, o, comm);
  for (std::size_t j = 0; j < plain.fit.theta.size(); ++j)
    CHECK(std::abs(sf.fit.theta[j] - plain.fit.theta[j]) <= 1e-9 * (1 + std::abs(plain.fit.theta[j])));
}

TEST_CASE("infer past the P x P limit: no standard errors, a note, the deviance and AIC still computed",
          "[sparse]") {
  const Communicator comm = Communicator::world();
  // 20001 columns (intercept + 20000 one-hot levels), 3 nonzeros per row.
  const std::int64_t n_global = 400, d = 20001;
  Shard s;
  s.n_cols = d;
  s.n_global = n_global;
  s.sparse = true;
  const std::int64_t per = (n_global + comm.size() - 1) / comm.size();
  s.first_row = std::min(n_global, comm.rank() * per);
  s.n_rows = std::min(n_global, s.first_row + per) - s.first_row;
  s.csr.row_ptr.push_back(0);
  for (std::int64_t i = 0; i < s.n_rows; ++i) {
    const std::int64_t g = s.first_row + i;
    const auto a = 1 + static_cast<std::int64_t>(rng::uniform(4, 1, g, 0) * 10000);
    const auto b = 10001 + static_cast<std::int64_t>(rng::uniform(4, 2, g, 0) * 10000);
    for (std::int64_t j : {std::int64_t{0}, a, b}) {
      s.csr.index32.push_back(static_cast<std::uint32_t>(j));
      s.csr.values.push_back(j == 0 ? 1.0 : 0.5 + rng::uniform(4, 3, g, j));
    }
    s.csr.row_ptr.push_back(static_cast<std::int64_t>(s.csr.values.size()));
    s.y.push_back(rng::uniform(4, 4, g, 0) < 0.4 ? 1.0 : 0.0);
  }
  s.names.push_back("(Intercept)");
  for (std::int64_t j = 1; j < d; ++j) s.names.push_back("x" + std::to_string(j));
  const auto model = make_model("binomial", "logit");
  std::vector<double> theta(static_cast<std::size_t>(d));
  for (std::int64_t j = 0; j < d; ++j) theta[static_cast<std::size_t>(j)] = 0.2 * rng::normal(4, 5, 0, j);
  InferenceOptions io;
  io.threads = 2;
  const Inference r = infer(s, *model, theta, comm, io);
  // The reference: deviance and log-likelihood row by row from the CSR.
  double sums[3] = {0, 0, 0};
  for (std::int64_t i = 0; i < s.n_rows; ++i) {
    double eta = 0;
    for (std::int64_t k = s.csr.row_ptr[i]; k < s.csr.row_ptr[i + 1]; ++k)
      eta += s.csr.values[k] * theta[s.csr.index32[k]];
    const double mu = 1 / (1 + std::exp(-eta)), y = s.y[i];
    sums[0] += -2 * (y * std::log(mu) + (1 - y) * std::log(1 - mu));
    sums[1] += y * std::log(mu) + (1 - y) * std::log(1 - mu);
    sums[2] += 1;
  }
  comm.allreduce_sum(sums, 3);
  if (comm.is_root()) {
    CHECK(r.std_errors.empty());
    CHECK(r.robust_std_errors.empty());
    CHECK(r.covariance.empty());
    CHECK_THAT(r.note, Contains("not formed for P = 20001 parameters (above 4096)") && Contains("--se-columns"));
    CHECK(rel(r.deviance, sums[0]) <= 1e-12);
    CHECK(rel(r.log_likelihood, sums[1]) <= 1e-12);
    CHECK(r.nobs == sums[2]);
    CHECK(rel(r.aic, -2 * sums[1] + 2.0 * d) <= 1e-12);
  }
}

TEST_CASE("CSR shard: columns beyond the double range are seen through exact scaling, as on the dense shard",
          "[sparse]") {
  const Communicator comm = Communicator::world();
  Shard base = sparse_rows("binomial", 0, false, comm);
  const std::int64_t d = base.n_cols;
  GlmOptions o;
  const auto model = make_model(o.family, o.link, 0);
  for (const double s : {1e-300, 1e200}) {
    CAPTURE(s);
    Shard dense = base;
    for (std::int64_t i = 0; i < dense.n_rows; ++i) dense.x[i * d + 2] *= s;
    const Shard sp = sparsified(dense);
    const StartSystem a = start_system(dense, *model, o.fit, comm), b = start_system(sp, *model, o.fit, comm);
    CHECK(dependent_columns(b, 1e-11, comm).empty());
    CHECK(b.scale == a.scale);
    REQUIRE(b.scale.size() == static_cast<std::size_t>(d));
    CHECK(b.scale[2] != 1.0);
    if (comm.is_root()) {
      REQUIRE(b.gram.size() == a.gram.size());
      double worst = 0, big = 0;
      for (std::size_t k = 0; k < a.gram.size(); ++k) {
        worst = std::max(worst, std::abs(b.gram[k] - a.gram[k]));
        big = std::max(big, std::abs(a.gram[k]));
      }
      CHECK(worst <= 1e-12 * big);
    }
    Shard fit_sp = sp;
    CHECK_THAT(test::error_of([&] { fit_glm(fit_sp, o, comm); }), Contains("column(s) x2: values so small or so large"));
    // A dependent column at that scale: x5 replaced by s (x1 - 2 x3), found in the CSR too.
    Shard dep = dense;
    for (std::int64_t i = 0; i < dep.n_rows; ++i) dep.x[i * d + 5] = s * (base.x[i * d + 1] - 2 * base.x[i * d + 3]);
    const StartSystem dsys = start_system(sparsified(dep), *model, o.fit, comm);
    CHECK(dependent_columns(dsys, 1e-11, comm) == std::vector<std::int64_t>{5});
  }
}
