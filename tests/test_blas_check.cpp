// blas_check (cpu.hpp): OpenBLAS's core against the CPU, on a table of CPUs and core
// names (no OPENBLAS_CORETYPE is ever set here), and the live verdict on this machine.
#include <cblas.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <string>

#include "natgrad/core/cpu.hpp"

using namespace natgrad;

namespace {

CpuInfo cpu(const char* vendor, int family, int model, Isa isa, bool bf16 = false) {
  CpuInfo c;
  c.vendor = vendor;
  c.model_name = "test CPU";
  c.family = family;
  c.model = model;
  c.isa = isa;
  c.avx512_bf16 = bf16;
  return c;
}

struct Case {
  const char* what;
  CpuInfo cpu;
  const char* core;
  bool known;
  Isa blas_isa;
  const char* recommended;
  bool older;
  double fraction;  // expected peak_fraction
};

}  // namespace

TEST_CASE("blas_check: OpenBLAS cores against CPUs", "[cpu]") {
  const CpuInfo xeon_emr = cpu("GenuineIntel", 6, 207, Isa::avx512, true);  // the Xeon (model 207)
  const CpuInfo xeon_skx = cpu("GenuineIntel", 6, 85, Isa::avx512);         // Skylake-SP / Cascade Lake
  const CpuInfo haswell = cpu("GenuineIntel", 6, 63, Isa::avx2);
  const CpuInfo sandy = cpu("GenuineIntel", 6, 45, Isa::avx);
  const CpuInfo zen3 = cpu("AuthenticAMD", 25, 1, Isa::avx2);
  const CpuInfo zen4 = cpu("AuthenticAMD", 25, 17, Isa::avx512, true);
  const CpuInfo hygon = cpu("HygonGenuine", 24, 0, Isa::avx2);
  const CpuInfo excavator = cpu("AuthenticAMD", 21, 0x60, Isa::avx2);
  const CpuInfo piledriver = cpu("AuthenticAMD", 21, 0x02 + 0x10, Isa::avx);
  const CpuInfo old_sse3 = cpu("GenuineIntel", 6, 23, Isa::sse3);
  const CpuInfo not_x86 = cpu("", 0, 0, Isa::generic);
  const Case cases[] = {
      // The issue: Debian's 0.3.21 falls back to Prescott on a new Xeon.
      {"Prescott on an AVX-512 Xeon with BF16", xeon_emr, "Prescott", true, Isa::sse3, "Cooperlake", true, 4.0 / 32},
      {"Prescott on Skylake-SP", xeon_skx, "Prescott", true, Isa::sse3, "SkylakeX", true, 4.0 / 32},
      {"Haswell on Skylake-SP (a build without AVX-512 kernels)", xeon_skx, "Haswell", true, Isa::avx2, "SkylakeX",
       true, 0.5},
      {"SkylakeX on Skylake-SP", xeon_skx, "SkylakeX", true, Isa::avx512, "SkylakeX", false, 1},
      {"SkylakeX on a BF16 Xeon (same family)", xeon_emr, "SkylakeX", true, Isa::avx512, "Cooperlake", false, 1},
      {"Cooperlake on a BF16 Xeon", xeon_emr, "Cooperlake", true, Isa::avx512, "Cooperlake", false, 1},
      {"SapphireRapids (newer OpenBLAS)", xeon_emr, "SapphireRapids", true, Isa::avx512, "Cooperlake", false, 1},
      {"Haswell on Haswell", haswell, "Haswell", true, Isa::avx2, "Haswell", false, 1},
      {"fixed build's upper-case name", haswell, "HASWELL", true, Isa::avx2, "Haswell", false, 1},
      {"Sandybridge on Haswell", haswell, "Sandybridge", true, Isa::avx, "Haswell", true, 0.5},
      {"Prescott on Haswell", haswell, "Prescott", true, Isa::sse3, "Haswell", true, 0.25},
      {"Nehalem on Sandy Bridge", sandy, "Nehalem", true, Isa::sse3, "Sandybridge", true, 0.5},
      {"Zen on Zen 3", zen3, "Zen", true, Isa::avx2, "Zen", false, 1},
      {"Haswell on Zen 3 (same family)", zen3, "Haswell", true, Isa::avx2, "Zen", false, 1},
      {"Prescott on Zen 3", zen3, "Prescott", true, Isa::sse3, "Zen", true, 0.25},
      {"Zen on Hygon", hygon, "Zen", true, Isa::avx2, "Zen", false, 1},
      // Zen 4's AVX-512 runs on 256-bit units: older family, same peak.
      {"Zen on Zen 4", zen4, "Zen", true, Isa::avx2, "Cooperlake", true, 1},
      {"Excavator on Excavator (OpenBLAS's own choice)", excavator, "Excavator", true, Isa::avx, "Excavator", false, 1},
      {"Barcelona on Excavator", excavator, "Barcelona", true, Isa::sse3, "Excavator", true, 0.5},
      {"Piledriver on Piledriver", piledriver, "Piledriver", true, Isa::avx, "Piledriver", false, 1},
      {"Core2 on an SSE3 CPU", old_sse3, "Core2", true, Isa::sse3, "Prescott", false, 1},
      {"Katmai on an SSE3 CPU", old_sse3, "Katmai", true, Isa::generic, "Prescott", true, 1},
      // Names natgrad does not know: no verdict, never a warning.
      {"unknown core name", xeon_skx, "GraniteRapidsX", false, Isa::generic, "SkylakeX", false, 1},
      {"empty core name", xeon_skx, "", false, Isa::generic, "SkylakeX", false, 1},
      {"another architecture", not_x86, "NEOVERSEN1", false, Isa::generic, "", false, 1},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    const BlasVerdict v = blas_check(c.cpu, c.core);
    CHECK(v.core == c.core);
    CHECK(v.core_known == c.known);
    if (c.known) CHECK(v.blas_isa == c.blas_isa);
    CHECK(v.cpu_isa == c.cpu.isa);
    CHECK(v.recommended == c.recommended);
    CHECK(v.older == c.older);
    CHECK(v.peak_fraction == Approx(c.fraction));
    if (c.older) {
      // One sentence: the core, the consequence, the value to set and the three places.
      CHECK(v.message.find(std::string("OpenBLAS runs its ") + c.core + " kernels") != std::string::npos);
      CHECK(v.message.find(std::string("OPENBLAS_CORETYPE=") + c.recommended) != std::string::npos);
      CHECK(v.message.find(std::string("setenv OPENBLAS_CORETYPE ") + c.recommended) != std::string::npos);
      CHECK(v.message.find(std::string("export OPENBLAS_CORETYPE=") + c.recommended) != std::string::npos);
      CHECK(v.message.find(std::string("mpirun -x OPENBLAS_CORETYPE=") + c.recommended) != std::string::npos);
      CHECK(v.message.back() == '.');
      CHECK(v.message.find('\n') == std::string::npos);
      if (c.fraction < 1) CHECK(v.message.find("of the CPU's peak") != std::string::npos);
    } else {
      CHECK(v.message.empty());
    }
  }
  // A core forced by OPENBLAS_CORETYPE is named as the cause (the argument, not the
  // environment: nothing here sets it).
  CHECK(blas_check(zen3, "Prescott", "Prescott").message.find("OPENBLAS_CORETYPE=Zen (it is Prescott now)") !=
        std::string::npos);
  CHECK(blas_check(zen3, "Zen", "Zen").message.empty());
  // The measurement is quoted only for the case it measured.
  CHECK(blas_check(xeon_emr, "Prescott").message.find("4.2x") != std::string::npos);
  CHECK(blas_check(zen3, "Prescott").message.find("4.2x") == std::string::npos);
}

