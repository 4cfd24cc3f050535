// simd_kernels.inl: the SIMD kernels of simd_kernels.hpp as templates over a vector
// type V, instantiated once per instruction-set family by simd_avx2.cpp and
// simd_avx512.cpp, each compiled with that family's flags.
//
// Included inside `namespace natgrad::detail { namespace { ... } }` (see those files):
// every function here has internal linkage, so no instantiation compiled with one
// family's flags can be merged by the linker into code that runs on a CPU without it
// (the reason this file uses no std:: templates; tests/CMakeLists.txt checks the
// objects export nothing but their KernelSet). A vector type V provides:
//   T, reg, W (lanes), NV (row panels per Fisher tile), CT (columns per Fisher tile)
//   zero set1 load store bcast add sub mul div fma(a, b, c) = a b + c,
//   fnma(a, b, c) = c - a b, abs, round (to nearest), pow2 (2^n of integral n),
//   mask, below(x, c) (lanes with !(x >= c)), any, sign_select(s, if_clear, if_set),
//   hsum, add_into(double* c, reg) (c[0..W) += the lanes, widened for float),
//   store_f32(float*, reg) (W doubles narrowed).

#define NATGRAD_INLINE inline __attribute__((always_inline))

using i64 = std::int64_t;

NATGRAD_INLINE i64 lo(i64 a, i64 b) { return a < b ? a : b; }

// ---- packed Fisher update ---------------------------------------------------------
//
// The triangle is covered by tiles of NV row panels (NV W rows of F) by CT columns of one
// column panel: per operand row, NV vector loads, CT broadcasts and NV CT fused
// multiply-adds into NV CT accumulators held in registers (AVX2 doubles: 3 x 4 = 12 of
// the 16 registers; AVX-512 doubles: 3 x 8 = 24 of 32; floats: CT = W / 2). Tiles on the
// diagonal drop the row panels below it. Rows are swept kc at a time (kKc) so that the
// NV panels of a tile strip and the current column panel stay in the L1 cache.

template <class V, int NV>
void tile(const typename V::T* S, i64 ps, i64 q0, i64 b, i64 c0, i64 k0, i64 k1, double* F, i64 ld) {
  constexpr int W = V::W, CT = V::CT;
  typename V::reg acc[NV][CT];
#pragma GCC unroll 3
  for (int v = 0; v < NV; ++v)
#pragma GCC unroll 8
    for (int j = 0; j < CT; ++j) acc[v][j] = V::zero();
  const typename V::T* A = S + q0 * ps;
  const typename V::T* B = S + b * ps + c0;
  for (i64 k = k0; k < k1; ++k) {
    typename V::reg a[NV];
#pragma GCC unroll 3
    for (int v = 0; v < NV; ++v) a[v] = V::load(A + v * ps + W * k);
#pragma GCC unroll 8
    for (int j = 0; j < CT; ++j) {
      const typename V::reg bj = V::bcast(B + W * k + j);
#pragma GCC unroll 3
      for (int v = 0; v < NV; ++v) acc[v][j] = V::fma(a[v], bj, acc[v][j]);
    }
  }
#pragma GCC unroll 3
  for (int v = 0; v < NV; ++v)
#pragma GCC unroll 8
    for (int j = 0; j < CT; ++j) V::add_into(F + (W * b + c0 + j) * ld + W * (q0 + v), acc[v][j]);
}

