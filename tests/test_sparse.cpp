// CSR shards in the kernels: every family, Fisher kind, Fisher sample, thread count,
// index width and Fisher strategy (per-thread triangles or the column split) against
// the dense path on the densified shard, and the Fisher of one-hot factor rows against
// the naive X^T W X.
#include <catch2/catch.hpp>
#include <cmath>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <tuple>

#include "natgrad/core/error.hpp"
#include "core/kernels.hpp"
#include "natgrad/core/model.hpp"
#include "natgrad/core/rng.hpp"
#include "natgrad/io/report.hpp"
#include "reference.hpp"

using namespace natgrad;

namespace {

/// A dense shard with about \p zeros of its entries zero (by a hash of the entry), the
/// intercept column 0 kept: the densified form of a sparse dataset.
Shard sparse_data(std::int64_t n, std::int64_t p, std::uint64_t seed, bool weights, bool offsets, double zeros) {
  Shard s = ref::random_shard(n, p, seed, weights, offsets);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 1; j < p; ++j)
      if (rng::uniform(seed, 31, i, j) < zeros) s.x[i * p + j] = 0.0;
  return s;
}

/// The CSR copy with 64-bit column indices (as for more than 2^32 columns).
Shard wide(Shard s) {
  REQUIRE(s.sparse);
  s.csr.index64.assign(s.csr.index32.begin(), s.csr.index32.end());
  s.csr.index32.clear();
  s.csr.wide = true;
  return s;
}

std::vector<double> random_theta(std::int64_t p, std::uint64_t seed, double scale) {
  std::vector<double> t(p);
  for (std::int64_t j = 0; j < p; ++j) t[j] = scale * rng::normal(seed, 7, 0, j);
  return t;
}

PackedSums run(const Shard& s, const Model& m, const std::vector<double>& theta, FisherKind k, int threads,
               std::int64_t block, const FisherSample& sample, Workspace* keep = nullptr) {
  Workspace local;
  Workspace& ws = keep ? *keep : local;
  ws.prepare(threads, s.n_cols, block, k, m.n_outputs(), m.n_factors(), s.sparse);
  PackedSums out;
  accumulate(s, m, theta, k, threads, ws, out, sample);
  return out;
}

/// max |a - b| over [from, to) of the buffers, relative to max |b| there.
double part_diff(const PackedSums& a, const PackedSums& b, std::size_t from, std::size_t to) {
  double worst = 0, scale = 0;
  for (std::size_t i = from; i < to; ++i) {
    worst = std::max(worst, std::abs(a.buf[i] - b.buf[i]));
    scale = std::max(scale, std::abs(b.buf[i]));
  }
  return scale > 0 ? worst / scale : worst;
}

/// Every part of the packed sums of \p a (sparse) against \p b (dense) to \p tol.
void check_same(const PackedSums& a, const PackedSums& b, double tol) {
  REQUIRE(a.buf.size() == b.buf.size());
  const auto p = static_cast<std::size_t>(b.p);
  CHECK(part_diff(a, b, 0, 1) <= tol);      // loss
  CHECK(part_diff(a, b, 1, 2) <= 1e-14);    // weight sum (the rows grouped otherwise)
  CHECK(a.buf[2] == b.buf[2]);              // rows
  CHECK(part_diff(a, b, 3, 3 + p) <= tol);  // gradient
  CHECK(part_diff(a, b, 3 + p, 3 + p + b.fisher_size()) <= tol);
  CHECK(a.fisher_weight() == Approx(b.fisher_weight()).epsilon(1e-14));
}

struct Fam {
  const char* family;
  const char* link;
  int classes;
};

}  // namespace

