// natgrad_bench: the measurement half of the benchmark suite (tests/bench/run.sh drives it).
//
//   natgrad_bench kernels   [--quick|--smoke] [--dims 64,256,...] [--threads T] [--csv F]
//                           [--isa avx512|avx2|generic|wide8] [--crossover]
//       The roofline (DGEMM of the linked BLAS on the Fisher's shape), natgrad's fused
//       Fisher pass, the loss-only pass, SYRK and the Cholesky, per d. Local, no MPI
//       traffic (runs as a singleton).
//   natgrad_bench iteration [--rows N | --rows-per-rank N] [--cols d] [--threads T] [--csv F]
//       Under mpirun: one natural-gradient iteration taken apart into its phases (Fisher
//       pass, Reduce + Bcast, the Allreduce alternative, damped Cholesky on root, a
//       loss-only line-search trial), each the max over ranks, median over repetitions.
//   natgrad_bench sparse-kernels [--rows N] [--cols d] [--nnz K] [--threads T] [--reps R]
//       The fused expected-Fisher pass on a CSR shard (K nonzeros per row, column 0 the
//       intercept, the others Zipf-like) against the dense pass on the same numbers
//       (densified), and the loss-only passes; prints the times and their ratios.
//   natgrad_bench fisher-vector [--rows N] [--cols p] [--nnz K] [--threads 1,2] [--reps R] [--csv F]
//       One CG iteration's product F v (FisherOperator::apply: u = X v, z = C u, X^T z) on
//       a gen:sparse-logit CSR shard, against a STREAM-like copy (and read) rate measured
//       in the same run at the same thread count, with the bytes per product counted two
//       ways (see cmd_fisher_vector); checked against a naive product.
//   natgrad_bench frame --data F.csv [--columns a,b,...] [--threads T] [--reps R]
//       Under mpirun: read_frame (io/frame.hpp) of the listed columns (default: every
//       column of the header), best and median wall time over R reads (max over ranks),
//       and the kinds and level counts found.
//   natgrad_bench read --data FILE [--threads T] [--reps R] [--no-intercept]
//       Under mpirun: load_shard (io/reader.hpp) of FILE as `natgrad fit` reads it (the
//       intercept's column included unless --no-intercept), R times; per read one line
//       "read R: WALL s wall, USER s user, SYS s sys, N rows x D cols" (wall: until the last
//       rank is done; user and system CPU seconds summed over the ranks). For
//       tests/bench/read/run.sh.
//   natgrad_bench project   --kernels F --iteration F [--bandwidth GBps] [--latency us] [--csv F]
//       Fits the cost model T(P) = N d(d+1) / (P R) + T_reduce(P) + d^3/3 / R_chol + ...
//       to the measurements and projects the time per iteration to 64 nodes.
//   natgrad_bench plot      --kernels F [--e2e F] [--scaling F] --out PREFIX
//       Renders PREFIX-kernels.png (rates vs d) and PREFIX-e2e.png (time to answer).
//
// Every CSV has a header line and one record per line; numbers are plain decimals.
#include <cblas.h>
#include <mpi.h>
#include <omp.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "natgrad/core/communicator.hpp"
#include "natgrad/core/cpu.hpp"
#include "natgrad/core/error.hpp"
#include "natgrad/core/glm.hpp"
#include "core/fisher_vector.hpp"
#include "core/kernels.hpp"
#include "core/simd_kernels.hpp"
#include "natgrad/core/cpu.hpp"
#include "natgrad/core/linalg.hpp"
#include "natgrad/core/memory.hpp"
#include "natgrad/plot/plot.hpp"
#include "natgrad/core/rng.hpp"
#include "natgrad/core/shard.hpp"
#include "natgrad/io/frame.hpp"
#include "natgrad/io/generator.hpp"
#include "natgrad/io/reader.hpp"

extern "C" void dpotrf_(const char* uplo, const int* n, double* a, const int* lda, int* info, std::size_t);

namespace {

using natgrad::Communicator;
using natgrad::Error;
using Clock = std::chrono::steady_clock;

double now() { return std::chrono::duration<double>(Clock::now().time_since_epoch()).count(); }

/// Seconds of CPU time this process has used (all threads). On a shared machine the
/// CPU time of a single-threaded run is its compute time, whatever else runs.
double cpu_now() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}
bool g_cpu_clock = false;
double clock_now() { return g_cpu_clock ? cpu_now() : now(); }

// ------------------------------------------------------------------------------------
// Arguments: --name value pairs and bare flags.
// ------------------------------------------------------------------------------------
struct Args {
  std::map<std::string, std::string> kv;
  bool has(const std::string& k) const { return kv.count(k) > 0; }
  std::string str(const std::string& k, const std::string& def = "") const {
    auto it = kv.find(k);
    return it == kv.end() ? def : it->second;
  }
  double num(const std::string& k, double def) const {
    auto it = kv.find(k);
    if (it == kv.end()) return def;
    char* end = nullptr;
    const double v = std::strtod(it->second.c_str(), &end);
    if (end == it->second.c_str() || *end != '\0') throw Error("--" + k + " '" + it->second + "' is not a number");
    return v;
  }
  std::vector<std::int64_t> ints(const std::string& k, const std::vector<std::int64_t>& def) const {
    if (!has(k)) return def;
    std::vector<std::int64_t> out;
    std::stringstream ss(str(k));
    std::string item;
    while (std::getline(ss, item, ','))
      if (!item.empty()) out.push_back(std::stoll(item));
    return out;
  }
};

Args parse_args(int argc, char** argv, int first) {
  Args a;
  for (int i = first; i < argc; ++i) {
    std::string s = argv[i];
    if (s.rfind("--", 0) != 0) throw Error("unexpected argument '" + s + "'");
    s = s.substr(2);
    const bool flag = s == "quick" || s == "smoke";
    if (flag || i + 1 >= argc) a.kv[s] = "1";
    else a.kv[s] = argv[++i];
  }
  return a;
}

// ------------------------------------------------------------------------------------
// Timing: one warm-up, then reps timed runs; best and median.
// ------------------------------------------------------------------------------------
struct Timing {
  double best = 0, median = 0;
  int reps = 0;
};

Timing time_it(int reps, const std::function<void()>& f) {
  f();  // warm-up: page faults, thread start-up, workspace sizing
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    const double t0 = clock_now();
    f();
    t.push_back(clock_now() - t0);
  }
  std::sort(t.begin(), t.end());
  return {t.front(), t[t.size() / 2], reps};
}

/// Times several kernels in interleaved rounds (f0, f1, ..., f0, f1, ...), after one
/// warm-up call of each, so that a slow spell of a shared machine hits all of them
/// alike and the ratios of their best times stay meaningful.
std::vector<Timing> time_rounds(int reps, const std::vector<std::function<void()>>& fs) {
  for (const auto& f : fs) f();
  std::vector<std::vector<double>> t(fs.size());
  for (int r = 0; r < reps; ++r)
    for (std::size_t i = 0; i < fs.size(); ++i) {
      const double t0 = clock_now();
      fs[i]();
      t[i].push_back(clock_now() - t0);
    }
  std::vector<Timing> out;
  for (auto& v : t) {
    std::sort(v.begin(), v.end());
    out.push_back({v.front(), v[v.size() / 2], reps});
  }
  return out;
}

