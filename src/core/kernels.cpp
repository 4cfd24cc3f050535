#include "core/kernels.hpp"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <utility>

#include "natgrad/core/error.hpp"
#include "core/simd_kernels.hpp"

namespace natgrad {

const char* to_string(FisherKind k) {
  switch (k) {
    case FisherKind::none: return "none";
    case FisherKind::diagonal: return "diagonal";
    case FisherKind::empirical: return "empirical";
    case FisherKind::empirical_centered: return "empirical-centered";
    case FisherKind::expected: return "expected";
    case FisherKind::meat: return "meat";
  }
  return "?";
}

const char* to_string(FisherPrecision p) { return p == FisherPrecision::float32 ? "float32" : "float64"; }
FisherPrecision fisher_precision_from_string(const std::string& s) {
  if (s == "float64") return FisherPrecision::float64;
  if (s == "float32") return FisherPrecision::float32;
  throw Error("--fisher-precision must be float64 or float32, not '" + s + "'");
}

FisherKind fisher_kind_from_string(const std::string& s) {
  if (s == "empirical") return FisherKind::empirical;
  if (s == "empirical-centered") return FisherKind::empirical_centered;
  if (s == "expected") return FisherKind::expected;
  throw Error("--fisher '" + s + "' is not one of: expected, empirical, empirical-centered");
}

namespace {
bool is_full(FisherKind k) {
  return k == FisherKind::empirical || k == FisherKind::empirical_centered ||
         k == FisherKind::expected || k == FisherKind::meat;
}
// Two ways to form the Fisher of one rank (docs/performance.md measures both):
//  - per-thread accumulators: each thread runs single-threaded SYRKs on its own row
//    blocks into its own p x p matrix, summed in thread order at the end. No
//    synchronisation inside the pass; costs threads * p^2 doubles.
//  - shared: rows of a tall block are prepared by all threads, then one SYRK threaded
//    by the BLAS updates a single p x p matrix: p^2 doubles whatever the thread count.
// Above kPerThreadMaxP parameters the shared form is used (both run at the same rate
// at p = 1024 on 2 threads; shared keeps the memory independent of the threads).
constexpr std::int64_t kPerThreadMaxP = 384;

// The packed kernel's limit: the largest p it is used for, per kernel set (measured
// against the BLAS SYRK path, docs/performance.md), or the test/bench override.
std::int64_t g_packed_max_p = -1;
std::int64_t packed_limit(const detail::KernelSet* ks) {
  if (ks == nullptr) return 0;
  return g_packed_max_p >= 0 ? g_packed_max_p : ks->packed_max_p;
}

bool shared_fisher(std::int64_t p, int threads, bool full, const detail::KernelSet* ks, int outputs) {
  const std::int64_t per_thread_max = outputs == 1 ? std::max(kPerThreadMaxP, packed_limit(ks)) : kPerThreadMaxP;
  return full && threads > 1 && p > per_thread_max;
}

std::int64_t shared_block_rows(std::int64_t p, std::int64_t block) {
  // Scaled block of at most 64 MiB, and tall enough for BLAS-3 efficiency.
  return std::max<std::int64_t>(block, std::min<std::int64_t>(16384, (std::int64_t{1} << 23) / std::max<std::int64_t>(p, 1)));
}

// The per-thread Fisher of a single-output model with p <= kPerThreadMaxP is formed by
// natgrad's own packed kernel (KernelSet::syrk, simd_kernels.inl) instead of the BLAS
// SYRK: at these sizes DSYRK reaches only 66-88% of the DGEMM rate (docs/performance.md,
// section 1). Without a kernel set (no AVX2 and FMA) the BLAS SYRK is used.
bool packed_fisher(std::int64_t p, int outputs, bool full, bool shared, const detail::KernelSet* ks) {
  return ks != nullptr && outputs == 1 && full && !shared && p <= packed_limit(ks);
}
// Rows per block in the packed path (at most --block-rows): the block of X and its
// packed copy then stay in L2 with the p x p accumulator; measured on one core, 128
// rows beat 256 by about 5% at p = 64 and p = 256 (docs/performance.md, section 1).
constexpr std::int64_t kPackedMaxRows = 128;
std::int64_t padded(std::int64_t p, std::int64_t panel) { return (p + panel - 1) / panel * panel; }

// Fisher subsampling: row r is in the sample when the splitmix64 output number r of the
// stream keyed by the seed is below fraction * 2^64. Depends on the global row only.
constexpr std::uint64_t kGolden = 0x9e3779b97f4a7c15ULL;

inline std::uint64_t mix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

}  // namespace

RowSelector::RowSelector(const FisherSample& s)
    : key_(mix64(s.seed + kGolden)),
      // fraction in (0, 1): fraction * 2^64 < 2^64 fits; fraction <= 0 selects nothing.
      threshold_(s.active() && s.fraction > 0 ? static_cast<std::uint64_t>(std::ldexp(s.fraction, 64)) : 0),
      all_(!s.active()) {}

bool RowSelector::take(std::int64_t global_row) const {
  return all_ || mix64(key_ + (static_cast<std::uint64_t>(global_row) + 1) * kGolden) < threshold_;
}

std::int64_t RowSelector::select(const Shard& s, std::int64_t i0, std::int64_t m, std::int64_t* sel,
                                 double& fwsum) const {
  if (all_) return m;
  std::int64_t k = 0;
  const std::int64_t g0 = s.first_row + i0;
  for (std::int64_t i = 0; i < m; ++i)
    if (take(g0 + i)) {
      sel[k++] = i;
      fwsum += s.weight.empty() ? 1.0 : s.weight[i0 + i];
    }
  return k;
}

std::pair<std::int64_t, std::int64_t> RowSelector::slice(const std::int64_t* sel, std::int64_t ns, std::int64_t s0,
                                                         std::int64_t s1) const {
  if (all_) return {s0, s1};
  const std::int64_t k0 = std::lower_bound(sel, sel + ns, s0) - sel;
  return {k0, std::lower_bound(sel + k0, sel + ns, s1) - sel};
}

bool in_fisher_sample(std::int64_t global_row, const FisherSample& s) { return RowSelector(s).take(global_row); }

void PackedSums::resize(std::int64_t p_, FisherKind kind_) {
  p = p_;
  kind = kind_;
  buf.assign(3 + static_cast<std::size_t>(p) + fisher_size() + 1, 0.0);  // + fisher_weight
}

std::size_t PackedSums::fisher_size() const {
  if (kind == FisherKind::diagonal) return static_cast<std::size_t>(p);
  if (is_full(kind)) return static_cast<std::size_t>(p * (p + 1) / 2);
  return 0;
}

namespace {
std::size_t g_sparse_triangle_limit = std::size_t{32} << 20;
}  // namespace

std::int64_t detail::set_packed_max_p(std::int64_t p) { return std::exchange(g_packed_max_p, p); }

bool detail::shared_fisher_accumulator(std::int64_t d, int threads, int outputs) {
  return outputs == 1 && shared_fisher(d * outputs, threads, true, detail::active_kernel_set(), outputs);
}

std::size_t detail::set_sparse_triangle_limit(std::size_t bytes) {
  return std::exchange(g_sparse_triangle_limit, bytes);
}
std::size_t detail::sparse_triangle_limit() { return g_sparse_triangle_limit; }

void Workspace::prepare(int threads, std::int64_t d, std::int64_t block, FisherKind kind, int outputs,
                        int factors, bool sparse) {
  const detail::KernelSet* ks = detail::active_kernel_set();
  const std::size_t limit = sparse ? detail::sparse_triangle_limit() : 0;
  if (threads == threads_ && d == p_ && block == block_ && kind == kind_ && outputs == outputs_ &&
      factors == factors_ && ks == ks_ && sparse == sparse_ && limit == limit_ && packed_limit(ks) == packed_max_ &&
      fisher_precision == precision_)
    return;
  packed_max_ = packed_limit(ks);
  precision_ = fisher_precision;
  ks_ = ks;
  threads_ = threads;
  p_ = d;
  block_ = block;
  kind_ = kind;
  outputs_ = outputs;
  factors_ = factors;
  sparse_ = sparse;
  limit_ = limit;
  split_ = false;
  chunk_rows_ = 0;
  coef_.clear();
  take_.clear();
  chunk_coef_ = {};
  chunk_take_ = {};
  bounds_.clear();
  work_ = {};
  f32_ = false;
  scaled32_.clear();
  fisher32_.clear();
  if (sparse) return prepare_sparse();
  const std::int64_t p = d * outputs;  // parameters
  const bool shared = outputs == 1 && shared_fisher(p, threads, is_full(kind), ks, outputs);
  const std::size_t rows = static_cast<std::size_t>(shared ? shared_block_rows(p, block) : block);
  const std::size_t np = static_cast<std::size_t>(p), m = static_cast<std::size_t>(outputs);
  const std::size_t q = kind == FisherKind::expected ? static_cast<std::size_t>(factors) : 1;
  const std::size_t slots = shared ? 1 : static_cast<std::size_t>(threads);
  const bool packed = packed_fisher(p, outputs, is_full(kind), shared, ks);
  // --fisher-precision float32: the operand in float (single-output, full kinds).
  f32_ = fisher_precision == FisherPrecision::float32 && outputs == 1 && is_full(kind);
  const std::int64_t panel = packed ? (f32_ ? ks->panel_f32 : ks->panel) : 1;
  const std::size_t pp = static_cast<std::size_t>(padded(p, panel));
  // Panels one cache line longer than their rows: at a power-of-two stride the rows'
  // stores into the p / 4 panels, and the tile kernel's loads, would all map to the same
  // L1 sets.
  sweep_rows_ = packed ? std::min<std::int64_t>(block, kPackedMaxRows) : static_cast<std::int64_t>(rows);
  pstride_ = packed ? panel * sweep_rows_ + (f32_ ? 16 : 8) : 0;
  fisher_ld_ = static_cast<std::int64_t>(pp);
  scaled_.assign(slots, {});  // zero: the padding columns of the packed layout stay zero
  const std::size_t scaled_size =
      packed ? pp / static_cast<std::size_t>(panel) * static_cast<std::size_t>(pstride_) : rows * q * pp;
  for (auto& s : scaled_) s.assign(is_full(kind) && !f32_ ? scaled_size : 0, 0.0);
  scaled32_.assign(f32_ ? slots : 0, {});
  for (auto& s : scaled32_) s.assign(scaled_size, 0.0f);
  // The BLAS route in float: each SSYRK into a float p x p, then added into fisher_.
  fisher32_.assign(f32_ && !packed ? slots : 0, {});
  for (auto& f : fisher32_) f.assign(np * np, 0.0f);
  auto per_thread = [&](std::vector<std::vector<double>>& v, std::size_t n) {
    v.assign(static_cast<std::size_t>(threads), std::vector<double>(n, 0.0));
  };
  per_thread(eta_, rows * m);
  per_thread(nll_, rows);
  per_thread(dnll_, rows * m);
  per_thread(fw_, outputs > 1 ? rows * m * static_cast<std::size_t>(factors) : rows);
  per_thread(grad_, np);
  // Shared mode keeps its one p x p matrix here too, so that no call allocates it.
  fisher_.assign(shared ? 1 : static_cast<std::size_t>(threads), {});
  for (auto& f : fisher_)
    f.assign(is_full(kind) ? pp * pp : (kind == FisherKind::diagonal ? np : 0), 0.0);
  // Sampled-row indices of a block: per thread, or one list for the shared tall block.
  sel_.assign(shared ? 1 : static_cast<std::size_t>(threads), std::vector<std::int64_t>(rows, 0));
  loss_.assign(static_cast<std::size_t>(threads), 0.0);
  wsum_.assign(static_cast<std::size_t>(threads), 0.0);
  fwsum_.assign(static_cast<std::size_t>(threads), 0.0);
}

namespace {

/// eta = X theta for m rows of a row-major block: the kernel set's gemv (natgrad's own,
/// so the pass does not depend on the BLAS core's DGEMV), else the BLAS.
void eta_rows(const double* X, std::int64_t m, std::int64_t p, const double* theta, double* eta) {
  if (const detail::KernelSet* ks = detail::active_kernel_set()) return ks->gemv(X, m, p, theta, eta);
  cblas_dgemv(CblasRowMajor, CblasNoTrans, static_cast<int>(m), static_cast<int>(p), 1.0, X, static_cast<int>(p),
              theta, 1, 0.0, eta, 1);
}

/// Per-row work of one block: eta, model evaluation, loss and weight sums, the per-row
/// Fisher scale a_i (written into fw) such that the block's Fisher contribution is
/// sum_i a_i^2 x_i x_i^T, and the gradient weights w_i dnll_i (written into dnll).
/// The gradient itself is added by the caller: by scale_and_grad for the full kinds
/// (one read of the block for both), else by add_gradient.
void rows_pass(const Shard& s, const Model& model, const double* theta, FisherKind kind,
               std::int64_t i0, std::int64_t m, double* eta, double* nll, double* dnll,
               double* fw, double& loss, double& wsum) {
  const std::int64_t p = s.n_cols;
  const double* X = s.row(i0);
  eta_rows(X, m, p, theta, eta);
  if (!s.offset.empty())
    for (std::int64_t i = 0; i < m; ++i) eta[i] += s.offset[i0 + i];
  const bool want_fw = kind == FisherKind::expected || kind == FisherKind::diagonal;
  model.eval(static_cast<std::size_t>(m), eta, s.y.data() + i0, nll, dnll, want_fw ? fw : nullptr);
  for (std::int64_t i = 0; i < m; ++i) {
    const double w = s.weight.empty() ? 1.0 : s.weight[i0 + i];
    loss += w * nll[i];
    wsum += w;
    switch (kind) {
      case FisherKind::expected: fw[i] = std::sqrt(w * fw[i]); break;
      case FisherKind::diagonal: fw[i] = w * fw[i]; break;
      case FisherKind::empirical:
      case FisherKind::empirical_centered: fw[i] = std::sqrt(w) * std::abs(dnll[i]); break;
      case FisherKind::meat: fw[i] = w * std::abs(dnll[i]); break;
      case FisherKind::none: break;
    }
    dnll[i] *= w;  // gradient weight
  }
}

/// grad += X_block^T g (BLAS-2), for the kinds without a full Fisher.
void add_gradient(const Shard& s, std::int64_t i0, std::int64_t m, const double* g, double* grad) {
  const int ip = static_cast<int>(s.n_cols);
  cblas_dgemv(CblasRowMajor, CblasTrans, static_cast<int>(m), ip, 1.0, s.row(i0), ip, g, 1, 1.0, grad, 1);
}

/// Where the scaled rows (the Fisher operand) go: row k of the operand at S + k * p
/// (row-major m x p = column-major p x m, the BLAS SYRK operand) when pstride is 0, else
/// in panels of P = ks->panel columns for the kernel set's syrk: element (k, j) at
/// S[(j / P) * pstride + P * k + j % P].
/// With a float Fisher (Workspace::f32_) the operand is S32 (panels of ks->panel_f32
/// floats, or row-major), and F32 a float p x p for the BLAS route (SSYRK).
struct Operand {
  double* S;
  std::int64_t p, pstride;
  const detail::KernelSet* ks = nullptr;  // set when pstride > 0
  float* S32 = nullptr;
  float* F32 = nullptr;
};

/// The operand of thread (slot) \p t of \p ws.
Operand operand(Workspace& ws, std::size_t t, std::int64_t p, bool full) {
  if (!full) return Operand{nullptr, p, ws.pstride_, ws.kernels()};
  if (!ws.f32_) return Operand{ws.scaled_[t].data(), p, ws.pstride_, ws.kernels()};
  return Operand{nullptr, p, ws.pstride_, ws.kernels(), ws.scaled32_[t].data(),
                 ws.fisher32_.empty() ? nullptr : ws.fisher32_[t].data()};
}

/// Writes a * x (p values) as row k of \p op (row-major layout).
inline void put_row(const Operand& op, std::int64_t k, double a, const double* __restrict x) {
  if (op.S32 != nullptr) {
    float* __restrict si = op.S32 + k * op.p;
#pragma omp simd
    for (std::int64_t j = 0; j < op.p; ++j) si[j] = static_cast<float>(a * x[j]);
    return;
  }
  double* __restrict si = op.S + k * op.p;
#pragma omp simd
  for (std::int64_t j = 0; j < op.p; ++j) si[j] = a * x[j];
}

/// Rows row0.. of \p op = diag(a) X_block and grad += X_block^T g, in one read of the
/// block. Built for AVX2 as well as the baseline ISA; the loader picks the variant the
/// CPU supports.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
__attribute__((target_clones("avx2", "default")))
#endif
void scale_and_grad(const double* X, std::int64_t m, const double* a, const double* g, const Operand& op,
                    std::int64_t row0, double* grad) {
  const std::int64_t p = op.p;
  for (std::int64_t i = 0; i < m; ++i) {
    const double gi = g[i];
    const double* __restrict xi = X + i * p;
    double* __restrict gr = grad;
    put_row(op, row0 + i, a[i], xi);
#pragma omp simd
    for (std::int64_t j = 0; j < p; ++j) gr[j] += gi * xi[j];
  }
}

/// scale_and_grad for a Fisher subsample: grad += X_block^T g over all m rows, and the
/// scaled rows a_i x_i of the sampled rows only, as rows row0, row0 + 1, ... of \p op.
/// \p sel lists the \p nsel sampled rows ascending, as indices relative to X minus
/// \p base (row i of X is sampled when sel[k] == base + i).
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
__attribute__((target_clones("avx2", "default")))
#endif
void scale_and_grad_sel(const double* X, std::int64_t m, const double* a, const double* g,
                        const std::int64_t* sel, std::int64_t nsel, std::int64_t base, const Operand& op,
                        std::int64_t row0, double* grad) {
  const std::int64_t p = op.p;
  std::int64_t k = 0;
  for (std::int64_t i = 0; i < m; ++i) {
    const double gi = g[i];
    const double* __restrict xi = X + i * p;
    double* __restrict gr = grad;
    if (k < nsel && sel[k] == base + i) put_row(op, row0 + k++, a[i], xi);
#pragma omp simd
    for (std::int64_t j = 0; j < p; ++j) gr[j] += gi * xi[j];
  }
}

/// F (p x p, upper) += S S^T for the column-major p x k operand S.
void syrk_add(std::int64_t p, std::int64_t k, const double* S, double* F) {
  cblas_dsyrk(CblasColMajor, CblasUpper, CblasNoTrans, static_cast<int>(p), static_cast<int>(k), 1.0, S,
              static_cast<int>(p), 1.0, F, static_cast<int>(p));
}


/// The Fisher update of one thread's staged rows: packed_syrk or the BLAS SYRK,
/// according to the workspace's layout.
void fisher_update(const Operand& op, const Workspace& ws, std::int64_t k, double* F, const void* ahead = nullptr,
                   std::int64_t ahead_bytes = 0) {
  if (k <= 0) return;
  if (op.S32 != nullptr) {
    if (op.pstride > 0)
      return op.ks->syrk_f32(op.S32, op.pstride, ws.fisher_ld_, k, F, ws.fisher_ld_, ahead, ahead_bytes);
    const int ip = static_cast<int>(op.p);
    cblas_ssyrk(CblasColMajor, CblasUpper, CblasNoTrans, ip, static_cast<int>(k), 1.0f, op.S32, ip, 0.0f, op.F32, ip);
    for (std::int64_t j = 0; j < op.p; ++j)
      for (std::int64_t i = 0; i <= j; ++i) F[i + j * op.p] += static_cast<double>(op.F32[i + j * op.p]);
    return;
  }
  if (op.pstride > 0) return op.ks->syrk(op.S, op.pstride, ws.fisher_ld_, k, F, ws.fisher_ld_, ahead, ahead_bytes);
  syrk_add(op.p, k, op.S, F);
}

/// The upper triangle of F (p x p of leading dimension ld, column-major) into packed
/// column-major upper storage, added or assigned.
void pack_upper(const double* F, std::int64_t p, std::int64_t ld, double* packed, bool add) {
  for (std::int64_t j = 0; j < p; ++j) {
    double* col = packed + j * (j + 1) / 2;
    const double* src = F + j * ld;
    if (add)
      for (std::int64_t i = 0; i <= j; ++i) col[i] += src[i];
    else
      for (std::int64_t i = 0; i <= j; ++i) col[i] = src[i];
  }
}

}  // namespace

namespace {

/// Adds the per-thread accumulators into \p out in thread order, so the result is
/// deterministic for a fixed thread count. Without sampling the Fisher weight is the
/// weight sum.
void combine_threads(const Workspace& ws, int threads, std::int64_t P, FisherKind kind, bool sampling,
                     PackedSums& out) {
  for (int t = 0; t < threads; ++t) {
    out.loss_sum() += ws.loss_[t];
    out.weight_sum() += ws.wsum_[t];
    if (sampling) out.fisher_weight() += ws.fwsum_[t];
    for (std::int64_t j = 0; j < P; ++j) out.grad()[j] += ws.grad_[t][j];
    if (is_full(kind))
      pack_upper(ws.fisher_[t].data(), P, ws.fisher_ld_, out.fisher(), true);
    else if (kind == FisherKind::diagonal)
      for (std::int64_t j = 0; j < P; ++j) out.fisher()[j] += ws.fisher_[t][j];
  }
  if (!sampling) out.fisher_weight() = out.weight_sum();
}

/// Multi-output models (multinomial): eta_k = X theta_k for k < m, per-row m x q Fisher
/// factors, and for each row q scaled copies of x, one per factor column, so that the
/// Fisher is still one SYRK per block: sum over rows and columns c of
/// (M_i[:, c] (x) x_i)(M_i[:, c] (x) x_i)^T.
void accumulate_multi(const Shard& s, const Model& model, std::span<const double> theta,
                      FisherKind kind, int threads, Workspace& ws, PackedSums& out, const RowSelector& selector) {
  const std::int64_t d = s.n_cols, n = s.n_rows, m = model.n_outputs();
  const std::int64_t P = d * m;
  const bool full = is_full(kind);
  const std::int64_t q = kind == FisherKind::expected ? model.n_factors() : 1;
  ws.prepare(threads, d, ws.block() > 0 ? ws.block() : 256, kind, static_cast<int>(m), model.n_factors());
  out.resize(P, kind);
  const std::int64_t block = ws.block();
  const std::int64_t nblocks = (n + block - 1) / block;
  const bool want_factor = kind == FisherKind::expected || kind == FisherKind::diagonal;
  const bool sampling = !selector.all();
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num();
    auto& g = ws.grad_[t];
    auto& F = ws.fisher_[t];
    std::fill(g.begin(), g.end(), 0.0);
    std::fill(F.begin(), F.end(), 0.0);
    std::vector<double> wd(static_cast<std::size_t>(block));
    double loss = 0, wsum = 0, fwsum = 0;
    // Sampling: the scaled copies of sampled rows are staged across blocks in the
    // scaled buffer (room for `block` rows) and SYRKed when it would overflow.
    double* sc = full ? ws.scaled_[t].data() : nullptr;
    std::int64_t* sel = ws.sel_[t].data();
    std::int64_t pending = 0;
    auto flush = [&] {
      if (pending > 0) syrk_add(P, pending * q, sc, F.data());
      pending = 0;
    };
#pragma omp for schedule(static)
    for (std::int64_t b = 0; b < nblocks; ++b) {
      const std::int64_t i0 = b * block, rows = std::min(block, n - i0);
      const double* X = s.row(i0);
      double* eta = ws.eta_[t].data();
      double* dn = ws.dnll_[t].data();
      double* fac = ws.fw_[t].data();
      for (std::int64_t k = 0; k < m; ++k)
        cblas_dgemv(CblasRowMajor, CblasNoTrans, static_cast<int>(rows), static_cast<int>(d), 1.0, X,
                    static_cast<int>(d), theta.data() + k * d, 1, 0.0, eta + k, static_cast<int>(m));
      if (!s.offset.empty())
        for (std::int64_t i = 0; i < rows; ++i)
          for (std::int64_t k = 0; k < m; ++k) eta[i * m + k] += s.offset[i0 + i];
      model.eval_multi(static_cast<std::size_t>(rows), eta, s.y.data() + i0, ws.nll_[t].data(), dn,
                       want_factor ? fac : nullptr);
      for (std::int64_t i = 0; i < rows; ++i) {
        const double w = s.weight.empty() ? 1.0 : s.weight[i0 + i];
        loss += w * ws.nll_[t][i];
        wsum += w;
      }
      for (std::int64_t k = 0; k < m; ++k) {
        for (std::int64_t i = 0; i < rows; ++i)
          wd[i] = (s.weight.empty() ? 1.0 : s.weight[i0 + i]) * dn[i * m + k];
        cblas_dgemv(CblasRowMajor, CblasTrans, static_cast<int>(rows), static_cast<int>(d), 1.0, X,
                    static_cast<int>(d), wd.data(), 1, 1.0, g.data() + k * d, 1);
      }
      // Rows in the Fisher: all (ns = rows, row(r) = r) or the block's sampled rows.
      const std::int64_t ns = selector.select(s, i0, rows, sel, fwsum);
      auto row = [&](std::int64_t r) { return selector.row(sel, r); };
      if (kind == FisherKind::diagonal) {
        for (std::int64_t r = 0; r < ns; ++r) {
          const std::int64_t i = row(r);
          const double w = s.weight.empty() ? 1.0 : s.weight[i0 + i];
          for (std::int64_t k = 0; k < m; ++k) {
            double f = 0;
            for (std::int64_t c = 0; c < model.n_factors(); ++c) {
              const double v = fac[(i * m + k) * model.n_factors() + c];
              f += v * v;
            }
            for (std::int64_t j = 0; j < d; ++j) F[k * d + j] += w * f * X[i * d + j] * X[i * d + j];
          }
        }
      } else if (full) {
        if (pending + ns > block) flush();
        for (std::int64_t r = 0; r < ns; ++r) {
          const std::int64_t i = row(r);
          const double w = s.weight.empty() ? 1.0 : s.weight[i0 + i];
          const double* x = X + i * d;
          for (std::int64_t c = 0; c < q; ++c) {
            double* u = sc + ((pending + r) * q + c) * P;
            for (std::int64_t k = 0; k < m; ++k) {
              double a;
              if (kind == FisherKind::expected) a = std::sqrt(w) * fac[(i * m + k) * q + c];
              else if (kind == FisherKind::meat) a = w * dn[i * m + k];
              else a = std::sqrt(w) * dn[i * m + k];
              for (std::int64_t j = 0; j < d; ++j) u[k * d + j] = a * x[j];
            }
          }
        }
        pending += ns;
        if (!sampling) flush();  // one SYRK per block, as without staging
      }
    }
    if (full) flush();
    ws.loss_[t] = loss;
    ws.wsum_[t] = wsum;
    ws.fwsum_[t] = fwsum;
  }
  combine_threads(ws, threads, P, kind, sampling, out);
  out.rows() = static_cast<double>(n);
}

void accumulate_loss_multi(const Shard& s, const Model& model, std::span<const double> theta, int threads,
                           Workspace& ws, double out[2]) {
  const std::int64_t d = s.n_cols, n = s.n_rows, m = model.n_outputs();
  ws.prepare(threads, d, ws.block() > 0 ? ws.block() : 256, FisherKind::none, static_cast<int>(m),
             model.n_factors());
  const std::int64_t block = ws.block();
  const std::int64_t nblocks = (n + block - 1) / block;
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num();
    double loss = 0, wsum = 0;
#pragma omp for schedule(static)
    for (std::int64_t b = 0; b < nblocks; ++b) {
      const std::int64_t i0 = b * block, rows = std::min(block, n - i0);
      double* eta = ws.eta_[t].data();
      for (std::int64_t k = 0; k < m; ++k)
        cblas_dgemv(CblasRowMajor, CblasNoTrans, static_cast<int>(rows), static_cast<int>(d), 1.0, s.row(i0),
                    static_cast<int>(d), theta.data() + k * d, 1, 0.0, eta + k, static_cast<int>(m));
      if (!s.offset.empty())
        for (std::int64_t i = 0; i < rows; ++i)
          for (std::int64_t k = 0; k < m; ++k) eta[i * m + k] += s.offset[i0 + i];
      model.eval_multi(static_cast<std::size_t>(rows), eta, s.y.data() + i0, ws.nll_[t].data(), nullptr, nullptr);
      for (std::int64_t i = 0; i < rows; ++i) {
        const double w = s.weight.empty() ? 1.0 : s.weight[i0 + i];
        loss += w * ws.nll_[t][i];
        wsum += w;
      }
    }
    ws.loss_[t] = loss;
    ws.wsum_[t] = wsum;
  }
  out[0] = out[1] = 0;
  for (int t = 0; t < threads; ++t) {
    out[0] += ws.loss_[t];
    out[1] += ws.wsum_[t];
  }
}

