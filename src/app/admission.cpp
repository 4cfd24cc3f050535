#include "natgrad/app/admission.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "natgrad/core/error.hpp"
#include "natgrad/core/memory.hpp"
#include "natgrad/core/partition.hpp"
#include "natgrad/io/generator.hpp"
#include "natgrad/io/reader.hpp"

namespace natgrad {

namespace {

constexpr double kGiB = 1073741824.0;
// Above this many parameters several threads share one p x p matrix (kernels.cpp).
constexpr std::int64_t kPerThreadMaxP = 384;
// Rank 0's p x p matrices besides the accumulators: the summed and normalised Fisher,
// its Cholesky factor, the start system's Gram matrix; inference adds the inverse, the
// covariance and the sandwich's work matrices (src/core/inference.cpp); measured: 1 + 0.5
// + 3 matrices at one thread without inference, 4 more with it.
constexpr double kRootMatrices = 3.5;  // + half a matrix: the MPI library's reduction buffer
constexpr double kInferenceMatrices = 4;
// --solver cg: vectors of p doubles per rank (iterate, gradient, direction, the CG work
// vectors; the solver's design estimate, not yet measured).
constexpr double kCgVectors = 8;

std::string gib(double bytes) {
  char b[32];
  std::snprintf(b, sizeof b, "%.2f GiB", bytes / kGiB);
  return b;
}

}  // namespace

MemoryNeed fisher_memory_need(std::int64_t p, int threads, std::int64_t block_rows, bool inference, bool matrix_free) {
  MemoryNeed n;
  const double dp = static_cast<double>(p), pp = dp * dp * 8;
  const bool shared = threads > 1 && p > kPerThreadMaxP;
  const double slots = shared ? 1.0 : static_cast<double>(std::max(threads, 1));
  const double rows = shared ? static_cast<double>(std::max<std::int64_t>(
                                   block_rows, std::min<std::int64_t>(16384, (std::int64_t{1} << 23) / std::max<std::int64_t>(p, 1))))
                             : static_cast<double>(block_rows) * slots;
  const double accumulators = slots * pp + rows * dp * 8 + (dp * (dp + 1) / 2 + dp + 4) * 8;
  if (matrix_free) {
    // --solver cg: no p x p matrix in the fit; every rank holds the row blocks and about
    // kCgVectors vectors of p doubles (iterate, gradient, direction, CG work), per thread
    // a gradient. Inference still forms the p x p Fisher and covariance.
    n.work = rows * dp * 8 + (kCgVectors + slots) * dp * 8;
    if (inference) {
      n.work = std::max(n.work, accumulators);
      n.root = (1 + kInferenceMatrices) * pp;
    }
    return n;
  }
  n.work = accumulators;
  n.root = (kRootMatrices + (inference ? kInferenceMatrices : 0)) * pp;
  return n;
}

namespace {
/// The Fisher part of \p job's fit with \p d columns (intercept included).
MemoryNeed fit_need(const FitJob& job, std::int64_t d, bool sparse = false) {
  // Multinomial: K - 1 outputs when --classes is given, else counted as one (a lower bound).
  const std::int64_t outputs = job.glm.classes > 2 ? job.glm.classes - 1 : 1;
  const std::int64_t p = d * outputs;
  const bool matrix_free =
      job.glm.fit.method == Method::ngd && resolved_solver(job.glm.fit, p, sparse) == LinearSolver::cg;
  // Inference forms the P x P covariance only up to the threshold (or --se-columns all).
  const bool full_se = job.glm.inference && forms_full_covariance(p, job.glm.se_columns == "all");
  return fisher_memory_need(p, job.threads, job.glm.fit.block_rows, full_se, matrix_free);
}
}  // namespace

MemoryNeed fisher_memory_need(const FitJob& job, std::int64_t d, bool sparse) { return fit_need(job, d, sparse); }

MemoryNeed read_memory_need(const FitJob& job, int rank, int ranks) {
  MemoryNeed n;
  const std::string& data = job.read.path;
  if (is_generator_spec(data)) {
    GeneratorSpec spec;
    try {
      spec = parse_generator_spec(data);
    } catch (const Error&) {
      return n;  // the reader reports a bad spec with its own message
    }
    const std::int64_t d = spec.cols + (job.read.intercept ? 1 : 0);
    const Range r = partition(spec.rows, rank, ranks);
    if (spec.sparse()) {  // CSR rows: a value and an index per non-zero, a row pointer and a label per row
      const double index_bytes = SparseRows::needs_wide(d) ? 8 : 4;
      const double per_row = static_cast<double>(spec.nnz + (job.read.intercept ? 1 : 0)) * (8 + index_bytes) + 16;
      n.shard = static_cast<double>(r.end - r.begin) * per_row;
      return n;  // the Fisher (if any) is checked after reading, on the actual columns
    }
    n.shard = static_cast<double>(r.end - r.begin) * static_cast<double>(d + 1) * 8;
    const MemoryNeed f = fit_need(job, d);
    n.work = f.work;
    n.root = f.root;
    return n;
  }
  // A file: its header gives the columns (CSV, NPY, HDF5; not LIBSVM) and, for the binary
  // formats, the rows; the shard is then exact, else estimated from the file's size.
  const TableShape shape = peek_shape(job.read);
  std::error_code ec;
  const auto bytes = std::filesystem::file_size(data, ec);
  if (shape.rows >= 0 && shape.features >= 0) {
    const Range r = partition(shape.rows, rank, ranks);
    n.shard = static_cast<double>(r.end - r.begin) * static_cast<double>(shape.features + 1) * 8;
  } else if (!ec) {
    // Text: a dense CSV value of k characters and a separator becomes 8 bytes, a LIBSVM
    // "index:value" pair of about 12 characters 12 bytes of CSR (a 4-byte index and the
    // value): about one byte per byte of the file.
    n.shard = static_cast<double>(bytes) / std::max(ranks, 1);
  }
  if (shape.features >= 0) {
    const MemoryNeed f = fit_need(job, shape.features);
    n.work = f.work;
    n.root = f.root;
  }
  return n;
}

void admit_memory(const MemoryNeed& need, const char* what, const Communicator& comm) {
  const MemoryAvailable have = memory_available();
  std::ostringstream mine;
  mine.precision(17);
  mine << need.total(comm.is_root()) << ' ' << need.shard << ' ' << need.work + (comm.is_root() ? need.root : 0) << ' '
       << have.shared << ' ' << have.process << ' ' << Communicator::processor_name() << '\n'
       << have.shared_source;
  const auto all = comm.gather(mine.str());
  std::string err;
  if (comm.is_root()) {
    struct Host {
      double need = 0;
      std::int64_t have = -1;
      std::string source;
      int ranks = 0;
    };
    std::map<std::string, Host> hosts;
    for (std::size_t r = 0; r < all.size(); ++r) {
      std::istringstream in(all[r]);
      double total = 0, shard = 0, work = 0;
      std::int64_t shared = -1, process = -1;
      std::string host, source;
      in >> total >> shard >> work >> shared >> process >> host;
      in.ignore(1);
      std::getline(in, source);
      if (err.empty() && process >= 0 && total > static_cast<double>(process))
        err = "rank " + std::to_string(r) + " needs about " + gib(total) + " (shard " + gib(shard) +
              ", Fisher and work matrices " + gib(work) + "), " + gib(static_cast<double>(process)) +
              " available to the process (limit: ulimit -v, RLIMIT_AS)";
      Host& h = hosts[host];
      h.need += total;
      ++h.ranks;
      if (shared >= 0 && (h.have < 0 || shared < h.have)) h.have = shared, h.source = source;
    }
    for (const auto& [name, h] : hosts) {
      if (!err.empty()) break;
      if (h.have >= 0 && h.need > static_cast<double>(h.have))
        err = "the " + std::to_string(h.ranks) + " rank(s) on " + name + " need about " + gib(h.need) +
              " together (per rank: shard " + gib(need.shard) + ", Fisher accumulators and buffers " + gib(need.work) +
              "; rank 0 " + gib(need.root) + " more), " + gib(static_cast<double>(h.have)) + " available (limit: " +
              h.source + ")";
    }
    if (!err.empty())
      err = std::string("not enough memory ") + what + ": " + err +
            ". Remedies: run on more nodes with fewer ranks per node (more ranks shrink each shard, not the p x p "
            "Fisher every rank holds), fewer --threads (each thread keeps its own p x p accumulator up to 384 "
            "parameters), fewer columns, --no-inference (rank 0's extra matrices), --solver cg (the fit then "
            "forms no p x p matrix; with --no-inference none is formed); --fisher-sample does not reduce memory. "
            "'--memory-check off' skips this check";
  }
  comm.check(err.empty(), err);
}

}  // namespace natgrad
