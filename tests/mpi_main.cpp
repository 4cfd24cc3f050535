// Catch2 main for the MPI test binary: every rank runs every test case; only rank 0
// prints the report, and the exit code is non-zero on every rank if any rank failed.
// Listing the cases (--list-test-names-only, as cmake/NatgradCatchMpiTests.cmake does at
// build time to register each case with ctest) needs no MPI and no mpiexec.
#define CATCH_CONFIG_RUNNER
#include <mpi.h>

#include <catch2/catch.hpp>
#include <cstdio>

#include "support/test_support.hpp"

int main(int argc, char** argv) {
  Catch::Session session;
  if (int rc = session.applyCommandLine(argc, argv); rc != 0) return rc;
  const Catch::ConfigData& cfg = session.configData();
  if (cfg.listTests || cfg.listTestNamesOnly || cfg.listTags || cfg.listReporters || cfg.showHelp)
    return session.run();

  MPI_Init(&argc, &argv);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const natgrad::Communicator world = natgrad::Communicator::world();
  natgrad::test::make_run_dir(world);
  // Only rank 0 writes the report; other ranks say how many checks failed, and their
  // failures count through the reduction below.
  if (rank != 0) session.configData().outputFilename = "/dev/null";
  int failed = session.run();
  if (rank != 0 && failed)
    std::fprintf(stderr, "natgrad tests: rank %d of %d: %d test case(s) failed\n", rank, size, failed);
  int any_failed = 0;
  MPI_Allreduce(&failed, &any_failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (!any_failed) natgrad::test::remove_run_dir(world);  // kept for inspection otherwise
  MPI_Finalize();
  return any_failed ? 1 : 0;
}
