// Line charts on Cairo: layout (title, axis labels, tick labels measured in the real
// font), translucent bands, anti-aliased lines, a legend where it hides no data (else
// below the axes), and the output surface chosen by the file extension.
#include "natgrad/plot/plot.hpp"

#include <cairo-pdf.h>
#include <cairo-svg.h>
#include <cairo.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <limits>
#include <memory>
#include <numbers>
#include <ostream>
#include <string>
#include <vector>

#include "natgrad/core/error.hpp"
#include "natgrad/io/output.hpp"
#include "plot/detail.hpp"

namespace natgrad {
namespace {

using plot_detail::Axis;
using plot_detail::make_axis;
using plot_detail::Tick;

struct Rgb {
  double r, g, b;
};
constexpr Rgb kText{0.08, 0.08, 0.08}, kGrid{0.89, 0.89, 0.89}, kFrame{0.2, 0.2, 0.2};

// "tab10", then four darker or purer colours: up to 14 series repeat no colour.
constexpr std::array<Rgb, 14> kPalette = {{
    {0.122, 0.467, 0.706}, {1.000, 0.498, 0.055}, {0.173, 0.627, 0.173}, {0.839, 0.153, 0.157},
    {0.580, 0.404, 0.741}, {0.549, 0.337, 0.294}, {0.890, 0.467, 0.761}, {0.498, 0.498, 0.498},
    {0.737, 0.741, 0.133}, {0.090, 0.745, 0.812}, {0.000, 0.000, 0.549}, {0.784, 0.000, 0.784},
    {0.000, 0.392, 0.000}, {0.902, 0.706, 0.000},
}};

// ---------------------------------------------------------------------------------
// Data in axis coordinates: x, y (log10 y on a log axis) and the band; NaN marks a gap.
// ---------------------------------------------------------------------------------
struct Prepared {
  std::vector<double> x, y, lo, hi;  // lo/hi empty without a band; lo = -inf: axis bottom
};

bool usable(double v) { return std::isfinite(v) && std::abs(v) < 1e300; }

std::vector<Prepared> prepare(const std::vector<Series>& series, bool log_y) {
  constexpr double nan = std::numeric_limits<double>::quiet_NaN();
  const auto to_axis = [log_y](double v) {
    if (!usable(v)) return nan;
    return log_y ? (v > 0.0 ? std::log10(v) : nan) : v;
  };
  std::vector<Prepared> out;
  for (const Series& s : series) {
    const std::size_t n = s.y.size();
    if ((!s.x.empty() && s.x.size() != n) || (!s.y_err.empty() && s.y_err.size() != n))
      throw Error("series '" + s.label + "': x, y and y_err have " + std::to_string(s.x.size()) +
                  ", " + std::to_string(n) + " and " + std::to_string(s.y_err.size()) +
                  " values (x and y_err: as many as y, or none)");
    Prepared p;
    for (std::size_t i = 0; i < n; ++i) {
      const double x = s.x.empty() ? static_cast<double>(i) : s.x[i];
      p.x.push_back(usable(x) ? x : nan);
      p.y.push_back(to_axis(s.y[i]));
      if (s.y_err.empty()) continue;
      const double e = std::abs(s.y_err[i]), lo = s.y[i] - e;
      const bool ok = usable(s.y[i]) && usable(e);
      p.hi.push_back(ok ? to_axis(s.y[i] + e) : nan);
      p.lo.push_back(!ok ? nan : (log_y && lo <= 0.0) ? -std::numeric_limits<double>::infinity()
                                                       : to_axis(lo));
    }
    out.push_back(std::move(p));
  }
  return out;
}

// ---------------------------------------------------------------------------------
// Drawing
// ---------------------------------------------------------------------------------
struct Box {
  double x0 = 0, y0 = 0, x1 = 0, y1 = 0;
  bool contains(double x, double y) const { return x >= x0 && x <= x1 && y >= y0 && y <= y1; }
};

struct Font {
  double size;
  bool bold = false;
};

void set_font(cairo_t* cr, Font f) {
  cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL,
                         f.bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_font_size(cr, f.size);
}

/// \p s with every byte that does not start a valid UTF-8 character made '?': Cairo
/// refuses invalid strings, and a CSV header in Latin-1 should still plot.
std::string utf8(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const std::size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    char32_t cp = n == 1 ? c : n == 2 ? c & 0x1FU : n == 3 ? c & 0x0FU : c & 0x07U;
    bool ok = n > 0 && i + n <= s.size();
    for (std::size_t k = 1; ok && k < n; ++k) {
      const auto b = static_cast<unsigned char>(s[i + k]);
      ok = (b & 0xC0U) == 0x80U;
      cp = (cp << 6) | (b & 0x3FU);
    }
    constexpr char32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};  // shortest form only
    ok = ok && cp >= kMin[n] && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
    out.append(ok ? s.substr(i, n) : "?");
    i += ok ? n : 1;
  }
  return out;
}

