// From a Frame and a Formula to this rank's design rows: R's model.frame + na.omit +
// model.matrix, distributed (design.hpp). Two small collectives after the read: the
// agreement on local errors and one sum of the missing counts, the rows kept and the
// level counts; then the prefix of the rows kept (and, when the layout is undecided, the
// nonzero count).
#include "natgrad/io/design.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "formula_detail.hpp"
#include "natgrad/core/error.hpp"

namespace natgrad {

namespace {

bool all_digits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

/// The frame's column for a requested name (header name, or 0-based index as digits).
const FrameColumn* frame_column(const Frame& frame, const std::string& name) {
  if (const FrameColumn* c = frame.find(name)) return c;
  if (all_digits(name)) {
    const std::int64_t idx = std::atoll(name.c_str());
    for (const FrameColumn& c : frame.columns)
      if (c.index == idx) return &c;
  }
  return nullptr;
}

bool absent(const FrameColumn* c, const Frame& frame) {
  if (c == nullptr || c->index < 0) return true;
  return frame.n_rows > 0 && c->values.empty() && c->codes.empty();
}

/// A comparison, possibly inside I() or parentheses: R's logical, coded as a factor.
bool logical_expr(const Expr& e) {
  switch (e.op) {
    case Expr::Op::lt: case Expr::Op::le: case Expr::Op::gt:
    case Expr::Op::ge: case Expr::Op::eq: case Expr::Op::ne:
      return true;
    case Expr::Op::call:
      return (e.name == "I" || e.name == "(") && logical_expr(e.args.at(0));
    default:
      return false;
  }
}

std::string join(const std::vector<std::string>& v, std::size_t max = 12) {
  std::string s;
  for (std::size_t i = 0; i < v.size() && i < max; ++i) s += (i ? ", " : "") + v[i];
  if (v.size() > max) s += ", ... (" + std::to_string(v.size()) + " in all)";
  return s;
}

std::string number_text(double v) {
  if (std::isnan(v)) return "NA";
  if (std::isinf(v)) return v > 0 ? "Inf" : "-Inf";
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

/// One variable's data on this rank's rows.
struct VarData {
  bool factor = false;
  bool present = true;                 ///< false: optional column absent (predict's response)
  const double* values = nullptr;      ///< numeric: the frame's column, or own
  std::vector<double> own;
  const std::int32_t* codes = nullptr; ///< factor: frame codes (or own_codes)
  std::vector<std::int32_t> own_codes;
  std::vector<std::string> levels;     ///< factor: the frame's levels
  bool numeric_levels = false;
  std::string column;                  ///< the column (factor variables)
  std::vector<std::int32_t> remap;     ///< factor: frame level -> level used (-1: unused)
  std::vector<std::string> used;       ///< factor: the levels used
  int reference = 0;
};

/// "column=level,column=level" -> pairs.
std::vector<std::pair<std::string, std::string>> parse_reference(const std::string& s) {
  std::vector<std::pair<std::string, std::string>> out;
  std::size_t pos = 0;
  while (pos < s.size()) {
    std::size_t comma = s.find(',', pos);
    if (comma == std::string::npos) comma = s.size();
    const std::string item = s.substr(pos, comma - pos);
    pos = comma + 1;
    if (item.empty()) continue;
    const std::size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == item.size())
      throw Error("--reference '" + s + "': '" + item + "' is not column=level");
    out.emplace_back(item.substr(0, eq), item.substr(eq + 1));
  }
  return out;
}

}  // namespace

Design build_design(const Frame& frame, const Formula& formula, const DesignOptions& options,
                    const ReadOptions& opts, const Communicator& comm) {
  const std::size_t n = static_cast<std::size_t>(frame.n_rows);
  const std::size_t nvar = formula.variables.size();
  const bool predict = options.predict;
  const std::string source = frame.source.empty() ? opts.path : frame.source;
  const int threads = std::max(1, opts.threads);
  const std::vector<std::string> factor_columns = formula.factor_columns();

  std::vector<char> in_term(nvar, 0);
  for (const Term& t : formula.terms)
    for (int v : t.variables) in_term[static_cast<std::size_t>(v)] = 1;

  // ---- 1. the variables' values (local; errors agreed below)
  std::vector<VarData> data(nvar);
  std::vector<double> weight;
  bool has_weight = !opts.weight_column.empty();
  std::string local_error;
  std::map<std::string, std::vector<double>> decoded;  // numeric values of numeric-level factor columns
  try {
    const auto numeric_column = [&](const std::string& name) -> const std::vector<double>& {
      const FrameColumn* c = frame_column(frame, name);
      if (c == nullptr) throw Error("column '" + name + "' was not read");
      if (c->kind == FrameColumn::Kind::numeric) return c->values;
      if (c->numeric_levels) {
        auto it = decoded.find(name);
        if (it != decoded.end()) return it->second;
        std::vector<double> lv(c->levels.size());
        for (std::size_t l = 0; l < lv.size(); ++l) lv[l] = std::strtod(c->levels[l].c_str(), nullptr);
        std::vector<double> vals(n);
        for (std::size_t i = 0; i < n; ++i)
          vals[i] = c->codes[i] < 0 ? std::nan("") : lv[static_cast<std::size_t>(c->codes[i])];
        return decoded.emplace(name, std::move(vals)).first->second;
      }
      std::vector<std::string> some(c->levels.begin(), c->levels.begin() + std::min<std::ptrdiff_t>(3, static_cast<std::ptrdiff_t>(c->levels.size())));
      throw Error("column '" + name + "' holds text ('" + join(some, 3) + "', ...) of " + source +
                  ": it can be a factor term or a response, not part of an expression");
    };
    for (std::size_t v = 0; v < nvar; ++v) {
      const Variable& var = formula.variables[v];
      VarData& d = data[v];
      const bool is_response = static_cast<int>(v) == formula.response;
      if (is_response) {
        for (const std::string& col : columns_of(var.expr))
          if (absent(frame_column(frame, col), frame)) d.present = false;
        if (!d.present) {
          if (!predict) throw Error("the response column of '" + var.label + "' is not in " + source);
          continue;
        }
      }
      if (var.factor_call || var.plain_column()) {
        const FrameColumn* c = frame_column(frame, var.expr.name);
        if (c == nullptr) throw Error("column '" + var.expr.name + "' was not read");
        const bool as_factor = var.factor_call;
        const bool numeric_view = !as_factor && c->kind == FrameColumn::Kind::factor && c->numeric_levels &&
                                  std::find(factor_columns.begin(), factor_columns.end(), var.expr.name) != factor_columns.end();
        if (as_factor && c->kind != FrameColumn::Kind::factor)
          throw Error("column '" + var.expr.name + "' of factor(" + var.expr.name + ") was not read as a factor");
        if (c->kind == FrameColumn::Kind::factor && !numeric_view) {
          d.factor = true;
          d.codes = c->codes.data();
          d.levels = c->levels;
          d.numeric_levels = c->numeric_levels;
          d.column = c->name;
          continue;
        }
      }
      if (!var.offset && !is_response && logical_expr(var.expr)) {
        const std::vector<double> x = evaluate(var.expr, n, numeric_column);
        d.factor = true;
        d.levels = {"FALSE", "TRUE"};
        d.own_codes.resize(n);
        for (std::size_t i = 0; i < n; ++i) d.own_codes[i] = std::isnan(x[i]) ? -1 : (x[i] != 0 ? 1 : 0);
        d.codes = d.own_codes.data();
        continue;
      }
      if (var.plain_column()) {
        d.values = numeric_column(var.expr.name).data();
      } else {
        d.own = evaluate(var.expr, n, numeric_column);
        d.values = d.own.data();
      }
    }
    if (has_weight) {
      const FrameColumn* c = frame_column(frame, opts.weight_column);
      if (c == nullptr) throw Error("the weight column '" + opts.weight_column + "' was not read");
      if (c->kind != FrameColumn::Kind::numeric)
        throw Error("the weight column '" + opts.weight_column + "' of " + source + " is not numeric");
      weight = c->values;
    }
  } catch (const Error& e) {
    local_error = e.what();
  }
  comm.check(local_error.empty(), local_error);

  // ---- 2. missing values, rows kept, level counts (local)
  std::vector<char> kept(n, 1);
  std::vector<std::int64_t> counts(nvar + 2, 0);  // per variable, weight, rows kept
  for (std::size_t v = 0; v < nvar; ++v) {
    const VarData& d = data[v];
    if (!d.present) continue;
    const bool drops = !(predict && static_cast<int>(v) == formula.response);
    std::int64_t miss = 0;
    if (d.factor) {
      for (std::size_t i = 0; i < n; ++i)
        if (d.codes[i] < 0) {
          ++miss;
          if (drops) kept[i] = 0;
        }
    } else {
      for (std::size_t i = 0; i < n; ++i)
        if (std::isnan(d.values[i])) {
          ++miss;
          if (drops) kept[i] = 0;
        }
    }
    counts[v] = miss;
  }
  if (has_weight) {
    for (std::size_t i = 0; i < n; ++i)
      if (std::isnan(weight[i])) {
        ++counts[nvar];
        kept[i] = 0;
      }
  }
  std::int64_t n_kept = 0;
  for (std::size_t i = 0; i < n; ++i) n_kept += kept[i];
  counts[nvar + 1] = n_kept;
  std::vector<std::size_t> level_offset(nvar, 0);
  for (std::size_t v = 0; v < nvar; ++v) {
    const VarData& d = data[v];
    if (!d.factor) continue;
    level_offset[v] = counts.size();
    counts.resize(counts.size() + d.levels.size(), 0);
    std::int64_t* c = counts.data() + level_offset[v];
    for (std::size_t i = 0; i < n; ++i)
      if (kept[i] && d.codes[i] >= 0) ++c[d.codes[i]];
  }
  // Non-finite values in the rows kept: an error naming the line and the variable.
  for (std::size_t v = 0; v < nvar && local_error.empty(); ++v) {
    const VarData& d = data[v];
    if (d.factor || !d.present) continue;
    for (std::size_t i = 0; i < n; ++i) {
      if (kept[i] && !std::isfinite(d.values[i]) && !std::isnan(d.values[i])) {
        const std::string line = i < frame.line.size() ? std::to_string(frame.line[i]) : "?";
        local_error = source + " line " + line + ": '" + formula.variables[v].label + "' is " +
                      number_text(d.values[i]) + " (not a finite number)";
        break;
      }
    }
  }
  if (has_weight && local_error.empty()) {
    for (std::size_t i = 0; i < n; ++i) {
      if (kept[i] && (!std::isfinite(weight[i]) || weight[i] < 0)) {
        const std::string line = i < frame.line.size() ? std::to_string(frame.line[i]) : "?";
        local_error = source + " line " + line + ": weight '" + opts.weight_column + "' is " + number_text(weight[i]) +
                      " (weights must be finite and >= 0)";
        break;
      }
    }
  }
  comm.check(local_error.empty(), local_error);
  comm.allreduce_sum(counts.data(), counts.size());
  const std::int64_t kept_global = counts[nvar + 1];

  // ---- 3. everything below is derived from global counts: identical on every rank
  DesignInfo info;
  info.formula = formula.text;
  info.intercept = formula.intercept;
  info.weight = opts.weight_column;
  info.rows_read = frame.n_global;
  info.rows_dropped = frame.n_global - kept_global;
  for (std::size_t v = 0; v < nvar; ++v)
    if (counts[v] > 0) info.missing.emplace_back(formula.variables[v].label, counts[v]);
  if (counts[nvar] > 0) info.missing.emplace_back(opts.weight_column, counts[nvar]);
  if (formula.response >= 0) info.response = formula.variables[static_cast<std::size_t>(formula.response)].label;
  for (std::size_t v = 0; v < nvar; ++v) {
    if (in_term[v]) info.predictors.push_back(formula.variables[v].label);
    if (formula.variables[v].offset) info.offsets.push_back(formula.variables[v].label);
  }

  Shard shard;
  std::vector<detail::TermBlock> blocks;
  try {
    if (formula.response < 0 && !predict)
      throw Error("--formula '" + formula.text + "': no response (write response ~ terms)");
    if (kept_global == 0) {
      std::string what;
      for (const auto& [label, count] : info.missing)
        what += (what.empty() ? "" : ", ") + label + " (" + std::to_string(count) + ")";
      throw Error("all " + std::to_string(frame.n_global) + " rows of " + source +
                  " have a missing value in a variable of the model" + (what.empty() ? "" : ": " + what));
    }
    // Levels used (R's drop.unused.levels), except when predicting with the fitted levels.
    for (std::size_t v = 0; v < nvar; ++v) {
      VarData& d = data[v];
      if (!d.factor) continue;
      d.remap.assign(d.levels.size(), -1);
      const std::int64_t* c = counts.data() + level_offset[v];
      for (std::size_t l = 0; l < d.levels.size(); ++l) {
        if (predict || c[l] > 0) {
          d.remap[l] = static_cast<std::int32_t>(d.used.size());
          d.used.push_back(d.levels[l]);
        }
      }
    }
    // Reference levels.
    const std::string reference = options.reference.empty() ? opts.reference : options.reference;
    for (const auto& [col, level] : parse_reference(reference)) {
      bool found = false;
      for (std::size_t v = 0; v < nvar; ++v) {
        VarData& d = data[v];
        if (!d.factor || static_cast<int>(v) == formula.response) continue;
        if (d.column != col && formula.variables[v].label != col) continue;
        found = true;
        const auto it = std::find(d.used.begin(), d.used.end(), level);
        if (it == d.used.end())
          throw Error("--reference " + col + "=" + level + ": '" + level + "' is not a level of '" +
                      formula.variables[v].label + "' in the rows used (levels: " + join(d.used) + ")");
        d.reference = static_cast<int>(it - d.used.begin());
      }
      if (!found) throw Error("--reference " + col + "=" + level + ": the formula has no factor '" + col + "'");
    }
    // The response.
    std::vector<double> y(static_cast<std::size_t>(n_kept), 0.0);
    if (formula.response >= 0 && data[static_cast<std::size_t>(formula.response)].present) {
      VarData& d = data[static_cast<std::size_t>(formula.response)];
      const std::string& label = info.response;
      std::vector<double> code_value;  // factor: frame code -> y
      if (d.factor) {
        if (predict) {
          info.response_levels = d.used;
          for (std::size_t l = 0; l < d.levels.size(); ++l) code_value.push_back(static_cast<double>(d.remap[l]));
        } else if (options.response == ResponseKind::numeric) {
          throw Error("the response '" + label + "' holds text (levels: " + join(d.used) +
                      "): a numeric family needs numbers (use binomial for two levels, multinomial for classes)");
        } else if (options.response == ResponseKind::binary) {
          if (d.used.size() != 2)
            throw Error("the binomial response '" + label + "' has " + std::to_string(d.used.size()) +
                        " levels in the rows used (" + join(d.used) + "): it needs two");
          const std::string positive = options.positive.empty() ? opts.positive : options.positive;
          int success = 1;
          if (!positive.empty()) {
            const auto it = std::find(d.used.begin(), d.used.end(), positive);
            if (it == d.used.end())
              throw Error("--positive '" + positive + "' is not a level of the response '" + label +
                          "' (levels: " + join(d.used) + ")");
            success = static_cast<int>(it - d.used.begin());
          }
          info.response_levels = {d.used[static_cast<std::size_t>(1 - success)], d.used[static_cast<std::size_t>(success)]};
          for (std::size_t l = 0; l < d.levels.size(); ++l)
            code_value.push_back(d.remap[l] == success ? 1.0 : 0.0);
        } else {
          info.response_levels = d.used;
          for (std::size_t l = 0; l < d.levels.size(); ++l) code_value.push_back(static_cast<double>(d.remap[l]));
        }
      }
      std::size_t r = 0;
      for (std::size_t i = 0; i < n; ++i) {
        if (!kept[i]) continue;
        if (d.factor) y[r++] = d.codes[i] < 0 ? std::nan("") : code_value[static_cast<std::size_t>(d.codes[i])];
        else y[r++] = d.values[i];
      }
    }
    // The terms.
    std::vector<VariableLevels> levels(nvar);
    for (std::size_t v = 0; v < nvar; ++v) {
      if (!data[v].factor || static_cast<int>(v) == formula.response) continue;
      levels[v].factor = true;
      levels[v].levels = data[v].used;
      levels[v].reference = data[v].reference;
      if (in_term[v] && !data[v].column.empty()) {
        FactorLevels fl;
        fl.variable = formula.variables[v].label;
        fl.column = data[v].column;
        fl.levels = data[v].used;
        fl.reference = data[v].reference;
        fl.numeric_levels = data[v].numeric_levels;
        info.factors.push_back(std::move(fl));
      }
    }
    detail::Coding coding = detail::code_formula(formula, levels);
    if (coding.columns.empty()) throw Error("--formula '" + formula.text + "': the model has no columns");
    blocks = std::move(coding.terms);
    for (const DesignColumn& c : coding.columns) shard.names.push_back(c.name);
    shard.y = std::move(y);
  } catch (const CollectiveError&) {
    throw;
  } catch (const Error& e) {
    throw CollectiveError(e.what());
  }

  // ---- 4. the rows
  const std::int64_t n_cols = static_cast<std::int64_t>(shard.names.size());
  std::vector<std::int64_t> rows;  // frame rows kept
  rows.reserve(static_cast<std::size_t>(n_kept));
  for (std::size_t i = 0; i < n; ++i)
    if (kept[i]) rows.push_back(static_cast<std::int64_t>(i));
  // Per term part, flat: codes remapped to column offsets (factor) or the values (numeric).
  struct FlatPart {
    const std::int32_t* codes = nullptr;
    const int* position = nullptr;  // frame code -> column offset (stride applied), -1: zero
    const double* values = nullptr;
  };
  std::vector<int> position_store;
  std::vector<std::size_t> position_at;
  std::vector<FlatPart> parts;
  std::vector<std::size_t> term_begin{0};
  std::vector<std::int64_t> term_column;
  for (const detail::TermBlock& b : blocks) {
    for (const detail::TermPart& p : b.parts) {
      const VarData& d = data[static_cast<std::size_t>(p.variable)];
      FlatPart fp;
      if (p.factor) {
        fp.codes = d.codes;
        position_at.push_back(position_store.size());
        for (std::size_t l = 0; l < d.levels.size(); ++l) {
          const std::int32_t u = d.remap[l];
          const int pos = u >= 0 ? p.position[static_cast<std::size_t>(u)] : -1;
          position_store.push_back(pos >= 0 ? pos * p.stride : -1);
        }
      } else {
        fp.values = d.values;
        position_at.push_back(0);
      }
      parts.push_back(fp);
    }
    term_begin.push_back(parts.size());
    term_column.push_back(b.first_column);
  }
  for (std::size_t k = 0; k < parts.size(); ++k)
    if (parts[k].codes) parts[k].position = position_store.data() + position_at[k];
  const bool intercept = formula.intercept;
  // Column and value of term t in frame row i; false when the term is 0 there.
  const auto term_entry = [&](std::size_t t, std::int64_t i, std::int64_t& col, double& val) {
    col = term_column[t];
    val = 1.0;
    for (std::size_t k = term_begin[t]; k < term_begin[t + 1]; ++k) {
      const FlatPart& fp = parts[k];
      if (fp.codes) {
        const int pos = fp.position[fp.codes[i]];
        if (pos < 0) return false;
        col += pos;
      } else {
        val *= fp.values[i];
      }
    }
    return val != 0.0;
  };
  const std::int64_t n_rows = n_kept;
  bool sparse = opts.layout == ReadOptions::Layout::sparse;
  std::vector<std::int64_t> row_nnz;
  if (opts.layout == ReadOptions::Layout::sparse ||
      (opts.layout == ReadOptions::Layout::auto_detect && n_cols > kFactorSparseColumns)) {
    row_nnz.assign(static_cast<std::size_t>(n_rows), 0);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (std::int64_t r = 0; r < n_rows; ++r) {
      std::int64_t k = intercept ? 1 : 0;
      std::int64_t col;
      double val;
      for (std::size_t t = 0; t < blocks.size(); ++t)
        if (term_entry(t, rows[static_cast<std::size_t>(r)], col, val)) ++k;
      row_nnz[static_cast<std::size_t>(r)] = k;
    }
    if (!sparse) {
      std::int64_t nnz = 0;
      for (std::int64_t k : row_nnz) nnz += k;
      comm.allreduce_sum(&nnz, 1);
      const double density = static_cast<double>(nnz) / (static_cast<double>(kept_global) * static_cast<double>(n_cols));
      sparse = density < kSparseDensity;
    }
  }
  shard.n_rows = n_rows;
  shard.n_cols = n_cols;
  shard.sparse = sparse;
  shard.source = source;
  if (sparse) {
    SparseRows& csr = shard.csr;
    csr.wide = SparseRows::needs_wide(n_cols);
    csr.row_ptr.resize(static_cast<std::size_t>(n_rows) + 1);
    csr.row_ptr[0] = 0;
    for (std::int64_t r = 0; r < n_rows; ++r)
      csr.row_ptr[static_cast<std::size_t>(r) + 1] = csr.row_ptr[static_cast<std::size_t>(r)] + row_nnz[static_cast<std::size_t>(r)];
    const std::size_t nnz = static_cast<std::size_t>(csr.row_ptr.back());
    csr.values.resize(nnz);
    if (csr.wide) csr.index64.resize(nnz);
    else csr.index32.resize(nnz);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (std::int64_t r = 0; r < n_rows; ++r) {
      std::size_t k = static_cast<std::size_t>(csr.row_ptr[static_cast<std::size_t>(r)]);
      const auto put = [&](std::int64_t col, double val) {
        if (csr.wide) csr.index64[k] = col;
        else csr.index32[k] = static_cast<std::uint32_t>(col);
        csr.values[k++] = val;
      };
      if (intercept) put(0, 1.0);
      std::int64_t col;
      double val;
      for (std::size_t t = 0; t < blocks.size(); ++t)
        if (term_entry(t, rows[static_cast<std::size_t>(r)], col, val)) put(col, val);
    }
  } else {
    shard.x.assign(static_cast<std::size_t>(n_rows * n_cols), 0.0);
    double* x = shard.x.data();
#pragma omp parallel for num_threads(threads) schedule(static)
    for (std::int64_t r = 0; r < n_rows; ++r) {
      double* row = x + r * n_cols;
      if (intercept) row[0] = 1.0;
      std::int64_t col;
      double val;
      for (std::size_t t = 0; t < blocks.size(); ++t)
        if (term_entry(t, rows[static_cast<std::size_t>(r)], col, val)) row[col] = val;
    }
  }
  // Offsets and weights of the rows kept.
  bool any_offset = false;
  for (std::size_t v = 0; v < nvar; ++v) {
    if (!formula.variables[v].offset) continue;
    if (!any_offset) shard.offset.assign(static_cast<std::size_t>(n_rows), 0.0);
    any_offset = true;
    const double* vals = data[v].values;
    for (std::int64_t r = 0; r < n_rows; ++r) shard.offset[static_cast<std::size_t>(r)] += vals[rows[static_cast<std::size_t>(r)]];
  }
  if (has_weight) {
    shard.weight.resize(static_cast<std::size_t>(n_rows));
    for (std::int64_t r = 0; r < n_rows; ++r) shard.weight[static_cast<std::size_t>(r)] = weight[static_cast<std::size_t>(rows[static_cast<std::size_t>(r)])];
  }
  shard.first_row = comm.exscan_sum(n_rows);
  shard.n_global = kept_global;
  info.kept = std::move(kept);
  Design design;
  design.shard = std::move(shard);
  design.info = std::move(info);
  return design;
}

namespace {
/// The columns read_frame reads for formula \p f: the formula's, the weight column, and
/// factor() columns as factors (load_design and apply_design alike).
FrameRequest frame_request(const Formula& f, const ReadOptions& opts) {
  FrameRequest request;
  request.columns = f.columns();
  if (!opts.weight_column.empty() &&
      std::find(request.columns.begin(), request.columns.end(), opts.weight_column) == request.columns.end())
    request.columns.push_back(opts.weight_column);
  request.as_factor = f.factor_columns();
  return request;
}
}  // namespace

Design load_design(const ReadOptions& opts, const DesignOptions& options, const Communicator& comm) {
  Formula f;
  std::string error;
  try {
    const std::vector<std::string> header = frame_header(opts);
    std::vector<std::string> exclude;
    if (!opts.weight_column.empty()) exclude.push_back(opts.weight_column);
    f = detail::parse_formula_in(opts.formula, header, exclude, opts.path, {});
  } catch (const Error& e) {
    error = e.what();
  }
  comm.check(error.empty(), error);
  FrameRequest request = frame_request(f, opts);
  const Frame frame = read_frame(opts, request, comm);
  return build_design(frame, f, options, opts, comm);
}

Design apply_design(const ReadOptions& opts, const DesignInfo& fitted, const Communicator& comm) {
  Formula f;
  std::string error;
  std::vector<std::string> response_columns;
  try {
    if (fitted.formula.empty()) throw Error("the model was not fitted with --formula: it has no design to apply");
    const std::vector<std::string> file_header = frame_header(opts);
    // '.' expands as it did at fit time: over the fit's columns, in their order.
    std::vector<std::string> header;
    const auto add = [&](const std::string& c) {
      if (std::find(header.begin(), header.end(), c) == header.end()) header.push_back(c);
    };
    for (const std::string& p : fitted.predictors)
      for (const std::string& c : detail::columns_of_label(p)) add(c);
    std::vector<std::string> exclude;
    if (!opts.weight_column.empty()) exclude.push_back(opts.weight_column);
    for (const std::string& c : file_header) {
      if (std::find(header.begin(), header.end(), c) == header.end()) exclude.push_back(c);
      add(c);
    }
    response_columns = detail::columns_of_label(fitted.response);
    f = detail::parse_formula_in(fitted.formula, header, exclude, opts.path, response_columns);
    std::vector<std::string> predictors;
    std::vector<char> in_term(f.variables.size(), 0);
    for (const Term& t : f.terms)
      for (int v : t.variables) in_term[static_cast<std::size_t>(v)] = 1;
    for (std::size_t v = 0; v < f.variables.size(); ++v)
      if (in_term[v]) predictors.push_back(f.variables[v].label);
    if (predictors != fitted.predictors)
      throw Error("--formula '" + fitted.formula + "' on " + opts.path + " gives the predictors " + join(predictors) +
                  ", not those of the fit (" + join(fitted.predictors) + ")");
  } catch (const Error& e) {
    error = e.what();
  }
  comm.check(error.empty(), error);
  FrameRequest request = frame_request(f, opts);
  for (const FactorLevels& fl : fitted.factors) request.fixed_levels[fl.column] = fl.levels;
  if (!fitted.response_levels.empty() && f.response >= 0 && f.variables[static_cast<std::size_t>(f.response)].plain_column())
    request.fixed_levels[f.variables[static_cast<std::size_t>(f.response)].expr.name] = fitted.response_levels;
  request.optional = response_columns;
  const Frame frame = read_frame(opts, request, comm);
  DesignOptions options;
  options.predict = true;
  options.response = fitted.response_levels.empty() ? ResponseKind::numeric : ResponseKind::classes;
  ReadOptions o = opts;
  o.reference.clear();
  o.positive.clear();
  for (const FactorLevels& fl : fitted.factors)
    if (fl.reference >= 0 && fl.reference < static_cast<int>(fl.levels.size()))
      options.reference += (options.reference.empty() ? "" : ",") + fl.variable + "=" +
                           fl.levels[static_cast<std::size_t>(fl.reference)];
  Design d = build_design(frame, f, options, o, comm);
  return d;
}

// ---------------------------------------------------------------------------- JSON

std::string design_json(const DesignInfo& info) {
  nlohmann::ordered_json j;
  j["formula"] = info.formula;
  j["response"] = info.response;
  j["response_levels"] = info.response_levels;
  j["predictors"] = info.predictors;
  nlohmann::ordered_json factors = nlohmann::ordered_json::array();
  for (const FactorLevels& f : info.factors) {
    nlohmann::ordered_json o;
    o["variable"] = f.variable;
    o["column"] = f.column;
    o["levels"] = f.levels;
    o["reference"] = f.reference;
    o["numeric_levels"] = f.numeric_levels;
    factors.push_back(std::move(o));
  }
  j["factors"] = std::move(factors);
  j["offsets"] = info.offsets;
  j["weight"] = info.weight;
  j["intercept"] = info.intercept;
  j["rows_read"] = info.rows_read;
  j["rows_dropped"] = info.rows_dropped;
  nlohmann::ordered_json missing = nlohmann::ordered_json::object();
  for (const auto& [label, count] : info.missing) missing[label] = count;
  j["missing"] = std::move(missing);
  return j.dump();
}

DesignInfo design_from_json(const std::string& text) {
  nlohmann::ordered_json j;
  try {
    j = nlohmann::ordered_json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("model.json design: not JSON (") + e.what() + ")");
  }
  if (!j.is_object()) throw Error("model.json design: not an object");
  const auto need = [&](const nlohmann::ordered_json& o, const char* key, const char* where) -> const nlohmann::ordered_json& {
    if (!o.contains(key)) throw Error(std::string("model.json design: ") + where + "no '" + key + "'");
    return o.at(key);
  };
  DesignInfo info;
  try {
    info.formula = need(j, "formula", "").get<std::string>();
    info.response = need(j, "response", "").get<std::string>();
    info.predictors = need(j, "predictors", "").get<std::vector<std::string>>();
    info.intercept = need(j, "intercept", "").get<bool>();
    if (j.contains("response_levels")) info.response_levels = j.at("response_levels").get<std::vector<std::string>>();
    for (const auto& o : need(j, "factors", "")) {
      FactorLevels f;
      f.variable = need(o, "variable", "a factor has ").get<std::string>();
      f.column = need(o, "column", "a factor has ").get<std::string>();
      f.levels = need(o, "levels", "a factor has ").get<std::vector<std::string>>();
      f.reference = o.contains("reference") ? o.at("reference").get<int>() : 0;
      f.numeric_levels = o.contains("numeric_levels") && o.at("numeric_levels").get<bool>();
      if (f.reference < 0 || f.reference >= static_cast<int>(f.levels.size()))
        throw Error("model.json design: factor '" + f.variable + "' has reference " + std::to_string(f.reference) +
                    " outside its " + std::to_string(f.levels.size()) + " levels");
      info.factors.push_back(std::move(f));
    }
    if (j.contains("offsets")) info.offsets = j.at("offsets").get<std::vector<std::string>>();
    if (j.contains("weight")) info.weight = j.at("weight").get<std::string>();
    if (j.contains("rows_read")) info.rows_read = j.at("rows_read").get<std::int64_t>();
    if (j.contains("rows_dropped")) info.rows_dropped = j.at("rows_dropped").get<std::int64_t>();
    if (j.contains("missing"))
      for (const auto& [label, count] : j.at("missing").items()) info.missing.emplace_back(label, count.get<std::int64_t>());
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("model.json design: a value has the wrong type (") + e.what() + ")");
  }
  return info;
}

}  // namespace natgrad
