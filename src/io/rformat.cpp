// R's number formatting for summary.txt: a port of the rules of formatReal / scientific
// (R's src/main/format.c), format.pval and printCoefmat (R's stats package), so that
// natgrad's summary prints the digits R's summary() prints.
#include "io/rformat.hpp"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdio>

namespace natgrad::rformat {

namespace {

long double pow10l_(int k) { return std::pow(10.0L, static_cast<long double>(k)); }

struct Sci {
  bool neg = false;
  int kpower = 0, nsig = 1;
  bool roundingwidens = false;
};

/// R's scientific(): the power of ten, significant digits (at most \p R) of x.
Sci scientific(double x, int R) {
  Sci s;
  if (x == 0.0) return s;
  s.neg = x < 0;
  const long double r = std::fabs(static_cast<long double>(x));
  int kp = static_cast<int>(std::floor(std::log10(static_cast<double>(r)))) - R + 1;
  long double r_prec = r / pow10l_(kp);
  if (r_prec < pow10l_(R - 1)) {
    r_prec *= 10.0L;
    --kp;
  }
  long double alpha = std::nearbyint(r_prec);
  s.nsig = R;
  for (int j = 1; j <= R; ++j) {
    alpha /= 10.0L;
    if (alpha == std::floor(alpha))
      --s.nsig;
    else
      break;
  }
  if (s.nsig == 0 && R > 0) {
    s.nsig = 1;
    kp += 1;
  }
  s.kpower = kp + R - 1;
  int rgt = R - s.kpower;
  rgt = rgt < 0 ? 0 : rgt > 27 ? 27 : rgt;
  const long double fuzz = 0.5L / pow10l_(rgt);
  s.roundingwidens = s.kpower > 0 && s.kpower <= 27 && r < pow10l_(s.kpower) - fuzz;
  return s;
}

std::string pad_left(const std::string& s, std::size_t w) {
  return s.size() >= w ? s : std::string(w - s.size(), ' ') + s;
}
std::string pad_right(const std::string& s, std::size_t w) {
  return s.size() >= w ? s : s + std::string(w - s.size(), ' ');
}

}  // namespace

double round_to(double x, int digits) {
  if (!std::isfinite(x)) return x;
  const long double p = pow10l_(digits);
  const long double v = static_cast<long double>(x) * p;
  long double r = std::nearbyint(v);
  // R rounds the decimal representation half away from zero where x is (nearly) a tie.
  if (std::fabs(v - std::trunc(v)) == 0.5L) r = v < 0 ? std::floor(v) : std::ceil(v);
  return static_cast<double>(r / p);
}

std::vector<std::string> format(const std::vector<double>& x, int digits) {
  bool neg = false, any_finite = false, na = false, posinf = false, neginf = false;
  int rgt = INT_MIN, mxl = INT_MIN, mnl = INT_MAX, mxsl = INT_MIN, mxns = INT_MIN, mxe = INT_MIN, mne = INT_MAX;
  for (const double v : x) {
    if (!std::isfinite(v)) {
      if (std::isnan(v))
        na = true;
      else if (v > 0)
        posinf = true;
      else
        neginf = true;
      continue;
    }
    any_finite = true;
    const Sci s = scientific(v, digits);
    int left = s.kpower + 1;
    if (s.roundingwidens) --left;
    const int sleft = (s.neg ? 1 : 0) + (left <= 0 ? 1 : left);
    const int right = s.nsig - left;
    if (s.neg) neg = true;
    rgt = std::max(rgt, right);
    mxl = std::max(mxl, left);
    mnl = std::min(mnl, left);
    mxsl = std::max(mxsl, sleft);
    mxns = std::max(mxns, s.nsig);
    mxe = std::max(mxe, s.kpower);
    mne = std::min(mne, s.kpower);
  }
  int w = 0, d = 0, e = 0;
  if (any_finite) {
    if (mxl < 0) mxsl = 1 + (neg ? 1 : 0);
    if (rgt < 0) rgt = 0;
    const int wF = mxsl + rgt + (rgt != 0 ? 1 : 0);
    e = (mxe >= 100 || mne <= -99) ? 2 : 1;
    d = mxns - 1;
    w = (neg ? 1 : 0) + (d > 0 ? 1 : 0) + d + 4 + e;
    if (wF <= w) {
      e = 0;
      d = rgt;
      w = wF;
    }
  }
  if (na) w = std::max(w, 2);
  if (posinf) w = std::max(w, 3);
  if (neginf) w = std::max(w, 4);
  std::vector<std::string> out;
  out.reserve(x.size());
  for (const double v : x) {
    std::string s;
    if (std::isnan(v))
      s = "NA";
    else if (std::isinf(v))
      s = v > 0 ? "Inf" : "-Inf";
    else {
      char b[64];
      const double u = v == 0 ? 0.0 : v;  // R drops the sign of zero
      std::snprintf(b, sizeof b, e == 0 ? "%.*f" : "%.*e", d, u);
      s = b;
    }
    out.push_back(pad_left(s, static_cast<std::size_t>(w)));
  }
  return out;
}

std::vector<std::string> format_pval(const std::vector<double>& pv_in, int digits) {
  const double eps = 2.220446049250313e-16;
  std::vector<std::string> r(pv_in.size());
  std::vector<std::size_t> fix, sci, zero;
  for (std::size_t i = 0; i < pv_in.size(); ++i) {
    const double p = pv_in[i];
    if (std::isnan(p)) {
      r[i] = "NA";
      continue;
    }
    if (p < eps) {
      zero.push_back(i);
      continue;
    }
    const double expo = std::floor(std::log10(p > 0 ? p : 1e-50));
    ((expo >= -3 || (expo == -4 && digits > 1)) ? fix : sci).push_back(i);
  }
  std::size_t nc = 0;
  for (const auto* group : {&fix, &sci}) {
    if (group->empty()) continue;
    std::vector<double> v;
    for (const std::size_t i : *group) v.push_back(pv_in[i]);
    const auto f = format(v, digits);
    for (std::size_t k = 0; k < group->size(); ++k) {
      r[(*group)[k]] = f[k];
      nc = std::max(nc, f[k].size());
    }
  }
  if (!zero.empty()) {
    int dg = std::max(1, digits - 2);
    std::string sep;
    if (!fix.empty() || !sci.empty()) {
      if (dg > 1 && static_cast<std::size_t>(dg + 6) > nc) dg = std::max(1, static_cast<int>(nc) - 7);
      sep = (dg == 1 && nc <= 6) ? "" : " ";
    } else {
      sep = dg == 1 ? "" : " ";
    }
    const std::string e = format({eps}, dg)[0];
    for (const std::size_t i : zero) r[i] = "<" + sep + e;
  }
  return r;
}

std::vector<std::string> coef_table(const std::vector<std::string>& rows, const std::vector<double>& est,
                                    const std::vector<double>& se, const std::vector<double>& stat,
                                    const std::vector<double>& p, const std::string& stat_name,
                                    const std::string& p_name, int digits) {
  const std::size_t n = rows.size();
  const bool has_se = !se.empty(), has_stat = !stat.empty(), has_p = !p.empty();
  const int dig_tst = std::max(1, std::min(5, digits - 1));
  // Estimate and Std. Error: rounded to max(1, digits - digmin) decimals, then format()ted together.
  std::vector<double> cs;
  for (std::size_t i = 0; i < n; ++i) {
    cs.push_back(est[i]);
    if (has_se) cs.push_back(se[i]);
  }
  double lo = INFINITY, hi = 0;
  for (const double v : cs)
    if (std::isfinite(v) && v != 0) {
      lo = std::min(lo, std::fabs(v));
      hi = std::max(hi, std::fabs(v));
    }
  int dec = 1;
  if (std::isfinite(lo)) {
    const int dmin_lo = 1 + static_cast<int>(std::floor(std::log10(lo)));
    const int dmin_hi = 1 + static_cast<int>(std::floor(std::log10(hi)));
    dec = std::max({1, digits - dmin_lo, digits - dmin_hi});
  } else {
    dec = std::max(1, digits - 1);
  }
  std::vector<double> csr;
  for (const double v : cs) csr.push_back(round_to(v, dec));
  std::vector<std::string> csf = format(csr, digits);
  // Entries whose formatting shows 0 while the value is not 0 (or the reverse): digits - 1.
  for (std::size_t k = 0; k < cs.size(); ++k) {
    if (std::isnan(cs[k])) continue;
    const double shown = std::strtod(csf[k].c_str(), nullptr);
    if ((cs[k] == 0) != (shown == 0)) csf[k] = format({cs[k]}, std::max(1, digits - 1))[0];
  }
  std::vector<std::vector<std::string>> cols;
  std::vector<std::string> heads;
  {
    std::vector<std::string> e, s;
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t k = has_se ? 2 * i : i;
      e.push_back(std::isnan(est[i]) ? "NA" : csf[k]);
      if (has_se) s.push_back(std::isnan(se[i]) ? "NA" : csf[k + 1]);
    }
    cols.push_back(e);
    heads.push_back("Estimate");
    if (has_se) {
      cols.push_back(s);
      heads.push_back("Std. Error");
    }
  }
  if (has_stat) {
    std::vector<double> t;
    for (const double v : stat) t.push_back(round_to(v, dig_tst));
    auto f = format(t, digits);
    for (std::size_t i = 0; i < n; ++i)
      if (std::isnan(stat[i])) f[i] = "NA";
    cols.push_back(f);
    heads.push_back(stat_name);
  }
  bool stars = false;
  if (has_p) {
    std::vector<double> ok;
    for (const double v : p)
      if (!std::isnan(v)) ok.push_back(v);
    const auto f = format_pval(ok, dig_tst);
    std::vector<std::string> col(n, "NA");
    std::size_t k = 0;
    for (std::size_t i = 0; i < n; ++i)
      if (!std::isnan(p[i])) col[i] = f[k++];
    cols.push_back(col);
    heads.push_back(p_name);
    for (const double v : ok) stars = stars || v < 0.1;
    if (stars) {
      std::vector<std::string> sym;
      std::size_t w = 0;
      for (std::size_t i = 0; i < n; ++i) {
        const double v = p[i];
        sym.push_back(std::isnan(v) ? "" : v <= 0.001 ? "***" : v <= 0.01 ? "**" : v <= 0.05 ? "*" : v <= 0.1 ? "." : " ");
        w = std::max(w, sym.back().size());
      }
      for (auto& s : sym) s = pad_right(s, w);
      cols.push_back(sym);
      heads.push_back("");
    }
  }
  // print.default of the character matrix, right-justified, row names left-justified.
  std::size_t rw = 0;
  for (const auto& r : rows) rw = std::max(rw, r.size());
  std::vector<std::size_t> cw;
  for (std::size_t c = 0; c < cols.size(); ++c) {
    std::size_t w = heads[c].size();
    for (const auto& s : cols[c]) w = std::max(w, s.size());
    cw.push_back(w);
  }
  std::vector<std::string> lines;
  std::string h(rw, ' ');
  for (std::size_t c = 0; c < cols.size(); ++c) h += " " + pad_left(heads[c], cw[c]);
  lines.push_back(h);
  for (std::size_t i = 0; i < n; ++i) {
    std::string l = pad_right(rows[i], rw);
    for (std::size_t c = 0; c < cols.size(); ++c) l += " " + pad_left(cols[c][i], cw[c]);
    lines.push_back(l);
  }
  if (stars) {
    lines.push_back("---");
    lines.push_back("Signif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1");
  }
  return lines;
}

