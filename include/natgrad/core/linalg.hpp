#pragma once
/// \file linalg.hpp
/// LAPACK wrappers used by the solver. Local, no MPI. Matrices are column-major
/// p x p; because they are symmetric, row-major callers can pass them unchanged.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace natgrad {

/// Result of a damped solve (F + damping I) x = b.
struct DampedSolve {
  double damping = 0;  ///< damping actually used
  int attempts = 0;    ///< factorisations tried (1 = first one succeeded)
  bool ok = false;     ///< false if every attempt failed
};

/// Solves (F + lambda S) x = b, S = diag(F) (1 where F_jj is not positive: Marquardt's
/// damping, relative to the diagonal), by Cholesky (dpotrf/dpotrs) of the symmetrically
/// equilibrated matrix D F D, D = diag(F)^(-1/2) rounded to powers of two (exact). Scaling
/// row and column j of F by s^2 (a design column by s) and b_j by s scales x_j by 1/s and
/// changes nothing else: damping, attempts, success. An attempt fails if dpotrf fails, if
/// the factor's diagonal shows a condition number of the equilibrated matrix above ~1e15,
/// or if the equilibrated solution's normwise backward error exceeds 1e-8; then lambda is
/// raised to max(10 lambda, 1e-10) and the solve retried, at most \p max_attempts times
/// (none if F's diagonal is all zero or F is not finite). \p F (p x p, symmetric) is not
/// modified; \p factor is scratch (p x p). On success \p x holds the solution.
DampedSolve damped_cholesky_solve(std::span<const double> F, std::int64_t p,
                                  std::span<const double> b, double lambda,
                                  std::span<double> x, std::vector<double>& factor,
                                  int max_attempts = 20);

/// The symmetric equilibration of \p F: D_j = the power of two with D_j^2 F_jj in [0.5, 2)
/// where F_jj is positive and finite, else 1. D F D is then exact (no rounding).
std::vector<double> equilibration(std::span<const double> F, std::int64_t p);

/// In place Cholesky of a p x p symmetric positive-definite matrix (upper). Returns the
/// LAPACK info (0 = success).
int cholesky_upper(std::span<double> A, std::int64_t p);
/// Inverse of a symmetric positive definite matrix from its upper Cholesky factor; fills
/// both triangles. Returns LAPACK info.
int cholesky_inverse(std::span<double> A, std::int64_t p);
/// Linearly dependent columns of a Gram matrix A = X^T W X (p x p), found as R's QR
/// does: in column order, a column whose squared residual on the kept earlier columns,
/// in correlation scaling, is at most \p tol is dependent. Columns with a zero diagonal
/// are always dependent. Returns 0-based indices, ascending; empty = full rank. A
/// well-conditioned Cholesky answers the common full-rank case at BLAS-3 speed.
std::vector<std::int64_t> dependent_columns(std::span<const double> A, std::int64_t p, double tol);
/// Eigenvalues (ascending) of a symmetric matrix (dsyev). A is copied.
std::vector<double> symmetric_eigenvalues(std::span<const double> A, std::int64_t p);
/// y = A x for symmetric p x p A (dsymv).
void symv(std::span<const double> A, std::int64_t p, std::span<const double> x,
          std::span<double> y);

/// Sets the thread count of BLAS calls made outside natgrad's own parallel regions.
void set_blas_threads(int threads);

/// The linked BLAS: name, and its threading ("openmp", "pthreads", "serial").
std::string blas_description();

}  // namespace natgrad
