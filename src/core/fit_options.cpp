#include "natgrad/core/fit_options.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>

#include "natgrad/core/error.hpp"

namespace natgrad {

const char* to_string(Method m) {
  switch (m) {
    case Method::ngd: return "ngd";
    case Method::gd: return "gd";
    case Method::diag: return "diag";
  }
  return "?";
}
const char* to_string(StepRule s) {
  switch (s) {
    case StepRule::fixed: return "fixed";
    case StepRule::armijo: return "armijo";
    case StepRule::kl: return "kl";
  }
  return "?";
}
Method method_from_string(const std::string& s) {
  if (s == "ngd") return Method::ngd;
  if (s == "gd") return Method::gd;
  if (s == "diag") return Method::diag;
  throw Error("--method '" + s + "' is not one of: ngd, gd, diag");
}
StepRule step_rule_from_string(const std::string& s) {
  if (s == "fixed") return StepRule::fixed;
  if (s == "armijo") return StepRule::armijo;
  if (s == "kl") return StepRule::kl;
  throw Error("--step '" + s + "' is not one of: fixed, armijo, kl");
}

const OptionTable<FitOptions>& fit_option_table() {
  using O = FitOptions;
  constexpr unsigned F = kOptionFingerprint | kOptionRecorded;  // change the iterates
  constexpr unsigned R = kOptionRecorded;
  static const OptionTable<FitOptions> table = [] {
    OptionTable<FitOptions> t;
    t.push_back(choice_option("method", &O::method, "ngd",
                              "ngd (natural gradient, full Fisher) | gd (vanilla gradient descent) | diag "
                              "(diagonal Fisher)",
                              &method_from_string, &to_string, F));
    t.push_back(choice_option("fisher", &O::fisher, "expected",
                              "expected (X^T W X, Fisher scoring) | empirical (sum of score outer products) | "
                              "empirical-centered (covariance of the scores, as the seed's np.cov)",
                              &fisher_kind_from_string, &to_string, F));
    // The Fisher's row sample: FisherSample's own rows, reached through FitOptions::sample.
    OptionTable<FisherSample> sample;
    sample.push_back(number_option<FisherSample, double>(
        "fisher-sample", &FisherSample::fraction, "1",
        "form the Fisher from this fraction of the rows (chosen by global row index: the same rows at any rank "
        "count); loss, gradient and --tol use every row, so the answer is the same, in more but cheaper "
        "iterations. 1 = exact Fisher",
        F, [](double f) { return f > 0 && f <= 1 ? std::string() : std::string("must be in (0, 1]"); }));
    sample.push_back(number_option<FisherSample, std::uint64_t>("fisher-sample-seed", &FisherSample::seed, "0",
                                                                "which rows --fisher-sample picks", F));
    append(t, nest<O>(sample, [](auto& o) -> auto& { return o.sample; }));
    t.push_back(choice_option("step", &O::step, "armijo",
                              "fixed (theta -= lr * direction, the seed's rule) | armijo (backtracking from lr) | "
                              "kl (KL trust region: 0.5 d^T F d <= --kl, then backtracking)",
                              &step_rule_from_string, &to_string, F));
    t.push_back(number_option<O, double>("lr", &O::lr, "1", "learning rate / first trial step", F, positive_number()));
    t.push_back(number_option<O, double>("kl", &O::kl, "0.1", "KL radius c for --step kl", F, positive_number()));
    t.push_back(number_option<O, double>("damping", &O::damping, "0",
                                         "added to the Fisher diagonal; raised automatically when Cholesky fails",
                                         F, finite_at_least(0)));
    t.push_back(number_option<O, int>("max-iter", &O::max_iter, "100", "iteration limit", R, at_least(0)));
    t.push_back(number_option<O, double>("tol", &O::tol, "1e-8",
                                         "converged when max |gradient of the mean loss| <= tol", F, at_least(0.0)));
    t.push_back(number_option<O, double>("ftol", &O::ftol, "0",
                                         "converged when the relative loss change <= ftol (0: off)", F,
                                         at_least(0.0)));
    t.push_back(number_option<O, std::int64_t>("block-rows", &O::block_rows, "256",
                                               "rows per block in the Fisher pass", R, at_least<std::int64_t>(1)));
    t.push_back(number_option<O, double>(
        "l2", &O::l2, "0",
        "ridge penalty: minimise sum_i w_i nll_i + l2/2 ||theta||^2 (intercept not penalised)", F,
        finite_at_least(0)));
    return t;
  }();
  return table;
}

void FitOptions::validate() const {
  check_options(fit_option_table(), *this);
  auto bad = [](const std::string& m) { throw Error(m); };
  if (threads < 1) bad("--threads must be >= 1");
  if (step == StepRule::kl && method == Method::gd)
    bad("--step kl needs a Fisher metric: use --method ngd or diag");
  if (sample.active() && method == Method::gd) bad("--fisher-sample needs a Fisher: use --method ngd or diag");
  if (sample.active() && method == Method::ngd && fisher != FisherKind::expected && fisher != FisherKind::empirical)
    bad("--fisher-sample works with --fisher expected or empirical");
}

namespace option_detail {

std::string json_string(std::string_view s) {
  std::string o = "\"";
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      o += '\\';
      o += c;
    } else if (u < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", u);
      o += buf;
    } else {
      o += c;
    }
  }
  return o + '"';
}

std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);  // shortest round trip
  std::string t(buf, r.ptr);
  if (t.find_first_of(".e") == std::string::npos) t += ".0";  // stays a double when read back, as JSON libraries write it
  return t;
}

}  // namespace option_detail

std::function<std::string(double)> finite_at_least(double lo) {
  return [lo](double v) {
    if (v >= lo && std::isfinite(v)) return std::string();
    return "must be >= " + option_detail::json_number(lo);
  };
}

std::function<std::string(double)> positive_number() {
  return [](double v) { return v > 0 && std::isfinite(v) ? std::string() : std::string("must be a positive number"); };
}

}  // namespace natgrad
