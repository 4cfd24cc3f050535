// natgrad's SIMD kernels for AVX2 + FMA (simd_kernels.hpp), compiled with -mavx2 -mfma
// (src/CMakeLists.txt), and the same 8-wide code as the AVX-512 set with each 512-bit
// register emulated by two 256-bit ones (wide8_on_avx2_set: tests run the AVX-512 set's
// tiling and tails on machines without AVX-512).
#include "core/simd_kernels.hpp"

#ifdef NATGRAD_X86_KERNELS
#include <immintrin.h>

#include <cstdint>

namespace natgrad::detail {
namespace {

#define NATGRAD_V static inline __attribute__((always_inline))

/// AVX2 doubles: 4 lanes, Fisher tiles of 3 x 4 accumulators (12 of 16 registers).
struct D4 {
  using T = double;
  using reg = __m256d;
  using mask = __m256d;
  static constexpr int W = 4, NV = 3, CT = 4;
  NATGRAD_V reg zero() { return _mm256_setzero_pd(); }
  NATGRAD_V reg set1(double x) { return _mm256_set1_pd(x); }
  NATGRAD_V reg load(const double* p) { return _mm256_loadu_pd(p); }
  NATGRAD_V void store(double* p, reg v) { _mm256_storeu_pd(p, v); }
  NATGRAD_V reg bcast(const double* p) { return _mm256_broadcast_sd(p); }
  NATGRAD_V reg add(reg a, reg b) { return _mm256_add_pd(a, b); }
  NATGRAD_V reg sub(reg a, reg b) { return _mm256_sub_pd(a, b); }
  NATGRAD_V reg mul(reg a, reg b) { return _mm256_mul_pd(a, b); }
  NATGRAD_V reg div(reg a, reg b) { return _mm256_div_pd(a, b); }
  NATGRAD_V reg fma(reg a, reg b, reg c) { return _mm256_fmadd_pd(a, b, c); }
  NATGRAD_V reg fnma(reg a, reg b, reg c) { return _mm256_fnmadd_pd(a, b, c); }
  NATGRAD_V reg abs(reg a) { return _mm256_andnot_pd(_mm256_set1_pd(-0.0), a); }
  NATGRAD_V reg round(reg a) { return _mm256_round_pd(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  /// 2^n for integral n in [-1022, 1023]: n + 1.5 * 2^52 holds n in its low mantissa
  /// bits; 2^n = (n + 1023) << 52.
  NATGRAD_V reg pow2(reg n) {
    const __m256d shifter = _mm256_set1_pd(6755399441055744.0);
    const __m256i ni = _mm256_sub_epi64(_mm256_castpd_si256(_mm256_add_pd(n, shifter)), _mm256_castpd_si256(shifter));
    return _mm256_castsi256_pd(_mm256_slli_epi64(_mm256_add_epi64(ni, _mm256_set1_epi64x(1023)), 52));
  }
  NATGRAD_V mask below(reg x, double c) { return _mm256_cmp_pd(x, _mm256_set1_pd(c), _CMP_NGE_UQ); }
  NATGRAD_V bool any(mask m) { return _mm256_movemask_pd(m) != 0; }
  NATGRAD_V reg sign_select(reg s, reg if_clear, reg if_set) { return _mm256_blendv_pd(if_clear, if_set, s); }
  NATGRAD_V double hsum(reg v) {
    const __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
  }
  NATGRAD_V void add_into(double* c, reg v) { store(c, add(load(c), v)); }
  NATGRAD_V void store_f32(float* d, reg v) { _mm_storeu_ps(d, _mm256_cvtpd_ps(v)); }
};

/// AVX2 floats: 8 lanes, tiles of 3 panels x 4 columns; the tile's sums widened to
/// double when added into F.
struct F8 {
  using T = float;
  using reg = __m256;
  static constexpr int W = 8, NV = 3, CT = 4;
  NATGRAD_V reg zero() { return _mm256_setzero_ps(); }
  NATGRAD_V reg load(const float* p) { return _mm256_loadu_ps(p); }
  NATGRAD_V reg bcast(const float* p) { return _mm256_broadcast_ss(p); }
  NATGRAD_V reg fma(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }
  NATGRAD_V void add_into(double* c, reg v) {
    D4::add_into(c, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
    D4::add_into(c + 4, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
  }
};

/// 8 doubles as two AVX2 registers: the AVX-512 set's shape (W = 8, tiles 3 x 8).
struct D8e {
  using T = double;
  struct reg {
    __m256d l, h;
  };
  using mask = reg;
  static constexpr int W = 8, NV = 3, CT = 8;
  NATGRAD_V reg zero() { return {D4::zero(), D4::zero()}; }
  NATGRAD_V reg set1(double x) { return {D4::set1(x), D4::set1(x)}; }
  NATGRAD_V reg load(const double* p) { return {D4::load(p), D4::load(p + 4)}; }
  NATGRAD_V void store(double* p, reg v) { D4::store(p, v.l), D4::store(p + 4, v.h); }
  NATGRAD_V reg bcast(const double* p) { return {D4::bcast(p), D4::bcast(p)}; }
  NATGRAD_V reg add(reg a, reg b) { return {D4::add(a.l, b.l), D4::add(a.h, b.h)}; }
  NATGRAD_V reg sub(reg a, reg b) { return {D4::sub(a.l, b.l), D4::sub(a.h, b.h)}; }
  NATGRAD_V reg mul(reg a, reg b) { return {D4::mul(a.l, b.l), D4::mul(a.h, b.h)}; }
  NATGRAD_V reg div(reg a, reg b) { return {D4::div(a.l, b.l), D4::div(a.h, b.h)}; }
  NATGRAD_V reg fma(reg a, reg b, reg c) { return {D4::fma(a.l, b.l, c.l), D4::fma(a.h, b.h, c.h)}; }
  NATGRAD_V reg fnma(reg a, reg b, reg c) { return {D4::fnma(a.l, b.l, c.l), D4::fnma(a.h, b.h, c.h)}; }
  NATGRAD_V reg abs(reg a) { return {D4::abs(a.l), D4::abs(a.h)}; }
  NATGRAD_V reg round(reg a) { return {D4::round(a.l), D4::round(a.h)}; }
  NATGRAD_V reg pow2(reg n) { return {D4::pow2(n.l), D4::pow2(n.h)}; }
  NATGRAD_V mask below(reg x, double c) { return {D4::below(x.l, c), D4::below(x.h, c)}; }
  NATGRAD_V bool any(mask m) { return D4::any(m.l) || D4::any(m.h); }
  NATGRAD_V reg sign_select(reg s, reg a, reg b) { return {D4::sign_select(s.l, a.l, b.l), D4::sign_select(s.h, a.h, b.h)}; }
  NATGRAD_V double hsum(reg v) { return D4::hsum(D4::add(v.l, v.h)); }
  NATGRAD_V void add_into(double* c, reg v) { D4::add_into(c, v.l), D4::add_into(c + 4, v.h); }
  NATGRAD_V void store_f32(float* d, reg v) { D4::store_f32(d, v.l), D4::store_f32(d + 4, v.h); }
};

/// 16 floats as two AVX2 registers: the AVX-512 set's float shape (W = 16, tiles 3 x 8).
struct F16e {
  using T = float;
  struct reg {
    __m256 l, h;
  };
  static constexpr int W = 16, NV = 3, CT = 8;
  NATGRAD_V reg zero() { return {F8::zero(), F8::zero()}; }
  NATGRAD_V reg load(const float* p) { return {F8::load(p), F8::load(p + 8)}; }
  NATGRAD_V reg bcast(const float* p) { return {F8::bcast(p), F8::bcast(p)}; }
  NATGRAD_V reg fma(reg a, reg b, reg c) { return {F8::fma(a.l, b.l, c.l), F8::fma(a.h, b.h, c.h)}; }
  NATGRAD_V void add_into(double* c, reg v) { F8::add_into(c, v.l), F8::add_into(c + 8, v.h); }
};

#undef NATGRAD_V

#include "core/simd_kernels.inl"

}  // namespace

extern const KernelSet kAvx2Set = make_set<D4, F8>(Isa::avx2, "avx2", 512);
extern const KernelSet kWide8OnAvx2Set = make_set<D8e, F16e>(Isa::avx2, "avx2-wide8", 512);

}  // namespace natgrad::detail
#endif  // NATGRAD_X86_KERNELS
