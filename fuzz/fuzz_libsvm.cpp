// libFuzzer target: the LIBSVM reader's local part (reader_detail::parse_libsvm_part:
// label and index:value tokens, comments, qid, byte ranges of lines), without MPI.
//
// Properties beyond "no crash, no sanitizer report": the file read as S parts gives
// what one part gives: the same sparse rows (labels, indices, values, largest index) in
// the same order, or the same first bad line (file line and message); indices within a
// row are strictly increasing and >= 1; the CSR arrays (sized by the counting pass) hold
// exactly the rows kept.
#include <algorithm>
#include <cstring>
#include <vector>

#include "fuzz_common.hpp"
#include "io/reader_detail.hpp"

using natgrad::reader_detail::LibsvmPart;
using natgrad::reader_detail::parse_libsvm_part;
using natgrad::reader_detail::ParsedRows;

using natgrad_fuzz::same_bits;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const natgrad_fuzz::Input in(data, size);
  const natgrad::ReadOptions& opts = in.opts;
  const int parts = in.parts;

  const LibsvmPart one = parse_libsvm_part(opts, 0, 1);
  if (!one.error.empty()) natgrad_fuzz::fail("a memfd failed to open: " + one.error);
  ParsedRows all;
  natgrad::reader_detail::LocalError bad;
  std::int64_t lines = 0;
  for (int r = 0; r < parts && !bad.any(); ++r) {
    LibsvmPart p = parse_libsvm_part(opts, r, parts);
    all.append(p.rows);
    if (p.bad.any()) {
      bad = p.bad;
      bad.local_line += lines;
    }
    lines += p.lines;
  }
  if (one.bad.any() != bad.any()) natgrad_fuzz::fail("one part and several disagree on a bad line");
  if (bad.any() && (one.bad.local_line != bad.local_line || one.bad.what != bad.what))
    natgrad_fuzz::fail("first bad line differs: line " + std::to_string(one.bad.local_line) + " '" +
                       one.bad.what + "' vs line " + std::to_string(bad.local_line) + " '" +
                       bad.what + "'");
  if (!bad.any() && lines != one.lines) natgrad_fuzz::fail("line counts differ");
  const ParsedRows& a = one.rows;
  auto indices = [](const natgrad::SparseRows& c) {
    std::vector<std::int64_t> v;
    for (std::int64_t k = 0; k < c.nnz(); ++k) v.push_back(c.index(k));
    return v;
  };
  const std::vector<std::int64_t> ai = indices(a.csr);
  if (a.csr.row_ptr != all.csr.row_ptr || ai != indices(all.csr) || !same_bits(a.csr.values, all.csr.values) ||
      !same_bits(a.label, all.label) || a.max_index != all.max_index)
    natgrad_fuzz::fail("rows differ between one part and " + std::to_string(parts));
  if (a.csr.row_ptr.size() != static_cast<std::size_t>(a.rows()) + 1 ||
      a.csr.values.size() != static_cast<std::size_t>(a.csr.nnz()))
    natgrad_fuzz::fail("CSR arrays of the wrong size");
  for (std::int64_t r = 0; r < a.rows(); ++r)
    for (std::int64_t e = a.csr.row_ptr[r]; e < a.csr.row_ptr[r + 1]; ++e)
      if (ai[e] < 1 || (e > a.csr.row_ptr[r] && ai[e] <= ai[e - 1]) || ai[e] > a.max_index)
        natgrad_fuzz::fail("row " + std::to_string(r) + ": indices not increasing from 1");
  return 0;
}