/// A logistic-regression shard with n rows and d columns: x in [-1, 1], labels 0/1.
/// The values do not matter for the rates, only that eta stays moderate.
natgrad::Shard make_shard(std::int64_t n, std::int64_t d, int threads, std::uint64_t seed = 1) {
  natgrad::Shard s;
  s.n_rows = n;
  s.n_cols = d;
  s.n_global = n;
  s.x.resize(static_cast<std::size_t>(n * d));
  s.y.resize(static_cast<std::size_t>(n));
#pragma omp parallel for num_threads(threads) schedule(static)
  for (std::int64_t i = 0; i < n; ++i) {
    for (std::int64_t j = 0; j < d; ++j)
      s.x[static_cast<std::size_t>(i * d + j)] = 2 * natgrad::rng::uniform(seed, 1, static_cast<std::uint64_t>(i), static_cast<std::uint64_t>(j)) - 1;
    s.y[static_cast<std::size_t>(i)] = natgrad::rng::uniform(seed, 2, static_cast<std::uint64_t>(i), 0) < 0.5 ? 0.0 : 1.0;
  }
  return s;
}

std::vector<double> small_theta(std::int64_t d) {
  std::vector<double> t(static_cast<std::size_t>(d));
  for (std::int64_t j = 0; j < d; ++j) t[static_cast<std::size_t>(j)] = 0.5 * natgrad::rng::normal(7, 3, 0, static_cast<std::uint64_t>(j)) / std::sqrt(static_cast<double>(d));
  return t;
}

std::string fmt(double v, int prec = 6) {
  char b[64];
  std::snprintf(b, sizeof b, "%.*g", prec, v);
  return b;
}

// ------------------------------------------------------------------------------------
// kernels
// ------------------------------------------------------------------------------------
struct KernelRow {
  std::string kind;
  std::int64_t d = 0, rows = 0;
  int threads = 0;
  Timing t;
  double gflop = 0;   // per call
  double pct = NAN;   // of the roofline at this d
  double roof = NAN;  // the roofline at this d: the best DGEMM, GFLOP/s
};

/// Rows per d: about \p flop_target flops per Fisher pass, at most \p mem_bytes of data,
/// at least 4 d rows (a tall problem) and at least 4096 rows.
std::int64_t rows_for(std::int64_t d, double flop_target, double mem_bytes) {
  const double by_flops = flop_target / (static_cast<double>(d) * static_cast<double>(d + 1));
  const double by_mem = mem_bytes / (8.0 * static_cast<double>(d));
  std::int64_t n = static_cast<std::int64_t>(std::min(by_flops, by_mem));
  n = std::max<std::int64_t>({n, 4 * d, 4096});
  return (n + 255) / 256 * 256;
}

