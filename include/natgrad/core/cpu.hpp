#pragma once
/// \file cpu.hpp
/// What the CPU can run, and which kernels natgrad and OpenBLAS actually run on it.
///
/// natgrad's own kernels (the packed Fisher tiles, the scaled-row panel writer, the
/// logistic evaluation, the loss-only pass) exist per instruction-set family and are
/// chosen once at run time from cpuid (detail::kernel_isa). OpenBLAS chooses its own
/// kernels (its "core"); Debian's 0.3.21 does not know some newer CPUs and then falls
/// back to old SSE3 kernels: blas_check() compares the two and says what to do.
#include <string>
#include <string_view>

namespace natgrad {

/// Instruction-set families, ordered: a CPU (or a kernel) of one family runs everything
/// of the families below it. avx2 means AVX2 + FMA3; avx512 means AVX-512 F, DQ, VL, BW
/// and CD (Skylake-SP and later, AMD Zen 4 and later).
enum class Isa { generic = 0, sse3, avx, avx2, avx512 };
const char* to_string(Isa isa);

/// The CPU, from cpuid (and /proc/cpuinfo where cpuid lacks a brand string).
struct CpuInfo {
  std::string vendor;      // "GenuineIntel", "AuthenticAMD", ... ("" off x86)
  std::string model_name;  // brand string, e.g. "Intel(R) Xeon(R) Platinum 8488C"
  int family = 0, model = 0, stepping = 0;  // display family/model as Linux prints them
  Isa isa = Isa::generic;  // the best family it supports (including OS support for the registers)
  bool avx512_bf16 = false;  // Cooper Lake, Sapphire Rapids, Zen 4 (OpenBLAS "Cooperlake")
};
/// The CPU this process runs on (detected once, thread-safe).
const CpuInfo& cpu_info();

/// OpenBLAS's kernels compared with the CPU (blas_check).
struct BlasVerdict {
  std::string core;          ///< OpenBLAS's core name as it reports it ("Prescott", "Zen"; "" unknown)
  bool core_known = false;   ///< the name is in natgrad's table of x86 cores (else blas_isa means nothing)
  Isa blas_isa = Isa::generic;  ///< the family of that core's kernels
  Isa cpu_isa = Isa::generic;   ///< the CPU's family (CpuInfo::isa)
  /// The OPENBLAS_CORETYPE value for this CPU: SkylakeX (AVX-512), Cooperlake (AVX-512 with
  /// BF16), Haswell (Intel AVX2), Zen (AMD AVX2), Sandybridge (AVX); the Bulldozer-family
  /// names on AMD family 15h, Prescott on SSE3; "" where there is nothing better to ask for.
  std::string recommended;
  Isa recommended_isa = Isa::generic;  ///< the family of \p recommended (the CPU's best for OpenBLAS)
  /// OpenBLAS runs an older family than the recommended core: its kernels reach at most
  /// peak_fraction of this CPU's peak.
  bool older = false;
  /// DP flops per cycle of blas_isa / of the CPU (dp_flops_per_cycle; Zen 4: 16), at most 1.
  double peak_fraction = 1;
  /// One sentence for the user when \p older (else ""): the consequence and the fix
  /// (OPENBLAS_CORETYPE, and where to set it: modulefile, job script, mpirun -x).
  std::string message;
};
/// Pure: compares \p cpu with the OpenBLAS core \p corename (openblas_get_corename(): the
/// dynamic-arch names "Prescott", "Haswell", "Zen", "SkylakeX", "Cooperlake", ... or a
/// fixed build's upper-case target name; compared without regard to case).
/// \p coretype_env: the OPENBLAS_CORETYPE the process was started with ("" none), named in
/// the message when it is what chose the older core.
BlasVerdict blas_check(const CpuInfo& cpu, std::string_view corename, std::string_view coretype_env = {});
/// The live verdict: cpu_info(), this process's openblas_get_corename() and OPENBLAS_CORETYPE.
BlasVerdict blas_check();
/// The ISA family of an OpenBLAS x86 core name; \p known is set false for names not in
/// natgrad's table (other architectures, newer OpenBLAS cores).
Isa openblas_core_isa(std::string_view corename, bool* known = nullptr);
/// Double-precision flops per cycle per core that natgrad assumes for a family: generic
/// and sse3 4 (a 128-bit add and multiply), avx 8, avx2 16 (two 256-bit FMA units),
/// avx512 32 (two 512-bit FMA units; Xeon Silver/Bronze and Zen 4 reach half of that).
int dp_flops_per_cycle(Isa isa);

/// The CPU's peak double-precision rate, nominal and measured (natgrad selftest).
struct CpuPeak {
  double ghz = 0;             ///< the clock natgrad assumes, 0 if none was found
  std::string clock_source;   ///< where \p ghz comes from (cpufreq max, /proc/cpuinfo "cpu MHz")
  int flops_per_cycle = 0;    ///< dp_flops_per_cycle(cpu_info().isa); 16 on AMD Zen 4 (256-bit units)
  double nominal_gflops = 0;  ///< one core: ghz x flops_per_cycle (0 without a clock)
};
CpuPeak cpu_peak();
/// GFLOP/s of a register-only FMA loop (no memory traffic) on \p threads OpenMP threads,
/// about \p seconds long: the measured peak, AVX-512 where cpu_info().isa is avx512, AVX2
/// + FMA where avx2, else 0 (nothing measured). One thread: timed by its CPU clock.
double measured_fma_gflops(int threads, double seconds);
/// One n x n x n DGEMM with the BLAS on \p threads threads, and the FMA loop
/// (measured_fma_gflops) on as many, timed in \p rounds interleaved rounds after a
/// warm-up so that both see the same load on a shared machine; the best of each. With one
/// thread both are timed by the thread's CPU clock (time slices lost to other processes
/// do not count), with more by the wall clock.
struct DgemmRate {
  double dgemm_gflops = 0;
  double fma_gflops = 0;  ///< 0 where no FMA loop runs (below AVX2)
  double max_error = 0;   ///< largest relative error of sampled entries against dot products
};
/// Leaves the BLAS on \p threads threads (set_blas_threads).
DgemmRate time_dgemm(int n, int threads, int rounds);

namespace detail {
/// The family natgrad's own kernels use now: the best the CPU supports, capped by
/// set_kernel_isa (tests, natgrad_bench --isa). Never above cpu_info().isa.
Isa kernel_isa();
/// Caps the family of natgrad's own kernels at \p cap (Isa::generic: the portable C++
/// versions) and returns the previous cap. Not thread-safe: call it between passes.
Isa set_kernel_isa(Isa cap);
/// The families this build has kernels for and this CPU can run, best first
/// (always ends with Isa::generic): what tests iterate over.
std::string kernel_isas_available();
}  // namespace detail

}  // namespace natgrad
