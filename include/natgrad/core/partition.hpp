#pragma once
/// \file partition.hpp
/// Block partition of n items over \p size parts: part r gets [begin, end) with the
/// first n % size parts one item longer. Local computation, no MPI.
#include <cstdint>

namespace natgrad {

struct Range {
  std::int64_t begin = 0;
  std::int64_t end = 0;
  std::int64_t size() const { return end - begin; }
};

inline Range partition(std::int64_t n, int rank, int size) {
  const std::int64_t q = n / size, r = n % size;
  const std::int64_t b = rank * q + (rank < r ? rank : r);
  return {b, b + q + (rank < r ? 1 : 0)};
}

}  // namespace natgrad
