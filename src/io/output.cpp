#include "natgrad/io/output.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <optional>
#include <sstream>

#include "natgrad/core/error.hpp"

namespace natgrad {

AtomicFile::AtomicFile(std::filesystem::path path)
    : path_(std::move(path)), tmp_(path_.string() + ".tmp." + std::to_string(::getpid())) {}

AtomicFile::~AtomicFile() {
  if (done_) return;
  std::error_code ec;
  std::filesystem::remove(tmp_, ec);
}

void AtomicFile::sync() {
  const int fd = ::open(tmp_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(path_.string() + ": cannot write: " + std::strerror(errno));
  // EINVAL, ENOTSUP, ENOSYS: a file system without fsync (nothing to wait for).
  const bool ok = ::fsync(fd) == 0 || errno == EINVAL || errno == ENOTSUP || errno == ENOSYS;
  const int err = errno;
  ::close(fd);
  if (!ok) throw Error(path_.string() + ": write failed: " + std::strerror(err));
}

void AtomicFile::commit() {
  // On disk before the rename, so that a crash of the node cannot leave an empty file
  // under the final name (checkpoints rely on this).
  sync();
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

// ---------------------------------------------------------------------------
// OutputSet

namespace {

/// Writes \p fill's text to \p file's temporary and syncs it. Throws natgrad::Error.
void write_temporary(AtomicFile& file, const std::function<void(std::ostream&)>& fill) {
  {
    std::ofstream os(file.temp_path(), std::ios::binary | std::ios::trunc);
    if (!os) throw Error(file.path().string() + ": cannot write: " + std::strerror(errno));
    fill(os);
    os.flush();
    if (!os) throw Error(file.path().string() + ": write failed: " + std::strerror(errno));
    os.close();
    if (!os) throw Error(file.path().string() + ": write failed: " + std::strerror(errno));
  }
  file.sync();
}

/// fsync of a directory, so that its renames survive a crash of the node (best effort).
void sync_directory(const std::filesystem::path& dir) {
  if (const int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

OutputSet::OutputSet(std::filesystem::path dir) : dir_(std::move(dir)) {}

OutputSet::~OutputSet() = default;  // each uncommitted AtomicFile removes its temporary

void OutputSet::write(const std::string& name, const std::function<void(std::ostream&)>& fill) {
  auto file = std::make_unique<AtomicFile>(dir_ / name);
  try {
    write_temporary(*file, fill);  // on failure `file` removes the temporary
  } catch (const Error& e) {
    throw Error(std::string(e.what()) + " (the previous outputs in " + dir_.string() + " are kept)");
  }
  files_.push_back(std::move(file));
}

void OutputSet::commit() {
  const std::string pid = std::to_string(::getpid());
  const std::size_t n = files_.size();
  std::vector<std::filesystem::path> backup(n);  // empty: no previous file
  std::error_code ec;
  auto drop_backups = [&] {
    for (const auto& b : backup)
      if (!b.empty()) std::filesystem::remove(b, ec);
  };
  // 1. Each previous file kept under a second name (a hard link: no data copied).
  for (std::size_t k = 0; k < n; ++k) {
    const auto& final_path = files_[k]->path();
    struct stat st {};
    if (::lstat(final_path.c_str(), &st) != 0) continue;  // no previous file
    const std::filesystem::path b = final_path.string() + ".prev." + pid;
    ::unlink(b.c_str());
    if (::link(final_path.c_str(), b.c_str()) == 0) {
      backup[k] = b;
    } else if (errno == ENOSPC || errno == EDQUOT || errno == EACCES || errno == EROFS || errno == EIO) {
      const int err = errno;
      drop_backups();
      throw Error(final_path.string() + ": cannot replace the outputs: " + std::strerror(err) +
                  " (the previous outputs in " + dir_.string() + " are kept)");
    }
    // Else (a file system without hard links): that file cannot be put back on failure.
  }
  // 2. The renames, the commit mark last; on failure the renamed ones are put back.
  for (std::size_t k = 0; k < n; ++k) {
    try {
      files_[k]->commit();
    } catch (const Error& e) {
      for (std::size_t j = k; j-- > 0;) {
        const auto& final_path = files_[j]->path();
        if (!backup[j].empty()) {
          std::filesystem::rename(backup[j], final_path, ec);
          if (!ec) backup[j].clear();
        } else {
          std::filesystem::remove(final_path, ec);
        }
      }
      drop_backups();
      throw Error(std::string(e.what()) + " (the previous outputs in " + dir_.string() + " are kept)");
    }
  }
  drop_backups();
  sync_directory(dir_);
}

// ---------------------------------------------------------------------------
// The output directory: probe and lock

void probe_output_directory(const std::filesystem::path& dir, const std::string& what) {
  const std::string where = what + " " + dir.string() + ": ";
  std::error_code ec;
  const auto st = std::filesystem::status(dir, ec);
  if (std::filesystem::exists(st) && !std::filesystem::is_directory(st))
    throw Error(where + "exists and is not a directory");
  if (!std::filesystem::exists(st)) {
    std::filesystem::create_directories(dir, ec);
    if (ec) throw Error(where + "cannot create the output directory: " + ec.message());
  }
  const std::filesystem::path probe = dir / (".natgrad-probe." + std::to_string(::getpid()));
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    throw Error(where + "cannot write in the output directory: " + std::strerror(errno) +
                " (choose a writable --out)");
  const bool ok = ::write(fd, "natgrad\n", 8) == 8;
  const int err = errno;
  ::close(fd);
  ::unlink(probe.c_str());
  if (!ok)
    throw Error(where + "cannot write in the output directory: " + std::strerror(err) +
                " (choose a writable --out)");
}

namespace {

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "unknown";
  return buf;
}

std::string first_line_of(const std::string& file) {
  std::ifstream in(file);
  std::string s;
  std::getline(in, s);
  return s;
}

/// This boot's id (Linux), so that a pid recorded before a reboot is not taken for a live one.
std::string boot_id() { return first_line_of("/proc/sys/kernel/random/boot_id"); }

/// The start time of process \p pid since boot, in clock ticks (field 22 of
/// /proc/PID/stat), or "" when unknown.
std::string process_start(long pid) {
  const std::string stat = first_line_of("/proc/" + std::to_string(pid) + "/stat");
  const std::size_t close = stat.rfind(')');  // the command name may hold blanks
  if (close == std::string::npos) return {};
  std::istringstream in(stat.substr(close + 1));
  std::string field;
  for (int k = 3; k <= 22 && in >> field; ++k)
    if (k == 22) return field;
  return {};
}

std::string field_of(const std::string& content, const std::string& key) {
  std::istringstream in(content);
  for (std::string line; std::getline(in, line);)
    if (line.rfind(key + ": ", 0) == 0) return line.substr(key.size() + 2);
  return {};
}

std::string read_all(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

/// "JOB RESTART" of a Slurm job (SLURM_JOB_ID, SLURM_RESTART_COUNT), or "".
std::string slurm_run() {
  const char* job = std::getenv("SLURM_JOB_ID");
  if (!job || !*job) return {};
  const char* restart = std::getenv("SLURM_RESTART_COUNT");
  return std::string(job) + " " + (restart && *restart ? restart : "0");
}

/// True if the lock \p content's holder surely no longer runs: an earlier run of this
/// (requeued) Slurm job, on any host; or on this host and boot, a pid that is gone or
/// now another process.
bool holder_gone(const std::string& content) {
  const std::string mine = slurm_run(), theirs = field_of(content, "slurm_job");
  if (!mine.empty() && !theirs.empty()) {
    std::istringstream a(mine), b(theirs);
    std::string job_a, job_b;
    long restart_a = -1, restart_b = -1;
    a >> job_a >> restart_a;
    b >> job_b >> restart_b;
    if (job_a == job_b && restart_b >= 0 && restart_b < restart_a) return true;
  }
  if (field_of(content, "host") != host_name()) return false;  // cannot tell: assume alive
  const std::string boot = field_of(content, "boot_id");
  if (!boot.empty() && !boot_id().empty() && boot != boot_id()) return true;
  long pid = 0;
  try {
    pid = std::stol(field_of(content, "pid"));
  } catch (const std::exception&) {
    return false;
  }
  if (pid <= 0) return false;
  if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) return true;
  const std::string start = field_of(content, "process_start");
  const std::string now = process_start(pid);
  return !start.empty() && !now.empty() && start != now;
}

}  // namespace

OutputLock::OutputLock(std::filesystem::path dir, const std::string& command) : path_(dir / kFileName) {
  const long pid = static_cast<long>(::getpid());
  char started[32] = "unknown";
  const std::time_t now = std::time(nullptr);
  std::tm tm {};
  if (::gmtime_r(&now, &tm)) std::strftime(started, sizeof started, "%Y-%m-%dT%H:%M:%SZ", &tm);
  std::string cmd = command;
  for (char& c : cmd)
    if (c == '\n' || c == '\r') c = ' ';
  content_ = "natgrad output lock\nhost: " + host_name() + "\npid: " + std::to_string(pid) + "\nstarted: " + started +
             "\nboot_id: " + boot_id() + "\nprocess_start: " + process_start(pid) +
             (slurm_run().empty() ? std::string() : "\nslurm_job: " + slurm_run()) + "\ncommand: " + cmd + "\n";
  const std::string where = "--out " + dir.string() + ": ";
  for (int attempt = 0;; ++attempt) {
    const int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd >= 0) {
      const bool ok = ::write(fd, content_.data(), content_.size()) == static_cast<ssize_t>(content_.size());
      const int err = errno;
      ::close(fd);
      if (ok) return;
      ::unlink(path_.c_str());
      throw Error(where + "cannot write the lock file " + path_.string() + ": " + std::strerror(err));
    }
    if (errno != EEXIST)
      throw Error(where + "cannot create the lock file " + path_.string() + ": " + std::strerror(errno));
    const std::string held = read_all(path_);
    if (attempt < 5 && held.empty()) {  // its creator is writing it right now
      ::usleep(50000);
      continue;
    }
    if (attempt < 5 && holder_gone(held)) {
      // Stale: its holder ended without removing it (killed). Removed only if unchanged.
      if (read_all(path_) == held) ::unlink(path_.c_str());
      continue;
    }
    std::string shown = field_of(held, "command");
    if (shown.size() > 160) shown = shown.substr(0, 157) + "...";
    const std::string holder = field_of(held, "pid").empty()
                                   ? std::string("holder not recorded")
                                   : "pid " + field_of(held, "pid") + " on host " + field_of(held, "host") +
                                         ", started " + field_of(held, "started") +
                                         (shown.empty() ? std::string() : ": " + shown);
    throw Error(where + "in use by another natgrad fit (" + holder +
                "); wait for it to end or choose another --out (if no such fit runs, remove " + path_.string() + ")");
  }
}

OutputLock::~OutputLock() {
  if (read_all(path_) == content_) ::unlink(path_.c_str());
}

// ---------------------------------------------------------------------------

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
