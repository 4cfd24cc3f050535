#pragma once
/// \file admission.hpp
/// Memory admission of a fit: before the data are read and before the Fisher is
/// allocated, every rank compares what the fit will need with what it can get
/// (memory_available()), and all ranks stop together with one message when it does not
/// fit. See docs/cluster.md, "Memory admission".
#include <cstdint>

#include "natgrad/app/jobs.hpp"
#include "natgrad/core/communicator.hpp"

namespace natgrad {

/// What one rank of a fit is expected to hold at its peak, in bytes.
struct MemoryNeed {
  double shard = 0;   ///< this rank's rows (X, y, weights, offsets)
  double work = 0;    ///< every rank: p x p accumulators (one per thread, or one shared), row blocks, the reduced buffer
  double root = 0;    ///< rank 0 in addition: the summed Fisher, its factor and the inference matrices
  double total(bool root_rank) const { return shard + work + (root_rank ? root : 0); }
};

/// Local. The Fisher part of a fit with \p p parameters (columns x outputs) on \p threads
/// threads per rank: work and root of MemoryNeed (shard 0). \p matrix_free (--method ngd
/// with --solver cg, as resolved_solver() decides): the fit forms no p x p matrix, only
/// vectors of p doubles per rank; \p inference still needs the p x p Fisher and covariance.
MemoryNeed fisher_memory_need(std::int64_t p, int threads, std::int64_t block_rows, bool inference,
                              bool matrix_free = false);
/// Local. The same for \p job's fit of \p d columns (intercept included): its outputs,
/// threads, block rows, inference and solver (--solver auto resolved for the parameters).
MemoryNeed fisher_memory_need(const FitJob& job, std::int64_t d, bool sparse = false);

/// Local. What is known before reading: for a generator spec, the rank's rows and the
/// Fisher of its columns; for a CSV, NPY or HDF5 file, the Fisher of the columns its
/// header announces (peek_shape(), io/reader.hpp) and the shard (NPY, HDF5: the rank's rows
/// x columns x 8; CSV: the file's size / ranks); for LIBSVM, whose feature count only the
/// read finds, the file's size / ranks as the shard and no Fisher (checked after reading).
MemoryNeed read_memory_need(const FitJob& job, int rank, int ranks);

/// Collective. Compares every rank's \p need with memory_available(): per process
/// (RLIMIT_AS), and per node for the sum over the ranks on that node (cgroup,
/// MemAvailable). Throws CollectiveError on every rank with one message giving both
/// numbers and the remedies when any rank does not fit. \p what names the stage.
void admit_memory(const MemoryNeed& need, const char* what, const Communicator& comm);

}  // namespace natgrad
