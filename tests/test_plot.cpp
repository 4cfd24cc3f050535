// Tests for natgrad's plots (src/plot): the exact axis ticks; that PNG, SVG and PDF files
// are valid and written atomically; what a chart contains (every text drawn, read back
// from a CairoScript recording of the renderer; one line per series and the markers, read
// from the SVG); where the legend goes; and the errors, which name the path.
#include <cairo-script.h>
#include <cairo.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "natgrad/core/error.hpp"
#include "natgrad/plot/plot.hpp"
#include "plot/detail.hpp"  // white-box: plot_detail::render onto a recording surface

namespace fs = std::filesystem;
using Catch::Matchers::Contains;

namespace {

/// A fresh directory under the system temp dir, removed on destruction.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& tag) {
    static int counter = 0;
    path = fs::temp_directory_path() / ("natgrad_plot_test_" + tag + "_" + std::to_string(::getpid()) + "_" +
                                        std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
};

std::string slurp(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  REQUIRE(in);
  return {std::istreambuf_iterator<char>(in), {}};
}

/// Every entry of \p dir (to see that no temporary file is left).
std::vector<std::string> listing(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

std::uint32_t big_endian(const std::string& s, std::size_t at) {
  std::uint32_t v = 0;
  for (std::size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(s[at + i]);
  return v;
}

/// Tags balance (every element closed in order) and there is exactly one root <svg>.
bool well_formed_xml(const std::string& doc) {
  std::vector<std::string> open;
  int roots = 0;
  for (std::size_t i = doc.find('<'); i != std::string::npos; i = doc.find('<', i + 1)) {
    const std::size_t end = doc.find('>', i);
    if (end == std::string::npos) return false;
    const std::string tag = doc.substr(i + 1, end - i - 1);
    if (tag.empty() || tag[0] == '?' || tag[0] == '!') continue;
    const std::string name = tag.substr(tag[0] == '/', tag.find_first_of(" \n/", 1) - (tag[0] == '/'));
    if (tag[0] == '/') {
      if (open.empty() || open.back() != name) return false;
      open.pop_back();
    } else if (tag.back() != '/') {
      if (open.empty()) ++roots;
      open.push_back(name);
    }
  }
  return open.empty() && roots == 1;
}

/// The stroked <path>s of an SVG written by Cairo: (style, d) pairs.
struct SvgPath {
  std::string style, d;
};
std::vector<SvgPath> svg_paths(const std::string& svg) {
  std::vector<SvgPath> out;
  static const std::regex path(R"re(<path style="([^"]*)" d="([^"]*)")re");
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), path); it != std::sregex_iterator(); ++it)
    out.push_back({(*it)[1], (*it)[2]});
  return out;
}
long count(const std::string& s, const std::string& what) {
  long n = 0;
  for (std::size_t i = s.find(what); i != std::string::npos; i = s.find(what, i + 1)) ++n;
  return n;
}

// The first three series colours as Cairo's SVG surface writes them.
const std::vector<std::string> kColours = {"rgb(12.2%,46.7%,70.6%)", "rgb(100%,49.8%,5.5%)",
                                           "rgb(17.3%,62.7%,17.3%)"};
const std::string kSeriesLine = "stroke-width:2;stroke-linecap:round;stroke-linejoin:round;stroke:";

/// A text drawn by the renderer and its start in device coordinates (unrotated text).
struct Drawn {
  std::string text;
  double x = 0, y = 0;
};

cairo_status_t append(void* closure, const unsigned char* data, unsigned int length) {
  static_cast<std::string*>(closure)->append(reinterpret_cast<const char*>(data), length);
  return CAIRO_STATUS_SUCCESS;
}

