// The quasi families, the negative binomial (MASS::glm.nb's alternation, a fixed theta) and
// the Wald intervals: fit_glm against R's numbers (tests/fixtures/glm, made by
// tests/peers/glm_families_reference.R) at the current rank count; the negative binomial's
// per-row evaluation against finite differences and its own probability mass function;
// the report's keys (model.json, summary.txt).
#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "natgrad/core/error.hpp"
#include "natgrad/core/glm_fit.hpp"
#include "natgrad/io/reader.hpp"
#include "natgrad/io/report.hpp"

using namespace natgrad;
using Catch::Matchers::Contains;

namespace {

double rel(double a, double b) { return std::abs(a - b) / std::max(std::abs(b), 1e-300); }

nlohmann::json fixture(const std::string& name) {
  std::ifstream in(std::string(NATGRAD_FIXTURES) + "/glm/" + name + ".json");
  REQUIRE(in);
  return nlohmann::json::parse(in);
}

Shard fixture_rows(const std::string& name, const nlohmann::json& ref, const Communicator& comm) {
  ReadOptions read;
  read.path = std::string(NATGRAD_FIXTURES) + "/glm/" + name + ".csv";
  read.label_column = "y";
  if (!ref["weight_column"].is_null()) read.weight_column = ref["weight_column"];
  read.intercept = true;
  return load_shard(read, comm);
}

GlmOptions fixture_options(const nlohmann::json& ref) {
  GlmOptions o;
  o.family = family_from_string(ref["family"]);
  o.link = link_from_string(ref["link"]);
  if (ref.contains("theta_estimated") && !ref["theta_estimated"].get<bool>()) o.theta = ref["theta"];
  o.fit.tol = 1e-11;
  o.fit.max_iter = 200;
  return o;
}

/// log P(Y = y) of the negative binomial with mean mu and size theta (R's dnbinom(y, theta, mu = mu)).
double nb_log_pmf(double y, double mu, double theta) {
  return std::lgamma(y + theta) - std::lgamma(theta) - std::lgamma(y + 1) + theta * std::log(theta / (theta + mu)) +
         y * std::log(mu / (theta + mu));
}

}  // namespace

