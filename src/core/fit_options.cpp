#include "natgrad/core/fit_options.hpp"

#include <cmath>

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

void FitOptions::validate() const {
  auto bad = [](const std::string& m) { throw Error(m); };
  if (!(lr > 0) || !std::isfinite(lr)) bad("--lr must be a positive number");
  if (!(kl > 0) || !std::isfinite(kl)) bad("--kl must be a positive number");
  if (!(damping >= 0) || !std::isfinite(damping)) bad("--damping must be >= 0");
  if (max_iter < 0) bad("--max-iter must be >= 0");
  if (!(tol >= 0)) bad("--tol must be >= 0");
  if (!(ftol >= 0)) bad("--ftol must be >= 0");
  if (threads < 1) bad("--threads must be >= 1");
  if (block_rows < 1) bad("block rows must be >= 1");
  if (step == StepRule::kl && method == Method::gd)
    bad("--step kl needs a Fisher metric: use --method ngd or diag");
  if (!(l2 >= 0) || !std::isfinite(l2)) bad("--l2 must be >= 0");
  if (!(sample.fraction > 0 && sample.fraction <= 1)) bad("--fisher-sample must be in (0, 1]");
  if (sample.active() && method == Method::gd) bad("--fisher-sample needs a Fisher: use --method ngd or diag");
  if (sample.active() && method == Method::ngd && fisher != FisherKind::expected && fisher != FisherKind::empirical)
    bad("--fisher-sample works with --fisher expected or empirical");
}

}  // namespace natgrad
