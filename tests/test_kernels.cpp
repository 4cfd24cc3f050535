// The BLAS-3 kernels against the naive reference, finite differences, and the
// model's own formulas.
#include <catch2/catch.hpp>
#include <cmath>

#include "natgrad/core/error.hpp"
#include "core/kernels.hpp"
#include "natgrad/core/model.hpp"
#include "natgrad/core/rng.hpp"
#include "kernel_sets.hpp"
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

TEST_CASE("packed Fisher kernel and the BLAS path both match the naive reference", "[kernels]") {
  // Single-output models with p <= 384 and per-thread accumulators use natgrad's own
  // packed kernel (the active SIMD set: AVX2, AVX-512), else (and with the portable
  // versions) the BLAS SYRK. Every variant this machine runs is checked (test::kernel_choices:
  // also the AVX-512 set's 8-wide code emulated on AVX2): p = 1, 4, 13 (padding), 64, 130,
  // 384 (largest), with partial row sweeps (blocks of 200 and 37 rows), 1 and 2 threads,
  // with and without a Fisher sample (rows staged across blocks).
  const LogisticModel model;
  const auto choice = GENERATE(from_range(test::kernel_choices()));
  const auto [n, p, threads, block] =
      GENERATE(std::make_tuple(301, 1, 1, 37), std::make_tuple(555, 4, 2, 200), std::make_tuple(555, 13, 1, 37),
               std::make_tuple(700, 64, 2, 200), std::make_tuple(401, 130, 1, 256), std::make_tuple(300, 384, 2, 128));
  const test::UseKernels use(choice);
  const Shard s = ref::random_shard(n, p, 5 + p, true, true);
  const auto theta = random_theta(p, 8);
  for (const FisherSample sample : {FisherSample{}, FisherSample{0.5, 7}}) {
    for (FisherKind k : {FisherKind::expected, FisherKind::empirical}) {
      CAPTURE(choice.name, n, p, threads, block, sample.fraction, to_string(k));
      Workspace ws;
      ws.prepare(threads, p, block, k);
      PackedSums sums;
      accumulate(s, model, theta, k, threads, ws, sums, sample);
      Normalized fast;
      finalize(sums, fast);
      const ref::Sums slow = ref::naive_sums(s, model, theta, k, sample);
      CHECK(ws.kernels() == choice.set);
      CHECK((ws.pstride_ > 0) == (choice.set != nullptr));  // the packed layout iff a SIMD set
      if (choice.set != nullptr) CHECK(ws.fisher_ld_ % choice.set->panel == 0);
      CHECK(std::abs(fast.loss - slow.loss) <= 1e-12 * std::abs(slow.loss));
      CHECK(ref::rel_diff(fast.grad, slow.grad) <= 1e-12);
      CHECK(ref::rel_diff(fast.fisher, slow.fisher) <= 1e-12);
      // every entry, not only in norm: a wrong tile would show as a block of errors
      double worst = 0;
      for (std::size_t i = 0; i < slow.fisher.size(); ++i)
        worst = std::max(worst, std::abs(fast.fisher[i] - slow.fisher[i]));
      double scale = 0;
      for (double v : slow.fisher) scale = std::max(scale, std::abs(v));
      CHECK(worst <= 1e-13 * scale);
    }
    // The loss-only pass of the line search (its own eta = X theta).
    Workspace ws;
    ws.prepare(threads, p, block, FisherKind::none);
    double lw[2];
    accumulate_loss(s, model, theta, threads, ws, lw);
    const ref::Sums slow = ref::naive_sums(s, model, theta, FisherKind::none);
    CHECK(std::abs(lw[0] / lw[1] - slow.loss) <= 1e-12 * std::abs(slow.loss));
  }
}

