// The named parts of fit() one by one (src/core/solver_parts.hpp): directions and step
// rules against quadratics whose answers are known, the stopping test, the decision
// message, and the Fisher row selector against in_fisher_sample. No MPI.
#include <catch2/catch.hpp>
#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "core/kernels.hpp"
#include "core/solver_parts.hpp"
#include "natgrad/core/error.hpp"
#include "reference.hpp"

using namespace natgrad;

namespace {
/// Normalised sums of the quadratic f(x) = 0.5 x^T A x - b^T x at x: gradient A x - b,
/// Fisher A (full p x p, or its diagonal).
Normalized quadratic(const std::vector<double>& A, const std::vector<double>& b, const std::vector<double>& x,
                     bool diagonal = false) {
  const std::size_t p = b.size();
  Normalized nz;
  nz.weight_sum = 1;
  nz.grad.assign(p, 0.0);
  for (std::size_t i = 0; i < p; ++i) {
    for (std::size_t j = 0; j < p; ++j) nz.grad[i] += A[i + j * p] * x[j];
    nz.grad[i] -= b[i];
  }
  if (diagonal)
    for (std::size_t j = 0; j < p; ++j) nz.fisher.push_back(A[j + j * p]);
  else
    nz.fisher = A;
  return nz;
}
const std::function<void(const std::string&)> no_log;
}  // namespace

TEST_CASE("Cholesky direction: the Newton step of a quadratic and its model KL", "[solver]") {
  // A symmetric positive definite; from x = 0 the Newton step lands on A^{-1} b = (1, -2, 3).
  const std::vector<double> A = {4, 1, 0, 1, 3, 1, 0, 1, 2};
  const std::vector<double> xstar = {1, -2, 3};
  std::vector<double> b(3, 0.0);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) b[i] += A[i + 3 * j] * xstar[j];
  const Normalized nz = quadratic(A, b, {0, 0, 0});
  CholeskyDirection dir(FisherKind::expected);
  CHECK(dir.fisher_kind() == FisherKind::expected);
  std::vector<double> d(3);
  const DirectionOutcome out = dir.compute(nz, 0.0, 0, no_log, d);
  REQUIRE(out.status == Reason::running);
  CHECK(out.damping == 0.0);
  for (int j = 0; j < 3; ++j) CHECK(d[j] == Approx(xstar[j]).epsilon(1e-12));
  // 0.5 d^T A d = 0.5 b^T A^{-1} b = 0.5 x*^T A x*.
  double q = 0;
  for (int j = 0; j < 3; ++j) q += xstar[j] * b[j];
  CHECK(out.kl_unit == Approx(0.5 * q).epsilon(1e-12));
}

TEST_CASE("Cholesky direction: singular Fisher raises the damping and says so", "[solver]") {
  const std::vector<double> A = {1, 1, 1, 1};  // rank 1
  const Normalized nz = quadratic(A, {1, -1}, {0, 0});
  CholeskyDirection dir(FisherKind::empirical);
  std::vector<double> d(2);
  std::vector<std::string> notes;
  const DirectionOutcome out = dir.compute(nz, 0.0, 7, [&](const std::string& m) { notes.push_back(m); }, d);
  REQUIRE(out.status == Reason::running);
  CHECK(out.damping > 0);
  REQUIRE(notes.size() == 1);
  CHECK(notes[0].rfind("iteration 7: Cholesky of F + 0 I failed; damping raised to ", 0) == 0);
  // (A + lambda I) d = -g with g = -b: d = b / lambda along (1, -1), A's null space (to
  // the accuracy of a solve with condition number 2 / lambda).
  CHECK(d[0] == Approx(1 / out.damping).epsilon(1e-6));
  CHECK(d[1] == Approx(-1 / out.damping).epsilon(1e-6));

  const Normalized zero = quadratic({0, 0, 0, 0}, {1, 0}, {0, 0});
  const DirectionOutcome bad = dir.compute(zero, 0.0, 3, no_log, d);
  CHECK(bad.status == Reason::singular_fisher);
  CHECK(bad.damping == 0.0);
}

