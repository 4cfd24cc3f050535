#include "core/simd.hpp"

#include <utility>

namespace natgrad::detail {
namespace {
bool cpu_has_avx2_fma() {
#ifdef NATGRAD_X86_KERNELS
  static const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return ok;
#else
  return false;
#endif
}
bool g_enabled = true;
}  // namespace

bool set_simd_kernels(bool enabled) { return std::exchange(g_enabled, enabled); }
bool simd_kernels_active() { return g_enabled && cpu_has_avx2_fma(); }
}  // namespace natgrad::detail