int cmd_kernels(const Args& a) {
  const bool smoke = a.has("smoke"), quick = a.has("quick") || smoke;
  const int threads = static_cast<int>(a.num("threads", omp_get_max_threads()));
  const std::vector<std::int64_t> dims =
      a.ints("dims", smoke ? std::vector<std::int64_t>{8, 48} : quick ? std::vector<std::int64_t>{64, 256, 1024}
                                                                       : std::vector<std::int64_t>{64, 256, 1024, 4096});
  const double flop_target = a.num("gflop", smoke ? 0.01 : quick ? 4.0 : 40.0) * 1e9;
  const double mem = a.num("mem-mib", smoke ? 16 : quick ? 256 : 1024) * 1048576.0;
  const int reps = static_cast<int>(a.num("reps", smoke ? 2 : quick ? 3 : 5));
  const std::string csv = a.str("csv", "");
  const std::int64_t block = static_cast<std::int64_t>(a.num("block-rows", 256));
  const std::string clock = a.str("clock", "wall");
  if (clock != "wall" && clock != "cpu") throw Error("--clock must be wall or cpu");
  if (clock == "cpu" && threads != 1) throw Error("--clock cpu measures single-threaded runs only (--threads 1)");
  g_cpu_clock = clock == "cpu";
  // --isa: natgrad's own kernels of one family (avx512, avx2, generic: the portable C++
  // and the BLAS; wide8: the AVX-512 set's 8-wide code emulated on AVX2), default the
  // best the CPU runs.
  const std::string isa = a.str("isa", "");
  if (!isa.empty()) {
    if (isa == "wide8") {
      if (natgrad::detail::wide8_on_avx2_set() == nullptr) throw Error("--isa wide8 needs AVX2");
      natgrad::detail::set_kernel_override(natgrad::detail::wide8_on_avx2_set());
    } else {
      natgrad::Isa cap = natgrad::Isa::generic;
      if (isa == "avx512") cap = natgrad::Isa::avx512;
      else if (isa == "avx2") cap = natgrad::Isa::avx2;
      else if (isa != "generic") throw Error("--isa must be avx512, avx2, generic or wide8");
      if (cap > natgrad::cpu_info().isa) throw Error("--isa " + isa + ": this CPU lacks it");
      natgrad::detail::set_kernel_isa(cap);
    }
  }
  const natgrad::detail::KernelSet* kset = natgrad::detail::active_kernel_set();

  natgrad::set_blas_threads(threads);
  // What ran: the BLAS core and the CPU (issue 15); the CSV carries them per record.
  const natgrad::BlasVerdict blas = natgrad::blas_check();
  std::cout << "natgrad_bench kernels: " << threads << " thread(s), " << clock << " clock; "
            << natgrad::blas_description() << ", core " << blas.core << "; CPU " << natgrad::cpu_info().model_name
            << " (" << natgrad::to_string(natgrad::cpu_info().isa) << "), natgrad kernels "
            << (kset ? kset->name : "generic") << "\n";
  if (blas.older) std::cout << "warning: " << blas.message << "\n";
  std::vector<KernelRow> rows;
  // --model gaussian: the same pass with an identity-link row evaluation (no exp or
  // log1p per row), which isolates what the logistic evaluation costs.
  const std::string model_name = a.str("model", "logistic");
  if (model_name != "logistic" && model_name != "gaussian") throw Error("--model must be logistic or gaussian");
  const natgrad::Glm model(model_name == "logistic" ? natgrad::Family::binomial : natgrad::Family::gaussian,
                           model_name == "logistic" ? natgrad::Link::logit : natgrad::Link::identity);
  for (std::int64_t d : dims) {
    const std::int64_t n = rows_for(d, flop_target, mem);
    const natgrad::Shard s = make_shard(n, d, threads);
    const int id = static_cast<int>(d), in = static_cast<int>(n);
    const double fisher_flop = static_cast<double>(n) * static_cast<double>(d) * static_cast<double>(d + 1);
    const double gemm_flop = 2.0 * static_cast<double>(n) * static_cast<double>(d) * static_cast<double>(d);
    std::vector<double> C(static_cast<std::size_t>(d * d));
    const int r = d >= 2048 ? std::max(2, reps - 2) : reps;

    // Roofline 1: one threaded DGEMM over all rows, C = X^T X (X row-major n x d is
    // column-major d x n, so C = A A^T with A = that d x n matrix).
    auto f_g1 = [&] {
      natgrad::set_blas_threads(threads);
      cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, id, id, in, 1.0, s.x.data(), id, s.x.data(), id, 0.0,
                  C.data(), id);
    };
    KernelRow g1{"dgemm", d, n, threads, {}, gemm_flop / 1e9};
    // Roofline 2: per-thread DGEMMs over row blocks into per-thread C (the layout of
    // the per-thread-accumulator path), single-threaded BLAS inside the region.
    std::vector<std::vector<double>> Ct(static_cast<std::size_t>(threads), std::vector<double>(C.size()));
    const std::int64_t gb = std::max<std::int64_t>(256, std::min<std::int64_t>(4096, (std::int64_t{1} << 21) / d));
    const std::int64_t nb = (n + gb - 1) / gb;
    auto f_g2 = [&] {
#pragma omp parallel num_threads(threads)
      {
        auto& c = Ct[static_cast<std::size_t>(omp_get_thread_num())];
        std::fill(c.begin(), c.end(), 0.0);
#pragma omp for schedule(static)
        for (std::int64_t b = 0; b < nb; ++b) {
          const std::int64_t i0 = b * gb, m = std::min(gb, n - i0);
          cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, id, id, static_cast<int>(m), 1.0, s.row(i0), id,
                      s.row(i0), id, 1.0, c.data(), id);
        }
      }
    };
    KernelRow g2{"dgemm-blocked", d, n, threads, {}, gemm_flop / 1e9};
    // SYRK of the raw data (no weights): what BLAS gives for the symmetric product.
    auto f_sy = [&] {
      natgrad::set_blas_threads(threads);
      cblas_dsyrk(CblasColMajor, CblasUpper, CblasNoTrans, id, in, 1.0, s.x.data(), id, 0.0, C.data(), id);
    };
    KernelRow sy{"dsyrk", d, n, threads, {}, fisher_flop / 1e9};
    // Optional: the triangle from GEMM tiles off the diagonal and SYRK on it (column
    // panels of width --tiles: C[0:j, j:j+nb] by one DGEMM, C[j:j+nb, j:j+nb] by SYRK),
    // the alternative to one SYRK that the issue asks to measure.
    KernelRow tl{"syrk-tiles", d, n, threads, {}, fisher_flop / 1e9};
    const auto tile = static_cast<std::int64_t>(a.num("tiles", 0));
    auto f_tl = [&] {
      natgrad::set_blas_threads(threads);
      for (std::int64_t j = 0; j < d; j += tile) {
        const int w = static_cast<int>(std::min(tile, d - j)), ij = static_cast<int>(j);
        if (j > 0)
          cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, ij, w, in, 1.0, s.x.data(), id, s.x.data() + j, id, 1.0,
                      C.data() + j * d, id);
        cblas_dsyrk(CblasColMajor, CblasUpper, CblasNoTrans, w, in, 1.0, s.x.data() + j, id, 1.0, C.data() + j * d + j,
                    id);
      }
    };
    // natgrad's fused pass: loss, gradient and expected Fisher of logistic regression.
    natgrad::Workspace ws;
    ws.prepare(threads, d, block, natgrad::FisherKind::expected);
    natgrad::PackedSums sums;
    const auto theta = small_theta(d);
    auto f_fi = [&] { natgrad::accumulate(s, model, theta, natgrad::FisherKind::expected, threads, ws, sums); };
    KernelRow fi{"fisher", d, n, threads, {}, fisher_flop / 1e9};
    // The same pass without natgrad's AVX2/FMA kernels, as on a CPU without them: BLAS
    // SYRK per block and the libm logistic evaluation. What the SIMD code buys.
    natgrad::Workspace ws_portable;
    natgrad::PackedSums sums_portable;
    auto f_fp = [&] {
      const natgrad::Isa was = natgrad::detail::set_kernel_isa(natgrad::Isa::generic);
      const natgrad::detail::KernelSet* was_override = natgrad::detail::set_kernel_override(nullptr);
      ws_portable.prepare(threads, d, block, natgrad::FisherKind::expected);
      natgrad::accumulate(s, model, theta, natgrad::FisherKind::expected, threads, ws_portable, sums_portable);
      natgrad::detail::set_kernel_override(was_override);
      natgrad::detail::set_kernel_isa(was);
    };
    KernelRow fp{"fisher-portable", d, n, threads, {}, fisher_flop / 1e9};
    // The crossover of the packed kernel (KernelSet::packed_max_p): the same pass with the
    // packed kernel at any d, and with the BLAS SYRK (and the SIMD row evaluation).
    natgrad::Workspace ws_packed, ws_blas;
    natgrad::PackedSums sums_other;
    auto forced = [&](std::int64_t limit, natgrad::Workspace& w) {
      return [&, limit] {
        const std::int64_t was = natgrad::detail::set_packed_max_p(limit);
        w.prepare(threads, d, block, natgrad::FisherKind::expected);
        natgrad::accumulate(s, model, theta, natgrad::FisherKind::expected, threads, w, sums_other);
        natgrad::detail::set_packed_max_p(was);
      };
    };
    KernelRow fk{"fisher-packed", d, n, threads, {}, fisher_flop / 1e9};
    // --fisher-precision float32: the same pass with the Fisher summed in float.
    natgrad::Workspace ws_f32;
    ws_f32.fisher_precision = natgrad::FisherPrecision::float32;
    natgrad::PackedSums sums_f32;
    auto f_32 = [&] {
      ws_f32.prepare(threads, d, block, natgrad::FisherKind::expected);
      natgrad::accumulate(s, model, theta, natgrad::FisherKind::expected, threads, ws_f32, sums_f32);
    };
    KernelRow f32{"fisher-f32", d, n, threads, {}, fisher_flop / 1e9};
    KernelRow fb{"fisher-blas", d, n, threads, {}, fisher_flop / 1e9};
    // The roofline, the BLAS SYRK and the fused pass, timed in interleaved rounds.
    std::vector<std::function<void()>> fs{f_g1, f_g2, f_sy, f_fi, f_fp, f_32};
    if (kset != nullptr && a.has("crossover")) {
      fs.push_back(forced(std::int64_t{1} << 40, ws_packed));
      fs.push_back(forced(0, ws_blas));
    }
    if (tile > 0) fs.push_back(f_tl);
    const std::vector<Timing> tr = time_rounds(r, fs);
    g1.t = tr[0];
    g2.t = tr[1];
    sy.t = tr[2];
    fi.t = tr[3];
    fp.t = tr[4];
    f32.t = tr[5];
    std::size_t next = 6;
    if (kset != nullptr && a.has("crossover")) {
      fk.t = tr[next++];
      fb.t = tr[next++];
    }
    if (tile > 0) tl.t = tr[next];
    // Loss-only pass (a line-search trial): 2 n d flops, memory bound.
    double lw[2];
    KernelRow lo{"loss", d, n, threads, time_it(reps, [&] { natgrad::accumulate_loss(s, model, theta, threads, ws, lw); }),
                 2.0 * static_cast<double>(n) * static_cast<double>(d) / 1e9};
    // Damped Cholesky on root: d^3/3 flops, on the Fisher just computed.
    natgrad::Normalized nz;
    natgrad::finalize(sums, nz);
    std::vector<double> A(nz.fisher.size());
    natgrad::set_blas_threads(threads);
    KernelRow ch{"potrf", d, d, threads, time_it(reps, [&] {
                   A = nz.fisher;
                   int info = 0;
                   dpotrf_("U", &id, A.data(), &id, &info, 1);
                 }), std::pow(static_cast<double>(d), 3) / 3e9};
    const double roof = std::max(g1.gflop / g1.t.best, g2.gflop / g2.t.best);
    for (auto* k : {&g1, &g2, &sy, &tl, &fi, &fp, &f32, &fk, &fb, &lo, &ch}) k->roof = roof;
    sy.pct = 100 * (sy.gflop / sy.t.best) / roof;
    fi.pct = 100 * (fi.gflop / fi.t.best) / roof;
    fp.pct = 100 * (fp.gflop / fp.t.best) / roof;
    if (tile > 0) tl.pct = 100 * (tl.gflop / tl.t.best) / roof;
    for (auto* k : {&fk, &fb, &f32})
      if (k->t.reps > 0) k->pct = 100 * (k->gflop / k->t.best) / roof;
    for (auto* k : {&g1, &g2, &sy, &tl, &fi, &fp, &f32, &fk, &fb, &lo, &ch}) {
      if (k->t.reps == 0) continue;
      rows.push_back(*k);
      std::printf("  d=%5lld rows=%8lld %-14s best %9.4f s  median %9.4f s  %8.2f GFLOP/s%s\n",
                  static_cast<long long>(d), static_cast<long long>(k->rows), k->kind.c_str(), k->t.best, k->t.median,
                  k->gflop / k->t.best, std::isnan(k->pct) ? "" : ("  (" + fmt(k->pct, 3) + "% of DGEMM)").c_str());
    }
    std::fflush(stdout);
  }
  if (!csv.empty()) {
    // Appends, so that runs at several thread counts share one file.
    const bool fresh = !std::ifstream(csv).good();
    std::ofstream o(csv, std::ios::app);
    if (!o) throw Error("cannot write " + csv);
    // best_dgemm_gflops: the reference of pct_of_dgemm (the faster of dgemm and
    // dgemm-blocked at this d); isa: natgrad's kernel family; blas_core: OpenBLAS's core
    // and blas_older 1 where that core is of an older family than the CPU's (the
    // reference is then not the machine's best DGEMM: docs/cluster.md).
    if (fresh)
      o << "kind,d,rows,threads,clock,reps,best_s,median_s,gflop,gflops,pct_of_dgemm,best_dgemm_gflops,isa,blas_core,"
           "blas_older\n";
    const std::string kernels = kset != nullptr ? kset->name : "generic";
    for (const auto& k : rows)
      o << k.kind << ',' << k.d << ',' << k.rows << ',' << k.threads << ',' << clock << ',' << k.t.reps << ','
        << fmt(k.t.best) << ','
        << fmt(k.t.median) << ',' << fmt(k.gflop) << ',' << fmt(k.gflop / k.t.best) << ','
        << (std::isnan(k.pct) ? "" : fmt(k.pct, 4)) << ',' << fmt(k.roof) << ','
        << (k.kind == "fisher-portable" ? std::string("generic") : kernels) << ',' << blas.core << ','
        << (blas.older ? 1 : 0) << '\n';
    std::cout << "wrote " << csv << "\n";
  }
  std::cout << "peak RSS " << fmt(static_cast<double>(natgrad::peak_rss_bytes()) / 1048576.0, 5) << " MiB\n";
  return 0;
}

