#pragma once
/// \file selftest.hpp
/// Post-install checks a cluster user runs (`natgrad selftest`, under mpirun at any
/// rank count): gradient vs finite differences, Fisher symmetric and PSD, the
/// reduction on this communicator, the Cholesky solve residual, the BLAS threading, the
/// CPU and OpenBLAS's core (WARN, not FAIL, when the core is of an older family:
/// blas_check in cpu.hpp), one DGEMM against the CPU's measured and nominal peak (fails
/// only on a wrong result). Collective.
#include <ostream>

#include "natgrad/core/communicator.hpp"

namespace natgrad {

/// Returns the number of failed checks (0 = none failed; warnings do not count); root
/// prints one PASS/WARN/FAIL line per check.
int run_selftest(const Communicator& comm, int threads, std::ostream& out);

}  // namespace natgrad
