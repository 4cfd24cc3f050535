#pragma once
/// \file checkpoint.hpp
/// Checkpoint files: the FitState of a fit (solver.hpp) as JSON, with a fingerprint of
/// the data and of the options that change the result, so that a resume refuses a
/// checkpoint of another fit. fit() itself does no file I/O; the fit job (app) calls these.
///
/// File format (version 2), one JSON object:
///   natgrad_checkpoint   1
///   iteration            k: steps taken; theta is theta_k, not yet evaluated
///   theta, last_step     numbers printed shortest-round-trip (exact doubles)
///   step                 {step_length, kl, damping, step_norm} of the step to theta_k
///   prev_loss, seconds   the --ftol reference loss; fit time so far
///   history              {columns: [...], rows: [[iter, loss, ...], ...]}: rows 0..k-1
///   fingerprint          see fit_fingerprint()
///   written_by           {ranks, threads, hosts}: informative, not checked
/// Non-finite numbers are written as null and read back as NaN.
#include <filesystem>
#include <string>

#include "natgrad/core/communicator.hpp"
#include "natgrad/core/shard.hpp"
#include "natgrad/core/solver.hpp"

namespace natgrad {

/// Collective. A JSON object naming what the result depends on: \p options_json (a JSON
/// object of the options that change the iterates or the stopping point: the source and
/// reader options, model, method, Fisher, step rule, tolerances, penalty; app's
/// fit_fingerprint() makes it from the option table's kOptionFingerprint rows) completed
/// with the data (global rows, columns and their names, and the column sums of X, y,
/// weights and offsets, reduced over ranks). Not in it: threads, ranks, max-iter, block
/// rows, quiet, out, so a job may resume at another layout or with a higher --max-iter.
std::string data_fingerprint(const std::string& options_json, const Shard& shard, const Communicator& comm);

/// Local (root). Writes \p state with \p fingerprint to \p path atomically
/// (write_atomically: a temporary file, fsync, rename). Throws natgrad::Error.
void write_checkpoint(const std::filesystem::path& path, const FitState& state, const std::string& fingerprint,
                      const std::string& written_by_json);

/// Collective. Root reads \p path and broadcasts it; every rank parses it and compares its
/// fingerprint with \p fingerprint. Throws CollectiveError on every rank when the file is
/// missing or invalid, or belongs to another fit; the message names the differing field.
FitState read_checkpoint(const std::filesystem::path& path, const std::string& fingerprint,
                         const Communicator& comm);

}  // namespace natgrad
