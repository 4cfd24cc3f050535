// Tests for natgrad::write_line_plot: the PNG is read back with libpng's png_image API
// and checked for size, content, the position of a known horizontal series, atomic
// writing (no temp file left) and error reporting.
#include <png.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "natgrad/core/error.hpp"
#include "natgrad/plot/plot.hpp"

namespace fs = std::filesystem;

namespace {

/// A fresh directory under the system temp dir, removed on destruction.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& tag) {
    static int counter = 0;
    path = fs::temp_directory_path() /
           ("natgrad_plot_test_" + tag + "_" + std::to_string(::getpid()) + "_" +
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

struct Image {
  int width = 0, height = 0;
  std::vector<std::uint8_t> rgb;
  std::tuple<int, int, int> at(int x, int y) const {
    const std::size_t i = (static_cast<std::size_t>(y) * static_cast<std::size_t>(width) +
                           static_cast<std::size_t>(x)) * 3;
    return {rgb[i], rgb[i + 1], rgb[i + 2]};
  }
};

Image read_png(const fs::path& file) {
  png_image im{};
  im.version = PNG_IMAGE_VERSION;
  REQUIRE(png_image_begin_read_from_file(&im, file.c_str()) != 0);
  im.format = PNG_FORMAT_RGB;
  Image out;
  out.width = static_cast<int>(im.width);
  out.height = static_cast<int>(im.height);
  out.rgb.resize(PNG_IMAGE_SIZE(im));
  const int ok = png_image_finish_read(&im, nullptr, out.rgb.data(), 0, nullptr);
  if (ok == 0) png_image_free(&im);
  REQUIRE(ok != 0);
  return out;
}

bool all_one_colour(const Image& img) {
  for (std::size_t i = 3; i < img.rgb.size(); ++i)
    if (img.rgb[i] != img.rgb[i % 3]) return false;
  return true;
}

/// "Saturated" = a series colour (not the black/grey/white of frame, grid and text).
bool saturated(std::tuple<int, int, int> c) {
  const auto [r, g, b] = c;
  return std::max({r, g, b}) - std::min({r, g, b}) > 60;
}

/// Rows where more than half the pixels are pure black: the frame's top and bottom.
std::vector<int> frame_rows(const Image& img) {
  std::vector<int> rows;
  for (int y = 0; y < img.height; ++y) {
    int black = 0;
    for (int x = 0; x < img.width; ++x)
      if (img.at(x, y) == std::tuple<int, int, int>{0, 0, 0}) ++black;
    if (black > img.width / 2) rows.push_back(y);
  }
  return rows;
}

struct RowHit {
  int row = -1;
  int count = 0;
  std::tuple<int, int, int> colour;
};

/// The (row, saturated colour) pair with the most pixels of that colour in that row.
RowHit densest_colour_row(const Image& img) {
  RowHit best;
  for (int y = 0; y < img.height; ++y) {
    std::map<std::tuple<int, int, int>, int> counts;
    for (int x = 0; x < img.width; ++x)
      if (saturated(img.at(x, y))) ++counts[img.at(x, y)];
    for (const auto& [colour, n] : counts)
      if (n > best.count) best = RowHit{y, n, colour};
  }
  return best;
}

int count_colour(const Image& img, std::tuple<int, int, int> colour) {
  int n = 0;
  for (int y = 0; y < img.height; ++y)
    for (int x = 0; x < img.width; ++x)
      if (img.at(x, y) == colour) ++n;
  return n;
}

bool has_temp_files(const fs::path& dir) {
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.path().filename().string().find(".tmp.") != std::string::npos) return true;
  return false;
}

/// Checks the horizontal series sits in the middle of the frame (its value is the
/// centre of the data range, and the padding is symmetric) and spans most of the width.
void check_flat_series_centred(const Image& img) {
  const std::vector<int> rows = frame_rows(img);
  REQUIRE(rows.size() >= 2);
  const int top = rows.front(), bottom = rows.back();
  REQUIRE(bottom - top > img.height / 3);
  const RowHit hit = densest_colour_row(img);
  CHECK(hit.count > img.width / 2);
  const double expected = 0.5 * (top + bottom);
  CHECK(std::abs(hit.row - expected) <= 2.0);
  // The flat series' colour is on the expected row, across the middle of the plot.
  const int row = static_cast<int>(std::lround(expected));
  bool found = false;
  for (int dy = -2; dy <= 2 && !found; ++dy)
    for (int x = img.width / 3; x < 2 * img.width / 3 && !found; ++x)
      found = img.at(x, row + dy) == hit.colour;
  CHECK(found);
}

}  // namespace