TEST_CASE("sparse shard: accumulate equals the dense path for every family and Fisher kind", "[sparse]") {
  const Fam fam = GENERATE(Fam{"binomial", "logit", 0}, Fam{"binomial", "probit", 0},
                              Fam{"binomial", "cloglog", 0}, Fam{"poisson", "log", 0},
                              Fam{"gaussian", "identity", 0}, Fam{"gamma", "log", 0},
                              Fam{"multinomial", "", 3});
  const bool weighted = GENERATE(false, true);
  const auto model = make_model(fam.family, fam.link, fam.classes);
  const std::int64_t n = 613, d = 23;
  Shard dense = sparse_data(n, d, 17, weighted, weighted, 0.8);
  if (std::string(fam.family) != "binomial") dense = ref::relabel(dense, fam.family, fam.classes, 5);
  const Shard narrow = sparsified(dense);
  REQUIRE(narrow.sparse);
  REQUIRE(narrow.csr.nnz() < n * d / 3);  // mostly zeros
  const Shard wide64 = wide(narrow);
  const auto theta = random_theta(d * model->n_outputs(), 3, 0.1);
  for (const FisherSample sample : {FisherSample{}, FisherSample{0.4, 9}})
    for (FisherKind k : {FisherKind::none, FisherKind::diagonal, FisherKind::expected, FisherKind::empirical,
                         FisherKind::empirical_centered, FisherKind::meat}) {
      if (sample.active() && (k == FisherKind::empirical_centered || k == FisherKind::meat)) {
        CHECK_THROWS_AS(run(narrow, *model, theta, k, 2, 64, sample), Error);
        continue;
      }
      for (int threads = 1; threads <= 3; ++threads)
        for (bool split : {false, true}) {
          if (split && threads == 1) continue;
          const std::size_t was = detail::set_sparse_triangle_limit(split ? 0 : std::size_t{1} << 30);
          CAPTURE(fam.family, fam.link, weighted, sample.fraction, to_string(k), threads, split);
          const PackedSums want = run(dense, *model, theta, k, threads, 64, sample);
          Workspace ws;
          const PackedSums got = run(narrow, *model, theta, k, threads, 64, sample, &ws);
          CHECK(ws.split_ == (split && (k == FisherKind::expected || k == FisherKind::empirical ||
                                        k == FisherKind::empirical_centered || k == FisherKind::meat)));
          check_same(got, want, 1e-12);
          const PackedSums got64 = run(wide64, *model, theta, k, threads, 37, sample);
          check_same(got64, want, 1e-12);
          // Deterministic: the same call again gives the same bits.
          const PackedSums again = run(narrow, *model, theta, k, threads, 64, sample, &ws);
          CHECK(again.buf == got.buf);
          detail::set_sparse_triangle_limit(was);
        }
    }
}

TEST_CASE("sparse shard: the loss-only pass equals the dense one", "[sparse]") {
  for (const Fam fam : {Fam{"binomial", "logit", 0}, Fam{"multinomial", "", 4}}) {
    const auto model = make_model(fam.family, fam.link, fam.classes);
    Shard dense = sparse_data(501, 12, 4, true, true, 0.7);
    if (fam.classes > 0) dense = ref::relabel(dense, fam.family, fam.classes, 2);
    const Shard sp = sparsified(dense);
    const auto theta = random_theta(12 * model->n_outputs(), 8, 0.2);
    for (int threads : {1, 3}) {
      CAPTURE(fam.family, threads);
      Workspace wd, wsp;
      double a[2], b[2];
      accumulate_loss(dense, *model, theta, threads, wd, a);
      accumulate_loss(sp, *model, theta, threads, wsp, b);
      CHECK(b[0] == Approx(a[0]).epsilon(1e-13));
      CHECK(b[1] == Approx(a[1]).epsilon(1e-14));
      CHECK(wsp.sparse_);
    }
  }
}

TEST_CASE("sparse shard: the Fisher of one-hot factor rows equals the naive X^T W X", "[sparse]") {
  // y ~ user + movie as MovieLens: an intercept and two one-hot factors, k = 3 nonzeros
  // per row, built as CSR directly (never dense).
  const std::int64_t n = 2000, users = 70, movies = 130, d = 1 + users + movies;
  Shard s;
  s.n_rows = n;
  s.n_cols = d;
  s.n_global = n;
  s.sparse = true;
  s.csr.row_ptr.push_back(0);
  for (std::int64_t i = 0; i < n; ++i) {
    // Zipf-like: low ids are frequent.
    const auto u = static_cast<std::int64_t>(users * std::pow(rng::uniform(3, 1, i, 0), 2.0));
    const auto mv = static_cast<std::int64_t>(movies * std::pow(rng::uniform(3, 2, i, 0), 2.0));
    for (std::int64_t j : {std::int64_t{0}, 1 + u, 1 + users + mv}) {
      s.csr.index32.push_back(static_cast<std::uint32_t>(j));
      s.csr.values.push_back(1.0);
    }
    s.csr.row_ptr.push_back(static_cast<std::int64_t>(s.csr.values.size()));
    s.y.push_back(rng::uniform(3, 3, i, 0) < 0.6 ? 1.0 : 0.0);
    s.weight.push_back(0.5 + rng::uniform(3, 4, i, 0));
  }
  for (std::int64_t j = 0; j < d; ++j) s.names.push_back("c" + std::to_string(j));
  const LogisticModel model;
  const auto theta = random_theta(d, 6, 0.3);
  const Shard dense = densified(s);
  for (FisherKind k : {FisherKind::expected, FisherKind::empirical, FisherKind::meat, FisherKind::diagonal})
    for (int threads : {1, 2, 3})
      for (bool split : {false, true}) {
        CAPTURE(to_string(k), threads, split);
        const std::size_t was = detail::set_sparse_triangle_limit(split ? 0 : std::size_t{1} << 30);
        Workspace ws;
        ws.prepare(threads, d, 128, k, 1, 1, true);
        PackedSums sums;
        accumulate(s, model, theta, k, threads, ws, sums);
        detail::set_sparse_triangle_limit(was);
        Normalized fast;
        finalize(sums, fast);
        const ref::Sums slow = ref::naive_sums(dense, model, theta, k);
        CHECK(ref::rel_diff(fast.grad, slow.grad) <= 1e-12);
        REQUIRE(fast.fisher.size() == slow.fisher.size());
        double worst = 0, scale = 0;
        for (std::size_t i = 0; i < slow.fisher.size(); ++i) {
          worst = std::max(worst, std::abs(fast.fisher[i] - slow.fisher[i]));
          scale = std::max(scale, std::abs(slow.fisher[i]));
        }
        CHECK(worst <= 1e-13 * scale);
      }
}

