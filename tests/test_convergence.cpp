// Honest outcomes at the current rank count: a fit that runs away ends diverged for every
// method and step rule, and a fixed step is never shortened silently; a retreat from a
// singular Fisher moves every rank along the same direction; multinomial labels with an
// empty class are refused with the remedy; 2-class multinomial is the binomial logit fit.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "natgrad/core/error.hpp"
#include "natgrad/core/glm_fit.hpp"
#include "natgrad/core/solver.hpp"
#include "natgrad/io/generator.hpp"
#include "natgrad/io/reader.hpp"
#include "natgrad/io/report.hpp"
#include "support/test_support.hpp"

using namespace natgrad;
using Catch::Matchers::Contains;

namespace {

double rel(double a, double b) { return std::abs(a - b) / std::max(std::abs(b), 1e-300); }

std::string fixture(const std::string& name) { return std::string(NATGRAD_FIXTURES) + "/glm/" + name; }

Shard read_csv_rows(const std::string& path, const Communicator& comm, bool intercept = true) {
  ReadOptions read;
  read.path = path;
  read.label_column = "y";
  read.intercept = intercept;
  return load_shard(read, comm);
}

/// Collective: whether every rank holds exactly root's \p v (bit for bit).
bool same_on_every_rank(const std::vector<double>& v, const Communicator& comm) {
  std::vector<double> root = v;
  comm.broadcast(root.data(), root.size());
  std::int64_t differs = 0;
  for (std::size_t j = 0; j < v.size(); ++j)
    if (std::memcmp(&root[j], &v[j], sizeof(double)) != 0) differs = 1;
  comm.allreduce_max(&differs, 1);
  return differs == 0;
}

/// A quadratic loss 0.5 (eta - y)^2 whose Fisher weight is 1 for |eta| <= 5 and a
/// subnormal 1e-320 beyond: there the Cholesky factor passes (sqrt is 1e-160) but the
/// solution overflows, the residual test fails, and raising the damping cannot help
/// (1e-10 x 1e-320 underflows to 0). A step that lands beyond |eta| = 5 must be retreated from.
class CliffModel final : public Model {
 public:
  std::string name() const override { return "test/cliff"; }
  std::string check_label(double) const override { return {}; }
  void eval(std::size_t n, const double* eta, const double* y, double* nll, double* dnll,
            double* fisher) const override {
    for (std::size_t i = 0; i < n; ++i) {
      const double r = eta[i] - y[i];
      if (nll) nll[i] = 0.5 * r * r;
      if (dnll) dnll[i] = r;
      if (fisher) fisher[i] = std::abs(eta[i]) <= 5 ? 1.0 : 1e-320;
    }
  }
  double unit_deviance(const double*, double) const override { return 0; }
  double pearson(const double*, double) const override { return 0; }
  double loglik(const double*, double, double, double) const override { return 0; }
  std::vector<double> null_eta(const std::vector<double>&, double) const override { return {0}; }
  double mean(double eta) const override { return eta; }
  double start_eta(double y) const override { return y; }
};

/// 40 rows, an intercept only, labels 0.5 and 1.5 (mean 1), dealt round-robin to the ranks.
Shard cliff_rows(const Communicator& comm) {
  Shard s;
  s.n_cols = 1;
  s.n_global = 40;
  s.names = {"(Intercept)"};
  s.source = "cliff";
  for (std::int64_t i = comm.rank(); i < s.n_global; i += comm.size()) {
    s.x.push_back(1.0);
    s.y.push_back(i % 2 == 0 ? 0.5 : 1.5);
  }
  s.n_rows = static_cast<std::int64_t>(s.y.size());
  return s;
}

}  // namespace

TEST_CASE("a retreat from a singular Fisher moves every rank along the same direction", "[convergence]") {
  const Communicator comm = Communicator::world();
  const Shard shard = cliff_rows(comm);
  const CliffModel model;
  FitOptions o;
  o.step = StepRule::fixed;
  o.lr = 1.9;             // theta_1 = -4.5 + 1.9 x 5.5 = 5.95: past the cliff
  o.theta0 = {-4.5};
  o.tol = 1e-12;
  o.max_iter = 1000;
  std::string notes;
  FitObserver obs;
  obs.log = [&](const std::string& m) { notes += m + "\n"; };
  const FitResult r = fit(shard, model, o, comm, obs);
  // The retreat path was taken (root's notes) ...
  if (comm.is_root()) CHECK_THAT(notes, Contains("iteration 1: Fisher singular; halving the step"));
  // ... along the last step's d: theta = -4.5 + 0.95 x 5.5 = 0.725, from where the fixed
  // steps (contraction 0.9) reach the least-squares answer, the label mean 1.
  INFO(notes);
  CHECK(r.converged());  // by the default (decrement) rule or the gradient rule
  REQUIRE(r.theta.size() == 1);
  CHECK(std::abs(r.theta[0] - 1.0) <= 1e-10);
  CHECK(same_on_every_rank(r.theta, comm));
  if (comm.is_root()) {  // the retreated step reports its halved length; the next ones are fixed again
    REQUIRE(r.history.size() >= 3);
    CHECK(r.history[1].step_length == 0.95);
    CHECK(r.history[2].step_length == 1.9);
  }
}