TEST_CASE("diagonal and gradient directions", "[solver]") {
  const std::vector<double> A = {4, 0, 0, 0, 0.5, 0, 0, 0, 2};
  const Normalized nz = quadratic(A, {2, 1, -4}, {0, 0, 0}, true);
  DiagonalDirection diag;
  CHECK(diag.fisher_kind() == FisherKind::diagonal);
  std::vector<double> d(3);
  DirectionOutcome out = diag.compute(nz, 0.0, 0, no_log, d);
  CHECK(out.status == Reason::running);
  CHECK(d == std::vector<double>{0.5, 2.0, -2.0});  // -g_j / F_jj: the exact minimiser
  CHECK(out.kl_unit == 0.5 * (4 * 0.25 + 0.5 * 4 + 2 * 4));
  CHECK(out.decrement == Approx(std::sqrt(2 * out.kl_unit)).epsilon(1e-15));  // sqrt(g^T F^-1 g)
  out = diag.compute(nz, 1.0, 0, no_log, d);  // damped, relative to the diagonal: -g_j / ((1 + 1) F_jj)
  CHECK(d == std::vector<double>{0.25, 1.0, -1.0});
  // Scale-invariant: parameter 1 scaled by 1e-12 (F_11 by 1e-24, g_1 by 1e-12) moves only d_1, by 1e12,
  // whatever the other diagonal entries are; a column without curvature gets no step.
  const Normalized scaled = quadratic({4, 0, 0, 0, 0.5e-24, 0, 0, 0, 0}, {2, 1e-12, -4}, {0, 0, 0}, true);
  out = diag.compute(scaled, 0.0, 0, no_log, d);
  CHECK(d[0] == 0.5);
  CHECK(d[1] == Approx(2e12).epsilon(1e-15));
  CHECK(d[2] == 0.0);

  GradientDirection gd;
  CHECK(gd.fisher_kind() == FisherKind::none);
  out = gd.compute(nz, 0.0, 0, no_log, d);
  CHECK(d == std::vector<double>{2, 1, -4});
  CHECK(out.kl_unit == 0.0);
}

TEST_CASE("make_direction and make_step_rule follow the options", "[solver]") {
  FitOptions o;
  o.fisher = FisherKind::empirical;
  CHECK(make_direction(o)->fisher_kind() == FisherKind::empirical);
  o.method = Method::diag;
  CHECK(make_direction(o)->fisher_kind() == FisherKind::diagonal);
  o.method = Method::gd;
  CHECK(make_direction(o)->fisher_kind() == FisherKind::none);
  o.lr = 0.5;
  o.step = StepRule::fixed;
  CHECK_FALSE(make_step_rule(o)->backtracks());
  o.step = StepRule::armijo;
  CHECK(make_step_rule(o)->backtracks());
  CHECK(make_step_rule(o)->initial(100.0) == 0.5);
  o.step = StepRule::kl;
  o.kl = 0.01;
  CHECK(make_step_rule(o)->initial(1.0) == Approx(0.1).epsilon(1e-15));
}

namespace {
/// Backtracking as fit() runs it, on f(t) along a line: the accepted length, or -1.
template <class F>
double backtrack(const StepLengthRule& rule, const SearchStart& s, double kl_unit, F f, int max_halvings = 40) {
  double t = rule.initial(kl_unit);
  if (!rule.backtracks()) return t;
  for (int h = 0; h <= max_halvings; ++h) {
    if (rule.accept(s, Trial{t, f(t), {}})) return t;
    t = rule.shrink(t);
  }
  return -1;
}
}  // namespace