// ------------------------------------------------------------------------------------
// sparse-kernels
// ------------------------------------------------------------------------------------
int cmd_sparse_kernels(const Args& a) {
  const int threads = static_cast<int>(a.num("threads", omp_get_max_threads()));
  const auto n = static_cast<std::int64_t>(a.num("rows", 20000));
  const auto d = static_cast<std::int64_t>(a.num("cols", 1000));
  const auto k = static_cast<std::int64_t>(a.num("nnz", 10));
  const int reps = static_cast<int>(a.num("reps", 5));
  natgrad::set_blas_threads(threads);
  natgrad::Shard sp;
  sp.n_rows = sp.n_global = n;
  sp.n_cols = d;
  sp.sparse = true;
  sp.csr.row_ptr.push_back(0);
  std::vector<std::int64_t> cols;
  for (std::int64_t i = 0; i < n; ++i) {
    cols.assign(1, 0);
    for (std::int64_t t = 1; t < k; ++t)
      cols.push_back(1 + static_cast<std::int64_t>(static_cast<double>(d - 1) *
                                                   std::pow(natgrad::rng::uniform(5, 1, i, t), 2.0)));
    std::sort(cols.begin(), cols.end());
    cols.erase(std::unique(cols.begin(), cols.end()), cols.end());
    for (std::int64_t j : cols) {
      sp.csr.index32.push_back(static_cast<std::uint32_t>(j));
      sp.csr.values.push_back(j == 0 ? 1.0 : natgrad::rng::normal(5, 2, i, j));
    }
    sp.csr.row_ptr.push_back(static_cast<std::int64_t>(sp.csr.values.size()));
    sp.y.push_back(natgrad::rng::uniform(5, 3, i, 0) < 0.5 ? 1.0 : 0.0);
  }
  const natgrad::Shard de = natgrad::densified(sp);
  const natgrad::LogisticModel model;
  const auto theta = small_theta(d);
  natgrad::Workspace ws_s, ws_d;
  natgrad::PackedSums out_s, out_d;
  const auto fk = natgrad::FisherKind::expected;
  auto f_s = [&] { natgrad::accumulate(sp, model, theta, fk, threads, ws_s, out_s); };
  auto f_d = [&] { natgrad::accumulate(de, model, theta, fk, threads, ws_d, out_d); };
  double lw[2];
  auto l_s = [&] { natgrad::accumulate_loss(sp, model, theta, threads, ws_s, lw); };
  auto l_d = [&] { natgrad::accumulate_loss(de, model, theta, threads, ws_d, lw); };
  const std::vector<Timing> t = time_rounds(reps, {f_s, f_d, l_s, l_d});
  double worst = 0, scale = 0;
  for (std::size_t i = 0; i < out_d.buf.size(); ++i) {
    worst = std::max(worst, std::abs(out_s.buf[i] - out_d.buf[i]));
    scale = std::max(scale, std::abs(out_d.buf[i]));
  }
  const double nnz = static_cast<double>(sp.csr.nnz());
  std::printf("natgrad_bench sparse-kernels: %lld rows x %lld cols, %.1f nonzeros per row, %d thread(s), %s "
              "Fisher strategy, %s clock\n",
              static_cast<long long>(n), static_cast<long long>(d), nnz / static_cast<double>(n), threads,
              ws_s.split_ ? "column-split" : "per-thread", g_cpu_clock ? "CPU" : "wall");
  std::printf("  Fisher pass  sparse best %9.4f s  dense best %9.4f s  dense/sparse %8.1fx\n", t[0].best, t[1].best,
              t[1].best / t[0].best);
  std::printf("  loss pass    sparse best %9.4f s  dense best %9.4f s  dense/sparse %8.1fx\n", t[2].best, t[3].best,
              t[3].best / t[2].best);
  std::printf("  max |sparse - dense| / max |dense| over the packed sums: %.2e\n", scale > 0 ? worst / scale : worst);
  return 0;
}

