// --solver cg (the matrix-free natural gradient) at the current rank count: R's
// coefficients and standard errors on real data, and the Cholesky solver's answer on
// generated data with weights, offsets, the empirical Fisher and a Fisher subsample.
#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "natgrad/core/glm_fit.hpp"
#include "natgrad/core/inference.hpp"
#include "natgrad/io/generator.hpp"
#include "natgrad/io/reader.hpp"
#include "support/test_support.hpp"

using namespace natgrad;

namespace {
double rel(double a, double b) { return std::abs(a - b) / std::max(std::abs(b), 1e-300); }
}  // namespace

TEST_CASE("solver cg gives R's coefficients, standard errors and deviances on real data", "[cg][glm_fit]") {
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
    o.fit.solver = LinearSolver::cg;
    o.fit.tol = 1e-10;
    o.fit.max_iter = 200;
    const GlmFit g = fit_glm(shard, o, comm);
    REQUIRE(g.fit.converged());
    CHECK(g.fit.fisher_products > 0);  // the products were used, not the Cholesky
    REQUIRE(g.has_inference);
    const auto coef = ref["coefficients"].get<std::vector<double>>();
    REQUIRE(g.fit.theta.size() == coef.size());
    for (std::size_t j = 0; j < coef.size(); ++j) CHECK(rel(g.fit.theta[j], coef[j]) <= 1e-6);
    if (comm.is_root()) {
      const auto se = ref["std_errors"].get<std::vector<double>>();
      for (std::size_t j = 0; j < se.size(); ++j) CHECK(rel(g.inference.std_errors[j], se[j]) <= 1e-6);
      CHECK(rel(g.inference.deviance, ref["deviance"]) <= 1e-8);
    }
  }
}

TEST_CASE("solver cg reaches the Cholesky solver's estimate with weights, offsets, empirical Fisher, subsample, ridge",
          "[cg][glm_fit]") {
  const Communicator comm = Communicator::world();
  struct Case {
    const char* family;
    FisherKind kind;
    double fraction;
    double l2;
  };
  const Case cases[] = {{"binomial", FisherKind::expected, 1.0, 0.0}, {"binomial", FisherKind::empirical, 1.0, 0.0},
                        {"binomial", FisherKind::expected, 0.3, 0.0}, {"poisson", FisherKind::expected, 1.0, 2.0},
                        {"gaussian", FisherKind::expected, 1.0, 0.0}};
  Shard shard = test::my_rows(parse_generator_spec("gen:logit:rows=3000,cols=12,seed=4"), comm);
  shard.weight.resize(static_cast<std::size_t>(shard.n_rows));
  shard.offset.resize(static_cast<std::size_t>(shard.n_rows));
  for (std::int64_t i = 0; i < shard.n_rows; ++i) {  // by global row: the same data at any rank count
    const std::int64_t g = shard.first_row + i;
    shard.weight[static_cast<std::size_t>(i)] = 0.5 + static_cast<double>(g % 3);
    shard.offset[static_cast<std::size_t>(i)] = 0.1 * static_cast<double>(g % 5) - 0.2;
  }
  for (const auto& c : cases) {
    CAPTURE(c.family, to_string(c.kind), c.fraction, c.l2);
    GlmOptions o;
    o.family = family_from_string(c.family);
    o.fit.fisher = c.kind;
    o.fit.sample.fraction = c.fraction;
    o.fit.l2 = c.l2;
    o.fit.tol = 1e-11;
    o.fit.max_iter = 300;
    o.fit.solver = LinearSolver::cholesky;
    const GlmFit chol = fit_glm(shard, o, comm);
    o.fit.solver = LinearSolver::cg;
    const GlmFit cg = fit_glm(shard, o, comm);
    REQUIRE(chol.fit.converged());
    REQUIRE(cg.fit.converged());
    CHECK(chol.fit.fisher_products == 0);
    CHECK(cg.fit.fisher_products > 0);
    double scale = 0;
    for (double t : chol.fit.theta) scale = std::max(scale, std::abs(t));
    for (std::size_t j = 0; j < chol.fit.theta.size(); ++j)
      CHECK(std::abs(cg.fit.theta[j] - chol.fit.theta[j]) <= 1e-7 * scale);
    CHECK(rel(cg.fit.loss, chol.fit.loss) <= 1e-12);
  }
  SECTION("the trust region (--step kl, Steihaug-Toint truncation of the CG) reaches the same estimate") {
    GlmOptions o;
    o.start = StartRule::zero;  // far from the optimum: the first steps are cut at the radius
    o.fit.step = StepRule::kl;
    o.fit.kl = 0.01;
    o.fit.tol = 1e-11;
    o.fit.max_iter = 300;
    o.fit.solver = LinearSolver::cholesky;
    const GlmFit chol = fit_glm(shard, o, comm);
    o.fit.solver = LinearSolver::cg;
    const GlmFit cg = fit_glm(shard, o, comm);
    REQUIRE(cg.fit.converged());
    if (comm.is_root()) {  // the history is root's
      REQUIRE(cg.fit.history.size() >= 2);
      CHECK(cg.fit.history[1].kl == Approx(0.01).epsilon(1e-9));  // the first step ends on the boundary
    }
    double scale = 0;
    for (double t : chol.fit.theta) scale = std::max(scale, std::abs(t));
    for (std::size_t j = 0; j < chol.fit.theta.size(); ++j)
      CHECK(std::abs(cg.fit.theta[j] - chol.fit.theta[j]) <= 1e-7 * scale);
  }
}

