#include "natgrad/io/npy.hpp"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "natgrad/io/output.hpp"

namespace natgrad {

void write_npy(const std::filesystem::path& path, std::int64_t rows, std::int64_t cols,
               const std::function<void(std::int64_t, std::int64_t, std::span<double>)>& fill_rows) {
  std::string dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (" + std::to_string(rows) +
                     ", " + std::to_string(cols) + "), }";
  // Version 1.0: magic(6) + version(2) + u16 header length; total padded to 64 bytes.
  const std::size_t pre = 10;
  std::size_t total = pre + dict.size() + 1;
  total = (total + 63) / 64 * 64;
  dict.append(total - pre - dict.size() - 1, ' ');
  dict.push_back('\n');
  write_atomically(path, [&](std::ostream& os) {
    const std::uint16_t hlen = static_cast<std::uint16_t>(dict.size());
    const char magic[8] = {'\x93', 'N', 'U', 'M', 'P', 'Y', 1, 0};
    os.write(magic, 8);
    const char len[2] = {static_cast<char>(hlen & 0xff), static_cast<char>(hlen >> 8)};
    os.write(len, 2);
    os.write(dict.data(), static_cast<std::streamsize>(dict.size()));
    const std::int64_t chunk = std::max<std::int64_t>(1, (std::int64_t{1} << 20) / std::max<std::int64_t>(cols, 1));
    std::vector<double> buf(static_cast<std::size_t>(chunk * cols));
    for (std::int64_t r = 0; r < rows; r += chunk) {
      const std::int64_t e = std::min(rows, r + chunk);
      std::span<double> s(buf.data(), static_cast<std::size_t>((e - r) * cols));
      fill_rows(r, e, s);
      // x86-64 and aarch64 are little-endian, as '<f8' requires.
      os.write(reinterpret_cast<const char*>(s.data()), static_cast<std::streamsize>(s.size_bytes()));
    }
  });
}

}  // namespace natgrad