TEST_CASE("a fixed step that runs away ends diverged for every method, never with a shortened step",
          "[convergence]") {
  const Communicator comm = Communicator::world();
  struct Case {
    const char* data;
    ModelFamily family;
    Method method;
  };
  const Case cases[] = {
      {"binomial_logit_infert.csv", ModelFamily::binomial, Method::gd},
      {"binomial_logit_infert.csv", ModelFamily::binomial, Method::ngd},
      {"binomial_logit_infert.csv", ModelFamily::binomial, Method::diag},
      {"gaussian_identity_mtcars.csv", ModelFamily::gaussian, Method::ngd},
      {"gaussian_identity_mtcars.csv", ModelFamily::gaussian, Method::gd},
      {"poisson_log_warpbreaks.csv", ModelFamily::poisson, Method::ngd},
      {"poisson_log_warpbreaks.csv", ModelFamily::poisson, Method::diag},
      {"gamma_inverse_trees.csv", ModelFamily::gamma, Method::ngd},
  };
  for (const Case& c : cases) {
    for (const char* start : {"irls", "zero"}) {
      if (c.family == ModelFamily::gaussian && std::string(start) == "irls") continue;  // starts at the answer
      if (c.family == ModelFamily::gamma && std::string(start) == "zero") continue;      // 1/eta: no finite start
      INFO(c.data << ", method " << to_string(c.method) << ", start " << start);
      Shard shard = read_csv_rows(fixture(c.data), comm);
      GlmOptions o;
      o.family = c.family;
      o.start = start_rule_from_string(start);
      o.fit.method = c.method;
      o.fit.step = StepRule::fixed;
      o.fit.lr = 1e6;
      o.fit.max_iter = 300;
      GlmHooks hooks;
      std::string notes;
      hooks.observer.log = [&](const std::string& m) { notes += m + "\n"; };
      const GlmFit g = fit_glm(shard, o, comm, hooks);
      INFO(notes);
      CHECK((g.fit.reason == Reason::loss_diverged || g.fit.reason == Reason::non_finite));
      CHECK_FALSE(g.has_inference);  // no standard errors for a diverged estimate
      CHECK(nonconvergence_note(g.fit).rfind("did not converge: diverged: ", 0) == 0);
      if (comm.is_root()) {
        // A fixed step is shortened only by the noted retreat from an unusable Fisher,
        // never by a retreat from a non-finite loss (that is divergence).
        CHECK(notes.find("non-finite loss; halving") == std::string::npos);
        const bool retreated = notes.find("Fisher singular; halving the step") != std::string::npos;
        for (std::size_t k = 1; k < g.fit.history.size(); ++k)
          if (!retreated) CHECK(g.fit.history[k].step_length == 1e6);
      }
      // The same fit with a line search converges: the data are fine, the step is not.
      if (c.method != Method::ngd) continue;  // first-order methods converge too slowly to wait for here
      Shard again = read_csv_rows(fixture(c.data), comm);
      o.fit.step = StepRule::armijo;
      o.fit.lr = 1;
      o.fit.max_iter = 100;
      const GlmFit ok = fit_glm(again, o, comm);
      CHECK(ok.fit.converged());
    }
  }
}

TEST_CASE("the divergence test judges the loss against the start, for every step rule", "[convergence]") {
  const Communicator comm = Communicator::world();
  // Backtracking rules never accept a loss increase: from a start whose loss is huge, a
  // fit with armijo or kl converges and is not called diverged.
  for (StepRule rule : {StepRule::armijo, StepRule::kl}) {
    Shard shard = read_csv_rows(fixture("gaussian_identity_mtcars.csv"), comm);
    GlmOptions o;
    o.family = ModelFamily::gaussian;
    o.start = StartRule::zero;
    o.fit.step = rule;
    o.fit.kl = 1e6;
    const GlmFit g = fit_glm(shard, o, comm);
    INFO(to_string(rule) << ": " << to_string(g.fit.reason));
    CHECK(g.fit.converged());
  }
  // At the iteration limit: exit status 0 in the CLI, but the note says so.
  Shard shard = read_csv_rows(fixture("binomial_logit_infert.csv"), comm);
  GlmOptions o;
  o.start = StartRule::zero;
  o.fit.max_iter = 2;
  const GlmFit g = fit_glm(shard, o, comm);
  REQUIRE(g.fit.reason == Reason::max_iterations);
  const std::string note = nonconvergence_note(g.fit);
  CHECK(note.rfind("did not converge: iteration limit 2 reached (max |gradient| ", 0) == 0);
  if (comm.is_root()) {
    FitReport rep;
    rep.fit = &g.fit;
    rep.all_columns = rep.columns = g.columns;
    CHECK(summary_text(rep).rfind(note + "\n\n", 0) == 0);
  }
}

