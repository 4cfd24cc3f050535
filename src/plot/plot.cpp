/// \file plot.cpp
/// A self-contained PNG line-chart writer: an in-memory RGB canvas, an embedded 5x8
/// bitmap font, "nice" 1-2-5 axis ticks (linear or log10), translucent error bands,
/// a legend, and libpng encoding into memory followed by an atomic rename.
#include "natgrad/plot/plot.hpp"

#include <png.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "natgrad/core/error.hpp"

namespace natgrad {
namespace {

// ---------------------------------------------------------------------------------
// Bitmap font: 5 columns per glyph for ASCII 32..126. Each byte is one column, bit 0
// the top row; rows 0..6 are the body (baseline at row 6), row 7 holds descenders.
// ---------------------------------------------------------------------------------
constexpr int kGlyphW = 5;
constexpr int kGlyphH = 8;
constexpr int kAdvance = 6;  // glyph width plus one column of spacing

constexpr std::array<std::uint8_t, 95 * kGlyphW> kFont = {
    0x00, 0x00, 0x00, 0x00, 0x00,  // ' '
    0x00, 0x00, 0x5F, 0x00, 0x00,  // !
    0x00, 0x07, 0x00, 0x07, 0x00,  // "
    0x14, 0x7F, 0x14, 0x7F, 0x14,  // #
    0x24, 0x2A, 0x7F, 0x2A, 0x12,  // $
    0x23, 0x13, 0x08, 0x64, 0x62,  // %
    0x36, 0x49, 0x55, 0x22, 0x50,  // &
    0x00, 0x05, 0x03, 0x00, 0x00,  // '
    0x00, 0x1C, 0x22, 0x41, 0x00,  // (
    0x00, 0x41, 0x22, 0x1C, 0x00,  // )
    0x14, 0x08, 0x3E, 0x08, 0x14,  // *
    0x08, 0x08, 0x3E, 0x08, 0x08,  // +
    0x00, 0xA0, 0x60, 0x00, 0x00,  // ,
    0x08, 0x08, 0x08, 0x08, 0x08,  // -
    0x00, 0x60, 0x60, 0x00, 0x00,  // .
    0x20, 0x10, 0x08, 0x04, 0x02,  // /
    0x3E, 0x51, 0x49, 0x45, 0x3E,  // 0
    0x00, 0x42, 0x7F, 0x40, 0x00,  // 1
    0x42, 0x61, 0x51, 0x49, 0x46,  // 2
    0x21, 0x41, 0x45, 0x4B, 0x31,  // 3
    0x18, 0x14, 0x12, 0x7F, 0x10,  // 4
    0x27, 0x45, 0x45, 0x45, 0x39,  // 5
    0x3C, 0x4A, 0x49, 0x49, 0x30,  // 6
    0x01, 0x71, 0x09, 0x05, 0x03,  // 7
    0x36, 0x49, 0x49, 0x49, 0x36,  // 8
    0x06, 0x49, 0x49, 0x29, 0x1E,  // 9
    0x00, 0x36, 0x36, 0x00, 0x00,  // :
    0x00, 0xB6, 0x76, 0x00, 0x00,  // ;
    0x08, 0x14, 0x22, 0x41, 0x00,  // <
    0x14, 0x14, 0x14, 0x14, 0x14,  // =
    0x00, 0x41, 0x22, 0x14, 0x08,  // >
    0x02, 0x01, 0x51, 0x09, 0x06,  // ?
    0x32, 0x49, 0x79, 0x41, 0x3E,  // @
    0x7E, 0x11, 0x11, 0x11, 0x7E,  // A
    0x7F, 0x49, 0x49, 0x49, 0x36,  // B
    0x3E, 0x41, 0x41, 0x41, 0x22,  // C
    0x7F, 0x41, 0x41, 0x22, 0x1C,  // D
    0x7F, 0x49, 0x49, 0x49, 0x41,  // E
    0x7F, 0x09, 0x09, 0x09, 0x01,  // F
    0x3E, 0x41, 0x49, 0x49, 0x7A,  // G
    0x7F, 0x08, 0x08, 0x08, 0x7F,  // H
    0x00, 0x41, 0x7F, 0x41, 0x00,  // I
    0x20, 0x40, 0x41, 0x3F, 0x01,  // J
    0x7F, 0x08, 0x14, 0x22, 0x41,  // K
    0x7F, 0x40, 0x40, 0x40, 0x40,  // L
    0x7F, 0x02, 0x0C, 0x02, 0x7F,  // M
    0x7F, 0x04, 0x08, 0x10, 0x7F,  // N
    0x3E, 0x41, 0x41, 0x41, 0x3E,  // O
    0x7F, 0x09, 0x09, 0x09, 0x06,  // P
    0x3E, 0x41, 0x51, 0x21, 0x5E,  // Q
    0x7F, 0x09, 0x19, 0x29, 0x46,  // R
    0x46, 0x49, 0x49, 0x49, 0x31,  // S
    0x01, 0x01, 0x7F, 0x01, 0x01,  // T
    0x3F, 0x40, 0x40, 0x40, 0x3F,  // U
    0x1F, 0x20, 0x40, 0x20, 0x1F,  // V
    0x3F, 0x40, 0x38, 0x40, 0x3F,  // W
    0x63, 0x14, 0x08, 0x14, 0x63,  // X
    0x07, 0x08, 0x70, 0x08, 0x07,  // Y
    0x61, 0x51, 0x49, 0x45, 0x43,  // Z
    0x00, 0x7F, 0x41, 0x41, 0x00,  // [
    0x02, 0x04, 0x08, 0x10, 0x20,  // backslash
    0x00, 0x41, 0x41, 0x7F, 0x00,  // ]
    0x04, 0x02, 0x01, 0x02, 0x04,  // ^
    0x80, 0x80, 0x80, 0x80, 0x80,  // _
    0x00, 0x01, 0x02, 0x04, 0x00,  // `
    0x20, 0x54, 0x54, 0x54, 0x78,  // a
    0x7F, 0x48, 0x44, 0x44, 0x38,  // b
    0x38, 0x44, 0x44, 0x44, 0x20,  // c
    0x38, 0x44, 0x44, 0x48, 0x7F,  // d
    0x38, 0x54, 0x54, 0x54, 0x18,  // e
    0x08, 0x7E, 0x09, 0x01, 0x02,  // f
    0x18, 0xA4, 0xA4, 0xA4, 0x7C,  // g
    0x7F, 0x08, 0x04, 0x04, 0x78,  // h
    0x00, 0x44, 0x7D, 0x40, 0x00,  // i
    0x40, 0x80, 0x84, 0x7D, 0x00,  // j
    0x7F, 0x10, 0x28, 0x44, 0x00,  // k
    0x00, 0x41, 0x7F, 0x40, 0x00,  // l
    0x7C, 0x04, 0x18, 0x04, 0x78,  // m
    0x7C, 0x08, 0x04, 0x04, 0x78,  // n
    0x38, 0x44, 0x44, 0x44, 0x38,  // o
    0xFC, 0x24, 0x24, 0x24, 0x18,  // p
    0x18, 0x24, 0x24, 0x24, 0xFC,  // q
    0x7C, 0x08, 0x04, 0x04, 0x08,  // r
    0x48, 0x54, 0x54, 0x54, 0x24,  // s
    0x04, 0x3F, 0x44, 0x40, 0x20,  // t
    0x3C, 0x40, 0x40, 0x20, 0x7C,  // u
    0x1C, 0x20, 0x40, 0x20, 0x1C,  // v
    0x3C, 0x40, 0x30, 0x40, 0x3C,  // w
    0x44, 0x28, 0x10, 0x28, 0x44,  // x
    0x1C, 0xA0, 0xA0, 0xA0, 0x7C,  // y
    0x44, 0x64, 0x54, 0x4C, 0x44,  // z
    0x00, 0x08, 0x36, 0x41, 0x00,  // {
    0x00, 0x00, 0x7F, 0x00, 0x00,  // |
    0x00, 0x41, 0x36, 0x08, 0x00,  // }
    0x08, 0x04, 0x08, 0x10, 0x08,  // ~
};

// ---------------------------------------------------------------------------------
// Canvas
// ---------------------------------------------------------------------------------
struct Rgb {
  std::uint8_t r = 0, g = 0, b = 0;
  friend bool operator==(const Rgb&, const Rgb&) = default;
};

constexpr Rgb kWhite{255, 255, 255};
constexpr Rgb kBlack{0, 0, 0};
constexpr Rgb kTextColour{20, 20, 20};
constexpr Rgb kGridColour{228, 228, 228};
constexpr Rgb kLegendFrame{150, 150, 150};

// Distinct, colour-blind-friendly-ish series colours: the "tab10" palette, then four
// darker or purer ones, so that plots of up to 14 series (the benchmark's end-to-end
// plot has 11) repeat no colour.
constexpr std::array<Rgb, 14> kPalette = {{
    {31, 119, 180},
    {255, 127, 14},
    {44, 160, 44},
    {214, 39, 40},
    {148, 103, 189},
    {140, 86, 75},
    {227, 119, 194},
    {127, 127, 127},
    {188, 189, 34},
    {23, 190, 207},
    {0, 0, 140},
    {200, 0, 200},
    {0, 100, 0},
    {230, 180, 0},
}};

struct Rect {
  int x0 = 0, y0 = 0, x1 = -1, y1 = -1;  // inclusive bounds
  bool contains(int x, int y) const { return x >= x0 && x <= x1 && y >= y0 && y <= y1; }
  int width() const { return x1 - x0 + 1; }
  int height() const { return y1 - y0 + 1; }
};

class Canvas {
 public:
  Canvas(int width, int height)
      : width_(width), height_(height),
        pixels_(static_cast<std::size_t>(width) * static_cast<std::size_t>(height) * 3, 255) {}

