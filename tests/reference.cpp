#include "reference.hpp"

#include <algorithm>
#include <cmath>

#include "natgrad/core/rng.hpp"

namespace natgrad::ref {

Sums naive_sums(const Shard& s, const Model& model, const std::vector<double>& theta, FisherKind kind,
                const FisherSample& sample) {
  const std::int64_t n = s.n_rows, d = s.n_cols, m = model.n_outputs(), q = model.n_factors();
  const std::int64_t p = d * m;
  Sums out;
  out.grad.assign(p, 0.0);
  std::vector<double> F(kind == FisherKind::diagonal ? p : p * p, 0.0);
  std::vector<double> eta(m), dnll(m), fac(m * q), score(p), mean_score(p, 0.0);
  double W = 0, Wf = 0;  // all rows; the rows in the Fisher
  // One row: eta (class-major theta), nll, dnll, and the m x m expected-Fisher weight.
  auto row_eval = [&](std::int64_t i, double& nll, std::vector<double>& fw) {
    for (std::int64_t k = 0; k < m; ++k) {
      eta[k] = s.offset.empty() ? 0.0 : s.offset[i];
      for (std::int64_t j = 0; j < d; ++j) eta[k] += s.row(i)[j] * theta[j + d * k];
    }
    model.eval_multi(1, eta.data(), &s.y[i], &nll, dnll.data(), fac.data());
    fw.assign(m * m, 0.0);
    for (std::int64_t k = 0; k < m; ++k)
      for (std::int64_t l = 0; l < m; ++l)
        for (std::int64_t c = 0; c < q; ++c) fw[k * m + l] += fac[k * q + c] * fac[l * q + c];
  };
  std::vector<double> fw;
  for (std::int64_t i = 0; i < n; ++i) {
    double nll;
    row_eval(i, nll, fw);
    const double w = s.weight.empty() ? 1.0 : s.weight[i];
    W += w;
    out.loss += w * nll;
    for (std::int64_t k = 0; k < m; ++k)
      for (std::int64_t j = 0; j < d; ++j) {
        out.grad[j + d * k] += w * dnll[k] * s.row(i)[j];
        mean_score[j + d * k] += -dnll[k] * s.row(i)[j] / static_cast<double>(n);
      }
  }
  for (std::int64_t i = 0; i < n; ++i) {
    double nll;
    row_eval(i, nll, fw);
    const double w = s.weight.empty() ? 1.0 : s.weight[i];
    if (kind != FisherKind::empirical_centered && !in_fisher_sample(s.first_row + i, sample)) continue;
    Wf += w;
    const double* x = s.row(i);
    for (std::int64_t k = 0; k < m; ++k)
      for (std::int64_t j = 0; j < d; ++j) score[j + d * k] = -dnll[k] * x[j];
    for (std::int64_t a = 0; a < p; ++a) {
      const std::int64_t ka = a / d, ja = a % d;
      if (kind == FisherKind::diagonal) {
        F[a] += w * fw[ka * m + ka] * x[ja] * x[ja];
        continue;
      }
      for (std::int64_t b = 0; b < p; ++b) {
        const std::int64_t kb = b / d, jb = b % d;
        double v = 0;
        switch (kind) {
          case FisherKind::expected: v = w * fw[ka * m + kb] * x[ja] * x[jb]; break;
          case FisherKind::empirical: v = w * score[a] * score[b]; break;
          case FisherKind::meat: v = w * w * score[a] * score[b]; break;
          case FisherKind::empirical_centered:
            v = (score[a] - mean_score[a]) * (score[b] - mean_score[b]);
            break;
          default: break;
        }
        F[a + b * p] += v;
      }
    }
  }
  out.loss /= W;
  for (double& g : out.grad) g /= W;
  const double scale = kind == FisherKind::empirical_centered ? static_cast<double>(n) - 1.0 : Wf;
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

Shard relabel(Shard s, const std::string& family, int classes, std::uint64_t seed) {
  for (std::int64_t i = 0; i < s.n_rows; ++i) {
    const double u = rng::uniform(seed, 21, i, 0);
    const double e = s.row(i)[0] * 0.3;
    if (family == "poisson") s.y[i] = std::floor(-std::log(u) * std::exp(e) * 2);
    else if (family == "gaussian") s.y[i] = e + rng::normal(seed, 22, i, 0);
    else if (family == "gamma") s.y[i] = std::exp(e) * (-std::log(u) + 0.05);
    else if (family == "multinomial") s.y[i] = std::floor(u * classes);
  }
  return s;
}

}  // namespace natgrad::ref
