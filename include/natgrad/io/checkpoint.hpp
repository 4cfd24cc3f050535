#pragma once
/// \file checkpoint.hpp
/// Checkpoint files: the FitState of a fit (solver.hpp) as JSON, with a fingerprint of
/// the data and of the options that change the result, so that a resume refuses a
/// checkpoint of another fit. fit() itself does no file I/O; run_fit() calls these.
///
/// File format (version 1), one JSON object:
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

#include "natgrad/app/jobs.hpp"
#include "natgrad/core/communicator.hpp"
#include "natgrad/core/shard.hpp"
#include "natgrad/core/solver.hpp"

namespace natgrad {

/// Collective. A JSON object naming what the result depends on: the data (source, reader
/// options, global rows, columns and their names, and the column sums of X, y, weights
/// and offsets, reduced over ranks) and the options that change the iterates or the
/// stopping point (family, link, classes, method, fisher, step, lr, kl, damping, tol,
/// ftol, l2, intercept, penalize_intercept). Not in it: threads, ranks, max-iter, block
/// rows, quiet, out, so a job may resume at another layout or with a higher --max-iter.
std::string fit_fingerprint(const FitJob& job, const Shard& shard, const std::string& model_name, int classes,
                            const Communicator& comm);

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
