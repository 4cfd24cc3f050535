#include "natgrad/core/inference.hpp"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <boost/math/distributions/normal.hpp>
#include <boost/math/distributions/students_t.hpp>
#include <cmath>
#include <cstdio>

#include "natgrad/core/error.hpp"
#include "core/kernels.hpp"
#include "core/solver_parts.hpp"
#include "natgrad/core/linalg.hpp"
#include "natgrad/core/memory.hpp"
#include "natgrad/core/solver.hpp"

namespace natgrad {

namespace {


/// Collective: normalised sums of \p kind at theta (valid on root). A failed allocation
/// of any rank's workspace stops every rank here with one message; root's normalised
/// p x p matrix that cannot be allocated sets \p root_oom (root only), which infer()
/// carries to every rank at its end.
Normalized global(const Shard& s, const Model& m, std::span<const double> theta, FisherKind kind,
                  const InferenceOptions& o, const Communicator& comm, std::string& root_oom) {
  const std::int64_t P = s.n_cols * m.n_outputs();
  const double pp = 8.0 * static_cast<double>(P) * static_cast<double>(P);
  Workspace ws;
  PackedSums sums;
  std::string err;
  try {
    ws.prepare(o.threads, s.n_cols, o.block_rows, kind, m.n_outputs(), m.n_factors(), s.sparse);
    sums.resize(P, kind);
  } catch (const std::bad_alloc&) {
    err = out_of_memory_message(comm.rank(), "the " + std::string(to_string(kind)) +
                                                 " matrix's accumulators and reduction buffer for " +
                                                 std::to_string(P) + " parameters",
                                1.5 * pp);
  }
  comm.check(err.empty(), err);
  accumulate(s, m, theta, kind, o.threads, ws, sums);
  comm.reduce_sum(sums.buf.data(), sums.buf.size());
  Normalized nz;
  if (comm.is_root() && root_oom.empty()) {
    try {
      finalize(sums, nz);
    } catch (const std::bad_alloc&) {
      nz = Normalized{};
      root_oom = out_of_memory_message(0, "the normalised p x p " + std::string(to_string(kind)) + " matrix for " +
                                              std::to_string(P) + " parameters",
                                       pp);
    }
  }
  return nz;
}

/// Local: for every row, \p f(i, eta_row, y, w, acc) adds into a per-thread accumulator
/// of \p width doubles; returns the sum over threads (deterministic order).
/// eta of row i = Theta^T x_i + offset_i (+ \p eta_override if non-empty: per-output
/// constant replacing Theta^T x_i).
template <class F>
std::vector<double> row_sums(const Shard& s, const Model& m, std::span<const double> theta,
                             const std::vector<double>& eta_override, std::size_t width, int threads, F f) {
  const std::int64_t d = s.n_cols, n = s.n_rows, k = m.n_outputs();
  std::vector<std::vector<double>> acc(static_cast<std::size_t>(threads), std::vector<double>(width, 0.0));
#pragma omp parallel num_threads(threads)
  {
    auto& a = acc[static_cast<std::size_t>(omp_get_thread_num())];
    std::vector<double> eta(static_cast<std::size_t>(k));
#pragma omp for schedule(static)
    for (std::int64_t i = 0; i < n; ++i) {
      for (std::int64_t c = 0; c < k; ++c) {
        double e = 0;
        if (eta_override.empty())
          e = s.dot(i, theta.data() + d * c);
        else
          e = eta_override[c];
        eta[c] = e + (s.offset.empty() ? 0.0 : s.offset[i]);
      }
      f(i, eta.data(), s.y[i], s.weight.empty() ? 1.0 : s.weight[i], a.data());
    }
  }
  std::vector<double> out(width, 0.0);
  for (const auto& a : acc)
    for (std::size_t j = 0; j < width; ++j) out[j] += a[j];
  return out;
}

double null_deviance(const Shard& s, const Model& m, const InferenceOptions& o, const Communicator& comm,
                     bool intercept, const std::vector<double>& label_sums, double wsum) {
  std::vector<double> eta_null(static_cast<std::size_t>(m.n_outputs()), 0.0);
  std::vector<double> theta_null;
  Shard ones;  // intercept-only design, used only with an offset
  const Shard* design = &s;
  if (intercept && !s.offset.empty()) {
    // R refits glm with the intercept alone when there is an offset.
    ones.n_rows = s.n_rows;
    ones.n_cols = 1;
    ones.first_row = s.first_row;
    ones.n_global = s.n_global;
    ones.x.assign(static_cast<std::size_t>(s.n_rows), 1.0);
    ones.y = s.y;
    ones.weight = s.weight;
    ones.offset = s.offset;
    FitOptions fo;
    fo.threads = o.threads;
    fo.tol = 1e-12;
    fo.max_iter = 200;
    fo.theta0.assign(static_cast<std::size_t>(m.n_outputs()), 0.0);
    const FitResult r = fit(ones, m, fo, comm);
    theta_null = r.theta;
    design = &ones;
  } else if (intercept) {
    eta_null = m.null_eta(label_sums, wsum);  // closed form: the weighted label mean
  }
  const std::vector<double> override_eta =
      (intercept && s.offset.empty()) ? eta_null : std::vector<double>{};
  const std::vector<double> zero(static_cast<std::size_t>(m.n_outputs()), 0.0);
  std::vector<double> dev = row_sums(
      *design, m, theta_null.empty() ? std::span<const double>() : std::span<const double>(theta_null),
      design == &s ? (intercept ? override_eta : zero) : std::vector<double>{}, 1, o.threads,
      [&](std::int64_t, const double* eta, double y, double w, double* a) { a[0] += w * m.unit_deviance(eta, y); });
  comm.allreduce_sum(dev.data(), 1);
  return dev[0];
}

/// Root: the statistic and p-value of parameter \p j from its standard error.
void fill_statistic(Inference& r, std::span<const double> theta, std::size_t j) {
  r.statistic[j] = theta[j] / r.std_errors[j];
  const double a = std::abs(r.statistic[j]);
  if (r.t_statistic && r.df_residual > 0)
    r.p_values[j] = 2 * boost::math::cdf(boost::math::complement(boost::math::students_t(r.df_residual), a));
  else
    r.p_values[j] = std::erfc(a / std::sqrt(2.0));
}

/// Collective. Standard errors of the parameters o.se_parameters without the P x P
/// covariance: for each j, x = A^-1 e_j by Jacobi-preconditioned conjugate gradient on
/// Fisher-vector products, A = sum_i w_i fisher_i x x^T + l2 (penalised diagonal); then
/// se_j = sqrt(x_j dispersion) and the HC0 robust se_j = sqrt(x^T B x) with B the
/// sandwich's middle sum_i (w_i dnll_i)^2 x x^T (one more product). Root drives the
/// products; the others serve them (FisherProducts).
void listed_std_errors(Inference& r, const Shard& s, const Model& m, std::span<const double> theta, double wsum,
                       std::int64_t P, const InferenceOptions& o, const Communicator& comm) {
  const auto np = static_cast<std::size_t>(P);
  std::string unused;
  const Normalized D = global(s, m, theta, FisherKind::diagonal, o, comm, unused);  // the preconditioner
  FitOptions fo;
  fo.threads = o.threads;
  FisherProducts fisher(s, m, fo, FisherKind::expected, comm, np), meat(s, m, fo, FisherKind::meat, comm, np);
  fisher.at(theta);
  meat.at(theta);
  if (!comm.is_root()) {
    fisher.serve();
    meat.serve();
    return;
  }
  r.std_errors.assign(np, NAN);
  r.robust_std_errors.assign(np, NAN);
  r.statistic.assign(np, NAN);
  r.p_values.assign(np, NAN);
  auto penalised = [&](std::size_t j) { return o.l2 > 0 && (o.penalized.empty() || o.penalized[j] != 0); };
  std::vector<double> diag(np);
  for (std::size_t j = 0; j < np; ++j) {
    diag[j] = D.fisher[j] * wsum + (penalised(j) ? o.l2 : 0.0);
    if (!(diag[j] > 0) || !std::isfinite(diag[j])) diag[j] = 1.0;
  }
  auto apply = [&](const std::vector<double>& v, std::vector<double>& out) {
    fisher.product(v, out);
    for (std::size_t j = 0; j < np; ++j)
      if (penalised(j)) out[j] += o.l2 * v[j];
  };
  constexpr double kRelTol = 1e-10;  // preconditioned residual, relative: se to about 1e-10
  const int max_iter = static_cast<int>(std::min<std::int64_t>(std::max<std::int64_t>(P, 50), 2000));
  std::vector<std::vector<double>> xs;
  std::vector<std::size_t> cols;
  std::vector<double> x(np), rr(np), z(np), d(np), q(np);
  int unconverged = 0;
  for (const std::int64_t jj : o.se_parameters) {
    const auto j = static_cast<std::size_t>(jj);
    std::fill(x.begin(), x.end(), 0.0);
    std::fill(rr.begin(), rr.end(), 0.0);
    rr[j] = 1.0;
    for (std::size_t i = 0; i < np; ++i) d[i] = z[i] = rr[i] / diag[i];
    double rz = rr[j] * z[j];
    const double goal = kRelTol * kRelTol * rz;
    int it = 0;
    for (; it < max_iter && rz > goal; ++it) {
      apply(d, q);
      double dq = 0;
      for (std::size_t i = 0; i < np; ++i) dq += d[i] * q[i];
      if (!(dq > 0)) break;
      const double alpha = rz / dq;
      double rz_new = 0;
      for (std::size_t i = 0; i < np; ++i) {
        x[i] += alpha * d[i];
        rr[i] -= alpha * q[i];
        z[i] = rr[i] / diag[i];
        rz_new += rr[i] * z[i];
      }
      const double beta = rz_new / rz;
      rz = rz_new;
      for (std::size_t i = 0; i < np; ++i) d[i] = z[i] + beta * d[i];
    }
    if (rz > goal || !(x[j] > 0)) {
      ++unconverged;
      continue;
    }
    r.std_errors[j] = std::sqrt(x[j] * r.dispersion);
    fill_statistic(r, theta, j);
    xs.push_back(x);
    cols.push_back(j);
  }
  fisher.release();
  for (std::size_t k = 0; k < xs.size(); ++k) {
    meat.product(xs[k], q);
    double b = 0;
    for (std::size_t i = 0; i < np; ++i) b += xs[k][i] * q[i];
    r.robust_std_errors[cols[k]] = std::sqrt(std::max(b, 0.0));
  }
  meat.release();
  r.note = "standard errors of " + std::to_string(o.se_parameters.size()) + " listed parameter(s) (--se-columns) by "
           "conjugate gradient; the P x P covariance of all " + std::to_string(P) + " is not formed";
  if (unconverged > 0)
    r.note += "; " + std::to_string(unconverged) + " did not converge (singular Fisher: add --l2) and are NA";
}

/// Root: covariance, standard errors, statistics and p-values into \p r (below).
void root_covariance(Inference& r, const Normalized& F, const Normalized& B, std::span<const double> theta,
                     double wsum, std::int64_t P, const InferenceOptions& o);

}  // namespace

bool forms_full_covariance(std::int64_t P, bool all) { return all || P <= kCholeskyAutoMax; }

Inference infer(const Shard& s, const Model& m, std::span<const double> theta, const Communicator& comm,
                const InferenceOptions& o) {
  Inference r;
  const std::int64_t P = s.n_cols * m.n_outputs();
  const bool intercept = !s.names.empty() && s.names[0] == "(Intercept)";

  // Standard errors need P x P matrices on root (the Fisher and the sandwich's middle,
  // packed and whole, F^-1, two products, the covariance: about 8 P^2 doubles). Beyond
  // kCholeskyAutoMax parameters (unless all_std_errors), or more than root's available
  // memory, they are not formed: the rest of the inference does not need them, and listed
  // ones come from conjugate-gradient solves. Decided on root, for all.
  const double need_gib = 8.0 * static_cast<double>(P) * static_cast<double>(P) * 8 / 1073741824.0;
  const bool over = !o.all_std_errors && P > o.full_covariance_max;
  std::int64_t skip_se = 0;
  if (comm.is_root()) {
    const MemoryAvailable av = over ? MemoryAvailable{} : memory_available();
    skip_se = over || (av.shared >= 0 && need_gib * 1073741824.0 > static_cast<double>(av.shared)) ||
                      (av.process >= 0 && need_gib * 1073741824.0 > static_cast<double>(av.process))
                  ? 1
                  : 0;
  }
  comm.broadcast(&skip_se, 1);

  // Expected Fisher and the sandwich's middle, per observation (root).
  std::string root_oom;  // root: what it could not allocate (carried to every rank at the end)
  Normalized F, B;
  if (!skip_se && !o.fisher_from_fit) F = global(s, m, theta, FisherKind::expected, o, comm, root_oom);
  if (!skip_se) B = global(s, m, theta, FisherKind::meat, o, comm, root_oom);

  // Deviance, Pearson chi^2, rows with positive weight, weight sum, label sums.
  const int K = m.n_classes();
  const std::size_t nlab = K > 0 ? static_cast<std::size_t>(K) : 1;
  std::vector<double> st = row_sums(s, m, theta, {}, 4 + nlab, o.threads,
                                    [&](std::int64_t, const double* eta, double y, double w, double* a) {
                                      a[0] += w * m.unit_deviance(eta, y);
                                      a[1] += w * m.pearson(eta, y);
                                      a[2] += w > 0 ? 1.0 : 0.0;
                                      a[3] += w;
                                      if (K > 0) a[4 + static_cast<std::size_t>(y)] += w;
                                      else a[4] += w * y;
                                    });
  comm.allreduce_sum(st.data(), st.size());
  r.deviance = st[0];
  r.nobs = st[2];
  const double wsum = st[3];
  const std::vector<double> label_sums(st.begin() + 4, st.end());
  r.df_residual = r.nobs - static_cast<double>(P);
  r.df_null = r.nobs - (intercept ? static_cast<double>(m.n_outputs()) : 0.0);  // one intercept per output
  r.t_statistic = m.estimates_dispersion();
  r.dispersion = m.estimates_dispersion() ? st[1] / r.df_residual : 1.0;

  const double phi_ll = m.loglik_dispersion(r.deviance, r.nobs, wsum);
  std::vector<double> ll = row_sums(s, m, theta, {}, 1, o.threads,
                                    [&](std::int64_t, const double* eta, double y, double w, double* a) {
                                      a[0] += m.loglik(eta, y, w, phi_ll);
                                    });
  comm.allreduce_sum(ll.data(), 1);
  r.log_likelihood = m.has_likelihood() ? ll[0] : NAN;  // quasi families: R's NA
  r.null_deviance = null_deviance(s, m, o, comm, intercept, label_sums, wsum);
  const double k = static_cast<double>(P) + (m.estimates_dispersion() ? 1.0 : 0.0);
  r.aic = -2 * r.log_likelihood + 2 * k;
  r.bic = -2 * r.log_likelihood + std::log(r.nobs) * k;
  r.conf_level = o.conf_level;
  if (skip_se) {
    if (!o.se_parameters.empty()) {
      listed_std_errors(r, s, m, theta, wsum, P, o, comm);
      if (comm.is_root()) wald_intervals(r, theta, o.conf_level);
      return r;
    }
    if (!comm.is_root()) return r;
    char gib[32];
    std::snprintf(gib, sizeof gib, "%.3g", need_gib);
    r.note = "standard errors need the P x P Fisher and its inverse (about " + std::string(gib) +
             " GiB on the root rank): not formed for P = " + std::to_string(P) + " parameters (" +
             (over ? "above " + std::to_string(o.full_covariance_max) : std::string("more than the memory available")) +
             "); --se-columns NAMES computes chosen ones by conjugate gradient, --se-columns all forms them all";
    return r;
  }
  // Root's covariance and sandwich: a failure to allocate its matrices (or an earlier one
  // of root's normalised matrices) ends every rank here with root's message.
  std::string err = root_oom;
  if (comm.is_root() && err.empty()) {
    try {
      root_covariance(r, F, B, theta, wsum, P, o);
    } catch (const std::bad_alloc&) {
      err = out_of_memory_message(0, "the covariance and sandwich matrices (5 of p x p) for " + std::to_string(P) +
                                         " parameters",
                                  5 * 8.0 * static_cast<double>(P) * static_cast<double>(P));
    } catch (const Error& e) {
      err = e.what();
    }
  }
  comm.check(err.empty(), err);
  if (comm.is_root()) wald_intervals(r, theta, o.conf_level);
  return r;
}

void wald_intervals(Inference& r, std::span<const double> theta, double level) {
  r.conf_level = level;
  r.conf_lower.clear();
  r.conf_upper.clear();
  if (r.std_errors.empty()) return;
  if (!(level > 0 && level < 1)) throw Error("the confidence level must be in (0, 1)");
  const double z = boost::math::quantile(boost::math::complement(boost::math::normal(), (1 - level) / 2));
  r.conf_lower.assign(r.std_errors.size(), NAN);
  r.conf_upper.assign(r.std_errors.size(), NAN);
  for (std::size_t j = 0; j < r.std_errors.size() && j < theta.size(); ++j) {
    if (!std::isfinite(r.std_errors[j])) continue;
    r.conf_lower[j] = theta[j] - z * r.std_errors[j];
    r.conf_upper[j] = theta[j] + z * r.std_errors[j];
  }
}

namespace {

void root_covariance(Inference& r, const Normalized& F, const Normalized& B, std::span<const double> theta,
                     double wsum, std::int64_t P, const InferenceOptions& o) {
  // Covariance: (sum_i w_i fisher_i x x^T + l2 I)^-1 * dispersion; HC0 sandwich.
  const auto np = static_cast<std::size_t>(P);
  std::vector<double> Finv(np * np);
  if (o.fisher_from_fit) {
    if (o.fit_fisher.size() != np * np) throw Error("inference: the fit's Fisher has the wrong size");
    for (std::size_t i = 0; i < np * np; ++i) Finv[i] = o.fit_fisher[i] * wsum;  // includes l2
  } else {
    for (std::size_t i = 0; i < np * np; ++i) Finv[i] = F.fisher[i] * wsum;
    for (std::size_t j = 0; j < np; ++j)
      if (o.l2 > 0 && (o.penalized.empty() || o.penalized[j])) Finv[j + j * np] += o.l2;
  }
  // Inverted equilibrated, (D F D)^-1 = D^-1 F^-1 D^-1: the factorisation's success and
  // accuracy do not depend on the scale of any column, and a column scaled by s gets its
  // standard error divided by s.
  const std::vector<double> D = equilibration(Finv, P);
  for (std::size_t j = 0; j < np; ++j)
    for (std::size_t i = 0; i < np; ++i) Finv[i + j * np] *= D[i] * D[j];
  const int info = cholesky_upper(Finv, P);
  r.std_errors.assign(np, NAN);
  r.robust_std_errors.assign(np, NAN);
  r.statistic.assign(np, NAN);
  r.p_values.assign(np, NAN);
  if (info != 0 || cholesky_inverse(Finv, P) != 0) {
    r.note = "the Fisher information is singular at the estimate: no standard errors";
    return;
  }
  for (std::size_t j = 0; j < np; ++j)
    for (std::size_t i = 0; i < np; ++i) Finv[i + j * np] *= D[i] * D[j];
  r.covariance.resize(np * np);
  for (std::size_t i = 0; i < np * np; ++i) r.covariance[i] = Finv[i] * r.dispersion;
  std::vector<double> Bm(np * np), T(np * np), S(np * np);
  for (std::size_t i = 0; i < np * np; ++i) Bm[i] = B.fisher[i] * wsum;
  const int ip = static_cast<int>(P);
  cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, ip, ip, ip, 1.0, Finv.data(), ip, Bm.data(), ip, 0.0,
              T.data(), ip);
  cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, ip, ip, ip, 1.0, T.data(), ip, Finv.data(), ip, 0.0,
              S.data(), ip);
  for (std::size_t j = 0; j < np; ++j) {
    r.std_errors[j] = std::sqrt(r.covariance[j + j * np]);
    r.robust_std_errors[j] = std::sqrt(S[j + j * np]);
    fill_statistic(r, theta, j);
  }
}

}  // namespace

}  // namespace natgrad
