#pragma once
/// \file hdf5.hpp
/// Writing HDF5 files (natgrad generate --format hdf5). Reading: read_hdf5 in reader.hpp.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>
#include <string>

namespace natgrad {

/// Local (one process, HDF5's serial driver). Streams a rows x cols float64 array into
/// the 2-D dataset \p dataset (contiguous, little-endian) of a new file \p path, written
/// under a temporary name and renamed into place. \p fill_rows is called with (begin,
/// end, buffer) for consecutive row ranges and must write (end - begin) * cols doubles.
/// Throws Error on failure, or when this build has no HDF5 (hdf5_available()).
void write_hdf5(
    const std::filesystem::path& path, const std::string& dataset, std::int64_t rows,
    std::int64_t cols,
    const std::function<void(std::int64_t, std::int64_t, std::span<double>)>& fill_rows);

}  // namespace natgrad
