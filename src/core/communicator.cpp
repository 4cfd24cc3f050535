#include "natgrad/core/communicator.hpp"

#include <algorithm>
#include <climits>
#include <cstdlib>

#include "natgrad/core/error.hpp"

namespace natgrad {

namespace {
// MPI counts are int: move large buffers in chunks.
constexpr std::size_t kChunk = std::size_t{1} << 30;

template <class T>
MPI_Datatype mpi_type();
template <>
MPI_Datatype mpi_type<double>() { return MPI_DOUBLE; }
template <>
MPI_Datatype mpi_type<std::int64_t>() { return MPI_INT64_T; }

template <class T>
void allreduce(MPI_Comm comm, T* buf, std::size_t n, MPI_Op op) {
  for (std::size_t off = 0; off < n; off += kChunk) {
    const int cnt = static_cast<int>(std::min(kChunk, n - off));
    MPI_Allreduce(MPI_IN_PLACE, buf + off, cnt, mpi_type<T>(), op, comm);
  }
}

template <class T>
void bcast(MPI_Comm comm, T* buf, std::size_t n, int root) {
  for (std::size_t off = 0; off < n; off += kChunk) {
    const int cnt = static_cast<int>(std::min(kChunk, n - off));
    MPI_Bcast(buf + off, cnt, mpi_type<T>(), root, comm);
  }
}
}  // namespace

Communicator::Communicator(MPI_Comm comm) : comm_(comm) {
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
}

Communicator Communicator::world() { return Communicator(MPI_COMM_WORLD); }

void Communicator::reduce_sum(double* buf, std::size_t n, int root) const {
  if (size_ == 1) return;
  for (std::size_t off = 0; off < n; off += kChunk) {
    const int cnt = static_cast<int>(std::min(kChunk, n - off));
    if (rank_ == root)
      MPI_Reduce(MPI_IN_PLACE, buf + off, cnt, MPI_DOUBLE, MPI_SUM, root, comm_);
    else
      MPI_Reduce(buf + off, nullptr, cnt, MPI_DOUBLE, MPI_SUM, root, comm_);
  }
}

void Communicator::allreduce_sum(double* buf, std::size_t n) const {
  if (size_ > 1) allreduce(comm_, buf, n, MPI_SUM);
}
void Communicator::allreduce_sum(std::int64_t* buf, std::size_t n) const {
  if (size_ > 1) allreduce(comm_, buf, n, MPI_SUM);
}
void Communicator::allreduce_max(std::int64_t* buf, std::size_t n) const {
  if (size_ > 1) allreduce(comm_, buf, n, MPI_MAX);
}
void Communicator::allreduce_min(std::int64_t* buf, std::size_t n) const {
  if (size_ > 1) allreduce(comm_, buf, n, MPI_MIN);
}

std::int64_t Communicator::exscan_sum(std::int64_t v) const {
  if (size_ == 1) return 0;
  std::int64_t r = 0;
  MPI_Exscan(&v, &r, 1, MPI_INT64_T, MPI_SUM, comm_);
  return rank_ == 0 ? 0 : r;  // rank 0's receive buffer is undefined by the standard
}

void Communicator::broadcast(double* buf, std::size_t n, int root) const {
  if (size_ > 1) bcast(comm_, buf, n, root);
}
void Communicator::broadcast(std::int64_t* buf, std::size_t n, int root) const {
  if (size_ > 1) bcast(comm_, buf, n, root);
}
void Communicator::broadcast(std::string& s, int root) const {
  if (size_ == 1) return;
  std::int64_t len = static_cast<std::int64_t>(s.size());
  broadcast(&len, 1, root);
  s.resize(static_cast<std::size_t>(len));
  for (std::size_t off = 0; off < s.size(); off += kChunk) {
    const int cnt = static_cast<int>(std::min(kChunk, s.size() - off));
    MPI_Bcast(s.data() + off, cnt, MPI_CHAR, root, comm_);
  }
}

std::vector<std::string> Communicator::gather(const std::string& s, int root) const {
  if (size_ == 1) return {s};
  int len = static_cast<int>(s.size());
  std::vector<int> lens(rank_ == root ? size_ : 0);
  MPI_Gather(&len, 1, MPI_INT, lens.data(), 1, MPI_INT, root, comm_);
  std::vector<int> displs;
  std::string all;
  if (rank_ == root) {
    displs.resize(size_);
    int total = 0;
    for (int r = 0; r < size_; ++r) {
      displs[r] = total;
      total += lens[r];
    }
    all.resize(static_cast<std::size_t>(total));
  }
  MPI_Gatherv(s.data(), len, MPI_CHAR, all.data(), lens.data(), displs.data(), MPI_CHAR, root,
              comm_);
  std::vector<std::string> out;
  if (rank_ == root)
    for (int r = 0; r < size_; ++r) out.push_back(all.substr(displs[r], lens[r]));
  return out;
}

void Communicator::barrier() const {
  if (size_ > 1) MPI_Barrier(comm_);
}

void Communicator::check(bool ok, const std::string& message) const {
  if (size_ == 1) {
    if (!ok) throw CollectiveError(message);
    return;
  }
  std::int64_t first_bad = ok ? INT_MAX : rank_;
  allreduce_min(&first_bad, 1);
  if (first_bad == INT_MAX) return;
  std::string msg = rank_ == first_bad ? message : std::string();
  broadcast(msg, static_cast<int>(first_bad));
  throw CollectiveError(msg);
}

void Communicator::abort(int code) const { MPI_Abort(comm_, code); std::abort(); }

std::string Communicator::processor_name() {
  char name[MPI_MAX_PROCESSOR_NAME];
  int len = 0;
  MPI_Get_processor_name(name, &len);
  return std::string(name, static_cast<std::size_t>(len));
}

}  // namespace natgrad
