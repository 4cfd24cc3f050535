// fit_glm (natgrad/core/glm_fit.hpp): the whole GLM pipeline as one library call, at the
// current rank count: R's answers on real data, linearly dependent columns refused or
// dropped (the dropped fit equals the fit without the column), a warm start through the
// prepare hook, separation detected.
#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "natgrad/core/error.hpp"
#include "natgrad/core/glm_fit.hpp"
#include "natgrad/io/generator.hpp"
#include "natgrad/io/reader.hpp"
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
