// HDF5 (parallel): every rank opens the file through MPI-IO on the Communicator's
// MPI_Comm, checks the 2-D dataset's type and shape, then reads its rows by hyperslab,
// in blocks of about 4 MiB with collective transfers, and scatters the columns into
// x / y / weight / offset as the NPY reader does. Built only with NATGRAD_HDF5.
#include <hdf5.h>

#include <algorithm>
#include <cmath>
#include <new>
#include <string>
#include <vector>

#include "natgrad/core/error.hpp"
#include "natgrad/core/partition.hpp"
#include "natgrad/io/reader.hpp"
#include "io/reader_detail.hpp"

namespace natgrad {

namespace {

using namespace reader_detail;

/// An HDF5 identifier closed by \p close at scope exit (negative ids are not closed).
class Handle {
 public:
  Handle(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  ~Handle() {
    if (id_ >= 0) close_(id_);
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  hid_t get() const { return id_; }
  bool ok() const { return id_ >= 0; }

 private:
  hid_t id_;
  herr_t (*close_)(hid_t);
};

/// The names of the 2-D-or-not datasets at the file's root, for "no such dataset".
std::string root_datasets(hid_t file) {
  std::vector<std::string> names;
  H5Literate(
      file, H5_INDEX_NAME, H5_ITER_NATIVE, nullptr,
      [](hid_t g, const char* name, const H5L_info_t*, void* out) -> herr_t {
        H5O_info_t info;
        if (H5Oget_info_by_name(g, name, &info, H5P_DEFAULT) >= 0 && info.type == H5O_TYPE_DATASET)
          static_cast<std::vector<std::string>*>(out)->push_back(name);
        return 0;
      },
      &names);
  if (names.empty()) return "it has no dataset at its root";
  std::string s = "its datasets: ";
  for (std::size_t k = 0; k < names.size() && k < 20; ++k) s += (k ? ", " : "") + shown(names[k]);
  return s;
}

std::string type_text(hid_t type) {
  const H5T_class_t c = H5Tget_class(type);
  const char* name = c == H5T_INTEGER    ? "integer"
                     : c == H5T_FLOAT    ? "float"
                     : c == H5T_STRING   ? "string"
                     : c == H5T_COMPOUND ? "compound"
                                         : "other";
  return std::string(name) + " of " + std::to_string(H5Tget_size(type)) + " bytes";
}

}  // namespace

TableShape reader_detail::peek_hdf5(const ReadOptions& opts) {
  TableShape shape;
  try {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    {
      File f(opts.path);
      if (!f.ok()) return shape;
    }
    if (H5Fis_hdf5(opts.path.c_str()) <= 0) return shape;
    Handle file(H5Fopen(opts.path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);  // serial: this rank alone
    const std::string dataset = opts.dataset.empty() ? std::string("data") : opts.dataset;
    if (!file.ok() || H5Lexists(file.get(), dataset.c_str(), H5P_DEFAULT) <= 0) return shape;
    Handle dset(H5Dopen2(file.get(), dataset.c_str(), H5P_DEFAULT), H5Dclose);
    if (!dset.ok()) return shape;
    Handle space(H5Dget_space(dset.get()), H5Sclose);
    hsize_t dims[2] = {0, 0};
    if (H5Sget_simple_extent_ndims(space.get()) != 2) return shape;
    H5Sget_simple_extent_dims(space.get(), dims, nullptr);
    ColumnRoles roles;
    if (!resolve_columns(opts, {opts.path, static_cast<std::int64_t>(dims[1]), std::nullopt, "is an HDF5 dataset"},
                         roles)
             .empty())
      return shape;
    shape.rows = static_cast<std::int64_t>(dims[0]);
    shape.features = static_cast<std::int64_t>(roles.features.size()) + (opts.intercept ? 1 : 0);
  } catch (const std::exception&) {
  }
  return shape;
}

Shard read_hdf5(const ReadOptions& opts, const Communicator& comm) {
  const std::string& path = opts.path;
  const std::string dataset = opts.dataset.empty() ? std::string("data") : opts.dataset;
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);  // errors become messages, not stack dumps

  // Plain-file checks first: they give errno's reason (H5Fopen would only say "failed").
  std::string err;
  {
    File f(path);
    if (!f.ok()) err = path + ": cannot open: " + f.error();
  }
  comm.check(err.empty(), err);
  if (H5Fis_hdf5(path.c_str()) <= 0) err = path + ": not an HDF5 file (no HDF5 signature)";
  comm.check(err.empty(), err);

  // Collective open through MPI-IO on this communicator.
  Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  H5Pset_fapl_mpio(fapl.get(), comm.handle(), MPI_INFO_NULL);
  Handle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.get()), H5Fclose);
  comm.check(file.ok(), path + ": cannot open as HDF5 (MPI-IO)");

  const bool exists = H5Lexists(file.get(), dataset.c_str(), H5P_DEFAULT) > 0;
  Handle dset(exists ? H5Dopen2(file.get(), dataset.c_str(), H5P_DEFAULT) : -1, H5Dclose);
  if (!dset.ok())
    err = path + ": no dataset '" + shown(dataset) + "' (--dataset); " + root_datasets(file.get());
  comm.check(err.empty(), err);