// ------------------------------------------------------------------------------------
// fisher-vector: the CG product against a memory-bandwidth roofline
// ------------------------------------------------------------------------------------
/// STREAM-like rates at \p threads threads over arrays of \p n doubles (each far larger
/// than the last-level cache): copy b = a (STREAM counts 16 bytes per element) and a
/// read-only sum (8 bytes per element). Best of \p reps, after a warm-up.
struct StreamRates {
  double copy = 0, read = 0;  // bytes per second
};
StreamRates stream_rates(std::int64_t n, int threads, int reps) {
  std::vector<double> a(static_cast<std::size_t>(n)), b(static_cast<std::size_t>(n));
#pragma omp parallel for num_threads(threads) schedule(static)
  for (std::int64_t i = 0; i < n; ++i) {
    a[static_cast<std::size_t>(i)] = 1.0 + static_cast<double>(i % 7);
    b[static_cast<std::size_t>(i)] = 0.0;
  }
  double sink = 0;
  auto copy = [&] {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (std::int64_t i = 0; i < n; ++i) b[static_cast<std::size_t>(i)] = a[static_cast<std::size_t>(i)];
  };
  auto read = [&] {  // four independent sums: the add latency does not bound the rate
    double s = 0;
#pragma omp parallel for num_threads(threads) schedule(static) reduction(+ : s)
    for (std::int64_t i = 0; i < n / 4; ++i) {
      const double* q = a.data() + 4 * i;
      s += (q[0] + q[1]) + (q[2] + q[3]);
    }
    sink += s;
  };
  const std::vector<Timing> t = time_rounds(reps, {copy, read});
  if (sink == 42.5) std::printf(" ");  // keep the sums alive
  return {16.0 * static_cast<double>(n) / t[0].best, 8.0 * static_cast<double>(n / 4 * 4) / t[1].best};
}

int cmd_fisher_vector(const Args& a) {
  const auto n = static_cast<std::int64_t>(a.num("rows", 200000));
  const auto d = static_cast<std::int64_t>(a.num("cols", 1000000));
  const auto k = static_cast<std::int64_t>(a.num("nnz", 40));
  const int reps = static_cast<int>(a.num("reps", 10));
  const auto threads_list = a.ints("threads", {1, 2});
  const std::string csv = a.str("csv", "");
  int tmax = 1;
  for (auto t : threads_list) tmax = std::max(tmax, static_cast<int>(t));
  const natgrad::GeneratorSpec spec = natgrad::parse_generator_spec(
      "gen:sparse-logit:rows=" + std::to_string(n) + ",cols=" + std::to_string(d) + ",nnz=" + std::to_string(k));
  const natgrad::Shard s = natgrad::generate_rows(spec, 0, n, tmax);
  const natgrad::LogisticModel model;
  const double nnz = static_cast<double>(s.csr.nnz());
  const double ib = s.csr.wide ? 8.0 : 4.0;
  // theta: the generating coefficients' scale, so that the curvatures are those of a fit
  // in progress; v: a CG direction-like vector.
  std::vector<double> theta(static_cast<std::size_t>(d)), v(static_cast<std::size_t>(d)),
      out(static_cast<std::size_t>(d)), ref(static_cast<std::size_t>(d), 0.0);
  for (std::int64_t j = 0; j < d; ++j) {
    theta[static_cast<std::size_t>(j)] = 0.3 * natgrad::rng::normal(7, 3, 0, static_cast<std::uint64_t>(j));
    v[static_cast<std::size_t>(j)] = natgrad::rng::normal(7, 4, 0, static_cast<std::uint64_t>(j));
  }
  // The naive product: sum_i mu_i (1 - mu_i) x_i (x_i . v), one thread, row by row.
  {
    const auto* rp = s.csr.row_ptr.data();
    const double* val = s.csr.values.data();
    for (std::int64_t i = 0; i < n; ++i) {
      double eta = 0, u = 0;
      for (std::int64_t q = rp[i]; q < rp[i + 1]; ++q) {
        eta += val[q] * theta[static_cast<std::size_t>(s.csr.index(q))];
        u += val[q] * v[static_cast<std::size_t>(s.csr.index(q))];
      }
      const double mu = 1 / (1 + std::exp(-eta));
      const double z = mu * (1 - mu) * u;
      for (std::int64_t q = rp[i]; q < rp[i + 1]; ++q) ref[static_cast<std::size_t>(s.csr.index(q))] += z * val[q];
    }
  }
  // Bytes per product, two counts:
  //  access: what the kernel loads and stores, as the issue counts it: values and indices
  //    twice (u = X_i v, then out += z x_i), per nonzero v[j] read and out[j] read and
  //    written (random accesses), row pointers and the per-row curvature once; with T > 1
  //    the T partial sums written and read back into out.
  //  compulsory: what must cross the memory bus at least: the matrix once (a row's
  //    entries are still in L1 for the second pass), the row pointers and curvatures,
  //    v read and out read and written once each (24 p), the partial sums as above.
  const double p = static_cast<double>(d), rows = static_cast<double>(n);
  std::printf("natgrad_bench fisher-vector: %lld rows x %lld cols (gen:sparse-logit), %.1f nonzeros per row, "
              "%s-bit indices, CSR %.1f MiB, vectors %.1f MiB each, %s clock\n",
              static_cast<long long>(n), static_cast<long long>(d), nnz / rows, s.csr.wide ? "64" : "32",
              static_cast<double>(s.csr.bytes()) / 1048576.0, 8 * p / 1048576.0, g_cpu_clock ? "CPU" : "wall");
  std::printf("  threads  copy GB/s  read GB/s  product ms  ns/nnz  access B/nnz  access GB/s  %%copy  "
              "compulsory B/nnz  compulsory GB/s  %%copy  max rel err\n");
  std::ofstream o;
  if (!csv.empty()) {
    const bool fresh = !std::ifstream(csv).good();
    o.open(csv, std::ios::app);
    if (!o) throw Error("cannot write " + csv);
    if (fresh)
      o << "rows,cols,nnz,threads,reps,copy_gbps,read_gbps,product_best_s,product_median_s,ns_per_nnz,access_bytes,"
           "access_gbps,access_pct_copy,compulsory_bytes,compulsory_gbps,compulsory_pct_copy,max_rel_err\n";
  }
  // STREAM arrays: 4x the CSR bytes or 64 Mi doubles, whichever is larger (far beyond L3).
  const std::int64_t sn = std::max<std::int64_t>(std::int64_t{1} << 23, static_cast<std::int64_t>(s.csr.bytes() / 2));
  for (const auto tl : threads_list) {
    const int T = static_cast<int>(tl);
    const StreamRates st = stream_rates(sn, T, reps);
    natgrad::FisherOperator op;
    op.prepare(s, model, theta, natgrad::FisherKind::expected, natgrad::FisherSample{}, T);
    const Timing t = time_it(reps, [&] { op.apply(s, v, out, T); });
    double worst = 0, scale = 0;
    for (std::int64_t j = 0; j < d; ++j) {
      worst = std::max(worst, std::abs(out[static_cast<std::size_t>(j)] - ref[static_cast<std::size_t>(j)]));
      scale = std::max(scale, std::abs(ref[static_cast<std::size_t>(j)]));
    }
    const double partial = T > 1 ? 16.0 * p * T : 0.0;  // T partial sums written, read back
    const double access = nnz * (2 * (8 + ib) + 24) + rows * 16 + partial;
    const double compulsory = nnz * (8 + ib) + rows * 16 + 24 * p + partial;
    const double ag = access / t.best / 1e9, cg = compulsory / t.best / 1e9;
    const double err = scale > 0 ? worst / scale : worst;
    std::printf("  %7d  %9.2f  %9.2f  %10.3f  %6.2f  %12.1f  %11.2f  %5.1f  %16.1f  %15.2f  %5.1f  %.1e\n", T,
                st.copy / 1e9, st.read / 1e9, 1e3 * t.best, 1e9 * t.best / nnz, access / nnz, ag, 100 * ag * 1e9 / st.copy,
                compulsory / nnz, cg, 100 * cg * 1e9 / st.copy, err);
    std::fflush(stdout);
    if (o)
      o << n << ',' << d << ',' << fmt(nnz / rows, 4) << ',' << T << ',' << reps << ',' << fmt(st.copy / 1e9) << ','
        << fmt(st.read / 1e9) << ',' << fmt(t.best) << ',' << fmt(t.median) << ',' << fmt(1e9 * t.best / nnz) << ','
        << fmt(access) << ',' << fmt(ag) << ',' << fmt(100 * ag * 1e9 / st.copy, 4) << ',' << fmt(compulsory) << ','
        << fmt(cg) << ',' << fmt(100 * cg * 1e9 / st.copy, 4) << ',' << fmt(err, 3) << '\n';
  }
  if (!csv.empty()) std::cout << "wrote " << csv << "\n";
  std::cout << "peak RSS " << fmt(static_cast<double>(natgrad::peak_rss_bytes()) / 1048576.0, 5) << " MiB\n";
  return 0;
}

