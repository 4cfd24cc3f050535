// natgrad's SIMD kernels for AVX-512 (F, DQ, VL, BW, CD: Skylake-SP and later, Zen 4 and
// later), compiled with those -m flags (src/CMakeLists.txt); simd_kernels.hpp. The same
// templates as the AVX2 set with 8 doubles (16 floats) per register and 32 registers:
// Fisher tiles of 3 panels x 8 columns (24 accumulators).
#include "core/simd_kernels.hpp"

#ifdef NATGRAD_X86_KERNELS
// GCC 12's avx512fintrin.h builds its "undefined" registers by self-initialisation
// (__m512d __Y = __Y), which -Wuninitialized reports wherever they are inlined.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstdint>

namespace natgrad::detail {
namespace {

#define NATGRAD_V static inline __attribute__((always_inline))

struct D8 {
  using T = double;
  using reg = __m512d;
  using mask = __mmask8;
  static constexpr int W = 8, NV = 3, CT = 8;
  NATGRAD_V reg zero() { return _mm512_setzero_pd(); }
  NATGRAD_V reg set1(double x) { return _mm512_set1_pd(x); }
  NATGRAD_V reg load(const double* p) { return _mm512_loadu_pd(p); }
  NATGRAD_V void store(double* p, reg v) { _mm512_storeu_pd(p, v); }
  NATGRAD_V reg bcast(const double* p) { return _mm512_set1_pd(*p); }
  NATGRAD_V reg add(reg a, reg b) { return _mm512_add_pd(a, b); }
  NATGRAD_V reg sub(reg a, reg b) { return _mm512_sub_pd(a, b); }
  NATGRAD_V reg mul(reg a, reg b) { return _mm512_mul_pd(a, b); }
  NATGRAD_V reg div(reg a, reg b) { return _mm512_div_pd(a, b); }
  NATGRAD_V reg fma(reg a, reg b, reg c) { return _mm512_fmadd_pd(a, b, c); }
  NATGRAD_V reg fnma(reg a, reg b, reg c) { return _mm512_fnmadd_pd(a, b, c); }
  NATGRAD_V reg abs(reg a) { return _mm512_abs_pd(a); }
  NATGRAD_V reg round(reg a) { return _mm512_roundscale_pd(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  /// 2^n for integral n in [-1022, 1023], exactly (VSCALEFPD).
  NATGRAD_V reg pow2(reg n) { return _mm512_scalef_pd(_mm512_set1_pd(1.0), n); }
  NATGRAD_V mask below(reg x, double c) { return _mm512_cmp_pd_mask(x, _mm512_set1_pd(c), _CMP_NGE_UQ); }
  NATGRAD_V bool any(mask m) { return m != 0; }
  NATGRAD_V reg sign_select(reg s, reg if_clear, reg if_set) {
    return _mm512_mask_blend_pd(_mm512_movepi64_mask(_mm512_castpd_si512(s)), if_clear, if_set);
  }
  NATGRAD_V double hsum(reg v) {
    const __m256d s = _mm256_add_pd(_mm512_castpd512_pd256(v), _mm512_extractf64x4_pd(v, 1));
    const __m128d t = _mm_add_pd(_mm256_castpd256_pd128(s), _mm256_extractf128_pd(s, 1));
    return _mm_cvtsd_f64(_mm_add_sd(t, _mm_unpackhi_pd(t, t)));
  }
  NATGRAD_V void add_into(double* c, reg v) { store(c, add(load(c), v)); }
  NATGRAD_V void store_f32(float* d, reg v) { _mm256_storeu_ps(d, _mm512_cvtpd_ps(v)); }
};

struct F16 {
  using T = float;
  using reg = __m512;
  static constexpr int W = 16, NV = 3, CT = 8;
  NATGRAD_V reg zero() { return _mm512_setzero_ps(); }
  NATGRAD_V reg load(const float* p) { return _mm512_loadu_ps(p); }
  NATGRAD_V reg bcast(const float* p) { return _mm512_set1_ps(*p); }
  NATGRAD_V reg fma(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }
  NATGRAD_V void add_into(double* c, reg v) {
    D8::add_into(c, _mm512_cvtps_pd(_mm512_castps512_ps256(v)));
    D8::add_into(c + 8, _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1)));
  }
};

#undef NATGRAD_V

#include "core/simd_kernels.inl"

}  // namespace

extern const KernelSet kAvx512Set = make_set<D8, F16>(Isa::avx512, "avx512", 384);

}  // namespace natgrad::detail
#endif  // NATGRAD_X86_KERNELS
