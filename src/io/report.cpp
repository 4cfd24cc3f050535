#include "natgrad/io/report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <sstream>

#include "natgrad/io/output.hpp"

namespace natgrad {

std::vector<std::string> parameter_names(const std::vector<std::string>& columns, int classes) {
  if (classes < 2) return columns;
  std::vector<std::string> n;
  for (int k = 1; k < classes; ++k)
    for (const auto& c : columns) n.push_back(c + ":class" + std::to_string(k));
  return n;
}

namespace {

std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

/// R's format.pval: "< 2e-16" below machine precision, else 3 significant digits.
std::string pval(double p) {
  if (std::isnan(p)) return "NA";
  if (p < 2.2e-16) return "< 2e-16";
  return fmt("%.3g", p);
}
/// A number with printf format \p f, or "NA" where it is not finite (R's NA).
std::string fmt_na(const char* f, double v) { return std::isfinite(v) ? fmt(f, v) : std::string("NA"); }
/// R's confint column heading: the probability as a percentage with 3 significant digits, "2.5 %".
std::string pct(double p) { return fmt("%.3g", 100 * p) + " %"; }
std::string stars(double p) {
  if (std::isnan(p)) return "";
  return p < 0.001 ? "***" : p < 0.01 ? "**" : p < 0.05 ? "*" : p < 0.1 ? "." : "";
}

/// Full parameter list with dropped columns as NaN (R's NA), in the original order.
std::vector<double> with_dropped(const FitReport& r, const std::vector<double>& v) {
  if (r.dropped.empty()) return v;
  const std::size_t d_all = r.all_columns.size(), d = r.columns.size();
  const std::size_t outputs = r.classes > 1 ? static_cast<std::size_t>(r.classes - 1) : 1;
  std::vector<double> full(d_all * outputs, NAN);
  for (std::size_t k = 0; k < outputs; ++k) {
    std::size_t j = 0;
    for (std::size_t a = 0; a < d_all; ++a) {
      if (std::find(r.dropped.begin(), r.dropped.end(), r.all_columns[a]) != r.dropped.end()) continue;
      if (j < d && k * d + j < v.size()) full[k * d_all + a] = v[k * d + j];
      ++j;
    }
  }
  return full;
}

nlohmann::ordered_json numbers(const std::vector<double>& v) {
  nlohmann::ordered_json a = nlohmann::ordered_json::array();
  for (double x : v) a.push_back(std::isfinite(x) ? nlohmann::ordered_json(x) : nlohmann::ordered_json(nullptr));
  return a;
}

}  // namespace

std::string nonconvergence_note(const FitResult& f) {
  if (f.converged() || f.reason == Reason::running || f.reason == Reason::interrupted) return {};
  if (f.reason == Reason::max_iterations)
    return "did not converge: iteration limit " + std::to_string(f.iterations) + " reached (max |gradient| " +
           fmt("%.3g", f.grad_norm) + "); the estimates are not at the optimum: raise --max-iter";
  return std::string("did not converge: ") + to_string(f.reason);
}

std::string summary_text(const FitReport& r) {
  std::ostringstream o;
  const FitResult& f = *r.fit;
  const Inference* inf = r.inference;
  if (const std::string note = nonconvergence_note(f); !note.empty()) o << note << "\n\n";
  if (!r.command.empty()) o << "Call:\n" << r.command << "\n\n";
  o << "Family: " << r.family << ", link: " << r.link;
  if (r.classes > 1) o << " (" << r.classes << " classes, class 0 the reference)";
  o << "\n\n";
  const auto names = parameter_names(r.all_columns, r.classes);
  const auto est = with_dropped(r, f.theta);
  std::vector<double> se, rse, st, pv;
  // Standard errors are absent when the P x P Fisher was not formed (inf->note says why).
  const bool has_se = inf && !inf->std_errors.empty();
  if (has_se) {
    se = with_dropped(r, inf->std_errors);
    rse = with_dropped(r, inf->robust_std_errors);
    st = with_dropped(r, inf->statistic);
    pv = with_dropped(r, inf->p_values);
  }
  std::size_t w = 12;
  for (const auto& n : names) w = std::max(w, n.size() + 1);
  const char* stat = inf && inf->t_statistic ? "t value" : "z value";
  const char* pn = inf && inf->t_statistic ? "Pr(>|t|)" : "Pr(>|z|)";
  o << "Coefficients:\n" << std::string(w, ' ');
  char head[160];
  if (has_se)
    std::snprintf(head, sizeof head, "%14s %12s %9s %10s %12s\n", "Estimate", "Std. Error", stat, pn, "Robust SE");
  else
    std::snprintf(head, sizeof head, "%14s\n", "Estimate");
  o << head;
  for (std::size_t j = 0; j < names.size(); ++j) {
    o << names[j] << std::string(w - names[j].size(), ' ');
    if (std::isnan(est[j])) {
      char na[32];
      std::snprintf(na, sizeof na, "%14s", "NA");
      o << na << "   (dropped: linearly dependent on earlier columns)\n";
      continue;
    }
    char line[200];
    if (has_se && !std::isfinite(se[j]))  // --se-columns: only the listed ones have one
      std::snprintf(line, sizeof line, "%14.6g\n", est[j]);
    else if (has_se)
      std::snprintf(line, sizeof line, "%14.6g %12.6g %9.3f %10s %12.6g %s\n", est[j], se[j], st[j],
                    pval(pv[j]).c_str(), rse[j], stars(pv[j]).c_str());
    else
      std::snprintf(line, sizeof line, "%14.6g\n", est[j]);
    o << line;
  }
  if (inf) {
    if (has_se) o << "---\nSignif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1\n";
    if (has_se && !inf->conf_lower.empty()) {
      // R's confint.default, printed as R prints it: the lower and upper probabilities.
      const double a = (1 - inf->conf_level) / 2;
      const auto lo = with_dropped(r, inf->conf_lower), hi = with_dropped(r, inf->conf_upper);
      o << "\nWald confidence intervals (level " << fmt("%.6g", inf->conf_level)
        << ", estimate -+ normal quantile x Std. Error, as confint.default):\n"
        << std::string(w, ' ');
      char line[200];
      std::snprintf(line, sizeof line, "%14s %14s\n", pct(a).c_str(), pct(1 - a).c_str());
      o << line;
      for (std::size_t j = 0; j < names.size(); ++j) {
        o << names[j] << std::string(w - names[j].size(), ' ');
        std::snprintf(line, sizeof line, "%14s %14s\n", fmt_na("%.6g", lo[j]).c_str(), fmt_na("%.6g", hi[j]).c_str());
        o << line;
      }
    }
    o << "\n";
    const bool negbin = std::isfinite(inf->theta);
    o << "(Dispersion parameter for "
      << (negbin ? "Negative Binomial(" + fmt("%.6g", inf->theta) + ")" : r.family) << " family taken to be "
      << fmt("%.6g", inf->dispersion) << ")\n\n";
    o << fmt("    Null deviance: %.6g", inf->null_deviance) << "  on " << inf->df_null << "  degrees of freedom\n";
    o << fmt("Residual deviance: %.6g", inf->deviance) << "  on " << inf->df_residual << "  degrees of freedom\n";
    o << "AIC: " << fmt_na("%.6g", inf->aic) << "   BIC: " << fmt_na("%.6g", inf->bic)
      << "   log-likelihood: " << fmt_na("%.6g", inf->log_likelihood) << "\n";
    if (negbin) {  // as MASS's summary.negbin
      o << "\n              Theta:  " << fmt("%.6g", inf->theta) << (inf->theta_estimated ? "" : " (fixed, --theta)")
        << "\n";
      if (inf->theta_estimated) o << "          Std. Err.:  " << fmt_na("%.6g", inf->theta_std_error) << "\n";
      o << " 2 x log-likelihood:  " << fmt("%.4f", 2 * inf->log_likelihood) << "\n";
    }
    if (!inf->note.empty()) o << "note: " << inf->note << "\n";
  }
  o << "\nNumber of iterations: " << f.iterations << " (" << to_string(f.reason) << ")";
  if (f.fisher_products > 0) o << ", " << f.fisher_products << " Fisher-vector products (--solver cg)";
  o << "\n";
  if (!r.dropped.empty()) {
    o << "Dropped (linearly dependent) columns:";
    for (const auto& d : r.dropped) o << ' ' << d;
    o << "\n";
  }
  return o.str();
}

void write_model_json(const std::filesystem::path& path, const FitReport& r) {
  write_atomically(path, [&](std::ostream& os) { write_model_json(os, r); });
}

void write_model_json(std::ostream& os, const FitReport& r) {
  const FitResult& f = *r.fit;
  nlohmann::ordered_json j;
  j["natgrad_version"] = 1;
  j["model"] = r.model_name;
  j["family"] = r.family;
  j["link"] = r.link;
  if (r.classes > 1) j["n_classes"] = r.classes;
  j["intercept"] = r.intercept;
  j["columns"] = r.all_columns;
  j["names"] = parameter_names(r.all_columns, r.classes);
  j["coefficients"] = numbers(with_dropped(r, f.theta));
  if (const Inference* inf = r.inference) {
    // Not formed (inf->note says why): null for every parameter, as for a dropped one.
    const std::size_t n_names = parameter_names(r.all_columns, r.classes).size();
    auto per_param = [&](const std::vector<double>& v) {
      return numbers(v.empty() ? std::vector<double>(n_names, NAN) : with_dropped(r, v));
    };
    j["std_errors"] = per_param(inf->std_errors);
    j["robust_std_errors"] = per_param(inf->robust_std_errors);
    j[inf->t_statistic ? "t_values" : "z_values"] = per_param(inf->statistic);
    j["p_values"] = per_param(inf->p_values);
    // Wald intervals (confint.default): [lower, upper] per parameter, null where there is no
    // standard error (not formed, not listed in --se-columns, dropped).
    {
      const auto lo = per_param(inf->conf_lower), hi = per_param(inf->conf_upper);
      nlohmann::ordered_json ci = nlohmann::ordered_json::array();
      for (std::size_t k = 0; k < lo.size(); ++k)
        ci.push_back(lo[k].is_null() || hi[k].is_null() ? nlohmann::ordered_json(nullptr)
                                                        : nlohmann::ordered_json::array({lo[k], hi[k]}));
      j["conf_level"] = inf->conf_level;
      j["conf_int"] = ci;
    }
    if (!inf->note.empty()) j["inference_note"] = inf->note;
    // null where not finite: the quasi families have no likelihood (R's NA).
    auto number = [](double v) { return std::isfinite(v) ? nlohmann::ordered_json(v) : nlohmann::ordered_json(nullptr); };
    j["log_likelihood"] = number(inf->log_likelihood);
    j["deviance"] = inf->deviance;
    j["null_deviance"] = inf->null_deviance;
    j["aic"] = number(inf->aic);
    j["bic"] = number(inf->bic);
    if (std::isfinite(inf->theta))  // negative binomial (MASS's summary.negbin: Theta, Std. Err.)
      j["theta"] = {{"estimate", inf->theta},
                    {"std_error", number(inf->theta_std_error)},
                    {"estimated", inf->theta_estimated}};
    j["dispersion"] = inf->dispersion;
    j["df_residual"] = inf->df_residual;
    j["df_null"] = inf->df_null;
    if (r.covariance && !inf->covariance.empty()) {
      // Covariance of the fitted (non-dropped) parameters, row-major, in "covariance_names" order.
      const std::size_t P = f.theta.size();
      nlohmann::ordered_json rows = nlohmann::ordered_json::array();
      for (std::size_t a = 0; a < P; ++a) {
        std::vector<double> row(inf->covariance.begin() + static_cast<std::ptrdiff_t>(a * P),
                                inf->covariance.begin() + static_cast<std::ptrdiff_t>((a + 1) * P));
        rows.push_back(numbers(row));
      }
      j["covariance_names"] = parameter_names(r.columns, r.classes);
      j["covariance"] = rows;
    }
  }
  j["dropped"] = r.dropped;
  j["n_params"] = f.theta.size();
  j["n_obs"] = f.n_obs;
  j["iterations"] = f.iterations;
  j["fisher_products"] = f.fisher_products;
  j["converged"] = f.converged();
  j["reason_code"] = static_cast<int>(f.reason);
  j["reason"] = to_string(f.reason);
  j["loss"] = f.loss;
  j["grad_norm"] = f.grad_norm;
  j["seconds"] = f.seconds;
  j["run"] = {{"data", r.data}, {"ranks", r.ranks}, {"threads_per_rank", r.threads}};
  j["options"] = nlohmann::ordered_json::parse(r.options_json);
  os << j.dump(2) << '\n';
}

void write_history_csv(const std::filesystem::path& path, const FitResult& r) {
  write_atomically(path, [&](std::ostream& os) { write_history_csv(os, r); });
}

void write_history_csv(std::ostream& os, const FitResult& r) {
  const auto precision = os.precision(17);
  os << "iter,loss,grad_norm,step_norm,kl,damping,step_length,seconds\n";
  for (const auto& h : r.history)
    os << h.iter << ',' << h.loss << ',' << h.grad_norm << ',' << h.step_norm << ',' << h.kl << ','
       << h.damping << ',' << h.step_length << ',' << h.seconds << '\n';
  os.precision(precision);
}

}  // namespace natgrad