template <class V>
void packed_syrk(const typename V::T* S, i64 ps, i64 pp, i64 kc, double* F, i64 ld, const void* ahead,
                 i64 ahead_bytes) {
  constexpr int W = V::W, CT = V::CT, NV = V::NV;
  static_assert(NV == 3 && W % CT == 0);
  using Tile = void (*)(const typename V::T*, i64, i64, i64, i64, i64, i64, double*, i64);
  const Tile tiles[3] = {tile<V, 1>, tile<V, 2>, tile<V, 3>};
  // Rows per sweep: the NV panels of the strip and the column panel, (NV + 1) W kKc
  // values, stay at 16 KiB in L1 (128 rows for AVX2, 64 for AVX-512).
  constexpr i64 kKc = (sizeof(typename V::T) == 8 ? 512 : 1024) / W;
  const i64 nq = pp / W;
  const i64 ntiles = (kc + kKc - 1) / kKc * ((nq + NV - 1) / NV) * (nq + 1) / 2 * (W / CT) + 1;  // upper bound
  const i64 lines = ahead_bytes / 64, per_tile = (lines + ntiles - 1) / ntiles;
  const char* pf = static_cast<const char*>(ahead);
  i64 next_line = 0;
  for (i64 k0 = 0; k0 < kc; k0 += kKc) {
    const i64 k1 = lo(kc, k0 + kKc);
    for (i64 q0 = 0; q0 < nq; q0 += NV) {
      const i64 nv = lo(NV, nq - q0);
      for (i64 b = q0; b < nq; ++b) {
        // Row panels past column panel b lie below the diagonal: left out.
        const Tile t = tiles[lo(nv, b - q0 + 1) - 1];
        for (i64 c0 = 0; c0 < W; c0 += CT) {
          t(S, ps, q0, b, c0, k0, k1, F, ld);
          for (const i64 e = lo(lines, next_line + per_tile); next_line < e; ++next_line)
            __builtin_prefetch(pf + 64 * next_line, 0, 2);
        }
      }
    }
  }
}

// ---- the scaled-row panel writer ----------------------------------------------------

/// Writes a * x (p values) as row k of the panel operand of doubles (W per panel).
template <class V>
NATGRAD_INLINE void put_row(double* S, i64 ps, i64 p, i64 k, double a, const double* x) {
  constexpr int W = V::W;
  double* si = S + W * k;
  const typename V::reg va = V::set1(a);
  i64 j = 0;
  for (; j + W <= p; j += W) V::store(si + (j / W) * ps, V::mul(va, V::load(x + j)));
  for (; j < p; ++j) si[(j / W) * ps + j % W] = a * x[j];
}

/// The same into a float operand of WF = 2 W floats per panel (V: the double type).
template <class V>
NATGRAD_INLINE void put_row_f32(float* S, i64 ps, i64 p, i64 k, double a, const double* x) {
  constexpr int W = V::W, WF = 2 * V::W;
  float* si = S + WF * k;
  const typename V::reg va = V::set1(a);
  i64 j = 0;
  for (; j + WF <= p; j += WF) {
    float* d = si + (j / WF) * ps;
    V::store_f32(d, V::mul(va, V::load(x + j)));
    V::store_f32(d + W, V::mul(va, V::load(x + j + W)));
  }
  for (; j < p; ++j) si[(j / WF) * ps + j % WF] = static_cast<float>(a * x[j]);
}

template <class V>
NATGRAD_INLINE void add_scaled(double* grad, i64 p, double g, const double* x) {
  constexpr int W = V::W;
  const typename V::reg vg = V::set1(g);
  i64 j = 0;
  for (; j + W <= p; j += W) V::store(grad + j, V::fma(vg, V::load(x + j), V::load(grad + j)));
  for (; j < p; ++j) grad[j] += g * x[j];
}

template <class V, class Out>
void stage_rows(const double* X, i64 m, i64 p, const double* a, const double* g, const i64* sel, i64 nsel, i64 base,
                Out* S, i64 ps, i64 row0, double* grad) {
  i64 k = 0;
  for (i64 i = 0; i < m; ++i) {
    const double* xi = X + i * p;
    if (sel == nullptr || (k < nsel && sel[k] == base + i)) {
      const i64 r = row0 + (sel == nullptr ? i : k++);
      if constexpr (sizeof(Out) == 8)
        put_row<V>(S, ps, p, r, a[i], xi);
      else
        put_row_f32<V>(S, ps, p, r, a[i], xi);
    }
    add_scaled<V>(grad, p, g[i], xi);
  }
}

template <class V>
void stage_f64(const double* X, i64 m, i64 p, const double* a, const double* g, const i64* sel, i64 nsel, i64 base,
               double* S, i64 ps, i64 row0, double* grad) {
  stage_rows<V, double>(X, m, p, a, g, sel, nsel, base, S, ps, row0, grad);
}
template <class V>
void stage_f32(const double* X, i64 m, i64 p, const double* a, const double* g, const i64* sel, i64 nsel, i64 base,
               float* S, i64 ps, i64 row0, double* grad) {
  stage_rows<V, float>(X, m, p, a, g, sel, nsel, base, S, ps, row0, grad);
}

