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

TEST_CASE("every family and the multinomial match the naive reference", "[kernels][glm]") {
  struct Case {
    const char* family;
    const char* link;
    int classes;
  };
  const Case cases[] = {{"binomial", "logit", 0},   {"binomial", "probit", 0}, {"binomial", "cloglog", 0},
                        {"poisson", "log", 0},      {"gaussian", "identity", 0}, {"gaussian", "log", 0},
                        {"gamma", "log", 0},        {"gamma", "inverse", 0},   {"multinomial", "", 3},
                        {"multinomial", "", 4}};
  for (const auto& c : cases) {
    const auto model = make_model(c.family, c.link, c.classes);
    const bool weighted = true;
    Shard s = ref::relabel(ref::random_shard(301, 5, 17, weighted, std::string(c.family) != "multinomial"),
                           c.family, c.classes, 5);
    auto theta = random_theta(5 * model->n_outputs(), 23);
    if (std::string(c.link) == "inverse") {  // keep mu = 1/eta positive: small slopes, offset > 0
      for (auto& t : theta) t *= 0.01;
      for (auto& o : s.offset) o = 2.0 + 0.1 * o;
    }
    for (FisherKind k : {FisherKind::expected, FisherKind::empirical, FisherKind::meat, FisherKind::diagonal}) {
      CAPTURE(model->name(), to_string(k));
      for (int threads : {1, 2}) {
        const Normalized fast = fast_sums(s, *model, theta, k, threads, 64);
        const ref::Sums slow = ref::naive_sums(s, *model, theta, k);
        REQUIRE(std::isfinite(slow.loss));
        CHECK(std::abs(fast.loss - slow.loss) <= 1e-12 * std::abs(slow.loss));
        CHECK(ref::rel_diff(fast.grad, slow.grad) <= 1e-12);
        CHECK(ref::rel_diff(fast.fisher, slow.fisher) <= 1e-12);
      }
    }
  }
}

TEST_CASE("per-row derivatives of every family agree with finite differences", "[model][glm]") {
  const std::pair<const char*, const char*> glms[] = {{"binomial", "logit"}, {"binomial", "probit"},
                                                      {"binomial", "cloglog"}, {"poisson", "log"},
                                                      {"gaussian", "identity"}, {"gaussian", "log"},
                                                      {"gamma", "log"}, {"gamma", "inverse"}};
  for (const auto& [f, l] : glms) {
    const auto m = make_model(f, l);
    const double ys[] = {0.0, 1.0, 0.4, 3.0};
    for (double y : ys) {
      if (!m->check_label(y).empty()) continue;
      for (double eta : {0.3, 0.9, 1.7}) {
        CAPTURE(m->name(), y, eta);
        double nll, dnll, fw;
        m->eval(1, &eta, &y, &nll, &dnll, &fw);
        const double h = 1e-6;
        double a = eta + h, b = eta - h, na, nb;
        m->eval(1, &a, &y, &na, nullptr, nullptr);
        m->eval(1, &b, &y, &nb, nullptr, nullptr);
        CHECK((na - nb) / (2 * h) == Approx(dnll).epsilon(1e-6).margin(1e-8));
        // fisher = (dmu/deta)^2 / V(mu), with V from the Pearson hook: pearson = (y-mu)^2/V.
        const double mu = m->mean(eta), dmu = (m->mean(a) - m->mean(b)) / (2 * h);
        const double yv = mu + 1.0;  // any y != mu gives V through the Pearson residual
        const double V = 1.0 / m->pearson(&eta, yv);
        CHECK(fw == Approx(dmu * dmu / V).epsilon(1e-6));
        // the unit deviance is 2 (nll(y, eta) - nll at the saturated mean) for the GLM families
        CHECK(m->unit_deviance(&eta, y) >= -1e-12);
      }
    }
  }
}

TEST_CASE("multinomial: gradient by finite differences and Fisher factors", "[model][glm]") {
  const MultinomialModel m(4);
  const double eta[3] = {0.2, -0.7, 1.1};
  for (double y : {0.0, 1.0, 3.0}) {
    double nll, dnll[3], fac[12];
    m.eval_multi(1, eta, &y, &nll, dnll, fac);
    double p[4];
    m.probabilities(eta, p);
    CHECK(nll == Approx(-std::log(p[static_cast<int>(y)])));
    for (int k = 0; k < 3; ++k) {
      double e1[3] = {eta[0], eta[1], eta[2]}, e2[3] = {eta[0], eta[1], eta[2]};
      e1[k] += 1e-6;
      e2[k] -= 1e-6;
      double n1, n2;
      m.eval_multi(1, e1, &y, &n1, nullptr, nullptr);
      m.eval_multi(1, e2, &y, &n2, nullptr, nullptr);
      CHECK((n1 - n2) / 2e-6 == Approx(dnll[k]).margin(1e-8));
      for (int l = 0; l < 3; ++l) {
        double mm = 0;
        for (int c = 0; c < 4; ++c) mm += fac[k * 4 + c] * fac[l * 4 + c];
        CHECK(mm == Approx((k == l ? p[k + 1] : 0.0) - p[k + 1] * p[l + 1]).margin(1e-14));
      }
    }
  }
  CHECK_FALSE(m.check_label(4).empty());
  CHECK_FALSE(m.check_label(1.5).empty());
  CHECK(m.check_label(3).empty());
}
