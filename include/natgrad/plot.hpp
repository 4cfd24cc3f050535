#pragma once
/// \file plot.hpp
/// A small PNG line-chart writer (libpng), enough for the demo's convergence curves
/// and the benchmark plots without a plotting runtime. Local, no MPI.
#include <filesystem>
#include <string>
#include <vector>

namespace natgrad {

struct Series {
  std::string label;
  std::vector<double> x, y;
  std::vector<double> y_err;  ///< optional: +- band drawn around y (same length as y)
};

struct PlotOptions {
  std::string title, x_label, y_label;
  int width = 800, height = 500;
  bool log_y = false;
};

/// Renders the series to a PNG at \p path (written atomically). Throws natgrad::Error.
void write_line_plot(const std::filesystem::path& path, const std::vector<Series>& series,
                     const PlotOptions& options);

}  // namespace natgrad
