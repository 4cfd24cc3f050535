#pragma once
/// \file simd.hpp
/// Where natgrad's own SIMD kernels (simd_kernels.hpp: one set per instruction-set
/// family, chosen by cpuid) are compiled. The switch between the sets, and to the
/// portable C++, is detail::set_kernel_isa (natgrad/core/cpu.hpp).

/// Defined where the x86 kernel sets are compiled (x86-64 with GCC or Clang).
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define NATGRAD_X86_KERNELS 1
#endif