  Handle type(H5Dget_type(dset.get()), H5Tclose);
  Handle space(H5Dget_space(dset.get()), H5Sclose);
  const std::string where = path + ": dataset '" + shown(dataset) + "'";
  hsize_t dims[2] = {0, 0};
  const int rank = H5Sget_simple_extent_ndims(space.get());
  if (H5Tget_class(type.get()) != H5T_FLOAT ||
      (H5Tget_size(type.get()) != 8 && H5Tget_size(type.get()) != 4))
    err = where + ": unsupported type (" + type_text(type.get()) + "); expected float64 or float32";
  else if (rank != 2)
    err = where + " is " + std::to_string(rank) + "-D, expected a 2-D dataset (rows, columns)";
  else
    H5Sget_simple_extent_dims(space.get(), dims, nullptr);
  ColumnRoles roles;
  if (err.empty())
    err = resolve_columns(opts,
                          {path, static_cast<std::int64_t>(dims[1]), std::nullopt,
                           "is an HDF5 dataset, whose columns have no names"},
                          roles);
  comm.check(err.empty(), err);

  const auto n_global = static_cast<std::int64_t>(dims[0]),
             cols = static_cast<std::int64_t>(dims[1]);
  const Range mine = partition(n_global, comm.rank(), comm.size());
  const auto p = static_cast<std::int64_t>(roles.features.size());
  const bool has_w = roles.weight >= 0, has_o = roles.offset >= 0;
  const int threads = std::max(opts.threads, 1);

  Shard shard;
  LocalError local;
  allocate_shard(shard, mine.size(), p, opts.intercept, has_w, has_o, local);

  // Blocks of rows: every rank makes the same number of (collective) H5Dread calls, the
  // ranks with fewer blocks reading empty selections at the end.
  const std::int64_t block =
      std::max<std::int64_t>(1, kChunkBytes / 8 / std::max<std::int64_t>(cols, 1));
  std::int64_t n_blocks[1] = {(mine.size() + block - 1) / block};
  comm.allreduce_max(n_blocks, 1);
  Handle dxpl(H5Pcreate(H5P_DATASET_XFER), H5Pclose);
  H5Pset_dxpl_mpio(dxpl.get(), H5FD_MPIO_COLLECTIVE);
  std::vector<double> buf;
  std::int64_t bad_row = -1;
  for (std::int64_t b = 0; b < n_blocks[0]; ++b) {
    const std::int64_t r0 = b * block;
    const std::int64_t n = local.any() || bad_row >= 0
                               ? 0
                               : std::max<std::int64_t>(0, std::min(block, mine.size() - r0));
    try {
      buf.resize(static_cast<std::size_t>(n * cols));
    } catch (const std::bad_alloc&) {
      if (!local.any()) local.what = "cannot allocate a read buffer";
    }
    const hsize_t start[2] = {static_cast<hsize_t>(mine.begin + r0), 0};
    const hsize_t count[2] = {static_cast<hsize_t>(buf.size() / std::max<std::size_t>(cols, 1)),
                              static_cast<hsize_t>(cols)};
    Handle fspace(H5Scopy(space.get()), H5Sclose);
    Handle mspace(H5Screate_simple(2, count, nullptr), H5Sclose);
    if (count[0] == 0 || count[1] == 0) {
      H5Sselect_none(fspace.get());
      H5Sselect_none(mspace.get());
    } else {
      H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, start, nullptr, count, nullptr);
    }
    // HDF5 converts float32 and big-endian data to native doubles.
    if (H5Dread(dset.get(), H5T_NATIVE_DOUBLE, mspace.get(), fspace.get(), dxpl.get(),
                buf.empty() ? nullptr : buf.data()) < 0 &&
        !local.any())
      local.what = "read error in dataset '" + shown(dataset) + "' (rows " +
                   std::to_string(start[0]) + " to " + std::to_string(start[0] + count[0]) + ")";
    if (local.any() || n == 0 || count[0] == 0) continue;
    std::int64_t first_bad = n;
#pragma omp parallel for num_threads(threads) schedule(static) reduction(min : first_bad)
    for (std::int64_t k = 0; k < n; ++k) {
      const double* src = buf.data() + k * cols;
      const auto i = static_cast<std::size_t>(r0 + k);
      bool ok = true;
      double* xr = shard.x.data() + (r0 + k) * p;
      for (std::int64_t j = 0; j < p; ++j) {
        xr[j] = src[roles.features[static_cast<std::size_t>(j)]];
        ok = ok && std::isfinite(xr[j]);
      }
      if (roles.label >= 0) {  // else y stays 0 (--label-column none)
        shard.y[i] = src[roles.label];
        ok = ok && std::isfinite(shard.y[i]);
      }
      if (has_w) {
        shard.weight[i] = src[roles.weight];
        ok = ok && std::isfinite(shard.weight[i]) && shard.weight[i] >= 0.0;
      }
      if (has_o) {
        shard.offset[i] = src[roles.offset];
        ok = ok && std::isfinite(shard.offset[i]);
      }
      if (!ok) first_bad = std::min(first_bad, k);
    }
    if (first_bad == n) continue;
    bad_row = mine.begin + r0 + first_bad;
    const double* src = buf.data() + first_bad * cols;
    local.what = first_bad_value(roles, cols, [&](std::int64_t c) { return src[c]; }, [&](std::int64_t c) {
      return "dataset '" + shown(dataset) + "' row " + std::to_string(bad_row) + ", column " + std::to_string(c) +
             " (0-based): ";
    });
  }
  buf = {};
  comm.check(!local.any(), located(path, local, 0));

  finish_shard(shard, mine.begin, mine.size(), n_global, p, std::move(roles.names), path);
  return shard;
}

}  // namespace natgrad
