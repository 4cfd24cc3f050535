#pragma once
/// \file checkpoint.hpp
/// Checkpoint files: the FitState of a fit (solver.hpp) as JSON, with a fingerprint of
/// the data and of the options that change the result, so that a resume refuses a
/// checkpoint of another fit. fit() itself does no file I/O; the fit job (app) calls these.
///
/// File format (version 3), one JSON object:
///   natgrad_checkpoint   3
///   iteration            k: steps taken; theta is theta_k, not yet evaluated
///   theta, last_step     numbers printed shortest-round-trip (exact doubles)
///   step                 {step_length, kl, damping, step_norm} of the step to theta_k
///   prev_loss, seconds   the --ftol reference loss; fit time so far
///   history              {columns: [...], rows: [[iter, loss, ...], ...]}: rows 0..k-1
///   fingerprint          see fit_fingerprint()
///   written_by           {ranks, threads, hosts}: informative, not checked
///   checksum             "crc64:<16 hex digits>": CRC-64/XZ of the compact JSON of every
///                        other field in file order; a file whose content does not match
///                        it (damaged, or edited by hand) is refused
/// Non-finite numbers are written as null and read back as NaN.
#include <cstdint>
#include <filesystem>
#include <string>

#include "natgrad/core/communicator.hpp"
#include "natgrad/core/shard.hpp"
#include "natgrad/core/solver.hpp"

namespace natgrad {

/// Collective. A JSON object naming what the result depends on: \p options_json (a JSON
/// object of the options that change the iterates or the stopping point: the reader
/// options that change what is read, model, method, Fisher, step rule, tolerances,
/// penalty; app's fit_fingerprint() makes it from the option table's kOptionFingerprint
/// rows) completed with the data: global rows, columns and their names, whether there
/// are weights and offsets, and data_content_hash() of the rows. Not in it: the data's
/// path (the same data under another path or as a copy resumes), threads, ranks,
/// max-iter, block rows, quiet, out, so a job may resume at another layout or with a
/// higher --max-iter.
/// \p threads: OpenMP threads of the hashing pass.
std::string data_fingerprint(const std::string& options_json, const Shard& shard, const Communicator& comm,
                             int threads = 1);

/// Collective. A 64-bit hash of the data's content, the same at any rank and thread count:
/// the sum (mod 2^64) over rows of a hash of the row's global index, its x's non-zeros
/// (column and bits; zeros of either sign are left out, so a dense and a CSR shard of the
/// same rows hash alike) and the bits of its y, weight and offset, so changed values and
/// moved rows (two labels swapped) give another hash. One pass over this rank's rows in
/// memory (its stored entries: O(nnz) for a CSR shard); no I/O.
std::uint64_t data_content_hash(const Shard& shard, const Communicator& comm, int threads = 1);

/// Local (root). Writes \p state with \p fingerprint to \p path atomically
/// (write_atomically: a temporary file, fsync, rename). Throws natgrad::Error.
void write_checkpoint(const std::filesystem::path& path, const FitState& state, const std::string& fingerprint,
                      const std::string& written_by_json);

/// Collective. Root reads \p path and broadcasts it; every rank parses it and compares its
/// fingerprint with \p fingerprint. Throws CollectiveError on every rank when the file is
/// missing or invalid, fails its checksum, or belongs to another fit; the message names
/// the differing field.
FitState read_checkpoint(const std::filesystem::path& path, const std::string& fingerprint,
                         const Communicator& comm);

}  // namespace natgrad
