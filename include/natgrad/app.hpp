#pragma once
/// \file app.hpp
/// The jobs behind the CLI's subcommands, as library calls taking plain option
/// structs and a communicator, so that the executable only parses options.
#include <filesystem>
#include <ostream>
#include <string>

#include "natgrad/communicator.hpp"
#include "natgrad/reader.hpp"
#include "natgrad/solver.hpp"

namespace natgrad {

struct FitJob {
  ReadOptions read;
  std::string family = "binomial";
  std::string link;
  FitOptions fit;
  std::filesystem::path out_dir;  ///< empty: write nothing
  std::string options_json = "{}";
  bool quiet = false;             ///< no per-iteration progress lines
};

/// Collective. Loads the data, fits, prints progress and a summary on root, and writes
/// out_dir/model.json and out_dir/history.csv. Returns the fit.
FitResult run_fit(const FitJob& job, const Communicator& comm, std::ostream& out);

struct GenerateJob {
  std::string spec;               ///< "gen:..."
  std::filesystem::path out;      ///< .csv or .npy
  std::string format;             ///< "", "csv" or "npy" (empty: by extension)
  std::filesystem::path truth;    ///< optional JSON file with the true coefficients
  int threads = 1;
};

/// Collective (root writes). Writes the generated dataset; label in column 0.
void run_generate(const GenerateJob& job, const Communicator& comm, std::ostream& out);

/// Root-only text: ranks, nodes, threads per rank, BLAS and hosts (collective).
std::string describe_layout(const Communicator& comm, int threads);

}  // namespace natgrad
