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
/// threads per rank: work and root of MemoryNeed (shard 0).
MemoryNeed fisher_memory_need(std::int64_t p, int threads, std::int64_t block_rows, bool inference);

/// Local. What is known before reading: for a generator spec, the rank's rows and the
/// Fisher of its columns; for a file, its size divided by the rank count as the shard
/// (the Fisher is checked after reading, when the column count is known).
MemoryNeed read_memory_need(const FitJob& job, int rank, int ranks);

/// Collective. Compares every rank's \p need with memory_available(): per process
/// (RLIMIT_AS), and per node for the sum over the ranks on that node (cgroup,
/// MemAvailable). Throws CollectiveError on every rank with one message giving both
/// numbers and the remedies when any rank does not fit. \p what names the stage.
void admit_memory(const MemoryNeed& need, const char* what, const Communicator& comm);

}  // namespace natgrad
