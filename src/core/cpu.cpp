#include "natgrad/core/cpu.hpp"

#include <algorithm>
#include <cstring>
#include <fstream>

#include "core/simd.hpp"

#ifdef NATGRAD_X86_KERNELS
#include <cpuid.h>
#endif

namespace natgrad {

const char* to_string(Isa isa) {
  switch (isa) {
    case Isa::generic: return "generic";
    case Isa::sse3: return "sse3";
    case Isa::avx: return "avx";
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
  }
  return "?";
}

namespace {

CpuInfo detect() {
  CpuInfo c;
#ifdef NATGRAD_X86_KERNELS
  __builtin_cpu_init();
  unsigned a = 0, b = 0, cx = 0, d = 0;
  if (__get_cpuid(0, &a, &b, &cx, &d) != 0) {
    char v[13] = {};
    std::memcpy(v, &b, 4);
    std::memcpy(v + 4, &d, 4);
    std::memcpy(v + 8, &cx, 4);
    c.vendor = v;
  }
  if (__get_cpuid(1, &a, &b, &cx, &d) != 0) {
    const int base_family = static_cast<int>((a >> 8) & 0xf), base_model = static_cast<int>((a >> 4) & 0xf);
    c.family = base_family == 0xf ? base_family + static_cast<int>((a >> 20) & 0xff) : base_family;
    c.model = (base_family == 0x6 || base_family == 0xf) ? (static_cast<int>((a >> 16) & 0xf) << 4) + base_model
                                                         : base_model;
    c.stepping = static_cast<int>(a & 0xf);
  }
  unsigned max_ext = __get_cpuid_max(0x80000000u, nullptr);
  if (max_ext >= 0x80000004u) {
    char brand[49] = {};
    for (unsigned leaf = 0; leaf < 3; ++leaf) {
      unsigned r[4] = {};
      __get_cpuid(0x80000002u + leaf, &r[0], &r[1], &r[2], &r[3]);
      std::memcpy(brand + 16 * leaf, r, 16);
    }
    std::string s = brand;
    const auto first = s.find_first_not_of(' ');
    s = first == std::string::npos ? std::string() : s.substr(first);
    while (!s.empty() && s.back() == ' ') s.pop_back();
    c.model_name = s;
  }
  // __builtin_cpu_supports also checks that the OS saves the registers (XGETBV).
  if (__builtin_cpu_supports("sse3")) c.isa = Isa::sse3;
  if (__builtin_cpu_supports("avx")) c.isa = Isa::avx;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) c.isa = Isa::avx2;
  if (c.isa == Isa::avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512cd"))
    c.isa = Isa::avx512;
  c.avx512_bf16 = c.isa == Isa::avx512 && __builtin_cpu_supports("avx512bf16");
#endif
  if (c.model_name.empty()) {
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line))
      if (line.rfind("model name", 0) == 0) {
        const auto colon = line.find(':');
        if (colon != std::string::npos) c.model_name = line.substr(std::min(line.size(), colon + 2));
        break;
      }
  }
  return c;
}

/// The best family this build has kernels for.
constexpr Isa kCompiledBest =
#ifdef NATGRAD_X86_KERNELS
    Isa::avx512;
#else
    Isa::generic;
#endif

Isa g_cap = Isa::avx512;

}  // namespace

const CpuInfo& cpu_info() {
  static const CpuInfo info = detect();
  return info;
}

namespace detail {

Isa kernel_isa() {
  Isa best = std::min(cpu_info().isa, kCompiledBest);
  if (best < Isa::avx2) best = Isa::generic;  // nothing between the portable and the AVX2 versions
  return std::min(best, g_cap);
}

Isa set_kernel_isa(Isa cap) {
  const Isa was = g_cap;
  g_cap = cap;
  return was;
}

std::string kernel_isas_available() {
  std::string s;
  for (Isa i : {Isa::avx512, Isa::avx2})
    if (i <= std::min(cpu_info().isa, kCompiledBest)) s += std::string(to_string(i)) + " ";
  return s + "generic";
}

}  // namespace detail
}  // namespace natgrad