  int width() const { return width_; }
  int height() const { return height_; }
  const std::vector<unsigned char>& pixels() const { return pixels_; }
  Rect bounds() const { return Rect{0, 0, width_ - 1, height_ - 1}; }

  void set(int x, int y, Rgb c) {
    if (x < 0 || y < 0 || x >= width_ || y >= height_) return;
    unsigned char* p = at(x, y);
    p[0] = c.r;
    p[1] = c.g;
    p[2] = c.b;
  }

  Rgb get(int x, int y) const {
    const unsigned char* p = &pixels_[offset(x, y)];
    return Rgb{p[0], p[1], p[2]};
  }

  /// Alpha-blends \p c over the pixel (alpha in [0,1]).
  void blend(int x, int y, Rgb c, double alpha) {
    if (x < 0 || y < 0 || x >= width_ || y >= height_) return;
    unsigned char* p = at(x, y);
    const auto mix = [alpha](unsigned char dst, std::uint8_t src) {
      const double v = (1.0 - alpha) * dst + alpha * src;
      return static_cast<unsigned char>(std::clamp(std::lround(v), 0L, 255L));
    };
    p[0] = mix(p[0], c.r);
    p[1] = mix(p[1], c.g);
    p[2] = mix(p[2], c.b);
  }

  void fill_rect(const Rect& r, Rgb c) {
    for (int y = std::max(r.y0, 0); y <= std::min(r.y1, height_ - 1); ++y)
      for (int x = std::max(r.x0, 0); x <= std::min(r.x1, width_ - 1); ++x) set(x, y, c);
  }

