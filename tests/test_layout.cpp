// The run's header line (describe_layout) and natgrad selftest name the CPU, its ISA
// family, natgrad's kernel family and the kernels OpenBLAS runs (issue 15); at every rank
// count. Nothing here sets OPENBLAS_CORETYPE: the verdict is this machine's.
#include <cblas.h>

#include <catch2/catch.hpp>
#include <sstream>
#include <string>

#include "natgrad/app/jobs.hpp"
#include "natgrad/app/selftest.hpp"
#include "natgrad/core/cpu.hpp"

using namespace natgrad;

namespace {
bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }
}  // namespace

TEST_CASE("the header line names the BLAS core, the CPU and both ISA families", "[layout]") {
  const Communicator comm = Communicator::world();
  std::vector<std::string> warnings{"stale"};
  const std::string line = describe_layout(comm, 1, &warnings);
  const std::string again = describe_layout(comm, 1);  // collective: every rank calls it
  if (!comm.is_root()) {
    CHECK(line.empty());
    return;
  }
  INFO(line);
  const std::string core = openblas_get_corename();  // the core this process's OpenBLAS runs
  const BlasVerdict v = blas_check();
  CHECK(has(line, "core " + core + " ("));
  CHECK(has(line, "CPU " + cpu_info().model_name + " (" + to_string(cpu_info().isa) + ")"));
  CHECK(has(line, std::string("natgrad kernels ") + to_string(detail::kernel_isa())));
  CHECK(has(line, std::to_string(comm.size()) + " rank(s)"));
  // The warning: exactly when OpenBLAS runs an older family than this CPU, and then the
  // one sentence of blas_check (one machine here: no host list).
  CHECK(has(line, "older than the CPU's") == v.older);
  if (v.older) {
    REQUIRE(warnings.size() == 1);
    CHECK(has(warnings[0], v.message));
  } else {
    CHECK(warnings.empty());
  }
  // Without the warnings pointer the line is the same.
  CHECK(again == line);
}

TEST_CASE("selftest reports the CPU, the BLAS core and one DGEMM against the peak", "[layout]") {
  const Communicator comm = Communicator::world();
  std::ostringstream out;
  const int failed = run_selftest(comm, 1, out);
  CHECK(failed == 0);
  if (!comm.is_root()) return;
  const std::string text = out.str();
  INFO(text);
  const std::string core = openblas_get_corename();
  const BlasVerdict v = blas_check();
  CHECK(has(text, (v.older ? "WARN  " : "PASS  ") + std::string("OpenBLAS core fits the CPU")));
  CHECK(has(text, "OpenBLAS core " + core + " ("));
  CHECK(has(text, cpu_info().model_name + " (" + cpu_info().vendor));
  CHECK(has(text, "PASS  DGEMM n=1024 rate vs peak"));
  CHECK(has(text, " GFLOP/s = "));
  if (cpu_info().isa >= Isa::avx2) CHECK(has(text, "% of measured FMA peak"));
  CHECK(has(text, "DP flops/cycle assumed for " + std::string(to_string(cpu_info().isa))));
  CHECK(has(text, " failed"));
}
