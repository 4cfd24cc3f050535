#include "natgrad/core/memory.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>

namespace natgrad {

std::int64_t peak_rss_bytes() {
  rusage u{};
  if (getrusage(RUSAGE_SELF, &u) != 0) return 0;
#if defined(__APPLE__)
  return static_cast<std::int64_t>(u.ru_maxrss);  // bytes on macOS
#else
  return static_cast<std::int64_t>(u.ru_maxrss) * 1024;  // kilobytes on Linux
#endif
}

std::int64_t current_rss_bytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  long long size = 0, resident = 0;
  const int got = std::fscanf(f, "%lld %lld", &size, &resident);
  std::fclose(f);
  if (got != 2) return 0;
  return static_cast<std::int64_t>(resident) * static_cast<std::int64_t>(sysconf(_SC_PAGESIZE));
}

}  // namespace natgrad