/// The block's Fisher operand rows (its selected rows, scaled) written as rows row0.. of
/// \p op, and grad += X_block^T g, in one read of the block. \p sel, \p nsel, \p base as
/// for scale_and_grad_sel (unused when every row is selected).
void stage_rows(const RowSelector& rows, const double* X, std::int64_t m, const double* a, const double* g,
                const std::int64_t* sel, std::int64_t nsel, std::int64_t base, const Operand& op, std::int64_t row0,
                double* grad) {
  if (op.pstride > 0 && op.S32 != nullptr)
    op.ks->stage_f32(X, m, op.p, a, g, rows.all() ? nullptr : sel, nsel, base, op.S32, op.pstride, row0, grad);
  else if (op.pstride > 0)
    op.ks->stage(X, m, op.p, a, g, rows.all() ? nullptr : sel, nsel, base, op.S, op.pstride, row0, grad);
  else if (rows.all())
    scale_and_grad(X, m, a, g, op, row0, grad);
  else
    scale_and_grad_sel(X, m, a, g, sel, nsel, base, op, row0, grad);
}

/// Diagonal Fisher: F_j += a_i x_ij^2 over the block's \p ns selected rows.
void add_diagonal(const RowSelector& rows, const double* X, std::int64_t p, const double* a,
                  const std::int64_t* sel, std::int64_t ns, double* F) {
  for (std::int64_t r = 0; r < ns; ++r) {
    const std::int64_t i = rows.row(sel, r);
    for (std::int64_t j = 0; j < p; ++j) F[j] += a[i] * X[i * p + j] * X[i * p + j];
  }
}

