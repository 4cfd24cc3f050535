// natgrad's axis ticks: "nice" 1-2-5 steps on a linear axis, decades (or 1-2-5 multiples)
// on a log10 axis, and labels that print each tick exactly and tell neighbours apart.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <initializer_list>
#include <limits>
#include <string_view>
#include <utility>

#include "natgrad/core/error.hpp"
#include "natgrad/plot/plot.hpp"
#include "plot/detail.hpp"

namespace natgrad::plot_detail {
namespace {

/// Removes "+" and leading zeros from a printf exponent: "1.5e+06" -> "1.5e6".
std::string tidy_exponent(std::string s) {
  const auto e = s.find('e');
  if (e == std::string::npos) return s;
  std::string mant = s.substr(0, e), exp = s.substr(e + 1);
  bool neg = false;
  if (!exp.empty() && (exp[0] == '+' || exp[0] == '-')) {
    neg = exp[0] == '-';
    exp.erase(0, 1);
  }
  while (exp.size() > 1 && exp[0] == '0') exp.erase(0, 1);
  if (mant.find('.') != std::string::npos) {  // "2.0e6" -> "2e6"
    while (!mant.empty() && mant.back() == '0') mant.pop_back();
    if (!mant.empty() && mant.back() == '.') mant.pop_back();
  }
  return mant + "e" + (neg ? "-" : "") + exp;
}

/// Number of decimals needed to print multiples of \p step exactly (0..12).
int decimals_for(double step) {
  for (int d = 0; d <= 12; ++d) {
    const double scaled = step * std::pow(10.0, d);
    if (std::abs(scaled - std::round(scaled)) < 1e-6 * std::max(1.0, std::abs(scaled))) return d;
  }
  return 12;
}

std::string format_fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  const std::string_view digits(buf);
  if (digits.find_first_not_of("-0.") == std::string_view::npos) return "0";  // "-0.00"
  return std::string(digits);
}

std::string format_linear_tick(double v, double step, double max_abs) {
  if (std::abs(v) < step * 1e-9) return "0";
  if (max_abs < 1e6 && step >= 1e-4) return format_fixed(v, decimals_for(step));
  // Scientific: enough significant digits to tell neighbouring ticks apart.
  const int sig = std::clamp(static_cast<int>(std::floor(std::log10(max_abs))) -
                                 static_cast<int>(std::floor(std::log10(step))) + 1 +
                                 decimals_for(step / std::pow(10.0, std::floor(std::log10(step)))),
                             1, 12);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*e", sig - 1, v);
  return tidy_exponent(buf);
}

/// Label for the value mantissa * 10^exponent on a log axis.
std::string format_log_tick(int mantissa, int exponent) {
  if (exponent >= -3 && exponent <= 4) {
    const double v = mantissa * std::pow(10.0, exponent);
    return format_fixed(v, std::max(0, -exponent));
  }
  return std::to_string(mantissa) + "e" + std::to_string(exponent);
}

/// Tick positions k*step (k integer) inside [lo, hi].
std::vector<double> ticks_in(double lo, double hi, double step) {
  std::vector<double> out;
  const double kmin = std::ceil(lo / step - 1e-9), kmax = std::floor(hi / step + 1e-9);
  if (!(kmax - kmin < 64)) return out;
  for (double k = kmin; k <= kmax; k += 1.0) out.push_back(k * step);
  return out;
}

/// Picks a "nice" step (1-2-5 x 10^k, or 2.5 x 10^k when no 1-2-5 step gives 4..8
/// ticks) and labels the ticks inside [lo, hi].
void linear_ticks(Axis& axis, double lo, double hi) {
  const double range = hi - lo;
  const double base = std::pow(10.0, std::floor(std::log10(range)));
  double best_step = base;
  int best_score = std::numeric_limits<int>::max();
  for (int pass = 0; pass < 2 && best_score > 2; ++pass) {
    // pass 0: 1-2-5 steps; pass 1 also 2.5 (guarantees a count in [4, 8]).
    for (double mult : {0.01, 0.1, 1.0, 10.0})
      for (double m : {1.0, 2.0, 2.5, 5.0}) {
        if (pass == 0 && m == 2.5) continue;
        const double step = m * mult * base;
        const int n = static_cast<int>(ticks_in(lo, hi, step).size());
        const int score = (n >= 4 && n <= 8) ? std::abs(n - 6) : 100 + std::abs(n - 6);
        if (score < best_score) {
          best_score = score;
          best_step = step;
        }
      }
  }
  const std::vector<double> values = ticks_in(lo, hi, best_step);
  double max_abs = 0.0;
  for (double v : values) max_abs = std::max(max_abs, std::abs(v));
  for (double v : values) axis.ticks.push_back({v, format_linear_tick(v, best_step, max_abs)});
}

/// Ticks on a log10 axis spanning [lo, hi] (exponents). Prefers powers of ten (every
/// k-th decade when there are many, with unlabelled minor ticks at 2..9); for short
/// ranges adds 1-3, 1-2-5, ... multiples, and for ranges too narrow for those falls
/// back to linear "nice" ticks in value space.
void log_ticks(Axis& axis, double lo, double hi) {
  using Candidate = std::vector<std::pair<int, int>>;  // (mantissa, exponent)
  const int e_lo = static_cast<int>(std::floor(lo)) - 1;
  const int e_hi = static_cast<int>(std::ceil(hi)) + 1;
  const auto collect = [&](std::initializer_list<int> mantissas, int stride) {
    Candidate out;
    for (int e = e_lo; e <= e_hi; ++e) {
      if (stride > 1 && e % stride != 0) continue;
      for (int m : mantissas) {
        const double v = std::log10(static_cast<double>(m)) + e;
        if (v >= lo - 1e-9 && v <= hi + 1e-9) out.emplace_back(m, e);
      }
    }
    return out;
  };
  const auto score = [](const Candidate& c) {  // 0 inside [4, 8], else the distance
    const int n = static_cast<int>(c.size());
    return n < 4 ? 4 - n : (n > 8 ? n - 8 : 0);
  };

  // Decades: the smallest stride giving at most 8 ticks.
  int stride = 1;
  Candidate best = collect({1}, 1);
  for (int k : {2, 3, 5, 10, 20, 50, 100}) {
    if (best.size() <= 8) break;
    stride = k;
    best = collect({1}, k);
  }
  bool decades = true;
  if (score(best) > 0) {
    for (auto mantissas : {std::initializer_list<int>{1, 3}, {1, 2, 5}, {1, 2, 3, 5},
                           {1, 2, 3, 5, 7}, {1, 2, 3, 4, 5, 6, 7, 8, 9}}) {
      Candidate c = collect(mantissas, 1);
      if (score(c) < score(best)) {
        best = std::move(c);
        decades = false;
      }
      if (score(best) == 0) break;
    }
  }
  if (best.size() < 4) {
    // Narrow range: nice linear ticks in value space, placed on the log axis.
    Axis lin;
    linear_ticks(lin, std::pow(10.0, lo), std::pow(10.0, hi));
    for (Tick& t : lin.ticks)
      if (t.value > 0) axis.ticks.push_back({std::log10(t.value), std::move(t.label)});
    return;
  }
  for (const auto& [m, e] : best)
    axis.ticks.push_back({std::log10(static_cast<double>(m)) + e, format_log_tick(m, e)});
  if (decades && stride == 1)
    for (int e = e_lo; e <= e_hi; ++e)
      for (int m = 2; m <= 9; ++m) {
        const double v = std::log10(static_cast<double>(m)) + e;
        if (v > lo && v < hi) axis.minor.push_back(v);
      }
}

}  // namespace