TEST_CASE("step rules on a quadratic whose answer is known", "[solver]") {
  // f(x) = 0.5 x^2 from x = 1 along d = -1 (gradient 1, slope -1): f(t) = 0.5 (1 - t)^2.
  auto f = [](double t) { return 0.5 * (1 - t) * (1 - t); };
  const SearchStart s{0.5, 1.0, -1.0};
  // Fixed: whatever lr says, untested.
  CHECK(backtrack(FixedStep(4.0), s, 0.5, f) == 4.0);
  // Armijo from 4: f(4) = 4.5, f(2) = 0.5 (no decrease) are rejected, f(1) = 0 accepted.
  CHECK(backtrack(ArmijoStep(4.0, 1e-4), s, 0.5, f) == 1.0);
  CHECK(backtrack(ArmijoStep(1.0, 1e-4), s, 0.5, f) == 1.0);
  // c1 = 0.9 asks for 90% of the linear decrease: 1 and 0.5 fail (0.5 > 0.05; 0.125 > 0.05)...
  CHECK(backtrack(ArmijoStep(1.0, 0.9), s, 0.5, f) == 0.125);  // f = 0.3828 <= 0.5 - 0.1125
  // KL: model KL 0.5 d^T F d = 0.5 per unit step; radius 0.02 caps the first trial at 0.2.
  CHECK(KlStep(1.0, 1e-4, 0.02).initial(0.5) == Approx(0.2).epsilon(1e-15));
  CHECK(backtrack(KlStep(1.0, 1e-4, 0.02), s, 0.5, f) == Approx(0.2).epsilon(1e-15));
  CHECK(KlStep(1.0, 1e-4, 0.02).initial(0.0) == 1.0);  // no curvature information: lr
  CHECK(KlStep(0.1, 1e-4, 0.02).initial(0.5) == 0.1);  // lr stays the cap
  // A direction of ascent finds nothing.
  CHECK(backtrack(ArmijoStep(1.0, 1e-4), SearchStart{0.5, 1.0, 1.0}, 0.5,
                  [](double t) { return 0.5 * (1 + t) * (1 + t); }) == -1);
}

TEST_CASE("Armijo at the loss's rounding floor", "[solver]") {
  const ArmijoStep rule(1.0, 1e-4);
  const SearchStart s{1.0, 1e-6, -1e-3};
  // Level loss: Armijo wants 1e-7 less. Accepted only for a full trial whose gradient falls.
  CHECK_FALSE(rule.accept(s, Trial{1.0, 1.0, {}}));
  CHECK(rule.accept(s, Trial{1.0, 1.0, [] { return 1e-7; }}));
  CHECK_FALSE(rule.accept(s, Trial{1.0, 1.0, [] { return 2e-6; }}));
  CHECK_FALSE(rule.accept(s, Trial{1.0, 1.0 + 1e-11, [] { return 1e-7; }}));
  // 16 ulps of slack on the Armijo test itself.
  CHECK(rule.accept(SearchStart{1.0, 1.0, 0.0}, Trial{1.0, 1.0 + 8 * 2.220446049250313e-16, {}}));
  CHECK_FALSE(rule.accept(s, Trial{1.0, NAN, [] { return 0.0; }}));
  CHECK_FALSE(rule.accept(s, Trial{1.0, INFINITY, {}}));
}

TEST_CASE("convergence test: gradient, loss change, iteration limit, in that order", "[solver]") {
  FitOptions o;
  o.stop = StopRule::gradient;
  o.tol = 1e-6;
  o.ftol = 1e-8;
  o.max_iter = 10;
  const ConvergenceTest c(o);
  CHECK(c.check(10, 1.0, 1.0, 1e-7) == Reason::converged_gradient);
  CHECK(c.check(3, 1.0, 1.0 + 1e-9, 1e-3) == Reason::converged_loss);
  CHECK(c.check(0, 1.0, 1.0, 1e-3) == Reason::running);  // no previous loss at k = 0
  CHECK(c.check(3, 100.0, 100.0 + 1e-7, 1e-3) == Reason::converged_loss);  // relative to |f|
  CHECK(c.check(3, 1.0, 1.1, 1e-3) == Reason::running);
  CHECK(c.check(10, 1.0, 1.1, 1e-3) == Reason::max_iterations);
  o.ftol = 0;  // off
  CHECK(ConvergenceTest(o).check(3, 1.0, 1.0, 1e-3) == Reason::running);
}