double text_width(cairo_t* cr, Font f, const std::string& s) {
  set_font(cr, f);
  cairo_text_extents_t e;
  cairo_text_extents(cr, utf8(s).c_str(), &e);
  return e.x_advance;
}

/// Draws \p s with its anchor at (x, y): \p ax 0/0.5/1 = left/centre/right, \p ay the same
/// for top/middle/bottom of the font's ascent + descent; \p angle rotates about the anchor.
void text(cairo_t* cr, Font f, const std::string& s, double x, double y, double ax, double ay,
          double angle = 0.0) {
  set_font(cr, f);
  cairo_font_extents_t fe;
  cairo_font_extents(cr, &fe);
  cairo_save(cr);
  cairo_translate(cr, x, y);
  cairo_rotate(cr, angle);
  cairo_move_to(cr, -ax * text_width(cr, f, s), fe.ascent - ay * (fe.ascent + fe.descent));
  cairo_set_source_rgb(cr, kText.r, kText.g, kText.b);
  cairo_show_text(cr, utf8(s).c_str());
  cairo_new_path(cr);  // no current point left for the next path
  cairo_restore(cr);
}

double line_height(cairo_t* cr, Font f) {
  set_font(cr, f);
  cairo_font_extents_t fe;
  cairo_font_extents(cr, &fe);
  return fe.ascent + fe.descent;
}

void source(cairo_t* cr, Rgb c, double alpha = 1.0) { cairo_set_source_rgba(cr, c.r, c.g, c.b, alpha); }

struct Chart {
  cairo_t* cr;
  const std::vector<Series>& series;
  const PlotOptions& opt;
  std::vector<Prepared> data;
  Axis xa, ya;
  double u;  // one unit of size: 1 at 800x500, growing with larger images
  Font f_tick, f_label, f_title, f_legend;
  Box area;

  double px(double v) const { return area.x0 + (v - xa.lo) / (xa.hi - xa.lo) * (area.x1 - area.x0); }
  double py(double v) const {
    if (std::isinf(v)) return v < 0 ? area.y1 : area.y0;
    return area.y1 - (v - ya.lo) / (ya.hi - ya.lo) * (area.y1 - area.y0);
  }
  std::vector<std::size_t> entries() const {  // series in the legend
    std::vector<std::size_t> e;
    for (std::size_t k = 0; k < series.size(); ++k)
      if (!series[k].label.empty()) e.push_back(k);
    return e;
  }
  bool valid(const Prepared& p, std::size_t i) const { return !std::isnan(p.x[i]) && !std::isnan(p.y[i]); }
  bool isolated(const Prepared& p, std::size_t i) const {
    return !(i > 0 && valid(p, i - 1)) && !(i + 1 < p.x.size() && valid(p, i + 1));
  }
  bool markers(const Prepared& p) const { return static_cast<double>(p.x.size()) <= (area.x1 - area.x0) / 10; }