// ---- eta = X theta ----------------------------------------------------------------

/// Four rows at a time, each a W-lane dot product over j, then the tail columns.
template <class V>
void gemv_rows(const double* X, i64 m, i64 p, const double* theta, double* eta) {
  constexpr int W = V::W;
  i64 i = 0;
  for (; i + 4 <= m; i += 4) {
    const double* x0 = X + i * p;
    typename V::reg s0 = V::zero(), s1 = V::zero(), s2 = V::zero(), s3 = V::zero();
    i64 j = 0;
    for (; j + W <= p; j += W) {
      const typename V::reg t = V::load(theta + j);
      s0 = V::fma(V::load(x0 + j), t, s0);
      s1 = V::fma(V::load(x0 + p + j), t, s1);
      s2 = V::fma(V::load(x0 + 2 * p + j), t, s2);
      s3 = V::fma(V::load(x0 + 3 * p + j), t, s3);
    }
    double r0 = V::hsum(s0), r1 = V::hsum(s1), r2 = V::hsum(s2), r3 = V::hsum(s3);
    for (; j < p; ++j) {
      r0 += x0[j] * theta[j];
      r1 += x0[p + j] * theta[j];
      r2 += x0[2 * p + j] * theta[j];
      r3 += x0[3 * p + j] * theta[j];
    }
    eta[i] = r0;
    eta[i + 1] = r1;
    eta[i + 2] = r2;
    eta[i + 3] = r3;
  }
  for (; i < m; ++i) {
    const double* xi = X + i * p;
    typename V::reg s = V::zero();
    i64 j = 0;
    for (; j + W <= p; j += W) s = V::fma(V::load(xi + j), V::load(theta + j), s);
    double r = V::hsum(s);
    for (; j < p; ++j) r += xi[j] * theta[j];
    eta[i] = r;
  }
}

// ---- the logistic model's rows ------------------------------------------------------
//
// Same formulas as LogitRows::row (model.cpp); exp and log1p by polynomials accurate to a
// few ulp on the domain they are used on.

/// exp(x) for x in [-708, 0] (a normal result): x = n ln 2 + r with |r| <= ln(2)/2, exp(r)
/// by its Taylor series to degree 13 (truncation below 4e-18 relative), times 2^n.
template <class V>
NATGRAD_INLINE typename V::reg exp_nonpositive(typename V::reg x) {
  using R = typename V::reg;
  const R n = V::round(V::mul(x, V::set1(1.4426950408889634)));
  R r = V::fnma(n, V::set1(6.93147180369123816490e-01), x);  // ln 2, high part
  r = V::fnma(n, V::set1(1.90821492927058770002e-10), r);    // ln 2, low part
  constexpr double inv_fact[14] = {1.0,
                                   1.0,
                                   1.0 / 2,
                                   1.0 / 6,
                                   1.0 / 24,
                                   1.0 / 120,
                                   1.0 / 720,
                                   1.0 / 5040,
                                   1.0 / 40320,
                                   1.0 / 362880,
                                   1.0 / 3628800,
                                   1.0 / 39916800,
                                   1.0 / 479001600,
                                   1.0 / 6227020800};
  R q = V::set1(inv_fact[13]);
  for (int k = 12; k >= 0; --k) q = V::fma(q, r, V::set1(inv_fact[k]));
  return V::mul(q, V::pow2(n));
}

/// log1p(e) for e in [0, 1]: 2 atanh(s) with s = e / (2 + e) in [0, 1/3], by its series
/// 2 s (1 + s^2/3 + s^4/5 + ... + s^32/33) (truncation below 2e-17 relative).
template <class V>
NATGRAD_INLINE typename V::reg log1p_unit(typename V::reg e) {
  using R = typename V::reg;
  const R s = V::div(e, V::add(V::set1(2.0), e));
  const R s2 = V::mul(s, s);
  R q = V::set1(1.0 / 33);
  for (int k = 15; k >= 0; --k) q = V::fma(q, s2, V::set1(1.0 / (2 * k + 1)));
  return V::mul(V::add(s, s), q);
}

