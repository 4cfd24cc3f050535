#include "natgrad/io/generator.hpp"

#include <charconv>
#include <algorithm>
#include <cmath>

#include "natgrad/core/error.hpp"
#include "natgrad/core/rng.hpp"

namespace natgrad {

namespace {
// Streams keep the different random quantities independent.
enum Stream : std::uint64_t { kLabel = 1, kFeature = 2, kFactor = 3, kBeta = 4, kNoise = 5 };

template <class T>
T parse_value(const std::string& key, const std::string& v, const std::string& spec) {
  T out{};
  if constexpr (std::is_floating_point_v<T>) {
    // from_chars for double: exponent forms such as 1e6 are accepted.
    auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
    if (ec != std::errc() || ptr != v.data() + v.size() || !std::isfinite(out))
      throw Error("generator spec '" + spec + "': " + key + "=" + v + " is not a number");
  } else {
    double d = 0;
    auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), d);
    if (ec != std::errc() || ptr != v.data() + v.size() || d < 0 || d != std::floor(d) || d > 9e18)
      throw Error("generator spec '" + spec + "': " + key + "=" + v +
                  " is not a non-negative integer");
    out = static_cast<T>(d);
  }
  return out;
}

double sigmoid(double x) { return x >= 0 ? 1 / (1 + std::exp(-x)) : std::exp(x) / (1 + std::exp(x)); }
}  // namespace

bool is_generator_spec(const std::string& data) { return data.rfind("gen:", 0) == 0; }

GeneratorSpec parse_generator_spec(const std::string& data) {
  if (!is_generator_spec(data)) throw Error("'" + data + "' is not a generator spec (gen:KIND:...)");
  GeneratorSpec s;
  const std::string rest = data.substr(4);
  const auto colon = rest.find(':');
  s.kind = rest.substr(0, colon);
  if (s.kind == "mixture") {
    s.rows = 200;
    s.cols = 2;
  } else if (s.kind == "logit") {
    s.rows = 100000;
    s.cols = 16;
  } else if (s.kind == "sparse-logit" || s.kind == "sparse-poisson") {
    s.rows = 10000;
    s.cols = 1000;
    s.signal = s.kind == "sparse-logit" ? 2.0 : 0.5;
  } else {
    throw Error("generator spec '" + data + "': unknown kind '" + s.kind +
                "' (expected mixture, logit, sparse-logit or sparse-poisson)");
  }
  const bool sparse = s.sparse();
  if (colon != std::string::npos) {
    std::string kvs = rest.substr(colon + 1);
    std::size_t pos = 0;
    while (pos <= kvs.size()) {
      const auto comma = kvs.find(',', pos);
      const std::string kv = kvs.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
      pos = comma == std::string::npos ? kvs.size() + 1 : comma + 1;
      if (kv.empty()) continue;
      const auto eq = kv.find('=');
      if (eq == std::string::npos)
        throw Error("generator spec '" + data + "': '" + kv + "' is not key=value");
      const std::string k = kv.substr(0, eq), v = kv.substr(eq + 1);
      if (k == "rows") s.rows = parse_value<std::int64_t>(k, v, data);
      else if (k == "cols") s.cols = parse_value<std::int64_t>(k, v, data);
      else if (k == "seed") s.seed = parse_value<std::uint64_t>(k, v, data);
      else if (k == "cond" && s.kind == "logit") s.cond = parse_value<double>(k, v, data);
      else if (k == "rho" && s.kind == "logit") s.rho = parse_value<double>(k, v, data);
      else if (k == "signal" && s.kind == "logit") s.signal = parse_value<double>(k, v, data);
      else if (k == "intercept" && s.kind == "logit") s.intercept = parse_value<double>(k, v, data);
      else if (k == "nnz" && sparse) s.nnz = parse_value<std::int64_t>(k, v, data);
      else if (k == "zipf" && sparse) s.zipf = parse_value<double>(k, v, data);
      else if (k == "signal" && sparse) s.signal = parse_value<double>(k, v, data);
      else if (k == "intercept" && sparse) s.intercept = parse_value<double>(k, v, data);
      else
        throw Error("generator spec '" + data + "': unknown key '" + k + "' for gen:" + s.kind +
                    (s.kind == "mixture" ? " (keys: rows, cols, seed)"
                     : sparse            ? " (keys: rows, cols, nnz, seed, zipf, signal, intercept)"
                                         : " (keys: rows, cols, seed, cond, rho, signal, intercept)"));
    }
  }
  if (s.rows < 1) throw Error("generator spec '" + data + "': rows must be >= 1");
  if (s.cols < 1) throw Error("generator spec '" + data + "': cols must be >= 1");
  if (sparse) {
    if (s.nnz < 1 || s.nnz > s.cols)
      throw Error("generator spec '" + data + "': nnz must be between 1 and cols (" + std::to_string(s.cols) + ")");
    if (!(s.zipf >= 0)) throw Error("generator spec '" + data + "': zipf must be >= 0");
  }
  if (s.kind == "logit") {
    if (!(s.cond >= 1)) throw Error("generator spec '" + data + "': cond must be >= 1");
    if (!(s.rho >= 0 && s.rho < 1)) throw Error("generator spec '" + data + "': rho must be in [0, 1)");
  }
  return s;
}