TEST_CASE("plot: two series render to a PNG of the requested size", "[plot]") {
  TempDir dir("two");
  const fs::path file = dir.path / "curves.png";

  natgrad::Series flat{"flat", {}, {}, {}}, ramp{"ramp", {}, {}, {}};
  for (int i = 0; i <= 10; ++i) {
    flat.x.push_back(i);
    flat.y.push_back(0.5);
    ramp.x.push_back(i);
    ramp.y.push_back(i / 10.0);
    ramp.y_err.push_back(0.02);
  }
  natgrad::PlotOptions opt;
  opt.title = "Training loss";
  opt.x_label = "iteration";
  opt.y_label = "loss";
  opt.width = 640;
  opt.height = 400;
  natgrad::write_line_plot(file, {flat, ramp}, opt);

  REQUIRE(fs::exists(file));
  CHECK_FALSE(has_temp_files(dir.path));
  const Image img = read_png(file);
  CHECK(img.width == opt.width);
  CHECK(img.height == opt.height);
  CHECK_FALSE(all_one_colour(img));
  CHECK(img.at(0, 0) == std::tuple<int, int, int>{255, 255, 255});  // white background

  check_flat_series_centred(img);

  // Both series are drawn, in different colours.
  const RowHit hit = densest_colour_row(img);
  std::map<std::tuple<int, int, int>, int> colours;
  for (int y = 0; y < img.height; ++y)
    for (int x = 0; x < img.width; ++x)
      if (saturated(img.at(x, y))) ++colours[img.at(x, y)];
  int big_colours = 0;
  for (const auto& [colour, n] : colours)
    if (n > 200 && colour != hit.colour) ++big_colours;
  CHECK(big_colours >= 1);

  SECTION("overwriting an existing plot is fine and leaves no temp file") {
    natgrad::write_line_plot(file, {ramp}, opt);
    CHECK_FALSE(has_temp_files(dir.path));
    CHECK(read_png(file).width == opt.width);
  }
}

TEST_CASE("plot: log_y places a geometric midpoint at the centre", "[plot]") {
  TempDir dir("log");
  const fs::path file = dir.path / "log.png";
  natgrad::Series flat{"flat", {}, {}, {}}, decay{"decay", {}, {}, {}};
  for (int i = 0; i <= 20; ++i) {
    flat.x.push_back(i);
    flat.y.push_back(10.0);
    decay.x.push_back(i);
    decay.y.push_back(100.0 * std::pow(10.0, -i / 10.0));  // 100 .. 1
  }
  decay.y.push_back(0.0);  // non-positive values are skipped on a log axis
  decay.x.push_back(21);
  decay.y.push_back(-3.0);
  decay.x.push_back(22);
  natgrad::PlotOptions opt;
  opt.title = "log";
  opt.log_y = true;
  natgrad::write_line_plot(file, {flat, decay}, opt);

  const Image img = read_png(file);
  CHECK(img.width == 800);
  CHECK(img.height == 500);
  CHECK_FALSE(all_one_colour(img));
  CHECK_FALSE(has_temp_files(dir.path));
  check_flat_series_centred(img);
}

