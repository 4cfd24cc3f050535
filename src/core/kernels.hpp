#pragma once
/// \file kernels.hpp (private: not installed)
/// Local (per-rank) accumulation of loss, gradient and Fisher sums with OpenMP over
/// row blocks and level-3 BLAS. No MPI: the solver reduces the packed result.
#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>
#include <new>
#include <vector>

#include "natgrad/core/model.hpp"
#include "core/simd_kernels.hpp"
#include "natgrad/core/fisher.hpp"
#include "natgrad/core/shard.hpp"

namespace natgrad {

/// Packed layout of one rank's sums, reduced across ranks in one call (every slot is a
/// plain sum, so the whole buffer is summed element-wise):
///   [0] sum w_i nll_i   [1] sum w_i   [2] rows   [3 .. 3+p) sum w_i dnll_i x_i
///   then fisher_size() entries: for diagonal, p entries; for the other full kinds, the
///   upper triangle of sum w_i c_i x_i x_i^T packed column by column (LAPACK 'U' packed
///   storage), p(p+1)/2 entries, with c_i = fisher_i (expected) or dnll_i^2 (empirical
///   kinds); the sum runs over the Fisher subsample's rows only (FisherSample);
///   then [3+p+fisher_size()] sum w_i over the rows that entered the Fisher sum (equal
///   to [1] without sampling; also summed for kind none), the last slot.
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
  double& fisher_weight() { return buf[3 + static_cast<std::size_t>(p) + fisher_size()]; }
  double loss_sum() const { return buf[0]; }
  double weight_sum() const { return buf[1]; }
  double rows() const { return buf[2]; }
  const double* grad() const { return buf.data() + 3; }
  const double* fisher() const { return buf.data() + 3 + p; }
  double fisher_weight() const { return buf[3 + static_cast<std::size_t>(p) + fisher_size()]; }
  std::size_t fisher_size() const;
};

/// Which rows of a block enter the Fisher sum: every row (no sample), or the rows of a
/// FisherSample, those with in_fisher_sample(global row). Both Fisher strategies of
/// accumulate() and its multi-output pass take their rows from it.
class RowSelector {
 public:
  explicit RowSelector(const FisherSample& s);
  /// Every row is selected (no sample).
  bool all() const { return all_; }
  /// Whether global row \p global_row is selected.
  bool take(std::int64_t global_row) const;
  /// How many of rows [i0, i0 + m) of \p s are selected. all(): m, with \p sel and
  /// \p fwsum untouched (row r of the selection is row r of the block). Else writes
  /// their block-local indices to \p sel (ascending, room for m) and adds their weights
  /// to \p fwsum.
  std::int64_t select(const Shard& s, std::int64_t i0, std::int64_t m, std::int64_t* sel, double& fwsum) const;
  /// The part [k0, k1) of a block's selection (select()'s \p sel, \p ns rows) that lies
  /// in the block's rows [s0, s1).
  std::pair<std::int64_t, std::int64_t> slice(const std::int64_t* sel, std::int64_t ns, std::int64_t s0,
                                              std::int64_t s1) const;
  /// The block-local row that is row \p r of the selection.
  std::int64_t row(const std::int64_t* sel, std::int64_t r) const { return all_ ? r : sel[r]; }

 private:
  std::uint64_t key_ = 0, threshold_ = 0;
  bool all_ = true;
};

/// Reusable per-thread scratch so that iterations allocate nothing.
class Workspace {
 public:
  Workspace() = default;
  /// Sets sizes for \p threads threads, \p d columns, row blocks of \p block rows, for
  /// a model with \p outputs linear predictors and \p factors Fisher factor columns.
  /// \p sparse: for a CSR shard (Shard::sparse): no dense row panels and no p x p
  /// matrices (see the sparse members below); accumulate() re-prepares a workspace
  /// prepared for the other layout.
  void prepare(int threads, std::int64_t d, std::int64_t block, FisherKind kind, int outputs = 1,
               int factors = 1, bool sparse = false);
  int threads() const { return threads_; }
  int outputs() const { return outputs_; }
  std::int64_t block() const { return block_; }

