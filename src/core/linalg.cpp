#include "natgrad/core/linalg.hpp"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstddef>

#include "natgrad/core/error.hpp"

// LAPACK (Fortran interface, provided by OpenBLAS). The trailing size_t arguments are
// the hidden lengths of the character arguments (gfortran ABI).
extern "C" {
void dpotrf_(const char* uplo, const int* n, double* a, const int* lda, int* info, std::size_t);
void dpotrs_(const char* uplo, const int* n, const int* nrhs, const double* a, const int* lda,
             double* b, const int* ldb, int* info, std::size_t);
void dpotri_(const char* uplo, const int* n, double* a, const int* lda, int* info, std::size_t);
void dsyev_(const char* jobz, const char* uplo, const int* n, double* a, const int* lda,
            double* w, double* work, const int* lwork, int* info, std::size_t, std::size_t);
}

namespace natgrad {

namespace {
int to_int(std::int64_t p) {
  if (p > 2147483647) throw Error("matrix dimension too large for LAPACK: " + std::to_string(p));
  return static_cast<int>(p);
}
/// Cholesky "succeeds" on numerically singular matrices with tiny pivots; the ratio of
/// the factor's diagonal bounds the condition number from below: cond >= (max/min)^2.
bool well_conditioned_factor(const std::vector<double>& R, std::int64_t p) {
  double lo = INFINITY, hi = 0;
  for (std::int64_t i = 0; i < p; ++i) {
    lo = std::min(lo, std::abs(R[i + i * p]));
    hi = std::max(hi, std::abs(R[i + i * p]));
  }
  return p == 0 || (hi > 0 && std::isfinite(hi) && (lo / hi) * (lo / hi) > 1e-15);
}

/// Normwise backward error of (A + lambda S) x = b below 1e-8 (one dsymv), S = diag(s).
bool small_residual(std::span<const double> A, std::int64_t p, double lambda, std::span<const double> s,
                    std::span<const double> x, std::span<const double> b) {
  std::vector<double> fx(static_cast<std::size_t>(p));
  cblas_dsymv(CblasColMajor, CblasUpper, static_cast<int>(p), 1.0, A.data(), static_cast<int>(p),
              x.data(), 1, 0.0, fx.data(), 1);
  double r = 0, xn = 0, bn = 0, fn = 0;
  for (std::int64_t i = 0; i < p; ++i) {
    const double v = fx[i] + lambda * s[i] * x[i];
    if (!std::isfinite(v)) return false;
    r = std::max(r, std::abs(v - b[i]));
    xn = std::max(xn, std::abs(x[i]));
    bn = std::max(bn, std::abs(b[i]));
    fn = std::max(fn, std::abs(A[i + i * p]) + lambda * s[i]);  // max |A_ij| is on the diagonal for PSD A
  }
  return r <= 1e-8 * (fn * xn * static_cast<double>(p) + bn);
}

}  // namespace

int cholesky_upper(std::span<double> A, std::int64_t p) {
  const int n = to_int(p);
  int info = 0;
  if (n > 0) dpotrf_("U", &n, A.data(), &n, &info, 1);
  return info;
}

int cholesky_inverse(std::span<double> A, std::int64_t p) {
  const int n = to_int(p);
  int info = 0;
  if (n == 0) return 0;
  dpotri_("U", &n, A.data(), &n, &info, 1);
  for (std::int64_t j = 0; j < p; ++j)
    for (std::int64_t i = j + 1; i < p; ++i) A[i + j * p] = A[j + i * p];
  return info;
}

std::vector<double> equilibration(std::span<const double> F, std::int64_t p) {
  std::vector<double> D(static_cast<std::size_t>(p), 1.0);
  for (std::int64_t j = 0; j < p; ++j) {
    const double f = F[j + j * p];
    if (!(f > 0) || !std::isfinite(f)) continue;
    // The power of two nearest 1 / sqrt(f): exact scaling (no rounding), D_j^2 f in [0.5, 2).
    int e = 0;
    (void)std::frexp(f, &e);  // f = m 2^e, m in [0.5, 1)
    const double d = std::ldexp(1.0, -(e / 2));
    if (std::isfinite(d) && d > 0) D[static_cast<std::size_t>(j)] = d;
  }
  return D;
}

DampedSolve damped_cholesky_solve(std::span<const double> F, std::int64_t p,
                                  std::span<const double> b, double lambda, std::span<double> x,
                                  std::vector<double>& factor, int max_attempts) {
  DampedSolve r;
  const int n = to_int(p);
  // Symmetric equilibration A = D F D by powers of two (exact), D_j ~ F_jj^(-1/2): A's
  // diagonal is in [0.5, 2) wherever F_jj > 0, and the damping lambda S, S = diag(F) (1 for
  // a zero diagonal entry), becomes lambda diag(A). So the damping, the conditioning test
  // and the residual test below do not depend on the scale of any column.
  const std::vector<double> D = equilibration(F, p);
  std::vector<double> A(F.size()), c(static_cast<std::size_t>(p)), s(static_cast<std::size_t>(p));
  double max_diag = 0;
  bool finite = true;
  for (std::int64_t j = 0; j < p; ++j) {
    const auto uj = static_cast<std::size_t>(j);
    c[uj] = D[uj] * b[uj];
    for (std::int64_t i = 0; i < p; ++i) {
      const double v = D[static_cast<std::size_t>(i)] * F[i + j * p] * D[uj];
      A[i + j * p] = v;
      finite = finite && std::isfinite(v);
    }
    s[uj] = A[j + j * p] > 0 ? A[j + j * p] : 1.0;
    max_diag = std::max(max_diag, std::abs(A[j + j * p]));
  }
  lambda = std::max(lambda, 0.0);
  factor.resize(F.size());
  for (r.attempts = 1; r.attempts <= max_attempts; ++r.attempts) {
    std::copy(A.begin(), A.end(), factor.begin());
    if (lambda > 0)
      for (std::int64_t i = 0; i < p; ++i) factor[i + i * p] += lambda * s[static_cast<std::size_t>(i)];
    int info = cholesky_upper(factor, p);
    if (info == 0 && well_conditioned_factor(factor, p)) {
      std::copy(c.begin(), c.end(), x.begin());
      const int one = 1;
      dpotrs_("U", &n, &one, factor.data(), &n, x.data(), &n, &info, 1);
      if (info == 0 && small_residual(A, p, lambda, s, x, c)) {
        for (std::int64_t j = 0; j < p; ++j) x[j] *= D[static_cast<std::size_t>(j)];
        r.damping = lambda;
        r.ok = std::all_of(x.begin(), x.end(), [](double v) { return std::isfinite(v); });
        if (r.ok) return r;
      }
    }
    if (max_diag == 0 || !finite) break;  // nothing to damp relative to
    lambda = std::max(10.0 * lambda, 1e-10);
  }
  r.damping = lambda;
  r.attempts = std::min(r.attempts, max_attempts);
  r.ok = false;
  return r;
}

std::vector<std::int64_t> dependent_columns(std::span<const double> A, std::int64_t p, double tol) {
  // Correlation scaling; zero columns are dependent outright.
  std::vector<std::int64_t> out, live;
  for (std::int64_t j = 0; j < p; ++j) (A[j + j * p] > 0 ? live : out).push_back(j);
  const auto m = static_cast<std::int64_t>(live.size());
  std::vector<double> C(static_cast<std::size_t>(m * m));
  for (std::int64_t b = 0; b < m; ++b)
    for (std::int64_t a = 0; a < m; ++a) {
      const std::int64_t i = live[a], j = live[b];
      C[a + b * m] = A[i + j * p] / std::sqrt(A[i + i * p]) / std::sqrt(A[j + j * p]);  // no overflow of A_ii A_jj
    }
  // Fast path: a well-conditioned Cholesky (BLAS-3) means full rank.
  std::vector<double> L = C;
  if (cholesky_upper(L, m) == 0) {
    double lo = INFINITY;
    for (std::int64_t i = 0; i < m; ++i) lo = std::min(lo, L[i + i * m] * L[i + i * m]);
    if (lo > tol) return out;
  }
  // Slow path, as R's QR: walk the columns in order and call a column dependent when
  // its squared residual on the kept earlier columns is below tol. U holds the rows of
  // the Cholesky factor of the kept columns (upper, C = U^T U).
  std::vector<std::int64_t> kept;
  std::vector<double> U(static_cast<std::size_t>(m * m), 0.0);
  for (std::int64_t j = 0; j < m; ++j) {
    // u_kj = (C_kj - sum_{l<k} U_lk U_lj) / U_kk over kept k, in order
    double r = C[j + j * m];
    for (std::size_t a = 0; a < kept.size(); ++a) {
      const std::int64_t k = kept[a];
      double v = C[k + j * m];
      for (std::size_t b = 0; b < a; ++b) v -= U[kept[b] + k * m] * U[kept[b] + j * m];
      v /= U[k + k * m];
      U[k + j * m] = v;
      r -= v * v;
    }
    if (r > tol) {
      U[j + j * m] = std::sqrt(r);
      kept.push_back(j);
    } else {
      out.push_back(live[j]);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<double> symmetric_eigenvalues(std::span<const double> A, std::int64_t p) {
  const int n = to_int(p);
  std::vector<double> a(A.begin(), A.end()), w(static_cast<std::size_t>(p));
  if (n == 0) return w;
  int info = 0, lwork = -1;
  double query = 0;
  dsyev_("N", "U", &n, a.data(), &n, w.data(), &query, &lwork, &info, 1, 1);
  lwork = static_cast<int>(query);
  std::vector<double> work(static_cast<std::size_t>(std::max(lwork, 1)));
  dsyev_("N", "U", &n, a.data(), &n, w.data(), work.data(), &lwork, &info, 1, 1);
  if (info != 0) throw Error("dsyev failed with info " + std::to_string(info));
  return w;
}

void symv(std::span<const double> A, std::int64_t p, std::span<const double> x, std::span<double> y) {
  const int n = to_int(p);
  if (n == 0) return;
  cblas_dsymv(CblasColMajor, CblasUpper, n, 1.0, A.data(), n, x.data(), 1, 0.0, y.data(), 1);
}

void set_blas_threads(int threads) { openblas_set_num_threads(threads < 1 ? 1 : threads); }

std::string blas_description() {
  std::string threading;
  switch (openblas_get_parallel()) {
    case 0: threading = "serial"; break;
    case 1: threading = "pthreads"; break;
    case 2: threading = "openmp"; break;
    default: threading = "unknown";
  }
  std::string config = openblas_get_config();
  while (!config.empty() && config.back() == ' ') config.pop_back();
  return "OpenBLAS (" + config + "), threading " + threading;
}

}  // namespace natgrad
