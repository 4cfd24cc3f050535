#pragma once
/// \file plot.hpp
/// Line charts drawn with Cairo: the demo's convergence curves, the benchmark plots and
/// `natgrad plot`. Anti-aliased lines, translucent +- bands, real text, a legend placed
/// where it hides no data, and natgrad's own "nice" axis ticks (linear or log10). The
/// output format follows the file extension: .png, .svg or .pdf. Local, no MPI.
#include <filesystem>
#include <string>
#include <vector>

namespace natgrad {

/// One line of a chart.
struct Series {
  std::string label;          ///< legend entry; an empty label is left out of the legend
  std::vector<double> x, y;   ///< points in order; empty x means 0, 1, 2, ...; NaN/inf make gaps
  std::vector<double> y_err;  ///< optional: +- band drawn around y (same length as y)
};

/// Title, axis labels and size of a chart.
struct PlotOptions {
  std::string title, x_label, y_label;  ///< each left out when empty
  int width = 800, height = 500;        ///< pixels for PNG, points for SVG and PDF (64..16384)
  bool log_y = false;                   ///< log10 y axis (values <= 0 are left out)
};

/// A labelled axis tick.
struct AxisTick {
  double value = 0.0;  ///< in data units (not log10 on a log axis)
  std::string label;   ///< as drawn, e.g. "0.25", "1e6", "1.5e-7"
};

/// The labelled ticks natgrad puts on an axis spanning exactly [\p lo, \p hi] (data units,
/// lo < hi, both positive when \p log): 4 to 8 multiples of a 1-2-5 (or 2.5) step on a
/// linear axis; powers of ten (every k-th decade on wide ranges), 1-2-5 multiples on
/// short ones, or linear ticks on a log axis narrower than that. Ascending.
std::vector<AxisTick> axis_ticks(double lo, double hi, bool log);

/// Renders the series to \p path, a .png, .svg or .pdf file (case-insensitive extension),
/// written atomically (natgrad::write_atomically). Throws natgrad::Error naming the path on
/// an unknown extension, an impossible size, mismatched series lengths or an I/O failure.
void write_line_plot(const std::filesystem::path& path, const std::vector<Series>& series,
                     const PlotOptions& options);

/// Local. Plots columns of a CSV file (header line, comma-separated numbers) with
/// write_line_plot: one series per name in \p y_columns against \p x_column, points in file
/// order. Empty axis labels default to the column names, an empty title to the file name.
/// Throws natgrad::Error naming the file and line.
void plot_csv(const std::filesystem::path& csv, const std::string& x_column,
              const std::vector<std::string>& y_columns, const std::filesystem::path& out,
              PlotOptions options);

}  // namespace natgrad