// Staging of the Fisher operand, common to both strategies: the selected rows' scaled
// copies are staged in a buffer with room for one block and the Fisher is updated from
// it when the next block's rows would not fit, so each update stays about as wide as a
// block. With every row selected the update runs after each block (one per block).

/// Strategy 1, per-thread accumulators (p <= kPerThreadMaxP, one thread, or no full
/// Fisher): each thread owns a static set of blocks, forms its own gradient and Fisher
/// (packed_syrk or single-threaded BLAS: OpenBLAS does not nest inside a parallel
/// region), and the threads' sums are added in thread order.
void accumulate_per_thread(const Shard& shard, const Model& model, std::span<const double> theta, FisherKind kind,
                           int threads, Workspace& ws, const RowSelector& rows, PackedSums& out) {
  const std::int64_t p = shard.n_cols, n = shard.n_rows;
  const bool full = is_full(kind);
  const std::int64_t block = ws.sweep_rows_;
  const std::int64_t nblocks = (n + block - 1) / block;
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num();
    auto& g = ws.grad_[t];
    auto& F = ws.fisher_[t];
    std::fill(g.begin(), g.end(), 0.0);
    std::fill(F.begin(), F.end(), 0.0);
    double loss = 0, wsum = 0, fwsum = 0;
    const Operand op = operand(ws, static_cast<std::size_t>(t), p, full);
    std::int64_t* sel = ws.sel_[t].data();
    std::int64_t pending = 0;  // staged rows in op
#pragma omp for schedule(static)
    for (std::int64_t b = 0; b < nblocks; ++b) {
      const std::int64_t i0 = b * block, m = std::min(block, n - i0);
      double* fw = ws.fw_[t].data();
      double* dn = ws.dnll_[t].data();
      rows_pass(shard, model, theta.data(), kind, i0, m, ws.eta_[t].data(), ws.nll_[t].data(), dn, fw, loss, wsum);
      const std::int64_t ns = rows.select(shard, i0, m, sel, fwsum);
      if (!full) {
        add_gradient(shard, i0, m, dn, g.data());
        if (kind == FisherKind::diagonal) add_diagonal(rows, shard.row(i0), p, fw, sel, ns, F.data());
        continue;
      }
      if (pending + ns > block) {
        fisher_update(op, ws, pending, F.data());
        pending = 0;
      }
      stage_rows(rows, shard.row(i0), m, fw, dn, sel, ns, 0, op, pending, g.data());
      pending += ns;
      if (rows.all()) {
        // Prefetch this thread's next block (blocks are dealt out in contiguous runs).
        const std::int64_t m_next = std::max<std::int64_t>(0, std::min(block, n - i0 - m));
        fisher_update(op, ws, pending, F.data(), m_next > 0 ? shard.row(i0 + m) : nullptr,
                      m_next * p * static_cast<std::int64_t>(sizeof(double)));
        pending = 0;
      }
    }
    fisher_update(op, ws, pending, F.data());
    ws.loss_[t] = loss;
    ws.wsum_[t] = wsum;
    ws.fwsum_[t] = fwsum;
  }
  combine_threads(ws, threads, p, kind, !rows.all(), out);
}

