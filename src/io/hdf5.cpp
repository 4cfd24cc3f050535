// natgrad::write_hdf5 (include/natgrad/io/hdf5.hpp); without parallel HDF5 in the build, a
// stub that says so.
#include "natgrad/io/hdf5.hpp"
#include "natgrad/io/output.hpp"

#include <unistd.h>

#include <algorithm>
#include <system_error>
#include <vector>

#include "natgrad/core/error.hpp"

#ifdef NATGRAD_HAVE_HDF5
#include <hdf5.h>
#endif

namespace natgrad {

#ifdef NATGRAD_HAVE_HDF5

void write_hdf5(
    const std::filesystem::path& path, const std::string& dataset, std::int64_t rows,
    std::int64_t cols,
    const std::function<void(std::int64_t, std::int64_t, std::span<double>)>& fill_rows) {
  namespace fs = std::filesystem;
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  AtomicFile out(path);  // removes the temporary unless committed
  const fs::path& tmp = out.temp_path();
  hid_t file = -1, space = -1, dset = -1, lcpl = -1;
  auto close_all = [&] {
    if (dset >= 0) H5Dclose(dset);
    if (space >= 0) H5Sclose(space);
    if (lcpl >= 0) H5Pclose(lcpl);
    if (file >= 0) H5Fclose(file);
    dset = space = lcpl = file = -1;
  };
  std::string err;
  file = H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  const hsize_t dims[2] = {static_cast<hsize_t>(rows), static_cast<hsize_t>(cols)};
  if (file < 0) err = path.string() + ": cannot create the HDF5 file";
  if (err.empty()) {
    space = H5Screate_simple(2, dims, nullptr);
    lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    dset = H5Dcreate2(file, dataset.c_str(), H5T_IEEE_F64LE, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    if (dset < 0) err = path.string() + ": cannot create dataset '" + dataset + "'";
  }
  const std::int64_t block =
      std::max<std::int64_t>(1, (std::int64_t{1} << 22) / 8 / std::max<std::int64_t>(cols, 1));
  std::vector<double> buf;
  for (std::int64_t b = 0; err.empty() && b < rows; b += block) {
    const std::int64_t e = std::min(rows, b + block);
    buf.resize(static_cast<std::size_t>((e - b) * cols));
    fill_rows(b, e, std::span<double>(buf.data(), buf.size()));
    const hsize_t start[2] = {static_cast<hsize_t>(b), 0},
                  count[2] = {static_cast<hsize_t>(e - b), dims[1]};
    const hid_t fspace = H5Scopy(space);
    H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, nullptr, count, nullptr);
    const hid_t mspace = H5Screate_simple(2, count, nullptr);
    if (H5Dwrite(dset, H5T_NATIVE_DOUBLE, mspace, fspace, H5P_DEFAULT, buf.data()) < 0)
      err = path.string() + ": HDF5 write failed";
    H5Sclose(mspace);
    H5Sclose(fspace);
  }
  close_all();
  if (!err.empty()) throw Error(err);
  out.commit();
}

#else

void write_hdf5(const std::filesystem::path& path, const std::string&, std::int64_t, std::int64_t,
                const std::function<void(std::int64_t, std::int64_t, std::span<double>)>&) {
  throw Error(path.string() +
              ": HDF5 output is not available in this build (built without parallel HDF5)");
}

#endif

}  // namespace natgrad