  void frame_rect(const Rect& r, Rgb c) {
    for (int x = r.x0; x <= r.x1; ++x) {
      set(x, r.y0, c);
      set(x, r.y1, c);
    }
    for (int y = r.y0; y <= r.y1; ++y) {
      set(r.x0, y, c);
      set(r.x1, y, c);
    }
  }

 private:
  std::size_t offset(int x, int y) const {
    return (static_cast<std::size_t>(y) * static_cast<std::size_t>(width_) +
            static_cast<std::size_t>(x)) * 3;
  }
  unsigned char* at(int x, int y) { return &pixels_[offset(x, y)]; }

  int width_, height_;
  std::vector<unsigned char> pixels_;
};

// ---------------------------------------------------------------------------------
// Text
// ---------------------------------------------------------------------------------

/// Maps a UTF-8 string to font indices: printable ASCII as is, every other character
/// (control bytes, each multi-byte sequence) to '?'.
std::string to_font_chars(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 32 && c <= 126) {
      out.push_back(static_cast<char>(c));
    } else if (c >= 0x80) {
      // Skip the continuation bytes of this sequence.
      while (i + 1 < s.size() && (static_cast<unsigned char>(s[i + 1]) & 0xC0U) == 0x80U) ++i;
      out.push_back('?');
    } else if (c == '\t') {
      out.push_back(' ');
    } else {
      out.push_back('?');
    }
  }
  return out;
}

int text_width(std::string_view s, int scale) {
  const int n = static_cast<int>(to_font_chars(s).size());
  return n == 0 ? 0 : (n * kAdvance - (kAdvance - kGlyphW)) * scale;
}

int text_height(int scale) { return kGlyphH * scale; }

bool glyph_bit(char ch, int col, int row) {
  const int index = static_cast<unsigned char>(ch) - 32;
  if (index < 0 || index >= 95) return false;
  const std::uint8_t bits = kFont[static_cast<std::size_t>(index * kGlyphW + col)];
  return ((bits >> row) & 1U) != 0;
}

/// Draws \p s with its top-left corner at (x, y), each font pixel scale x scale.
void draw_text(Canvas& canvas, int x, int y, std::string_view s, int scale, Rgb colour) {
  const std::string chars = to_font_chars(s);
  int pen = x;
  for (char ch : chars) {
    for (int col = 0; col < kGlyphW; ++col)
      for (int row = 0; row < kGlyphH; ++row)
        if (glyph_bit(ch, col, row))
          for (int dy = 0; dy < scale; ++dy)
            for (int dx = 0; dx < scale; ++dx)
              canvas.set(pen + col * scale + dx, y + row * scale + dy, colour);
    pen += kAdvance * scale;
  }
}