// ------------------------------------------------------------------------------------
// iteration (MPI)
// ------------------------------------------------------------------------------------
int cmd_iteration(const Args& a, const Communicator& comm) {
  const int threads = static_cast<int>(a.num("threads", omp_get_max_threads()));
  const std::int64_t d = static_cast<std::int64_t>(a.num("cols", 256));
  std::int64_t n_global = static_cast<std::int64_t>(a.num("rows", 262144));
  if (a.has("rows-per-rank")) n_global = static_cast<std::int64_t>(a.num("rows-per-rank", 0)) * comm.size();
  const int reps = static_cast<int>(a.num("reps", 5));
  const std::string csv = a.str("csv", "");
  const std::string tag = a.str("tag", "");
  natgrad::set_blas_threads(threads);
  const std::int64_t b = n_global * comm.rank() / comm.size(), e = n_global * (comm.rank() + 1) / comm.size();
  const natgrad::Shard s = make_shard(e - b, d, threads, 11 + static_cast<std::uint64_t>(comm.rank()));
  const natgrad::LogisticModel model;
  const auto theta = small_theta(d);
  natgrad::Workspace ws;
  ws.prepare(threads, d, 256, natgrad::FisherKind::expected);
  natgrad::PackedSums sums;
  std::vector<double> buf, ctl(static_cast<std::size_t>(d + 6)), x(static_cast<std::size_t>(d)), factor;
  natgrad::Normalized nz;

  // Each phase is timed between barriers; the phase time is the slowest rank's.
  const std::vector<std::string> phases = {"fisher", "reduce+bcast", "allreduce", "solve", "trial"};
  std::vector<std::vector<double>> t(phases.size());
  auto timed = [&](std::size_t k, const std::function<void()>& f) {
    comm.barrier();
    const double t0 = now();
    f();
    double dt = now() - t0;
    MPI_Allreduce(MPI_IN_PLACE, &dt, 1, MPI_DOUBLE, MPI_MAX, comm.handle());
    t[k].push_back(dt);
  };
  for (int r = 0; r <= reps; ++r) {
    timed(0, [&] { natgrad::accumulate(s, model, theta, natgrad::FisherKind::expected, threads, ws, sums); });
    buf = sums.buf;
    timed(1, [&] {
      comm.reduce_sum(sums.buf.data(), sums.buf.size());
      comm.broadcast(ctl.data(), ctl.size());
    });
    timed(2, [&] { comm.allreduce_sum(buf.data(), buf.size()); });
    timed(3, [&] {
      if (comm.is_root()) {
        natgrad::finalize(sums, nz);
        natgrad::damped_cholesky_solve(nz.fisher, d, nz.grad, 0.0, x, factor);
      }
    });
    timed(4, [&] {
      double lw[2];
      natgrad::accumulate_loss(s, model, theta, threads, ws, lw);
      comm.reduce_sum(lw, 2);
      double decision = 1;
      comm.broadcast(&decision, 1);
    });
    if (r == 0)
      for (auto& v : t) v.clear();  // warm-up
  }
  const double rss = static_cast<double>(natgrad::peak_rss_bytes());
  double rss_max = rss;
  MPI_Allreduce(MPI_IN_PLACE, &rss_max, 1, MPI_DOUBLE, MPI_MAX, comm.handle());
  if (comm.is_root()) {
    const bool fresh = csv.empty() ? false : !std::ifstream(csv).good();
    std::ofstream o;
    if (!csv.empty()) {
      o.open(csv, std::ios::app);
      if (!o) throw Error("cannot write " + csv);
      if (fresh) o << "tag,ranks,threads,d,rows_global,rows_per_rank,phase,median_s,best_s,gflops_per_rank\n";
    }
    std::printf("natgrad_bench iteration: %d rank(s) x %d thread(s), d=%lld, %lld rows (%lld per rank), peak RSS %.1f MiB/rank\n",
                comm.size(), threads, static_cast<long long>(d), static_cast<long long>(n_global),
                static_cast<long long>(e - b), rss_max / 1048576.0);
    for (std::size_t k = 0; k < phases.size(); ++k) {
      auto v = t[k];
      std::sort(v.begin(), v.end());
      const double med = v[v.size() / 2], best = v.front();
      const double rate = k == 0 ? static_cast<double>(e - b) * static_cast<double>(d) * static_cast<double>(d + 1) / med / 1e9 : NAN;
      std::printf("  %-13s median %10.6f s  best %10.6f s%s\n", phases[k].c_str(), med, best,
                  k == 0 ? ("  (" + fmt(rate, 4) + " GFLOP/s per rank)").c_str() : "");
      if (o.is_open())
        o << tag << ',' << comm.size() << ',' << threads << ',' << d << ',' << n_global << ',' << (e - b) << ','
          << phases[k] << ',' << fmt(med) << ',' << fmt(best) << ',' << (k == 0 ? fmt(rate) : "") << '\n';
    }
  }
  return 0;
}

// ------------------------------------------------------------------------------------
// CSV reading (for project / plot)
// ------------------------------------------------------------------------------------
struct Table {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  int col(const std::string& name) const {
    for (std::size_t i = 0; i < header.size(); ++i)
      if (header[i] == name) return static_cast<int>(i);
    throw Error("CSV has no column '" + name + "'");
  }
};