  // Per thread t: scaled row block (block x p), eta/nll/dnll/fisher (block each),
  // gradient (p), Fisher accumulator (p x p, column-major, upper used). When the
  // Fisher is formed by one threaded SYRK (large p, see kernels.cpp), scaled_ and
  // fisher_ hold a single tall block and a single p x p matrix instead.
  // With a FisherSample, scaled_ stages the scaled rows of sampled rows across row
  // blocks (one SYRK per full buffer), sel_ holds a block's sampled row indices and
  // fwsum_ the per-thread weight of the sampled rows.
  // For the packed kernel (a SIMD kernel set, single output, p <= 384, per-thread
  // accumulators) scaled_ holds panels of P = kernels()->panel columns (4 for AVX2, 8 for
  // AVX-512), each pstride_ doubles apart, columns padded to a multiple of P with zeros,
  // and fisher_ is fisher_ld_ x fisher_ld_; otherwise pstride_ is 0 (row-major scaled
  // rows) and fisher_ld_ is p. scaled_ and fisher_ start on a cache line (64 bytes), so
  // the kernels' full-width loads and stores never split one.
  template <class T>
  struct CacheAligned {
    using value_type = T;
    CacheAligned() = default;
    template <class U>
    CacheAligned(const CacheAligned<U>&) {}
    T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t{64})); }
    void deallocate(T* p, std::size_t) { ::operator delete(p, std::align_val_t{64}); }
    friend bool operator==(const CacheAligned&, const CacheAligned&) { return true; }
  };
  using AlignedDoubles = std::vector<double, CacheAligned<double>>;
  std::vector<AlignedDoubles> scaled_, fisher_;
  /// The Fisher precision of the next prepare() (the fit's --fisher-precision). float32
  /// (f32_, single-output models, full kinds): the operand is scaled32_ instead of scaled_
  /// (floats, same layouts with ks->panel_f32 columns per panel), and the BLAS route
  /// SSYRKs each staged block into fisher32_ (p x p floats per slot) before adding it into
  /// fisher_, which stays double.
  FisherPrecision fisher_precision = FisherPrecision::float64;
  bool f32_ = false;
  std::vector<std::vector<float, CacheAligned<float>>> scaled32_;
  std::vector<std::vector<float>> fisher32_;
  std::vector<std::vector<double>> eta_, nll_, dnll_, fw_, grad_;
  std::int64_t pstride_ = 0, fisher_ld_ = 0;
  std::int64_t sweep_rows_ = 0;  // rows per block of a pass: block(), or less (packed path)
  /// The kernel set the workspace was prepared for (nullptr: portable C++ and the BLAS).
  const detail::KernelSet* kernels() const { return ks_; }
  std::vector<std::vector<std::int64_t>> sel_;
  std::vector<double> loss_, wsum_, fwsum_;

  // Sparse shards (prepare(..., sparse = true); kernels.cpp, "CSR shards"): eta_, nll_,
  // dnll_, fw_ for `block` rows and grad_ (P = d * outputs) per thread as above; coef_
  // holds a block's per-row Fisher coefficients (outputs x outputs each) and take_ its
  // Fisher-sample flags. Diagonal: fisher_[t] is thread t's P-vector (one output: 2P values,
  // (grad_j, F_jj) interleaved, and grad_ empty). Full kinds, two
  // strategies: split_ false: per-thread packed triangles (P(P+1)/2; thread 0 adds into
  // the output directly, fisher_[t] for t >= 1), chosen while (threads - 1) triangles fit
  // in detail::sparse_triangle_limit(); split_ true: one triangle (the output), its
  // columns split into threads ranges [bounds_[t], bounds_[t+1]) of about equal work,
  // each thread adding only the pairs of its columns over a chunk of rows whose
  // coefficients (chunk_coef_) and flags (chunk_take_) all threads computed first.
  bool sparse_ = false, split_ = false;
  std::int64_t chunk_rows_ = 0;
  std::vector<std::vector<double>> coef_;
  std::vector<std::vector<unsigned char>> take_;
  std::vector<double> chunk_coef_;
  std::vector<unsigned char> chunk_take_;
  std::vector<std::int64_t> bounds_, work_;

 private:
  void prepare_sparse();
  const detail::KernelSet* ks_ = nullptr;
  std::int64_t packed_max_ = -1;
  FisherPrecision precision_ = FisherPrecision::float64;
  int threads_ = 0, outputs_ = 1, factors_ = 1;
  std::int64_t p_ = 0, block_ = 0;
  std::size_t limit_ = 0;
  FisherKind kind_ = FisherKind::none;
};

