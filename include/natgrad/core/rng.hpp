#pragma once
/// \file rng.hpp
/// Counter-based random numbers: every value is a pure function of (seed, stream,
/// index), so generated data do not depend on how rows are spread over ranks or
/// threads. Local, no MPI.
#include <cmath>
#include <cstdint>

namespace natgrad::rng {

/// SplitMix64 finaliser (Steele, Lea, Flood 2014): a bijective 64-bit mixer.
constexpr std::uint64_t mix64(std::uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/// 64 random bits for (seed, stream, i, j).
constexpr std::uint64_t bits(std::uint64_t seed, std::uint64_t stream, std::uint64_t i,
                             std::uint64_t j) {
  return mix64(mix64(mix64(mix64(seed) ^ stream) ^ i) ^ j);
}

/// Uniform in (0, 1), never 0 or 1.
inline double uniform(std::uint64_t seed, std::uint64_t stream, std::uint64_t i,
                      std::uint64_t j) {
  return (static_cast<double>(bits(seed, stream, i, j) >> 11) + 0.5) * 0x1.0p-53;
}

/// Standard normal (Box-Muller on two counter-derived uniforms).
inline double normal(std::uint64_t seed, std::uint64_t stream, std::uint64_t i,
                     std::uint64_t j) {
  const double u1 = uniform(seed, stream, i, 2 * j);
  const double u2 = uniform(seed, stream, i, 2 * j + 1);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

}  // namespace natgrad::rng
