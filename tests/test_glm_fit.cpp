// fit_glm (natgrad/core/glm_fit.hpp): the whole GLM pipeline as one library call, at the
// current rank count: R's answers on real data, linearly dependent columns refused or
// dropped (the dropped fit equals the fit without the column), a warm start through the
// prepare hook, separation detected; with --l2, one-hot factors keeping every level fitted
// (only unpenalised columns must be independent).
#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "natgrad/core/error.hpp"
#include "natgrad/core/glm_fit.hpp"
#include "natgrad/core/rng.hpp"
#include "natgrad/io/generator.hpp"
#include "natgrad/io/reader.hpp"
#include "core/kernels.hpp"
#include "support/test_support.hpp"

using namespace natgrad;
using Catch::Matchers::Contains;

namespace {

double rel(double a, double b) { return std::abs(a - b) / std::max(std::abs(b), 1e-300); }

Shard my_rows(const std::string& spec, const Communicator& c) { return test::my_rows(parse_generator_spec(spec), c); }

/// \p s with column \p from appended again, times \p scale, named \p name.
Shard with_copy(const Shard& s, std::int64_t from, double scale, const std::string& name) {
  Shard t = s;
  const std::int64_t d = s.n_cols;
  t.n_cols = d + 1;
  t.x.assign(static_cast<std::size_t>(s.n_rows * (d + 1)), 0.0);
  for (std::int64_t i = 0; i < s.n_rows; ++i) {
    for (std::int64_t j = 0; j < d; ++j) t.x[i * (d + 1) + j] = s.x[i * d + j];
    t.x[i * (d + 1) + d] = scale * s.x[i * d + from];
  }
  t.names.push_back(name);
  return t;
}

}  // namespace

TEST_CASE("fit_glm gives R's coefficients, standard errors and deviances on real data", "[glm_fit]") {
  const Communicator comm = Communicator::world();
  for (const char* name : {"binomial_logit_infert", "binomial_probit_infert", "poisson_log_seatbelts_offset",
                           "gaussian_identity_mtcars", "gamma_log_trees", "binomial_logit_esoph_weighted",
                           "multinomial_wine_scaled"}) {
    INFO(name);
    std::ifstream in(std::string(NATGRAD_FIXTURES) + "/glm/" + name + ".json");
    REQUIRE(in);
    const auto ref = nlohmann::json::parse(in);
    ReadOptions read;
    read.path = std::string(NATGRAD_FIXTURES) + "/glm/" + name + ".csv";
    read.label_column = "y";
    if (!ref["weight_column"].is_null()) read.weight_column = ref["weight_column"];
    if (!ref["offset_column"].is_null()) read.offset_column = ref["offset_column"];
    read.intercept = ref["intercept"];
    Shard shard = load_shard(read, comm);
    GlmOptions o;
    o.family = family_from_string(ref["family"]);
    o.link = link_from_string(ref["link"]);
    if (ref.contains("n_classes")) o.classes = ref["n_classes"];
    o.fit.tol = 1e-10;
    o.fit.max_iter = 200;
    const GlmFit g = fit_glm(shard, o, comm);
    REQUIRE(g.fit.converged());
    REQUIRE(g.has_inference);
    CHECK(g.intercept == ref["intercept"].get<bool>());
    CHECK(g.dropped.empty());
    const auto coef = ref["coefficients"].get<std::vector<double>>();
    REQUIRE(g.fit.theta.size() == coef.size());
    for (std::size_t j = 0; j < coef.size(); ++j) CHECK(rel(g.fit.theta[j], coef[j]) <= 1e-6);
    if (comm.is_root()) {  // inference lives on root
      const auto se = ref["std_errors"].get<std::vector<double>>();
      for (std::size_t j = 0; j < se.size(); ++j) CHECK(rel(g.inference.std_errors[j], se[j]) <= 1e-6);
      CHECK(rel(g.inference.deviance, ref["deviance"]) <= 1e-8);
      CHECK(rel(g.inference.aic, ref["aic"]) <= 1e-8);
    }
  }
}