/// Draws \p s rotated 90 degrees counter-clockwise (reading bottom to top); (x, y) is
/// the bottom-left corner of the rotated text's bounding box.
void draw_text_vertical(Canvas& canvas, int x, int y, std::string_view s, int scale,
                        Rgb colour) {
  const std::string chars = to_font_chars(s);
  int pen = 0;
  for (char ch : chars) {
    for (int col = 0; col < kGlyphW; ++col)
      for (int row = 0; row < kGlyphH; ++row)
        if (glyph_bit(ch, col, row))
          for (int dy = 0; dy < scale; ++dy)
            for (int dx = 0; dx < scale; ++dx)
              canvas.set(x + row * scale + dy, y - (pen + col * scale + dx), colour);
    pen += kAdvance * scale;
  }
}

// ---------------------------------------------------------------------------------
// Lines and markers
// ---------------------------------------------------------------------------------

/// A 2-pixel-wide Bresenham line, clipped to \p clip.
void draw_thick_line(Canvas& canvas, const Rect& clip, int x0, int y0, int x1, int y1,
                     Rgb c) {
  const int dx = std::abs(x1 - x0), sx = x0 < x1 ? 1 : -1;
  const int dy = -std::abs(y1 - y0), sy = y0 < y1 ? 1 : -1;
  int err = dx + dy;
  // Thicken across the line's minor direction so both slopes end up 2 px wide.
  const bool steep = -dy > dx;
  for (;;) {
    if (clip.contains(x0, y0)) canvas.set(x0, y0, c);
    const int tx = steep ? x0 + 1 : x0, ty = steep ? y0 : y0 + 1;
    if (clip.contains(tx, ty)) canvas.set(tx, ty, c);
    if (x0 == x1 && y0 == y1) break;
    const int e2 = 2 * err;
    if (e2 >= dy) {
      err += dy;
      x0 += sx;
    }
    if (e2 <= dx) {
      err += dx;
      y0 += sy;
    }
  }
}

void draw_marker(Canvas& canvas, const Rect& clip, int x, int y, int half, Rgb c) {
  for (int yy = y - half; yy <= y + half; ++yy)
    for (int xx = x - half; xx <= x + half; ++xx)
      if (clip.contains(xx, yy)) canvas.set(xx, yy, c);
}

// ---------------------------------------------------------------------------------
// Axes: ranges, ticks and tick labels
// ---------------------------------------------------------------------------------
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

/// Builds an axis from the finite data extent [lo, hi] (already log10 for a log axis;
/// lo > hi means "no data"), padding by \p pad_fraction of the range.
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

// ---------------------------------------------------------------------------------
// Data preparation
// ---------------------------------------------------------------------------------

/// One series with x and (possibly log10) y in axis coordinates; NaN marks a gap.
struct Prepared {
  std::vector<double> x, y, band_lo, band_hi;  // band_* empty when there is no band
};

constexpr double kHuge = 1e300;  // values beyond this are treated as non-finite

bool usable(double v) { return std::isfinite(v) && std::abs(v) < kHuge; }

std::vector<Prepared> prepare(const std::vector<Series>& series, bool log_y) {
  constexpr double nan = std::numeric_limits<double>::quiet_NaN();
  const auto to_axis = [log_y](double v) {
    if (!usable(v)) return nan;
    if (log_y) return v > 0.0 ? std::log10(v) : nan;
    return v;
  };
  std::vector<Prepared> out;
  out.reserve(series.size());
  for (const Series& s : series) {
    const std::size_t n = s.y.size();
    if (!s.x.empty() && s.x.size() != n)
      throw Error("plot series '" + s.label + "': x has " + std::to_string(s.x.size()) +
                  " values but y has " + std::to_string(n));
    if (!s.y_err.empty() && s.y_err.size() != n)
      throw Error("plot series '" + s.label + "': y_err has " + std::to_string(s.y_err.size()) +
                  " values but y has " + std::to_string(n));
    Prepared p;
    p.x.resize(n);
    p.y.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
      const double xv = s.x.empty() ? static_cast<double>(i) : s.x[i];
      p.x[i] = usable(xv) ? xv : nan;
      p.y[i] = to_axis(s.y[i]);
    }
    if (!s.y_err.empty()) {
      p.band_lo.resize(n);
      p.band_hi.resize(n);
      for (std::size_t i = 0; i < n; ++i) {
        const double e = std::abs(s.y_err[i]);
        if (!usable(s.y[i]) || !usable(e)) {
          p.band_lo[i] = p.band_hi[i] = nan;
          continue;
        }
        p.band_hi[i] = to_axis(s.y[i] + e);
        // On a log axis a lower bound <= 0 extends to -inf: clamped to the axis later.
        const double lo_v = s.y[i] - e;
        p.band_lo[i] = (log_y && lo_v <= 0.0) ? -std::numeric_limits<double>::infinity()
                                              : to_axis(lo_v);
      }
    }
    out.push_back(std::move(p));
  }
  return out;
}