/// Strategy 2, one shared Fisher (full kinds, p > kPerThreadMaxP, several threads): the
/// rows of a tall block are prepared in parallel, each thread a contiguous slice, into
/// one shared operand; then one SYRK with OpenBLAS's own OpenMP threads updates a single
/// p x p matrix, held by the workspace (no allocation per call).
void accumulate_shared(const Shard& shard, const Model& model, std::span<const double> theta, FisherKind kind,
                       int threads, Workspace& ws, const RowSelector& rows, PackedSums& out) {
  const std::int64_t p = shard.n_cols, n = shard.n_rows;
  const std::int64_t block = shared_block_rows(p, ws.block());
  const std::int64_t nblocks = (n + block - 1) / block;
  auto& F = ws.fisher_[0];
  std::fill(F.begin(), F.end(), 0.0);
  const Operand op = operand(ws, 0, p, true);
  // The tall block's selection is listed first (index arithmetic only); each thread then
  // writes its own selected rows' scaled copies at their place in it, after the
  // `pending` rows staged by earlier blocks.
  std::int64_t* sel = ws.sel_[0].data();
  std::int64_t pending = 0;
  double fwsum = 0;
  auto flush = [&] {
    if (pending == 0) return;
    openblas_set_num_threads(threads);
    fisher_update(op, ws, pending, F.data());
    pending = 0;
  };
  for (std::int64_t b = 0; b < nblocks; ++b) {
    const std::int64_t i0 = b * block, m = std::min(block, n - i0);
    const std::int64_t sub = (m + threads - 1) / threads;
    const std::int64_t ns = rows.select(shard, i0, m, sel, fwsum);
    if (pending + ns > block) flush();
#pragma omp parallel num_threads(threads)
    {
      const int t = omp_get_thread_num();
      const std::int64_t s0 = std::min(m, t * sub), s1 = std::min(m, s0 + sub);
      if (b == 0) std::fill(ws.grad_[t].begin(), ws.grad_[t].end(), 0.0);
      double loss = 0, wsum = 0;
      if (s1 > s0) {
        rows_pass(shard, model, theta.data(), kind, i0 + s0, s1 - s0, ws.eta_[t].data(), ws.nll_[t].data(),
                  ws.dnll_[t].data(), ws.fw_[t].data(), loss, wsum);
        const auto [k0, k1] = rows.slice(sel, ns, s0, s1);
        stage_rows(rows, shard.row(i0 + s0), s1 - s0, ws.fw_[t].data(), ws.dnll_[t].data(), sel + k0, k1 - k0, s0,
                   op, pending + k0, ws.grad_[t].data());
      }
      ws.loss_[t] = (b == 0 ? 0.0 : ws.loss_[t]) + loss;
      ws.wsum_[t] = (b == 0 ? 0.0 : ws.wsum_[t]) + wsum;
    }
    pending += ns;
    if (rows.all()) flush();  // one SYRK per tall block
  }
  flush();
  for (int t = 0; t < threads; ++t) {
    if (nblocks == 0) break;
    out.loss_sum() += ws.loss_[t];
    out.weight_sum() += ws.wsum_[t];
    for (std::int64_t j = 0; j < p; ++j) out.grad()[j] += ws.grad_[t][j];
  }
  pack_upper(F.data(), p, p, out.fisher(), false);
  out.fisher_weight() = rows.all() ? out.weight_sum() : fwsum;
}

}  // namespace