/// Renders the chart onto a CairoScript surface and reads back every text it shows.
std::vector<Drawn> texts_of(const std::vector<natgrad::Series>& series, const natgrad::PlotOptions& opt) {
  std::string script;
  cairo_device_t* dev = cairo_script_create_for_stream(append, &script);
  cairo_script_set_mode(dev, CAIRO_SCRIPT_MODE_ASCII);
  cairo_surface_t* surface = cairo_script_surface_create(dev, CAIRO_CONTENT_COLOR, opt.width, opt.height);
  cairo_t* cr = cairo_create(surface);
  natgrad::plot_detail::render(cr, series, opt);
  REQUIRE(cairo_status(cr) == CAIRO_STATUS_SUCCESS);
  cairo_destroy(cr);
  cairo_surface_finish(surface);
  cairo_surface_destroy(surface);
  cairo_device_finish(dev);
  cairo_device_destroy(dev);
  std::vector<Drawn> out;
  std::istringstream lines(script);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] != '(' || line.find("show-text-glyphs") == std::string::npos) continue;
    Drawn d;
    std::size_t i = 1;
    for (; i < line.size() && line[i] != ')'; ++i) {  // a PostScript string: \c and \ooo escapes
      if (line[i] != '\\') {
        d.text += line[i];
      } else if (line[++i] >= '0' && line[i] <= '7') {
        int code = 0;
        for (int k = 0; k < 3 && line[i] >= '0' && line[i] <= '7'; ++k, ++i) code = code * 8 + (line[i] - '0');
        d.text += static_cast<char>(code);
        --i;
      } else {
        d.text += line[i];
      }
    }
    std::istringstream pos(line.substr(line.find('[', i) + 1));
    pos >> d.x >> d.y;
    out.push_back(d);
  }
  return out;
}

std::vector<std::string> sorted_texts(const std::vector<Drawn>& drawn) {
  std::vector<std::string> t;
  for (const Drawn& d : drawn) t.push_back(d.text);
  std::sort(t.begin(), t.end());
  return t;
}

const Drawn& find_text(const std::vector<Drawn>& drawn, const std::string& text) {
  const auto it = std::find_if(drawn.begin(), drawn.end(), [&](const Drawn& d) { return d.text == text; });
  REQUIRE(it != drawn.end());
  return *it;
}

std::vector<double> values(const std::vector<natgrad::AxisTick>& ticks) {
  std::vector<double> v;
  for (const auto& t : ticks) v.push_back(t.value);
  return v;
}
std::vector<std::string> labels(const std::vector<natgrad::AxisTick>& ticks) {
  std::vector<std::string> v;
  for (const auto& t : ticks) v.push_back(t.label);
  return v;
}
void check_values(const std::vector<natgrad::AxisTick>& ticks, const std::vector<double>& expected) {
  const auto got = values(ticks);
  REQUIRE(got.size() == expected.size());
  for (std::size_t i = 0; i < got.size(); ++i) CHECK(got[i] == Approx(expected[i]).margin(1e-15));
}

natgrad::Series line(const std::string& label, std::vector<double> x, std::vector<double> y) {
  return natgrad::Series{label, std::move(x), std::move(y), {}};
}

}  // namespace

TEST_CASE("plot: linear axis ticks are 4 to 8 multiples of a 1-2-5 step, with equal decimals", "[plot]") {
  using natgrad::axis_ticks;
  check_values(axis_ticks(0, 1, false), {0, 0.2, 0.4, 0.6, 0.8, 1});
  CHECK(labels(axis_ticks(0, 1, false)) == std::vector<std::string>{"0", "0.2", "0.4", "0.6", "0.8", "1.0"});
  CHECK(labels(axis_ticks(0, 100, false)) == std::vector<std::string>{"0", "20", "40", "60", "80", "100"});
  check_values(axis_ticks(-3.7, 12.2, false), {-2, 0, 2, 4, 6, 8, 10, 12});
  CHECK(labels(axis_ticks(0.001, 0.0035, false)) ==
        std::vector<std::string>{"0.0010", "0.0015", "0.0020", "0.0025", "0.0030", "0.0035"});
  // Large and tiny values switch to short scientific labels.
  check_values(axis_ticks(0, 5e6, false), {0, 1e6, 2e6, 3e6, 4e6, 5e6});
  CHECK(labels(axis_ticks(0, 5e6, false)) == std::vector<std::string>{"0", "1e6", "2e6", "3e6", "4e6", "5e6"});
  CHECK(labels(axis_ticks(-1e-5, 1e-5, false)) == std::vector<std::string>{"-1e-5", "-5e-6", "0", "5e-6", "1e-5"});
}