  /// Legend geometry: columns of entries, each a line sample and the label.
  struct Legend {
    Font font;
    double row_h, col_w, pad, sample;
    std::size_t cols = 1, rows = 0;
    double width() const { return 2 * pad + static_cast<double>(cols) * col_w; }
    double height() const { return 2 * pad + static_cast<double>(rows) * row_h; }
  };
  Legend legend(std::size_t cols, Font f) const {
    Legend l{f, line_height(cr, f) * 1.35, 0, 6 * u, 24 * u};
    for (std::size_t k : entries())
      l.col_w = std::max(l.col_w, l.sample + 8 * u + text_width(cr, f, series[k].label) + 10 * u);
    l.cols = std::clamp<std::size_t>(cols, 1, std::max<std::size_t>(entries().size(), 1));
    l.rows = (entries().size() + l.cols - 1) / l.cols;
    return l;
  }

  /// Sets `area` leaving room for title, labels, ticks and, if \p below > 0, a legend
  /// strip of that height under the x label.
  void lay_out(double below) {
    const double W = opt.width, H = opt.height, pad = 10 * u, tick = 5 * u, gap = 4 * u;
    double ytick_w = 0;
    for (const Tick& t : ya.ticks) ytick_w = std::max(ytick_w, text_width(cr, f_tick, t.label));
    const double last_x = xa.ticks.empty() ? 0 : text_width(cr, f_tick, xa.ticks.back().label);
    area.x0 = pad + (opt.y_label.empty() ? 0 : line_height(cr, f_label) + pad) + ytick_w + gap + tick;
    area.y0 = pad + (opt.title.empty() ? 0 : line_height(cr, f_title) + pad);
    area.x1 = W - std::max(2 * pad, last_x / 2 + gap);
    area.y1 = H - (tick + gap + line_height(cr, f_tick) + pad +
                   (opt.x_label.empty() ? 0 : line_height(cr, f_label) + pad) + (below > 0 ? below + pad : 0));
    if (area.x1 - area.x0 < 20 || area.y1 - area.y0 < 20)
      throw Error("size " + std::to_string(opt.width) + "x" + std::to_string(opt.height) +
                  " is too small for the title, labels, ticks and legend");
  }

  /// Points along the drawn lines (every ~3 units), markers, and with weight 1/8 the
  /// bands, inside \p b: how much data a legend at \p b would hide.
  double hidden(const Box& b) const {
    double n = 0;
    for (const Prepared& p : data)
      for (std::size_t i = 0; i < p.x.size(); ++i) {
        if (!p.lo.empty() && !std::isnan(p.x[i]) && !std::isnan(p.lo[i]) && !std::isnan(p.hi[i]))
          for (double y = py(p.hi[i]); y <= py(p.lo[i]); y += 3 * u) n += b.contains(px(p.x[i]), y) / 8.0;
        if (!valid(p, i)) continue;
        n += b.contains(px(p.x[i]), py(p.y[i]));
        if (i + 1 == p.x.size() || !valid(p, i + 1)) continue;
        const double x0 = px(p.x[i]), y0 = py(p.y[i]), x1 = px(p.x[i + 1]), y1 = py(p.y[i + 1]);
        const double steps = std::ceil(std::hypot(x1 - x0, y1 - y0) / (3 * u));
        for (double s = 1; s < steps; ++s)
          n += b.contains(x0 + (x1 - x0) * s / steps, y0 + (y1 - y0) * s / steps);
      }
    return n;
  }

  void draw_band(const Prepared& p, Rgb c) {
    const auto ok = [&](std::size_t i) { return !std::isnan(p.x[i]) && !std::isnan(p.lo[i]) && !std::isnan(p.hi[i]); };
    for (std::size_t i = 0; i < p.x.size();) {
      if (!ok(i)) {
        ++i;
        continue;
      }
      std::size_t j = i;
      while (j + 1 < p.x.size() && ok(j + 1)) ++j;
      if (i == j) {  // a lone point: a short bar
        cairo_rectangle(cr, px(p.x[i]) - 3 * u, py(p.hi[i]), 6 * u, py(p.lo[i]) - py(p.hi[i]));
      } else {
        cairo_new_sub_path(cr);
        for (std::size_t k = i; k <= j; ++k) cairo_line_to(cr, px(p.x[k]), py(p.hi[k]));
        for (std::size_t k = j + 1; k-- > i;) cairo_line_to(cr, px(p.x[k]), py(p.lo[k]));
        cairo_close_path(cr);
      }
      i = j + 1;
    }
    source(cr, c, 0.2);
    cairo_fill(cr);
  }

