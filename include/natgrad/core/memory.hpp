#pragma once
/// \file memory.hpp
/// This process's memory use, for the log and the benchmarks. Local, no MPI.
#include <cstdint>

namespace natgrad {

/// Peak resident set size of this process so far, in bytes (getrusage ru_maxrss);
/// 0 where the system does not report it.
std::int64_t peak_rss_bytes();

/// Current resident set size in bytes (/proc/self/statm on Linux; 0 elsewhere).
std::int64_t current_rss_bytes();

}  // namespace natgrad
