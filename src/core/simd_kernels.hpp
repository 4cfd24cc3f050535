#pragma once
/// \file simd_kernels.hpp (private: not installed)
/// natgrad's own SIMD kernels, one set per instruction-set family, chosen at run time.
///
/// Each set is one instantiation of the templates in simd_kernels.inl, compiled in its
/// own translation unit with that family's compiler flags (simd_avx2.cpp: -mavx2 -mfma;
/// simd_avx512.cpp: -mavx512f/dq/vl/bw/cd), so the generic code never contains an
/// instruction the CPU may lack and the choice is made once, by cpuid
/// (natgrad/core/cpu.hpp: detail::kernel_isa). Without a set (Isa::generic, or a build
/// off x86-64) the callers use portable C++ and the BLAS.
///
/// The kernels, all of them tested against naive references for every set the CPU runs
/// (tests/test_kernels.cpp, test_glm.cpp):
///   syrk     the packed Fisher update F += S S^T (upper triangle) of the per-thread path
///   stage    the scaled-row panel writer: rows a_i x_i into the panel operand of syrk,
///            and grad += X^T g, in one read of the block
///   gemv     eta = X theta for a row-major block (the loss-only pass and every pass)
///   logit    the logistic model's per-row nll, dnll and Fisher weight (exp, log1p)
/// and their float32 forms for --fisher-precision float32 (syrk_f32, stage_f32: the
/// operand in float, products summed in float over at most kc rows, added into the
/// double F).
#include <cstddef>
#include <cstdint>

#include "natgrad/core/cpu.hpp"
#include "core/simd.hpp"

namespace natgrad::detail {

struct KernelSet {
  Isa isa;
  const char* name;  // "avx2", "avx512", "avx2-wide8" (the 8-wide code run on AVX2, tests)
  int panel;         // doubles per panel of the packed double operand (its vector width)
  int panel_f32;     // floats per panel of the packed float operand
  /// The largest p for which the Fisher pass uses syrk rather than the BLAS SYRK (the
  /// crossover measured per ISA against the BLAS running its right kernels,
  /// docs/performance.md; kernels.cpp).
  std::int64_t packed_max_p;

  /// F (column-major, leading dimension ld, pp x pp with pp a multiple of panel) +=
  /// sum over operand rows k < kc of s_k s_k^T, on and above the diagonal (the diagonal
  /// panel blocks are computed whole: what they write below it nobody reads). The operand:
  /// element (k, j) at S[(j / panel) * ps + panel * k + j % panel]. Lines [ahead,
  /// ahead + ahead_bytes) are prefetched towards L2, spread over the tiles.
  void (*syrk)(const double* S, std::int64_t ps, std::int64_t pp, std::int64_t kc, double* F, std::int64_t ld,
               const void* ahead, std::int64_t ahead_bytes);
  /// Operand rows row0, row0 + 1, ... = a_i x_i for the selected rows i of the row-major
  /// block X (m x p), and grad += X^T g over all m rows. sel == nullptr: every row is
  /// selected; else the nsel selected rows are those with sel[k] == base + i (ascending).
  void (*stage)(const double* X, std::int64_t m, std::int64_t p, const double* a, const double* g,
                const std::int64_t* sel, std::int64_t nsel, std::int64_t base, double* S, std::int64_t ps,
                std::int64_t row0, double* grad);
  /// eta[i] = sum_j X[i p + j] theta[j], i < m (row-major X).
  void (*gemv)(const double* X, std::int64_t m, std::int64_t p, const double* theta, double* eta);
  /// The logistic model's rows (LogitRows in model.cpp), indexed by which outputs are
  /// wanted: (nll ? 1 : 0) | (dnll ? 2 : 0) | (fisher ? 4 : 0); [0] is unused.
  void (*logit[8])(std::size_t n, const double* eta, const double* y, double* nll, double* dnll, double* fisher);
  /// syrk and stage with a float operand (panel_f32 floats per panel), F still double.
  void (*syrk_f32)(const float* S, std::int64_t ps, std::int64_t pp, std::int64_t kc, double* F, std::int64_t ld,
                   const void* ahead, std::int64_t ahead_bytes);
  void (*stage_f32)(const double* X, std::int64_t m, std::int64_t p, const double* a, const double* g,
                    const std::int64_t* sel, std::int64_t nsel, std::int64_t base, float* S, std::int64_t ps,
                    std::int64_t row0, double* grad);
};

/// The set natgrad's kernels use now: kernel_set(kernel_isa()), or the test override.
/// nullptr: portable C++ and the BLAS.
const KernelSet* active_kernel_set();
/// The set for \p isa when this build has it and the CPU runs it, else nullptr.
const KernelSet* kernel_set(Isa isa);
/// The 8-wide (AVX-512 shaped: panels of 8 doubles, 3 x 8 tiles) code compiled for AVX2,
/// each 512-bit register emulated by two 256-bit ones: lets a machine without AVX-512
/// run the AVX-512 set's tiling, panels and tails. nullptr without AVX2. Tests only.
const KernelSet* wide8_on_avx2_set();
/// Tests: makes active_kernel_set() return \p set whatever kernel_isa() says (nullptr:
/// back to kernel_isa()'s set). Returns the previous override. Not thread-safe.
const KernelSet* set_kernel_override(const KernelSet* set);

}  // namespace natgrad::detail