TEST_CASE("fit_glm gives R's glm.nb, negative.binomial(theta), quasipoisson and quasibinomial fits",
          "[glm_fit][families]") {
  const Communicator comm = Communicator::world();
  for (const char* name : {"negbin_log_quine", "negbin_sqrt_quine", "negbin_log_quine_theta1.5", "quasipoisson_log_quine",
                           "quasibinomial_logit_esoph_weighted"}) {
    INFO(name);
    const auto ref = fixture(name);
    Shard shard = fixture_rows(name, ref, comm);
    const GlmOptions o = fixture_options(ref);
    const GlmFit g = fit_glm(shard, o, comm);
    REQUIRE(g.fit.converged());
    REQUIRE(g.has_inference);
    const auto coef = ref["coefficients"].get<std::vector<double>>();
    REQUIRE(g.fit.theta.size() == coef.size());
    for (std::size_t j = 0; j < coef.size(); ++j) CHECK(rel(g.fit.theta[j], coef[j]) <= 1e-6);
    const bool negbin = o.family == ModelFamily::negative_binomial;
    if (negbin) {  // every rank
      CHECK(g.theta_estimated == ref["theta_estimated"].get<bool>());
      CHECK(rel(g.theta, ref["theta"]) <= 1e-8);
    }
    if (!comm.is_root()) continue;  // inference lives on root
    const Inference& inf = g.inference;
    const auto se = ref["std_errors"].get<std::vector<double>>();
    const auto lo = ref["conf_int_lower"].get<std::vector<double>>(), hi = ref["conf_int_upper"].get<std::vector<double>>();
    REQUIRE(inf.std_errors.size() == se.size());
    REQUIRE(inf.conf_lower.size() == se.size());
    for (std::size_t j = 0; j < se.size(); ++j) {
      CHECK(rel(inf.std_errors[j], se[j]) <= 1e-6);
      CHECK(std::abs(inf.conf_lower[j] - lo[j]) <= 1e-6 * (std::abs(lo[j]) + se[j]));
      CHECK(std::abs(inf.conf_upper[j] - hi[j]) <= 1e-6 * (std::abs(hi[j]) + se[j]));
    }
    CHECK(inf.conf_level == 0.95);
    CHECK(rel(inf.deviance, ref["deviance"]) <= 1e-8);
    CHECK(rel(inf.null_deviance, ref["null_deviance"]) <= 1e-8);
    CHECK(rel(inf.dispersion, ref["dispersion"]) <= 1e-8);
    CHECK(inf.df_residual == ref["df_residual"].get<double>());
    if (ref["aic"].is_null()) {  // quasi: t statistics, no likelihood
      CHECK(inf.t_statistic);
      CHECK(std::isnan(inf.aic));
      CHECK(std::isnan(inf.bic));
      CHECK(std::isnan(inf.log_likelihood));
      const auto t = ref["t_values"].get<std::vector<double>>(), p = ref["p_values"].get<std::vector<double>>();
      for (std::size_t j = 0; j < t.size(); ++j) {
        CHECK(rel(inf.statistic[j], t[j]) <= 1e-6);
        CHECK(rel(inf.p_values[j], p[j]) <= 1e-5);
      }
    } else {
      CHECK_FALSE(inf.t_statistic);
      CHECK(rel(inf.aic, ref["aic"]) <= 1e-8);
      CHECK(rel(inf.bic, ref["bic"]) <= 1e-8);
      CHECK(rel(inf.log_likelihood, ref["log_likelihood"]) <= 1e-8);
    }
    if (negbin) {
      CHECK(rel(inf.theta, ref["theta"]) <= 1e-8);
      CHECK(inf.theta_estimated == ref["theta_estimated"].get<bool>());
      if (inf.theta_estimated) CHECK(rel(inf.theta_std_error, ref["theta_std_error"]) <= 1e-6);
      else CHECK(std::isnan(inf.theta_std_error));
    } else {
      CHECK(std::isnan(inf.theta));
    }
  }
}

TEST_CASE("Wald intervals at another level: estimate -+ qnorm(1 - (1 - level)/2) SE", "[glm_fit][families]") {
  const Communicator comm = Communicator::world();
  const auto ref = fixture("quasipoisson_log_quine");
  Shard shard = fixture_rows("quasipoisson_log_quine", ref, comm);
  GlmOptions o = fixture_options(ref);
  o.conf_level = 0.9;
  const GlmFit g = fit_glm(shard, o, comm);
  REQUIRE(g.has_inference);
  if (comm.is_root()) {
    const Inference& inf = g.inference;
    CHECK(inf.conf_level == 0.9);
    REQUIRE(inf.conf_lower.size() == g.fit.theta.size());
    constexpr double z95 = 1.6448536269514722;  // R: qnorm(0.95)
    for (std::size_t j = 0; j < g.fit.theta.size(); ++j) {
      CHECK(std::abs((inf.conf_upper[j] - inf.conf_lower[j]) / 2 - z95 * inf.std_errors[j]) <= 1e-12 * inf.std_errors[j]);
      CHECK(std::abs((inf.conf_upper[j] + inf.conf_lower[j]) / 2 - g.fit.theta[j]) <= 1e-12 * (1 + std::abs(g.fit.theta[j])));
    }
  }
  o.conf_level = 1;
  CHECK_THROWS_WITH(o.validate(), Contains("conf-level"));
}

