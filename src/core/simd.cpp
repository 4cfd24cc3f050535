#include "core/simd.hpp"

#include "natgrad/core/cpu.hpp"

namespace natgrad::detail {

bool set_simd_kernels(bool enabled) { return set_kernel_isa(enabled ? Isa::avx512 : Isa::generic) != Isa::generic; }
bool simd_kernels_active() { return kernel_isa() >= Isa::avx2; }

}  // namespace natgrad::detail