TEST_CASE("fit_glm with a float32 Fisher reaches the float64 answer, and its standard errors", "[glm_fit]") {
  // --fisher-precision float32 changes only the steps' preconditioner: the estimate is
  // the same 1e-8 maximum-likelihood answer and the standard errors come from a float64
  // Fisher. Ill-conditioned columns (cond 1e3), through the packed float kernels and
  // through the BLAS SSYRK route (detail::set_packed_max_p(0)).
  const Communicator comm = Communicator::world();
  Shard shard = my_rows("gen:logit:rows=20000,cols=40,seed=5,cond=1000", comm);
  for (const std::int64_t limit : {std::int64_t{-1}, std::int64_t{0}}) {
    const std::int64_t was = detail::set_packed_max_p(limit);
    auto fit = [&](FisherPrecision pr) {
      GlmOptions o;
      o.family = family_from_string("binomial");
      o.link = link_from_string("logit");
      o.fit.threads = 2;
      o.fit.fisher_precision = pr;
      return fit_glm(shard, o, comm);
    };
    const GlmFit f64 = fit(FisherPrecision::float64), f32 = fit(FisherPrecision::float32);
    detail::set_packed_max_p(was);
    INFO("packed limit " << limit << ": iterations float64 " << f64.fit.iterations << ", float32 " << f32.fit.iterations);
    REQUIRE(f64.fit.converged());
    REQUIRE(f32.fit.converged());
    CHECK(f32.fit.iterations <= f64.fit.iterations + 2);
    double worst = 0, scale = 0;
    for (std::size_t j = 0; j < f64.fit.theta.size(); ++j) {
      worst = std::max(worst, std::abs(f32.fit.theta[j] - f64.fit.theta[j]));
      scale = std::max(scale, std::abs(f64.fit.theta[j]));
    }
    CHECK(worst <= 1e-8 * scale);
    if (comm.is_root()) {
      REQUIRE(f64.has_inference);
      REQUIRE(f32.has_inference);
      for (std::size_t j = 0; j < f64.inference.std_errors.size(); ++j)
        CHECK(rel(f32.inference.std_errors[j], f64.inference.std_errors[j]) <= 1e-7);
    }
  }
}

TEST_CASE("fit_glm with a float32 Fisher falls back to float64 for a column float cannot square", "[glm_fit]") {
  // A column of about 1e-25 (squares 1e-50, below float's range): the float Fisher would
  // have a zero row. The fit says so, sums the Fisher in float64 and gives the float64
  // answer; its coefficient is found (about 1e25 times the unscaled one).
  const Communicator comm = Communicator::world();
  Shard shard = my_rows("gen:logit:rows=4000,cols=6,seed=8", comm);
  for (std::int64_t i = 0; i < shard.n_rows; ++i) shard.x[static_cast<std::size_t>(i * shard.n_cols + 2)] *= 1e-25;
  auto fit = [&](FisherPrecision pr, std::string& log) {
    Shard copy = shard;
    GlmOptions o;
    o.family = family_from_string("binomial");
    o.link = link_from_string("logit");
    o.fit.fisher_precision = pr;
    GlmHooks hooks;
    hooks.observer.log = [&](const std::string& m) { log += m + "\n"; };
    return fit_glm(copy, o, comm, hooks);
  };
  std::string log64, log32;
  const GlmFit f64 = fit(FisherPrecision::float64, log64), f32 = fit(FisherPrecision::float32, log32);
  REQUIRE(f64.fit.converged());
  REQUIRE(f32.fit.converged());
  CHECK(f32.fit_options.fisher_precision == FisherPrecision::float64);
  if (comm.is_root()) CHECK_THAT(log32, Contains("--fisher-precision float32: column " + shard.names[2] + " has"));
  CHECK(log64.find("--fisher-precision") == std::string::npos);
  for (std::size_t j = 0; j < f64.fit.theta.size(); ++j) CHECK(rel(f32.fit.theta[j], f64.fit.theta[j]) <= 1e-12);
}

