#pragma once
/// \file npy.hpp
/// NumPy .npy files (format 1.0/2.0, little-endian float64, C order). Local.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>

namespace natgrad {

/// Streams a rows x cols float64 C-order array into \p path (atomically): \p fill_rows
/// is called with (begin, end, buffer) for consecutive row ranges and must write
/// (end - begin) * cols doubles.
void write_npy(const std::filesystem::path& path, std::int64_t rows, std::int64_t cols,
               const std::function<void(std::int64_t, std::int64_t, std::span<double>)>& fill_rows);

}  // namespace natgrad
