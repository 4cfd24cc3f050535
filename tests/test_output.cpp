// AtomicFile / write_atomically (natgrad/io/output.hpp): the final name holds the old
// file or the whole new one, never a part, and no temporary is left behind.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "natgrad/core/error.hpp"
#include "natgrad/io/output.hpp"

using namespace natgrad;
namespace fs = std::filesystem;

namespace {
std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}
fs::path fresh_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("natgrad-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}
bool only_file(const fs::path& dir, const std::string& name) {
  int n = 0;
  for (const auto& e : fs::directory_iterator(dir)) n += e.path().filename() == name ? 1 : 100;
  return n == 1;
}
}  // namespace

TEST_CASE("atomic file: commit replaces the file whole, the temporary goes", "[output]") {
  const fs::path d = fresh_dir("atomic");
  const fs::path f = d / "model.json";
  write_atomically(f, [](std::ostream& os) { os << "old"; });
  {
    AtomicFile a(f);
    CHECK(a.temp_path().parent_path() == d);  // same directory: rename is atomic
    std::ofstream(a.temp_path()) << "new contents";
    CHECK(slurp(f) == "old");  // not visible before commit
    a.commit();
  }
  CHECK(slurp(f) == "new contents");
  CHECK(only_file(d, "model.json"));
  fs::remove_all(d);
}

TEST_CASE("atomic file: an error while writing leaves the old file and no temporary", "[output]") {
  const fs::path d = fresh_dir("atomic-fail");
  const fs::path f = d / "history.csv";
  write_atomically(f, [](std::ostream& os) { os << "complete"; });
  CHECK_THROWS_AS(write_atomically(f,
                                   [](std::ostream& os) {
                                     os << "half";
                                     throw std::runtime_error("disk full");
                                   }),
                  std::runtime_error);
  CHECK(slurp(f) == "complete");
  CHECK(only_file(d, "history.csv"));
  {
    AtomicFile a(f);  // abandoned without commit
    std::ofstream(a.temp_path()) << "partial";
  }
  CHECK(slurp(f) == "complete");
  CHECK(only_file(d, "history.csv"));
  CHECK_THROWS_WITH(write_atomically(d / "no-such-dir" / "x.json", [](std::ostream& os) { os << 1; }),
                    Catch::Contains("no-such-dir/x.json: cannot write"));
  fs::remove_all(d);
}
