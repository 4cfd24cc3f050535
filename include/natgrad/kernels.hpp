#pragma once
/// \file kernels.hpp
/// Local (per-rank) accumulation of loss, gradient and Fisher sums with OpenMP over
/// row blocks and level-3 BLAS. No MPI: the solver reduces the packed result.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "natgrad/model.hpp"
#include "natgrad/shard.hpp"

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

/// Packed layout of one rank's sums, reduced across ranks in one call:
///   [0] sum w_i nll_i   [1] sum w_i   [2] rows   [3 .. 3+p) sum w_i dnll_i x_i
///   then, for diagonal: p entries; for the other full kinds: the upper triangle of
///   sum w_i c_i x_i x_i^T packed column by column (LAPACK 'U' packed storage),
///   p(p+1)/2 entries, with c_i = fisher_i (expected) or dnll_i^2 (empirical kinds).
/// The centred correction is applied after the reduction (finalize_fisher), because it
/// needs the global mean score.
struct PackedSums {
  std::int64_t p = 0;
  FisherKind kind = FisherKind::none;
  std::vector<double> buf;

  void resize(std::int64_t p_, FisherKind kind_);
  double& loss_sum() { return buf[0]; }
  double& weight_sum() { return buf[1]; }
  double& rows() { return buf[2]; }
  double* grad() { return buf.data() + 3; }
  double* fisher() { return buf.data() + 3 + p; }
  std::size_t fisher_size() const;
};

/// Reusable per-thread scratch so that iterations allocate nothing.
class Workspace {
 public:
  Workspace() = default;
  /// Sets sizes for \p threads threads, \p d columns, row blocks of \p block rows, for
  /// a model with \p outputs linear predictors and \p factors Fisher factor columns.
  void prepare(int threads, std::int64_t d, std::int64_t block, FisherKind kind, int outputs = 1,
               int factors = 1);
  int threads() const { return threads_; }
  std::int64_t block() const { return block_; }

  // Per thread t: scaled row block (block x p), eta/nll/dnll/fisher (block each),
  // gradient (p), Fisher accumulator (p x p, column-major, upper used). When the
  // Fisher is formed by one threaded SYRK (large p, see kernels.cpp), scaled_ and
  // fisher_ hold a single tall block and a single p x p matrix instead.
  std::vector<std::vector<double>> scaled_, eta_, nll_, dnll_, fw_, grad_, fisher_;
  std::vector<double> loss_, wsum_;

 private:
  int threads_ = 0, outputs_ = 1, factors_ = 1;
  std::int64_t p_ = 0, block_ = 0;
  FisherKind kind_ = FisherKind::none;
};

/// One fused pass over this rank's rows: loss, gradient and the chosen Fisher sum at
/// \p theta (d * model.n_outputs() values, class-major), written into \p out (resized).
/// Deterministic for a fixed thread count. Local; uses \p threads OpenMP threads.
void accumulate(const Shard& shard, const Model& model, std::span<const double> theta,
                FisherKind kind, int threads, Workspace& ws, PackedSums& out);

/// Loss-only pass (sum w_i nll_i, sum w_i) for line-search trials. Local.
void accumulate_loss(const Shard& shard, const Model& model, std::span<const double> theta,
                     int threads, Workspace& ws, double out[2]);

/// After the reduction: turns the summed buffer into per-observation quantities.
/// Writes loss (mean), gradient (p) and the full symmetric Fisher (p x p, both
/// triangles) or its diagonal (p). For empirical_centered applies
/// (S - n mean mean^T) / (n - 1) with the row count n, as numpy.cov does.
struct Normalized {
  double loss = 0, weight_sum = 0, rows = 0;
  std::vector<double> grad;    // p
  std::vector<double> fisher;  // p*p (full) or p (diagonal) or empty
};
void finalize(PackedSums& sums, Normalized& out);

}  // namespace natgrad