template <class V, bool NLL, bool D, bool F>
NATGRAD_INLINE void logit_block(const double* eta_p, const double* y_p, double* nll, double* dnll, double* fisher) {
  using R = typename V::reg;
  constexpr int W = V::W;
  const R one = V::set1(1.0), zero = V::zero();
  const R eta = V::load(eta_p), y = V::load(y_p);
  const R a = V::abs(eta);
  const R x = V::sub(zero, a);
  R e = exp_nonpositive<V>(x);
  R l1 = NLL ? log1p_unit<V>(e) : zero;
  // Lanes outside [-708, 0] (a subnormal or zero exp, or NaN): the scalar functions.
  if (V::any(V::below(x, -708.0))) {
    alignas(64) double xs[W], es[W], ls[W];
    V::store(xs, x);
    V::store(es, e);
    V::store(ls, l1);
    for (int i = 0; i < W; ++i)
      if (!(xs[i] >= -708.0)) {
        es[i] = __builtin_exp(xs[i]);
        ls[i] = __builtin_log1p(es[i]);
      }
    e = V::load(es);
    l1 = V::load(ls);
  }
  const R t = V::sign_select(eta, one, zero);  // 1 where eta's sign bit is clear
  const R omt = V::sub(one, t);
  if constexpr (NLL) {
    const R c = V::add(V::mul(t, V::sub(one, y)), V::mul(omt, y));
    V::store(nll, V::add(l1, V::mul(c, a)));
  }
  if constexpr (D || F) {
    const R big = V::div(one, V::add(one, e)), q = V::mul(e, big);
    if constexpr (D) V::store(dnll, V::add(V::sub(t, y), V::mul(V::sub(one, V::add(t, t)), q)));
    if constexpr (F) V::store(fisher, V::mul(q, big));
  }
}

/// n rows, W at a time; the last n % W rows through a padded copy, so that every row is
/// computed by the same code wherever it falls in a block.
template <class V, bool NLL, bool D, bool F>
void logit_rows(std::size_t n, const double* eta, const double* y, double* nll, double* dnll, double* fisher) {
  constexpr std::size_t W = V::W;
  std::size_t i = 0;
  for (; i + W <= n; i += W)
    logit_block<V, NLL, D, F>(eta + i, y + i, NLL ? nll + i : nullptr, D ? dnll + i : nullptr,
                              F ? fisher + i : nullptr);
  if (i == n) return;
  alignas(64) double ew[W] = {}, yw[W] = {}, lw[W], dw[W], fw[W];
  const std::size_t m = n - i;
  for (std::size_t k = 0; k < m; ++k) {
    ew[k] = eta[i + k];
    yw[k] = y[i + k];
  }
  logit_block<V, NLL, D, F>(ew, yw, lw, dw, fw);
  for (std::size_t k = 0; k < m; ++k) {
    if constexpr (NLL) nll[i + k] = lw[k];
    if constexpr (D) dnll[i + k] = dw[k];
    if constexpr (F) fisher[i + k] = fw[k];
  }
}

/// The KernelSet of double type VD and float type VF.
template <class VD, class VF>
constexpr KernelSet make_set(Isa isa, const char* name, std::int64_t packed_max_p) {
  static_assert(VF::W == 2 * VD::W, "a float panel holds two double vectors");
  return KernelSet{isa,
                   name,
                   VD::W,
                   VF::W,
                   packed_max_p,
                   packed_syrk<VD>,
                   stage_f64<VD>,
                   gemv_rows<VD>,
                   {nullptr, logit_rows<VD, true, false, false>, logit_rows<VD, false, true, false>,
                    logit_rows<VD, true, true, false>, logit_rows<VD, false, false, true>,
                    logit_rows<VD, true, false, true>, logit_rows<VD, false, true, true>,
                    logit_rows<VD, true, true, true>},
                   packed_syrk<VF>,
                   stage_f32<VD>};
}

#undef NATGRAD_INLINE