TEST_CASE("plot: log axis ticks are decades, every k-th decade, or 1-2-5 multiples", "[plot]") {
  using natgrad::axis_ticks;
  check_values(axis_ticks(1, 1e6, true), {1, 10, 100, 1e3, 1e4, 1e5, 1e6});
  CHECK(labels(axis_ticks(1, 1e6, true)) == std::vector<std::string>{"1", "10", "100", "1000", "10000", "1e5", "1e6"});
  CHECK(labels(axis_ticks(1e-10, 1e10, true)) ==
        std::vector<std::string>{"1e-9", "1e-6", "0.001", "1", "1000", "1e6", "1e9"});
  check_values(axis_ticks(1, 20, true), {1, 2, 5, 10, 20});
  // Narrower than 1-2-5 multiples can tick: linear ticks placed on the log axis.
  check_values(axis_ticks(2, 3, true), {2, 2.2, 2.4, 2.6, 2.8, 3});
  CHECK(labels(axis_ticks(2, 3, true)) == std::vector<std::string>{"2.0", "2.2", "2.4", "2.6", "2.8", "3.0"});
  CHECK_THROWS_AS(axis_ticks(1, 1, false), natgrad::Error);
  CHECK_THROWS_AS(axis_ticks(0, 10, true), natgrad::Error);
}

TEST_CASE("plot: a PNG has the signature and the requested size, written atomically", "[plot]") {
  TempDir dir("png");
  const fs::path file = dir.path / "two.PNG";  // the extension is case-insensitive
  natgrad::PlotOptions opt;
  opt.title = "two series";
  opt.width = 640;
  opt.height = 400;
  natgrad::write_line_plot(file, {line("a", {0, 1, 2}, {1, 3, 2}), line("b", {0, 1, 2}, {2, 1, 0})}, opt);
  const std::string png = slurp(file);
  REQUIRE(png.size() > 33);
  CHECK(png.substr(0, 8) == std::string("\x89PNG\r\n\x1a\n", 8));
  CHECK(png.substr(12, 4) == "IHDR");
  CHECK(big_endian(png, 16) == 640);
  CHECK(big_endian(png, 20) == 400);
  // Cairo's own reader accepts it.
  cairo_surface_t* back = cairo_image_surface_create_from_png(file.c_str());
  CHECK(cairo_surface_status(back) == CAIRO_STATUS_SUCCESS);
  CHECK(cairo_image_surface_get_width(back) == 640);
  CHECK(cairo_image_surface_get_height(back) == 400);
  cairo_surface_destroy(back);
  CHECK(listing(dir.path) == std::vector<std::string>{"two.PNG"});

  SECTION("overwriting an existing plot replaces it and leaves no temp file") {
    opt.width = 300;
    natgrad::write_line_plot(file, {line("a", {0, 1}, {1, 2})}, opt);
    CHECK(big_endian(slurp(file), 16) == 300);
    CHECK(listing(dir.path) == std::vector<std::string>{"two.PNG"});
  }
}

TEST_CASE("plot: an SVG is well formed, one line per series, a marker per sparse point", "[plot]") {
  TempDir dir("svg");
  const fs::path file = dir.path / "three.svg";
  natgrad::PlotOptions opt;
  opt.title = "Three";
  const double nan = std::numeric_limits<double>::quiet_NaN();
  // b has a gap (NaN): one path with two pieces. c has 4 points, the others 3.
  natgrad::write_line_plot(file,
                           {line("a", {0, 1, 2}, {1, 3, 2}), line("b", {0, 1, 2, 3, 4}, {2, 1, nan, 0, 1}),
                            line("c", {0, 1, 2, 3}, {0, 1, 0, 1})},
                           opt);
  const std::string svg = slurp(file);
  CHECK(svg.rfind("<?xml", 0) == 0);
  CHECK(well_formed_xml(svg));
  CHECK_THAT(svg, Contains(R"(width="800pt" height="500pt")"));
  const auto paths = svg_paths(svg);
  const std::vector<std::pair<long, long>> pieces_and_points = {{1, 3}, {2, 4}, {1, 4}};
  const auto fills = [&](std::size_t k) {  // filled arcs of colour k: number of circles each
    std::vector<long> circles;
    for (const SvgPath& p : paths)
      if (p.style.find("fill:" + kColours[k]) != std::string::npos && p.d.find("C ") != std::string::npos)
        circles.push_back(count(p.d, "M "));
    std::sort(circles.begin(), circles.end());
    return circles;
  };
  for (std::size_t k = 0; k < kColours.size(); ++k) {
    INFO("series " << k);
    std::vector<SvgPath> lines;
    for (const SvgPath& p : paths)
      if (p.style.find(kSeriesLine + kColours[k]) != std::string::npos) lines.push_back(p);
    REQUIRE(lines.size() == 1);
    CHECK(count(lines[0].d, "M ") == pieces_and_points[k].first);
    CHECK(count(lines[0].d, "M ") + count(lines[0].d, "L ") == pieces_and_points[k].second);
    // Sparse points get round markers, one circle per point, and the legend entry one.
    CHECK(fills(k) == std::vector<long>{1, pieces_and_points[k].second});
  }
  CHECK(count(svg, "stroke-linejoin:round;stroke:rgb(") == 3);  // no fourth series line
}

