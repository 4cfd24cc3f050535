#pragma once
// Private to natgrad_plot (and its white-box tests): natgrad's axis ticks (ticks.cpp) and the
// renderer onto any Cairo context (plot.cpp).
#include <cairo.h>

#include <string>
#include <vector>

#include "natgrad/plot/plot.hpp"

namespace natgrad::plot_detail {

struct Tick {
  double value = 0.0;  ///< in axis coordinates (log10 of the data for a log axis)
  std::string label;
};

struct Axis {
  double lo = 0.0, hi = 1.0;  ///< axis coordinates (log10 values for a log axis)
  bool log = false;
  std::vector<Tick> ticks;
  std::vector<double> minor;  ///< unlabelled minor ticks (axis coordinates)
};

/// The axis for the finite data extent [lo, hi] in axis coordinates (lo > hi: no data),
/// widened by \p pad_fraction of the range (a zero range first opened up) and ticked.
Axis make_axis(double lo, double hi, bool log, double pad_fraction);

/// Draws the chart onto \p cr, whose surface is options.width x options.height units.
/// Throws natgrad::Error (mismatched series lengths, a size too small for the layout).
void render(cairo_t* cr, const std::vector<Series>& series, const PlotOptions& options);

}  // namespace natgrad::plot_detail