namespace {
double column_scale(const GeneratorSpec& s, std::int64_t j) {
  if (s.cols == 1) return 1.0;
  return std::pow(s.cond, -static_cast<double>(j) / static_cast<double>(s.cols - 1));
}
}  // namespace

std::vector<double> true_coefficients(const GeneratorSpec& s) {
  if (s.sparse()) {
    std::vector<double> beta(static_cast<std::size_t>(s.cols + 1));
    beta[0] = s.intercept;
    const double norm = s.signal / std::sqrt(static_cast<double>(s.nnz));
    for (std::int64_t j = 0; j < s.cols; ++j) beta[j + 1] = norm * rng::normal(s.seed, kBeta, 0, j);
    return beta;
  }
  if (s.kind != "logit") return {};
  std::vector<double> beta(static_cast<std::size_t>(s.cols + 1));
  beta[0] = s.intercept;
  const double norm = s.signal / std::sqrt(static_cast<double>(s.cols));
  for (std::int64_t j = 0; j < s.cols; ++j)
    beta[j + 1] = norm * rng::normal(s.seed, kBeta, 0, j) / column_scale(s, j);
  return beta;
}

namespace {

/// Column j in [0, cols) with probability ~ 1/(j+1)^zipf: the inverse CDF of the density
/// (x+1)^-zipf on [0, cols), floored.
std::int64_t zipf_column(double u, std::int64_t cols, double zipf) {
  const double c1 = static_cast<double>(cols) + 1;
  double x;
  if (std::abs(zipf - 1.0) < 1e-12) {
    x = std::pow(c1, u) - 1;
  } else {
    const double a = 1 - zipf;
    x = std::pow(1 + u * (std::pow(c1, a) - 1), 1 / a) - 1;
  }
  return std::clamp<std::int64_t>(static_cast<std::int64_t>(x), 0, cols - 1);
}

/// A Poisson(mu) draw from a uniform (inversion; a rounded normal above mu = 50).
double poisson_draw(double mu, double u, double z) {
  if (mu > 50) return std::max(0.0, std::round(mu + std::sqrt(mu) * z));
  double p = std::exp(-mu), cdf = p;
  double k = 0;
  while (u > cdf && k < 1000) {
    k += 1;
    p *= mu / k;
    cdf += p;
  }
  return k;
}

/// Row i's nnz distinct columns, sorted: Zipf draws (stream kFeature, draw a = 0, 1, ...)
/// until nnz distinct ones, at most 64 nnz draws; then the lowest columns not yet taken.
void sparse_row_columns(const GeneratorSpec& s, std::uint64_t i, std::vector<std::int64_t>& cols) {
  cols.clear();
  const auto k = static_cast<std::size_t>(s.nnz);
  for (std::uint64_t a = 0; cols.size() < k && a < 64 * static_cast<std::uint64_t>(s.nnz); ++a) {
    const std::int64_t j = zipf_column(rng::uniform(s.seed, kFeature, i, a), s.cols, s.zipf);
    if (std::find(cols.begin(), cols.end(), j) == cols.end()) cols.push_back(j);
  }
  std::sort(cols.begin(), cols.end());
  for (std::int64_t j = 0; cols.size() < k; ++j)
    if (!std::binary_search(cols.begin(), cols.end(), j)) cols.insert(std::lower_bound(cols.begin(), cols.end(), j), j);
}

Shard generate_sparse(const GeneratorSpec& s, std::int64_t begin, std::int64_t end, int threads, bool intercept_room) {
  Shard sh;
  sh.n_rows = std::max<std::int64_t>(0, end - begin);
  sh.n_cols = s.cols;
  sh.first_row = begin;
  sh.n_global = s.rows;
  sh.source = "gen:" + s.kind;
  sh.sparse = true;
  if (s.cols <= (std::int64_t{1} << 26))
    for (std::int64_t j = 0; j < s.cols; ++j) sh.names.push_back("x" + std::to_string(j + 1));
  SparseRows& c = sh.csr;
  c.wide = SparseRows::needs_wide(s.cols + (intercept_room ? 1 : 0));
  const std::int64_t n = sh.n_rows, k = s.nnz, nnz = n * k;
  const auto room = static_cast<std::size_t>(nnz + (intercept_room ? n : 0));
  c.row_ptr.resize(static_cast<std::size_t>(n) + 1);
  for (std::int64_t r = 0; r <= n; ++r) c.row_ptr[static_cast<std::size_t>(r)] = r * k;
  c.values.reserve(room);
  c.values.resize(static_cast<std::size_t>(nnz));
  if (c.wide) {
    c.index64.reserve(room);
    c.index64.resize(static_cast<std::size_t>(nnz));
  } else {
    c.index32.reserve(room);
    c.index32.resize(static_cast<std::size_t>(nnz));
  }
  sh.y.resize(static_cast<std::size_t>(n));
  // beta_j computed where needed (as true_coefficients() does): cols may be far more than
  // could be stored.
  const double norm = s.signal / std::sqrt(static_cast<double>(s.nnz));
  const bool logit = s.kind == "sparse-logit";
#pragma omp parallel num_threads(std::max(threads, 1))
  {
    std::vector<std::int64_t> cols;
#pragma omp for schedule(static)
    for (std::int64_t r = 0; r < n; ++r) {
      const auto i = static_cast<std::uint64_t>(begin + r);
      sparse_row_columns(s, i, cols);
      double eta = s.intercept;
      for (std::int64_t t = 0; t < k; ++t) {
        const auto at = static_cast<std::size_t>(r * k + t);
        const std::int64_t j = cols[static_cast<std::size_t>(t)];
        if (c.wide) c.index64[at] = j;
        else c.index32[at] = static_cast<std::uint32_t>(j);
        // A count: 1, or 2 with probability 1/4 (with all values 1, every row would sum to
        // nnz, collinear with an intercept).
        const double v = rng::uniform(s.seed, kNoise, i, static_cast<std::uint64_t>(t) + 1) < 0.25 ? 2.0 : 1.0;
        c.values[at] = v;
        eta += v * norm * rng::normal(s.seed, kBeta, 0, static_cast<std::uint64_t>(j));
      }
      const double u = rng::uniform(s.seed, kLabel, i, 0);
      sh.y[static_cast<std::size_t>(r)] =
          logit ? (u < sigmoid(eta) ? 1.0 : 0.0) : poisson_draw(std::exp(eta), u, rng::normal(s.seed, kNoise, i, 0));
    }
  }
  return sh;
}

}  // namespace

