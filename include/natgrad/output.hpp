#pragma once
/// \file output.hpp
/// Result files. Local functions, called on the root rank. Every file is written to a
/// temporary name in the same directory and renamed, so no half-written file remains.
#include <filesystem>
#include <functional>
#include <ostream>
#include <string>

#include "natgrad/solver.hpp"

namespace natgrad {

/// Writes \p path atomically: \p write fills a stream for "<path>.tmp.<pid>", which is
/// then renamed over \p path. Throws natgrad::Error on I/O failure (temp removed).
void write_atomically(const std::filesystem::path& path,
                      const std::function<void(std::ostream&)>& write);

/// history.csv: iter,loss,grad_norm,step_norm,kl,damping,step_length,seconds
void write_history_csv(const std::filesystem::path& path, const FitResult& result);

/// Free-form description of the run stored in model.json under "options" and "run".
struct RunInfo {
  std::string options_json = "{}";  ///< serialized options (JSON object)
  std::string model_name;
  std::string data;
  int ranks = 1;
  int threads = 1;
};
/// model.json with coefficients, names, iterations, converged, reason, loss, n_obs,
/// n_params, options.
void write_model_json(const std::filesystem::path& path, const FitResult& result,
                      const std::vector<std::string>& names, const RunInfo& info);

}  // namespace natgrad