TEST_CASE("the packed kernel past its default limit, and the BLAS SYRK below it", "[kernels]") {
  // detail::set_packed_max_p moves the crossover (what natgrad_bench --crossover measures):
  // p = 520 through the packed kernel at 1 and 2 threads (per-thread accumulators, not
  // the shared SYRK), and p = 64 through the BLAS SYRK with the SIMD row evaluation.
  const LogisticModel model;
  const auto choice = GENERATE(from_range(test::kernel_choices()));
  if (choice.set == nullptr) return;
  const test::UseKernels use(choice);
  for (const auto& [n, p, threads, limit] : {std::make_tuple(333, 520, 2, std::int64_t{1} << 20),
                                             std::make_tuple(301, 517, 1, std::int64_t{1} << 20),
                                             std::make_tuple(400, 64, 2, std::int64_t{0})}) {
    CAPTURE(choice.name, n, p, threads, limit);
    const std::int64_t was = detail::set_packed_max_p(limit);
    const Shard s = ref::random_shard(n, p, 9 + p, true, true);
    const auto theta = random_theta(p, 4);
    Workspace ws;
    ws.prepare(threads, p, 128, FisherKind::expected);
    PackedSums sums;
    accumulate(s, model, theta, FisherKind::expected, threads, ws, sums);
    detail::set_packed_max_p(was);
    CHECK((ws.pstride_ > 0) == (limit > 0));
    CHECK(static_cast<int>(ws.fisher_.size()) == threads);  // per-thread accumulators
    Normalized fast;
    finalize(sums, fast);
    const ref::Sums slow = ref::naive_sums(s, model, theta, FisherKind::expected);
    double worst = 0, scale = 0;
    for (std::size_t i = 0; i < slow.fisher.size(); ++i) {
      worst = std::max(worst, std::abs(fast.fisher[i] - slow.fisher[i]));
      scale = std::max(scale, std::abs(slow.fisher[i]));
    }
    CHECK(worst <= 1e-13 * scale);
    CHECK(ref::rel_diff(fast.grad, slow.grad) <= 1e-12);
  }
}

TEST_CASE("the float32 Fisher matches the naive float64 Fisher to float rounding", "[kernels]") {
  // FisherPrecision::float32: the operand in float (panels of panel_f32 for the packed
  // kernels, row-major for the BLAS SSYRK route), sums added into a double Fisher. Every
  // kernel set; the packed path (p <= limit), the SSYRK route per thread (limit 0) and
  // shared (p > limit, 2 threads); a Fisher sample. Loss and gradient stay float64 (1e-12);
  // each Fisher entry within 2e-6 of the largest (float rounding over at most 128 rows; a
  // wrong tile or panel would be off by O(1)).
  const LogisticModel model;
  const auto choice = GENERATE(from_range(test::kernel_choices()));
  const test::UseKernels use(choice);
  for (const auto& [n, p, threads, limit] :
       {std::make_tuple(555, 13, 1, std::int64_t{-1}), std::make_tuple(700, 64, 2, std::int64_t{-1}),
        std::make_tuple(401, 130, 2, std::int64_t{0}), std::make_tuple(300, 600, 2, std::int64_t{-1}),
        std::make_tuple(300, 37, 1, std::int64_t{0})}) {
    const std::int64_t was = detail::set_packed_max_p(limit);
    const Shard s = ref::random_shard(n, p, 3 + p, true, true);
    const auto theta = random_theta(p, 6);
    for (const FisherSample sample : {FisherSample{}, FisherSample{0.5, 7}}) {
      CAPTURE(choice.name, n, p, threads, limit, sample.fraction);
      Workspace ws;
      ws.fisher_precision = FisherPrecision::float32;
      ws.prepare(threads, p, 128, FisherKind::expected);
      CHECK(ws.f32_);
      CHECK(ws.scaled_.size() + ws.scaled32_.size() > 0);
      PackedSums sums;
      accumulate(s, model, theta, FisherKind::expected, threads, ws, sums, sample);
      Normalized fast;
      finalize(sums, fast);
      const ref::Sums slow = ref::naive_sums(s, model, theta, FisherKind::expected, sample);
      CHECK(std::abs(fast.loss - slow.loss) <= 1e-12 * std::abs(slow.loss));
      CHECK(ref::rel_diff(fast.grad, slow.grad) <= 1e-12);
      double worst = 0, scale = 0;
      for (std::size_t i = 0; i < slow.fisher.size(); ++i) {
        worst = std::max(worst, std::abs(fast.fisher[i] - slow.fisher[i]));
        scale = std::max(scale, std::abs(slow.fisher[i]));
      }
      CHECK(worst <= 2e-6 * scale);
      CHECK(worst > 0);  // it really ran in float
    }
    detail::set_packed_max_p(was);
  }
}

