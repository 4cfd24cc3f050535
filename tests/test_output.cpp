// AtomicFile / write_atomically (natgrad/io/output.hpp): the final name holds the old
// file or the whole new one, never a part, and no temporary is left behind. OutputSet:
// a set of files replaced whole or not at all. OutputLock and probe_output_directory:
// the claim on --out. shell_command: the summary's "Call:" line.
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <set>
#include <stdexcept>

#include "natgrad/app/jobs.hpp"
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
/// The names in \p dir, sorted, blank-separated.
std::string listing(const fs::path& dir) {
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.insert(e.path().filename().string());
  std::string s;
  for (const auto& n : names) s += (s.empty() ? "" : " ") + n;
  return s;
}
/// Writes the set {a.csv, b.txt, m.json} holding \p tag each.
void write_set(const fs::path& d, const std::string& tag) {
  OutputSet set(d);
  for (const char* name : {"a.csv", "b.txt", "m.json"}) set.write(name, [&](std::ostream& os) { os << tag; });
  set.commit();
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

TEST_CASE("output set: committed whole, previous set replaced, nothing else left", "[output]") {
  const fs::path d = fresh_dir("set");
  write_set(d, "one");
  CHECK(listing(d) == "a.csv b.txt m.json");
  {
    OutputSet set(d);
    set.write("a.csv", [](std::ostream& os) { os << "two"; });
    set.write("b.txt", [](std::ostream& os) { os << "two"; });
    CHECK(slurp(d / "a.csv") == "one");  // nothing visible before commit
    set.write("m.json", [](std::ostream& os) { os << "two"; });
    CHECK(slurp(d / "m.json") == "one");
    set.commit();
  }
  for (const char* name : {"a.csv", "b.txt", "m.json"}) CHECK(slurp(d / name) == "two");
  CHECK(listing(d) == "a.csv b.txt m.json");
  fs::remove_all(d);
}

TEST_CASE("output set: a failed write or rename leaves the previous set and no temporary", "[output]") {
  const fs::path d = fresh_dir("set-fail");
  write_set(d, "old");
  const std::string pid = std::to_string(::getpid());
  SECTION("the filler throws (a full disk while writing)") {
    OutputSet set(d);
    set.write("a.csv", [](std::ostream& os) { os << "new"; });
    CHECK_THROWS_WITH(set.write("b.txt",
                                [](std::ostream& os) {
                                  os << "half";
                                  throw Error("b.txt: write failed: No space left on device");
                                }),
                      Catch::Contains("No space left"));
  }
  SECTION("a temporary cannot be created") {
    fs::create_directory(d / ("m.json.tmp." + pid));  // its temporary's name is taken
    {
      OutputSet set(d);
      set.write("a.csv", [](std::ostream& os) { os << "new"; });
      set.write("b.txt", [](std::ostream& os) { os << "new"; });
      CHECK_THROWS_WITH(set.write("m.json", [](std::ostream& os) { os << "new"; }),
                        Catch::Contains("m.json: cannot write"));
    }
    fs::remove(d / ("m.json.tmp." + pid));
  }
  SECTION("the last rename fails: the renamed files are put back") {
    fs::create_directory(d / "c.txt");  // a non-empty directory where a new file goes
    std::ofstream(d / "c.txt" / "keep") << "x";
    {
      OutputSet set(d);
      for (const char* name : {"a.csv", "b.txt", "c.txt"}) set.write(name, [](std::ostream& os) { os << "new"; });
      CHECK_THROWS_WITH(set.commit(), Catch::Contains("previous outputs in"));
    }
    fs::remove_all(d / "c.txt");
  }
  SECTION("a rename fails where no previous file existed: the new file goes again") {
    fs::remove(d / "a.csv");
    fs::remove(d / "m.json");
    fs::create_directory(d / "m.json");
    std::ofstream(d / "m.json" / "keep") << "x";
    {
      OutputSet set(d);
      for (const char* name : {"a.csv", "b.txt", "m.json"}) set.write(name, [](std::ostream& os) { os << "new"; });
      CHECK_THROWS(set.commit());
    }
    CHECK(!fs::exists(d / "a.csv"));  // it had no previous file
    CHECK(slurp(d / "b.txt") == "old");
    fs::remove_all(d / "m.json");
    std::ofstream(d / "a.csv") << "old";
    std::ofstream(d / "m.json") << "old";
  }
  for (const char* name : {"a.csv", "b.txt", "m.json"}) CHECK(slurp(d / name) == "old");
  CHECK(listing(d) == "a.csv b.txt m.json");
  fs::remove_all(d);
}

TEST_CASE("output directory: the probe creates it, refuses a file, and leaves nothing", "[output]") {
  const fs::path d = fresh_dir("probe");
  probe_output_directory(d / "new" / "deeper", "--out");
  CHECK(fs::is_directory(d / "new" / "deeper"));
  CHECK(listing(d / "new" / "deeper").empty());
  std::ofstream(d / "file") << "x";
  CHECK_THROWS_WITH(probe_output_directory(d / "file", "--out"), Catch::Contains("--out " + (d / "file").string() +
                                                                                 ": exists and is not a directory"));
  CHECK_THROWS_WITH(probe_output_directory(d / "file" / "sub", "--out"),
                    Catch::Contains("cannot create the output directory"));
  fs::remove_all(d);
}

TEST_CASE("output lock: one holder at a time, named, and a stale lock is taken over", "[output]") {
  const fs::path d = fresh_dir("lock");
  const fs::path lock_file = d / OutputLock::kFileName;
  {
    OutputLock first(d, "natgrad fit --data a.csv --out d");
    CHECK(fs::exists(lock_file));
    CHECK(slurp(lock_file).find("command: natgrad fit --data a.csv --out d") != std::string::npos);
    // A second claim (this process stands in for another live one) names the holder.
    CHECK_THROWS_WITH(OutputLock(d, "natgrad fit --data b.csv"),
                      Catch::Contains("in use by another natgrad fit (pid " + std::to_string(::getpid())) &&
                          Catch::Contains("natgrad fit --data a.csv --out d") &&
                          Catch::Contains(lock_file.string()));
    CHECK(slurp(lock_file).find("a.csv") != std::string::npos);  // the refused claim left it
  }
  CHECK(!fs::exists(lock_file));  // released

  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  // A holder on this host whose pid no longer runs: a child that has exited.
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  int status = 0;
  ::waitpid(child, &status, 0);
  std::ofstream(lock_file) << "natgrad output lock\nhost: " << host << "\npid: " << child
                           << "\nstarted: 2026-01-01T00:00:00Z\ncommand: natgrad fit (killed)\n";
  {
    OutputLock taken(d, "natgrad fit --data c.csv");
    CHECK(slurp(lock_file).find("c.csv") != std::string::npos);
  }
  CHECK(!fs::exists(lock_file));
  // A holder on another host cannot be checked: refused, named.
  std::ofstream(lock_file) << "natgrad output lock\nhost: some-other-node\npid: 1\nstarted: x\ncommand: natgrad fit\n";
  CHECK_THROWS_WITH(OutputLock(d, "natgrad fit"), Catch::Contains("pid 1 on host some-other-node"));
  CHECK(fs::exists(lock_file));
  fs::remove(lock_file);

  // A requeued Slurm job takes over the lock of its own earlier run, from any host;
  // another run of the same restart (a parallel step) does not.
  ::setenv("SLURM_JOB_ID", "4711", 1);
  ::setenv("SLURM_RESTART_COUNT", "0", 1);
  {
    OutputLock first_run(d, "natgrad fit --data first");
    CHECK(slurp(lock_file).find("slurm_job: 4711 0") != std::string::npos);
    CHECK_THROWS_WITH(OutputLock(d, "natgrad fit"), Catch::Contains("in use by another natgrad fit"));
    ::setenv("SLURM_RESTART_COUNT", "1", 1);
    OutputLock requeued(d, "natgrad fit --data requeued");
    CHECK(slurp(lock_file).find("slurm_job: 4711 1") != std::string::npos);
    ::setenv("SLURM_JOB_ID", "4712", 1);  // another job: the lock's holder runs
    CHECK_THROWS_WITH(OutputLock(d, "natgrad fit"), Catch::Contains("natgrad fit --data requeued"));
  }
  ::unsetenv("SLURM_JOB_ID");
  ::unsetenv("SLURM_RESTART_COUNT");
  CHECK(!fs::exists(lock_file));
  fs::remove_all(d);
}

TEST_CASE("shell_command quotes what a shell would change, and only that", "[output]") {
  CHECK(shell_command({"natgrad", "fit", "--data", "a/b-c_d.csv", "--lr=0.5,1", "--x", "@%+:"}) ==
        "natgrad fit --data a/b-c_d.csv --lr=0.5,1 --x @%+:");
  CHECK(shell_command({"natgrad", "--data", "my data.csv"}) == "natgrad --data 'my data.csv'");
  CHECK(shell_command({"a", "it's"}) == "a 'it'\\''s'");
  CHECK(shell_command({"a", ""}) == "a ''");
  CHECK(shell_command({"a", "$HOME", "x;y", "*", "~", "a\"b", "(c)", "d&e", "f|g", "<h>", "`i`", "j\\k", "l\nm"}) ==
        "a '$HOME' 'x;y' '*' '~' 'a\"b' '(c)' 'd&e' 'f|g' '<h>' '`i`' 'j\\k' 'l\nm'");
}