namespace detail {
/// Sparse shards, full Fisher kinds, several threads: the most bytes the extra per-thread
/// packed triangles ((threads - 1) * P(P+1)/2 doubles) may take before the pass splits
/// one triangle by column ranges instead (Workspace::split_). Default 32 MiB. Returns the
/// previous value; for tests and benchmarks (0 forces the split). Not thread-safe.
std::size_t set_sparse_triangle_limit(std::size_t bytes);
/// The largest p for which the per-thread pass uses the packed kernel (KernelSet::syrk)
/// rather than the BLAS SYRK: \p p >= 0 overrides the kernel set's packed_max_p (its
/// measured crossover), -1 restores it. Returns the previous override. For tests and
/// natgrad_bench. Not thread-safe.
std::int64_t set_packed_max_p(std::int64_t p);
/// Whether Workspace::prepare of a full Fisher kind with these sizes holds one shared
/// p x p accumulator (true) or one per thread: what a failed allocation's message sizes.
bool shared_fisher_accumulator(std::int64_t d, int threads, int outputs);
std::size_t sparse_triangle_limit();
}  // namespace detail

/// One fused pass over this rank's rows: loss, gradient and the chosen Fisher sum at
/// \p theta (d * model.n_outputs() values, class-major), written into \p out (resized).
/// Deterministic for a fixed thread count. Local; uses \p threads OpenMP threads.
/// Sparse shards: eta, gradient and Fisher from each row's nonzeros (k(k+1)/2 pair
/// updates of the packed triangle for a row of k nonzeros, per output pair), nothing
/// n x p or p x p beyond the output (see Workspace).
/// With an active \p sample the Fisher sum (and PackedSums::fisher_weight) covers only
/// the rows with in_fisher_sample(shard.first_row + i, sample), in the same pass; loss,
/// weight sum, rows and gradient still cover every row. Throws natgrad::Error for an
/// active sample with kinds empirical_centered and meat (not supported).
void accumulate(const Shard& shard, const Model& model, std::span<const double> theta,
                FisherKind kind, int threads, Workspace& ws, PackedSums& out,
                const FisherSample& sample = {});

/// Loss-only pass (sum w_i nll_i, sum w_i) for line-search trials. Local.
void accumulate_loss(const Shard& shard, const Model& model, std::span<const double> theta,
                     int threads, Workspace& ws, double out[2]);

/// After the reduction: turns the summed buffer into per-observation quantities.
/// Writes loss (mean), gradient (p) and the full symmetric Fisher (p x p, both
/// triangles) or its diagonal (p). Loss and gradient are divided by weight_sum, the
/// Fisher by fisher_weight (the weight of the rows it was summed over, = weight_sum
/// without sampling), so a subsampled Fisher estimates the per-observation Fisher.
/// For empirical_centered applies (S - n mean mean^T) / (n - 1) with the row count n,
/// as numpy.cov does.
struct Normalized {
  double loss = 0, weight_sum = 0, rows = 0;
  double fisher_weight = 0;    // sum of w_i over the rows in the Fisher sum
  std::vector<double> grad;    // p
  std::vector<double> fisher;  // p*p (full) or p (diagonal) or empty
};
void finalize(PackedSums& sums, Normalized& out);

}  // namespace natgrad