Shard generate_rows(const GeneratorSpec& s, std::int64_t begin, std::int64_t end, int threads, bool intercept_room) {
  if (s.sparse()) return generate_sparse(s, begin, end, threads, intercept_room);
  Shard sh;
  sh.n_rows = std::max<std::int64_t>(0, end - begin);
  sh.n_cols = s.cols;
  sh.first_row = begin;
  sh.n_global = s.rows;
  sh.source = "gen:" + s.kind;
  sh.x.resize(static_cast<std::size_t>(sh.n_rows * sh.n_cols));
  sh.y.resize(static_cast<std::size_t>(sh.n_rows));
  for (std::int64_t j = 0; j < s.cols; ++j) sh.names.push_back("x" + std::to_string(j + 1));
  const std::vector<double> beta = true_coefficients(s);
  std::vector<double> scale(static_cast<std::size_t>(s.cols));
  for (std::int64_t j = 0; j < s.cols; ++j) scale[j] = column_scale(s, j);
  const double a = std::sqrt(1.0 - s.rho), b = std::sqrt(s.rho);
#pragma omp parallel for num_threads(std::max(threads, 1)) schedule(static)
  for (std::int64_t r = 0; r < sh.n_rows; ++r) {
    const std::uint64_t i = static_cast<std::uint64_t>(begin + r);
    double* x = sh.x.data() + r * s.cols;
    if (s.kind == "mixture") {
      const double label = rng::uniform(s.seed, kLabel, i, 0) < 0.5 ? 0.0 : 1.0;
      for (std::int64_t j = 0; j < s.cols; ++j)
        x[j] = rng::normal(s.seed, kFeature, i, j) + (label > 0 ? 1.0 : -1.0);
      sh.y[r] = label;
    } else {
      const double common = rng::normal(s.seed, kFactor, i, 0);
      double eta = beta[0];
      for (std::int64_t j = 0; j < s.cols; ++j) {
        x[j] = scale[j] * (a * rng::normal(s.seed, kFeature, i, j) + b * common);
        eta += beta[j + 1] * x[j];
      }
      sh.y[r] = rng::uniform(s.seed, kLabel, i, 0) < sigmoid(eta) ? 1.0 : 0.0;
    }
  }
  return sh;
}

}  // namespace natgrad
