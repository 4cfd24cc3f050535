#pragma once
/// \file communicator.hpp
/// A thin, non-owning value type around an MPI communicator. Every natgrad function
/// that communicates takes one explicitly; there are no globals. With size() == 1
/// every collective is a no-op (single-node mode).
///
/// All member functions documented as *collective* must be called by every rank of
/// the communicator in the same order.
#include <mpi.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace natgrad {

class Communicator {
 public:
  /// Wraps (does not own or duplicate) \p comm.
  explicit Communicator(MPI_Comm comm);
  /// MPI_COMM_WORLD.
  static Communicator world();

  int rank() const { return rank_; }
  int size() const { return size_; }
  bool is_root() const { return rank_ == 0; }
  MPI_Comm handle() const { return comm_; }

  /// Collective. In-place element-wise sum of \p buf onto rank \p root; other ranks'
  /// buffers are left unspecified. Counts above INT_MAX are sent in chunks.
  void reduce_sum(double* buf, std::size_t n, int root = 0) const;
  /// Collective. In-place element-wise sum on every rank.
  void allreduce_sum(double* buf, std::size_t n) const;
  void allreduce_sum(std::int64_t* buf, std::size_t n) const;
  void allreduce_max(std::int64_t* buf, std::size_t n) const;
  void allreduce_min(std::int64_t* buf, std::size_t n) const;
  /// Collective. Exclusive prefix sum of \p v (0 on rank 0).
  std::int64_t exscan_sum(std::int64_t v) const;
  /// Collective. Broadcast from \p root.
  void broadcast(double* buf, std::size_t n, int root = 0) const;
  void broadcast(std::int64_t* buf, std::size_t n, int root = 0) const;
  void broadcast(std::string& s, int root = 0) const;
  /// Collective. Gathers one string per rank onto root (empty vector elsewhere).
  std::vector<std::string> gather(const std::string& s, int root = 0) const;
  void barrier() const;

  /// Collective error agreement: every rank passes whether it is healthy and, if
  /// not, its message. If any rank failed, every rank throws natgrad::Error with the
  /// message of the lowest failing rank. Use this at the end of each phase that can
  /// fail locally (reading a byte range, validating labels) so that all ranks stop
  /// together with one message instead of hanging in the next collective.
  void check(bool ok, const std::string& message) const;

  /// Terminates every rank (MPI_Abort). For failures outside a collective phase.
  [[noreturn]] void abort(int code) const;

  /// This rank's host name.
  static std::string processor_name();

 private:
  MPI_Comm comm_;
  int rank_ = 0;
  int size_ = 1;
};

}  // namespace natgrad