  void draw_series(const Prepared& p, Rgb c) {
    for (std::size_t i = 0; i < p.x.size(); ++i)
      if (valid(p, i)) (i > 0 && valid(p, i - 1) ? cairo_line_to : cairo_move_to)(cr, px(p.x[i]), py(p.y[i]));
    source(cr, c);
    cairo_set_line_width(cr, 2 * u);
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    cairo_set_line_cap(cr, CAIRO_LINE_CAP_ROUND);
    cairo_stroke(cr);
    for (std::size_t i = 0; i < p.x.size(); ++i)
      if (valid(p, i) && (markers(p) || isolated(p, i))) {
        cairo_new_sub_path(cr);
        cairo_arc(cr, px(p.x[i]), py(p.y[i]), 3 * u, 0, 2 * std::numbers::pi);
      }
    cairo_fill(cr);
  }

  void draw_legend(const Legend& l, double x, double y) {
    cairo_rectangle(cr, x + 0.5, y + 0.5, l.width() - 1, l.height() - 1);
    source(cr, {1, 1, 1}, 0.9);
    cairo_fill_preserve(cr);
    source(cr, {0.6, 0.6, 0.6});
    cairo_set_line_width(cr, 1);
    cairo_stroke(cr);
    const auto e = entries();
    for (std::size_t n = 0; n < e.size(); ++n) {
      const Series& s = series[e[n]];
      const Rgb c = kPalette[e[n] % kPalette.size()];
      const double sx = x + l.pad + static_cast<double>(n / l.rows) * l.col_w;
      const double mid = y + l.pad + (static_cast<double>(n % l.rows) + 0.5) * l.row_h;
      if (!s.y_err.empty()) {
        cairo_rectangle(cr, sx, mid - 0.3 * l.row_h, l.sample, 0.6 * l.row_h);
        source(cr, c, 0.2);
        cairo_fill(cr);
      }
      cairo_move_to(cr, sx, mid);
      cairo_line_to(cr, sx + l.sample, mid);
      source(cr, c);
      cairo_set_line_width(cr, 2 * u);
      cairo_set_line_cap(cr, CAIRO_LINE_CAP_BUTT);
      cairo_stroke(cr);
      cairo_arc(cr, sx + l.sample / 2, mid, 3 * u, 0, 2 * std::numbers::pi);
      cairo_fill(cr);
      text(cr, l.font, s.label, sx + l.sample + 8 * u, mid, 0, 0.5);
    }
  }