TEST_CASE("fit_glm with a float32 Fisher finds the same dependent columns as float64", "[glm_fit][collinear]") {
  // The float32 first look at the Gram hands any column within 1e-4 of dependent to the
  // exact float64 check: an exact copy (times 3) and a near copy (relative noise 1e-3: squared residual about 1e-6, kept) are judged
  // as with float64 (dropped / kept), and the fit reaches the same optimum.
  const Communicator comm = Communicator::world();
  const Shard base = my_rows("gen:logit:rows=3000,cols=5,seed=9", comm);
  Shard near = with_copy(base, 1, 1.0, "near");
  for (std::int64_t i = 0; i < near.n_rows; ++i)
    near.x[static_cast<std::size_t>(i * near.n_cols + near.n_cols - 1)] *= 1 + 1e-3 * rng::normal(4, 4, 0, near.first_row + i);
  for (const auto& [shard, dropped] : {std::make_pair(with_copy(base, 2, 3.0, "copy"), std::size_t{1}),
                                       std::make_pair(near, std::size_t{0})}) {
    auto fit = [&](FisherPrecision pr) {
      Shard s = shard;
      GlmOptions o;
      o.family = family_from_string("binomial");
      o.link = link_from_string("logit");
      o.drop_collinear = true;
      o.fit.fisher_precision = pr;
      return fit_glm(s, o, comm);
    };
    const GlmFit f64 = fit(FisherPrecision::float64), f32 = fit(FisherPrecision::float32);
    INFO("float64 dropped " << (f64.dropped.empty() ? std::string("none") : f64.dropped[0]));
    CHECK(f64.dropped.size() == dropped);
    CHECK(f32.dropped == f64.dropped);
    REQUIRE(f32.fit.theta.size() == f64.fit.theta.size());
    REQUIRE(f64.fit.converged());
    REQUIRE(f32.fit.converged());
    // The same optimum: equal losses (the near copy leaves a direction of curvature 1e-6,
    // along which both stop within what --tol's decrement allows, about 1e-5).
    CHECK(std::abs(f32.fit.loss - f64.fit.loss) <= 1e-13 * f64.fit.loss);
  }
}

TEST_CASE("fit_glm refuses or drops a linearly dependent column, and the dropped fit is the fit without it",
          "[glm_fit]") {
  const Communicator comm = Communicator::world();
  const Shard base = my_rows("gen:logit:rows=2000,cols=4,seed=3", comm);
  Shard dup = with_copy(base, 2, -3.0, "x2_again");
  GlmOptions o;
  o.fit.tol = 1e-10;
  CHECK_THROWS_WITH(fit_glm(dup, o, comm), Contains("column x2_again is linearly dependent on earlier columns"));
  o.drop_collinear = true;
  const GlmFit dropped = fit_glm(dup, o, comm);
  CHECK(dropped.dropped == std::vector<std::string>{"x2_again"});
  CHECK(dropped.columns == base.names);
  CHECK(dropped.all_columns.size() == base.names.size() + 1);
  CHECK(dup.n_cols == base.n_cols);  // dropped in place
  Shard plain = base;
  o.drop_collinear = false;
  const GlmFit ref = fit_glm(plain, o, comm);
  REQUIRE(dropped.fit.theta.size() == ref.fit.theta.size());
  for (std::size_t j = 0; j < ref.fit.theta.size(); ++j) CHECK(rel(dropped.fit.theta[j], ref.fit.theta[j]) <= 1e-10);
}

TEST_CASE("fit_glm: the prepare hook's warm start at the estimate needs no step", "[glm_fit]") {
  const Communicator comm = Communicator::world();
  Shard s = my_rows("gen:logit:rows=3000,cols=5,seed=11", comm);
  GlmOptions o;
  o.fit.tol = 1e-9;
  const GlmFit cold = fit_glm(s, o, comm);
  REQUIRE(cold.fit.converged());
  REQUIRE(cold.fit.iterations >= 2);
  GlmHooks hooks;
  int calls = 0;
  hooks.prepare = [&](const Shard& shard, const Model& model, FitOptions& fo) {
    ++calls;
    CHECK(shard.n_cols * model.n_outputs() == static_cast<std::int64_t>(cold.fit.theta.size()));
    fo.theta0 = cold.fit.theta;
  };
  const GlmFit warm = fit_glm(s, o, comm, hooks);
  CHECK(calls == 1);
  CHECK(warm.fit.converged());
  CHECK(warm.fit.iterations == 0);
  for (std::size_t j = 0; j < cold.fit.theta.size(); ++j) CHECK(warm.fit.theta[j] == cold.fit.theta[j]);
}