TEST_CASE("plot: degenerate input still gives a valid image with axes", "[plot]") {
  TempDir dir("degenerate");
  natgrad::PlotOptions opt;
  opt.width = 320;
  opt.height = 240;
  const double nan = std::numeric_limits<double>::quiet_NaN();

  SECTION("no series") {
    const fs::path file = dir.path / "empty.png";
    natgrad::write_line_plot(file, {}, opt);
    const Image img = read_png(file);
    CHECK(img.width == 320);
    CHECK(img.height == 240);
    CHECK_FALSE(all_one_colour(img));
    CHECK(frame_rows(img).size() >= 2);  // the frame is there
  }
  SECTION("all-NaN data, a single point, equal min and max, and empty series") {
    const std::vector<std::vector<natgrad::Series>> cases = {
        {{"nan", {0, 1, 2}, {nan, nan, nan}, {}}},
        {{"one", {3.0}, {5.0}, {1.0}}},
        {{"const", {1, 2, 3}, {2, 2, 2}, {}}, {"none", {}, {}, {}}},
        {{"no x", {}, {3, 1, 2}, {}}},
    };
    for (bool log_y : {false, true}) {
      opt.log_y = log_y;
      int k = 0;
      for (const auto& series : cases) {
        const fs::path file = dir.path / ("case" + std::to_string(k++) + ".png");
        REQUIRE_NOTHROW(natgrad::write_line_plot(file, series, opt));
        const Image img = read_png(file);
        CHECK(img.width == 320);
        CHECK_FALSE(all_one_colour(img));
        CHECK(frame_rows(img).size() >= 2);
      }
    }
    CHECK_FALSE(has_temp_files(dir.path));
  }
  SECTION("a single point is visible as a marker") {
    const fs::path file = dir.path / "single.png";
    natgrad::write_line_plot(file, {{"one", {3.0}, {5.0}, {}}}, opt);
    const Image img = read_png(file);
    const RowHit hit = densest_colour_row(img);
    REQUIRE(hit.count > 0);
    CHECK(count_colour(img, hit.colour) >= 9);
  }
}

TEST_CASE("plot: failures throw natgrad::Error naming the path", "[plot]") {
  TempDir dir("errors");
  natgrad::Series s{"s", {0, 1}, {0, 1}, {}};
  natgrad::PlotOptions opt;

  SECTION("nonexistent directory") {
    const fs::path file = dir.path / "no" / "such" / "dir" / "plot.png";
    try {
      natgrad::write_line_plot(file, {s}, opt);
      FAIL("expected natgrad::Error");
    } catch (const natgrad::Error& e) {
      CHECK(std::string(e.what()).find(file.string()) != std::string::npos);
    }
    CHECK_FALSE(fs::exists(file));
  }
  SECTION("the target is a directory") {
    const fs::path file = dir.path / "taken";
    fs::create_directory(file);
    fs::create_directory(file / "child");  // rename() cannot replace a non-empty dir
    CHECK_THROWS_AS(natgrad::write_line_plot(file, {s}, opt), natgrad::Error);
    CHECK_FALSE(has_temp_files(dir.path));
  }
  SECTION("mismatched lengths and bad sizes") {
    const fs::path file = dir.path / "bad.png";
    natgrad::Series bad{"bad", {0, 1, 2}, {0, 1}, {}};
    CHECK_THROWS_AS(natgrad::write_line_plot(file, {bad}, opt), natgrad::Error);
    natgrad::Series bad_err{"bad_err", {0, 1}, {0, 1}, {0.1}};
    CHECK_THROWS_AS(natgrad::write_line_plot(file, {bad_err}, opt), natgrad::Error);
    natgrad::PlotOptions tiny;
    tiny.width = 0;
    CHECK_THROWS_AS(natgrad::write_line_plot(file, {s}, tiny), natgrad::Error);
    CHECK_FALSE(fs::exists(file));
    CHECK_FALSE(has_temp_files(dir.path));
  }
}