// ---------------------------------------------------------------------------------
// Layout and rendering
// ---------------------------------------------------------------------------------
struct Mapping {
  Rect area;
  Axis x, y;
  double px(double v) const {
    return area.x0 + (v - x.lo) / (x.hi - x.lo) * (area.x1 - area.x0);
  }
  double py(double v) const {
    return area.y1 - (v - y.lo) / (y.hi - y.lo) * (area.y1 - area.y0);
  }
};

int to_pixel(double v) {
  return static_cast<int>(std::lround(std::clamp(v, -1e6, 1e6)));
}

void draw_band(Canvas& canvas, const Mapping& map, const Prepared& p, Rgb colour) {
  const Rect& area = map.area;
  const int w = area.width(), h = area.height();
  std::vector<std::uint8_t> mask(static_cast<std::size_t>(w) * static_cast<std::size_t>(h), 0);
  const auto fill_column = [&](int col, double ya, double yb) {
    if (col < area.x0 || col > area.x1) return;
    const int top = std::max(area.y0, to_pixel(std::min(ya, yb)));
    const int bottom = std::min(area.y1, to_pixel(std::max(ya, yb)));
    for (int row = top; row <= bottom; ++row)
      mask[static_cast<std::size_t>(row - area.y0) * static_cast<std::size_t>(w) +
           static_cast<std::size_t>(col - area.x0)] = 1;
  };
  const auto band_py = [&](double v) {
    // -inf (log axis, non-positive lower bound) is the bottom edge.
    return std::isinf(v) && v < 0 ? static_cast<double>(area.y1) : map.py(v);
  };
  const auto valid = [&](std::size_t i) {
    return !std::isnan(p.x[i]) && !std::isnan(p.band_lo[i]) && !std::isnan(p.band_hi[i]);
  };
  const std::size_t n = p.x.size();
  for (std::size_t i = 0; i < n; ++i) {
    if (!valid(i)) continue;
    const bool prev = i > 0 && valid(i - 1), next = i + 1 < n && valid(i + 1);
    if (!prev && !next) {  // isolated point: a short vertical bar
      const int c = to_pixel(map.px(p.x[i]));
      for (int col = c - 2; col <= c + 2; ++col)
        fill_column(col, band_py(p.band_lo[i]), band_py(p.band_hi[i]));
    }
    if (!next) continue;
    double xa = map.px(p.x[i]), xb = map.px(p.x[i + 1]);
    double la = band_py(p.band_lo[i]), lb = band_py(p.band_lo[i + 1]);
    double ha = band_py(p.band_hi[i]), hb = band_py(p.band_hi[i + 1]);
    if (xa > xb) {
      std::swap(xa, xb);
      std::swap(la, lb);
      std::swap(ha, hb);
    }
    const int c0 = std::max(area.x0, to_pixel(xa)), c1 = std::min(area.x1, to_pixel(xb));
    for (int col = c0; col <= c1; ++col) {
      const double t = xb - xa > 1e-9 ? std::clamp((col - xa) / (xb - xa), 0.0, 1.0) : 0.0;
      fill_column(col, la + t * (lb - la), ha + t * (hb - ha));
    }
  }
  for (int row = 0; row < h; ++row)
    for (int col = 0; col < w; ++col)
      if (mask[static_cast<std::size_t>(row) * static_cast<std::size_t>(w) +
               static_cast<std::size_t>(col)])
        canvas.blend(area.x0 + col, area.y0 + row, colour, 0.2);
}

void draw_series(Canvas& canvas, const Mapping& map, const Prepared& p, Rgb colour,
                 int marker_half, bool markers) {
  const std::size_t n = p.x.size();
  const auto valid = [&](std::size_t i) { return !std::isnan(p.x[i]) && !std::isnan(p.y[i]); };
  for (std::size_t i = 0; i + 1 < n; ++i)
    if (valid(i) && valid(i + 1))
      draw_thick_line(canvas, map.area, to_pixel(map.px(p.x[i])), to_pixel(map.py(p.y[i])),
                      to_pixel(map.px(p.x[i + 1])), to_pixel(map.py(p.y[i + 1])), colour);
  for (std::size_t i = 0; i < n; ++i) {
    if (!valid(i)) continue;
    const bool isolated = !(i > 0 && valid(i - 1)) && !(i + 1 < n && valid(i + 1));
    if (markers || isolated)
      draw_marker(canvas, map.area, to_pixel(map.px(p.x[i])), to_pixel(map.py(p.y[i])),
                  marker_half, colour);
  }
}

