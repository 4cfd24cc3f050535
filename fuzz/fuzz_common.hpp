#pragma once
// Shared by the fuzz targets: the input's first two bytes choose reader options and a
// number of virtual ranks, the rest is the file, held in an in-memory file (memfd) that
// the readers open by path, as they open any file.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>
#include <string>

#include "natgrad/io/reader.hpp"

namespace natgrad_fuzz {

/// Aborts with \p what: a property of the parsers failed (libFuzzer saves the input).
[[noreturn]] inline void fail(const std::string& what) {
  std::fprintf(stderr, "natgrad fuzz: %s\n", what.c_str());
  std::abort();
}

/// The file content in a memfd, named /proc/self/fd/N; closed on destruction.
class MemFile {
 public:
  MemFile(const std::uint8_t* data, std::size_t size)
      : fd_(memfd_create("natgrad-fuzz", MFD_CLOEXEC)) {
    if (fd_ < 0) fail("memfd_create failed");
    std::size_t done = 0;
    while (done < size) {
      const ssize_t n = ::write(fd_, data + done, size - done);
      if (n <= 0) fail("write to memfd failed");
      done += static_cast<std::size_t>(n);
    }
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  ~MemFile() { ::close(fd_); }
  MemFile(const MemFile&) = delete;
  MemFile& operator=(const MemFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  int fd_;
  std::string path_;
};

/// Options from the first two bytes. Returns the number of virtual ranks (2 to 5) to
/// compare with one rank.
inline int decode(std::uint8_t a, std::uint8_t b, natgrad::ReadOptions& o) {
  static const char delims[] = {',', ';', '\t', '|'};
  static const char* labels[] = {"0", "1", "none", "y"};
  o.delimiter = delims[a & 3];
  const int h = (a >> 2) & 3;
  o.header = h == 1   ? natgrad::ReadOptions::Header::yes
             : h == 2 ? natgrad::ReadOptions::Header::no
                      : natgrad::ReadOptions::Header::auto_detect;
  o.label_column = labels[(a >> 4) & 3];
  o.weight_column = (a & 0x40) ? "2" : "";
  o.columns = (a & 0x80) ? "3,1" : "";
  o.threads = 1 + (b >> 4) % 3;  // blocks of lines per chunk (serial in this build)
  return 2 + b % 4;
}

/// The fuzz input: reader options and a number of virtual ranks from its first two bytes
/// (decode), the rest as the file the readers open. Needs size >= 2.
struct Input {
  natgrad::ReadOptions opts;
  int parts;
  MemFile file;
  Input(const std::uint8_t* data, std::size_t size) : parts(decode(data[0], data[1], opts)), file(data + 2, size - 2) {
    opts.path = file.path();
  }
};

/// Same length and the same bits (NaN payloads and signed zeros included).
inline bool same_bits(const std::vector<double>& a, const std::vector<double>& b) {
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0);
}

}  // namespace natgrad_fuzz