TEST_CASE("negative binomial rows: gradient by finite differences, Fisher = E[score^2], loglik = log dnbinom",
          "[glm][families]") {
  for (Link link : {Link::log, Link::sqrt, Link::identity}) {
    for (double theta : {0.7, 3.0, 50.0, double(INFINITY)}) {
      const NegativeBinomialModel m(link, theta);
      for (double mu : {0.3, 2.0, 11.0}) {
        INFO("link " << static_cast<int>(link) << " theta " << theta << " mu " << mu);
        const double eta = link == Link::log ? std::log(mu) : link == Link::sqrt ? std::sqrt(mu) : mu;
        CHECK(rel(m.mean(eta), mu) <= 1e-14);
        // E_y[dnll] = 0 and E_y[dnll^2] = fisher, summing the probability mass function
        // over y = 0 .. 3000 (the tail beyond is below 1e-70 for these means).
        double fisher = 0;
        m.eval(1, &eta, &mu, nullptr, nullptr, &fisher);
        double e1 = 0, e2 = 0, mass = 0;
        for (int k = 0; k <= 3000; ++k) {
          const double y = k;
          const double lp = std::isinf(theta) ? y * std::log(mu) - mu - std::lgamma(y + 1) : nb_log_pmf(y, mu, theta);
          const double p = std::exp(lp);
          double d = 0, l = 0;
          m.eval(1, &eta, &y, &l, &d, nullptr);
          e1 += p * d;
          e2 += p * d * d;
          mass += p;
          if (k % 7 == 0 && k <= 42) {
            // gradient: central difference of nll in eta
            const double h = 1e-5 * std::max(1.0, std::abs(eta));
            const double ep = eta + h, em = eta - h;
            double lp1 = 0, lm1 = 0;
            m.eval(1, &ep, &y, &lp1, nullptr, nullptr);
            m.eval(1, &em, &y, &lm1, nullptr, nullptr);
            CHECK(std::abs((lp1 - lm1) / (2 * h) - d) <= 1e-7 * (1 + std::abs(d)));
            // the log-likelihood is the log mass (MASS's loglik), the nll differs by a term free of mu
            CHECK(std::abs(m.loglik(&eta, y, 1.0, 1.0) - lp) <= 1e-10 * (1 + std::abs(lp)));
            const double mu2 = 1.7 * mu, eta2 = link == Link::log ? std::log(mu2) : link == Link::sqrt ? std::sqrt(mu2) : mu2;
            double l2 = 0;
            m.eval(1, &eta2, &y, &l2, nullptr, nullptr);
            CHECK(std::abs((l2 - l) + (m.loglik(&eta2, y, 1.0, 1.0) - lp)) <= 1e-10 * (1 + std::abs(lp)));
            // unit deviance = 2 (log p(y | mu = y) - log p(y | mu))
            const double sat = y == 0 ? 0.0
                                      : (std::isinf(theta) ? y * std::log(y) - y - std::lgamma(y + 1) : nb_log_pmf(y, y, theta));
            CHECK(std::abs(m.unit_deviance(&eta, y) - 2 * (sat - lp)) <= 1e-10 * (1 + std::abs(lp)));
          }
        }
        CHECK(std::abs(mass - 1) <= 1e-12);
        CHECK(std::abs(e1) <= 1e-10 * std::sqrt(e2));
        CHECK(rel(e2, fisher) <= 1e-10);
        const double v = std::isinf(theta) ? mu : mu + mu * mu / theta;
        CHECK(rel(m.pearson(&eta, mu + 1), 1 / v) <= 1e-12);
      }
    }
  }
  // sqrt and identity: eta <= 0 is outside the model (an infinite loss the solver backs off from).
  const NegativeBinomialModel id(Link::identity, 2.0);
  const double bad = -0.5, y = 1;
  double l = 0;
  id.eval(1, &bad, &y, &l, nullptr, nullptr);
  CHECK(std::isinf(l));
}

