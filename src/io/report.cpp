#include "natgrad/io/report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <sstream>

#include "io/rformat.hpp"
#include "natgrad/io/output.hpp"

namespace natgrad {

std::vector<std::string> parameter_names(const std::vector<std::string>& columns, int classes,
                                         const std::vector<std::string>& labels) {
  if (classes < 2) return columns;
  const bool by_level = labels.size() == static_cast<std::size_t>(classes);
  std::vector<std::string> n;
  for (int k = 1; k < classes; ++k)
    for (const auto& c : columns)
      n.push_back(c + ":" + (by_level ? labels[static_cast<std::size_t>(k)] : "class" + std::to_string(k)));
  return n;
}

namespace {

std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
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
  // R's print.summary.glm, line for line where R has the line (numbers formatted by R's
  // rules, io/rformat.hpp); natgrad's additions (robust errors, intervals, BIC, the
  // solver's iterations) follow R's block.
  namespace rf = rformat;
  std::ostringstream o;
  const FitResult& f = *r.fit;
  const Inference* inf = r.inference;
  if (const std::string note = nonconvergence_note(f); !note.empty()) o << note << "\n\n";
  if (!r.command.empty()) o << "Call:\n" << r.command << "\n\n";
  if (!r.model_line.empty()) o << r.model_line << "\n\n";
  o << "Family: " << r.family << ", link: " << r.link;
  if (r.classes > 1)
    o << " (" << r.classes << " classes, "
      << (r.class_labels.size() == static_cast<std::size_t>(r.classes) ? "'" + r.class_labels[0] + "'"
                                                                         : std::string("class 0"))
      << " the reference)";
  o << "\n\n";
  if (r.deviance_quantiles.size() == 5) {
    o << "Deviance Residuals: \n";
    for (const auto& l : rf::named_vector({"Min", "1Q", "Median", "3Q", "Max"}, rf::zapsmall(r.deviance_quantiles, 5), 4))
      o << l << "\n";
    o << "\n";
  }
  const auto names = parameter_names(r.all_columns, r.classes, r.class_labels);
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
  const std::size_t n_na = static_cast<std::size_t>(std::count_if(est.begin(), est.end(), [](double v) { return std::isnan(v); }));
  if (n_na > 0)
    o << "Coefficients: (" << n_na << " not defined because of singularities)\n";
  else
    o << "Coefficients:\n";
  const bool t = inf && inf->t_statistic;
  for (const auto& l : rf::coef_table(names, est, se, st, pv, t ? "t value" : "z value", t ? "Pr(>|t|)" : "Pr(>|z|)"))
    o << l << "\n";
  if (inf) {
    const bool negbin = std::isfinite(inf->theta);
    o << "\n(Dispersion parameter for "
      << (negbin ? "Negative Binomial(" + rf::format({rf::round_to(inf->theta, 4)}, 7)[0] + ")" : r.family)
      << " family taken to be " << rf::format({inf->dispersion}, 7)[0] << ")\n\n";
    const auto dev = rf::format({inf->null_deviance, inf->deviance}, 5);
    const auto df = rf::format({inf->df_null, inf->df_residual}, 7);
    o << "    Null deviance: " << dev[0] << "  on " << df[0] << "  degrees of freedom\n";
    o << "Residual deviance: " << dev[1] << "  on " << df[1] << "  degrees of freedom\n";
    if (r.rows_dropped > 0)
      o << "  (" << r.rows_dropped << " observation" << (r.rows_dropped > 1 ? "s" : "") << " deleted due to missingness)\n";
    o << "AIC: " << rf::format({inf->aic}, 5)[0] << "\n";
  }
  o << "\nNumber of iterations: " << f.iterations << " (" << to_string(f.reason) << ")";
  if (f.fisher_products > 0) o << ", " << f.fisher_products << " Fisher-vector products (--solver cg)";
  o << "\n";
  if (inf && std::isfinite(inf->theta)) {
    {  // negative binomial: after the iterations, as MASS's print.summary.negbin
      o << "\n";
      const int dp = inf->theta_estimated && std::isfinite(inf->theta_std_error) && inf->theta_std_error > 0
                         ? std::max(2 - static_cast<int>(std::floor(std::log10(inf->theta_std_error))), 0)
                         : 2;
      auto nsmall = [dp](double v, int round) {
        std::string s = rf::format({rf::round_to(v, round)}, 7)[0];
        const std::size_t dot = s.find('.');
        const int have = dot == std::string::npos ? 0 : static_cast<int>(s.size() - dot - 1);
        if (have < dp && s.find('e') == std::string::npos) s += (dot == std::string::npos ? "." : "") + std::string(static_cast<std::size_t>(dp - have), '0');
        return s;
      };
      o << "              Theta:  " << nsmall(inf->theta, dp) << (inf->theta_estimated ? "" : " (fixed, --theta)") << "\n";
      if (inf->theta_estimated) o << "          Std. Err.:  " << nsmall(inf->theta_std_error, dp) << "\n";
      o << "\n 2 x log-likelihood:  " << nsmall(2 * inf->log_likelihood, 3) << "\n";
    }
  }
  if (inf) {
    o << "BIC: " << rf::format({inf->bic}, 5)[0] << ", log-likelihood: " << rf::format({inf->log_likelihood}, 7)[0]
      << "\n";
    if (has_se) {
      // natgrad's additions: the HC0 sandwich errors and R's confint.default.
      std::vector<std::vector<std::string>> cols;
      std::vector<std::string> heads;
      cols.push_back(rf::format(rse, 4));
      heads.push_back("Robust SE");
      if (!inf->conf_lower.empty()) {
        const double a = (1 - inf->conf_level) / 2;
        const auto lo = with_dropped(r, inf->conf_lower), hi = with_dropped(r, inf->conf_upper);
        cols.push_back(rf::format(lo, 7));  // R prints confint()'s matrix column by column, 7 digits
        cols.push_back(rf::format(hi, 7));
        heads.push_back(rf::format({100 * a}, 3)[0] + " %");
        heads.push_back(rf::format({100 * (1 - a)}, 3)[0] + " %");
      }
      std::size_t w = 0;
      for (const auto& n : names) w = std::max(w, n.size());
      o << "\nRobust (HC0 sandwich) standard errors"
        << (inf->conf_lower.empty() ? "" : " and Wald confidence intervals (confint.default)") << ":\n"
        << std::string(w, ' ');
      std::vector<std::size_t> cw;
      for (std::size_t c = 0; c < cols.size(); ++c) {
        std::size_t x = heads[c].size();
        for (const auto& s : cols[c]) x = std::max(x, s.size());
        cw.push_back(x);
        o << ' ' << std::string(x - heads[c].size(), ' ') << heads[c];
      }
      o << "\n";
      for (std::size_t j = 0; j < names.size(); ++j) {
        o << names[j] << std::string(w - names[j].size(), ' ');
        for (std::size_t c = 0; c < cols.size(); ++c) o << ' ' << std::string(cw[c] - cols[c][j].size(), ' ') << cols[c][j];
        o << "\n";
      }
    }
    if (!inf->note.empty()) o << "note: " << inf->note << "\n";
  }
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
  j["names"] = parameter_names(r.all_columns, r.classes, r.class_labels);
  if (!r.class_labels.empty()) j["class_labels"] = r.class_labels;
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
      j["covariance_names"] = parameter_names(r.columns, r.classes, r.class_labels);
      j["covariance"] = rows;
    }
  }
  j["dropped"] = r.dropped;
  j["n_params"] = f.theta.size();
  j["n_obs"] = f.n_obs;
  j["rows_dropped"] = r.rows_dropped;  // rows with a missing value left out (--na omit)
  j["iterations"] = f.iterations;
  j["fisher_products"] = f.fisher_products;
  j["converged"] = f.converged();
  j["reason_code"] = static_cast<int>(f.reason);
  j["reason"] = to_string(f.reason);
  j["loss"] = f.loss;
  j["grad_norm"] = f.grad_norm;
  j["seconds"] = f.seconds;
  j["run"] = {{"data", r.data}, {"ranks", r.ranks}, {"threads_per_rank", r.threads}};
  if (!r.design_json.empty()) j["design"] = nlohmann::ordered_json::parse(r.design_json);
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