  void draw() {
    // Legend inside the axes where it hides the least data (none), else in a strip below.
    const bool has_legend = !entries().empty();
    Legend leg = legend(1, f_legend);
    lay_out(0);
    Box inside{};
    bool below = has_legend;
    if (has_legend) {
      const double m = 8 * u, w = leg.width(), h = leg.height();
      double best = std::numeric_limits<double>::infinity();
      for (double fy : {0.0, 1.0, 0.5})
        for (double fx : {1.0, 0.0, 0.5}) {
          const double x0 = area.x0 + m + fx * (area.x1 - area.x0 - 2 * m - w);
          const double y0 = area.y0 + m + fy * (area.y1 - area.y0 - 2 * m - h);
          const Box b{x0, y0, x0 + w, y0 + h};
          const double n = hidden(b);
          if (w + 2 * m <= area.x1 - area.x0 && h + 2 * m <= area.y1 - area.y0 && n < best) {
            best = n;
            inside = b;
          }
        }
      below = !(best < 1.0);
      if (below) {
        // As many columns as fit the width; a smaller font if the strip would be tall.
        for (Font f = f_legend; f.size >= 9 * u; f.size -= u) {
          leg = legend(static_cast<std::size_t>(std::max(1.0, std::floor((opt.width - 20 * u) / legend(1, f).col_w))), f);
          leg = legend((entries().size() + leg.rows - 1) / leg.rows, f);  // balanced columns
          if (leg.height() <= 0.25 * opt.height) break;
        }
        lay_out(leg.height());
      }
    }

    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    // Grid at the labelled ticks, on pixel centres so 1-unit lines stay crisp in PNG.
    const auto crisp = [](double v) { return std::round(v) + 0.5; };
    for (const Tick& t : xa.ticks) {
      cairo_move_to(cr, crisp(px(t.value)), area.y0);
      cairo_line_to(cr, crisp(px(t.value)), area.y1);
    }
    for (const Tick& t : ya.ticks) {
      cairo_move_to(cr, area.x0, crisp(py(t.value)));
      cairo_line_to(cr, area.x1, crisp(py(t.value)));
    }
    source(cr, kGrid);
    cairo_set_line_width(cr, 1);
    cairo_stroke(cr);

    cairo_save(cr);
    cairo_rectangle(cr, area.x0, area.y0, area.x1 - area.x0, area.y1 - area.y0);
    cairo_clip(cr);
    for (std::size_t k = 0; k < data.size(); ++k)
      if (!data[k].lo.empty()) draw_band(data[k], kPalette[k % kPalette.size()]);
    for (std::size_t k = 0; k < data.size(); ++k) draw_series(data[k], kPalette[k % kPalette.size()]);
    cairo_restore(cr);

    // Frame, ticks, tick labels, minor ticks of a log axis.
    const double tick = 5 * u, gap = 4 * u;
    cairo_rectangle(cr, crisp(area.x0), crisp(area.y0), std::round(area.x1 - area.x0), std::round(area.y1 - area.y0));
    for (const Tick& t : xa.ticks) {
      cairo_move_to(cr, crisp(px(t.value)), area.y1);
      cairo_rel_line_to(cr, 0, tick);
    }
    for (const Tick& t : ya.ticks) {
      cairo_move_to(cr, area.x0, crisp(py(t.value)));
      cairo_rel_line_to(cr, -tick, 0);
    }
    for (double v : ya.minor) {
      cairo_move_to(cr, area.x0, crisp(py(v)));
      cairo_rel_line_to(cr, -tick / 2, 0);
    }
    source(cr, kFrame);
    cairo_set_line_width(cr, 1);
    cairo_stroke(cr);
    for (const Tick& t : xa.ticks) text(cr, f_tick, t.label, px(t.value), area.y1 + tick + gap, 0.5, 0);
    for (const Tick& t : ya.ticks) text(cr, f_tick, t.label, area.x0 - tick - gap, py(t.value), 1, 0.5);

    const double pad = 10 * u;
    if (!opt.title.empty()) {  // shrunk to fit the width if need be
      Font f = f_title;
      const double w = text_width(cr, f, opt.title);
      if (w > opt.width - 2 * pad) f.size *= (opt.width - 2 * pad) / w;
      text(cr, f, opt.title, opt.width / 2.0, pad + line_height(cr, f_title) / 2, 0.5, 0.5);
    }
    const double xl_top = area.y1 + tick + gap + line_height(cr, f_tick) + pad;
    if (!opt.x_label.empty()) text(cr, f_label, opt.x_label, (area.x0 + area.x1) / 2, xl_top, 0.5, 0);
    if (!opt.y_label.empty()) {  // along the axes, shrunk to their height if need be
      Font f = f_label;
      const double w = text_width(cr, f, opt.y_label), h = area.y1 - area.y0;
      if (w > h) f.size *= h / w;
      text(cr, f, opt.y_label, pad, (area.y0 + area.y1) / 2, 0.5, 0, -std::numbers::pi / 2);
    }
    if (below) {
      const double top = xl_top + (opt.x_label.empty() ? 0 : line_height(cr, f_label) + pad);
      const double centred = (area.x0 + area.x1 - leg.width()) / 2;  // under the axes if it fits
      draw_legend(leg, std::max(0.0, std::min(centred, opt.width - leg.width() - pad)), top);
    } else if (has_legend) {
      draw_legend(leg, inside.x0, inside.y0);
    }
  }
};

}  // namespace

