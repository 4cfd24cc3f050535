#include "natgrad/io/output.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>

#include "natgrad/core/error.hpp"

namespace natgrad {

AtomicFile::AtomicFile(std::filesystem::path path)
    : path_(std::move(path)), tmp_(path_.string() + ".tmp." + std::to_string(::getpid())) {}

AtomicFile::~AtomicFile() {
  if (done_) return;
  std::error_code ec;
  std::filesystem::remove(tmp_, ec);
}

void AtomicFile::commit() {
  // On disk before the rename, so that a crash of the node cannot leave an empty file
  // under the final name (checkpoints rely on this).
  if (const int fd = ::open(tmp_.c_str(), O_RDONLY); fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
  std::error_code ec;
  std::filesystem::rename(tmp_, path_, ec);
  if (ec) throw Error(path_.string() + ": cannot rename temporary file: " + ec.message());
  done_ = true;
}

void write_atomically(const std::filesystem::path& path,
                      const std::function<void(std::ostream&)>& write) {
  AtomicFile file(path);
  {
    std::ofstream os(file.temp_path(), std::ios::binary | std::ios::trunc);
    if (!os) throw Error(path.string() + ": cannot write: " + std::strerror(errno));
    write(os);
    os.flush();
    if (!os) throw Error(path.string() + ": write failed: " + std::strerror(errno));
  }
  file.commit();
}

void write_collectively(const std::filesystem::path& path, const std::string& header,
                        const std::string& local_text, const Communicator& comm) {
  std::optional<AtomicFile> file;  // root's; the other ranks write into its temporary
  std::string tmp;
  if (comm.is_root()) tmp = file.emplace(path).temp_path().string();
  comm.broadcast(tmp);
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
  comm.check(err.empty(), err);  // on failure the root's AtomicFile removes the temporary
  if (comm.is_root()) {
    try {
      file->commit();
    } catch (const Error& e) {
      err = e.what();
    }
  }
  comm.check(err.empty(), err);
}

}  // namespace natgrad