Table read_csv(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error("cannot read " + path);
  Table t;
  std::string line;
  auto split = [](const std::string& l) {
    std::vector<std::string> f;
    std::stringstream ss(l);
    std::string x;
    while (std::getline(ss, x, ',')) f.push_back(x);
    if (!l.empty() && l.back() == ',') f.emplace_back();
    return f;
  };
  if (!std::getline(in, line)) throw Error(path + ": empty");
  t.header = split(line);
  while (std::getline(in, line))
    if (!line.empty()) {
      auto f = split(line);
      if (f.size() != t.header.size())
        throw Error(path + ": a record has " + std::to_string(f.size()) + " fields, the header " +
                    std::to_string(t.header.size()));
      t.rows.push_back(f);
    }
  return t;
}

double to_d(const std::string& s) { return s.empty() ? NAN : std::strtod(s.c_str(), nullptr); }

// ------------------------------------------------------------------------------------
// project: the cost model
// ------------------------------------------------------------------------------------
int cmd_project(const Args& a) {
  const Table k = read_csv(a.str("kernels"));
  const double bw = a.num("bandwidth", 12.5) * 1e9;  // bytes/s per link
  const double lat = a.num("latency", 2.0) * 1e-6;
  const std::string csv = a.str("csv", "");
  // Per-core rates from the kernels table: the single-thread CPU-clock rows where
  // present (robust on a shared machine), else the wall-clock rows divided by threads.
  // A node is `cores` such cores at these rates (the strong-scaling runs check how
  // far that holds on this machine).
  struct Rate { double fisher = 0, chol_flops = 0, loss_rows = 0; int prio = -1; };
  std::map<std::int64_t, Rate> rate;
  int max_threads = 1;
  for (const auto& r : k.rows) max_threads = std::max(max_threads, static_cast<int>(to_d(r[k.col("threads")])));
  for (const auto& r : k.rows) {
    const std::string kind = r[k.col("kind")], clk = r[k.col("clock")];
    const auto d = static_cast<std::int64_t>(to_d(r[k.col("d")]));
    const double th = to_d(r[k.col("threads")]);
    const double gf = to_d(r[k.col("gflops")]), best = to_d(r[k.col("best_s")]), rows = to_d(r[k.col("rows")]);
    const int prio = clk == "cpu" && th == 1 ? 1 : 0;
    auto& R = rate[d];
    if (prio < R.prio) continue;
    if (prio > R.prio) R = Rate{0, 0, 0, prio};
    if (kind == "fisher") R.fisher = gf * 1e9 / th;
    if (kind == "potrf") R.chol_flops = gf * 1e9 / th;
    if (kind == "loss") R.loss_rows = rows / best / th;
  }
  const int cores = static_cast<int>(a.num("cores-per-node", max_threads));
  std::vector<std::pair<std::int64_t, double>> cases;
  for (std::int64_t d : a.ints("dims", {256, 4096})) {
    if (!(rate.count(d) && rate[d].fisher > 0)) continue;
    for (double n : {1e6, 1e7, 1e8}) cases.emplace_back(d, n);
  }
  std::ofstream o;
  if (!csv.empty()) {
    o.open(csv);
    o << "d,rows,nodes,cores_per_node,fisher_s,reduce_s,solve_s,trial_s,iteration_s,speedup,efficiency,comm_fraction\n";
  }
  std::printf("cost model: node = %d cores at the measured per-core rates; network %.1f GB/s, latency %.1f us\n", cores,
              bw / 1e9, lat * 1e6);
  std::printf("  T(P) = N d(d+1)/(P c R_fisher) + T_reduce(P) + (d^3/3)/(c R_chol) + N/(P c R_loss)\n");
  std::printf("  T_reduce(P) = 2 (P-1)/P * 8 (d(d+1)/2 + d + 3) / BW + 2 log2(P) lat   (reduce-scatter + gather)\n");
  std::printf("              + log2(P) (lat + 8 d / BW) + 2 log2(P) lat                (step broadcast, trial scalars)\n");
  for (auto [d, n] : cases) {
    const Rate& R = rate[d];
    const double c = cores;
    const double bytes = 8.0 * (static_cast<double>(d) * static_cast<double>(d + 1) / 2 + static_cast<double>(d) + 3);
    const double tc = R.chol_flops > 0 ? std::pow(static_cast<double>(d), 3) / 3 / (c * R.chol_flops) : 0.0;
    double t1 = 0;
    std::printf("  d=%lld N=%.0e (per-core Fisher %.2f GFLOP/s)\n", static_cast<long long>(d), n, R.fisher / 1e9);
    for (int P : {1, 2, 4, 8, 16, 32, 64}) {
      const double tf = n * static_cast<double>(d) * static_cast<double>(d + 1) / (P * c * R.fisher);
      const double lg = std::log2(static_cast<double>(P));
      const double tr = P == 1 ? 0.0
                               : 2.0 * (P - 1) / P * bytes / bw + 2 * lg * lat + lg * (lat + 8.0 * static_cast<double>(d) / bw) +
                                     2 * lg * lat;
      const double tt = R.loss_rows > 0 ? n / (P * c * R.loss_rows) : 0.0;
      const double it = tf + tr + tc + tt;
      if (P == 1) t1 = it;
      std::printf("    P=%3d  fisher %9.4f s  reduce %9.6f s  solve %8.4f s  trial %8.4f s  iteration %9.4f s  "
                  "speedup %6.2f  efficiency %5.1f%%  comm %5.2f%%\n",
                  P, tf, tr, tc, tt, it, t1 / it, 100 * t1 / it / P, 100 * tr / it);
      if (o.is_open())
        o << d << ',' << fmt(n) << ',' << P << ',' << cores << ',' << fmt(tf) << ',' << fmt(tr) << ',' << fmt(tc) << ','
          << fmt(tt) << ',' << fmt(it) << ',' << fmt(t1 / it) << ',' << fmt(t1 / it / P) << ',' << fmt(tr / it) << '\n';
    }
  }
  if (o.is_open()) std::cout << "wrote " << csv << "\n";
  return 0;
}

// ------------------------------------------------------------------------------------
// plot
// ------------------------------------------------------------------------------------
/// Writes the series of \p by (in key order) as one line plot at \p path.
void write_series_plot(const std::map<std::string, natgrad::Series>& by, const natgrad::PlotOptions& po,
                       const std::string& path) {
  std::vector<natgrad::Series> series;
  for (const auto& [_, s] : by) series.push_back(s);
  natgrad::write_line_plot(path, series, po);
  std::cout << "wrote " << path << "\n";
}