TEST_CASE("2-class multinomial is the binomial logit fit", "[convergence][multinomial]") {
  const Communicator comm = Communicator::world();
  std::ifstream in(fixture("binomial_logit_infert.json"));
  REQUIRE(in);
  const auto ref = nlohmann::json::parse(in);
  auto fit_as = [&](ModelFamily family, int classes) {
    Shard shard = read_csv_rows(fixture("binomial_logit_infert.csv"), comm);
    GlmOptions o;
    o.family = family;
    o.classes = classes;
    o.fit.tol = 1e-10;
    o.fit.max_iter = 200;
    return fit_glm(shard, o, comm);
  };
  const GlmFit b = fit_as(ModelFamily::binomial, 0);
  REQUIRE(b.fit.converged());
  for (int classes : {0, 2}) {  // K from the labels, and given
    INFO("--classes " << classes);
    const GlmFit m = fit_as(ModelFamily::multinomial, classes);
    REQUIRE(m.fit.converged());
    CHECK(m.classes == 2);
    CHECK(m.dropped.empty());
    REQUIRE(m.has_inference);
    const auto coef = ref["coefficients"].get<std::vector<double>>();
    REQUIRE(m.fit.theta.size() == coef.size());
    for (std::size_t j = 0; j < coef.size(); ++j) {
      CHECK(rel(m.fit.theta[j], b.fit.theta[j]) <= 1e-8);  // class 1 against class 0
      CHECK(rel(m.fit.theta[j], coef[j]) <= 1e-6);         // R's glm
    }
    if (comm.is_root()) {
      CHECK(rel(m.inference.deviance, b.inference.deviance) <= 1e-8);
      CHECK(rel(m.inference.deviance, ref["deviance"]) <= 1e-8);
      CHECK(rel(m.inference.null_deviance, ref["null_deviance"]) <= 1e-8);
      CHECK(rel(m.inference.aic, ref["aic"]) <= 1e-8);
      const auto se = ref["std_errors"].get<std::vector<double>>();
      for (std::size_t j = 0; j < se.size(); ++j) CHECK(rel(m.inference.std_errors[j], se[j]) <= 1e-6);
    }
  }
}

TEST_CASE("multinomial labels with an empty class are refused with the remedy", "[convergence][multinomial]") {
  const Communicator comm = Communicator::world();
  // Labels 1..3 (R's factor codes), 0..2 with --classes 5, and 0, 2 (a gap); 12 rows
  // dealt over the ranks, so at 4 ranks some rank holds no row of a present class.
  auto csv = [](const std::string& labels) {
    std::ostringstream o;
    o << "y,x\n";
    std::istringstream in(labels);
    int i = 0;
    for (std::string y; in >> y; ++i) o << y << ',' << (i % 5) * 0.37 - 0.6 << '\n';
    return o.str();
  };
  auto error_for = [&](const std::string& name, const std::string& labels, int classes) {
    const std::string path = test::write_file(comm, name, csv(labels));
    return test::error_of([&] {
      Shard shard = read_csv_rows(path, comm);
      GlmOptions o;
      o.family = ModelFamily::multinomial;
      o.classes = classes;
      fit_glm(shard, o, comm);
    });
  };
  std::string e = error_for("codes.csv", "1 2 3 3 2 1 1 2 3 2 3 1", 0);
  CHECK_THAT(e, Contains("multinomial: class 0 has no rows (labels found: 1..3, 3 distinct; 4 classes 0..3 from "
                         "the largest label)"));
  CHECK_THAT(e, Contains("recode the labels to start at 0 (e.g. y - 1)"));
  e = error_for("given.csv", "0 1 2 2 1 0 0 1 2 1 2 0", 5);
  CHECK_THAT(e, Contains("classes 3, 4 have no rows (labels found: 0..2, 3 distinct; 5 classes 0..4 from --classes)"));
  CHECK_THAT(e, Contains("set --classes 3"));
  e = error_for("gap.csv", "0 2 2 0 0 2 2 0 0 2 0 2", 0);
  CHECK_THAT(e, Contains("class 1 has no rows"));
  CHECK_THAT(e, Contains("recode the labels to 0..K-1 without gaps"));
  e = error_for("one.csv", "0 0 0 0 0 0 0 0 0 0 0 0", 0);
  CHECK_THAT(e, Contains("class 1 has no rows"));
  CHECK_THAT(e, Contains("give rows of at least two classes"));
  // Every class present: no error (the check counts over all ranks, not per rank).
  CHECK(error_for("full.csv", "0 1 2 2 1 0 0 1 2 1 2 0", 0).empty());
}
