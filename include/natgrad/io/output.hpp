#pragma once
/// \file output.hpp
/// Result files. Local functions, called on the root rank. Every file is written to a
/// temporary name in the same directory and renamed, so no half-written file remains.
#include <filesystem>
#include <functional>
#include <ostream>
#include <string>

#include "natgrad/core/communicator.hpp"

namespace natgrad {

/// Writes \p path atomically: \p write fills a stream for "<path>.tmp.<pid>", which is
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
