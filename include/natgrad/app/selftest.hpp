#pragma once
/// \file selftest.hpp
/// Post-install checks a cluster user runs (`natgrad selftest`, under mpirun at any
/// rank count): gradient vs finite differences, Fisher symmetric and PSD, the
/// reduction on this communicator, the Cholesky solve residual. Collective.
#include <ostream>

#include "natgrad/core/communicator.hpp"

namespace natgrad {

/// Returns the number of failed checks (0 = all passed); root prints one line per check.
int run_selftest(const Communicator& comm, int threads, std::ostream& out);

}  // namespace natgrad