TEST_CASE("plot: the chart shows its title, axis labels, tick labels and legend", "[plot]") {
  natgrad::PlotOptions opt;
  opt.title = "Loss (mean)";
  opt.x_label = "iteration";
  opt.y_label = "loss";
  // x spans [0, 10] and y [0, 1]: the padded axes keep axis_ticks' ticks of those ranges.
  const std::vector<natgrad::Series> series = {line("NGD", {0, 5, 10}, {1, 0.2, 0}), line("GD", {0, 5, 10}, {1, 0.6, 0.4}),
                                               line("", {0, 10}, {0.5, 0.5})};  // no legend entry
  std::vector<std::string> expected = {"Loss (mean)", "iteration", "loss", "NGD", "GD"};
  for (const auto& t : natgrad::axis_ticks(0, 10, false)) expected.push_back(t.label);
  for (const auto& t : natgrad::axis_ticks(0, 1, false)) expected.push_back(t.label);
  std::sort(expected.begin(), expected.end());
  CHECK(sorted_texts(texts_of(series, opt)) == expected);

  SECTION("text that is not UTF-8 is drawn with '?' for the bad bytes, UTF-8 as is") {
    opt.title = "t\xb5s \xce\xbcs";  // Latin-1 mu, then UTF-8 mu
    const auto texts = sorted_texts(texts_of(series, opt));
    CHECK(std::find(texts.begin(), texts.end(), "t?s \xce\xbcs") != texts.end());
  }
  SECTION("left out when empty: title and labels") {
    opt.title = opt.x_label = opt.y_label = "";
    const auto texts = sorted_texts(texts_of(series, opt));
    CHECK(std::find(texts.begin(), texts.end(), "iteration") == texts.end());
    CHECK(texts.size() == expected.size() - 3);
  }
}

TEST_CASE("plot: the legend sits inside the axes where it hides no data, else below them", "[plot]") {
  natgrad::PlotOptions opt;
  opt.x_label = "x";
  SECTION("the top right is free: legend inside, above the x axis label") {
    const auto drawn = texts_of({line("falling", {0, 1, 2, 3}, {3, 1, 0.5, 0.2})}, opt);
    CHECK(find_text(drawn, "falling").y < find_text(drawn, "x").y);
    CHECK(find_text(drawn, "falling").x > opt.width / 2.0);  // the right half
  }
  SECTION("data everywhere: legend below the x axis label") {
    std::vector<natgrad::Series> zigzag;
    for (int k = 0; k < 3; ++k) {
      natgrad::Series s = line("zigzag " + std::to_string(k), {}, {});
      for (int i = 0; i <= 60; ++i) s.y.push_back((i + k) % 2);
      zigzag.push_back(s);
    }
    const auto drawn = texts_of(zigzag, opt);
    for (int k = 0; k < 3; ++k) CHECK(find_text(drawn, "zigzag " + std::to_string(k)).y > find_text(drawn, "x").y);
  }
}

