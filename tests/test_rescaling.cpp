// Scale invariance of the natural-gradient fit (issue: a column multiplied by 10^k must
// change its coefficient by 10^-k and nothing else): every family on the committed R /
// statsmodels fixtures, one column scaled by 10^k, k in {-12, -6, 6, 12}, fitted with
// fit_glm at the current rank count and compared with the unscaled fit, coefficients and
// standard errors; and the collinearity check on columns of 1e-300s.
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

struct Fixture {
  Shard shard;
  GlmOptions options;
};

Fixture fixture(const std::string& name, const Communicator& comm) {
  std::ifstream in(std::string(NATGRAD_FIXTURES) + "/glm/" + name + ".json");
  REQUIRE(in);
  const auto ref = nlohmann::json::parse(in);
  ReadOptions read;
  read.path = std::string(NATGRAD_FIXTURES) + "/glm/" + name + ".csv";
  read.label_column = "y";
  if (!ref["weight_column"].is_null()) read.weight_column = ref["weight_column"];
  if (!ref["offset_column"].is_null()) read.offset_column = ref["offset_column"];
  read.intercept = ref["intercept"];
  Fixture f{load_shard(read, comm), {}};
  f.options.family = family_from_string(ref["family"]);
  f.options.link = link_from_string(ref["link"]);
  if (ref.contains("n_classes")) f.options.classes = ref["n_classes"];
  f.options.fit.tol = 1e-10;
  f.options.fit.max_iter = 200;
  return f;
}

Shard scaled(const Shard& s, std::int64_t col, double factor) {
  Shard t = s;
  for (std::int64_t i = 0; i < t.n_rows; ++i) t.x[static_cast<std::size_t>(i * t.n_cols + col)] *= factor;
  return t;
}

/// |a - b| relative to |b|.
double rel(double a, double b) { return std::abs(a - b) / std::abs(b); }

}  // namespace

TEST_CASE("a column scaled by 10^k changes its coefficient and standard error by 10^-k, for every family",
          "[rescaling]") {
  const Communicator comm = Communicator::world();
  for (const char* name : {"binomial_logit_infert", "binomial_probit_infert", "binomial_cloglog_infert",
                           "binomial_logit_esoph_weighted", "poisson_log_seatbelts_offset", "poisson_log_warpbreaks",
                           "gaussian_identity_mtcars", "gamma_inverse_trees", "gamma_log_trees",
                           "multinomial_wine_scaled", "multinomial_wine"}) {
    const Fixture f = fixture(name, comm);
    Shard base_shard = f.shard;
    const GlmFit base = fit_glm(base_shard, f.options, comm);
    INFO(name);
    REQUIRE(base.fit.converged());
    REQUIRE(base.has_inference);
    const std::int64_t d = f.shard.n_cols;
    const std::size_t P = base.fit.theta.size();
    for (const std::int64_t col : {std::int64_t{1}, d - 1}) {  // the first and the last feature
      for (const int k : {-12, -6, 6, 12}) {
        const double s = std::pow(10.0, k);
        Shard sh = scaled(f.shard, col, s);
        const GlmFit g = fit_glm(sh, f.options, comm);
        CAPTURE(col, k, to_string(g.fit.reason), g.fit.iterations, base.fit.iterations);
        REQUIRE(g.fit.converged());
        CHECK(g.fit.reason == Reason::converged_decrement);
        REQUIRE(g.has_inference);
        REQUIRE(g.fit.theta.size() == P);
        for (std::size_t j = 0; j < P; ++j) {
          const double back = static_cast<std::int64_t>(j) % d == col ? s : 1.0;  // class-major
          CAPTURE(j);
          CHECK(rel(g.fit.theta[j] * back, base.fit.theta[j]) <= 1e-8);
          if (comm.is_root()) CHECK(rel(g.inference.std_errors[j] * back, base.inference.std_errors[j]) <= 1e-8);
        }
        if (comm.is_root()) CHECK(rel(g.inference.deviance, base.inference.deviance) <= 1e-12);
      }
    }
  }
}

TEST_CASE("the stopping rule does not depend on column scales: the issue's 1e-10 and 1e8 columns", "[rescaling]") {
  const Communicator comm = Communicator::world();
  const Shard base = test::my_rows(parse_generator_spec("gen:logit:rows=500,cols=3,seed=1"), comm);
  GlmOptions o;
  Shard b = base;
  const GlmFit ref = fit_glm(b, o, comm);
  REQUIRE(ref.fit.reason == Reason::converged_decrement);
  for (const double s : {1e-10, 1e8, 1e12}) {
    Shard sh = scaled(base, 2, s);
    const GlmFit g = fit_glm(sh, o, comm);
    CAPTURE(s);
    CHECK(g.fit.reason == Reason::converged_decrement);
    CHECK(g.fit.iterations == ref.fit.iterations);
    for (std::size_t j = 0; j < ref.fit.theta.size(); ++j)
      CHECK(rel(g.fit.theta[j] * (j == 2 ? s : 1.0), ref.fit.theta[j]) <= 1e-8);
  }
  // The gradient rule stays available, and is what it says.
  o.fit.stop = StopRule::gradient;
  Shard tiny = scaled(base, 2, 1e-10);
  const GlmFit g = fit_glm(tiny, o, comm);
  CHECK(g.fit.reason == Reason::converged_gradient);
  CHECK(g.fit.grad_norm <= 1e-8);
}

TEST_CASE("the collinearity check sees columns of 1e-300s as they are", "[rescaling]") {
  const Communicator comm = Communicator::world();
  const Shard base = test::my_rows(parse_generator_spec("gen:logit:rows=2000,cols=4,seed=3"), comm);
  GlmOptions o;
  for (const double s : {1e-300, 1e-200, 1e200}) {
    CAPTURE(s);
    // Not "linearly dependent": the start system sees the column through exact scaling.
    const Shard sh = scaled(base, 2, s);
    const StartSystem sys = start_system(sh, *make_model(o.family, o.link, 0), o.fit, comm);
    CHECK(dependent_columns(sys, 1e-11, comm).empty());
    CHECK(sys.scale.size() == static_cast<std::size_t>(base.n_cols));
    // fit_glm says what is wrong instead of calling it collinear or fitting it badly.
    Shard fit_sh = sh;
    const std::string e = test::error_of([&] { fit_glm(fit_sh, o, comm); });
    CHECK_THAT(e, Contains("column(s) x2: values so small or so large"));
    CHECK_THAT(e, !Contains("linearly dependent"));
    // A genuinely dependent column of that scale is still found: x4 replaced by s (x1 - 2 x3).
    Shard dep = sh;
    for (std::int64_t i = 0; i < dep.n_rows; ++i) {
      const double* b = base.row(i);
      dep.x[static_cast<std::size_t>(i * dep.n_cols + 4)] = s * (b[1] - 2 * b[3]);
    }
    const StartSystem dsys = start_system(dep, *make_model(o.family, o.link, 0), o.fit, comm);
    CHECK(dependent_columns(dsys, 1e-11, comm) == std::vector<std::int64_t>{4});
  }
}
