// `natgrad plot`: a CSV's columns as a line chart (the scaling studies' plots).
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "natgrad/core/error.hpp"
#include "natgrad/plot/plot.hpp"

namespace natgrad {

namespace {
std::vector<std::string> split(const std::string& line) {
  std::vector<std::string> f;
  std::string cur;
  std::istringstream in(line);
  while (std::getline(in, cur, ',')) {
    while (!cur.empty() && (cur.back() == '\r' || cur.back() == ' ')) cur.pop_back();
    while (!cur.empty() && cur.front() == ' ') cur.erase(0, 1);
    f.push_back(cur);
  }
  if (!line.empty() && line.back() == ',') f.emplace_back();
  return f;
}
}  // namespace

void plot_csv(const std::filesystem::path& csv, const std::string& x_column,
              const std::vector<std::string>& y_columns, const std::filesystem::path& out,
              PlotOptions options) {
  std::ifstream in(csv);
  if (!in) throw Error(csv.string() + ": cannot open");
  std::string line;
  if (!std::getline(in, line)) throw Error(csv.string() + ": empty file (expected a header line)");
  const auto header = split(line);
  auto index = [&](const std::string& name) {
    for (std::size_t j = 0; j < header.size(); ++j)
      if (header[j] == name) return j;
    throw Error(csv.string() + ": no column '" + name + "' in the header (" + line + ")");
  };
  if (y_columns.empty()) throw Error("plot: no y column given");
  const std::size_t xi = index(x_column);
  std::vector<std::size_t> yi;
  std::vector<Series> series;
  for (const auto& y : y_columns) {
    yi.push_back(index(y));
    series.push_back(Series{y, {}, {}, {}});
  }
  for (int lineno = 2; std::getline(in, line); ++lineno) {
    if (line.empty() || line == "\r") continue;
    const auto f = split(line);
    auto num = [&](std::size_t j) {
      if (j >= f.size())
        throw Error(csv.string() + ":" + std::to_string(lineno) + ": " + std::to_string(f.size()) +
                    " fields, expected " + std::to_string(header.size()));
      char* end = nullptr;
      const double v = std::strtod(f[j].c_str(), &end);
      if (f[j].empty() || *end != '\0')
        throw Error(csv.string() + ":" + std::to_string(lineno) + ": '" + f[j] + "' in column " + header[j] +
                    " is not a number");
      return v;
    };
    const double x = num(xi);
    for (std::size_t s = 0; s < yi.size(); ++s) {
      series[s].x.push_back(x);
      series[s].y.push_back(num(yi[s]));
    }
  }
  if (series[0].x.empty()) throw Error(csv.string() + ": no data rows");
  if (options.x_label.empty()) options.x_label = x_column;
  if (options.y_label.empty()) options.y_label = y_columns.size() == 1 ? y_columns[0] : "";
  if (options.title.empty()) options.title = csv.filename().string();
  write_line_plot(out, series, options);
}

}  // namespace natgrad