/// Counts pixels in \p r that carry data (neither background nor grid).
long ink_in(const Canvas& canvas, const Rect& r) {
  long n = 0;
  for (int y = std::max(0, r.y0); y <= std::min(canvas.height() - 1, r.y1); ++y)
    for (int x = std::max(0, r.x0); x <= std::min(canvas.width() - 1, r.x1); ++x) {
      const Rgb c = canvas.get(x, y);
      if (!(c == kWhite) && !(c == kGridColour)) ++n;
    }
  return n;
}

Canvas render(const std::vector<Series>& series, const PlotOptions& options) {
  const int W = options.width, H = options.height;
  const std::vector<Prepared> data = prepare(series, options.log_y);

  // Data extent in axis coordinates.
  double xmin = std::numeric_limits<double>::infinity(), xmax = -xmin;
  double ymin = xmin, ymax = -xmin;
  for (const Prepared& p : data)
    for (std::size_t i = 0; i < p.x.size(); ++i) {
      if (std::isnan(p.x[i])) continue;
      bool any = false;
      const auto take_y = [&](double v) {
        if (!std::isfinite(v)) return;
        ymin = std::min(ymin, v);
        ymax = std::max(ymax, v);
        any = true;
      };
      take_y(p.y[i]);
      if (!p.band_lo.empty()) {
        take_y(p.band_lo[i]);
        take_y(p.band_hi[i]);
      }
      if (any) {
        xmin = std::min(xmin, p.x[i]);
        xmax = std::max(xmax, p.x[i]);
      }
    }

  Mapping map;
  map.x = make_axis(xmin, xmax, false, 0.03);
  map.y = make_axis(ymin, ymax, options.log_y, 0.05);

  // Sizes scale gently with the image so large plots stay legible.
  const int base = std::max(1, static_cast<int>(std::lround(std::min(W, H) / 450.0)));
  const int s_tick = base, s_label = base;
  int s_title = base + 1;
  while (s_title > 1 && text_width(options.title, s_title) > W - 8 * base) --s_title;
  const int pad = 8 * base, tick_len = 5 * base, gap = 3 * base;

  int ytick_w = 0;
  for (const Tick& t : map.y.ticks) ytick_w = std::max(ytick_w, text_width(t.label, s_tick));
  const int last_xtick_w =
      map.x.ticks.empty() ? 0 : text_width(map.x.ticks.back().label, s_tick);

  const bool has_title = !options.title.empty(), has_xl = !options.x_label.empty(),
             has_yl = !options.y_label.empty();
  const int top = pad + (has_title ? text_height(s_title) + pad : 0);
  const int left = pad + (has_yl ? text_height(s_label) + pad : 0) + ytick_w + gap + tick_len;
  const int bottom = tick_len + gap + text_height(s_tick) +
                     (has_xl ? pad + text_height(s_label) : 0) + pad;
  const int right = std::max(2 * pad, last_xtick_w / 2 + gap);
  map.area = Rect{left, top, W - right - 1, H - bottom - 1};
  if (map.area.width() < 20 || map.area.height() < 20)
    throw Error("plot size " + std::to_string(W) + "x" + std::to_string(H) +
                " is too small for its title, labels and ticks");

  Canvas canvas(W, H);
  const Rect& area = map.area;

  // Grid at the labelled ticks.
  for (const Tick& t : map.x.ticks) {
    const int x = to_pixel(map.px(t.value));
    for (int y = area.y0; y <= area.y1; ++y) canvas.set(x, y, kGridColour);
  }
  for (const Tick& t : map.y.ticks) {
    const int y = to_pixel(map.py(t.value));
    for (int x = area.x0; x <= area.x1; ++x) canvas.set(x, y, kGridColour);
  }

  // Bands under all lines, then lines and markers.
  for (std::size_t k = 0; k < data.size(); ++k)
    if (!data[k].band_lo.empty()) draw_band(canvas, map, data[k], kPalette[k % kPalette.size()]);
  for (std::size_t k = 0; k < data.size(); ++k) {
    // Markers only where points are sparse enough not to merge into a blob.
    const bool markers = static_cast<int>(data[k].x.size()) <= area.width() / 10;
    draw_series(canvas, map, data[k], kPalette[k % kPalette.size()], 2 * base, markers);
  }

  // Frame, ticks and tick labels.
  canvas.frame_rect(area, kBlack);
  const int th = text_height(s_tick);
  for (const Tick& t : map.x.ticks) {
    const int x = to_pixel(map.px(t.value));
    for (int d = 1; d <= tick_len; ++d) canvas.set(x, area.y1 + d, kBlack);
    draw_text(canvas, x - text_width(t.label, s_tick) / 2, area.y1 + tick_len + gap, t.label,
              s_tick, kTextColour);
  }
  for (const Tick& t : map.y.ticks) {
    const int y = to_pixel(map.py(t.value));
    for (int d = 1; d <= tick_len; ++d) canvas.set(area.x0 - d, y, kBlack);
    // Centre the digits' body (rows 0..6) on the tick.
    draw_text(canvas, area.x0 - tick_len - gap - text_width(t.label, s_tick),
              y - (7 * s_tick) / 2, t.label, s_tick, kTextColour);
  }
  for (double v : map.y.minor) {
    const int y = to_pixel(map.py(v));
    for (int d = 1; d <= (tick_len + 1) / 2; ++d) canvas.set(area.x0 - d, y, kBlack);
  }

  // Title, axis labels.
  if (has_title)
    draw_text(canvas, (W - text_width(options.title, s_title)) / 2, pad, options.title,
              s_title, kTextColour);
  if (has_xl)
    draw_text(canvas, area.x0 + (area.width() - text_width(options.x_label, s_label)) / 2,
              area.y1 + tick_len + gap + th + pad, options.x_label, s_label, kTextColour);
  if (has_yl)
    draw_text_vertical(canvas, pad,
                       area.y0 + (area.height() + text_width(options.y_label, s_label)) / 2,
                       options.y_label, s_label, kTextColour);

  // Legend: in the plot corner that hides the least data.
  std::vector<std::size_t> entries;
  for (std::size_t k = 0; k < series.size(); ++k)
    if (!series[k].label.empty()) entries.push_back(k);
  if (!entries.empty()) {
    const int s_leg = s_label, sample = 18 * base, row_h = text_height(s_leg) + 4 * base;
    int label_w = 0;
    for (std::size_t k : entries) label_w = std::max(label_w, text_width(series[k].label, s_leg));
    const int lw = pad + sample + gap * 2 + label_w + pad;
    const int lh = pad + static_cast<int>(entries.size()) * row_h - 4 * base + pad;
    const int m = 6 * base;
    const std::array<Rect, 4> corners = {{
        {area.x1 - m - lw + 1, area.y0 + m, area.x1 - m, area.y0 + m + lh - 1},  // top right
        {area.x0 + m, area.y0 + m, area.x0 + m + lw - 1, area.y0 + m + lh - 1},  // top left
        {area.x1 - m - lw + 1, area.y1 - m - lh + 1, area.x1 - m, area.y1 - m},  // bottom right
        {area.x0 + m, area.y1 - m - lh + 1, area.x0 + m + lw - 1, area.y1 - m},  // bottom left
    }};
    Rect box = corners[0];
    long best = ink_in(canvas, box);
    for (std::size_t c = 1; c < corners.size() && best > 0; ++c) {
      const long ink = ink_in(canvas, corners[c]);
      if (ink < best) {
        best = ink;
        box = corners[c];
      }
    }
    canvas.fill_rect(box, kWhite);
    canvas.frame_rect(box, kLegendFrame);
    int y = box.y0 + pad;
    for (std::size_t k : entries) {
      const Rgb c = kPalette[k % kPalette.size()];
      const int mid = y + (7 * s_leg) / 2;
      const Rect inner{box.x0 + 1, box.y0 + 1, box.x1 - 1, box.y1 - 1};
      if (!series[k].y_err.empty())
        for (int yy = mid - 3 * base; yy <= mid + 3 * base; ++yy)
          for (int xx = box.x0 + pad; xx < box.x0 + pad + sample; ++xx) canvas.blend(xx, yy, c, 0.2);
      draw_thick_line(canvas, inner, box.x0 + pad, mid, box.x0 + pad + sample - 1, mid, c);
      draw_marker(canvas, inner, box.x0 + pad + sample / 2, mid, 2 * base, c);
      draw_text(canvas, box.x0 + pad + sample + 2 * gap, y, series[k].label, s_leg, kTextColour);
      y += row_h;
    }
  }
  return canvas;
}

