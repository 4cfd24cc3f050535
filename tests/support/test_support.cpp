#include "test_support.hpp"

#include <unistd.h>

#include <charconv>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "natgrad/core/error.hpp"
#include "natgrad/core/partition.hpp"

namespace natgrad::test {

namespace {
std::string run_dir;  // set by make_run_dir
}  // namespace

void make_run_dir(const Communicator& comm) {
  std::string dir = std::string(NATGRAD_TEST_TMP) + "/run-" + std::to_string(::getpid());
  comm.broadcast(dir);
  if (comm.is_root()) std::filesystem::create_directories(dir);
  comm.barrier();
  run_dir = dir;
}

void remove_run_dir(const Communicator& comm) {
  comm.barrier();
  if (comm.is_root() && !run_dir.empty()) std::filesystem::remove_all(run_dir);
}

std::string tmp_path(const std::string& name) {
  if (run_dir.empty()) throw std::logic_error("natgrad tests: tmp_path before make_run_dir");
  return run_dir + "/" + name;
}

std::string write_file(const Communicator& comm, const std::string& name, const std::string& content) {
  const std::string path = tmp_path(name);
  if (comm.is_root()) std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
  comm.barrier();
  return path;
}

std::string num(double v) {
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

std::string error_of(const std::function<void()>& call) {
  try {
    call();
  } catch (const Error& e) {
    return e.what();
  }
  return {};
}

std::string load_error(const ReadOptions& opts, const Communicator& comm) {
  return error_of([&] { load_shard(opts, comm); });
}

std::string global_rows(const Shard& shard, const Communicator& comm) {
  const Shard dense = densified(shard);  // either layout: the same bytes
  const Shard& s = dense;
  std::string mine;
  auto put = [&](double v) { mine.append(reinterpret_cast<const char*>(&v), sizeof v); };
  for (std::int64_t k = 0; k < s.n_rows && s.y.size() == static_cast<std::size_t>(s.n_rows); ++k) {
    put(s.y[k]);
    for (std::int64_t j = 0; j < s.n_cols; ++j) put(s.row(k)[j]);
    if (!s.weight.empty()) put(s.weight[k]);
    if (!s.offset.empty()) put(s.offset[k]);
  }
  std::string all;
  for (const std::string& part : comm.gather(mine)) all += part;
  return all;
}

Shard my_rows(const GeneratorSpec& g, const Communicator& comm, bool intercept) {
  const Range r = partition(g.rows, comm.rank(), comm.size());
  Shard s = generate_rows(g, r.begin, r.end, 1);
  if (intercept) add_intercept(s);
  return s;
}

}  // namespace natgrad::test
