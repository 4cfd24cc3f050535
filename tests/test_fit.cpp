// End-to-end fits at the current rank count (this binary runs at 1, 2, 3 and 4 ranks),
// each compared with a single-process fit of all rows on MPI_COMM_SELF.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>

#include "natgrad/core/error.hpp"
#include "natgrad/io/generator.hpp"
#include "natgrad/core/glm.hpp"
#include "natgrad/core/partition.hpp"
#include "natgrad/core/solver.hpp"
#include "reference.hpp"
#include "support/test_support.hpp"

using namespace natgrad;

namespace {
Communicator world() { return Communicator::world(); }
using test::my_rows;

Shard all_rows(const GeneratorSpec& g, bool intercept) {
  Shard s = generate_rows(g, 0, g.rows, 1);
  if (intercept) add_intercept(s);
  return s;
}

/// Every rank holds bit-identical coefficients: max and min over ranks agree bitwise.
bool identical_across_ranks(const std::vector<double>& theta, const Communicator& c) {
  std::vector<std::int64_t> hi(theta.size()), lo(theta.size());
  for (std::size_t j = 0; j < theta.size(); ++j) std::memcpy(&hi[j], &theta[j], sizeof(double));
  lo = hi;
  c.allreduce_max(hi.data(), hi.size());
  c.allreduce_min(lo.data(), lo.size());
  return hi == lo;
}
}  // namespace

TEST_CASE("NGD fits agree across rank counts to 1e-10", "[fit]") {
  const Communicator c = world();
  const Communicator self(MPI_COMM_SELF);
  const LogisticModel model;
  // 1001 rows: not divisible by 2, 3 or 4.
  const GeneratorSpec g = parse_generator_spec("gen:logit:rows=1001,cols=5,seed=4,cond=30");
  for (FisherKind k : {FisherKind::expected, FisherKind::empirical, FisherKind::empirical_centered}) {
    for (StepRule st : {StepRule::armijo, StepRule::kl}) {
      FitOptions o;
      o.fisher = k;
      o.step = st;
      o.kl = 0.5;
      o.max_iter = 200;
      CAPTURE(to_string(k), to_string(st), c.size());
      const FitResult dist = fit(my_rows(g, c, true), model, o, c);
      const FitResult one = fit(all_rows(g, true), model, o, self);
      REQUIRE(dist.converged());
      REQUIRE(one.converged());
      CHECK(ref::rel_diff(dist.theta, one.theta) <= 1e-10);
      CHECK(dist.n_obs == 1001);
      CHECK(identical_across_ranks(dist.theta, c));
    }
  }
}

TEST_CASE("fits with ranks that hold no rows", "[fit]") {
  const Communicator c = world();
  const Communicator self(MPI_COMM_SELF);
  const LogisticModel model;
  // 3 rows: at 4 ranks one rank is empty. Fixed steps, a few iterations (3 points
  // may be separable, so compare the iterates rather than an optimum).
  const GeneratorSpec g = parse_generator_spec("gen:mixture:rows=3,cols=2,seed=9");
  for (Method m : {Method::ngd, Method::gd, Method::diag}) {
    FitOptions o;
    o.method = m;
    o.fisher = FisherKind::expected;
    o.step = StepRule::fixed;
    o.damping = 1e-3;
    o.max_iter = 3;
    o.tol = 0;
    const FitResult dist = fit(my_rows(g, c, false), model, o, c);
    const FitResult one = fit(all_rows(g, false), model, o, self);
    CAPTURE(to_string(m), c.size());
    CHECK(dist.iterations == 3);
    CHECK(ref::rel_diff(dist.theta, one.theta) <= 1e-12);
    CHECK(identical_across_ranks(dist.theta, c));
  }
}

TEST_CASE("NGD reaches the maximum-likelihood solution in fewer iterations than GD", "[fit]") {
  const Communicator c = world();
  const LogisticModel model;
  const GeneratorSpec g = parse_generator_spec("gen:logit:rows=5000,cols=8,seed=2,cond=100,rho=0.5");
  const Shard s = my_rows(g, c, true);
  FitOptions ngd;  // the defaults: expected Fisher, Armijo, tol 1e-8
  const FitResult a = fit(s, model, ngd, c);
  FitOptions gd = ngd;
  gd.method = Method::gd;
  gd.max_iter = 1000;
  const FitResult b = fit(s, model, gd, c);
  REQUIRE(a.converged());
  CHECK(a.reason == Reason::converged_decrement);  // the default rule (--stop decrement)
  CHECK(a.grad_norm <= 1e-8);                      // and today's gradient answer
  CHECK(a.iterations < 30);
  CHECK(a.iterations < b.iterations);
  CHECK(a.loss <= b.loss + 1e-12);
  // The diagonal (Adam-like) metric also converges, more slowly than the full one.
  FitOptions dg = ngd;
  dg.method = Method::diag;
  dg.max_iter = 1000;
  const FitResult d = fit(s, model, dg, c);
  CHECK(d.iterations > a.iterations);
}