// ---------------------------------------------------------------------------------
// PNG encoding (libpng, in memory). Only POD locals live across setjmp.
// ---------------------------------------------------------------------------------
struct PngSink {
  std::vector<unsigned char>* out;
  char message[256];
};

void png_on_error(png_structp png, png_const_charp msg) {
  auto* sink = static_cast<PngSink*>(png_get_error_ptr(png));
  if (sink != nullptr) {
    std::snprintf(sink->message, sizeof sink->message, "libpng: %s",
                  msg != nullptr ? msg : "unknown error");
  }
  png_longjmp(png, 1);
}

void png_on_warning(png_structp, png_const_charp) {}

void png_on_write(png_structp png, png_bytep data, png_size_t length) {
  auto* sink = static_cast<PngSink*>(png_get_io_ptr(png));
  bool ok = true;
  try {
    sink->out->insert(sink->out->end(), data, data + length);
  } catch (...) {
    ok = false;
  }
  if (!ok) png_error(png, "out of memory while encoding");  // longjmps; no live C++ objects
}

void png_on_flush(png_structp) {}

bool encode_png_raw(const unsigned char* rgb, png_uint_32 width, png_uint_32 height,
                    PngSink* sink) {
  png_structp png =
      png_create_write_struct(PNG_LIBPNG_VER_STRING, sink, png_on_error, png_on_warning);
  if (png == nullptr) {
    std::snprintf(sink->message, sizeof sink->message, "libpng: cannot create write struct");
    return false;
  }
  png_infop info = png_create_info_struct(png);
  if (info == nullptr) {
    png_destroy_write_struct(&png, nullptr);
    std::snprintf(sink->message, sizeof sink->message, "libpng: cannot create info struct");
    return false;
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    return false;
  }
  png_set_write_fn(png, sink, png_on_write, png_on_flush);
  png_set_IHDR(png, info, width, height, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  const png_size_t stride = static_cast<png_size_t>(width) * 3;
  for (png_uint_32 row = 0; row < height; ++row) png_write_row(png, rgb + row * stride);
  png_write_end(png, info);
  png_destroy_write_struct(&png, &info);
  return true;
}

std::vector<unsigned char> encode_png(const Canvas& canvas, const std::filesystem::path& path) {
  std::vector<unsigned char> bytes;
  PngSink sink{&bytes, {}};
  if (!encode_png_raw(canvas.pixels().data(), static_cast<png_uint_32>(canvas.width()),
                      static_cast<png_uint_32>(canvas.height()), &sink))
    throw Error("cannot write plot '" + path.string() + "': " + sink.message);
  return bytes;
}

// ---------------------------------------------------------------------------------
// Atomic file write
// ---------------------------------------------------------------------------------

/// Writes \p bytes to \p file (created or truncated) and fsyncs it; returns "" on
/// success, else the reason.
std::string write_all(const std::filesystem::path& file, const std::vector<unsigned char>& bytes) {
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return "cannot create '" + file.string() + "': " + std::strerror(errno);
  std::size_t done = 0;
  std::string reason;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      reason = "cannot write '" + file.string() + "': " + std::strerror(errno);
      break;
    }
    done += static_cast<std::size_t>(n);
  }
  if (reason.empty() && ::fsync(fd) != 0)
    reason = "cannot sync '" + file.string() + "': " + std::strerror(errno);
  if (::close(fd) != 0 && reason.empty())
    reason = "cannot close '" + file.string() + "': " + std::strerror(errno);
  return reason;
}

