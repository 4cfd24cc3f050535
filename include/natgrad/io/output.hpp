#pragma once
/// \file output.hpp
/// Result files. Every file natgrad writes (model.json, history.csv, summary.txt,
/// predictions, checkpoints, generated data, plots) goes through AtomicFile: written under
/// a temporary name in the same directory, flushed to disk, and renamed over its final
/// name, so no half-written file remains and a reader sees the old file or the new one.
#include <filesystem>
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "natgrad/core/communicator.hpp"

namespace natgrad {

/// The one temp-file-plus-rename of natgrad. Local. The temporary is
/// "<path>.tmp.<pid>" (same directory, so the rename is atomic); commit() syncs it to disk
/// and renames it over the final path; destroyed without commit() (an error, an
/// exception), the temporary is removed.
class AtomicFile {
 public:
  explicit AtomicFile(std::filesystem::path path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  const std::filesystem::path& path() const { return path_; }
  /// Where to write until commit().
  const std::filesystem::path& temp_path() const { return tmp_; }
  /// fsync of the temporary: a full disk that the writes did not report (delayed
  /// allocation) fails here. Throws natgrad::Error naming path().
  void sync();
  /// fsync + rename over path(). Throws natgrad::Error naming path() (temporary removed).
  void commit();

 private:
  std::filesystem::path path_, tmp_;
  bool done_ = false;
};

/// Writes \p path atomically (AtomicFile): \p write fills a stream for "<path>.tmp.<pid>", which is
/// then renamed over \p path. Throws natgrad::Error on I/O failure (temp removed).
void write_atomically(const std::filesystem::path& path,
                      const std::function<void(std::ostream&)>& write);

/// Local (root). A set of files in one directory replaced whole or not at all (a fit's
/// history.csv, summary.txt and model.json). write() puts each file under its temporary
/// name (AtomicFile: "<name>.tmp.<pid>", fsync'ed), so a full disk or any other error
/// fails while the previous files are untouched. commit() then renames the temporaries
/// over their final names in the order they were written, the last one being the set's
/// commit mark; if a rename fails, the files already renamed are put back (each previous
/// file is kept as a hard link "<name>.prev.<pid>" until the set is in place). Destroyed
/// without commit() (an error, an exception), every temporary is removed.
class OutputSet {
 public:
  explicit OutputSet(std::filesystem::path dir);
  ~OutputSet();
  OutputSet(const OutputSet&) = delete;
  OutputSet& operator=(const OutputSet&) = delete;

  /// Writes dir/\p name under its temporary name. Throws natgrad::Error naming the file.
  void write(const std::string& name, const std::function<void(std::ostream&)>& fill);
  /// Renames every temporary over its final name (see above). Throws natgrad::Error, the
  /// directory then holding the previous files and no temporary.
  void commit();

 private:
  std::filesystem::path dir_;
  std::vector<std::unique_ptr<AtomicFile>> files_;
};

/// Local (root). Creates \p dir (and its parents) if needed and checks that files can be
/// created and written in it, by writing and removing a probe file. Throws natgrad::Error
/// naming \p what (e.g. "--out") and the directory.
void probe_output_directory(const std::filesystem::path& dir, const std::string& what);

/// Local (root). The exclusive claim of one process on an output directory: the file
/// "<dir>/.natgrad.lock", created with O_CREAT|O_EXCL and holding the host, the pid, the
/// start time and \p command of the holder (and its Slurm job and restart count). A lock
/// whose holder is gone (same host, and that pid no longer runs or is another process
/// since; or an earlier run of this requeued Slurm job) is stale and taken over; a live
/// holder, or one on another host, makes the constructor throw natgrad::Error naming it.
/// The destructor removes the file if it is still this lock's.
class OutputLock {
 public:
  static constexpr const char* kFileName = ".natgrad.lock";
  OutputLock(std::filesystem::path dir, const std::string& command);
  ~OutputLock();
  OutputLock(const OutputLock&) = delete;
  OutputLock& operator=(const OutputLock&) = delete;

  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  std::string content_;
};

/// Collective. Writes a text file whose body is the concatenation of every rank's
/// \p local_text in rank order, after \p header: rank 0 creates a temporary file, each
/// rank writes its part at its offset (pwrite), and rank 0 renames it over \p path. An
/// I/O failure on any rank fails every rank (CollectiveError) and removes the temp file.
void write_collectively(const std::filesystem::path& path, const std::string& header,
                        const std::string& local_text, const Communicator& comm);

}  // namespace natgrad