TEST_CASE("a float32 Fisher pass whose products leave float's range is made in float64", "[kernels]") {
  // A column of about 1e22: (a_i x_ij)^2 overflows float. The rank's pass is redone in
  // float64 (accumulate), so its Fisher is finite and equal to the naive one.
  const LogisticModel model;
  const auto choice = GENERATE(from_range(test::kernel_choices()));
  const test::UseKernels use(choice);
  Shard s = ref::random_shard(300, 9, 21, true, false);
  for (std::int64_t i = 0; i < s.n_rows; ++i) s.x[static_cast<std::size_t>(i * s.n_cols + 4)] *= 1e22;
  std::vector<double> theta = random_theta(9, 2);
  theta[4] = 1e-23;
  Workspace ws;
  ws.fisher_precision = FisherPrecision::float32;
  PackedSums sums;
  accumulate(s, model, theta, FisherKind::expected, 2, ws, sums);
  CHECK(ws.fisher_precision == FisherPrecision::float32);  // restored for the next pass
  Normalized fast;
  finalize(sums, fast);
  const ref::Sums slow = ref::naive_sums(s, model, theta, FisherKind::expected);
  for (double v : fast.fisher) REQUIRE(std::isfinite(v));
  CHECK(ref::rel_diff(fast.fisher, slow.fisher) <= 1e-12);
  CHECK(ref::rel_diff(fast.grad, slow.grad) <= 1e-12);
}

TEST_CASE("every SIMD set's eta = X theta matches the naive product", "[kernels]") {
  // Row counts around the 4-row unroll and column counts around the vector widths (4, 8).
  for (const auto& choice : test::kernel_choices()) {
    if (choice.set == nullptr) continue;
    for (std::int64_t m : {1, 3, 4, 5, 11}) {
      for (std::int64_t p : {1, 3, 4, 7, 8, 9, 15, 16, 17, 33}) {
        CAPTURE(choice.name, m, p);
        std::vector<double> X(static_cast<std::size_t>(m * p)), theta(static_cast<std::size_t>(p));
        for (std::size_t i = 0; i < X.size(); ++i) X[i] = rng::normal(11, 1, 0, static_cast<std::int64_t>(i));
        for (std::size_t j = 0; j < theta.size(); ++j) theta[j] = rng::normal(11, 2, 0, static_cast<std::int64_t>(j));
        std::vector<double> eta(static_cast<std::size_t>(m), -1.0);
        choice.set->gemv(X.data(), m, p, theta.data(), eta.data());
        for (std::int64_t i = 0; i < m; ++i) {
          long double ref = 0, scale = 0;
          for (std::int64_t j = 0; j < p; ++j) {
            ref += static_cast<long double>(X[i * p + j]) * theta[j];
            scale += std::fabs(static_cast<long double>(X[i * p + j]) * theta[j]);
          }
          CHECK(std::fabs(eta[i] - ref) <= 1e-15L * scale * static_cast<long double>(p));
        }
      }
    }
  }
}

