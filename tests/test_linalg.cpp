#include <catch2/catch.hpp>
#include <cmath>

#include "natgrad/core/error.hpp"
#include "natgrad/core/linalg.hpp"
#include "natgrad/core/rng.hpp"

using namespace natgrad;

namespace {
std::vector<double> spd(std::int64_t n, std::uint64_t seed) {
  std::vector<double> B(n * n), A(n * n, 0.0);
  for (std::int64_t i = 0; i < n * n; ++i) B[i] = rng::normal(seed, 1, 0, i);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < n; ++j)
      for (std::int64_t k = 0; k < n; ++k) A[i + j * n] += B[i + k * n] * B[j + k * n];
  return A;
}
double residual(const std::vector<double>& A, std::int64_t n, const std::vector<double>& x,
                const std::vector<double>& b, double lambda) {
  double r = 0, bn = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    double ax = lambda * A[i + i * n] * x[i];  // the damping is relative to the diagonal
    for (std::int64_t j = 0; j < n; ++j) ax += A[i + j * n] * x[j];
    r += (ax - b[i]) * (ax - b[i]);
    bn += b[i] * b[i];
  }
  return std::sqrt(r / bn);
}
}  // namespace

TEST_CASE("damped Cholesky solves SPD systems to a small residual", "[linalg]") {
  const std::int64_t n = GENERATE(1, 5, 80);
  const auto A = spd(n, 3 + n);
  std::vector<double> b(n), x(n), f;
  for (std::int64_t i = 0; i < n; ++i) b[i] = rng::normal(8, 2, 0, i);
  const auto s = damped_cholesky_solve(A, n, b, 0.0, x, f);
  REQUIRE(s.ok);
  CHECK(s.attempts == 1);
  CHECK(s.damping == 0.0);
  CHECK(residual(A, n, x, b, 0.0) < 1e-10);
  const auto s2 = damped_cholesky_solve(A, n, b, 0.5, x, f);
  REQUIRE(s2.ok);
  CHECK(residual(A, n, x, b, 0.5) < 1e-12);
}

TEST_CASE("a singular matrix gets damping raised until Cholesky succeeds", "[linalg]") {
  const std::int64_t n = 4;
  std::vector<double> A(n * n, 2.0), b = {1, 2, 3, 4}, x(n), f;  // rank one
  const auto s = damped_cholesky_solve(A, n, b, 0.0, x, f);
  REQUIRE(s.ok);
  CHECK(s.attempts > 1);
  CHECK(s.damping > 0);
  CHECK(residual(A, n, x, b, s.damping) < 1e-8);
  std::vector<double> Z(n * n, 0.0);  // nothing to damp relative to: reported as failure
  CHECK_FALSE(damped_cholesky_solve(Z, n, b, 0.0, x, f).ok);
}

TEST_CASE("the damped solve and the collinearity check do not depend on column scales", "[linalg]") {
  // Column (and row) 2 of an SPD matrix scaled by s: x_2 scales by 1 / s, nothing else
  // changes, also when the matrix is singular and the damping must be raised.
  const std::int64_t n = 5;
  const auto A0 = spd(n, 23);
  std::vector<double> R(n * n, 1.0);  // rank one
  for (int which = 0; which < 2; ++which) {
    const auto& base = which == 0 ? A0 : R;
    std::vector<double> b(n), x0(n), x(n), f;
    for (std::int64_t i = 0; i < n; ++i) b[i] = rng::normal(4, 2, 0, i);
    const auto s0 = damped_cholesky_solve(base, n, b, 0.0, x0, f);
    REQUIRE(s0.ok);
    CHECK(dependent_columns(base, n, 1e-11).size() == (which == 1 ? 4u : 0u));
    for (double s : {1e-150, 1e-12, 1e12, 1e150}) {
      auto A = base;
      for (std::int64_t j = 0; j < n; ++j) {
        A[2 + j * n] *= s;
        A[j + 2 * n] *= s;
      }
      auto bs = b;
      bs[2] *= s;
      const auto r = damped_cholesky_solve(A, n, bs, 0.0, x, f);
      CAPTURE(s);
      REQUIRE(r.ok);
      CHECK(r.damping == s0.damping);
      CHECK(r.attempts == s0.attempts);
      // The rounding of the scaled input, amplified by the conditioning of the damped
      // rank-one matrix (1 / damping ~ 1e10) in the second case.
      for (std::int64_t j = 0; j < n; ++j)
        CHECK(x[j] * (j == 2 ? s : 1.0) == Approx(x0[j]).epsilon(which == 0 ? 1e-9 : 1e-4));
      CHECK(dependent_columns(A, n, 1e-11) == dependent_columns(base, n, 1e-11));
    }
  }
}

TEST_CASE("Cholesky inverse and eigenvalues", "[linalg]") {
  const std::int64_t n = 6;
  auto A = spd(n, 17);
  auto inv = A;
  REQUIRE(cholesky_upper(inv, n) == 0);
  REQUIRE(cholesky_inverse(inv, n) == 0);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < n; ++j) {
      double v = 0;
      for (std::int64_t k = 0; k < n; ++k) v += A[i + k * n] * inv[k + j * n];
      CHECK(v == Approx(i == j ? 1.0 : 0.0).margin(1e-10));
    }
  std::vector<double> D = {3, 0, 0, 0, -1, 0, 0, 0, 2};
  const auto ev = symmetric_eigenvalues(D, 3);
  CHECK(ev[0] == Approx(-1));
  CHECK(ev[1] == Approx(2));
  CHECK(ev[2] == Approx(3));
  CHECK(blas_description().find("OpenBLAS") != std::string::npos);
}