TEST_CASE("the estimate recovers the generating coefficients", "[fit]") {
  const Communicator c = world();
  const LogisticModel model;
  const GeneratorSpec g = parse_generator_spec("gen:logit:rows=200000,cols=4,seed=8,cond=1,rho=0.2,intercept=0.3");
  const FitResult r = fit(my_rows(g, c, true), model, FitOptions{}, c);
  REQUIRE(r.converged());
  const auto truth = true_coefficients(g);
  for (std::size_t j = 0; j < truth.size(); ++j) CHECK(r.theta[j] == Approx(truth[j]).margin(0.05));
}

TEST_CASE("the seed's rule: fixed learning-rate steps with the centred empirical Fisher", "[fit]") {
  // One fixed step from theta0 must equal theta0 - lr * F^-1 g computed by hand from the
  // naive reference (numpy.cov semantics).
  const Communicator c = world();
  const LogisticModel model;
  const GeneratorSpec g = parse_generator_spec("gen:mixture:rows=150,seed=3");
  FitOptions o;
  o.fisher = FisherKind::empirical_centered;
  o.step = StepRule::fixed;
  o.lr = 0.7;
  o.max_iter = 1;
  o.tol = 0;
  o.theta0 = {0.01, -0.02};
  const FitResult r = fit(my_rows(g, c, false), model, o, c);
  const auto S = ref::naive_sums(all_rows(g, false), model, o.theta0, FisherKind::empirical_centered);
  const double det = S.fisher[0] * S.fisher[3] - S.fisher[1] * S.fisher[2];
  const double n0 = (S.fisher[3] * S.grad[0] - S.fisher[2] * S.grad[1]) / det;
  const double n1 = (-S.fisher[1] * S.grad[0] + S.fisher[0] * S.grad[1]) / det;
  CHECK(r.theta[0] == Approx(0.01 - 0.7 * n0).epsilon(1e-12));
  CHECK(r.theta[1] == Approx(-0.02 - 0.7 * n1).epsilon(1e-12));
  REQUIRE(r.history.size() == (c.is_root() ? 2u : 0u));
}

TEST_CASE("the KL rule caps the model KL of each step at c", "[fit]") {
  const Communicator c = world();
  const LogisticModel model;
  const GeneratorSpec g = parse_generator_spec("gen:logit:rows=3000,cols=6,seed=5,signal=4");
  FitOptions o;
  o.step = StepRule::kl;
  o.kl = 0.01;
  o.max_iter = 300;
  const FitResult r = fit(my_rows(g, c, true), model, o, c);
  CHECK(r.converged());
  if (c.is_root()) {
    bool some_capped = false;
    for (const auto& h : r.history) {
      CHECK(h.kl <= 0.01 * (1 + 1e-9));
      some_capped = some_capped || h.kl > 0.0099;
    }
    CHECK(some_capped);  // early steps ran at the constant speed c
  }
}

TEST_CASE("options are validated", "[fit]") {
  FitOptions o;
  o.step = StepRule::kl;
  o.method = Method::gd;
  CHECK_THROWS_WITH(o.validate(), Catch::Contains("--step kl"));
  FitOptions b;
  b.lr = -1;
  CHECK_THROWS_WITH(b.validate(), Catch::Contains("--lr"));
  CHECK_THROWS_AS(method_from_string("newton"), Error);
  CHECK_THROWS_AS(step_rule_from_string("wolfe"), Error);
}

