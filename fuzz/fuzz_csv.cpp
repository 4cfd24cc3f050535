// libFuzzer target: the CSV reader's local part (reader_detail::parse_csv_part: header,
// column roles, quoting, number parsing, byte ranges of lines), without MPI.
//
// Properties checked beyond "no crash, no sanitizer report": a file read as S parts
// (virtual ranks 0..S-1) gives what one part gives: the same header error, or the same
// rows in the same order, or the same first bad line (file line and message).
#include <cstring>
#include <vector>

#include "fuzz_common.hpp"
#include "io/reader_detail.hpp"

using natgrad::reader_detail::CsvPart;
using natgrad::reader_detail::parse_csv_part;

using natgrad_fuzz::same_bits;

namespace {

void append(std::vector<double>& to, const std::vector<double>& from) {
  to.insert(to.end(), from.begin(), from.end());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const natgrad_fuzz::Input in(data, size);
  const natgrad::ReadOptions& opts = in.opts;
  const int parts = in.parts;

  const CsvPart one = parse_csv_part(opts, 0, 1);
  CsvPart all;  // the parts joined, up to the first bad line
  std::int64_t lines = 0, dropped = 0;
  bool stopped = false;
  for (int r = 0; r < parts; ++r) {
    CsvPart p = parse_csv_part(opts, r, parts);
    if (p.error != one.error)
      natgrad_fuzz::fail("header error differs between parts: '" + p.error + "' vs '" + one.error +
                         "'");
    if (!one.error.empty()) continue;
    if (p.n_features != one.n_features || p.names != one.names)
      natgrad_fuzz::fail("column roles differ between parts");
    if (stopped) continue;
    append(all.x, p.x);
    append(all.y, p.y);
    append(all.weight, p.weight);
    append(all.offset, p.offset);
    dropped += p.rows_dropped;
    if (p.bad.any()) {
      all.bad = p.bad;
      all.bad.local_line += lines;
      stopped = true;
    }
    lines += p.lines;
  }
  if (!one.error.empty()) return 0;
  if (one.bad.any() != all.bad.any())
    natgrad_fuzz::fail("one part and several disagree on a bad line");
  if (one.bad.any() && (one.bad.local_line != all.bad.local_line || one.bad.what != all.bad.what))
    natgrad_fuzz::fail("first bad line differs: line " + std::to_string(one.bad.local_line) + " '" +
                       one.bad.what + "' vs line " + std::to_string(all.bad.local_line) + " '" +
                       all.bad.what + "'");
  if (!one.bad.any() && lines != one.lines) natgrad_fuzz::fail("line counts differ");
  if (dropped != one.rows_dropped) natgrad_fuzz::fail("rows dropped for missing values differ");
  if (!same_bits(one.x, all.x) || !same_bits(one.y, all.y) || !same_bits(one.weight, all.weight) ||
      !same_bits(one.offset, all.offset))
    natgrad_fuzz::fail("rows differ between one part and " + std::to_string(parts));
  const std::size_t n = one.y.size();
  if (one.x.size() != n * static_cast<std::size_t>(one.n_features))
    natgrad_fuzz::fail("x has the wrong size");
  return 0;
}
