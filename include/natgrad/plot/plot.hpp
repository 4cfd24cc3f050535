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

/// Local. Plots columns of a CSV file (header line, comma-separated numbers) to a PNG:
/// one series per name in \p y_columns against \p x_column, points in file order. Empty
/// axis labels default to the column names. Throws natgrad::Error naming the file and line.
void plot_csv(const std::filesystem::path& csv, const std::string& x_column,
              const std::vector<std::string>& y_columns, const std::filesystem::path& png,
              PlotOptions options);

}  // namespace natgrad
