// The BLAS-3 kernels against the naive reference, finite differences, and the
// model's own formulas.
#include <catch2/catch.hpp>
#include <cmath>

#include "natgrad/error.hpp"
#include "natgrad/kernels.hpp"
#include "natgrad/model.hpp"
#include "natgrad/rng.hpp"
#include "reference.hpp"

using namespace natgrad;

namespace {
Normalized fast_sums(const Shard& s, const Model& m, const std::vector<double>& theta, FisherKind k,
                     int threads, std::int64_t block) {
  Workspace ws;
  ws.prepare(threads, s.n_cols, block, k);
  PackedSums sums;
  accumulate(s, m, theta, k, threads, ws, sums);
  Normalized nz;
  finalize(sums, nz);
  return nz;
}
std::vector<double> random_theta(std::int64_t p, std::uint64_t seed) {
  std::vector<double> t(p);
  for (std::int64_t j = 0; j < p; ++j) t[j] = 0.4 * rng::normal(seed, 7, 0, j);
  return t;
}
}  // namespace

TEST_CASE("gradient and every Fisher match the naive reference to 1e-12", "[kernels]") {
  const LogisticModel model;
  // p = 400 with 2 threads exercises the shared threaded-SYRK path (p > 384).
  const auto [n, p, threads, block] = GENERATE(std::make_tuple(1000, 3, 1, 256), std::make_tuple(997, 17, 2, 64),
                                               std::make_tuple(531, 40, 2, 7), std::make_tuple(600, 400, 2, 128),
                                               std::make_tuple(5, 6, 2, 256));
  const bool weighted = GENERATE(false, true);
  const Shard s = ref::random_shard(n, p, 42 + n, weighted, weighted);
  const auto theta = random_theta(p, 3);
  for (FisherKind k : {FisherKind::expected, FisherKind::empirical, FisherKind::empirical_centered,
                       FisherKind::diagonal, FisherKind::none}) {
    if (weighted && k == FisherKind::empirical_centered) continue;  // defined for unit weights
    CAPTURE(n, p, threads, block, weighted, to_string(k));
    const Normalized fast = fast_sums(s, model, theta, k, threads, block);
    const ref::Sums slow = ref::naive_sums(s, model, theta, k);
    CHECK(std::abs(fast.loss - slow.loss) <= 1e-12 * std::abs(slow.loss));
    CHECK(ref::rel_diff(fast.grad, slow.grad) <= 1e-12);
    CHECK(ref::rel_diff(fast.fisher, slow.fisher) <= 1e-12);
    CHECK(fast.fisher.size() == slow.fisher.size());
  }
}

TEST_CASE("gradient matches central finite differences of the loss", "[kernels]") {
  const LogisticModel model;
  const Shard s = ref::random_shard(800, 6, 7, true, true);
  auto theta = random_theta(6, 11);
  const Normalized nz = fast_sums(s, model, theta, FisherKind::none, 2, 100);
  Workspace ws;
  ws.prepare(2, 6, 100, FisherKind::none);
  for (std::size_t j = 0; j < theta.size(); ++j) {
    const double h = 1e-6;
    double lp[2], lm[2];
    auto tp = theta, tm = theta;
    tp[j] += h;
    tm[j] -= h;
    accumulate_loss(s, model, tp, 2, ws, lp);
    accumulate_loss(s, model, tm, 2, ws, lm);
    const double fd = (lp[0] / lp[1] - lm[0] / lm[1]) / (2 * h);
    CHECK(fd == Approx(nz.grad[j]).epsilon(1e-6).margin(1e-9));
  }
}

TEST_CASE("the loss-only pass equals the fused pass's loss", "[kernels]") {
  const LogisticModel model;
  const Shard s = ref::random_shard(1234, 9, 5, true, false);
  const auto theta = random_theta(9, 1);
  const Normalized nz = fast_sums(s, model, theta, FisherKind::expected, 2, 256);
  Workspace ws;
  ws.prepare(2, 9, 256, FisherKind::expected);
  double lw[2];
  accumulate_loss(s, model, theta, 2, ws, lw);
  CHECK(lw[0] / lw[1] == Approx(nz.loss).epsilon(1e-14));
}

TEST_CASE("an empty shard contributes zeros", "[kernels]") {
  const LogisticModel model;
  Shard s = ref::random_shard(0, 4, 1, false, false);
  Workspace ws;
  ws.prepare(2, 4, 64, FisherKind::expected);
  PackedSums sums;
  accumulate(s, model, std::vector<double>(4, 0.1), FisherKind::expected, 2, ws, sums);
  for (double v : sums.buf) CHECK(v == 0.0);
}

TEST_CASE("logistic model: stable and consistent per-row quantities", "[model]") {
  const LogisticModel m;
  const double etas[] = {-800, -30, -1.5, 0, 0.7, 25, 800};
  for (double y : {0.0, 1.0, 0.3}) {
    for (double eta : etas) {
      double nll, dnll, fw;
      m.eval(1, &eta, &y, &nll, &dnll, &fw);
      CAPTURE(eta, y);
      REQUIRE(std::isfinite(nll));
      const double p = 1 / (1 + std::exp(-eta));
      CHECK(dnll == Approx(p - y).margin(1e-15));
      CHECK(fw == Approx(p * (1 - p)).margin(1e-300));
      if (std::abs(eta) < 10) {  // where the textbook formula is itself accurate
        const double h = 1e-6;
        double a = eta + h, b = eta - h, na, nb;
        m.eval(1, &a, &y, &na, nullptr, nullptr);
        m.eval(1, &b, &y, &nb, nullptr, nullptr);
        CHECK((na - nb) / (2 * h) == Approx(dnll).margin(1e-8));
        // -log p(y|eta) from its definition
        CHECK(nll == Approx(-(y * std::log(p) + (1 - y) * std::log(1 - p))).epsilon(1e-12));
      }
    }
  }
  CHECK(m.check_label(0).empty());
  CHECK(m.check_label(1).empty());
  CHECK_FALSE(m.check_label(2).empty());
  CHECK_FALSE(m.check_label(-0.1).empty());
  CHECK_FALSE(m.check_label(NAN).empty());
}

TEST_CASE("Fisher kinds parse and print", "[kernels]") {
  for (const char* s : {"expected", "empirical", "empirical-centered"})
    CHECK(std::string(to_string(fisher_kind_from_string(s))) == s);
  CHECK_THROWS_AS(fisher_kind_from_string("hessian"), Error);
}
