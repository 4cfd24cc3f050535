#include "core/fisher_vector.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>

#include "core/kernels.hpp"  // RowSelector
#include "natgrad/core/error.hpp"

namespace natgrad {

namespace {
constexpr std::int64_t kBlock = 256;  // rows evaluated by the model at a time

/// Rows [begin, end) of chunk t of n rows in T contiguous chunks.
std::pair<std::int64_t, std::int64_t> chunk(std::int64_t n, int T, int t) {
  const std::int64_t q = n / T, r = n % T;
  const std::int64_t b = t * q + std::min<std::int64_t>(t, r);
  return {b, b + q + (t < r ? 1 : 0)};
}

/// u[c] = x_i . v_c for c < m (v class-major with stride d).
inline void row_products(const Shard& s, std::int64_t i, const double* v, int m, double* u) {
  const std::int64_t d = s.n_cols;
  for (int c = 0; c < m; ++c) u[c] = 0;
  if (!s.sparse) {
    const double* x = s.row(i);
    if (m == 1) {
      double a = 0;
      for (std::int64_t j = 0; j < d; ++j) a += x[j] * v[j];
      u[0] = a;
      return;
    }
    for (int c = 0; c < m; ++c) {
      double a = 0;
      const double* vc = v + c * d;
      for (std::int64_t j = 0; j < d; ++j) a += x[j] * vc[j];
      u[c] = a;
    }
    return;
  }
  const auto b = s.csr.row_ptr[static_cast<std::size_t>(i)], e = s.csr.row_ptr[static_cast<std::size_t>(i) + 1];
  const double* val = s.csr.values.data();
  s.csr.with_indices([&](const auto* idx) {
    for (int c = 0; c < m; ++c) {
      double a = 0;
      const double* vc = v + c * d;
      for (auto k = b; k < e; ++k) a += val[k] * vc[idx[k]];
      u[c] = a;
    }
  });
}

/// out_c += z[c] x_i for c < m.
inline void row_scatter(const Shard& s, std::int64_t i, const double* z, int m, double* out) {
  const std::int64_t d = s.n_cols;
  if (!s.sparse) {
    const double* x = s.row(i);
    for (int c = 0; c < m; ++c) {
      const double zc = z[c];
      if (zc == 0) continue;
      double* oc = out + c * d;
      for (std::int64_t j = 0; j < d; ++j) oc[j] += zc * x[j];
    }
    return;
  }
  const auto b = s.csr.row_ptr[static_cast<std::size_t>(i)], e = s.csr.row_ptr[static_cast<std::size_t>(i) + 1];
  const double* val = s.csr.values.data();
  s.csr.with_indices([&](const auto* idx) {
    for (int c = 0; c < m; ++c) {
      const double zc = z[c];
      if (zc == 0) continue;
      double* oc = out + c * d;
      for (auto k = b; k < e; ++k) oc[idx[k]] += zc * val[k];
    }
  });
}
/// The scalar (m = 1) sparse product over rows [b, e) into the interleaved work vector w:
/// w[2j] holds v_j, w[2j + 1] this thread's out_j. Row i reads v at its columns and then
/// adds into out at the same columns; interleaved, both live in one cache line, so a
/// column costs one line fetched from memory instead of two (with p = 1e6 the vectors
/// are far from the caches and these random accesses dominate). Two partial dot
/// products shorten the add chain; the next row's lines are prefetched.
template <class Idx>
void sparse_scalar_rows(const std::int64_t* rp, const Idx* idx, const double* val, const double* c, std::int64_t b,
                        std::int64_t e, double* w) {
  constexpr std::int64_t kAhead = 1;  // rows prefetched ahead
  for (std::int64_t i = b; i < e; ++i) {
    if (i + kAhead < e) {
      const std::int64_t pe = rp[i + kAhead + 1];
      for (std::int64_t k = rp[i + kAhead]; k < pe; ++k) __builtin_prefetch(w + 2 * static_cast<std::int64_t>(idx[k]), 1, 3);
    }
    const double ci = c[i];
    if (ci == 0) continue;
    const std::int64_t k0 = rp[i], k1 = rp[i + 1];
    double u0 = 0, u1 = 0;
    std::int64_t k = k0;
    for (; k + 1 < k1; k += 2) {
      u0 += val[k] * w[2 * static_cast<std::int64_t>(idx[k])];
      u1 += val[k + 1] * w[2 * static_cast<std::int64_t>(idx[k + 1])];
    }
    if (k < k1) u0 += val[k] * w[2 * static_cast<std::int64_t>(idx[k])];
    const double z = ci * (u0 + u1);
    for (k = k0; k < k1; ++k) w[2 * static_cast<std::int64_t>(idx[k]) + 1] += z * val[k];
  }
}
}  // namespace

void FisherOperator::prepare(const Shard& s, const Model& model, std::span<const double> theta, FisherKind kind,
                             const FisherSample& sample, int threads) {
  if (kind != FisherKind::expected && kind != FisherKind::empirical && kind != FisherKind::meat)
    throw Error(std::string("--solver cg forms Fisher-vector products of the expected or empirical Fisher, not ") +
                to_string(kind));
  const bool meat = kind == FisherKind::meat;  // (w dnll)^2: the sandwich's middle
  m_ = model.n_outputs();
  scalar_ = m_ == 1;
  const bool expected = kind == FisherKind::expected;
  r_ = scalar_ ? 1 : (expected ? model.n_factors() : 1);
  const std::int64_t n = s.n_rows, d = s.n_cols;
  const int m = m_, r = r_;
  c_.assign(static_cast<std::size_t>(n * (scalar_ ? 1 : m * r)), 0.0);
  const RowSelector selector(sample);
  const int T = std::max(1, threads);
#pragma omp parallel num_threads(T)
  {
    const int t = omp_get_thread_num();
    const auto [b, e] = chunk(n, T, t);
    std::vector<double> eta(static_cast<std::size_t>(kBlock * m)), dnll(static_cast<std::size_t>(kBlock * m)),
        fw(static_cast<std::size_t>(kBlock * (scalar_ ? 1 : m * model.n_factors())));
    for (std::int64_t i0 = b; i0 < e; i0 += kBlock) {
      const std::int64_t nb = std::min(kBlock, e - i0);
      for (std::int64_t i = 0; i < nb; ++i) {
        double* ei = eta.data() + i * m;
        row_products(s, i0 + i, theta.data(), m, ei);
        if (!s.offset.empty())
          for (int c = 0; c < m; ++c) ei[c] += s.offset[static_cast<std::size_t>(i0 + i)];
      }
      const double* y = s.y.data() + i0;
      if (scalar_) {
        if (expected) model.eval(static_cast<std::size_t>(nb), eta.data(), y, nullptr, nullptr, fw.data());
        else model.eval(static_cast<std::size_t>(nb), eta.data(), y, nullptr, dnll.data(), nullptr);
      } else {
        model.eval_multi(static_cast<std::size_t>(nb), eta.data(), y, nullptr, dnll.data(), expected ? fw.data() : nullptr);
      }
      for (std::int64_t i = 0; i < nb; ++i) {
        const std::int64_t row = i0 + i;
        if (!selector.take(s.first_row + row)) continue;  // stays 0
        const double w = s.weight.empty() ? 1.0 : s.weight[static_cast<std::size_t>(row)];
        if (scalar_) {
          const double dn = dnll[static_cast<std::size_t>(i)];
          c_[static_cast<std::size_t>(row)] = expected ? w * fw[static_cast<std::size_t>(i)] : (meat ? w * w : w) * dn * dn;
        } else {
          double* g = c_.data() + row * m * r;
          const double sw = meat ? w : std::sqrt(w);
          if (expected)
            for (int k = 0; k < m * r; ++k) g[k] = sw * fw[static_cast<std::size_t>(i * m * r + k)];
          else
            for (int k = 0; k < m; ++k) g[k] = sw * dnll[static_cast<std::size_t>(i * m + k)];
        }
      }
    }
  }
  partial_.resize(static_cast<std::size_t>(T));
  // The sparse scalar product keeps (v, out) interleaved per thread (2 p values); the
  // others per-thread partial sums (thread 0 adds into out directly).
  const std::size_t per = s.sparse && scalar_ ? static_cast<std::size_t>(2 * d) : static_cast<std::size_t>(d * m);
  for (int t = 0; t < T; ++t) {
    auto& v = partial_[static_cast<std::size_t>(t)];
    if (s.sparse && scalar_) v.assign(per, 0.0);
    else if (t > 0) v.assign(per, 0.0);
    else std::vector<double>().swap(v);
  }
}

void FisherOperator::apply_sparse_scalar(const Shard& s, std::span<const double> v, std::span<double> out, int T) {
  const std::int64_t n = s.n_rows, p = s.n_cols;
#pragma omp parallel num_threads(T)
  {
    const int t = omp_get_thread_num();
    double* w = partial_[static_cast<std::size_t>(t)].data();
    for (std::int64_t j = 0; j < p; ++j) {
      w[2 * j] = v[static_cast<std::size_t>(j)];
      w[2 * j + 1] = 0.0;
    }
    const auto [b, e] = chunk(n, T, t);
    s.csr.with_indices([&](const auto* idx) {
      sparse_scalar_rows(s.csr.row_ptr.data(), idx, s.csr.values.data(), c_.data(), b, e, w);
    });
    // The threads' sums, added in thread order (deterministic), each thread a column range.
#pragma omp barrier
    const auto [jb, je] = chunk(p, T, t);
    for (std::int64_t j = jb; j < je; ++j) {
      double a = 0;
      for (int q = 0; q < T; ++q) a += partial_[static_cast<std::size_t>(q)][static_cast<std::size_t>(2 * j + 1)];
      out[static_cast<std::size_t>(j)] = a;
    }
  }
}

void FisherOperator::apply(const Shard& s, std::span<const double> v, std::span<double> out, int threads) {
  const std::int64_t n = s.n_rows, p = s.n_cols * m_;
  const int m = m_, r = r_;
  const int T = std::max(1, threads);
  if (partial_.size() != static_cast<std::size_t>(T))
    throw Error("FisherOperator::apply: prepare() was run for another thread count");
  if (s.sparse && scalar_) {
    apply_sparse_scalar(s, v, out, T);
    return;
  }
#pragma omp parallel num_threads(T)
  {
    const int t = omp_get_thread_num();
    const auto [b, e] = chunk(n, T, t);
    double* acc = t == 0 ? out.data() : partial_[static_cast<std::size_t>(t)].data();
    std::fill(acc, acc + p, 0.0);
    double u[64], z[64], q[64];
    std::vector<double> ub, zb, qb;
    double* U = u;
    double* Z = z;
    double* Q = q;
    if (m > 64 || r > 64) {
      ub.resize(static_cast<std::size_t>(m));
      zb.resize(static_cast<std::size_t>(m));
      qb.resize(static_cast<std::size_t>(r));
      U = ub.data();
      Z = zb.data();
      Q = qb.data();
    }
    for (std::int64_t i = b; i < e; ++i) {
      if (scalar_) {
        const double c = c_[static_cast<std::size_t>(i)];
        if (c == 0) continue;
        row_products(s, i, v.data(), 1, U);
        Z[0] = c * U[0];
      } else {
        const double* g = c_.data() + i * m * r;  // G (m x r), C = G G^T
        row_products(s, i, v.data(), m, U);
        for (int k = 0; k < r; ++k) {
          double a = 0;
          for (int c = 0; c < m; ++c) a += g[c * r + k] * U[c];
          Q[k] = a;
        }
        for (int c = 0; c < m; ++c) {
          double a = 0;
          for (int k = 0; k < r; ++k) a += g[c * r + k] * Q[k];
          Z[c] = a;
        }
      }
      row_scatter(s, i, Z, m, acc);
    }
  }
  if (T > 1) {
    // Thread 0's sum is in out; the others' added in thread order, each thread a range.
#pragma omp parallel num_threads(T)
    {
      const auto [jb, je] = chunk(p, T, omp_get_thread_num());
      for (int t = 1; t < T; ++t) {
        const double* a = partial_[static_cast<std::size_t>(t)].data();
        for (std::int64_t j = jb; j < je; ++j) out[static_cast<std::size_t>(j)] += a[j];
      }
    }
  }
}

std::size_t FisherOperator::bytes() const {
  std::size_t b = c_.capacity() * sizeof(double);
  for (const auto& v : partial_) b += v.capacity() * sizeof(double);
  return b;
}

}  // namespace natgrad