TEST_CASE("plot: a PDF has the header, the page size and the end marker", "[plot]") {
  TempDir dir("pdf");
  const fs::path file = dir.path / "curves.pdf";
  natgrad::PlotOptions opt;
  opt.width = 600;
  opt.height = 300;
  natgrad::write_line_plot(file, {natgrad::Series{"band", {0, 1, 2}, {1, 2, 3}, {0.1, 0.2, 0.3}}}, opt);
  const std::string pdf = slurp(file);
  CHECK(pdf.rfind("%PDF-", 0) == 0);
  CHECK_THAT(pdf, Contains("/MediaBox [ 0 0 600 300 ]"));
  CHECK(pdf.substr(pdf.find_last_not_of("\r\n") - 4, 5) == "%%EOF");
  CHECK(listing(dir.path) == std::vector<std::string>{"curves.pdf"});
}

TEST_CASE("plot: degenerate data still gives a chart with axes", "[plot]") {
  TempDir dir("degenerate");
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  natgrad::PlotOptions opt;
  const std::vector<std::vector<natgrad::Series>> cases = {
      {},                                                    // no series
      {line("nan", {nan, nan}, {nan, inf})},                 // nothing finite
      {line("one", {3}, {7})},                               // a single point
      {line("flat", {0, 1, 2}, {5, 5, 5})},                  // equal min and max
      {line("empty", {}, {})},                               // an empty series
      {natgrad::Series{"neg", {0, 1, 2}, {-1, 0, 1}, {2, 2, 2}}},  // log axis: values <= 0 left out
  };
  for (std::size_t i = 0; i < cases.size(); ++i) {
    INFO("case " << i);
    opt.log_y = i == 5;
    const fs::path file = dir.path / ("case" + std::to_string(i) + ".svg");
    natgrad::write_line_plot(file, cases[i], opt);
    const std::string svg = slurp(file);
    CHECK(well_formed_xml(svg));
    CHECK(count(svg, "stroke:rgb(20%,20%,20%)") == 1);  // the frame with its ticks
    CHECK(texts_of(cases[i], opt).size() >= 4);       // tick labels on both axes
  }
  // The single point is drawn as a marker although it makes no line: two filled circles
  // of its colour, the point's and the legend's.
  const auto paths = svg_paths(slurp(dir.path / "case2.svg"));
  CHECK(std::count_if(paths.begin(), paths.end(), [](const SvgPath& p) {
          return p.style.find("fill:" + kColours[0]) != std::string::npos && p.d.find("C ") != std::string::npos;
        }) == 2);
}

TEST_CASE("plot: failures throw natgrad::Error naming the path and leave no file", "[plot]") {
  TempDir dir("errors");
  const natgrad::Series s = line("s", {0, 1}, {0, 1});
  natgrad::PlotOptions opt;
  const auto fails_naming = [&](const fs::path& file, const std::vector<natgrad::Series>& series,
                                const natgrad::PlotOptions& o, const std::string& reason) {
    INFO(file);
    try {
      natgrad::write_line_plot(file, series, o);
      FAIL("no error");
    } catch (const natgrad::Error& e) {
      CHECK_THAT(e.what(), Contains(file.string()) && Contains(reason));
    }
  };
  fails_naming(dir.path / "plot.jpg", {s}, opt, "'.jpg'");
  fails_naming(dir.path / "plot", {s}, opt, ".png, .svg or .pdf");
  fails_naming(dir.path / "no" / "such" / "dir.png", {s}, opt, "cannot write");
  fails_naming(dir.path / "no" / "such" / "dir.svg", {s}, opt, "cannot write");
  fs::create_directories(dir.path / "taken.png");
  fails_naming(dir.path / "taken.png", {s}, opt, "taken.png");
  fails_naming(dir.path / "bad.png", {line("short", {0, 1, 2}, {0, 1})}, opt, "'short'");
  fails_naming(dir.path / "bad.svg", {natgrad::Series{"err", {0, 1}, {0, 1}, {1}}}, opt, "'err'");
  natgrad::PlotOptions tiny = opt;
  tiny.width = 10;
  fails_naming(dir.path / "tiny.png", {s}, tiny, "10x500");
  natgrad::PlotOptions crowded = opt;  // allowed size, but no room left for the axes
  crowded.width = crowded.height = 64;
  crowded.title = crowded.x_label = crowded.y_label = "label";
  fails_naming(dir.path / "crowded.pdf", {s}, crowded, "too small");
  CHECK(listing(dir.path) == std::vector<std::string>{"taken.png"});
}