TEST_CASE("convergence test: the Newton decrement rule, and gd's gradient rule", "[solver]") {
  FitOptions o;  // the default rule: decrement
  o.tol = 1e-6;
  o.max_iter = 10;
  const ConvergenceTest c(o);
  CHECK(c.needs_decrement());
  CHECK(c.check(3, 1.0, 1.1, 1e-3, 1e-7) == Reason::converged_decrement);
  CHECK(c.check(3, 1.0, 1.1, 1e-9, 1e-5) == Reason::running);  // a small gradient is not enough
  CHECK(c.check(3, 1.0, 1.1, 1e-3, 1.41e-6) == Reason::converged_decrement);  // 0.5 dec^2 <= tol^2
  CHECK(c.check(3, 1.0, 1.1, 1e-3, 1.42e-6) == Reason::running);
  CHECK(c.check(3, 1.0, 1.1, 1e-9) == Reason::running);        // no decrement at this iterate
  CHECK(c.check(10, 1.0, 1.1, 1e-9) == Reason::max_iterations);
  o.method = Method::gd;  // no metric: the gradient
  const ConvergenceTest g(o);
  CHECK_FALSE(g.needs_decrement());
  CHECK(g.check(3, 1.0, 1.1, 1e-7) == Reason::converged_gradient);
}

TEST_CASE("Cholesky direction: the decrement, and the same step at any column scaling", "[solver]") {
  const std::vector<double> A = {4, 1, 0.5, 1, 3, 1, 0.5, 1, 2};
  const std::vector<double> b = {1, -2, 3};
  CholeskyDirection dir(FisherKind::expected);
  std::vector<double> d0(3), d(3);
  const DirectionOutcome o0 = dir.compute(quadratic(A, b, {0, 0, 0}), 0.0, 0, no_log, d0);
  REQUIRE(o0.status == Reason::running);
  CHECK(o0.decrement == Approx(std::sqrt(2 * o0.kl_unit)).epsilon(1e-14));
  for (int k : {-12, -6, 6, 12}) {
    // Parameter 1 scaled: theta_1 = s theta'_1, so F_1j by 1 / s, F_11 by 1 / s^2, g_1 by 1 / s.
    const double s = std::pow(10.0, k);
    std::vector<double> As = A;
    for (int j = 0; j < 3; ++j) {
      As[1 + 3 * j] /= s;
      As[j + 3 * 1] /= s;
    }
    std::vector<double> bs = b;
    bs[1] /= s;
    const DirectionOutcome o = dir.compute(quadratic(As, bs, {0, 0, 0}), 0.0, 0, no_log, d);
    CAPTURE(k);
    REQUIRE(o.status == Reason::running);
    CHECK(o.damping == 0.0);
    CHECK(d[0] == Approx(d0[0]).epsilon(1e-12));
    CHECK(d[1] == Approx(d0[1] * s).epsilon(1e-12));
    CHECK(d[2] == Approx(d0[2]).epsilon(1e-12));
    CHECK(o.decrement == Approx(o0.decrement).epsilon(1e-12));
  }
}

TEST_CASE("decision message: one encoding, direction replaced only when proceeding", "[solver]") {
  DecisionChannel ch(2);
  Decision root;
  root.direction = {1.5, -2.5};
  root.set_status(Reason::running);
  root.step = 0.25;
  root.damping = 1e-3;
  root.kl_unit = 0.75;
  root.loss = 0.6;
  root.grad_norm = 0.01;
  ch.encode(root);
  const auto msg = ch.message();
  CHECK(std::vector<double>(msg.begin(), msg.end()) == std::vector<double>{0, 0.25, 1e-3, 0.75, 0.6, 0.01, 1.5, -2.5});
  Decision other;
  other.direction = {9, 9};
  ch.decode(other);
  CHECK(other.action == Decision::Action::proceed);
  CHECK(other.reason == Reason::running);
  CHECK(other.step == 0.25);
  CHECK(other.damping == 1e-3);
  CHECK(other.kl_unit == 0.75);
  CHECK(other.loss == 0.6);
  CHECK(other.grad_norm == 0.01);
  CHECK(other.direction == root.direction);

  root.action = Decision::Action::halve;
  root.direction = {7, 7};
  ch.encode(root);
  CHECK(ch.message()[0] == DecisionChannel::kHalveCode);
  ch.decode(other);
  CHECK(other.action == Decision::Action::halve);
  CHECK(other.direction == std::vector<double>{1.5, -2.5});  // the previous step's

  root.set_status(Reason::singular_fisher);
  CHECK(root.action == Decision::Action::stop);
  ch.encode(root);
  CHECK(ch.message()[0] == static_cast<double>(static_cast<int>(Reason::singular_fisher)));
  ch.decode(other);
  CHECK(other.action == Decision::Action::stop);
  CHECK(other.reason == Reason::singular_fisher);

  // Root out of memory: every rank that decodes the message throws one CollectiveError
  // naming what and its size.
  root.oom_what = static_cast<int>(natgrad::RootAllocation::fisher);
  root.oom_bytes = 2.5 * 1073741824.0;
  ch.encode(root);
  CHECK(ch.message()[0] == DecisionChannel::kOutOfMemoryCode);
  try {
    ch.decode(other);
    FAIL("no CollectiveError");
  } catch (const natgrad::CollectiveError& e) {
    CHECK(std::string(e.what()) ==
          "out of memory on rank 0: the normalised p x p Fisher for 2 parameters (about 2.50 GiB) could not be "
          "allocated; see 'Memory admission' in docs/cluster.md");
  }
}

