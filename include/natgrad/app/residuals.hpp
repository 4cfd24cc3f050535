#pragma once
/// \file residuals.hpp
/// R's residuals of a fitted model, one CSV line per data row: `natgrad fit --residuals`.
///
/// Scalar GLMs, columns row,y,mu,eta,deviance,pearson,working,response, with w the prior
/// weight, d the unit deviance, V the variance function and eta including the offset:
///   row       the 1-based global data row (a row of the input, so that lines align with it)
///   y, mu     the label and the fitted mean (R's fitted(fit))
///   eta       the linear predictor, offset included (R's fit$linear.predictors)
///   deviance  sign(y - mu) sqrt(w d(y, mu))       residuals(fit, type = "deviance")
///   pearson   (y - mu) sqrt(w) / sqrt(V(mu))       residuals(fit, type = "pearson")
///   working   (y - mu) / (dmu/deta)                residuals(fit, type = "working")
///   response  y - mu                               residuals(fit, type = "response")
/// Multinomial (K classes): row,y,p0,...,pK-1: the observed class and the fitted class
/// probabilities. Numbers are written with 17 significant digits; NA where a value is
/// missing (rows dropped before the fit, a working residual where dmu/deta is 0).
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "natgrad/core/communicator.hpp"
#include "natgrad/core/model.hpp"
#include "natgrad/core/shard.hpp"

namespace natgrad {

/// The header line of the residuals file for \p model (with its newline).
std::string residuals_header(const Model& model);

/// Local. This rank's lines of the residuals file.
///  - \p theta: shard.n_cols * model.n_outputs() coefficients, class-major (model.hpp); a
///    NaN entry (a coefficient reported as NA, e.g. a dropped collinear column) counts 0.
///  - \p kept: empty (every row read is in the shard), or one entry per row read on this
///    rank, in order: the shard holds the rows with a non-zero entry, in order, and a row
///    with 0 (dropped before the fit, e.g. for a missing value) is written as its row
///    number and NA in every other field, so that the file aligns with the input.
///  - \p first_row: the global 0-based index of this rank's first row read; -1 means
///    shard.first_row.
/// Throws natgrad::Error when theta or kept do not match the shard.
std::string residual_lines(const Shard& shard, const Model& model, std::span<const double> theta,
                           const std::vector<char>& kept = {}, std::int64_t first_row = -1);

/// Collective. residuals_header and every rank's residual_lines written in rank order into
/// one file, atomically (a temporary file renamed over \p path: write_collectively in
/// io/output.hpp). A mismatch or an I/O failure on any rank fails every rank
/// (CollectiveError).
void write_residuals(const std::filesystem::path& path, const Shard& shard, const Model& model,
                     std::span<const double> theta, const Communicator& comm, const std::vector<char>& kept = {},
                     std::int64_t first_row = -1);

}  // namespace natgrad
