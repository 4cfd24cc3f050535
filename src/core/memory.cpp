#include "natgrad/core/memory.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <string>

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

namespace {

/// A number from a one-line file of /sys/fs/cgroup ("max" and absurd values: -1).
std::int64_t read_cgroup_number(const std::string& path) {
  std::ifstream in(path);
  std::string s;
  if (!(in >> s) || s == "max") return -1;
  try {
    const long long v = std::stoll(s);
    return v <= 0 || v >= (1LL << 60) ? -1 : static_cast<std::int64_t>(v);  // v1 "no limit" is ~2^63
  } catch (const std::exception&) {
    return -1;
  }
}

void take_less(MemoryAvailable& a, std::int64_t bytes, const std::string& source) {
  if (bytes < 0) return;
  if (a.shared < 0 || bytes < a.shared) {
    a.shared = bytes;
    a.shared_source = source;
  }
}

}  // namespace

MemoryAvailable memory_available() {
  MemoryAvailable a;
  {  // the kernel's estimate of what can be allocated without swapping
    std::ifstream in("/proc/meminfo");
    std::string key;
    long long kb = 0;
    std::string unit;
    while (in >> key >> kb) {
      std::getline(in, unit);
      if (key == "MemAvailable:") {
        take_less(a, static_cast<std::int64_t>(kb) * 1024, "MemAvailable in /proc/meminfo");
        break;
      }
    }
  }
  {  // memory cgroup: v2 ("0::/path"), walking up to the root; v1 ("N:memory:/path")
    std::ifstream in("/proc/self/cgroup");
    std::string line;
    while (std::getline(in, line)) {
      const auto c1 = line.find(':'), c2 = line.find(':', c1 + 1);
      if (c1 == std::string::npos || c2 == std::string::npos) continue;
      const std::string controllers = line.substr(c1 + 1, c2 - c1 - 1);
      std::string path = line.substr(c2 + 1);
      if (line.compare(0, c1, "0") == 0 && controllers.empty()) {
        for (;;) {
          const std::string dir = "/sys/fs/cgroup" + (path == "/" ? std::string() : path);
          const std::int64_t max = read_cgroup_number(dir + "/memory.max");
          const std::int64_t cur = read_cgroup_number(dir + "/memory.current");
          if (max > 0) take_less(a, std::max<std::int64_t>(0, max - std::max<std::int64_t>(cur, 0)),
                                 "cgroup " + path + " memory.max");
          if (path == "/" || path.empty()) break;
          const auto slash = path.rfind('/');
          path = slash == 0 || slash == std::string::npos ? "/" : path.substr(0, slash);
        }
      } else if (controllers == "memory") {
        const std::string dir = "/sys/fs/cgroup/memory" + (path == "/" ? std::string() : path);
        const std::int64_t lim = read_cgroup_number(dir + "/memory.limit_in_bytes");
        const std::int64_t use = read_cgroup_number(dir + "/memory.usage_in_bytes");
        if (lim > 0)
          take_less(a, std::max<std::int64_t>(0, lim - std::max<std::int64_t>(use, 0)),
                    "cgroup " + path + " memory.limit_in_bytes");
      }
    }
  }
  rlimit r{};
  if (getrlimit(RLIMIT_AS, &r) == 0 && r.rlim_cur != RLIM_INFINITY) {
    std::int64_t vm = 0;
    if (std::FILE* f = std::fopen("/proc/self/statm", "r")) {
      long long size = 0;
      if (std::fscanf(f, "%lld", &size) == 1) vm = static_cast<std::int64_t>(size) * sysconf(_SC_PAGESIZE);
      std::fclose(f);
    }
    a.process = std::max<std::int64_t>(0, static_cast<std::int64_t>(r.rlim_cur) - vm);
  }
  return a;
}

std::string out_of_memory_message(int rank, const std::string& what, double bytes) {
  char size[48];
  if (bytes >= 0.01 * 1073741824.0)
    std::snprintf(size, sizeof size, "%.2f GiB", bytes / 1073741824.0);
  else
    std::snprintf(size, sizeof size, "%.2f MiB", bytes / 1048576.0);
  return "out of memory" + (rank >= 0 ? " on rank " + std::to_string(rank) : std::string()) + ": " + what +
         " (about " + size + ") could not be allocated; see 'Memory admission' in docs/cluster.md";
}

}  // namespace natgrad