TEST_CASE("solver auto picks cholesky up to 4096 parameters and cg above, and cg refuses other Fisher kinds",
          "[cg][options]") {
  FitOptions o;
  CHECK(resolved_solver(o, kCholeskyAutoMax) == LinearSolver::cholesky);
  CHECK(resolved_solver(o, kCholeskyAutoMax + 1) == LinearSolver::cg);
  o.fisher = FisherKind::empirical_centered;  // no products of the centred Fisher: stay exact
  CHECK(resolved_solver(o, kCholeskyAutoMax + 1) == LinearSolver::cholesky);
  o.solver = LinearSolver::cg;
  CHECK_THROWS_WITH(o.validate(), Catch::Matchers::Contains("--solver cg works with --fisher expected or empirical"));
  o.fisher = FisherKind::expected;
  o.method = Method::diag;
  CHECK_THROWS_WITH(o.validate(), Catch::Matchers::Contains("--method ngd"));
}

TEST_CASE("listed standard errors by conjugate gradient equal the full covariance's, model-based and robust",
          "[cg][inference]") {
  const Communicator comm = Communicator::world();
  Shard shard = test::my_rows(parse_generator_spec("gen:logit:rows=2000,cols=9,seed=8"), comm);
  shard.weight.resize(static_cast<std::size_t>(shard.n_rows));
  for (std::int64_t i = 0; i < shard.n_rows; ++i)
    shard.weight[static_cast<std::size_t>(i)] = 0.5 + static_cast<double>((shard.first_row + i) % 4);
  for (const char* family : {"binomial", "poisson", "gaussian"}) {
    for (const double l2 : {0.0, 3.0}) {
      CAPTURE(family, l2);
      GlmOptions o;
      o.family = family_from_string(family);
      o.fit.l2 = l2;
      o.fit.tol = 1e-10;
      const GlmFit g = fit_glm(shard, o, comm);
      REQUIRE(g.fit.converged());
      const auto model = make_model(o.family, o.link);
      InferenceOptions io;
      io.threads = 2;
      io.l2 = l2;
      io.penalized = g.fit_options.penalized;
      const Inference full = infer(shard, *model, g.fit.theta, comm, io);
      io.full_covariance_max = 3;  // below P = 10: the listed path
      io.se_parameters = {0, 4, 9};
      const Inference listed = infer(shard, *model, g.fit.theta, comm, io);
      CHECK(rel(listed.deviance, full.deviance) <= 1e-14);
      if (comm.is_root()) {
        REQUIRE(full.std_errors.size() == 10);
        REQUIRE(listed.std_errors.size() == 10);
        for (std::size_t j = 0; j < 10; ++j) {
          CAPTURE(j);
          if (j == 0 || j == 4 || j == 9) {
            CHECK(rel(listed.std_errors[j], full.std_errors[j]) <= 1e-8);
            CHECK(rel(listed.robust_std_errors[j], full.robust_std_errors[j]) <= 1e-8);
            CHECK(rel(listed.p_values[j], full.p_values[j]) <= 1e-6);
          } else {
            CHECK(std::isnan(listed.std_errors[j]));
          }
        }
        CHECK_THAT(listed.note, Catch::Matchers::Contains("--se-columns"));
      }
    }
  }
}

TEST_CASE("without a penalty, more parameters than rows are refused on the matrix-free path, naming --l2",
          "[cg][glm_fit]") {
  const Communicator comm = Communicator::world();
  Shard shard = test::my_rows(parse_generator_spec("gen:logit:rows=30,cols=5000,seed=2"), comm, false);
  GlmOptions o;
  const std::string err = test::error_of([&] { fit_glm(shard, o, comm); });
  CHECK_THAT(err, Catch::Matchers::Contains("5000 parameters and 30 rows") && Catch::Matchers::Contains("--l2"));
}
