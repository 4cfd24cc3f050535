#pragma once
/// \file fisher.hpp
/// The kinds of Fisher matrix a fit can form, and the row subsample the Fisher may be
/// formed from. Local, no MPI.
#include <cstdint>
#include <string>

namespace natgrad {

/// Which Fisher-like matrix to accumulate.
enum class FisherKind {
  none,                ///< loss and gradient only
  diagonal,            ///< diagonal of the expected Fisher only
  empirical,           ///< sum_i w_i s_i s_i^T (uncentered; BHHH)
  empirical_centered,  ///< covariance of the scores, N-1 normalisation (the seed's np.cov)
  expected,            ///< X^T diag(w fisher) X (Fisher scoring / IRLS)
  meat,                ///< sum_i (w_i dnll_i)^2 x_i x_i^T: the middle of the HC0 sandwich
};

const char* to_string(FisherKind k);
FisherKind fisher_kind_from_string(const std::string& s);  // throws natgrad::Error

/// The arithmetic of the Fisher sum of a fit's steps (--fisher-precision). float32: the
/// scaled rows are rounded to float and their products summed in float over at most one
/// row sweep (64-128 rows), then added into the double Fisher: twice the flops per cycle
/// (SSYRK-class kernels), a Fisher good to about 1e-6 relative. Only the step's
/// preconditioner changes: loss, gradient, line search and the stopping rule stay float64,
/// so the answer is the same maximum-likelihood estimate; standard errors always come
/// from a float64 Fisher. Single-output models on dense rows; others keep float64.
enum class FisherPrecision { float64, float32 };
const char* to_string(FisherPrecision p);
FisherPrecision fisher_precision_from_string(const std::string& s);  // throws natgrad::Error

/// Which rows enter the Fisher sum: a deterministic subsample of the rows by their
/// GLOBAL index (Shard::first_row + local index), so the chosen rows are the same at any
/// rank count, thread count and block size. Loss, weight sum, row count and gradient
/// always use every row. fraction >= 1 (the default) = every row (no sampling).
struct FisherSample {
  double fraction = 1.0;    ///< expected share of the rows in the Fisher, in (0, 1]
  std::uint64_t seed = 0;   ///< another seed = another subsample
  bool active() const { return fraction < 1.0; }
};

/// Whether global row \p global_row is in the Fisher subsample \p s: the splitmix64
/// output number global_row of the stream keyed by \p s.seed, compared with
/// fraction * 2^64. Always true when !s.active(); never for fraction <= 0.
bool in_fisher_sample(std::int64_t global_row, const FisherSample& s);

}  // namespace natgrad