// ---- CSR shards ----
//
// Per row i with nonzeros (j_k, v_k), k < n_i: eta_c = sum_k v_k theta[j_k + d c] (+ the
// offset), the model's per-row values, the gradient scattered into the thread's P-vector,
// and the row's Fisher coefficients G_i (m x m): w fisher_i (expected), w dnll dnll^T
// (empirical kinds), w^2 dnll dnll^T (meat). The Fisher entry of parameters
// I = j_r + d c1 <= J = j_s + d c2 gains G_i[c1][c2] v_r v_s: n_i (n_i + 1) / 2 updates
// per output pair instead of p^2. The packed triangle (PackedSums) takes entry (I, J),
// I <= J, at I + J (J + 1) / 2, so each J owns one contiguous column.

namespace {

/// Entries of the packed upper triangle of P parameters.
std::size_t triangle(std::int64_t P) { return static_cast<std::size_t>(P) * static_cast<std::size_t>(P + 1) / 2; }

/// Rows [i0, i0 + nr) of a CSR shard: eta, model values, loss and weight sums, gradient
/// (into grad, P values), the Fisher coefficients (coef: nr x m x m; for m = 1 one value
/// per row) and the Fisher-sample flags (take) of the full kinds, the diagonal (into
/// diag) for FisherKind::diagonal.
template <class Idx>
void sparse_rows(const Shard& s, const Idx* idx, const Model& model, const double* theta, FisherKind kind,
                 const RowSelector& sel, std::int64_t i0, std::int64_t nr, double* eta, double* nll, double* dnll,
                 double* fac, double* coef, unsigned char* take, double* grad, double* diag, double& loss,
                 double& wsum, double& fwsum) {
  const std::int64_t d = s.n_cols, m = model.n_outputs(), q = model.n_factors();
  const std::int64_t* rp = s.csr.row_ptr.data();
  const double* val = s.csr.values.data();
  for (std::int64_t i = 0; i < nr; ++i) {
    const std::int64_t b = rp[i0 + i], e = rp[i0 + i + 1];
    const double off = s.offset.empty() ? 0.0 : s.offset[static_cast<std::size_t>(i0 + i)];
    for (std::int64_t c = 0; c < m; ++c) {
      const double* th = theta + d * c;
      double acc = 0;
      for (std::int64_t k = b; k < e; ++k) acc += val[k] * th[idx[k]];
      eta[i * m + c] = acc + off;
    }
  }
  const bool want_fac = kind == FisherKind::expected || kind == FisherKind::diagonal;
  const double* y = s.y.data() + i0;
  if (m == 1) model.eval(static_cast<std::size_t>(nr), eta, y, nll, dnll, want_fac ? fac : nullptr);
  else model.eval_multi(static_cast<std::size_t>(nr), eta, y, nll, dnll, want_fac ? fac : nullptr);
  const bool full = is_full(kind);
  const std::int64_t mm = m * m;
  for (std::int64_t i = 0; i < nr; ++i) {
    const double w = s.weight.empty() ? 1.0 : s.weight[static_cast<std::size_t>(i0 + i)];
    loss += w * nll[i];
    wsum += w;
    const std::int64_t b = rp[i0 + i], e = rp[i0 + i + 1];
    const double* dn = dnll + i * m;
    for (std::int64_t c = 0; c < m; ++c) {
      const double gw = w * dn[c];
      double* g = grad + d * c;
      for (std::int64_t k = b; k < e; ++k) g[idx[k]] += gw * val[k];
    }
    const bool in = sel.take(s.first_row + i0 + i);
    if (full) take[i] = in ? 1 : 0;
    if (!in) continue;
    fwsum += w;  // also for kind none, as the dense path
    if (kind == FisherKind::none) continue;
    // G (m x m) for this row; the diagonal kind needs only G_cc.
    double* G = full ? coef + i * mm : nullptr;
    for (std::int64_t c1 = 0; c1 < m; ++c1)
      for (std::int64_t c2 = c1; c2 < (full ? m : c1 + 1); ++c2) {  // upper triangle of G
        double v;
        switch (kind) {
          case FisherKind::expected:
          case FisherKind::diagonal:
            if (m == 1) {
              v = w * fac[i];
            } else {
              v = 0;
              const double* f1 = fac + (i * m + c1) * q;
              const double* f2 = fac + (i * m + c2) * q;
              for (std::int64_t c = 0; c < q; ++c) v += f1[c] * f2[c];
              v *= w;
            }
            break;
          case FisherKind::meat: v = w * w * dn[c1] * dn[c2]; break;
          default: v = w * dn[c1] * dn[c2]; break;  // empirical, empirical_centered
        }
        if (full) {
          G[c1 * m + c2] = v;
        } else {
          double* F = diag + d * c1;
          for (std::int64_t k = b; k < e; ++k) F[idx[k]] += v * val[k] * val[k];
        }
      }
  }
}

/// sparse_rows for one output and the diagonal kind (the pass of --solver cg): the
/// gradient and the diagonal interleaved in gd (gd[2j] = grad_j, gd[2j + 1] = F_jj), so
/// that a row's two scatters into a column share one cache line; the next row's lines of
/// theta and gd are prefetched (with p ~ 1e6 these random accesses, not the flops, take
/// the time).
template <class Idx>
void sparse_rows_diagonal(const Shard& s, const Idx* idx, const Model& model, const double* theta,
                          const RowSelector& sel, std::int64_t i0, std::int64_t nr, double* eta, double* nll,
                          double* dnll, double* fac, double* gd, double& loss, double& wsum, double& fwsum) {
  const std::int64_t* rp = s.csr.row_ptr.data();
  const double* val = s.csr.values.data();
  for (std::int64_t i = 0; i < nr; ++i) {
    const std::int64_t b = rp[i0 + i], e = rp[i0 + i + 1];
    for (std::int64_t k = e, pe = i + 1 < nr ? rp[i0 + i + 2] : e; k < pe; ++k)
      __builtin_prefetch(theta + idx[k], 0, 3);
    double a0 = 0, a1 = 0;
    std::int64_t k = b;
    for (; k + 1 < e; k += 2) {
      a0 += val[k] * theta[idx[k]];
      a1 += val[k + 1] * theta[idx[k + 1]];
    }
    if (k < e) a0 += val[k] * theta[idx[k]];
    eta[i] = a0 + a1 + (s.offset.empty() ? 0.0 : s.offset[static_cast<std::size_t>(i0 + i)]);
  }
  model.eval(static_cast<std::size_t>(nr), eta, s.y.data() + i0, nll, dnll, fac);
  for (std::int64_t k = rp[i0], pe = rp[i0 + 1]; k < pe; ++k)
    __builtin_prefetch(gd + 2 * static_cast<std::int64_t>(idx[k]), 1, 3);
  for (std::int64_t i = 0; i < nr; ++i) {
    const double w = s.weight.empty() ? 1.0 : s.weight[static_cast<std::size_t>(i0 + i)];
    loss += w * nll[i];
    wsum += w;
    const std::int64_t b = rp[i0 + i], e = rp[i0 + i + 1];
    for (std::int64_t k = e, pe = i + 1 < nr ? rp[i0 + i + 2] : e; k < pe; ++k)
      __builtin_prefetch(gd + 2 * static_cast<std::int64_t>(idx[k]), 1, 3);
    const double gw = w * dnll[i];
    if (!sel.take(s.first_row + i0 + i)) {
      for (std::int64_t k = b; k < e; ++k) gd[2 * static_cast<std::int64_t>(idx[k])] += gw * val[k];
      continue;
    }
    fwsum += w;
    const double v = w * fac[i];
    for (std::int64_t k = b; k < e; ++k) {
      double* c = gd + 2 * static_cast<std::int64_t>(idx[k]);
      c[0] += gw * val[k];
      c[1] += v * val[k] * val[k];
    }
  }
}

/// The Fisher pairs of rows [i0, i0 + nr) (coefficients coef, flags take, from
/// sparse_rows) whose larger parameter index J lies in [lo, hi), added into the packed
/// triangle F. Per entry the rows are added in row order.
template <class Idx>
void sparse_pairs(const Shard& s, const Idx* idx, std::int64_t m, std::int64_t i0, std::int64_t nr,
                  const double* coef, const unsigned char* take, std::int64_t lo, std::int64_t hi, double* F) {
  const std::int64_t d = s.n_cols, mm = m * m;
  const std::int64_t* rp = s.csr.row_ptr.data();
  const double* val = s.csr.values.data();
  const bool whole = lo <= 0 && hi >= d * m;
  for (std::int64_t i = 0; i < nr; ++i) {
    if (!take[i]) continue;
    const std::int64_t b = rp[i0 + i], e = rp[i0 + i + 1];
    const double* G = coef + i * mm;
    for (std::int64_t c2 = 0; c2 < m; ++c2) {
      // The row's nonzeros s whose parameter idx[s] + d c2 is in [lo, hi).
      std::int64_t s0 = b, s1 = e;
      if (!whole) {
        const std::int64_t jl = lo - d * c2, jh = hi - d * c2;
        if (jh <= 0 || jl >= d) continue;
        if (jl > 0) s0 = std::lower_bound(idx + b, idx + e, static_cast<Idx>(jl)) - idx;
        if (jh < d) s1 = std::lower_bound(idx + s0, idx + e, static_cast<Idx>(jh)) - idx;
      }
      for (std::int64_t k = s0; k < s1; ++k) {
        const std::int64_t J = static_cast<std::int64_t>(idx[k]) + d * c2;
        double* col = F + static_cast<std::size_t>(J) * static_cast<std::size_t>(J + 1) / 2;
        const double vs = val[k];
        for (std::int64_t c1 = 0; c1 < c2; ++c1) {  // I = j_r + d c1 < d c2 <= J: every r
          const double a = G[c1 * m + c2] * vs;
          double* cc = col + d * c1;
          for (std::int64_t r = b; r < e; ++r) cc[idx[r]] += a * val[r];
        }
        const double a = G[c2 * m + c2] * vs;
        double* cc = col + d * c2;
        for (std::int64_t r = b; r <= k; ++r) cc[idx[r]] += a * val[r];
      }
    }
  }
}

/// Split strategy: thread ranges of the parameters with about equal numbers of pair
/// updates (a parameter J = j + d c2 gets, per selected row holding column j at
/// position r of its k nonzeros, c2 k + r + 1 updates).
template <class Idx>
void split_bounds(const Shard& s, const Idx* idx, std::int64_t m, const RowSelector& sel, int threads,
                  Workspace& ws) {
  const std::int64_t d = s.n_cols, P = d * m;
  std::vector<std::int64_t>& w1 = ws.work_;
  w1.assign(static_cast<std::size_t>(2 * d), 0);  // [sum r + 1 | sum k] per column
  const std::int64_t* rp = s.csr.row_ptr.data();
  for (std::int64_t i = 0; i < s.n_rows; ++i) {
    if (!sel.take(s.first_row + i)) continue;
    const std::int64_t b = rp[i], k = rp[i + 1] - b;
    for (std::int64_t r = 0; r < k; ++r) {
      const auto j = static_cast<std::size_t>(idx[b + r]);
      w1[j] += r + 1;
      w1[static_cast<std::size_t>(d) + j] += k;
    }
  }
  auto work = [&](std::int64_t J) {
    const std::int64_t j = J % d, c2 = J / d;
    return w1[static_cast<std::size_t>(j)] + c2 * w1[static_cast<std::size_t>(d + j)];
  };
  double total = 0;
  for (std::int64_t J = 0; J < P; ++J) total += static_cast<double>(work(J));
  ws.bounds_.assign(static_cast<std::size_t>(threads) + 1, P);
  ws.bounds_[0] = 0;
  double run = 0;
  int t = 1;
  for (std::int64_t J = 0; J < P && t < threads; ++J) {
    run += static_cast<double>(work(J));
    while (t < threads && run >= total * t / threads) ws.bounds_[static_cast<std::size_t>(t++)] = J + 1;
  }
}

template <class Idx>
void sparse_pass(const Shard& s, const Idx* idx, const Model& model, const double* theta, FisherKind kind, int threads,
                 Workspace& ws, const RowSelector& sel, PackedSums& out) {
  const std::int64_t d = s.n_cols, n = s.n_rows, m = model.n_outputs(), P = d * m, mm = m * m;
  const bool full = is_full(kind), sampling = !sel.all();
  const bool diag1 = kind == FisherKind::diagonal && m == 1;  // gradient and diagonal interleaved in fisher_[t]
  const std::int64_t block = ws.block();
  double* Fout = full ? out.fisher() : nullptr;
  if (full && ws.split_) split_bounds(s, idx, m, sel, threads, ws);
#pragma omp parallel num_threads(threads)
  {
    const auto t = static_cast<std::size_t>(omp_get_thread_num());
    auto& g = ws.grad_[t];
    std::fill(g.begin(), g.end(), 0.0);
    double* diag = nullptr;
    if (kind == FisherKind::diagonal) {  // diag1: (grad_j, F_jj) pairs
      std::fill(ws.fisher_[t].begin(), ws.fisher_[t].end(), 0.0);
      diag = ws.fisher_[t].data();
    }
    double loss = 0, wsum = 0, fwsum = 0;
    double *eta = ws.eta_[t].data(), *nll = ws.nll_[t].data(), *dn = ws.dnll_[t].data(), *fac = ws.fw_[t].data();
    if (!ws.split_) {
      double* F = nullptr;
      if (full && t > 0) {
        std::fill(ws.fisher_[t].begin(), ws.fisher_[t].end(), 0.0);
        F = ws.fisher_[t].data();
      } else if (full) {
        F = Fout;  // thread 0 adds into the output (zeroed by resize)
      }
      double* coef = full ? ws.coef_[t].data() : nullptr;
      unsigned char* take = full ? ws.take_[t].data() : nullptr;
      const std::int64_t nblocks = (n + block - 1) / block;
#pragma omp for schedule(static)
      for (std::int64_t bl = 0; bl < nblocks; ++bl) {
        const std::int64_t i0 = bl * block, nr = std::min(block, n - i0);
        if (diag1)
          sparse_rows_diagonal(s, idx, model, theta, sel, i0, nr, eta, nll, dn, fac, diag, loss, wsum, fwsum);
        else
          sparse_rows(s, idx, model, theta, kind, sel, i0, nr, eta, nll, dn, fac, coef, take, g.data(), diag, loss,
                      wsum, fwsum);
        if (full) sparse_pairs(s, idx, m, i0, nr, coef, take, 0, P, F);
      }
    } else {
      const std::int64_t C = ws.chunk_rows_;
      const std::int64_t lo = ws.bounds_[t], hi = ws.bounds_[t + 1];
      for (std::int64_t c0 = 0; c0 < n; c0 += C) {
        const std::int64_t nc = std::min(C, n - c0), sub = (nc + threads - 1) / threads;
        const std::int64_t r0 = c0 + std::min<std::int64_t>(nc, static_cast<std::int64_t>(t) * sub);
        const std::int64_t r1 = c0 + std::min<std::int64_t>(nc, static_cast<std::int64_t>(t + 1) * sub);
        for (std::int64_t i0 = r0; i0 < r1; i0 += block) {
          const std::int64_t nr = std::min(block, r1 - i0);
          sparse_rows(s, idx, model, theta, kind, sel, i0, nr, eta, nll, dn, fac, ws.chunk_coef_.data() + (i0 - c0) * mm,
                      ws.chunk_take_.data() + (i0 - c0), g.data(), diag, loss, wsum, fwsum);
        }
#pragma omp barrier
        sparse_pairs(s, idx, m, c0, nc, ws.chunk_coef_.data(), ws.chunk_take_.data(), lo, hi, Fout);
#pragma omp barrier
      }
    }
    ws.loss_[t] = loss;
    ws.wsum_[t] = wsum;
    ws.fwsum_[t] = fwsum;
  }
  const std::size_t tri = full ? triangle(P) : 0;
  for (std::size_t t = 0; t < static_cast<std::size_t>(threads); ++t) {
    out.loss_sum() += ws.loss_[t];
    out.weight_sum() += ws.wsum_[t];
    if (sampling) out.fisher_weight() += ws.fwsum_[t];
    if (diag1) {
      const double* gd = ws.fisher_[t].data();
      for (std::int64_t j = 0; j < P; ++j) {
        out.grad()[j] += gd[2 * j];
        out.fisher()[j] += gd[2 * j + 1];
      }
      continue;
    }
    for (std::int64_t j = 0; j < P; ++j) out.grad()[j] += ws.grad_[t][static_cast<std::size_t>(j)];
    if (full && !ws.split_ && t > 0)
      for (std::size_t k = 0; k < tri; ++k) Fout[k] += ws.fisher_[t][k];
    else if (kind == FisherKind::diagonal)
      for (std::int64_t j = 0; j < P; ++j) out.fisher()[j] += ws.fisher_[t][static_cast<std::size_t>(j)];
  }
  if (!sampling) out.fisher_weight() = out.weight_sum();
}

template <class Idx>
void sparse_loss(const Shard& s, const Idx* idx, const Model& model, const double* theta, int threads, Workspace& ws,
                 double out[2]) {
  const std::int64_t n = s.n_rows, block = ws.block(), nblocks = (n + block - 1) / block;
#pragma omp parallel num_threads(threads)
  {
    const auto t = static_cast<std::size_t>(omp_get_thread_num());
    double loss = 0, wsum = 0;
    const std::int64_t d = s.n_cols, m = model.n_outputs();
    const std::int64_t* rp = s.csr.row_ptr.data();
    const double* val = s.csr.values.data();
    double* eta = ws.eta_[t].data();
    double* nll = ws.nll_[t].data();
#pragma omp for schedule(static)
    for (std::int64_t bl = 0; bl < nblocks; ++bl) {
      const std::int64_t i0 = bl * block, nr = std::min(block, n - i0);
      for (std::int64_t i = 0; i < nr; ++i) {
        const std::int64_t b = rp[i0 + i], e = rp[i0 + i + 1];
        const double off = s.offset.empty() ? 0.0 : s.offset[static_cast<std::size_t>(i0 + i)];
        for (std::int64_t c = 0; c < m; ++c) {
          const double* th = theta + d * c;
          double acc = 0;
          for (std::int64_t k = b; k < e; ++k) acc += val[k] * th[idx[k]];
          eta[i * m + c] = acc + off;
        }
      }
      if (m == 1) model.eval(static_cast<std::size_t>(nr), eta, s.y.data() + i0, nll, nullptr, nullptr);
      else model.eval_multi(static_cast<std::size_t>(nr), eta, s.y.data() + i0, nll, nullptr, nullptr);
      for (std::int64_t i = 0; i < nr; ++i) {
        const double w = s.weight.empty() ? 1.0 : s.weight[static_cast<std::size_t>(i0 + i)];
        loss += w * nll[i];
        wsum += w;
      }
    }
    ws.loss_[t] = loss;
    ws.wsum_[t] = wsum;
  }
  out[0] = out[1] = 0;
  for (std::size_t t = 0; t < static_cast<std::size_t>(threads); ++t) {
    out[0] += ws.loss_[t];
    out[1] += ws.wsum_[t];
  }
}

}  // namespace

