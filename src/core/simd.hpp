#pragma once
/// \file simd.hpp
/// natgrad's own SIMD kernels, the packed Fisher update (kernels.cpp) and the logistic
/// row evaluation (model.cpp), each have an AVX2/FMA version, used where the CPU has
/// AVX2 and FMA (checked once at run time), and a portable C++ version.

/// Defined where the AVX2/FMA versions are compiled (x86-64 with GCC or Clang).
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define NATGRAD_X86_KERNELS 1
#endif

namespace natgrad::detail {
/// Lets tests run the portable versions on a CPU that has AVX2: false selects them, true
/// (the default) allows the best versions the CPU has. Returns whether SIMD versions were
/// allowed before. Shorthand for set_kernel_isa (natgrad/core/cpu.hpp). Not thread-safe.
bool set_simd_kernels(bool enabled);
/// Whether SIMD versions (AVX2/FMA or better) are in use.
bool simd_kernels_active();
}  // namespace natgrad::detail
