// Catch2 main for the MPI test binary: every rank runs every test case; only rank 0
// prints the report, and the exit code is non-zero on every rank if any rank failed.
#define CATCH_CONFIG_RUNNER
#include <mpi.h>

#include <catch2/catch.hpp>
#include <cstdio>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  Catch::Session session;
  if (int rc = session.applyCommandLine(argc, argv); rc != 0) {
    MPI_Finalize();
    return rc;
  }
  // Only rank 0 writes the report; other ranks say how many checks failed, and their
  // failures count through the reduction below.
  if (rank != 0) session.configData().outputFilename = "/dev/null";
  int failed = session.run();
  if (rank != 0 && failed)
    std::fprintf(stderr, "natgrad tests: rank %d of %d: %d test case(s) failed\n", rank, size, failed);
  int any_failed = 0;
  MPI_Allreduce(&failed, &any_failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  MPI_Finalize();
  return any_failed ? 1 : 0;
}