void Workspace::prepare_sparse() {
  const int threads = threads_;
  const std::int64_t m = outputs_, P = p_ * m, mm = m * m, block = block_;
  const bool full = is_full(kind_);
  const auto rows = static_cast<std::size_t>(block);
  auto per_thread = [&](auto& v, std::size_t n) {
    v.assign(static_cast<std::size_t>(threads), typename std::decay_t<decltype(v)>::value_type(n, 0));
  };
  scaled_.clear();
  sel_.clear();
  pstride_ = 0;
  fisher_ld_ = 0;
  sweep_rows_ = block;
  per_thread(eta_, rows * static_cast<std::size_t>(m));
  per_thread(nll_, rows);
  per_thread(dnll_, rows * static_cast<std::size_t>(m));
  per_thread(fw_, rows * static_cast<std::size_t>(m * (m > 1 ? factors_ : 1)));
  // One output, diagonal kind: fisher_[t] holds (grad_j, F_jj) pairs and grad_ is unused.
  const bool diag1 = kind_ == FisherKind::diagonal && m == 1;
  per_thread(grad_, diag1 ? 0 : static_cast<std::size_t>(P));
  const std::size_t tri = full ? triangle(P) : 0;
  split_ = full && threads > 1 &&
           static_cast<double>(threads - 1) * static_cast<double>(tri) * sizeof(double) >
               static_cast<double>(limit_);
  fisher_.assign(static_cast<std::size_t>(threads), {});
  if (kind_ == FisherKind::diagonal)
    for (auto& f : fisher_) f.assign(static_cast<std::size_t>(diag1 ? 2 * P : P), 0.0);
  if (full && !split_) {
    for (int t = 1; t < threads; ++t) fisher_[static_cast<std::size_t>(t)].assign(tri, 0.0);
    per_thread(coef_, rows * static_cast<std::size_t>(mm));
    per_thread(take_, rows);
  }
  if (full && split_) {
    // A chunk of rows: at least one block per thread, up to 65536 rows or 2^20 coefficients.
    chunk_rows_ = std::max<std::int64_t>(threads * block, std::min<std::int64_t>(65536, (std::int64_t{1} << 20) / mm));
    chunk_coef_.assign(static_cast<std::size_t>(chunk_rows_ * mm), 0.0);
    chunk_take_.assign(static_cast<std::size_t>(chunk_rows_), 0);
  }
  loss_.assign(static_cast<std::size_t>(threads), 0.0);
  wsum_.assign(static_cast<std::size_t>(threads), 0.0);
  fwsum_.assign(static_cast<std::size_t>(threads), 0.0);
}

