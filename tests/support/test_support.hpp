#pragma once
// Helpers shared by the test files of the MPI test binary (natgrad_mpi_tests): this
// run's scratch folder, files written by rank 0, exact number text, the message of a
// collective call that throws, rows gathered on root, generated shards.
#include <functional>
#include <string>

#include "natgrad/core/communicator.hpp"
#include "natgrad/core/shard.hpp"
#include "natgrad/io/generator.hpp"
#include "natgrad/io/reader.hpp"

namespace natgrad::test {

/// Collective; mpi_main.cpp calls it once after MPI_Init. Makes this run's own scratch
/// folder, NATGRAD_TEST_TMP/run-<pid of rank 0>, so the binary may run at several rank
/// counts at once (ctest -j) without two runs sharing a file.
void make_run_dir(const Communicator& comm);
/// Collective: rank 0 removes the run's folder (mpi_main.cpp, when every case passed).
void remove_run_dir(const Communicator& comm);

/// \p name inside this run's scratch folder.
std::string tmp_path(const std::string& name);

/// Collective. Rank 0 writes \p content to tmp_path(name) (binary, truncated); every rank
/// waits for it. Returns the path.
std::string write_file(const Communicator& comm, const std::string& name, const std::string& content);

/// The shortest text that reads back as exactly \p v (std::to_chars).
std::string num(double v);

/// Collective when \p call is. The message of the natgrad::Error that \p call throws
/// ("" if none).
std::string error_of(const std::function<void()>& call);

/// Collective. error_of(load_shard(opts, comm)).
std::string load_error(const ReadOptions& opts, const Communicator& comm);

/// Collective. Every row of the dataset (y, x, weight, offset) as bytes, in row order, on
/// root ("" elsewhere); a sparse shard gives the bytes of its densified rows.
std::string global_rows(const Shard& s, const Communicator& comm);

/// This rank's rows of the generated dataset \p g (partition()), with an intercept column
/// when \p intercept.
Shard my_rows(const GeneratorSpec& g, const Communicator& comm, bool intercept = true);

}  // namespace natgrad::test