Axis make_axis(double lo, double hi, bool log, double pad_fraction) {
  Axis axis;
  axis.log = log;
  if (!(lo <= hi)) {  // no data
    lo = 0.0;  // [0, 1]; on a log axis, 10^0 .. 10^1
    hi = 1.0;
    pad_fraction = 0.0;
  } else if (hi - lo <= std::max(std::abs(lo), std::abs(hi)) * 1e-12) {  // equal min/max
    const double d = log ? 0.5 : (lo != 0.0 ? std::abs(lo) * 0.1 : 1.0);
    lo -= d;
    hi += d;
  }
  const double pad = (hi - lo) * pad_fraction;
  axis.lo = lo - pad;
  axis.hi = hi + pad;
  if (log)
    log_ticks(axis, axis.lo, axis.hi);
  else
    linear_ticks(axis, axis.lo, axis.hi);
  return axis;
}

}  // namespace natgrad::plot_detail

namespace natgrad {

std::vector<AxisTick> axis_ticks(double lo, double hi, bool log) {
  if (!(lo < hi) || !std::isfinite(lo) || !std::isfinite(hi) || (log && !(lo > 0.0)))
    throw Error("axis_ticks: need finite lo < hi (positive on a log axis), got [" +
                std::to_string(lo) + ", " + std::to_string(hi) + "]");
  const plot_detail::Axis axis =
      plot_detail::make_axis(log ? std::log10(lo) : lo, log ? std::log10(hi) : hi, log, 0.0);
  std::vector<AxisTick> out;
  for (const plot_detail::Tick& t : axis.ticks)
    out.push_back({log ? std::pow(10.0, t.value) : t.value, t.label});
  return out;
}

}  // namespace natgrad