std::vector<double> quantiles5(std::vector<double>& x) {
  std::sort(x.begin(), x.end());
  std::vector<double> q;
  const auto n = x.size();
  if (n == 0) return {NAN, NAN, NAN, NAN, NAN};
  for (const double prob : {0.0, 0.25, 0.5, 0.75, 1.0}) {
    const double h = (static_cast<double>(n) - 1) * prob;
    const auto lo = static_cast<std::size_t>(std::floor(h));
    const std::size_t hi = std::min(lo + 1, n - 1);
    q.push_back(x[lo] + (h - static_cast<double>(lo)) * (x[hi] - x[lo]));
  }
  return q;
}

std::vector<double> zapsmall(std::vector<double> x, int digits) {
  double mx = 0;
  for (const double v : x)
    if (std::isfinite(v)) mx = std::max(mx, std::fabs(v));
  const int r = mx > 0 ? std::max(0, digits - static_cast<int>(std::ceil(std::log10(mx)))) : digits;
  for (double& v : x) v = round_to(v, r);
  return x;
}

std::vector<std::string> named_vector(const std::vector<std::string>& names, const std::vector<double>& v,
                                      int digits) {
  const auto f = format(v, digits);
  std::string a, b;
  for (std::size_t i = 0; i < names.size(); ++i) {
    const std::size_t w = std::max(names[i].size(), f[i].size());
    a += pad_left(names[i], w) + "  ";
    b += pad_left(f[i], w) + "  ";
  }
  return {a, b};
}

}  // namespace natgrad::rformat