TEST_CASE("fit_glm reports separation and skips inference", "[glm_fit]") {
  const Communicator comm = Communicator::world();
  Shard s = my_rows("gen:logit:rows=400,cols=2,seed=5", comm);
  for (std::int64_t i = 0; i < s.n_rows; ++i) s.y[i] = s.x[i * s.n_cols + 1] > 0 ? 1.0 : 0.0;  // y = [x1 > 0]
  GlmOptions o;
  const GlmFit g = fit_glm(s, o, comm);
  CHECK(g.fit.reason == Reason::separation);
  CHECK_FALSE(g.has_inference);
}

namespace {

/// This rank's rows of a logistic design with two one-hot factors that keep every level
/// (a: 4 levels, b: 3) after an intercept and a continuous x: (Intercept), x, a1..a4, b1..b3.
/// The intercept equals a1 + .. + a4 and b1 + b2 + b3, so the design has rank 8 of 9.
/// Drawn by global row (the same data at any rank count).
Shard one_hot_rows(const Communicator& comm) {
  const Shard base = my_rows("gen:logit:rows=1200,cols=1,seed=7", comm);
  Shard s;
  s.n_rows = base.n_rows;
  s.first_row = base.first_row;
  s.n_global = base.n_global;
  s.n_cols = 9;
  s.names = {"(Intercept)", "x", "a1", "a2", "a3", "a4", "b1", "b2", "b3"};
  s.source = "one-hot rows";
  s.x.assign(static_cast<std::size_t>(s.n_rows * s.n_cols), 0.0);
  s.y.resize(static_cast<std::size_t>(s.n_rows));
  const double effect_a[4] = {-0.8, 0.1, 0.4, 1.2}, effect_b[3] = {0.5, -0.6, 0.0};
  for (std::int64_t i = 0; i < s.n_rows; ++i) {
    const std::int64_t g = s.first_row + i;
    const int a = static_cast<int>(4 * rng::uniform(13, 1, g, 0)), b = static_cast<int>(3 * rng::uniform(13, 2, g, 0));
    const double x = rng::normal(13, 3, g, 0);
    double* r = &s.x[static_cast<std::size_t>(i * s.n_cols)];
    r[0] = 1;
    r[1] = x;
    r[2 + a] = 1;
    r[6 + b] = 1;
    const double eta = 0.3 + 0.7 * x + effect_a[a] + effect_b[b];
    s.y[static_cast<std::size_t>(i)] = rng::uniform(13, 4, g, 0) < 1 / (1 + std::exp(-eta)) ? 1.0 : 0.0;
  }
  return s;
}

/// max_j |d/d theta_j (sum_i nll_i + l2/2 sum_{penalised j} theta_j^2)| / n, computed
/// naively (binomial logit, or gaussian identity when \p gaussian: sum_i (mu_i - y_i) x_ij)
/// over every rank's rows.
double naive_gradient(const Shard& s, const std::vector<double>& theta, double l2, bool penalize_intercept,
                      const Communicator& comm, bool gaussian = false) {
  std::vector<double> g(static_cast<std::size_t>(s.n_cols), 0.0);
  for (std::int64_t i = 0; i < s.n_rows; ++i) {
    const double eta = s.dot(i, theta.data()), mu = gaussian ? eta : 1 / (1 + std::exp(-eta));
    s.for_each_nonzero(i, [&](std::int64_t j, double v) { g[static_cast<std::size_t>(j)] += (mu - s.y[i]) * v; });
  }
  comm.allreduce_sum(g.data(), g.size());
  double worst = 0;
  for (std::size_t j = 0; j < g.size(); ++j) {
    if (j > 0 || penalize_intercept) g[j] += l2 * theta[j];
    worst = std::max(worst, std::abs(g[j]));
  }
  return worst / static_cast<double>(s.n_global);
}

}  // namespace

