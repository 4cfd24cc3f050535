#include <algorithm>
#include <bit>
#include <cstdint>
#include <type_traits>
#include <boost/math/distributions/normal.hpp>
#include <cctype>
#include <cmath>

#include "natgrad/core/error.hpp"
#include "natgrad/core/option_table.hpp"
#include "natgrad/core/model.hpp"
#include "core/simd_kernels.hpp"

namespace natgrad {

namespace {
constexpr double kInvSqrt2Pi = 0.3989422804014327;
constexpr double kSqrt1_2 = 0.7071067811865476;

inline double xlogy(double x, double y) { return x == 0 ? 0.0 : x * std::log(y); }

/// The logistic function's pieces at eta from one exp and one log1p, with e = exp(-|eta|)
/// in (0, 1] (0 when |eta| > 745):
///   softplus(eta)  = log(1 + exp(eta))  = max(eta, 0) + log1p(e)  = -log(1 - p)
///   softplus(-eta) = log(1 + exp(-eta)) = max(-eta, 0) + log1p(e) = -log p
///   q = min(p, 1 - p) = e / (1 + e);  p (1 - p) = e / (1 + e)^2
/// Every piece is a sum or product of non-negative terms (no cancellation), so each has
/// the relative accuracy of exp and log1p for any eta; a value below the smallest normal
/// double (|eta| > 708) loses relative, never absolute, accuracy.
struct Logit {
  double e;  ///< exp(-|eta|)
  explicit Logit(double eta) : e(std::exp(-std::fabs(eta))) {}
  double log1p_e() const { return std::log1p(e); }
  double r() const { return 1 / (1 + e); }  ///< max(p, 1 - p)
};
inline double pos(double x) { return x > 0 ? x : 0.0; }

/// Binomial mean, its logs and dmu/deta for one link, computed without cancellation.
struct BinomialRow {
  double mu, log_mu, log_1mmu, dmu;
};
BinomialRow binomial_row(Link link, double eta) {
  BinomialRow r{};
  switch (link) {
    case Link::probit: {
      const double e = std::clamp(eta, -37.0, 37.0);  // Phi(-37) ~ 6e-300 stays normal
      r.mu = 0.5 * std::erfc(-e * kSqrt1_2);
      r.log_mu = std::log(r.mu);
      r.log_1mmu = std::log(0.5 * std::erfc(e * kSqrt1_2));
      r.dmu = kInvSqrt2Pi * std::exp(-0.5 * e * e);
      break;
    }
    case Link::cloglog: {
      const double e = std::clamp(eta, -700.0, 700.0);
      const double ex = std::exp(e);
      r.mu = -std::expm1(-ex);
      r.log_mu = std::log(r.mu);
      r.log_1mmu = -ex;
      r.dmu = std::exp(e - ex);
      break;
    }
    default: {  // logit
      const Logit g(eta);
      const double l1 = g.log1p_e(), big = g.r(), q = g.e * big;
      r.log_mu = -(pos(-eta) + l1);
      r.log_1mmu = -(pos(eta) + l1);
      r.mu = eta >= 0 ? big : q;
      r.dmu = q * big;
      break;
    }
  }
  return r;
}

/// Per-row forms of Glm::eval, one per family and link: row<NLL, D, F>(eta, y, l, d, f)
/// sets what is asked for (the flags) and nothing else, so that the loop below does only
/// the wanted work and no switch runs per row.
struct LogitRows {
  template <bool NLL, bool D, bool F>
  static void row(double eta, double y, double& l, double& d, double& f) {
    // Branch-free (the sign of eta is unpredictable): t = 1 where eta's sign bit is clear
    // (p >= 1/2), else 0, and selects by exact products with t and 1 - t. From the bit
    // rather than a comparison, which the compiler turns back into a branch.
    const Logit g(eta);
    const double t = static_cast<double>(1 - (std::bit_cast<std::uint64_t>(eta) >> 63));
    // y softplus(-eta) + (1 - y) softplus(eta) = log1p(e) + (eta >= 0 ? 1 - y : y) |eta|
    if constexpr (NLL) l = g.log1p_e() + (t * (1 - y) + (1 - t) * y) * std::fabs(eta);
    if constexpr (D || F) {
      const double big = g.r(), q = g.e * big;  // max(p, 1 - p), min(p, 1 - p)
      // p - y, as (1 - y) - (1 - p) where p >= 1/2: no cancellation where y = 1
      if constexpr (D) d = (t - y) + (1 - 2 * t) * q;
      if constexpr (F) f = q * big;  // p (1 - p)
    }
  }
};


/// The non-canonical binomial links (probit, cloglog).
template <Link L>
struct BinomialRows {
  template <bool NLL, bool D, bool F>
  static void row(double eta, double y, double& l, double& d, double& f) {
    const BinomialRow r = binomial_row(L, eta);
    if constexpr (NLL) l = -(y * r.log_mu + (1 - y) * r.log_1mmu);
    const double a = r.dmu / r.mu, b = r.dmu / (1 - r.mu);  // dmu/mu, dmu/(1-mu)
    if constexpr (D) d = -(y * a - (1 - y) * b);
    if constexpr (F) f = a * b;
  }
};

struct PoissonLogRows {
  template <bool NLL, bool D, bool F>
  static void row(double eta, double y, double& l, double& d, double& f) {
    const double mu = std::exp(std::min(eta, 700.0));
    if constexpr (NLL) l = mu - y * eta;
    if constexpr (D) d = mu - y;
    if constexpr (F) f = mu;
  }
};

struct GaussianIdentityRows {
  template <bool NLL, bool D, bool F>
  static void row(double eta, double y, double& l, double& d, double& f) {
    const double r = eta - y;
    if constexpr (NLL) l = 0.5 * r * r;
    if constexpr (D) d = r;
    if constexpr (F) f = 1.0;
  }
};

struct GaussianLogRows {
  template <bool NLL, bool D, bool F>
  static void row(double eta, double y, double& l, double& d, double& f) {
    const double mu = std::exp(std::min(eta, 700.0)), r = mu - y;
    if constexpr (NLL) l = 0.5 * r * r;
    if constexpr (D) d = r * mu;
    if constexpr (F) f = mu * mu;
  }
};

struct GammaInverseRows {
  template <bool NLL, bool D, bool F>
  static void row(double eta, double y, double& l, double& d, double& f) {
    if (eta > 0) {  // mu = 1/eta must be positive
      const double mu = 1.0 / eta;
      if constexpr (NLL) l = y * eta - std::log(eta);
      if constexpr (D) d = y - mu;
      if constexpr (F) f = mu * mu;
    } else {  // outside the model: the solver backs off
      if constexpr (NLL) l = INFINITY;
      if constexpr (D) d = 0;
      if constexpr (F) f = 0;
    }
  }
};

struct GammaLogRows {
  template <bool NLL, bool D, bool F>
  static void row(double eta, double y, double& l, double& d, double& f) {
    const double ie = std::exp(-std::max(eta, -700.0));  // 1/mu
    if constexpr (NLL) l = y * ie + eta;
    if constexpr (D) d = 1.0 - y * ie;
    if constexpr (F) f = 1.0;
  }
};

template <class Rows, bool NLL, bool D, bool F>
void eval_loop(std::size_t n, const double* eta, const double* y, double* nll, double* dnll,
               double* fisher) {
  // The logistic rows have SIMD versions (simd_kernels.inl: exp and log1p by polynomials).
  if constexpr (std::is_same_v<Rows, LogitRows>)
    if (const detail::KernelSet* ks = detail::active_kernel_set())
      return ks->logit[(NLL ? 1 : 0) | (D ? 2 : 0) | (F ? 4 : 0)](n, eta, y, nll, dnll, fisher);
  for (std::size_t i = 0; i < n; ++i) {
    double l = 0, d = 0, f = 0;
    Rows::template row<NLL, D, F>(eta[i], y[i], l, d, f);
    if constexpr (NLL) nll[i] = l;
    if constexpr (D) dnll[i] = d;
    if constexpr (F) fisher[i] = f;
  }
}

/// One loop per combination of wanted outputs (a null pointer: not wanted).
template <class Rows>
void eval_rows(std::size_t n, const double* eta, const double* y, double* nll, double* dnll,
               double* fisher) {
  switch ((nll ? 1 : 0) | (dnll ? 2 : 0) | (fisher ? 4 : 0)) {
    case 1: return eval_loop<Rows, true, false, false>(n, eta, y, nll, dnll, fisher);
    case 2: return eval_loop<Rows, false, true, false>(n, eta, y, nll, dnll, fisher);
    case 3: return eval_loop<Rows, true, true, false>(n, eta, y, nll, dnll, fisher);
    case 4: return eval_loop<Rows, false, false, true>(n, eta, y, nll, dnll, fisher);
    case 5: return eval_loop<Rows, true, false, true>(n, eta, y, nll, dnll, fisher);
    case 6: return eval_loop<Rows, false, true, true>(n, eta, y, nll, dnll, fisher);
    case 7: return eval_loop<Rows, true, true, true>(n, eta, y, nll, dnll, fisher);
    default: return;  // nothing wanted
  }
}

double linkinv(Link l, double eta) {
  switch (l) {
    case Link::logit:
    case Link::probit:
    case Link::cloglog: return binomial_row(l, eta).mu;
    case Link::log: return std::exp(std::min(eta, 700.0));
    case Link::identity: return eta;
    case Link::inverse: return 1.0 / eta;
    case Link::sqrt: return eta * eta;
  }
  return NAN;
}

double linkfun(Link l, double mu) {
  switch (l) {
    case Link::logit: return std::log(mu / (1 - mu));
    case Link::probit: return boost::math::quantile(boost::math::normal(), mu);
    case Link::cloglog: return std::log(-std::log1p(-mu));
    case Link::log: return std::log(mu);
    case Link::identity: return mu;
    case Link::inverse: return 1.0 / mu;
    case Link::sqrt: return std::sqrt(mu);
  }
  return NAN;
}

const char* family_name(Family f) {
  switch (f) {
    case Family::binomial: return "binomial";
    case Family::poisson: return "poisson";
    case Family::gaussian: return "gaussian";
    case Family::gamma: return "gamma";
  }
  return "?";
}
const char* link_name(Link l) {
  switch (l) {
    case Link::logit: return "logit";
    case Link::probit: return "probit";
    case Link::cloglog: return "cloglog";
    case Link::log: return "log";
    case Link::identity: return "identity";
    case Link::inverse: return "inverse";
    case Link::sqrt: return "sqrt";
  }
  return "?";
}
}  // namespace

void Model::eval_multi(std::size_t n, const double* eta, const double* y, double* nll, double* dnll,
                       double* factor) const {
  eval(n, eta, y, nll, dnll, factor);
  if (factor)
    for (std::size_t i = 0; i < n; ++i) factor[i] = std::sqrt(factor[i]);
}

// ---------------------------------------------------------------- Glm

Glm::Glm(Family f, Link l, bool quasi) : family_(f), link_(l), quasi_(quasi) {
  if (quasi && f != Family::binomial && f != Family::poisson)
    throw Error("quasi families are quasibinomial and quasipoisson");
}

std::string Glm::name() const {
  return std::string(quasi_ ? "quasi" : "") + family_name(family_) + "/" + link_name(link_);
}

std::string Glm::check_label(double y) const {
  if (!std::isfinite(y)) return "a finite label";
  switch (family_) {
    case Family::binomial:
      return y >= 0 && y <= 1 ? "" : "a binomial label in {0, 1} (or a proportion in [0, 1])";
    case Family::poisson: return y >= 0 ? "" : "a non-negative count";
    case Family::gaussian: return "";
    case Family::gamma: return y > 0 ? "" : "a positive value";
  }
  return "";
}

void Glm::eval(std::size_t n, const double* eta, const double* y, double* nll, double* dnll,
               double* fisher) const {
  switch (family_) {
    case Family::binomial:
      switch (link_) {
        case Link::probit: return eval_rows<BinomialRows<Link::probit>>(n, eta, y, nll, dnll, fisher);
        case Link::cloglog: return eval_rows<BinomialRows<Link::cloglog>>(n, eta, y, nll, dnll, fisher);
        default: return eval_rows<LogitRows>(n, eta, y, nll, dnll, fisher);
      }
    case Family::poisson: return eval_rows<PoissonLogRows>(n, eta, y, nll, dnll, fisher);
    case Family::gaussian:
      if (link_ == Link::identity) return eval_rows<GaussianIdentityRows>(n, eta, y, nll, dnll, fisher);
      return eval_rows<GaussianLogRows>(n, eta, y, nll, dnll, fisher);
    case Family::gamma:
      if (link_ == Link::inverse) return eval_rows<GammaInverseRows>(n, eta, y, nll, dnll, fisher);
      return eval_rows<GammaLogRows>(n, eta, y, nll, dnll, fisher);
  }
}

double Glm::mean(double eta) const { return linkinv(link_, eta); }

double Glm::unit_deviance(const double* eta, double y) const {
  const double mu = mean(*eta);
  switch (family_) {
    case Family::binomial: {
      const BinomialRow r = binomial_row(link_, *eta);
      return 2 * (xlogy(y, y) - y * r.log_mu + xlogy(1 - y, 1 - y) - (1 - y) * r.log_1mmu);
    }
    case Family::poisson: return 2 * (xlogy(y, y / mu) - (y - mu));
    case Family::gaussian: return (y - mu) * (y - mu);
    case Family::gamma: return -2 * (std::log(y / mu) - (y - mu) / mu);
  }
  return NAN;
}

double Glm::pearson(const double* eta, double y) const {
  const double mu = mean(*eta);
  double v = 1;
  switch (family_) {
    case Family::binomial: v = mu * (1 - mu); break;
    case Family::poisson: v = mu; break;
    case Family::gaussian: v = 1; break;
    case Family::gamma: v = mu * mu; break;
  }
  return (y - mu) * (y - mu) / v;
}

double Glm::loglik(const double* eta, double y, double w, double phi) const {
  if (quasi_) return NAN;  // no likelihood (R: AIC NA)
  if (w <= 0) return 0.0;
  const double mu = mean(*eta);
  switch (family_) {
    case Family::binomial: {  // R: dbinom(round(w y), round(w), mu), w = trials
      const BinomialRow r = binomial_row(link_, *eta);
      const double m = std::round(w), s = std::round(w * y);
      return std::lgamma(m + 1) - std::lgamma(s + 1) - std::lgamma(m - s + 1) + s * r.log_mu +
             (m - s) * r.log_1mmu;
    }
    case Family::poisson: return w * (xlogy(y, mu) - mu - std::lgamma(y + 1));
    case Family::gaussian:
      return 0.5 * std::log(w) - 0.5 * std::log(2 * M_PI * phi) - w * (y - mu) * (y - mu) / (2 * phi);
    case Family::gamma: {  // dgamma(y; shape 1/phi, scale mu phi), weighted
      const double k = 1 / phi, s = mu * phi;
      return w * (-std::lgamma(k) - k * std::log(s) + (k - 1) * std::log(y) - y / s);
    }
  }
  return NAN;
}

double Glm::loglik_dispersion(double deviance, double nobs, double wsum) const {
  if (family_ == Family::gaussian) return deviance / nobs;  // R: gaussian()$aic
  if (family_ == Family::gamma) return deviance / wsum;     // R: Gamma()$aic
  return 1.0;
}

std::vector<double> Glm::null_eta(const std::vector<double>& label_sums, double wsum) const {
  return {linkfun(link_, label_sums.at(0) / wsum)};
}

double Glm::start_eta(double y) const {
  switch (family_) {  // R's mustart, with unit weights
    case Family::binomial: return linkfun(link_, (y + 0.5) / 2);
    case Family::poisson: return linkfun(link_, y + 0.1);
    case Family::gaussian: return link_ == Link::log ? std::log(std::max(y, 0.1)) : y;
    case Family::gamma: return linkfun(link_, y);
  }
  return 0;
}

// ---------------------------------------------------------------- Negative binomial

namespace {
/// One row of the negative binomial: mu, dmu/deta, dmu/deta / mu and log mu; valid = eta in
/// the link's domain (eta > 0 for sqrt and identity).
struct NegBinRow {
  double mu = 0, dmu = 0, dmu_mu = 0, log_mu = 0;
  bool valid = true;
};
NegBinRow negbin_row(Link link, double eta) {
  NegBinRow r;
  switch (link) {
    case Link::sqrt:
      r.valid = eta > 0;
      r.mu = eta * eta;
      r.dmu = 2 * eta;
      r.dmu_mu = 2 / eta;
      r.log_mu = 2 * std::log(eta);
      break;
    case Link::identity:
      r.valid = eta > 0;
      r.mu = eta;
      r.dmu = 1;
      r.dmu_mu = 1 / eta;
      r.log_mu = std::log(eta);
      break;
    default: {  // log
      const double e = std::min(eta, 700.0);
      r.mu = std::exp(e);
      r.dmu = r.mu;
      r.dmu_mu = 1;
      r.log_mu = e;
      break;
    }
  }
  return r;
}
}  // namespace

NegativeBinomialModel::NegativeBinomialModel(Link l, double theta) : link_(l), theta_(theta) {
  if (l != Link::log && l != Link::sqrt && l != Link::identity)
    throw Error(std::string("negative.binomial: link ") + link_name(l) + " is not available (log, sqrt, identity)");
  if (!(theta > 0)) throw Error("negative.binomial: theta must be positive");
}

std::string NegativeBinomialModel::name() const { return std::string("negative.binomial/") + link_name(link_); }

std::string NegativeBinomialModel::check_label(double y) const {
  return std::isfinite(y) && y >= 0 ? "" : "a non-negative count";
}

void NegativeBinomialModel::eval(std::size_t n, const double* eta, const double* y, double* nll, double* dnll,
                                 double* fisher) const {
  const double th = theta_;
  const bool poisson = std::isinf(th);
  for (std::size_t i = 0; i < n; ++i) {
    const NegBinRow r = negbin_row(link_, eta[i]);
    if (!r.valid) {  // outside the model: the solver backs off
      if (nll) nll[i] = INFINITY;
      if (dnll) dnll[i] = 0;
      if (fisher) fisher[i] = 0;
      continue;
    }
    const double a = poisson ? 1.0 : th / (r.mu + th);  // mu / V(mu)
    if (nll) nll[i] = (poisson ? r.mu : (y[i] + th) * std::log1p(r.mu / th)) - (y[i] == 0 ? 0.0 : y[i] * r.log_mu);
    if (dnll) dnll[i] = (r.mu - y[i]) * a * r.dmu_mu;
    if (fisher) fisher[i] = r.dmu * r.dmu_mu * a;
  }
}

double NegativeBinomialModel::mean(double eta) const { return linkinv(link_, eta); }

double NegativeBinomialModel::unit_deviance(const double* eta, double y) const {
  const double mu = mean(*eta);
  if (std::isinf(theta_)) return 2 * (xlogy(y, y / mu) - (y - mu));
  // (y + theta) log((y + theta)/(mu + theta)) = (y + theta) log1p((y - mu)/(mu + theta))
  return 2 * (xlogy(y, y / mu) - (y + theta_) * std::log1p((y - mu) / (mu + theta_)));
}

double NegativeBinomialModel::pearson(const double* eta, double y) const {
  const double mu = mean(*eta);
  const double v = std::isinf(theta_) ? mu : mu + mu * mu / theta_;
  return (y - mu) * (y - mu) / v;
}

double NegativeBinomialModel::loglik(const double* eta, double y, double w, double) const {
  if (w <= 0) return 0.0;
  const double mu = mean(*eta), th = theta_;
  if (std::isinf(th)) return w * (xlogy(y, mu) - mu - std::lgamma(y + 1));
  return w * (std::lgamma(th + y) - std::lgamma(th) - std::lgamma(y + 1) + th * std::log(th) + xlogy(y, mu) -
              (th + y) * std::log(th + mu));
}

std::vector<double> NegativeBinomialModel::null_eta(const std::vector<double>& label_sums, double wsum) const {
  return {linkfun(link_, label_sums.at(0) / wsum)};  // the weighted mean, at any theta
}

double NegativeBinomialModel::start_eta(double y) const {
  return linkfun(link_, std::isinf(theta_) ? y + 0.1 : y + (y == 0 ? 1.0 / 6 : 0.0));
}

// ---------------------------------------------------------------- Multinomial

MultinomialModel::MultinomialModel(int classes) : classes_(classes) {
  if (classes < 2) throw Error("multinomial needs at least 2 classes, found " + std::to_string(classes));
}

std::string MultinomialModel::check_label(double y) const {
  if (std::isfinite(y) && y >= 0 && y < classes_ && y == std::floor(y)) return {};
  return "a class id in 0.." + std::to_string(classes_ - 1);
}

void MultinomialModel::probabilities(const double* eta, double* p) const {
  double mx = 0;
  for (int k = 1; k < classes_; ++k) mx = std::max(mx, eta[k - 1]);
  double s = std::exp(-mx);
  p[0] = s;
  for (int k = 1; k < classes_; ++k) s += (p[k] = std::exp(eta[k - 1] - mx));
  for (int k = 0; k < classes_; ++k) p[k] /= s;
}

void MultinomialModel::eval(std::size_t n, const double* eta, const double* y, double* nll, double* dnll,
                            double* fisher) const {
  // Two classes have one linear predictor, so the kernels take the scalar path: class 1
  // against class 0 is exactly the binomial logit model of the 0/1 label.
  if (classes_ == 2) return Glm(Family::binomial, Link::logit).eval(n, eta, y, nll, dnll, fisher);
  // Scalar interface is meaningless for K-1 > 1 outputs; the kernels use eval_multi.
  for (std::size_t i = 0; i < n; ++i) {
    if (nll) nll[i] = NAN;
    if (dnll) dnll[i] = NAN;
    if (fisher) fisher[i] = NAN;
  }
}

void MultinomialModel::eval_multi(std::size_t n, const double* eta, const double* y, double* nll,
                                  double* dnll, double* factor) const {
  const int K = classes_, m = K - 1;
  std::vector<double> p(static_cast<std::size_t>(K));
  for (std::size_t i = 0; i < n; ++i) {
    const double* e = eta + i * m;
    const int c = static_cast<int>(y[i]);
    double mx = 0;
    for (int k = 0; k < m; ++k) mx = std::max(mx, e[k]);
    double s = std::exp(-mx);
    for (int k = 0; k < m; ++k) s += std::exp(e[k] - mx);
    const double lse = mx + std::log(s);
    if (nll) nll[i] = lse - (c == 0 ? 0.0 : e[c - 1]);
    p[0] = std::exp(-lse);
    for (int k = 1; k < K; ++k) p[k] = std::exp(e[k - 1] - lse);
    if (dnll)
      for (int k = 1; k < K; ++k) dnll[i * m + k - 1] = p[k] - (c == k ? 1.0 : 0.0);
    if (factor)  // M[k][c] = sqrt(p_c) (delta_kc - p_k): M M^T = diag(p) - p p^T
      for (int k = 1; k < K; ++k)
        for (int cc = 0; cc < K; ++cc)
          factor[(i * m + k - 1) * K + cc] = std::sqrt(p[cc]) * ((k == cc ? 1.0 : 0.0) - p[k]);
  }
}

double MultinomialModel::unit_deviance(const double* eta, double y) const {
  return -2 * loglik(eta, y, 1.0, 1.0);
}

double MultinomialModel::pearson(const double* eta, double y) const {
  std::vector<double> p(static_cast<std::size_t>(classes_));
  probabilities(eta, p.data());
  double s = 0;
  for (int k = 0; k < classes_; ++k) {
    const double r = (static_cast<int>(y) == k ? 1.0 : 0.0) - p[k];
    s += r * r / p[k];
  }
  return s;
}

double MultinomialModel::loglik(const double* eta, double y, double w, double) const {
  double nll = 0;
  eval_multi(1, eta, &y, &nll, nullptr, nullptr);
  return -w * nll;
}

std::vector<double> MultinomialModel::null_eta(const std::vector<double>& class_sums, double) const {
  std::vector<double> e(static_cast<std::size_t>(classes_ - 1));
  for (int k = 1; k < classes_; ++k) e[k - 1] = std::log(class_sums.at(k) / class_sums.at(0));
  return e;
}

double MultinomialModel::mean(double) const { return NAN; }

double MultinomialModel::start_eta(double y) const {
  // Two classes: R's binomial start (the scalar path runs the IRLS start); more: zero.
  return classes_ == 2 ? Glm(Family::binomial, Link::logit).start_eta(y) : 0.0;
}

// ---------------------------------------------------------------- factory

namespace {
constexpr Choice<ModelFamily> kFamilies[] = {
    {ModelFamily::binomial, "binomial"}, {ModelFamily::poisson, "poisson"},         {ModelFamily::gaussian, "gaussian"},
    {ModelFamily::gamma, "gamma"},       {ModelFamily::multinomial, "multinomial"}, {ModelFamily::quasibinomial, "quasibinomial"},
    {ModelFamily::quasipoisson, "quasipoisson"}, {ModelFamily::negative_binomial, "negative.binomial"},
    {ModelFamily::binomial, "logistic"}, {ModelFamily::negative_binomial, "negbin"}};
constexpr Choice<LinkFunction> kLinks[] = {
    {LinkFunction::logit, "logit"}, {LinkFunction::probit, "probit"},     {LinkFunction::cloglog, "cloglog"},
    {LinkFunction::log, "log"},     {LinkFunction::identity, "identity"}, {LinkFunction::inverse, "inverse"},
    {LinkFunction::softmax, "softmax"}, {LinkFunction::sqrt, "sqrt"}, {LinkFunction::canonical, ""}};
}  // namespace

ModelFamily family_from_string(const std::string& s) {
  try {
    return parse_choice(kFamilies, "family", s, /*ignore_case=*/true);  // R's "Gamma"
  } catch (const Error&) {
    throw Error("unknown --family '" + s + "' (expected: binomial, poisson, gaussian, gamma, multinomial, quasibinomial, quasipoisson, "
                "negative.binomial)");
  }
}
LinkFunction link_from_string(const std::string& s) {
  return s == "canonical" ? LinkFunction::canonical : parse_choice(kLinks, "link", s, /*ignore_case=*/true);
}
const char* to_string(ModelFamily f) { return choice_name(kFamilies, f); }
const char* to_string(LinkFunction l) { return choice_name(kLinks, l); }

std::unique_ptr<Model> make_model(ModelFamily family, LinkFunction link, int classes) {
  using L = LinkFunction;
  auto bad_link = [&](const char* allowed) {
    return Error(std::string("--link ") + to_string(link) + " is not available for family " + to_string(family) +
                 " (expected: " + allowed + ")");
  };
  switch (family) {
    case ModelFamily::binomial:
      if (link == L::canonical || link == L::logit) return std::make_unique<LogisticModel>();
      if (link == L::probit) return std::make_unique<Glm>(Family::binomial, Link::probit);
      if (link == L::cloglog) return std::make_unique<Glm>(Family::binomial, Link::cloglog);
      throw bad_link("logit, probit, cloglog");
    case ModelFamily::quasibinomial:
      if (link == L::canonical || link == L::logit) return std::make_unique<Glm>(Family::binomial, Link::logit, true);
      if (link == L::probit) return std::make_unique<Glm>(Family::binomial, Link::probit, true);
      if (link == L::cloglog) return std::make_unique<Glm>(Family::binomial, Link::cloglog, true);
      throw bad_link("logit, probit, cloglog");
    case ModelFamily::poisson:
      if (link == L::canonical || link == L::log) return std::make_unique<Glm>(Family::poisson, Link::log);
      throw bad_link("log");
    case ModelFamily::quasipoisson:
      if (link == L::canonical || link == L::log) return std::make_unique<Glm>(Family::poisson, Link::log, true);
      throw bad_link("log");
    case ModelFamily::negative_binomial:
      if (link == L::canonical || link == L::log) return std::make_unique<NegativeBinomialModel>(Link::log, 1.0);
      if (link == L::sqrt) return std::make_unique<NegativeBinomialModel>(Link::sqrt, 1.0);
      if (link == L::identity) return std::make_unique<NegativeBinomialModel>(Link::identity, 1.0);
      throw bad_link("log, sqrt, identity");
    case ModelFamily::gaussian:
      if (link == L::canonical || link == L::identity) return std::make_unique<Glm>(Family::gaussian, Link::identity);
      if (link == L::log) return std::make_unique<Glm>(Family::gaussian, Link::log);
      throw bad_link("identity, log");
    case ModelFamily::gamma:
      if (link == L::canonical || link == L::inverse) return std::make_unique<Glm>(Family::gamma, Link::inverse);
      if (link == L::log) return std::make_unique<Glm>(Family::gamma, Link::log);
      throw bad_link("inverse, log");
    case ModelFamily::multinomial:
      if (link != L::canonical && link != L::softmax && link != L::logit) throw bad_link("softmax");
      return std::make_unique<MultinomialModel>(classes < 2 ? 2 : classes);
  }
  throw Error("unknown family");
}

std::unique_ptr<Model> make_model(const std::string& family, const std::string& link, int classes) {
  return make_model(family_from_string(family), link_from_string(link), classes);
}

}  // namespace natgrad