TEST_CASE("sparse shard: the workspace holds no dense row panel and no p x p matrix", "[sparse]") {
  const std::int64_t d = 3000, block = 256;
  for (int threads : {1, 2, 4}) {
    CAPTURE(threads);
    Workspace ws;
    ws.prepare(threads, d, block, FisherKind::expected, 1, 1, true);
    std::size_t doubles = 0;
    for (const auto& v : ws.scaled_) doubles += v.size();
    for (const auto& v : ws.fisher_) doubles += v.size();
    // The per-thread triangles would take (threads - 1) * 36 MB, beyond the 32 MiB limit
    // from 2 threads on: one shared triangle (the output's) instead.
    CHECK(ws.split_ == (threads > 1));
    CHECK(doubles == 0);
    for (const auto& g : ws.grad_) CHECK(g.size() == static_cast<std::size_t>(d));
    // The dense layout of the same sizes has the panels and p x p accumulators.
    Workspace dense;
    dense.prepare(threads, d, block, FisherKind::expected);
    std::size_t dense_doubles = 0;
    for (const auto& v : dense.fisher_) dense_doubles += v.size();
    CHECK(dense_doubles >= static_cast<std::size_t>(d * d));
  }
}

TEST_CASE("sparse shard: empty shards and empty rows contribute zeros", "[sparse]") {
  const LogisticModel model;
  Shard s = sparsified(ref::random_shard(0, 4, 1, false, false));
  for (int threads : {1, 3}) {
    PackedSums sums = run(s, model, std::vector<double>(4, 0.1), FisherKind::expected, threads, 64, {});
    for (double v : sums.buf) CHECK(v == 0.0);
  }
  // Rows without a nonzero (no intercept): eta = offset, no Fisher entry.
  Shard z = ref::random_shard(50, 5, 2, true, true);
  for (std::int64_t i = 0; i < 50; i += 2)
    for (std::int64_t j = 0; j < 5; ++j) z.x[i * 5 + j] = 0;
  const PackedSums want = run(z, model, random_theta(5, 1, 0.3), FisherKind::expected, 2, 16, {});
  const PackedSums got = run(sparsified(z), model, random_theta(5, 1, 0.3), FisherKind::expected, 2, 16, {});
  check_same(got, want, 1e-13);
}

TEST_CASE("report: a fit without standard errors (P x P not formed) prints and writes them as missing",
          "[sparse][report]") {
  FitResult fit;
  fit.theta = {0.5, -1.25, 2.0};
  fit.reason = Reason::converged_gradient;
  Inference inf;
  inf.deviance = 12.5;
  inf.aic = 20.25;
  inf.note = "standard errors need the P x P Fisher: not formed";
  FitReport r;
  r.family = "binomial";
  r.link = "logit";
  r.columns = r.all_columns = {"(Intercept)", "x1", "x2"};
  r.intercept = true;
  r.fit = &fit;
  r.inference = &inf;
  for (bool dropped : {false, true}) {
    CAPTURE(dropped);
    if (dropped) {  // the x2 column dropped: its estimate NA, the others without errors
      fit.theta = {0.5, -1.25};
      r.columns = {"(Intercept)", "x1"};
      r.dropped = {"x2"};
    }
    const std::string text = summary_text(r);
    CHECK_THAT(text, Catch::Contains("note: standard errors need the P x P Fisher: not formed"));
    CHECK_THAT(text, !Catch::Contains("Std. Error"));
    CHECK_THAT(text, Catch::Contains("-1.25"));
    CHECK_THAT(text, Catch::Contains("Residual deviance: 12.5"));
    std::ostringstream os;
    write_model_json(os, r);
    const auto j = nlohmann::json::parse(os.str());
    REQUIRE(j["std_errors"].size() == 3);
    for (const auto& v : j["std_errors"]) CHECK(v.is_null());
    for (const auto& v : j["p_values"]) CHECK(v.is_null());
    CHECK(j["coefficients"][1] == -1.25);
    CHECK(j["deviance"] == 12.5);
    CHECK(j["inference_note"] == inf.note);
  }
}
