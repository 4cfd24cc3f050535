#pragma once
/// \file reader.hpp
/// Loading this rank's rows. Collective: each rank reads only its part, and any
/// rank's failure (bad line, missing file) stops every rank with one message.
#include <string>

#include "natgrad/communicator.hpp"
#include "natgrad/shard.hpp"

namespace natgrad {

struct ReadOptions {
  std::string path;           ///< file, or a generator spec "gen:..."
  int label_column = 0;       ///< CSV: 0-based column of the label
  char delimiter = ',';
  enum class Header { auto_detect, yes, no } header = Header::auto_detect;
  bool intercept = false;     ///< prepend a column of ones
  int threads = 1;            ///< OpenMP threads for parsing / generating
};

/// Collective. Reads (or generates) this rank's rows: generator specs and CSV files.
Shard load_shard(const ReadOptions& opts, const Communicator& comm);

/// Collective. CSV: the file's bytes after the header are split evenly across ranks;
/// a line belongs to the rank whose byte range holds its first byte. Each rank reads
/// only its range (plus the end of its last line). Errors name file and line.
Shard read_csv(const ReadOptions& opts, const Communicator& comm);

}  // namespace natgrad
