#pragma once
// Every variant of natgrad's own kernels this machine can run, for tests that check each
// against a reference: the portable C++ (with the BLAS), every SIMD set the CPU supports
// (AVX2; AVX-512 where the CPU has it), and the AVX-512 set's 8-wide code compiled for
// AVX2 (its tiling, panels and tails on a machine without AVX-512).
#include <string>
#include <vector>

#include "core/simd_kernels.hpp"
#include "natgrad/core/cpu.hpp"

namespace natgrad::test {

struct KernelChoice {
  std::string name;                         // "generic", "avx2", "avx512", "avx2-wide8"
  const detail::KernelSet* set = nullptr;   // nullptr: the portable versions
};

inline std::vector<KernelChoice> kernel_choices() {
  std::vector<KernelChoice> v{{"generic", nullptr}};
  for (Isa isa : {Isa::avx2, Isa::avx512})
    if (const detail::KernelSet* s = detail::kernel_set(isa)) v.push_back({s->name, s});
  if (const detail::KernelSet* s = detail::wide8_on_avx2_set()) v.push_back({s->name, s});
  return v;
}

/// Runs natgrad's kernels as \p c says while in scope.
class UseKernels {
 public:
  explicit UseKernels(const KernelChoice& c)
      : isa_(detail::set_kernel_isa(c.set != nullptr ? Isa::avx512 : Isa::generic)),
        override_(detail::set_kernel_override(c.set)) {}
  ~UseKernels() {
    detail::set_kernel_override(override_);
    detail::set_kernel_isa(isa_);
  }
  UseKernels(const UseKernels&) = delete;
  UseKernels& operator=(const UseKernels&) = delete;

 private:
  Isa isa_;
  const detail::KernelSet* override_;
};

}  // namespace natgrad::test
