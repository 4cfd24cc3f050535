#include "natgrad/core/option_table.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>

namespace natgrad {

namespace option_detail {

std::string json_string(std::string_view s) {
  std::string o = "\"";
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      o += '\\';
      o += c;
    } else if (u < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", u);
      o += buf;
    } else {
      o += c;
    }
  }
  return o + '"';
}

std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);  // shortest round trip
  std::string t(buf, r.ptr);
  if (t.find_first_of(".e") == std::string::npos) t += ".0";  // stays a double when read back, as JSON libraries write it
  return t;
}

}  // namespace option_detail

std::function<std::string(double)> finite_at_least(double lo) {
  return [lo](double v) {
    if (v >= lo && std::isfinite(v)) return std::string();
    return "must be >= " + option_detail::json_number(lo);
  };
}

std::function<std::string(double)> positive_number() {
  return [](double v) { return v > 0 && std::isfinite(v) ? std::string() : std::string("must be a positive number"); };
}

}  // namespace natgrad