TEST_CASE("row selector: the rows of in_fisher_sample, block by block", "[kernels][sample]") {
  Shard s = ref::random_shard(1000, 3, 11, true, false);
  s.first_row = 123457;  // a later rank's shard
  const FisherSample sample{0.3, 5};
  const RowSelector rows(sample);
  CHECK_FALSE(rows.all());
  std::vector<std::int64_t> sel(1000);
  for (std::int64_t i0 = 0; i0 < 1000; i0 += 97) {
    const std::int64_t m = std::min<std::int64_t>(97, 1000 - i0);
    double fwsum = 0, want_w = 0;
    std::vector<std::int64_t> want;
    for (std::int64_t i = 0; i < m; ++i)
      if (in_fisher_sample(s.first_row + i0 + i, sample)) {
        want.push_back(i);
        want_w += s.weight[static_cast<std::size_t>(i0 + i)];
      }
    const std::int64_t ns = rows.select(s, i0, m, sel.data(), fwsum);
    CHECK(std::vector<std::int64_t>(sel.begin(), sel.begin() + ns) == want);
    CHECK(fwsum == want_w);
    for (std::int64_t r = 0; r < ns; ++r) CHECK(rows.row(sel.data(), r) == want[static_cast<std::size_t>(r)]);
    // A thread's slice of the block's rows [s0, s1): the selected rows inside it.
    const std::int64_t s0 = m / 3, s1 = 2 * m / 3;
    const auto [k0, k1] = rows.slice(sel.data(), ns, s0, s1);
    for (std::int64_t r = 0; r < ns; ++r) CHECK((r >= k0 && r < k1) == (want[r] >= s0 && want[r] < s1));
  }
  // No sample: every row, nothing listed, no weight counted (the sum is the weight sum).
  const RowSelector every(FisherSample{});
  CHECK(every.all());
  double fwsum = 0;
  std::fill(sel.begin(), sel.end(), -1);
  CHECK(every.select(s, 10, 50, sel.data(), fwsum) == 50);
  CHECK(fwsum == 0);
  CHECK(sel[0] == -1);
  CHECK(every.row(sel.data(), 17) == 17);
  CHECK(every.slice(sel.data(), 50, 5, 20) == std::pair<std::int64_t, std::int64_t>{5, 20});
  CHECK(every.take(123));
  CHECK_FALSE(RowSelector(FisherSample{0.0, 1}).take(5));  // fraction 0 selects nothing
}

TEST_CASE("the divergence test: loss growth past 1e3 x max(|start|, 1) above the start", "[solver]") {
  const DivergenceTest t;
  CHECK_FALSE(t.diverged(0.69, 0.69 + 999.9));  // a start below 1 in size: the allowance is 1e3
  CHECK(t.diverged(0.69, 0.69 + 1000.1));
  CHECK_FALSE(t.diverged(50.0, 50.0 + 4.9e4));  // relative to the start's size
  CHECK(t.diverged(50.0, 50.0 + 5.1e4));
  CHECK_FALSE(t.diverged(-2e6, 1e9 - 2e6 - 1));  // a negative start (poisson, gamma): its size
  CHECK(t.diverged(-2e6, 2e9));
  CHECK_FALSE(t.diverged(10.0, -1e12));  // a falling loss never diverges
  CHECK(t.diverged(0.0, INFINITY));
}