TEST_CASE("a Fisher from a sample of the rows reaches the same answer at any rank count", "[fit][sample]") {
  const Communicator c = world();
  const Communicator self(MPI_COMM_SELF);
  const LogisticModel model;
  // Ill-conditioned, 20001 rows (not divisible by 2, 3 or 4).
  const GeneratorSpec g = parse_generator_spec("gen:logit:rows=20001,cols=12,seed=5,cond=300,rho=0.8");
  FitOptions exact;
  exact.tol = 1e-10;
  const FitResult e = fit(all_rows(g, true), model, exact, self);
  REQUIRE(e.converged());
  for (double f : {0.5, 0.1, 0.03}) {
    for (FisherKind k : {FisherKind::expected, FisherKind::empirical}) {
      FitOptions o = exact;
      o.fisher = k;
      o.sample.fraction = f;
      o.sample.seed = 7;
      CAPTURE(f, to_string(k), c.size());
      const FitResult dist = fit(my_rows(g, c, true), model, o, c);
      const FitResult one = fit(all_rows(g, true), model, o, self);
      REQUIRE(dist.converged());
      CHECK(dist.reason == Reason::converged_decrement);
      CHECK(dist.grad_norm <= 1e-10);  // the stopping rule sees the exact gradient
      CHECK(dist.fisher_sampled);
      // The same rows are sampled at every rank count, so the fits agree to rounding
      // amplified by the linear convergence near the tolerance (the iteration counts may
      // differ by a step or two when a line-search decision sits on the rounding).
      CHECK(ref::rel_diff(dist.theta, one.theta) <= 1e-8);
      CHECK(identical_across_ranks(dist.theta, c));
      // The same maximum-likelihood answer as the exact Fisher's, to the tolerance.
      CHECK(ref::rel_diff(dist.theta, e.theta) <= 1e-7);
      if (f < 0.5 && k == FisherKind::expected) CHECK(dist.iterations >= e.iterations);
    }
  }
  FitOptions bad = exact;
  bad.sample.fraction = 0.5;
  bad.fisher = FisherKind::empirical_centered;
  CHECK_THROWS_AS(bad.validate(), Error);
  bad.fisher = FisherKind::expected;
  bad.method = Method::gd;
  CHECK_THROWS_AS(bad.validate(), Error);
  bad.method = Method::ngd;
  bad.sample.fraction = 0;
  CHECK_THROWS_AS(bad.validate(), Error);
}

TEST_CASE("the start system: collinear columns, and the start on the kept columns", "[fit][start]") {
  const Communicator c = world();
  const Communicator self(MPI_COMM_SELF);
  const LogisticModel model;
  const GeneratorSpec g = parse_generator_spec("gen:logit:rows=3001,cols=4,seed=3,cond=10");
  // Append a column equal to column 1 + 2 * column 3: exactly dependent on earlier ones.
  auto with_dependent = [](Shard s) {
    const std::int64_t d = s.n_cols;
    std::vector<double> x(static_cast<std::size_t>(s.n_rows * (d + 1)));
    for (std::int64_t i = 0; i < s.n_rows; ++i) {
      for (std::int64_t j = 0; j < d; ++j) x[static_cast<std::size_t>(i * (d + 1) + j)] = s.x[static_cast<std::size_t>(i * d + j)];
      x[static_cast<std::size_t>(i * (d + 1) + d)] = s.x[static_cast<std::size_t>(i * d + 1)] + 2 * s.x[static_cast<std::size_t>(i * d + 3)];
    }
    s.x = x;
    s.n_cols = d + 1;
    s.names.push_back("dep");
    return s;
  };
  const Shard mine = with_dependent(my_rows(g, c, true));
  FitOptions o;
  const StartSystem sys = start_system(mine, model, o, c);
  const auto dep = dependent_columns(sys, 1e-11, c);
  REQUIRE(dep == std::vector<std::int64_t>{5});
  // The start on the kept columns equals irls_start on a design without the column.
  const std::vector<double> start = solve_start(sys, dep, o, c);
  Shard kept = all_rows(g, true);
  const std::vector<double> ref_start = irls_start(kept, model, o, self);
  CHECK(ref::rel_diff(start, ref_start) <= 1e-10);
  // A sampled look finds the same dependent column.
  o.sample.fraction = 0.25;
  const StartSystem sampled = start_system(mine, model, o, c, true);
  CHECK(sampled.sampled);
  CHECK(dependent_columns(sampled, 1e-9, c) == std::vector<std::int64_t>{5});
  // One weighted least-squares step: for the gaussian identity model it is the exact
  // least-squares fit, i.e. the fit from there converges at once.
  const Glm gauss(Family::gaussian, Link::identity);
  FitOptions go;
  go.theta0 = irls_start(kept, gauss, go, self);
  const FitResult gr = fit(kept, gauss, go, self);
  CHECK(gr.iterations == 0);
}