void accumulate(const Shard& shard, const Model& model, std::span<const double> theta,
                FisherKind kind, int threads, Workspace& ws, PackedSums& out, const FisherSample& sample) {
  const std::int64_t p = shard.n_cols;
  if (static_cast<std::int64_t>(theta.size()) != p * model.n_outputs())
    throw Error("accumulate: theta has " + std::to_string(theta.size()) + " entries, expected " +
                std::to_string(p * model.n_outputs()));
  if (sample.active() && (kind == FisherKind::empirical_centered || kind == FisherKind::meat))
    throw Error(std::string("a subsampled Fisher (fraction ") + std::to_string(sample.fraction) +
                ") is not supported for the " + to_string(kind) +
                " matrix: use expected, empirical or diagonal, or fraction 1");
  threads = std::max(threads, 1);
  const RowSelector rows(sample);
  if (shard.sparse) {
    ws.prepare(threads, p, ws.block() > 0 ? ws.block() : 256, kind, model.n_outputs(), model.n_factors(), true);
    out.resize(p * model.n_outputs(), kind);
    shard.csr.with_indices([&](const auto* idx) {
      sparse_pass(shard, idx, model, theta.data(), kind, threads, ws, rows, out);
    });
    out.rows() = static_cast<double>(shard.n_rows);
    return;
  }
  if (model.n_outputs() > 1) return accumulate_multi(shard, model, theta, kind, threads, ws, out, rows);
  ws.prepare(threads, p, ws.block() > 0 ? ws.block() : 256, kind);
  out.resize(p, kind);
  if (shared_fisher(p, threads, is_full(kind), ws.kernels(), 1)) accumulate_shared(shard, model, theta, kind, threads, ws, rows, out);
  else accumulate_per_thread(shard, model, theta, kind, threads, ws, rows, out);
  out.rows() = static_cast<double>(shard.n_rows);
  if (ws.f32_) {
    // A float Fisher whose products left float's range (|a_i x_ij| beyond about 1e19: a
    // huge column or Fisher weight) has an infinite or NaN entry: this rank's pass is
    // made again in float64, so the solver never sees a Fisher float could not hold.
    const double* F = out.fisher();
    bool finite = true;
    for (std::size_t k = 0; k < out.fisher_size() && finite; ++k) finite = std::isfinite(F[k]);
    if (!finite) {
      ws.fisher_precision = FisherPrecision::float64;
      std::fill(out.buf.begin(), out.buf.end(), 0.0);
      accumulate(shard, model, theta, kind, threads, ws, out, sample);
      ws.fisher_precision = FisherPrecision::float32;
    }
  }
}