TEST_CASE("the kernel set follows cpuid and the switch", "[kernels]") {
  // The default is the best set the CPU runs; set_kernel_isa caps it; the AVX-512 set is
  // offered only where cpuid reports AVX-512 F/DQ/VL/BW/CD.
  const Isa cpu = cpu_info().isa;
  INFO("CPU: " << cpu_info().model_name << ", ISA " << to_string(cpu) << "; kernel sets: "
               << detail::kernel_isas_available());
  CHECK((detail::kernel_set(Isa::avx512) != nullptr) == (cpu >= Isa::avx512));
  CHECK((detail::kernel_set(Isa::avx2) != nullptr) == (cpu >= Isa::avx2));
  CHECK(detail::kernel_set(Isa::generic) == nullptr);
  const Isa was = detail::set_kernel_isa(Isa::avx512);
  const detail::KernelSet* best = detail::active_kernel_set();
  if (cpu >= Isa::avx2) {
    REQUIRE(best != nullptr);
    CHECK(best->isa == cpu);
    CHECK(best->panel == (cpu >= Isa::avx512 ? 8 : 4));
    CHECK(detail::kernel_isa() == cpu);
  } else {
    CHECK(best == nullptr);
  }
  detail::set_kernel_isa(Isa::avx2);
  if (cpu >= Isa::avx2) CHECK(detail::active_kernel_set()->isa == Isa::avx2);
  detail::set_kernel_isa(Isa::generic);
  CHECK(detail::active_kernel_set() == nullptr);
  CHECK(detail::kernel_isa() == Isa::generic);
  detail::set_kernel_isa(was);
  // The 8-wide emulation has the AVX-512 set's shape.
  if (const detail::KernelSet* w = detail::wide8_on_avx2_set()) {
    CHECK(w->panel == 8);
    CHECK(w->panel_f32 == 16);
    if (const detail::KernelSet* z = detail::kernel_set(Isa::avx512)) {
      CHECK(z->panel == w->panel);
      CHECK(z->panel_f32 == w->panel_f32);
    }
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

// ------------------------------------------------------------------------------------
// Subsampled Fisher: the Fisher from the rows with in_fisher_sample(first_row + i),
// loss and gradient from every row, in the same pass.
// ------------------------------------------------------------------------------------
namespace {
PackedSums packed_sums(const Shard& s, const Model& m, const std::vector<double>& theta, FisherKind k, int threads,
                       std::int64_t block, const FisherSample& sample) {
  Workspace ws;
  ws.prepare(threads, s.n_cols, block, k);
  PackedSums sums;
  accumulate(s, m, theta, k, threads, ws, sums, sample);
  return sums;
}
Normalized normalized(PackedSums sums) {
  Normalized nz;
  finalize(sums, nz);
  return nz;
}
/// Rows [b, e) of \p s as a shard of their own, first_row shifted accordingly.
Shard rows_of(const Shard& s, std::int64_t b, std::int64_t e) {
  Shard r;
  r.n_rows = e - b;
  r.n_cols = s.n_cols;
  r.first_row = s.first_row + b;
  r.n_global = s.n_global;
  r.x.assign(s.x.begin() + b * s.n_cols, s.x.begin() + e * s.n_cols);
  r.y.assign(s.y.begin() + b, s.y.begin() + e);
  if (!s.weight.empty()) r.weight.assign(s.weight.begin() + b, s.weight.begin() + e);
  if (!s.offset.empty()) r.offset.assign(s.offset.begin() + b, s.offset.begin() + e);
  r.names = s.names;
  return r;
}
/// One configuration of the Fisher-sample tests: model, rows, columns, threads, block rows.
struct SampleCase {
  const Model* m;
  std::int64_t n, p;
  int threads;
  std::int64_t block;
};
}  // namespace

TEST_CASE("Fisher sample: fraction 1 gives bit-identical sums", "[kernels][sample]") {
  const auto glm = make_model("binomial", "logit");
  const auto mn = make_model("multinomial", "", 3);
  // (model, n, p, threads, block): per-thread path, shared path (p > 384, 2 threads), multinomial
  const SampleCase cases[] = {{glm.get(), 517, 9, 1, 64}, {glm.get(), 517, 9, 2, 7},
                              {glm.get(), 150, 400, 2, 64}, {mn.get(), 301, 5, 2, 32}};
  for (const auto& c : cases) {
    Shard s = ref::relabel(ref::random_shard(c.n, c.p, 5, true, c.m->n_outputs() == 1), c.m->n_outputs() > 1
                                                                                           ? "multinomial"
                                                                                           : "binomial",
                           3, 5);
    s.first_row = 12345;
    const auto theta = random_theta(c.p * c.m->n_outputs(), 8);
    for (FisherKind k : {FisherKind::expected, FisherKind::empirical, FisherKind::empirical_centered,
                         FisherKind::meat, FisherKind::diagonal, FisherKind::none}) {
      CAPTURE(c.m->name(), c.n, c.p, c.threads, c.block, to_string(k));
      const PackedSums a = packed_sums(s, *c.m, theta, k, c.threads, c.block, FisherSample{});
      const PackedSums b = packed_sums(s, *c.m, theta, k, c.threads, c.block, FisherSample{1.0, 77});
      REQUIRE(a.buf.size() == b.buf.size());
      CHECK(a.buf == b.buf);  // bit for bit
      PackedSums a2 = a;
      CHECK(a2.fisher_weight() == a2.weight_sum());
      CHECK(a2.buf.size() == 4 + static_cast<std::size_t>(a2.p) + a2.fisher_size());
      // finalize: the Fisher is divided by fisher_weight == weight_sum
      const Normalized nz = normalized(a);
      CHECK(nz.fisher_weight == nz.weight_sum);
      // the old default call agrees too
      Workspace ws;
      ws.prepare(c.threads, s.n_cols, c.block, k);
      PackedSums d;
      accumulate(s, *c.m, theta, k, c.threads, ws, d);
      CHECK(d.buf == a.buf);
    }
  }
}

TEST_CASE("Fisher sample: the Fisher equals the naive sum over the sampled rows", "[kernels][sample]") {
  const auto glm = make_model("binomial", "logit");
  const auto mn = make_model("multinomial", "", 4);
  // p small: per-thread accumulators (blocks of 64 and 7 rows: staging across blocks);
  // p = 400 with 2 threads: the shared threaded-SYRK path.
  const SampleCase cases[] = {{glm.get(), 997, 7, 1, 64},   {glm.get(), 997, 7, 2, 64}, {glm.get(), 531, 12, 2, 7},
                              {glm.get(), 260, 400, 2, 64}, {mn.get(), 701, 5, 1, 64},  {mn.get(), 701, 5, 2, 16}};
  const FisherSample sample{0.25, 2024};
  for (const auto& c : cases) {
    const bool multi = c.m->n_outputs() > 1;
    Shard s = ref::relabel(ref::random_shard(c.n, c.p, 31 + c.n, true, !multi), multi ? "multinomial" : "binomial",
                           4, 9);
    s.first_row = 100003;  // the selection uses the global row index
    const auto theta = random_theta(c.p * c.m->n_outputs(), 4);
    for (FisherKind k : {FisherKind::expected, FisherKind::empirical, FisherKind::diagonal}) {
      CAPTURE(c.m->name(), c.n, c.p, c.threads, c.block, to_string(k));
      PackedSums sums = packed_sums(s, *c.m, theta, k, c.threads, c.block, sample);
      const PackedSums all = packed_sums(s, *c.m, theta, k, c.threads, c.block, FisherSample{});
      double wf = 0, rows = 0;
      for (std::int64_t i = 0; i < s.n_rows; ++i)
        if (in_fisher_sample(s.first_row + i, sample)) {
          wf += s.weight[i];
          rows += 1;
        }
      REQUIRE(rows > 0.15 * c.n);
      REQUIRE(rows < 0.35 * c.n);
      CHECK(sums.fisher_weight() == Approx(wf).epsilon(1e-13));
      // loss, weights, rows, gradient: every row, as without the sample
      for (std::size_t j = 0; j < 3 + static_cast<std::size_t>(sums.p); ++j) {
        CAPTURE(j);
        CHECK(sums.buf[j] == Approx(all.buf[j]).epsilon(1e-13).margin(1e-13 * std::abs(all.buf[1])));
      }
      const Normalized fast = normalized(sums);
      const ref::Sums slow = ref::naive_sums(s, *c.m, theta, k, sample);
      const ref::Sums full = ref::naive_sums(s, *c.m, theta, k);
      CHECK(std::abs(fast.loss - slow.loss) <= 1e-12 * std::abs(slow.loss));
      CHECK(ref::rel_diff(fast.grad, full.grad) <= 1e-12);
      CHECK(ref::rel_diff(fast.fisher, slow.fisher) <= 1e-12);
      CHECK(fast.fisher_weight == Approx(wf).epsilon(1e-13));
      // and it is not the full Fisher
      CHECK(ref::rel_diff(fast.fisher, full.fisher) > 1e-6);
    }
  }
}

TEST_CASE("Fisher sample: selection is independent of block size, threads and shards", "[kernels][sample]") {
  const auto glm = make_model("binomial", "logit");
  const auto mn = make_model("multinomial", "", 3);
  const FisherSample sample{0.25, 5};
  for (const Model* m : {static_cast<const Model*>(glm.get()), static_cast<const Model*>(mn.get())}) {
    const bool multi = m->n_outputs() > 1;
    Shard s = ref::relabel(ref::random_shard(1003, 6, 77, true, !multi), multi ? "multinomial" : "binomial", 3, 2);
    s.first_row = 4000;
    const auto theta = random_theta(6 * m->n_outputs(), 12);
    for (FisherKind k : {FisherKind::expected, FisherKind::empirical, FisherKind::diagonal}) {
      CAPTURE(m->name(), to_string(k));
      const PackedSums one = packed_sums(s, *m, theta, k, 1, 256, sample);
      for (const auto& [threads, block] : {std::pair{1, 7}, std::pair{2, 64}, std::pair{2, 1000}, std::pair{1, 2048}}) {
        CAPTURE(threads, block);
        const PackedSums other = packed_sums(s, *m, theta, k, threads, block, sample);
        CHECK(ref::rel_diff(other.buf, one.buf) <= 1e-12);
        CHECK(other.fisher_weight() == Approx(one.fisher_weight()).epsilon(1e-14));
      }
      // two shards (first_row offsets) sum to the one shard's sums
      for (std::int64_t cut : {1, 333, 512, 1002}) {
        CAPTURE(cut);
        const PackedSums a = packed_sums(rows_of(s, 0, cut), *m, theta, k, 2, 64, sample);
        const PackedSums b = packed_sums(rows_of(s, cut, s.n_rows), *m, theta, k, 1, 32, sample);
        REQUIRE(a.buf.size() == one.buf.size());
        std::vector<double> sum(a.buf.size());
        for (std::size_t j = 0; j < sum.size(); ++j) sum[j] = a.buf[j] + b.buf[j];
        CHECK(ref::rel_diff(sum, one.buf) <= 1e-12);
        CHECK(sum[2] == one.buf[2]);
      }
    }
  }
}

TEST_CASE("Fisher sample: the sampled share of the rows is the requested fraction", "[kernels][sample]") {
  for (double f : {0.03125, 0.1, 0.25, 0.5, 0.9}) {
    for (std::uint64_t seed : {0ULL, 1ULL, 123456789ULL}) {
      const FisherSample s{f, seed};
      std::int64_t hit = 0, first_half = 0;
      for (std::int64_t r = 0; r < 100000; ++r)
        if (in_fisher_sample(r, s)) {
          ++hit;
          first_half += r < 50000;
        }
      CAPTURE(f, seed);
      CHECK(std::abs(static_cast<double>(hit) / 1e5 - f) <= 0.01);
      CHECK(std::abs(static_cast<double>(first_half) / 5e4 - f) <= 0.015);  // no drift along the rows
    }
  }
  // another seed, another subsample; no sample = every row
  std::int64_t same = 0;
  for (std::int64_t r = 0; r < 10000; ++r)
    same += in_fisher_sample(r, FisherSample{0.5, 1}) == in_fisher_sample(r, FisherSample{0.5, 2});
  CHECK(same > 4500);
  CHECK(same < 5500);
  for (std::int64_t r : {std::int64_t{0}, std::int64_t{1}, std::int64_t{1} << 40}) CHECK(in_fisher_sample(r, FisherSample{}));
  CHECK_FALSE(FisherSample{}.active());
  CHECK(FisherSample{0.5, 0}.active());
}

TEST_CASE("Fisher sample: centred empirical and meat are refused", "[kernels][sample]") {
  const auto glm = make_model("binomial", "logit");
  const auto mn = make_model("multinomial", "", 3);
  const Shard s = ref::random_shard(50, 4, 3, false, false);
  const FisherSample sample{0.5, 1};
  for (FisherKind k : {FisherKind::empirical_centered, FisherKind::meat}) {
    CAPTURE(to_string(k));
    CHECK_THROWS_AS(packed_sums(s, *glm, std::vector<double>(4, 0.1), k, 1, 64, sample), Error);
    CHECK_THROWS_AS(packed_sums(ref::relabel(s, "multinomial", 3, 1), *mn, std::vector<double>(8, 0.1), k, 2, 64,
                                sample),
                    Error);
    CHECK_NOTHROW(packed_sums(s, *glm, std::vector<double>(4, 0.1), k, 1, 64, FisherSample{}));
  }
}