TEST_CASE("fit_glm with l2 > 0 fits one-hot factors keeping every level", "[glm_fit][collinear]") {
  const Communicator comm = Communicator::world();
  const Shard design = one_hot_rows(comm);
  GlmOptions o;
  o.fit.tol = 1e-12;
  o.fit.max_iter = 200;
  {
    Shard s = design;
    CHECK_THROWS_WITH(fit_glm(s, o, comm), Contains("columns a4, b3 are linearly dependent on earlier columns"));
  }
  o.fit.l2 = 1;
  for (bool penalize_intercept : {false, true}) {
    INFO("penalize_intercept " << penalize_intercept);
    o.penalize_intercept = penalize_intercept;
    o.drop_collinear = false;
    Shard s = design;
    o.fit.solver = LinearSolver::cholesky;
    const GlmFit chol = fit_glm(s, o, comm);
    REQUIRE(chol.fit.converged());
    CHECK(chol.dropped.empty());
    CHECK(chol.columns == design.names);
    CHECK(naive_gradient(design, chol.fit.theta, 1.0, penalize_intercept, comm) <= 1e-10);
    // The penalised minimiser splits the intercept among the levels: the levels'
    // coefficients of each factor sum to 0 (d/d a_k and d/d intercept agree on the rows
    // of each level, so the penalty's gradients do too: l2 sum_k a_k = the intercept's
    // penalty gradient, 0 when it is unpenalised, l2 * intercept when it is).
    const auto& t = chol.fit.theta;
    const double sum_a = t[2] + t[3] + t[4] + t[5], sum_b = t[6] + t[7] + t[8];
    CHECK(std::abs(sum_a - (penalize_intercept ? t[0] : 0.0)) <= 1e-8);
    CHECK(std::abs(sum_b - (penalize_intercept ? t[0] : 0.0)) <= 1e-8);
    REQUIRE(chol.has_inference);
    if (comm.is_root()) {
      REQUIRE(chol.inference.std_errors.size() == design.names.size());
      for (double se : chol.inference.std_errors) CHECK((std::isfinite(se) && se > 0));
    }
    // The same estimate by the matrix-free solver and from the CSR shard.
    Shard sp = sparsified(design);
    o.fit.solver = LinearSolver::cg;
    const GlmFit cg = fit_glm(sp, o, comm);
    REQUIRE(cg.fit.converged());
    REQUIRE(cg.fit.theta.size() == t.size());
    for (std::size_t j = 0; j < t.size(); ++j) CHECK(std::abs(cg.fit.theta[j] - t[j]) <= 1e-6 * (1 + std::abs(t[j])));
    // --drop-collinear drops nothing: the dependence is among penalised columns only.
    o.drop_collinear = true;
    o.fit.solver = LinearSolver::cholesky;
    Shard d = design;
    const GlmFit kept = fit_glm(d, o, comm);
    CHECK(kept.dropped.empty());
    CHECK(d.n_cols == design.n_cols);
  }
}

TEST_CASE("fit_glm with l2 > 0 still refuses unpenalised columns dependent among themselves", "[glm_fit][collinear]") {
  const Communicator comm = Communicator::world();
  // No intercept column: the caller's mask leaves x1 and its double x1_twice unpenalised.
  const Shard base = test::my_rows(parse_generator_spec("gen:logit:rows=800,cols=3,seed=5"), comm, /*intercept=*/false);
  Shard s = with_copy(base, 0, 2.0, "x1_twice");
  GlmOptions o;
  o.fit.l2 = 1;
  o.fit.penalized = {0, 1, 1, 0};
  CHECK_THROWS_WITH(fit_glm(s, o, comm), Contains("column x1_twice is linearly dependent on earlier columns"));
  o.fit.penalized = {0, 1, 1, 1};  // x1_twice penalised: fitted
  const GlmFit g = fit_glm(s, o, comm);
  CHECK(g.fit.converged());
  CHECK(g.dropped.empty());
}

TEST_CASE("fit_glm with l2 > 0: the IRLS start is the ridge step, exact for gaussian on one-hot factors",
          "[glm_fit][collinear]") {
  const Communicator comm = Communicator::world();
  Shard s = one_hot_rows(comm);
  for (std::int64_t i = 0; i < s.n_rows; ++i)  // y = 2 x + level effects + noise
    s.y[i] = 2 * s.x[i * s.n_cols + 1] + s.x[i * s.n_cols + 3] - s.x[i * s.n_cols + 7] +
             rng::normal(13, 5, s.first_row + i, 0);
  GlmOptions o;
  o.family = ModelFamily::gaussian;
  o.fit.l2 = 1;
  o.fit.tol = 1e-12;
  const Shard design = s;
  const GlmFit g = fit_glm(s, o, comm);
  REQUIRE(g.fit.converged());
  // The penalised least-squares solution is the start itself (a singular Gram without the
  // ridge): no iteration, and the penalised normal equations hold there.
  CHECK(g.fit.iterations == 0);
  CHECK(naive_gradient(design, g.fit.theta, 1.0, false, comm, /*gaussian=*/true) <= 1e-12);
}
