#include "natgrad/io/output.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "natgrad/core/error.hpp"

namespace natgrad {

void write_atomically(const std::filesystem::path& path,
                      const std::function<void(std::ostream&)>& write) {
  namespace fs = std::filesystem;
  const fs::path tmp = path.string() + ".tmp." + std::to_string(::getpid());
  try {
    {
      std::ofstream os(tmp, std::ios::binary | std::ios::trunc);
      if (!os) throw Error(path.string() + ": cannot write: " + std::strerror(errno));
      write(os);
      os.flush();
      if (!os) throw Error(path.string() + ": write failed: " + std::strerror(errno));
    }
    // On disk before the rename, so that a crash of the node cannot leave an empty file
    // under the final name (checkpoints rely on this).
    if (const int fd = ::open(tmp.c_str(), O_RDONLY); fd >= 0) {
      ::fsync(fd);
      ::close(fd);
    }
    std::error_code ec;
    fs::rename(tmp, path, ec);
    if (ec) throw Error(path.string() + ": cannot rename temporary file: " + ec.message());
  } catch (...) {
    std::error_code ec;
    fs::remove(tmp, ec);
    throw;
  }
}

void write_collectively(const std::filesystem::path& path, const std::string& header,
                        const std::string& local_text, const Communicator& comm) {
  namespace fs = std::filesystem;
  std::string tmp = path.string() + ".tmp." + std::to_string(::getpid());
  comm.broadcast(tmp);  // rank 0's name
  std::string err;
  if (comm.is_root()) {
    std::ofstream os(tmp, std::ios::binary | std::ios::trunc);
    os << header;
    if (!os) err = path.string() + ": cannot write: " + std::strerror(errno);
  }
  comm.check(err.empty(), err);
  const auto offset = static_cast<std::int64_t>(header.size()) +
                      comm.exscan_sum(static_cast<std::int64_t>(local_text.size()));
  if (!local_text.empty()) {
    const int fd = ::open(tmp.c_str(), O_WRONLY);
    std::size_t done = 0;
    while (fd >= 0 && done < local_text.size()) {
      const ssize_t w = ::pwrite(fd, local_text.data() + done, local_text.size() - done,
                                 static_cast<off_t>(offset) + static_cast<off_t>(done));
      if (w <= 0) break;
      done += static_cast<std::size_t>(w);
    }
    if (fd < 0 || done < local_text.size()) err = path.string() + ": write failed: " + std::strerror(errno);
    if (fd >= 0 && ::close(fd) != 0 && err.empty()) err = path.string() + ": close failed: " + std::strerror(errno);
  }
  try {
    comm.check(err.empty(), err);
  } catch (...) {
    if (comm.is_root()) fs::remove(tmp);
    throw;
  }
  if (comm.is_root()) {
    std::error_code ec;
    fs::rename(tmp, path, ec);
    if (ec) err = path.string() + ": cannot rename temporary file: " + ec.message();
  }
  comm.check(err.empty(), err);
}

}  // namespace natgrad
