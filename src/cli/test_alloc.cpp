// A test hook of the natgrad executable: a failed allocation on demand, so that the
// reliability tests can make any large allocation of any rank fail and check that the job
// still ends with one message on rank 0 and a non-zero exit on every rank
// (tests/reliability/resources.sh; docs/cluster.md, "Memory admission").
//
//   NATGRAD_TEST_ALLOC_FAIL=RANK:BYTES:N
//
// On MPI rank RANK (OMPI_COMM_WORLD_RANK, PMIX_RANK or PMI_RANK; 0 without a launcher) the
// N-th request to operator new of at least BYTES bytes throws std::bad_alloc, once; the
// process says so on stderr ("natgrad-test: ..."). Unset (the normal case), operator new
// costs one comparison more than the library's. The over-aligned operator new (the
// kernels' cache-line aligned buffers) is counted too. Allocations by MPI, BLAS and C
// code (malloc) are not.
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <unistd.h>

namespace {

std::size_t g_min_bytes = static_cast<std::size_t>(-1);  // never, unless the hook is set
std::atomic<long> g_countdown{0};

int launcher_rank() {
  for (const char* name : {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"})
    if (const char* v = std::getenv(name)) return std::atoi(v);
  return 0;
}

struct Setup {
  Setup() {
    const char* spec = std::getenv("NATGRAD_TEST_ALLOC_FAIL");
    if (spec == nullptr) return;
    int rank = -1;
    unsigned long long bytes = 0;
    long n = 0;
    if (std::sscanf(spec, "%d:%llu:%ld", &rank, &bytes, &n) != 3 || n < 1 || rank != launcher_rank()) return;
    g_countdown = n;
    g_min_bytes = static_cast<std::size_t>(bytes);
  }
} g_setup;

/// Whether this request is the one to fail (says so on stderr).
bool fail_now(std::size_t n) {
  if (n >= g_min_bytes && g_countdown.fetch_sub(1) == 1) {
    char line[160];
    const int len = std::snprintf(line, sizeof line, "natgrad-test: failing an allocation of %zu bytes (rank %d)\n", n,
                                  launcher_rank());
    if (len > 0) (void)!write(2, line, static_cast<std::size_t>(len));
    return true;
  }
  return false;
}

void* allocate(std::size_t n) {
  if (fail_now(n)) throw std::bad_alloc();
  void* p = std::malloc(n == 0 ? 1 : n);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

/// The over-aligned form (the kernels' cache-line aligned buffers: Workspace::CacheAligned).
void* allocate(std::size_t n, std::align_val_t al) {
  if (fail_now(n)) throw std::bad_alloc();
  const std::size_t a = static_cast<std::size_t>(al);
  void* p = std::aligned_alloc(a, (n + a - 1) / a * a + (n == 0 ? a : 0));
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

}  // namespace

void* operator new(std::size_t n) { return allocate(n); }
void* operator new[](std::size_t n) { return allocate(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void* operator new(std::size_t n, std::align_val_t al) { return allocate(n, al); }
void* operator new[](std::size_t n, std::align_val_t al) { return allocate(n, al); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