void write_atomically(const std::filesystem::path& path, const std::vector<unsigned char>& bytes) {
  namespace fs = std::filesystem;
  const fs::path tmp = fs::path(path.string() + ".tmp." + std::to_string(::getpid()));
  const auto fail = [&](const std::string& reason) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    throw Error("cannot write plot '" + path.string() + "': " + reason);
  };
  const std::string reason = write_all(tmp, bytes);
  if (!reason.empty()) fail(reason);
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) fail("cannot rename '" + tmp.string() + "' to it: " + ec.message());
}

}  // namespace

void write_line_plot(const std::filesystem::path& path, const std::vector<Series>& series,
                     const PlotOptions& options) {
  if (path.empty() || !path.has_filename())
    throw Error("cannot write plot '" + path.string() + "': not a file path");
  constexpr int kMinSize = 64, kMaxSize = 16384;
  if (options.width < kMinSize || options.width > kMaxSize || options.height < kMinSize ||
      options.height > kMaxSize)
    throw Error("cannot write plot '" + path.string() + "': size " +
                std::to_string(options.width) + "x" + std::to_string(options.height) +
                " is outside " + std::to_string(kMinSize) + ".." + std::to_string(kMaxSize));
  Canvas canvas = [&] {
    try {
      return render(series, options);
    } catch (const Error& e) {
      throw Error("cannot write plot '" + path.string() + "': " + e.what());
    }
  }();
  write_atomically(path, encode_png(canvas, path));
}

}  // namespace natgrad