TEST_CASE("openblas_core_isa knows every x86 core of OpenBLAS 0.3.21's dynamic table", "[cpu]") {
  // driver/others/dynamic.c, corename[] (x86-64), in its order.
  const char* table[] = {"Katmai",    "Coppermine", "Northwood",   "Prescott", "Banias",    "Atom",
                         "Core2",     "Penryn",     "Dunnington",  "Nehalem",  "Athlon",    "Opteron",
                         "Opteron_SSE3", "Barcelona", "Nano",      "Sandybridge", "Bobcat", "Bulldozer",
                         "Piledriver", "Haswell",   "Steamroller", "Excavator", "Zen",     "SkylakeX",
                         "Cooperlake"};
  Isa last = Isa::generic;
  for (const char* name : table) {
    INFO(name);
    bool known = false;
    const Isa isa = openblas_core_isa(name, &known);
    CHECK(known);
    if (std::string(name) == "Sandybridge") CHECK(isa == Isa::avx);
    if (std::string(name) == "Haswell" || std::string(name) == "Zen") CHECK(isa == Isa::avx2);
    last = isa;
  }
  CHECK(last == Isa::avx512);
  bool known = true;
  openblas_core_isa("Unknown", &known);  // what dynamic.c reports for a CPU it cannot place
  CHECK_FALSE(known);
}

TEST_CASE("blas_check() is the table's verdict for this CPU and this process's OpenBLAS core", "[cpu]") {
  const BlasVerdict live = blas_check();
  const std::string core = openblas_get_corename();
  CHECK(live.core == core);
  const char* env = std::getenv("OPENBLAS_CORETYPE");  // read, never set
  const BlasVerdict table = blas_check(cpu_info(), core, env != nullptr ? env : "");
  CHECK(live.older == table.older);
  CHECK(live.recommended == table.recommended);
  CHECK(live.message == table.message);
  // On x86 with a dynamic-arch OpenBLAS the core is one natgrad knows.
  if (cpu_info().isa >= Isa::sse3) CHECK(live.core_known);
}

TEST_CASE("the peak: flops per cycle per family, the FMA loop and the DGEMM timer run, the DGEMM is right", "[cpu]") {
  CHECK(dp_flops_per_cycle(Isa::sse3) == 4);
  CHECK(dp_flops_per_cycle(Isa::avx) == 8);
  CHECK(dp_flops_per_cycle(Isa::avx2) == 16);
  CHECK(dp_flops_per_cycle(Isa::avx512) == 32);
  const CpuPeak p = cpu_peak();
  CHECK(p.flops_per_cycle >= 4);
  if (p.ghz > 0) CHECK(p.nominal_gflops == Approx(p.ghz * p.flops_per_cycle));
  // The FMA loop measures something positive where it runs at all (no timing bound: the
  // machine may be shared); it is zero only below AVX2.
  const double m = measured_fma_gflops(1, 0.01);
  if (cpu_info().isa >= Isa::avx2) CHECK(m > 0);
  else CHECK(m == 0);
  const DgemmRate r = time_dgemm(96, 1, 1);
  CHECK(r.dgemm_gflops > 0);
  CHECK(r.max_error < 1e-13);
  CHECK((r.fma_gflops > 0) == (cpu_info().isa >= Isa::avx2));
}