void plot_detail::render(cairo_t* cr, const std::vector<Series>& series, const PlotOptions& opt) {
  const double u = std::max(1.0, std::min(opt.width / 800.0, opt.height / 500.0));
  Chart c{cr, series, opt, prepare(series, opt.log_y), {}, {}, u, {11 * u}, {12 * u}, {16 * u, true}, {11 * u}, {}};
  // Data extent in axis coordinates (bands included; -inf band ends are the axis bottom).
  double x0 = std::numeric_limits<double>::infinity(), x1 = -x0, y0 = x0, y1 = -x0;
  for (const Prepared& p : c.data)
    for (std::size_t i = 0; i < p.x.size(); ++i) {
      if (std::isnan(p.x[i])) continue;
      bool any = false;
      for (double v : {p.y[i], p.lo.empty() ? p.y[i] : p.lo[i], p.hi.empty() ? p.y[i] : p.hi[i]})
        if (std::isfinite(v)) {
          y0 = std::min(y0, v);
          y1 = std::max(y1, v);
          any = true;
        }
      if (any) {
        x0 = std::min(x0, p.x[i]);
        x1 = std::max(x1, p.x[i]);
      }
    }
  c.xa = make_axis(x0, x1, false, 0.03);
  c.ya = make_axis(y0, y1, opt.log_y, 0.05);
  c.draw();
}

namespace {

cairo_status_t to_stream(void* closure, const unsigned char* data, unsigned int length) {
  auto& os = *static_cast<std::ostream*>(closure);
  os.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(length));
  return os ? CAIRO_STATUS_SUCCESS : CAIRO_STATUS_WRITE_ERROR;
}

using Surface = std::unique_ptr<cairo_surface_t, decltype(&cairo_surface_destroy)>;
using Context = std::unique_ptr<cairo_t, decltype(&cairo_destroy)>;

void check(cairo_status_t status) {
  if (status != CAIRO_STATUS_SUCCESS) throw Error(std::string("cairo: ") + cairo_status_to_string(status));
}

/// Renders onto \p surface and flushes it; finishing a stream surface writes its file.
void draw_on(cairo_surface_t* surface, const std::vector<Series>& series, const PlotOptions& opt,
             bool finish) {
  check(cairo_surface_status(surface));
  const Context cr(cairo_create(surface), &cairo_destroy);
  plot_detail::render(cr.get(), series, opt);
  check(cairo_status(cr.get()));
  finish ? cairo_surface_finish(surface) : cairo_surface_flush(surface);
  check(cairo_surface_status(surface));
}

}  // namespace

void write_line_plot(const std::filesystem::path& path, const std::vector<Series>& series,
                     const PlotOptions& options) {
  const std::string where = "cannot write plot '" + path.string() + "': ";
  std::string ext = path.extension().string();
  for (char& ch : ext) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (ext != ".png" && ext != ".svg" && ext != ".pdf")
    throw Error(where + "unknown format '" + ext + "' (the name must end in .png, .svg or .pdf)");
  if (options.width < 64 || options.width > 16384 || options.height < 64 || options.height > 16384)
    throw Error(where + "size " + std::to_string(options.width) + "x" + std::to_string(options.height) +
                " is outside 64..16384");
  try {
    if (ext == ".png") {
      const Surface s(cairo_image_surface_create(CAIRO_FORMAT_RGB24, options.width, options.height),
                      &cairo_surface_destroy);
      draw_on(s.get(), series, options, false);
      write_atomically(path, [&](std::ostream& os) {
        check(cairo_surface_write_to_png_stream(s.get(), to_stream, &os));
      });
      return;
    }
    // Vector surfaces write while they draw, here into write_atomically's stream.
    write_atomically(path, [&](std::ostream& os) {
      const double w = options.width, h = options.height;
      const Surface s(ext == ".svg" ? cairo_svg_surface_create_for_stream(to_stream, &os, w, h)
                                    : cairo_pdf_surface_create_for_stream(to_stream, &os, w, h),
                      &cairo_surface_destroy);
      draw_on(s.get(), series, options, true);
    });
  } catch (const Error& e) {
    const std::string msg = e.what();
    throw Error(msg.find(path.string()) == std::string::npos ? where + msg : msg);
  }
}

}  // namespace natgrad
