#pragma once
/// \file output.hpp
/// Result files. Every file natgrad writes (model.json, history.csv, summary.txt,
/// predictions, checkpoints, generated data, plots) goes through AtomicFile: written under
/// a temporary name in the same directory, flushed to disk, and renamed over its final
/// name, so no half-written file remains and a reader sees the old file or the new one.
#include <filesystem>
#include <functional>
#include <ostream>
#include <string>

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

/// Collective. Writes a text file whose body is the concatenation of every rank's
/// \p local_text in rank order, after \p header: rank 0 creates a temporary file, each
/// rank writes its part at its offset (pwrite), and rank 0 renames it over \p path. An
/// I/O failure on any rank fails every rank (CollectiveError) and removes the temp file.
void write_collectively(const std::filesystem::path& path, const std::string& header,
                        const std::string& local_text, const Communicator& comm);

}  // namespace natgrad
