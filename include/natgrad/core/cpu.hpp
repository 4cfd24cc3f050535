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
