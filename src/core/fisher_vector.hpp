#pragma once
/// \file fisher_vector.hpp (private: not installed)
/// Fisher-vector products over one rank's rows, without forming the Fisher: the
/// matrix-free half of --solver cg. Local, no MPI: the solver sums the products of all
/// ranks (FisherProducts in solver_parts.hpp).
///
/// At a point theta, row i contributes x_i x_i^T (x) C_i to the Fisher, with C_i the
/// m x m curvature of its linear predictors (m = 1 for a GLM):
///   expected:  C_i = w_i fisher_i     (the model's factor M_i: C_i = w_i M_i M_i^T)
///   empirical: C_i = w_i dnll_i dnll_i^T
///   meat:      C_i = w_i^2 dnll_i dnll_i^T   (the HC0 sandwich's middle, for inference)
/// and 0 for rows outside the Fisher subsample. prepare() evaluates the model once per
/// point and keeps C_i (a scalar per row, or the factor); apply() then costs two passes
/// over the row's stored entries: u = X_i V (m dot products), z = C_i u, out += x_i (x) z.
/// Dense and CSR shards (either index width); OpenMP over contiguous row chunks with
/// per-thread partial sums added in thread order: deterministic for a fixed thread count.
/// On a CSR shard with m = 1 each thread keeps v and its partial sum interleaved
/// ((v_j, out_j) adjacent), so that the random accesses of a column's read and update
/// share one cache line (see docs/performance.md, section 8).
#include <cstdint>
#include <span>
#include <vector>

#include "natgrad/core/fisher.hpp"
#include "natgrad/core/model.hpp"
#include "natgrad/core/shard.hpp"

namespace natgrad {

class FisherOperator {
 public:
  /// Evaluates the per-row curvature at \p theta (d * m values, class-major). \p kind:
  /// expected, empirical or meat (throws natgrad::Error otherwise). Rows not in \p sample get 0.
  void prepare(const Shard& shard, const Model& model, std::span<const double> theta, FisherKind kind,
               const FisherSample& sample, int threads);
  /// out = sum_i (x_i (x) I_m) C_i (x_i (x) I_m)^T v: the unnormalised Fisher of this
  /// rank's rows times \p v (both d * m values, class-major). Needs prepare().
  void apply(const Shard& shard, std::span<const double> v, std::span<double> out, int threads);
  /// Bytes held (per-row curvature and per-thread partial sums).
  std::size_t bytes() const;

 private:
  int m_ = 1;      // linear predictors per row
  int r_ = 1;      // columns of the stored factor per row (multi-output)
  bool scalar_ = true;
  /// The m = 1 product on a CSR shard (apply's fast path).
  void apply_sparse_scalar(const Shard& shard, std::span<const double> v, std::span<double> out, int threads);

  std::vector<double> c_;                     // scalar: C_i; multi-output: G_i (m x r, row-major), C_i = G G^T
  // Per thread: sparse m = 1: (v_j, out_j) interleaved, 2 p values; otherwise the partial
  // sums of threads 1.. (thread 0 adds into out; its vector stays empty).
  std::vector<std::vector<double>> partial_;
};

}  // namespace natgrad
