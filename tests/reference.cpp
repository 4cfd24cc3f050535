#include "reference.hpp"

#include <algorithm>
#include <cmath>

#include "natgrad/rng.hpp"

namespace natgrad::ref {

Sums naive_sums(const Shard& s, const Model& m, const std::vector<double>& theta, FisherKind kind) {
  const std::int64_t n = s.n_rows, p = s.n_cols;
  Sums out;
  out.grad.assign(p, 0.0);
  std::vector<double> F(kind == FisherKind::diagonal ? p : p * p, 0.0);
  std::vector<double> score(p), mean_score(p, 0.0);
  double W = 0;
  auto row_eval = [&](std::int64_t i, double& nll, double& dnll, double& fw) {
    double eta = s.offset.empty() ? 0.0 : s.offset[i];
    for (std::int64_t j = 0; j < p; ++j) eta += s.row(i)[j] * theta[j];
    m.eval(1, &eta, &s.y[i], &nll, &dnll, &fw);
  };
  for (std::int64_t i = 0; i < n; ++i) {
    double nll, dnll, fw;
    row_eval(i, nll, dnll, fw);
    const double w = s.weight.empty() ? 1.0 : s.weight[i];
    W += w;
    out.loss += w * nll;
    for (std::int64_t j = 0; j < p; ++j) {
      out.grad[j] += w * dnll * s.row(i)[j];
      mean_score[j] += -dnll * s.row(i)[j] / static_cast<double>(n);
    }
  }
  for (std::int64_t i = 0; i < n; ++i) {
    double nll, dnll, fw;
    row_eval(i, nll, dnll, fw);
    const double w = s.weight.empty() ? 1.0 : s.weight[i];
    const double* x = s.row(i);
    for (std::int64_t j = 0; j < p; ++j) score[j] = -dnll * x[j];
    switch (kind) {
      case FisherKind::expected:
        for (std::int64_t a = 0; a < p; ++a)
          for (std::int64_t b = 0; b < p; ++b) F[a + b * p] += w * fw * x[a] * x[b] / 1.0;
        break;
      case FisherKind::empirical:
        for (std::int64_t a = 0; a < p; ++a)
          for (std::int64_t b = 0; b < p; ++b) F[a + b * p] += w * score[a] * score[b];
        break;
      case FisherKind::empirical_centered:
        for (std::int64_t a = 0; a < p; ++a)
          for (std::int64_t b = 0; b < p; ++b)
            F[a + b * p] += (score[a] - mean_score[a]) * (score[b] - mean_score[b]);
        break;
      case FisherKind::diagonal:
        for (std::int64_t a = 0; a < p; ++a) F[a] += w * fw * x[a] * x[a];
        break;
      case FisherKind::none:
        break;
    }
  }
  out.loss /= W;
  for (double& g : out.grad) g /= W;
  const double scale = kind == FisherKind::empirical_centered ? static_cast<double>(n) - 1.0 : W;
  for (double& f : F) f /= scale;
  if (kind != FisherKind::none) out.fisher = F;
  return out;
}

double rel_diff(const std::vector<double>& a, const std::vector<double>& b) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    num = std::max(num, std::abs(a[i] - b[i]));
    den = std::max(den, std::abs(b[i]));
  }
  if (a.size() != b.size()) return INFINITY;
  return den > 0 ? num / den : num;
}

Shard random_shard(std::int64_t n, std::int64_t p, std::uint64_t seed, bool weights, bool offsets) {
  Shard s;
  s.n_rows = n;
  s.n_cols = p;
  s.n_global = n;
  s.x.resize(n * p);
  s.y.resize(n);
  std::vector<double> beta(p);
  for (std::int64_t j = 0; j < p; ++j) beta[j] = rng::normal(seed, 9, 0, j) / std::sqrt(double(p));
  for (std::int64_t i = 0; i < n; ++i) {
    double eta = 0;
    for (std::int64_t j = 0; j < p; ++j) {
      s.x[i * p + j] = rng::normal(seed, 1, i, j) * (1.0 + j % 3);
      eta += s.x[i * p + j] * beta[j];
    }
    if (offsets) s.offset.push_back(0.5 * rng::normal(seed, 3, i, 0));
    if (weights) s.weight.push_back(0.5 + rng::uniform(seed, 4, i, 0));
    s.y[i] = rng::uniform(seed, 2, i, 0) < 1 / (1 + std::exp(-eta)) ? 1.0 : 0.0;
  }
  for (std::int64_t j = 0; j < p; ++j) s.names.push_back("x" + std::to_string(j + 1));
  return s;
}

}  // namespace natgrad::ref
