#include "core/simd.hpp"

#include "core/simd_kernels.hpp"
#include "natgrad/core/cpu.hpp"

namespace natgrad::detail {

#ifdef NATGRAD_X86_KERNELS
extern const KernelSet kAvx2Set;         // simd_avx2.cpp
extern const KernelSet kWide8OnAvx2Set;  // simd_avx2.cpp
extern const KernelSet kAvx512Set;       // simd_avx512.cpp
#endif

namespace {
const KernelSet* g_override = nullptr;
}  // namespace

const KernelSet* kernel_set(Isa isa) {
#ifdef NATGRAD_X86_KERNELS
  if (isa > cpu_info().isa) return nullptr;
  if (isa == Isa::avx512) return &kAvx512Set;
  if (isa == Isa::avx2) return &kAvx2Set;
#else
  (void)isa;
#endif
  return nullptr;
}

const KernelSet* wide8_on_avx2_set() {
#ifdef NATGRAD_X86_KERNELS
  if (cpu_info().isa >= Isa::avx2) return &kWide8OnAvx2Set;
#endif
  return nullptr;
}

const KernelSet* active_kernel_set() { return g_override != nullptr ? g_override : kernel_set(kernel_isa()); }

const KernelSet* set_kernel_override(const KernelSet* set) {
  const KernelSet* was = g_override;
  g_override = set;
  return was;
}

}  // namespace natgrad::detail