void accumulate_loss(const Shard& shard, const Model& model, std::span<const double> theta,
                     int threads, Workspace& ws, double out[2]) {
  const std::int64_t p = shard.n_cols, n = shard.n_rows;
  threads = std::max(threads, 1);
  if (shard.sparse) {
    if (!ws.sparse_ || ws.threads() != threads || ws.outputs() != model.n_outputs())
      ws.prepare(threads, p, ws.block() > 0 ? ws.block() : 256, FisherKind::none, model.n_outputs(),
                 model.n_factors(), true);
    shard.csr.with_indices([&](const auto* idx) { sparse_loss(shard, idx, model, theta.data(), threads, ws, out); });
    return;
  }
  if (model.n_outputs() > 1) return accumulate_loss_multi(shard, model, theta, threads, ws, out);
  if (ws.threads() != threads || static_cast<std::int64_t>(ws.eta_.size()) == 0)
    ws.prepare(threads, p, ws.block() > 0 ? ws.block() : 256, FisherKind::none);
  const std::int64_t block = static_cast<std::int64_t>(ws.eta_[0].size());
  const std::int64_t nblocks = (n + block - 1) / block;
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num();
    double loss = 0, wsum = 0;
    double* eta = ws.eta_[t].data();
    double* nll = ws.nll_[t].data();
#pragma omp for schedule(static)
    for (std::int64_t b = 0; b < nblocks; ++b) {
      const std::int64_t i0 = b * block, m = std::min(block, n - i0);
      eta_rows(shard.row(i0), m, p, theta.data(), eta);
      if (!shard.offset.empty())
        for (std::int64_t i = 0; i < m; ++i) eta[i] += shard.offset[i0 + i];
      model.eval(static_cast<std::size_t>(m), eta, shard.y.data() + i0, nll, nullptr, nullptr);
      for (std::int64_t i = 0; i < m; ++i) {
        const double w = shard.weight.empty() ? 1.0 : shard.weight[i0 + i];
        loss += w * nll[i];
        wsum += w;
      }
    }
    ws.loss_[t] = loss;
    ws.wsum_[t] = wsum;
  }
  out[0] = out[1] = 0;
  for (int t = 0; t < threads; ++t) {
    out[0] += ws.loss_[t];
    out[1] += ws.wsum_[t];
  }
}

void finalize(PackedSums& sums, Normalized& out) {
  const std::int64_t p = sums.p;
  const double W = sums.weight_sum();
  const double Wf = sums.fisher_weight();  // == W without sampling: same bits as before
  out.loss = sums.loss_sum() / W;
  out.weight_sum = W;
  out.fisher_weight = Wf;
  out.rows = sums.rows();
  out.grad.assign(sums.grad(), sums.grad() + p);
  for (double& g : out.grad) g /= W;
  if (sums.kind == FisherKind::diagonal) {
    out.fisher.assign(sums.fisher(), sums.fisher() + p);
    for (double& f : out.fisher) f /= Wf;
    return;
  }
  if (!is_full(sums.kind)) {
    out.fisher.clear();
    return;
  }
  out.fisher.assign(static_cast<std::size_t>(p * p), 0.0);
  const double* packed = sums.fisher();
  const bool centered = sums.kind == FisherKind::empirical_centered;
  const double n = sums.rows();
  const double* gsum = sums.grad();
  for (std::int64_t j = 0; j < p; ++j)
    for (std::int64_t i = 0; i <= j; ++i) {
      double v = packed[j * (j + 1) / 2 + i];
      v = centered ? (v - gsum[i] * gsum[j] / n) / (n - 1) : v / Wf;
      out.fisher[i + j * p] = out.fisher[j + i * p] = v;
    }
}

}  // namespace natgrad
