#include "natgrad/core/glm_fit.hpp"

#include <omp.h>

#include <algorithm>
#include <array>
#include <boost/math/special_functions/digamma.hpp>
#include <boost/math/special_functions/trigamma.hpp>
#include <cmath>
#include <sstream>

#include "natgrad/core/error.hpp"

namespace natgrad {

namespace {
constexpr Choice<StartRule> kStartRules[] = {{StartRule::irls, "irls"}, {StartRule::zero, "zero"}};
ModelFamily family_option(const std::string& s) { return family_from_string(s); }
LinkFunction link_option(const std::string& s) { return link_from_string(s); }
}  // namespace

StartRule start_rule_from_string(const std::string& s) { return parse_choice(kStartRules, "start", s); }
const char* to_string(StartRule s) { return choice_name(kStartRules, s); }

const OptionTable<GlmOptions>& glm_option_table() {
  using O = GlmOptions;
  static const OptionTable<O> table = join<O>({
      {choice_option("family", &O::family, "binomial",
                     "binomial | poisson | gaussian | gamma | multinomial (labels 0..K-1, class 0 the reference) | "
                     "quasibinomial | quasipoisson (dispersion estimated, no likelihood) | negative.binomial "
                     "(MASS::glm.nb; theta estimated unless --theta); R's spellings such as Gamma are accepted, "
                     "negbin = negative.binomial",
                     &family_option, &to_string, kOptionResult),
       choice_option("link", &O::link, "",
                     "link function (default: the family's canonical one; binomial: logit | probit | cloglog; "
                     "quasibinomial as binomial; poisson, quasipoisson: log; gaussian: identity | log; gamma: inverse | log; "
                     "negative.binomial: log | sqrt | identity; multinomial: softmax)",
                     &link_option, &to_string, kOptionResult),
       number_option<O, int>("classes", &O::classes, "0",
                             "multinomial: number of classes K (default: 1 + the largest label)", kOptionResult,
                             [](int k) { return k == 0 || k >= 2 ? std::string() : "must be >= 2"; }),
       choice_option("start", &O::start, "irls", "irls (R's starting values: one weighted least-squares step) | zero",
                     &start_rule_from_string, &to_string, kOptionRecorded),
       switch_option<O>("drop-collinear", &O::drop_collinear,
                        "drop linearly dependent columns (reported as NA) instead of stopping with an error",
                        kOptionRecorded),
       switch_option<O>("penalize-intercept", &O::penalize_intercept, "apply --l2 to the intercept too",
                        kOptionResult),
       switch_option<O>("no-inference", &O::inference, "skip standard errors, deviances and AIC/BIC",
                        kOptionRecorded, /*inverted=*/true),
       text_option<O>("se-columns", &O::se_columns, "",
                      "standard errors beyond 4096 parameters, where the P x P covariance is not formed by "
                      "default: a comma-separated list of column names or 0-based parameter indices (one "
                      "conjugate-gradient solve each), or 'all' (the full covariance at any P)",
                      kOptionRecorded),
       number_option<O, double>("theta", &O::theta, "0",
                                "negative.binomial: fix theta (V = mu + mu^2/theta; MASS's negative.binomial(theta) "
                                "in glm()); 0 = estimate it by maximum likelihood as MASS::glm.nb",
                                kOptionResult,
                                [](double t) { return t >= 0 && std::isfinite(t) ? std::string() : "must be >= 0 (0: estimated)"; }),
       number_option<O, double>("conf-level", &O::conf_level, "0.95",
                                "level of the Wald confidence intervals estimate +- z SE (R's confint.default)",
                                kOptionRecorded,
                                [](double c) { return c > 0 && c < 1 ? std::string() : "must be in (0, 1)"; })},
      nest<O>(fit_option_table(), [](auto& o) -> auto& { return o.fit; }),
  });
  return table;
}

void GlmOptions::validate() const {
  for (const auto& o : glm_option_table())
    if (o.check && !find_option(fit_option_table(), o.name)) o.check(*this);  // the fit's rows: below
  fit.validate();
  make_model(family, link, 2);  // the link is available for the family
  if (theta != 0 && family != ModelFamily::negative_binomial)
    throw Error("--theta is for --family negative.binomial (it is " + std::string(to_string(family)) + ")");
}

namespace {

/// Checks every label against the model on every rank (collective); names the row.
void check_labels(const Shard& s, const Model& m, const Communicator& comm) {
  std::string msg;
  for (std::int64_t i = 0; i < s.n_rows && msg.empty(); ++i) {
    const std::string why = m.check_label(s.y[i]);
    if (!why.empty()) {
      std::ostringstream o;
      o << s.source << ": data row " << s.first_row + i + 1 << ": label " << s.y[i] << " is invalid for "
        << m.name() << " (expected " << why << ")";
      msg = o.str();
    }
  }
  comm.check(msg.empty(), msg);
}

/// The largest label over all ranks (multinomial: K = 1 + max), collective.
int count_classes(const Shard& s, const Communicator& comm) {
  std::int64_t mx = 0;
  for (double y : s.y)
    if (std::isfinite(y) && y >= 0 && y < 1e6) mx = std::max<std::int64_t>(mx, static_cast<std::int64_t>(y));
  comm.allreduce_max(&mx, 1);
  return static_cast<int>(mx) + 1;
}

/// Multinomial, after check_labels (every label a class id 0..K-1): each class's rows,
/// and those with a positive prior weight, counted over all ranks (one all-reduce). A class
/// without rows has no finite estimate (its linear predictor runs to -infinity), so an
/// empty class is an error naming it, the labels found and the remedy. \p given: K came
/// from --classes rather than from the largest label.
void check_classes(const Shard& s, int K, bool given, const Communicator& comm) {
  const auto k = static_cast<std::size_t>(K);
  std::vector<std::int64_t> n(2 * k, 0);  // [rows of class c | rows of class c with weight > 0]
  for (std::int64_t i = 0; i < s.n_rows; ++i) {
    const auto c = static_cast<std::size_t>(s.y[static_cast<std::size_t>(i)]);
    ++n[c];
    if (s.weight.empty() || s.weight[static_cast<std::size_t>(i)] > 0) ++n[k + c];
  }
  comm.allreduce_sum(n.data(), n.size());
  std::vector<int> empty, present;
  bool weightless = false;  // a class with rows, all of weight 0
  for (std::size_t c = 0; c < k; ++c) {
    if (n[k + c] > 0) {
      present.push_back(static_cast<int>(c));
    } else {
      empty.push_back(static_cast<int>(c));
      weightless = weightless || n[c] > 0;
    }
  }
  if (empty.empty()) return;
  std::string list;
  for (std::size_t j = 0; j < empty.size() && j < 10; ++j) list += (j ? ", " : "") + std::to_string(empty[j]);
  if (empty.size() > 10) list += ", ... (" + std::to_string(empty.size()) + " in all)";
  std::ostringstream m;
  m << "multinomial: class" << (empty.size() > 1 ? "es " : " ") << list << (empty.size() > 1 ? " have" : " has")
    << " no rows" << (weightless ? " with a positive weight" : "") << " (labels found: ";
  if (present.empty()) m << "none";
  else m << present.front() << ".." << present.back() << ", " << present.size() << " distinct";
  m << "; " << K << " classes 0.." << K - 1 << (given ? " from --classes" : " from the largest label")
    << "): labels are class ids 0..K-1 with class 0 the reference, and a class without rows has no finite "
       "estimate; ";
  if (present.empty()) {
    m << "give rows of at least two classes";
  } else {
    const int lo = present.front(), hi = present.back();
    const bool gaps = hi - lo + 1 != static_cast<int>(present.size());
    std::vector<std::string> fix;
    if (gaps) fix.push_back("recode the labels to 0..K-1 without gaps");
    else if (lo > 0) fix.push_back("recode the labels to start at 0 (e.g. y - " + std::to_string(lo) + ")");
    if (hi < K - 1) fix.push_back(hi >= 1 ? "set --classes " + std::to_string(hi + 1) : "give rows of at least two classes");
    for (std::size_t j = 0; j < fix.size(); ++j) m << (j ? ", and " : "") << fix[j];
  }
  comm.check(false, m.str());
}

/// Removes columns from the design in place (no second copy of X): from each dense row,
/// or a CSR shard's entries of those columns, the later columns renumbered.
void drop_columns(Shard& s, const std::vector<std::int64_t>& cols) {
  std::vector<char> keep(static_cast<std::size_t>(s.n_cols), 1);
  for (auto c : cols) keep[static_cast<std::size_t>(c)] = 0;
  const std::int64_t d = s.n_cols, nd = d - static_cast<std::int64_t>(cols.size());
  if (s.sparse) {
    std::vector<std::int64_t> to(static_cast<std::size_t>(d), -1);  // new index of a kept column
    for (std::int64_t j = 0, o = 0; j < d; ++j)
      if (keep[static_cast<std::size_t>(j)]) to[static_cast<std::size_t>(j)] = o++;
    SparseRows& c = s.csr;
    std::int64_t o = 0;
    for (std::int64_t i = 0; i < s.n_rows; ++i) {
      const std::int64_t b = c.row_ptr[static_cast<std::size_t>(i)], e = c.row_ptr[static_cast<std::size_t>(i) + 1];
      c.row_ptr[static_cast<std::size_t>(i)] = o;
      for (std::int64_t k = b; k < e; ++k) {
        const std::int64_t j = to[static_cast<std::size_t>(c.index(k))];
        if (j < 0) continue;
        c.values[static_cast<std::size_t>(o)] = c.values[static_cast<std::size_t>(k)];
        if (c.wide) c.index64[static_cast<std::size_t>(o)] = j;
        else c.index32[static_cast<std::size_t>(o)] = static_cast<std::uint32_t>(j);
        ++o;
      }
    }
    if (!c.row_ptr.empty()) c.row_ptr[static_cast<std::size_t>(s.n_rows)] = o;
    c.values.resize(static_cast<std::size_t>(o));
    if (c.wide) c.index64.resize(static_cast<std::size_t>(o));
    else c.index32.resize(static_cast<std::size_t>(o));
  } else {
    for (std::int64_t i = 0; i < s.n_rows; ++i) {
      std::int64_t o = 0;
      for (std::int64_t j = 0; j < d; ++j)
        if (keep[j]) s.x[i * nd + o++] = s.x[i * d + j];
    }
    s.x.resize(static_cast<std::size_t>(s.n_rows * nd));
  }
  std::vector<std::string> names;
  for (std::int64_t j = 0; j < d; ++j)
    if (keep[j]) names.push_back(s.names[j]);
  s.names = names;
  s.n_cols = nd;
}

/// Collective: a classifier's coefficients run away when the loss still falls far along
/// the last step's direction, or does not rise there (a recession direction: separation).
/// A finite optimum makes the loss rise steeply there instead.
bool separated(const Shard& s, const Model& m, const FitResult& r, const FitOptions& o, const Communicator& comm) {
  if (!m.is_classifier() || r.last_step.empty()) return false;
  double norm = 0, big = 1;
  for (double v : r.last_step) norm += v * v;
  for (double v : r.theta) big = std::max(big, std::abs(v));
  norm = std::sqrt(norm);
  if (!(norm > 0)) return false;
  std::vector<double> far(r.theta);
  for (std::size_t j = 0; j < far.size(); ++j) far[j] += 10 * big * r.last_step[j] / norm;
  const double f0 = r.loss, f1 = global_loss(s, m, far, o, comm);  // r.loss: the fit's loss at theta
  if (f0 <= 0) return true;  // every row fitted exactly: probabilities 0 or 1
  // Far along the last step the loss of a finite optimum rises steeply; under separation
  // it does not rise (it falls, or stays level once the runaway rows' terms are below
  // the loss's rounding, as they are when the fit ran far before stopping).
  return std::isfinite(f1) && f1 <= f0 * (1 + 1e-12);
}

/// The parameters --se-columns names: a design column's name gives its parameter of every
/// output (class-major: j + d k); a token of digits is a 0-based parameter index. Sorted,
/// without repeats. Throws CollectiveError for an unknown name or an index out of range.
std::vector<std::int64_t> se_parameters(const std::string& list, const std::vector<std::string>& names, int outputs) {
  const auto d = static_cast<std::int64_t>(names.size());
  std::vector<std::int64_t> out;
  std::size_t a = 0;
  while (a <= list.size()) {
    std::size_t b = list.find(',', a);
    if (b == std::string::npos) b = list.size();
    std::string t = list.substr(a, b - a);
    while (!t.empty() && t.front() == ' ') t.erase(t.begin());
    while (!t.empty() && t.back() == ' ') t.pop_back();
    a = b + 1;
    if (t.empty()) continue;
    const auto it = std::find(names.begin(), names.end(), t);
    if (it != names.end()) {
      for (int k = 0; k < outputs; ++k) out.push_back((it - names.begin()) + d * k);
      continue;
    }
    if (std::all_of(t.begin(), t.end(), [](char c) { return c >= '0' && c <= '9'; }) && t.size() < 18) {
      const std::int64_t j = std::stoll(t);
      if (j < d * outputs) {
        out.push_back(j);
        continue;
      }
      throw CollectiveError("--se-columns: parameter index " + t + " is out of range (the model has " +
                            std::to_string(d * outputs) + " parameters, 0-based)");
    }
    throw CollectiveError("--se-columns: '" + t + "' is not a column of the design (nor a 0-based parameter index)");
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

/// The design columns the collinearity check looks at: every column without a penalty;
/// with fit.l2 > 0 only the unpenalised ones, as fit_glm sets the penalty mask: the
/// intercept unless \p penalize_intercept, else the columns a caller's fit.penalized
/// leaves out for every output.
std::vector<std::int64_t> unpenalised_columns(const Shard& s, int outputs, const FitOptions& fit,
                                              bool penalize_intercept) {
  std::vector<std::int64_t> out;
  const bool own_mask = !s.names.empty() && s.names[0] == "(Intercept)" && !penalize_intercept;
  const auto n_params = static_cast<std::size_t>(s.n_cols * outputs);
  for (std::int64_t j = 0; j < s.n_cols; ++j) {
    bool penalised = fit.l2 > 0;
    if (penalised && own_mask) penalised = j != 0;
    else if (penalised && fit.penalized.size() == n_params)
      for (int k = 0; k < outputs; ++k) penalised = penalised && fit.penalized[static_cast<std::size_t>(k * s.n_cols + j)];
    if (!penalised) out.push_back(j);
  }
  return out;
}

/// Collective: dependent_columns of the system restricted to the columns \p among (sorted),
/// as indices of the whole design.
std::vector<std::int64_t> dependent_among(const StartSystem& sys, const std::vector<std::int64_t>& among, double tol,
                                          const Communicator& comm) {
  if (std::ssize(among) == sys.p) return dependent_columns(sys, tol, comm);
  if (among.empty()) return {};
  StartSystem sub;
  sub.p = std::ssize(among);
  if (comm.is_root() && !sys.gram.empty()) {
    sub.gram.resize(static_cast<std::size_t>(sub.p * sub.p));
    for (std::int64_t c = 0; c < sub.p; ++c)
      for (std::int64_t r = 0; r < sub.p; ++r)
        sub.gram[static_cast<std::size_t>(r + c * sub.p)] =
            sys.gram[static_cast<std::size_t>(among[static_cast<std::size_t>(r)] + among[static_cast<std::size_t>(c)] * sys.p)];
  }
  std::vector<std::int64_t> dep = dependent_columns(sub, tol, comm);
  for (auto& j : dep) j = among[static_cast<std::size_t>(j)];
  return dep;
}

/// Collective: the first column not in \p skip (sorted) whose mean square (the start
/// system's Gram diagonal over the weight sum) is beyond 2^+-60 or not finite: float
/// products a_i x_ij of it would under- or overflow (--fisher-precision float32). -1: none.
std::int64_t column_outside_float(const StartSystem& sys, const std::vector<std::int64_t>& skip,
                                  const Communicator& comm) {
  std::int64_t first = -1;
  if (comm.is_root() && !sys.gram.empty() && sys.weight_sum > 0)
    for (std::int64_t j = 0, k = 0; j < sys.p && first < 0; ++j) {
      if (k < std::ssize(skip) && skip[static_cast<std::size_t>(k)] == j) {
        ++k;
        continue;
      }
      const double ms = sys.gram[static_cast<std::size_t>(j + j * sys.p)] / sys.weight_sum;
      if (!(ms >= 0x1p-60 && ms <= 0x1p+60)) first = j;
    }
  comm.broadcast(&first, 1);
  return first;
}

// ---------------------------------------------------------------- negative binomial: theta

/// Collective: K sums over every rank's rows with a positive weight, f(y, w, eta, acc)
/// adding into acc (per-thread accumulators summed in thread order, then reduced to root
/// and broadcast, so that every rank holds the same numbers: one collective round).
template <std::size_t K, class F>
std::array<double, K> global_row_sums(const Shard& s, std::span<const double> beta, int threads,
                                      const Communicator& comm, F f) {
  const int nt = std::max(threads, 1);
  std::vector<std::array<double, K>> acc(static_cast<std::size_t>(nt));
  for (auto& a : acc) a.fill(0.0);
#pragma omp parallel num_threads(nt)
  {
    auto& a = acc[static_cast<std::size_t>(omp_get_thread_num())];
#pragma omp for schedule(static)
    for (std::int64_t i = 0; i < s.n_rows; ++i) {
      const double w = s.weight.empty() ? 1.0 : s.weight[static_cast<std::size_t>(i)];
      if (!(w > 0)) continue;
      const double eta = s.dot(i, beta.data()) + (s.offset.empty() ? 0.0 : s.offset[static_cast<std::size_t>(i)]);
      f(s.y[static_cast<std::size_t>(i)], w, eta, a);
    }
  }
  std::array<double, K> out{};
  for (const auto& a : acc)
    for (std::size_t k = 0; k < K; ++k) out[k] += a[k];
  comm.reduce_sum(out.data(), K);
  comm.broadcast(out.data(), K);
  return out;
}

/// What theta_ml found: theta, the information -d score / d theta there, Newton steps.
struct ThetaMl {
  double theta = NAN, info = NAN;
  int iterations = 0;
  bool converged = false;
};

/// Collective. MASS's theta.ml at the means of the coefficients \p beta (model \p m's link):
/// the moment start n / sum w (y/mu - 1)^2 (n = sum w), then Newton on the score
///   sum w [digamma(theta + y) - digamma(theta) + log theta + 1 - log(theta + mu) - (y + theta)/(mu + theta)]
/// with the information
///   sum w [-trigamma(theta + y) + trigamma(theta) - 1/theta + 2/(mu + theta) - (y + theta)/(mu + theta)^2],
/// until the step is below 1e-12 theta (MASS stops at an absolute 1.2e-4); the information
/// at the final theta. One collective round per step.
ThetaMl theta_ml(const Shard& s, const Model& m, std::span<const double> beta, int threads, const Communicator& comm) {
  using boost::math::digamma;
  using boost::math::trigamma;
  const auto mom = global_row_sums<2>(s, beta, threads, comm, [&](double y, double w, double eta, auto& a) {
    const double r = y / m.mean(eta) - 1;
    a[0] += w;
    a[1] += w * r * r;
  });
  ThetaMl t;
  double th = mom[0] / mom[1];
  auto score_info = [&](double theta) {
    return global_row_sums<2>(s, beta, threads, comm, [&](double y, double w, double eta, auto& a) {
      const double mu = m.mean(eta), mt = mu + theta, yt = y + theta;
      a[0] += w * (digamma(yt) - digamma(theta) + std::log(theta) + 1 - std::log(mt) - yt / mt);
      a[1] += w * (-trigamma(yt) + trigamma(theta) - 1 / theta + 2 / mt - yt / (mt * mt));
    });
  };
  constexpr int kLimit = 100;
  for (int it = 1; it <= kLimit && std::isfinite(th); ++it) {
    th = std::abs(th);
    const auto si = score_info(th);
    const double del = si[0] / si[1];
    th += del;
    t.iterations = it;
    if (std::abs(del) <= 1e-12 * std::abs(th)) {
      t.converged = true;
      break;
    }
  }
  t.theta = th;
  if (std::isfinite(th) && th > 0) t.info = score_info(th)[1];
  return t;
}

/// Collective: the log-likelihood of every rank's rows at \p beta under \p m.
double global_loglik(const Shard& s, const Model& m, std::span<const double> beta, int threads,
                     const Communicator& comm) {
  return global_row_sums<1>(s, beta, threads, comm, [&](double y, double w, double eta, auto& a) {
    a[0] += m.loglik(&eta, y, w, 1.0);
  })[0];
}

}  // namespace

GlmFit fit_glm(Shard& shard, const GlmOptions& options, const Communicator& comm, const GlmHooks& hooks) {
  options.validate();
  GlmFit out;
  out.classes = options.family == ModelFamily::multinomial
                    ? (options.classes > 0 ? options.classes : count_classes(shard, comm))
                    : 0;
  out.model = make_model(options.family, options.link, out.classes);
  // Negative binomial: theta fixed (--theta), or estimated as glm.nb does, from the fit of
  // the Poisson limit (theta = infinity) with the same link.
  const bool negbin = options.family == ModelFamily::negative_binomial;
  const bool estimate_theta = negbin && options.theta == 0;
  Link nb_link = Link::log;
  if (negbin) {
    nb_link = dynamic_cast<const NegativeBinomialModel&>(*out.model).link();
    out.model = std::make_shared<NegativeBinomialModel>(nb_link, estimate_theta ? INFINITY : options.theta);
    out.theta = estimate_theta ? NAN : options.theta;  // estimated: set by the alternation below
    out.theta_estimated = estimate_theta;
  }
  const std::shared_ptr<const Model> first_model = out.model;  // keeps `model` alive when theta moves
  const Model& model = *first_model;
  check_labels(shard, model, comm);
  if (options.family == ModelFamily::multinomial) {
    out.classes = model.n_classes();  // at least 2, also when every label is 0
    check_classes(shard, out.classes, options.classes > 0, comm);
  }
  const FitOptions& fit_in = options.fit;
  if (!shard.weight.empty() && fit_in.method == Method::ngd && fit_in.fisher == FisherKind::empirical_centered)
    throw CollectiveError("--fisher empirical-centered is defined for unweighted rows; drop the weights or use "
                          "--fisher empirical or expected");
  if (hooks.on_model) hooks.on_model(shard, model);

  // Linearly dependent (collinear or constant) columns: name them, fail or drop.
  // One pass gives both the Gram matrix for the collinearity check and R's starting
  // values (StartSystem). With --fisher-sample the sampled rows' Gram is looked at
  // first, with a 100x stricter tolerance; only if it flags a column are all rows used.
  out.all_columns = shard.names;
  constexpr double kCollinearTol = 1e-11;
  // A wide fit that forms no p x p matrix (--solver cg, --method diag or gd, beyond
  // kCholeskyAutoMax parameters) does not form the p x p Gram either: no collinearity
  // check and no IRLS start (it starts from zero); said in the log.
  const std::int64_t n_params = shard.n_cols * model.n_outputs();
  const bool gram = n_params <= kCholeskyAutoMax ||
                    (fit_in.method == Method::ngd &&
                     resolved_solver(fit_in, n_params, shard.sparse) == LinearSolver::cholesky);
  if (!gram && options.drop_collinear)
    throw CollectiveError("--drop-collinear needs the p x p Gram matrix, which a fit of " + std::to_string(n_params) +
                          " parameters without --solver cholesky does not form; use --l2 instead, or --solver cholesky");
  if (!gram && fit_in.l2 == 0 && n_params > shard.n_global)
    throw CollectiveError(std::to_string(n_params) + " parameters and " + std::to_string(shard.n_global) +
                          " rows: with more parameters than rows the maximum-likelihood estimate is not unique (and "
                          "does not exist for a classifier, whose data are then separable); add a ridge penalty, "
                          "e.g. --l2 1");
  if (!gram && comm.is_root() && hooks.observer.log)
    hooks.observer.log("no collinearity check and no IRLS start for " + std::to_string(n_params) +
                       " parameters (they need the p x p Gram matrix): starting from zero; linearly dependent "
                       "columns are not detected (--l2 makes the estimate unique)");
  // With --l2 > 0 the objective is strictly convex in the penalised coefficients: only
  // the unpenalised columns (the intercept unless --penalize-intercept) must be linearly
  // independent among themselves. Penalised columns (one-hot factors keeping every level)
  // are never refused or dropped.
  const std::vector<std::int64_t> checked =
      unpenalised_columns(shard, model.n_outputs(), fit_in, options.penalize_intercept);
  StartSystem sys;
  sys.p = shard.n_cols;
  std::vector<std::int64_t> dep;
  // With --fisher-precision float32 the first look is a float32 Gram (entries good to
  // about 1e-6): only a column within 1e-4 of dependent (or one whose squares float
  // cannot hold) makes the exact float64 Gram decide.
  const bool rounded_first = fit_in.fisher_precision == FisherPrecision::float32 && !fit_in.sample.active();
  if (gram) {
    sys = start_system(shard, model, fit_in, comm, fit_in.sample.active(), rounded_first);
    dep = dependent_among(sys, checked, sys.rounded ? 1e-4 : sys.sampled ? 100 * kCollinearTol : kCollinearTol, comm);
  }
  if (gram && ((sys.sampled && !dep.empty()) ||
               (sys.rounded && (!dep.empty() || !sys.scale.empty() || column_outside_float(sys, {}, comm) >= 0)))) {
    sys = start_system(shard, model, fit_in, comm, false);
    dep = dependent_among(sys, checked, kCollinearTol, comm);
  }
  if (!dep.empty()) {
    std::string list;
    for (auto c : dep) list += (list.empty() ? "" : ", ") + shard.names[static_cast<std::size_t>(c)];
    if (!options.drop_collinear)
      throw CollectiveError(std::string("column") + (dep.size() > 1 ? "s " : " ") + list +
                            (dep.size() > 1 ? " are" : " is") +
                            " linearly dependent on earlier columns (collinear, constant or all zero); remove " +
                            (dep.size() > 1 ? "them" : "it") +
                            " or pass --drop-collinear (coefficients then reported as NA, as R does)");
    for (auto c : dep) out.dropped.push_back(shard.names[static_cast<std::size_t>(c)]);
    drop_columns(shard, dep);
    if (comm.is_root() && hooks.observer.log) hooks.observer.log("dropped linearly dependent column(s): " + list);
  }
  out.columns = shard.names;
  if (!sys.scale.empty()) {
    // The collinearity check and the start saw these columns through exact power-of-two
    // scaling; the fit's Fisher (sums of x_ij x_ik) would under- or overflow: say so
    // rather than return a fit that cannot converge.
    std::string list;
    for (std::int64_t j = 0, k = 0; j < sys.p; ++j) {
      if (k < std::ssize(dep) && dep[static_cast<std::size_t>(k)] == j) {
        ++k;
        continue;
      }
      if (sys.scale[static_cast<std::size_t>(j)] != 1.0)
        list += (list.empty() ? "" : ", ") + out.all_columns[static_cast<std::size_t>(j)];
    }
    if (!list.empty())
      throw CollectiveError("column(s) " + list +
                            ": values so small or so large (beyond about 1e-135 or 1e135) that their products "
                            "leave the range of double precision; multiply by a power of ten (the "
                            "coefficient scales inversely)");
  }

  // --se-columns: checked before the fit, so that a wrong name costs no fit.
  std::vector<std::int64_t> se_params;
  if (!options.se_columns.empty() && options.se_columns != "all")
    se_params = se_parameters(options.se_columns, shard.names, model.n_outputs());

  FitOptions& fo = out.fit_options;
  fo = fit_in;
  if (gram && fo.fisher_precision == FisherPrecision::float32) {
    // --fisher-precision float32 sums products of float copies of a_i x_ij: a column whose
    // mean square (from the start system's float64 Gram) is beyond 2^+-60 would under- or
    // overflow there (its Fisher row 0 or infinite). Then the Fisher stays float64.
    const std::int64_t first_bad = column_outside_float(sys, dep, comm);
    if (first_bad >= 0) {
      fo.fisher_precision = FisherPrecision::float64;
      if (comm.is_root() && hooks.observer.log)
        hooks.observer.log("--fisher-precision float32: column " + out.all_columns[static_cast<std::size_t>(first_bad)] +
                           " has values too small or too large for float products (mean square beyond 2^+-60); "
                           "the Fisher is summed in float64");
    }
  }
  out.intercept = !shard.names.empty() && shard.names[0] == "(Intercept)";
  if (fo.l2 > 0 && out.intercept && !options.penalize_intercept) {
    fo.penalized.assign(static_cast<std::size_t>(shard.n_cols * model.n_outputs()), 1);
    for (int k = 0; k < model.n_outputs(); ++k) fo.penalized[static_cast<std::size_t>(k * shard.n_cols)] = 0;
  }
  if (hooks.prepare) hooks.prepare(shard, model, fo);
  if (estimate_theta && fo.resume)
    throw CollectiveError("--resume is not available for negative.binomial with theta estimated (the checkpoint "
                          "holds the coefficients of one inner fit, not theta): refit, or fix theta with --theta");
  if (fo.resume) fo.theta0.clear();
  if (gram && !fo.resume && fo.theta0.empty() && options.start == StartRule::irls && model.n_outputs() == 1)
    fo.theta0 = solve_start(sys, options.drop_collinear ? dep : std::vector<std::int64_t>{}, fo, comm);
  sys = StartSystem{};  // its p x p Gram is not needed during the fit

  FitResult& res = out.fit;
  res = fit(shard, model, fo, comm, hooks.observer);
  if ((res.converged() || res.reason == Reason::max_iterations || res.reason == Reason::line_search_failed) &&
      separated(shard, model, res, fo, comm))
    res.reason = Reason::separation;

  // glm.nb's alternation: theta by maximum likelihood at the current means, then the
  // coefficients at that theta from the previous ones, until theta moves by <= 1e-10
  // relative, the log-likelihood by <= 1e-10 relative (of max(1, |loglik|)) and the
  // coefficients' fit has converged (its own --tol) at that theta.
  std::string theta_note;
  if (estimate_theta && (res.converged() || res.reason == Reason::max_iterations)) {
    constexpr int kMaxOuter = 100;
    constexpr double kThetaTol = 1e-10, kLoglikTol = 1e-10;
    double th_prev = NAN, ll_prev = NAN;
    bool done = false;
    int outer = 0;
    FitOptions fo_k = fo;
    fo_k.resume.reset();
    for (outer = 1; outer <= kMaxOuter && !done; ++outer) {
      const ThetaMl t = theta_ml(shard, *out.model, res.theta, fo.threads, comm);
      if (!(std::isfinite(t.theta) && t.theta > 0 && t.theta < 1e15))
        throw CollectiveError(
            "negative.binomial: the maximum-likelihood theta does not exist or is not finite (theta.ml reached " +
            std::to_string(t.theta) +
            "): the counts are not overdispersed relative to the Poisson; fit --family poisson, or fix --theta");
      if (!t.converged) theta_note = "theta.ml: Newton's iteration limit reached";
      auto model_k = std::make_shared<const NegativeBinomialModel>(nb_link, t.theta);
      fo_k.theta0 = res.theta;
      FitResult r = fit(shard, *model_k, fo_k, comm, hooks.observer);
      const double ll = global_loglik(shard, *model_k, r.theta, fo.threads, comm);
      done = r.converged() && std::abs(t.theta - th_prev) <= kThetaTol * t.theta &&
             std::abs(ll - ll_prev) <= kLoglikTol * std::max(1.0, std::abs(ll));
      // One history and iteration count across the inner fits.
      const int offset = res.iterations;
      for (auto h : r.history) {
        if (h.iter == 0) continue;
        h.iter += offset;
        res.history.push_back(h);
      }
      r.history = std::move(res.history);
      r.iterations += offset;
      r.seconds += res.seconds;
      r.fisher_products += res.fisher_products;
      res = std::move(r);
      out.model = model_k;
      out.theta = t.theta;
      th_prev = t.theta;
      ll_prev = ll;
      if (!res.converged() && res.reason != Reason::max_iterations) break;  // the inner fit failed
    }
    out.theta_iterations = outer - 1;
    if (!done && res.converged()) {
      res.reason = Reason::max_iterations;
      theta_note = "theta and the coefficients did not converge in " + std::to_string(kMaxOuter) + " alternations";
    }
    if (comm.is_root() && hooks.observer.log)
      hooks.observer.log("negative.binomial: theta " + std::to_string(out.theta) + " after " +
                         std::to_string(out.theta_iterations) + " alternations with the coefficients");
  }
  if (estimate_theta && std::isfinite(out.theta)) {
    // The standard error of theta: 1 / sqrt(information) at the final theta and means.
    const auto& nbm = dynamic_cast<const NegativeBinomialModel&>(*out.model);
    const double info = global_row_sums<1>(shard, res.theta, fo.threads, comm, [&](double y, double w, double eta, auto& a) {
      using boost::math::trigamma;
      const double th = nbm.theta(), mt = nbm.mean(eta) + th, yt = y + th;
      a[0] += w * (-trigamma(yt) + trigamma(th) - 1 / th + 2 / mt - yt / (mt * mt));
    })[0];
    out.theta_std_error = info > 0 ? 1 / std::sqrt(info) : NAN;
  }

  out.has_inference = options.inference && res.reason != Reason::non_finite && res.reason != Reason::interrupted &&
                      res.reason != Reason::separation && res.reason != Reason::singular_fisher &&
                      res.reason != Reason::loss_diverged &&
                      !(estimate_theta && !std::isfinite(out.theta));  // no theta: the Poisson start failed
  if (out.has_inference) {
    InferenceOptions io;
    io.threads = fo.threads;
    io.block_rows = fo.block_rows;
    io.l2 = fo.l2;
    io.penalized = fo.penalized;
    // The fit's last evaluation was the exact expected Fisher at the estimate: reuse it
    // (not a float32 one: standard errors always come from a float64 Fisher).
    io.fisher_from_fit = res.fisher_kind == FisherKind::expected && !res.fisher_sampled &&
                         fo.fisher_precision == FisherPrecision::float64;
    if (io.fisher_from_fit) io.fit_fisher = std::move(res.fisher);
    io.all_std_errors = options.se_columns == "all";
    io.se_parameters = se_params;
    io.conf_level = options.conf_level;
    out.inference = infer(shard, *out.model, res.theta, comm, io);
    Inference& inf = out.inference;
    if (negbin) {
      inf.theta = out.theta;
      inf.theta_std_error = out.theta_std_error;
      inf.theta_estimated = estimate_theta;
      if (estimate_theta) {  // theta counts as a parameter (glm.nb's AIC, logLik.negbin's df)
        inf.aic += 2;
        inf.bic += std::log(inf.nobs);
      }
      if (!theta_note.empty()) inf.note += (inf.note.empty() ? "" : "; ") + theta_note;
    }
  }
  return out;
}

}  // namespace natgrad
