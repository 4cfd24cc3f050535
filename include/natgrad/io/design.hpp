#pragma once
/// \file design.hpp
/// From a CSV file and a model formula to the design a fit uses: R's model.frame +
/// na.omit + model.matrix, distributed. Each rank builds the design rows of its own rows,
/// never gathering any. Collective.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "natgrad/core/communicator.hpp"
#include "natgrad/core/shard.hpp"
#include "natgrad/io/formula.hpp"
#include "natgrad/io/frame.hpp"
#include "natgrad/io/reader.hpp"

namespace natgrad {

/// How the response is coded.
enum class ResponseKind {
  numeric,  ///< the response expression's value (a factor response is an error)
  binary,   ///< binomial: numbers as they are, a logical/comparison as 0/1, a two-level factor as
            ///< 0 = first level (R's order), 1 = second (or 1 = DesignOptions::positive)
  classes,  ///< multinomial: numbers are class ids; a factor's codes (first level the reference)
};

struct DesignOptions {
  ResponseKind response = ResponseKind::numeric;
  /// "column=level,column=level": reference levels of factors (default: the first level).
  std::string reference;
  /// Binary text response: the level that is success (default: the second level).
  std::string positive;
  /// The prediction case: no response needed (absent column: y is all 0), and the factor
  /// levels are those of \p fitted (a level unseen at fit time is an error naming the row).
  bool predict = false;
};

/// One factor's coding, recorded in model.json so that predict codes new data identically.
struct FactorLevels {
  std::string variable;              ///< the variable's label ("race", "factor(race)")
  std::string column;                ///< its column
  std::vector<std::string> levels;   ///< in R's order
  int reference = 0;
  bool numeric_levels = false;
};

/// What the design did, for the log, summary.txt, model.json and predict.
struct DesignInfo {
  std::string formula;                       ///< as given ("" when built from column options)
  std::string response;                      ///< label of the response ("low", "y >= 4")
  std::vector<std::string> response_levels;  ///< factor response: its levels (binary: failure, success)
  std::vector<std::string> predictors;       ///< labels of the term variables, in order
  std::vector<FactorLevels> factors;
  std::vector<std::string> offsets;          ///< labels of the offset expressions
  std::string weight;                        ///< the weight column ("" = none)
  bool intercept = true;
  std::int64_t rows_read = 0;                ///< global
  std::int64_t rows_dropped = 0;             ///< global: rows with a missing value in a used column
  /// Global, per variable with missing values: its label and the number of rows where it is
  /// missing (a row missing in two variables counts in both), in variable order.
  std::vector<std::pair<std::string, std::int64_t>> missing;
  /// This rank: one entry per row read, 1 if the row is in the design (residuals and
  /// predictions write the dropped rows as NA, so the output aligns with the file).
  std::vector<char> kept;
};

struct Design {
  Shard shard;      ///< names = design column names; intercept column 0 when the formula has one
  DesignInfo info;
};

/// Collective. Parses opts.formula against the file's header, reads the columns it uses
/// (read_frame), drops the rows with a missing value (na.omit; opts.na = fail stops at the
/// first one instead, in read_frame), evaluates the variables, codes the terms
/// (code_terms), and builds this rank's rows. Storage: dense, or CSR when the design has
/// more than kFactorSparseColumns columns and its density is below kSparseDensity (factors
/// with many levels are never densified), subject to opts.layout. Throws CollectiveError
/// with one message on every rank: the formula's errors, the reader's, a factor with one
/// level, no rows left after dropping missing values ("all 189 rows have a missing value:
/// ..."), a non-finite value of a transform (-Inf from log(0): naming row and variable).
Design load_design(const ReadOptions& opts, const DesignOptions& options, const Communicator& comm);

/// Collective. Everything load_design does after the read: \p frame holds this rank's rows
/// of the columns \p formula uses (and opts.weight_column, read as a numeric column),
/// as read_frame returns them for the request load_design makes (FrameRequest::columns
/// = formula.columns() then the weight column; as_factor = formula.factor_columns()).
/// Drops the rows with a missing value in any variable of the formula or in the weight
/// (R's model.frame + na.omit; per-variable counts in DesignInfo::missing), keeps the
/// factor levels present in the rows used on any rank (R's drop.unused.levels), applies
/// the reference levels (options.reference, else opts.reference), codes the response
/// (options.positive, else opts.positive) and the terms, and builds this rank's rows
/// (layout as load_design). options.predict: the levels are the frame's (fixed_levels),
/// none is dropped; a missing response does not drop a row (y is NaN there; y is all 0
/// when the response column is absent). Throws CollectiveError on every rank.
Design build_design(const Frame& frame, const Formula& formula, const DesignOptions& options,
                    const ReadOptions& opts, const Communicator& comm);

/// Collective. predict: the fitted design \p fitted (from model.json) applied to new data:
/// the same formula and factor levels; the response is read when present.
Design apply_design(const ReadOptions& opts, const DesignInfo& fitted, const Communicator& comm);

/// A dense design switches to CSR above this many columns when sparse enough.
constexpr std::int64_t kFactorSparseColumns = 256;

/// model.json's "design" object (JSON text) and back (predict). design_from_json throws
/// natgrad::Error naming what is missing.
std::string design_json(const DesignInfo& info);
DesignInfo design_from_json(const std::string& json);

}  // namespace natgrad