int cmd_plot(const Args& a) {
  const std::string prefix = a.str("out", "bench");
  if (a.has("kernels")) {
    const Table k = read_csv(a.str("kernels"));
    std::map<std::string, natgrad::Series> by;
    for (const auto& r : k.rows) {
      const std::string kind = r[k.col("kind")];
      if (kind == "loss" || kind == "potrf") continue;
      const std::string th = r[k.col("threads")], clk = r[k.col("clock")];
      const double x = std::log2(to_d(r[k.col("d")])), y = to_d(r[k.col("gflops")]);
      if (kind == "dgemm" || kind == "dgemm-blocked") {  // the roofline: the better of the two
        auto& s = by["dgemm" + th + clk];
        s.label = "DGEMM roofline, " + th + (th == "1" ? " thread" : " threads") + (clk == "cpu" ? " (CPU time)" : "");
        if (!s.x.empty() && s.x.back() == x) {
          s.y.back() = std::max(s.y.back(), y);
        } else {
          s.x.push_back(x);
          s.y.push_back(y);
        }
        continue;
      }
      auto& s = by[kind + th + clk];
      s.label = (kind == "fisher"            ? "natgrad Fisher pass"
                 : kind == "fisher-portable" ? "natgrad Fisher pass without AVX2 kernels"
                 : kind == "dsyrk"           ? "DSYRK (no weights)"
                                             : "GEMM tiles + SYRK diagonal") +
                std::string(", ") + th + (th == "1" ? " thread" : " threads") + (clk == "cpu" ? " (CPU time)" : "");
      s.x.push_back(std::log2(to_d(r[k.col("d")])));
      s.y.push_back(to_d(r[k.col("gflops")]));
    }
    natgrad::PlotOptions po;
    po.title = "Fisher pass vs the DGEMM roofline";
    po.x_label = "log2 d";
    po.y_label = "GFLOP/s (Fisher: N d(d+1)/s, DGEMM: 2 m n k/s)";
    write_series_plot(by, po, prefix + "-kernels.png");
  }
  if (a.has("e2e")) {
    // One flat series per solver over the rank counts measured for natgrad.
    const Table e = read_csv(a.str("e2e"));
    std::map<std::string, natgrad::Series> by;
    double xmax = 1;
    for (const auto& r : e.rows) xmax = std::max(xmax, to_d(r[e.col("ranks")]));
    for (const auto& r : e.rows) {
      const std::string solver = r[e.col("solver")];
      const double secs = to_d(r[e.col("wall_s")]), ranks = to_d(r[e.col("ranks")]);
      const double rows = to_d(r[e.col("rows")]), full = to_d(r[e.col("rows_full")]);
      if (!(secs > 0)) continue;
      auto& s = by[solver];
      s.label = solver + (rows < full ? " (subset, x" + fmt(full / rows, 3) + " projected)" : "");
      const double v = secs * (rows < full ? full / rows : 1.0);
      if (solver.rfind("natgrad", 0) == 0) {
        s.x.push_back(ranks);
        s.y.push_back(v);
      } else {
        s.x = {1, xmax};
        s.y = {v, v};
      }
    }
    natgrad::PlotOptions po;
    po.title = "Time to the maximum-likelihood answer, same data, same machine";
    po.x_label = "MPI ranks (natgrad); peers run as one process";
    po.y_label = "wall seconds (log)";
    po.log_y = true;
    write_series_plot(by, po, prefix + "-e2e.png");
  }
  return 0;
}

int cmd_frame(const Args& a, const Communicator& comm) {
  natgrad::ReadOptions o;
  o.path = a.str("data");
  if (o.path.empty()) throw Error("frame: --data FILE.csv is required");
  o.threads = static_cast<int>(a.num("threads", 1));
  natgrad::FrameRequest req;
  if (a.has("columns")) {
    std::stringstream ss(a.str("columns"));
    std::string item;
    while (std::getline(ss, item, ',')) req.columns.push_back(item);
  } else {
    req.columns = natgrad::frame_header(o);
  }
  natgrad::Frame f;
  const Timing t = time_it(static_cast<int>(a.num("reps", 5)), [&] {
    comm.barrier();  // the time until the last rank is done
    f = natgrad::read_frame(o, req, comm);
    comm.barrier();
  });
  if (comm.is_root()) {
    std::cout << "read_frame " << o.path << ": " << f.n_global << " rows, " << comm.size() << " ranks x "
              << o.threads << " threads: best " << t.best << " s, median " << t.median << " s\n";
    for (const natgrad::FrameColumn& c : f.columns)
      std::cout << "  " << c.name << ": "
                << (c.kind == natgrad::FrameColumn::Kind::factor ? std::to_string(c.levels.size()) + " levels"
                                                                  : std::string("numeric"))
                << "\n";
  }
  return 0;
}

/// CPU seconds of this process so far: user and system (getrusage).
std::pair<double, double> cpu_user_sys() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return {static_cast<double>(u.ru_utime.tv_sec) + 1e-6 * static_cast<double>(u.ru_utime.tv_usec),
          static_cast<double>(u.ru_stime.tv_sec) + 1e-6 * static_cast<double>(u.ru_stime.tv_usec)};
}

int cmd_read(const Args& a, const Communicator& comm) {
  natgrad::ReadOptions o;
  o.path = a.str("data");
  if (o.path.empty()) throw Error("read: --data FILE is required");
  o.threads = static_cast<int>(a.num("threads", 1));
  o.intercept = !a.has("no-intercept");
  const int reps = static_cast<int>(a.num("reps", 3));
  for (int r = 1; r <= reps; ++r) {
    std::int64_t rows = 0, cols = 0;
    comm.barrier();
    const auto [u0, s0] = cpu_user_sys();
    const double t0 = now();
    {
      const natgrad::Shard s = natgrad::load_shard(o, comm);
      comm.barrier();  // the time until the last rank is done
      rows = s.n_global;
      cols = s.n_cols;
    }
    const double wall = now() - t0;
    const auto [u1, s1] = cpu_user_sys();
    double cpu[2] = {u1 - u0, s1 - s0};
    comm.allreduce_sum(cpu, 2);
    if (comm.is_root())
      std::printf("read %d: %.3f s wall, %.2f s user, %.2f s sys, %lld rows x %lld cols\n", r, wall, cpu[0], cpu[1],
                  static_cast<long long>(rows), static_cast<long long>(cols));
  }
  return 0;
}

int dispatch(int argc, char** argv, const Communicator& comm) {
  const std::string cmd = argc > 1 ? argv[1] : "";
  const Args a = parse_args(argc, argv, 2);
  if (cmd == "kernels") return comm.is_root() ? cmd_kernels(a) : 0;
  if (cmd == "iteration") return cmd_iteration(a, comm);
  if (cmd == "sparse-kernels") return comm.is_root() ? cmd_sparse_kernels(a) : 0;
  if (cmd == "fisher-vector") return comm.is_root() ? cmd_fisher_vector(a) : 0;
  if (cmd == "project") return comm.is_root() ? cmd_project(a) : 0;
  if (cmd == "frame") return cmd_frame(a, comm);
  if (cmd == "read") return cmd_read(a, comm);
  if (cmd == "plot") return comm.is_root() ? cmd_plot(a) : 0;
  if (comm.is_root())
    std::cerr << "usage: natgrad_bench kernels|sparse-kernels|fisher-vector|iteration|frame|read|project|plot [options] (see tests/bench/natgrad_bench.cpp)\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  int rc = 0;
  try {
    rc = dispatch(argc, argv, Communicator::world());
  } catch (const std::exception& e) {
    std::cerr << "natgrad_bench: error: " << e.what() << std::endl;
    rc = 1;
  }
  MPI_Finalize();
  return rc;
}
