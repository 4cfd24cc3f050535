#pragma once
/// \file memory.hpp
/// This process's memory use, for the log and the benchmarks. Local, no MPI.
#include <cstdint>
#include <string>

namespace natgrad {

/// Peak resident set size of this process so far, in bytes (getrusage ru_maxrss);
/// 0 where the system does not report it.
std::int64_t peak_rss_bytes();

/// Current resident set size in bytes (/proc/self/statm on Linux; 0 elsewhere).
std::int64_t current_rss_bytes();

/// Memory this process may still take, and what limits it.
struct MemoryAvailable {
  /// Shared by the processes of this node (or of this memory cgroup): the least of the
  /// cgroup's limit minus its usage (v2 memory.max - memory.current over this cgroup and
  /// its ancestors, or v1 memory.limit_in_bytes - memory.usage_in_bytes) and the
  /// kernel's MemAvailable. -1: nothing known.
  std::int64_t shared = -1;
  std::string shared_source;  ///< e.g. "MemAvailable" or "cgroup /slurm/job_42 memory.max"
  /// This process alone: RLIMIT_AS (ulimit -v) minus the current virtual size. -1: no limit.
  std::int64_t process = -1;
};

/// Local. Reads /proc/meminfo, /proc/self/cgroup with /sys/fs/cgroup, getrlimit and
/// /proc/self/statm (Linux; elsewhere every field is -1).
MemoryAvailable memory_available();

/// Local. "out of memory on rank R: WHAT (about X GiB) could not be allocated; see 'Memory
/// admission' in docs/cluster.md" (\p rank < 0: "out of memory: WHAT ..."), sizes below
/// 0.01 GiB in MiB: the message of every failed allocation that ends through the
/// collective error path (Communicator::check, CollectiveError).
std::string out_of_memory_message(int rank, const std::string& what, double bytes);

}  // namespace natgrad
