// Which kernels OpenBLAS runs against what the CPU can run (cpu.hpp: blas_check), and the
// CPU's peak, nominal and measured, that natgrad selftest times one DGEMM against.
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/simd.hpp"  // NATGRAD_X86_KERNELS
#include "natgrad/core/cpu.hpp"
#include "natgrad/core/linalg.hpp"

#ifdef NATGRAD_X86_KERNELS
#include <immintrin.h>
#endif

namespace natgrad {

namespace {

std::string lower(std::string_view s) {
  std::string r(s);
  for (char& c : r) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return r;
}

struct CoreFamily {
  const char* name;  // lower case
  Isa isa;
};
// OpenBLAS's x86 cores (driver/others/dynamic.c of 0.3.21, plus the fixed-build target
// names of getarch and the later SapphireRapids) by the widest instructions their DGEMM
// kernels use. The Bulldozer family (AVX with FMA4/FMA3 at 128 bits) counts as avx.
constexpr std::array<CoreFamily, 31> kCores{{
    {"katmai", Isa::generic},      {"coppermine", Isa::generic}, {"northwood", Isa::generic},
    {"banias", Isa::generic},      {"athlon", Isa::generic},     {"opteron", Isa::generic},
    {"p2", Isa::generic},          {"p5", Isa::generic},         {"generic", Isa::generic},
    {"prescott", Isa::sse3},       {"atom", Isa::sse3},          {"core2", Isa::sse3},
    {"penryn", Isa::sse3},         {"dunnington", Isa::sse3},    {"nehalem", Isa::sse3},
    {"opteron_sse3", Isa::sse3},   {"barcelona", Isa::sse3},     {"nano", Isa::sse3},
    {"bobcat", Isa::sse3},         {"sandybridge", Isa::avx},    {"bulldozer", Isa::avx},
    {"piledriver", Isa::avx},      {"steamroller", Isa::avx},    {"excavator", Isa::avx},
    {"haswell", Isa::avx2},        {"zen", Isa::avx2},           {"skylakex", Isa::avx512},
    {"cooperlake", Isa::avx512},   {"sapphirerapids", Isa::avx512},
    {"opteron(sse3)", Isa::sse3},  {"silvermont", Isa::sse3},
}};

bool amd_like(const CpuInfo& cpu) { return cpu.vendor == "AuthenticAMD" || cpu.vendor == "HygonGenuine"; }

/// AMD family 15h (Bulldozer to Excavator): OpenBLAS has a core per generation.
const char* bulldozer_core(int model) {
  if (model < 0x10) return "Bulldozer";
  if (model < 0x30) return "Piledriver";
  if (model < 0x60) return "Steamroller";
  return "Excavator";
}

std::string recommended_core(const CpuInfo& cpu) {
  if (amd_like(cpu) && cpu.family == 0x15 && cpu.isa >= Isa::avx) return bulldozer_core(cpu.model);
  switch (cpu.isa) {
    case Isa::avx512: return cpu.avx512_bf16 ? "Cooperlake" : "SkylakeX";
    case Isa::avx2: return amd_like(cpu) ? "Zen" : "Haswell";
    case Isa::avx: return "Sandybridge";
    case Isa::sse3: return "Prescott";
    case Isa::generic: break;
  }
  return "";
}

/// DP flops per cycle of this CPU's best family: dp_flops_per_cycle, except AMD Zen 4
/// (family 19h with AVX-512), whose AVX-512 runs on 256-bit units: 16.
int cpu_flops_per_cycle(const CpuInfo& cpu) {
  if (amd_like(cpu) && cpu.family == 0x19 && cpu.isa == Isa::avx512) return 16;
  return dp_flops_per_cycle(cpu.isa);
}

std::string fraction_text(double f) {
  std::ostringstream o;
  o << "1/" << std::lround(1 / f);
  return o.str();
}

}  // namespace

Isa openblas_core_isa(std::string_view corename, bool* known) {
  const std::string n = lower(corename);
  for (const auto& c : kCores)
    if (n == c.name) {
      if (known) *known = true;
      return c.isa;
    }
  if (known) *known = false;
  return Isa::generic;
}

int dp_flops_per_cycle(Isa isa) {
  switch (isa) {
    case Isa::generic:
    case Isa::sse3: return 4;
    case Isa::avx: return 8;
    case Isa::avx2: return 16;
    case Isa::avx512: return 32;
  }
  return 4;
}

BlasVerdict blas_check(const CpuInfo& cpu, std::string_view corename, std::string_view coretype_env) {
  BlasVerdict v;
  v.core = std::string(corename);
  v.blas_isa = openblas_core_isa(corename, &v.core_known);
  v.cpu_isa = cpu.isa;
  v.recommended = recommended_core(cpu);
  v.recommended_isa = v.recommended.empty() ? cpu.isa : openblas_core_isa(v.recommended);
  v.older = v.core_known && !v.recommended.empty() && v.blas_isa < v.recommended_isa;
  if (!v.older) return v;
  const int best = v.recommended_isa == cpu.isa ? cpu_flops_per_cycle(cpu) : dp_flops_per_cycle(v.recommended_isa);
  v.peak_fraction = std::min(1.0, static_cast<double>(dp_flops_per_cycle(v.blas_isa)) / best);
  const std::string& r = v.recommended;
  std::ostringstream m;
  m << "OpenBLAS runs its " << v.core << " kernels (" << to_string(v.blas_isa) << ") on this "
    << to_string(cpu.isa) << " CPU, so every BLAS call (the large-p Fisher, the Cholesky, the multinomial model) ";
  if (v.peak_fraction < 1) m << "runs at up to " << fraction_text(v.peak_fraction) << " of the CPU's peak";
  else m << "may run slower than with the " << r << " kernels";
  if (v.blas_isa <= Isa::sse3 && v.recommended_isa == Isa::avx512)
    m << " (measured on a Xeon with AVX-512: DGEMM 4.2x slower than with SkylakeX)";
  m << "; set OPENBLAS_CORETYPE=" << r;
  if (!coretype_env.empty()) m << " (it is " << coretype_env << " now)";
  m << " where the job starts: in the modulefile (setenv OPENBLAS_CORETYPE " << r
    << "), in the job script before mpirun (export OPENBLAS_CORETYPE=" << r
    << "), or on the command line (mpirun -x OPENBLAS_CORETYPE=" << r << " ...).";
  v.message = m.str();
  return v;
}

BlasVerdict blas_check() {
  const char* env = std::getenv("OPENBLAS_CORETYPE");
  return blas_check(cpu_info(), openblas_get_corename(), env != nullptr ? env : "");
}

// ---- the peak ------------------------------------------------------------------------

CpuPeak cpu_peak() {
  CpuPeak p;
  p.flops_per_cycle = cpu_flops_per_cycle(cpu_info());
  {  // the highest clock the kernel's cpufreq driver knows (kHz); absent in many VMs
    std::ifstream in("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq");
    double khz = 0;
    if (in >> khz && khz > 0) {
      p.ghz = khz / 1e6;
      p.clock_source = "cpufreq cpuinfo_max_freq";
    }
  }
  if (p.ghz == 0) {  // the clock the kernel measured at boot (VMs: the host's nominal clock)
    std::ifstream in("/proc/cpuinfo");
    for (std::string line; std::getline(in, line);)
      if (line.rfind("cpu MHz", 0) == 0) {
        const auto colon = line.find(':');
        if (colon == std::string::npos) break;
        try {
          p.ghz = std::stod(line.substr(colon + 1)) / 1e3;
          p.clock_source = "/proc/cpuinfo cpu MHz";
        } catch (const std::exception&) {
        }
        break;
      }
  }
  p.nominal_gflops = p.ghz * p.flops_per_cycle;
  return p;
}

namespace {

/// Seconds: with one thread this thread's CPU clock (what it ran, unaffected by time
/// slices lost to other work on a shared machine), else the wall clock.
double now(bool cpu_clock) {
  if (cpu_clock) {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

#ifdef NATGRAD_X86_KERNELS
// Twelve independent FMA chains: enough to cover the FMA latency (4-5 cycles) on two
// units. a = a * m + c with m just below 1 and c small stays finite and normal.
constexpr int kChains = 12;

__attribute__((target("avx2,fma"))) double fma_loop_avx2(std::int64_t iters) {
  __m256d acc[kChains];
  for (int k = 0; k < kChains; ++k) acc[k] = _mm256_set1_pd(1.0 + k * 1e-3);
  const __m256d m = _mm256_set1_pd(0.9999999), c = _mm256_set1_pd(1e-7);
  for (std::int64_t i = 0; i < iters; ++i)
    for (int k = 0; k < kChains; ++k) acc[k] = _mm256_fmadd_pd(acc[k], m, c);
  __m256d s = acc[0];
  for (int k = 1; k < kChains; ++k) s = _mm256_add_pd(s, acc[k]);
  alignas(32) double out[4];
  _mm256_store_pd(out, s);
  return out[0] + out[1] + out[2] + out[3];
}

__attribute__((target("avx512f"))) double fma_loop_avx512(std::int64_t iters) {
  __m512d acc[kChains];
  for (int k = 0; k < kChains; ++k) acc[k] = _mm512_set1_pd(1.0 + k * 1e-3);
  const __m512d m = _mm512_set1_pd(0.9999999), c = _mm512_set1_pd(1e-7);
  for (std::int64_t i = 0; i < iters; ++i)
    for (int k = 0; k < kChains; ++k) acc[k] = _mm512_fmadd_pd(acc[k], m, c);
  __m512d s = acc[0];
  for (int k = 1; k < kChains; ++k) s = _mm512_add_pd(s, acc[k]);
  alignas(64) double out[8];  // (not _mm512_reduce_add_pd: GCC 12 warns inside it)
  _mm512_store_pd(out, s);
  double t = 0;
  for (double x : out) t += x;
  return t;
}
#endif

}  // namespace

double measured_fma_gflops(int threads, double seconds) {
#ifdef NATGRAD_X86_KERNELS
  const Isa isa = cpu_info().isa;
  if (isa < Isa::avx2) return 0;
  const int lanes = isa == Isa::avx512 ? 8 : 4;
  auto run = [&](std::int64_t iters) {
    return isa == Isa::avx512 ? fma_loop_avx512(iters) : fma_loop_avx2(iters);
  };
  threads = std::max(threads, 1);
  const bool cpu_clock = threads == 1;
  // Calibrate on one thread (also warms the clock up), then time all threads at once.
  std::int64_t iters = 1 << 16;
  volatile double sink = 0;
  for (;;) {
    const double t0 = now(cpu_clock);
    sink = sink + run(iters);
    const double dt = now(cpu_clock) - t0;
    if (dt > seconds / 4 || iters > (std::int64_t{1} << 40)) {
      iters = static_cast<std::int64_t>(static_cast<double>(iters) * seconds / std::max(dt, 1e-9));
      break;
    }
    iters *= 4;
  }
  iters = std::max<std::int64_t>(iters, 1);
  double best = 0;
  for (int rep = 0; rep < 2; ++rep) {
    const double t0 = now(cpu_clock);
    double total = 0;
    if (cpu_clock) {
      total = run(iters);
    } else {
#pragma omp parallel num_threads(threads) reduction(+ : total)
      total += run(iters);
    }
    sink = sink + total;
    const double dt = now(cpu_clock) - t0;
    best = std::max(best, 2.0 * lanes * kChains * static_cast<double>(iters) * threads / dt / 1e9);
  }
  return best;
#else
  (void)threads;
  (void)seconds;
  return 0;
#endif
}

DgemmRate time_dgemm(int n, int threads, int rounds) {
  const auto nn = static_cast<std::size_t>(n) * static_cast<std::size_t>(n);
  std::vector<double> A(nn), B(nn), C(nn);
  for (std::size_t i = 0; i < nn; ++i) {  // entries in [-1, 1], no cancellation to speak of
    A[i] = static_cast<double>((i * 2654435761u) % 2001) / 1000.0 - 1.0;
    B[i] = static_cast<double>((i * 40503u + 17) % 1999) / 999.0 - 1.0;
  }
  set_blas_threads(threads);
  DgemmRate r;
  const double flop = 2.0 * n * static_cast<double>(n) * n;
  for (int round = 0; round <= std::max(rounds, 1); ++round) {  // round 0: warm-up
    const double t0 = now(threads == 1);  // one thread: the BLAS runs on this thread
    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0, A.data(), n, B.data(), n, 0.0, C.data(), n);
    const double dt = now(threads == 1) - t0;
    if (round == 0) continue;
    // The FMA loop right after, for about half as long as the DGEMM took (5 to 30 ms).
    const double fma = measured_fma_gflops(threads, std::max(0.005, std::min(dt / 2, 0.03)));
    r.dgemm_gflops = std::max(r.dgemm_gflops, flop / dt / 1e9);
    r.fma_gflops = std::max(r.fma_gflops, fma);
  }
  double worst = 0;  // sampled entries against plain dot products
  for (int s = 0; s < 64; ++s) {
    const auto i = static_cast<std::size_t>((s * 7919) % n), j = static_cast<std::size_t>((s * 104729 + 3) % n);
    const auto ld = static_cast<std::size_t>(n);
    double ref = 0, mag = 0;
    for (std::size_t k = 0; k < ld; ++k) {
      ref += A[i + k * ld] * B[k + j * ld];
      mag += std::abs(A[i + k * ld] * B[k + j * ld]);
    }
    const double got = C[i + j * ld];
    worst = std::max(worst, std::isfinite(got) ? std::abs(got - ref) / std::max(mag, 1e-300) : INFINITY);
  }
  r.max_error = worst;
  return r;
}

}  // namespace natgrad
