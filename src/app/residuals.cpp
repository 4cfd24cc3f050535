#include "natgrad/app/residuals.hpp"

#include <cmath>
#include <cstdio>
#include <string>

#include "natgrad/core/error.hpp"
#include "natgrad/core/glm.hpp"
#include "natgrad/io/output.hpp"

namespace natgrad {

namespace {

/// \p v with 17 significant digits (it reads back as the same double), "NA" if not finite.
void put(std::string& s, double v) {
  if (!std::isfinite(v)) {
    s += "NA";
    return;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  s += buf;
}

double sign(double v) { return static_cast<double>((v > 0) - (v < 0)); }

}  // namespace

std::string residuals_header(const Model& model) {
  if (const auto* mn = dynamic_cast<const MultinomialModel*>(&model)) {
    std::string h = "row,y";
    for (int c = 0; c < mn->n_classes(); ++c) h += ",p" + std::to_string(c);
    return h + '\n';
  }
  return "row,y,mu,eta,deviance,pearson,working,response\n";
}

std::string residual_lines(const Shard& shard, const Model& model, std::span<const double> theta,
                           const std::vector<char>& kept, std::int64_t first_row) {
  const std::int64_t d = shard.n_cols, K = model.n_outputs();
  if (static_cast<std::int64_t>(theta.size()) != d * K)
    throw Error("residuals: " + std::to_string(theta.size()) + " coefficients for " + std::to_string(d * K) +
                " parameters");
  const auto* mn = dynamic_cast<const MultinomialModel*>(&model);
  const int classes = mn ? mn->n_classes() : 0;
  const int fields = mn ? 1 + classes : 7;  // after the row number
  std::int64_t n_read = shard.n_rows;
  if (!kept.empty()) {
    n_read = static_cast<std::int64_t>(kept.size());
    std::int64_t n_kept = 0;
    for (const char k : kept) n_kept += k != 0;
    if (n_kept != shard.n_rows)
      throw Error("residuals: the kept mask has " + std::to_string(n_kept) + " rows kept, the shard " +
                  std::to_string(shard.n_rows));
  }
  if (first_row < 0) first_row = shard.first_row;
  std::vector<double> beta(theta.begin(), theta.end());
  for (double& b : beta)
    if (std::isnan(b)) b = 0.0;  // NA (dropped): contributes 0
  std::vector<double> eta(static_cast<std::size_t>(K)), p(static_cast<std::size_t>(classes));
  std::string s;
  s.reserve(static_cast<std::size_t>(n_read) * (mn ? 24 * (1 + classes) : 160));
  std::int64_t i = 0;  // the shard's row
  for (std::int64_t r = 0; r < n_read; ++r) {
    put(s, static_cast<double>(first_row + r + 1));
    if (!kept.empty() && kept[static_cast<std::size_t>(r)] == 0) {
      for (int f = 0; f < fields; ++f) s += ",NA";
      s += '\n';
      continue;
    }
    for (std::int64_t k = 0; k < K; ++k) {
      double e = shard.offset.empty() ? 0.0 : shard.offset[static_cast<std::size_t>(i)];
      shard.for_each_nonzero(i, [&](std::int64_t j, double v) { e += v * beta[static_cast<std::size_t>(j + d * k)]; });
      eta[static_cast<std::size_t>(k)] = e;
    }
    const double y = shard.y[static_cast<std::size_t>(i)];
    s += ',';
    put(s, y);
    if (mn) {
      mn->probabilities(eta.data(), p.data());
      for (const double q : p) {
        s += ',';
        put(s, q);
      }
    } else {
      const double w = shard.weight.empty() ? 1.0 : shard.weight[static_cast<std::size_t>(i)];
      const double mu = model.mean(eta[0]);
      double dnll = 0, fisher = 0;
      model.eval(1, eta.data(), &y, nullptr, &dnll, &fisher);
      // dnll = -(y - mu) mu'(eta) / V, fisher = mu'(eta)^2 / V: their ratio is -(y - mu) / mu'(eta).
      const double working = y == mu ? 0.0 : fisher > 0 ? -dnll / fisher : NAN;
      const double values[] = {mu,
                               eta[0],
                               sign(y - mu) * std::sqrt(std::max(w * model.unit_deviance(eta.data(), y), 0.0)),
                               sign(y - mu) * std::sqrt(w * model.pearson(eta.data(), y)),
                               working,
                               y - mu};
      for (const double v : values) {
        s += ',';
        put(s, v);
      }
    }
    s += '\n';
    ++i;
  }
  return s;
}

void write_residuals(const std::filesystem::path& path, const Shard& shard, const Model& model,
                     std::span<const double> theta, const Communicator& comm, const std::vector<char>& kept,
                     std::int64_t first_row) {
  std::string lines, err;
  try {
    lines = residual_lines(shard, model, theta, kept, first_row);
  } catch (const Error& e) {
    err = path.string() + ": " + e.what();
  }
  comm.check(err.empty(), err);
  write_collectively(path, residuals_header(model), lines, comm);
}

}  // namespace natgrad