TEST_CASE("family names: R's spellings, quasi and negative binomial links, --theta only for negbin",
          "[glm][families]") {
  CHECK(family_from_string("quasibinomial") == ModelFamily::quasibinomial);
  CHECK(family_from_string("quasipoisson") == ModelFamily::quasipoisson);
  CHECK(family_from_string("Gamma") == ModelFamily::gamma);
  CHECK(family_from_string("gamma") == ModelFamily::gamma);
  CHECK(family_from_string("negative.binomial") == ModelFamily::negative_binomial);
  CHECK(family_from_string("negbin") == ModelFamily::negative_binomial);
  CHECK(std::string(to_string(ModelFamily::negative_binomial)) == "negative.binomial");
  CHECK(make_model("quasibinomial", "probit")->name() == "quasibinomial/probit");
  CHECK(make_model("quasipoisson", "")->name() == "quasipoisson/log");
  CHECK(make_model("negative.binomial", "sqrt")->name() == "negative.binomial/sqrt");
  CHECK_THROWS_WITH(make_model("negative.binomial", "logit"), Contains("log, sqrt, identity"));
  CHECK_FALSE(make_model("quasipoisson", "")->has_likelihood());
  CHECK(make_model("quasibinomial", "")->estimates_dispersion());
  CHECK(make_model("quasibinomial", "")->check_label(0.25).empty());
  CHECK_FALSE(make_model("quasibinomial", "")->check_label(1.5).empty());
  GlmOptions o;
  o.theta = 2;
  CHECK_THROWS_WITH(o.validate(), Contains("--theta is for --family negative.binomial"));
  o.family = ModelFamily::negative_binomial;
  CHECK_NOTHROW(o.validate());
}

TEST_CASE("report: conf_int, conf_level and theta in model.json, intervals, Theta and NA in summary.txt",
          "[glm_fit][families]") {
  const Communicator comm = Communicator::world();
  for (const char* name : {"negbin_log_quine", "quasipoisson_log_quine"}) {
    INFO(name);
    const auto ref = fixture(name);
    Shard shard = fixture_rows(name, ref, comm);
    const GlmFit g = fit_glm(shard, fixture_options(ref), comm);
    REQUIRE(g.has_inference);
    if (!comm.is_root()) continue;
    FitReport rep;
    rep.model_name = g.model->name();
    rep.family = ref["family"];
    rep.link = ref["link"];
    rep.columns = g.columns;
    rep.all_columns = g.all_columns;
    rep.intercept = true;
    rep.fit = &g.fit;
    rep.inference = &g.inference;
    std::ostringstream js;
    write_model_json(js, rep);
    const auto j = nlohmann::json::parse(js.str());
    CHECK(j["conf_level"].get<double>() == 0.95);
    const auto lo = ref["conf_int_lower"].get<std::vector<double>>(), hi = ref["conf_int_upper"].get<std::vector<double>>();
    REQUIRE(j["conf_int"].size() == lo.size());
    for (std::size_t k = 0; k < lo.size(); ++k) {
      CHECK(std::abs(j["conf_int"][k][0].get<double>() - lo[k]) <= 1e-6 * (1 + std::abs(lo[k])));
      CHECK(std::abs(j["conf_int"][k][1].get<double>() - hi[k]) <= 1e-6 * (1 + std::abs(hi[k])));
    }
    const std::string text = summary_text(rep);
    CHECK_THAT(text, Contains("2.5 %") && Contains("97.5 %"));
    if (ref["aic"].is_null()) {
      CHECK(j["aic"].is_null());
      CHECK(j["bic"].is_null());
      CHECK(j["log_likelihood"].is_null());
      CHECK_FALSE(j.contains("theta"));
      CHECK_THAT(text, Contains("AIC: NA") && Contains("t value"));
    } else {
      CHECK(rel(j["theta"]["estimate"].get<double>(), ref["theta"]) <= 1e-8);
      CHECK(rel(j["theta"]["std_error"].get<double>(), ref["theta_std_error"]) <= 1e-6);
      CHECK(j["theta"]["estimated"].get<bool>());
      CHECK(rel(j["aic"].get<double>(), ref["aic"]) <= 1e-8);
      // MASS's print.summary.negbin for this fit: "Theta:  1.275", "Std. Err.:  0.161",
      // " 2 x log-likelihood:  -1093.151", "Negative Binomial(1.2749)".
      CHECK_THAT(text, Contains("Theta:  1.275\n") && Contains("Std. Err.:  0.161\n") &&
                           Contains("2 x log-likelihood:  -1093.151\n") && Contains("Negative Binomial(1.2749)"));
    }
  }
}
