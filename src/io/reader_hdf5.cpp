// HDF5 (parallel): every rank opens the file through MPI-IO on the Communicator's
// MPI_Comm and checks the 2-D dataset's type and shape. A contiguous dataset of IEEE
// floats is then read as NPY data is (read_table: its file offset from H5Dget_offset,
// threads, pread straight into X); any other (chunked, compressed, other float types)
// by hyperslab through the library, in blocks of about 4 MiB with collective transfers,
// the columns scattered into x / y / weight / offset by the threads. Built only with
// NATGRAD_HDF5.
#include <hdf5.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <cmath>
#include <new>
#include <utility>
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

/// Reads elements [begin, begin + n) of the 1-D dataset \p d into \p out as \p mem_type
/// (independent transfer; HDF5 converts the stored type). False on a read error.
bool read_1d(hid_t d, hid_t mem_type, std::int64_t begin, std::int64_t n, void* out) {
  Handle fspace(H5Dget_space(d), H5Sclose);
  const hsize_t start[1] = {static_cast<hsize_t>(begin)}, count[1] = {static_cast<hsize_t>(n)};
  Handle mspace(H5Screate_simple(1, count, nullptr), H5Sclose);
  if (n == 0) {
    H5Sselect_none(fspace.get());
    H5Sselect_none(mspace.get());
  } else {
    H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, start, nullptr, count, nullptr);
  }
  return H5Dread(d, mem_type, mspace.get(), fspace.get(), H5P_DEFAULT, out) >= 0;
}

/// The length of a 1-D dataset, or -1 if \p d is not 1-D.
std::int64_t length_1d(hid_t d) {
  Handle space(H5Dget_space(d), H5Sclose);
  if (H5Sget_simple_extent_ndims(space.get()) != 1) return -1;
  hsize_t n = 0;
  H5Sget_simple_extent_dims(space.get(), &n, nullptr);
  return static_cast<std::int64_t>(n);
}

/// A CSR matrix stored as a group (data, indices, indptr; a `shape` attribute), as
/// scipy + h5py and anndata write it. Labels from a 1-D dataset (--label-dataset).
Shard read_hdf5_csr(const ReadOptions& opts, const Communicator& comm, hid_t file, const std::string& group) {
  const std::string& path = opts.path;
  const std::string where = path + ": group '" + shown(group) + "'";
  std::string err;
  if (!trim(opts.weight_column).empty() || !trim(opts.offset_column).empty() || !trim(opts.columns).empty() ||
      (!is_none(opts.label_column) && trim(opts.label_column) != "0"))
    err = where + " is a CSR matrix: --label-column, --weight-column, --offset-column and --columns do not apply "
                  "(the labels come from --label-dataset; every column is a feature)";
  comm.check(err.empty(), err);
  Handle g(H5Gopen2(file, group.c_str(), H5P_DEFAULT), H5Gclose);
  const char* parts[3] = {"data", "indices", "indptr"};
  for (const char* part : parts)
    if (err.empty() && H5Lexists(g.get(), part, H5P_DEFAULT) <= 0)
      err = where + " is not a CSR matrix: it has no '" + part +
            "' dataset (expected data, indices and indptr, as scipy + h5py or anndata write a CSR matrix)";
  comm.check(err.empty(), err);
  Handle data(H5Dopen2(g.get(), "data", H5P_DEFAULT), H5Dclose), indices(H5Dopen2(g.get(), "indices", H5P_DEFAULT), H5Dclose),
      indptr(H5Dopen2(g.get(), "indptr", H5P_DEFAULT), H5Dclose);
  const std::int64_t n_ptr = length_1d(indptr.get()), n_data = length_1d(data.get()), n_idx = length_1d(indices.get());
  if (n_ptr < 1 || n_data < 0 || n_idx != n_data)
    err = where + ": indptr, data and indices must be 1-D, data and indices of one length (" + std::to_string(n_data) +
          " and " + std::to_string(n_idx) + ")";
  // shape: an attribute of two integers (rows, columns), when present.
  std::int64_t shape[2] = {-1, -1};
  if (err.empty() && H5Aexists(g.get(), "shape") > 0) {
    Handle a(H5Aopen(g.get(), "shape", H5P_DEFAULT), H5Aclose);
    Handle as(H5Aget_space(a.get()), H5Sclose);
    if (H5Sget_simple_extent_npoints(as.get()) != 2 || H5Aread(a.get(), H5T_NATIVE_INT64, shape) < 0)
      err = where + ": the 'shape' attribute is not two integers (rows, columns)";
    else if (shape[0] != n_ptr - 1)
      err = where + ": indptr has " + std::to_string(n_ptr) + " entries but shape says " + std::to_string(shape[0]) +
            " rows (a CSC matrix? write the CSR form, .tocsr())";
  }
  if (err.empty() && opts.n_features > 0 && shape[1] > opts.n_features)
    err = where + ": shape says " + std::to_string(shape[1]) + " columns, above --n-features " +
          std::to_string(opts.n_features);
  comm.check(err.empty(), err);

  const std::int64_t n_global = n_ptr - 1;
  const Range mine = partition(n_global, comm.rank(), comm.size());
  const std::int64_t n = mine.size();
  const std::int64_t known_cols = opts.n_features > 0 ? opts.n_features : shape[1];
  LocalError local;
  Shard shard;
  SparseRows& c = shard.csr;
  std::int64_t max_index = -1;
  try {
    c.row_ptr.resize(static_cast<std::size_t>(n) + 1);
    if (!read_1d(indptr.get(), H5T_NATIVE_INT64, mine.begin, n + 1, c.row_ptr.data()))
      local.what = "read error in '" + shown(group) + "/indptr'";
    const std::int64_t p0 = c.row_ptr[0];
    for (std::int64_t i = 0; i <= n && !local.any(); ++i) {
      c.row_ptr[static_cast<std::size_t>(i)] -= p0;
      if (c.row_ptr[static_cast<std::size_t>(i)] < (i ? c.row_ptr[static_cast<std::size_t>(i) - 1] : 0) ||
          p0 + c.row_ptr[static_cast<std::size_t>(i)] > n_data)
        local.what = "'" + shown(group) + "/indptr' entry " + std::to_string(mine.begin + i) +
                     " is out of order or beyond the data";
    }
    const std::int64_t nnz = local.any() ? 0 : c.row_ptr.back();
    const auto room = static_cast<std::size_t>(nnz + (opts.intercept ? n : 0));
    // The index width: from the column count when known, else read as 64-bit and narrowed.
    c.wide = known_cols > 0 ? SparseRows::needs_wide(known_cols) : true;
    c.values.reserve(room);
    c.values.resize(static_cast<std::size_t>(nnz));
    if (c.wide) {
      c.index64.reserve(room);
      c.index64.resize(static_cast<std::size_t>(nnz));
    } else {
      c.index32.reserve(room);
      c.index32.resize(static_cast<std::size_t>(nnz));
    }
    if (!local.any() &&
        (!read_1d(data.get(), H5T_NATIVE_DOUBLE, p0, nnz, c.values.data()) ||
         !read_1d(indices.get(), c.wide ? H5T_NATIVE_INT64 : H5T_NATIVE_UINT32, p0, nnz,
                  c.wide ? static_cast<void*>(c.index64.data()) : static_cast<void*>(c.index32.data()))))
      local.what = "read error in '" + shown(group) + "' (data or indices)";
    // Rows: indices sorted (scipy may leave them unsorted), distinct, in range; values finite.
    for (std::int64_t i = 0; i < n && !local.any(); ++i) {
      const std::int64_t b = c.row_ptr[static_cast<std::size_t>(i)], e = c.row_ptr[static_cast<std::size_t>(i) + 1];
      bool sorted = true;
      for (std::int64_t k = b + 1; k < e; ++k) sorted = sorted && c.index(k) > c.index(k - 1);
      if (!sorted) {
        std::vector<std::pair<std::int64_t, double>> row;
        for (std::int64_t k = b; k < e; ++k) row.emplace_back(c.index(k), c.values[static_cast<std::size_t>(k)]);
        std::sort(row.begin(), row.end());
        for (std::int64_t k = b; k < e; ++k) {
          const auto& [j, v] = row[static_cast<std::size_t>(k - b)];
          if (c.wide) c.index64[static_cast<std::size_t>(k)] = j;
          else c.index32[static_cast<std::size_t>(k)] = static_cast<std::uint32_t>(j);
          c.values[static_cast<std::size_t>(k)] = v;
        }
      }
      for (std::int64_t k = b; k < e && !local.any(); ++k) {
        const std::int64_t j = c.index(k);
        const std::string at = "row " + std::to_string(mine.begin + i) + " (0-based): ";
        if (j < 0 || (known_cols > 0 && j >= known_cols))
          local.what = at + "column index " + std::to_string(j) + " is outside 0.." +
                       (known_cols > 0 ? std::to_string(known_cols - 1) : std::string("")) +
                       (opts.n_features > 0 ? " (--n-features)" : " (the 'shape' attribute)");
        else if (k > b && j == c.index(k - 1))
          local.what = at + "column index " + std::to_string(j) + " appears twice";
        else if (!std::isfinite(c.values[static_cast<std::size_t>(k)]))
          local.what = at + "value " + number_text(c.values[static_cast<std::size_t>(k)]) + " is not finite";
        max_index = std::max(max_index, j);
      }
    }
    // Labels.
    shard.y.assign(static_cast<std::size_t>(n), 0.0);
  } catch (const std::bad_alloc&) {
    local.what = "out of memory reading " + std::to_string(n) + " rows";
  }
  comm.check(!local.any(), where + ": " + local.what);

  if (!is_none(opts.label_column)) {
    std::string name = opts.label_dataset;
    if (name.empty()) name = H5Lexists(g.get(), "y", H5P_DEFAULT) > 0 ? group + "/y" : "y";
    const bool exists = H5Lexists(file, name.c_str(), H5P_DEFAULT) > 0;
    Handle yd(exists ? H5Dopen2(file, name.c_str(), H5P_DEFAULT) : -1, H5Dclose);
    if (!yd.ok())
      err = path + ": no label dataset '" + shown(name) + "' (--label-dataset; default 'y' in the group '" +
            shown(group) + "', else at the root; predict without labels: --label-column none)";
    else if (length_1d(yd.get()) != n_global)
      err = path + ": label dataset '" + shown(name) + "' has " + std::to_string(length_1d(yd.get())) +
            " entries (1-D), the matrix " + std::to_string(n_global) + " rows";
    comm.check(err.empty(), err);
    if (!read_1d(yd.get(), H5T_NATIVE_DOUBLE, mine.begin, n, shard.y.data()))
      local.what = "read error in label dataset '" + shown(name) + "'";
    for (std::int64_t i = 0; i < n && !local.any(); ++i)
      if (!std::isfinite(shard.y[static_cast<std::size_t>(i)]))
        local.what = "label dataset '" + shown(name) + "' row " + std::to_string(mine.begin + i) +
                     " (0-based): value " + number_text(shard.y[static_cast<std::size_t>(i)]) + " is not finite";
    comm.check(!local.any(), path + ": " + local.what);
  }

  std::int64_t cols = known_cols;
  if (cols <= 0) {
    std::int64_t top[1] = {max_index};
    comm.allreduce_max(top, 1);
    cols = top[0] + 1;
    set_index_width(c, cols);  // read as 64-bit: narrowed when it can be
  }
  shard.sparse = true;
  finish_shard(shard, mine.begin, n, n_global, cols, x_names(cols), path);
  return shard;
}

/// Chunk cache per dataset for the library path (read_hdf5_rows).
constexpr std::size_t kChunkCacheBytes = std::size_t{32} << 20;

/// Reverses the bytes of each of the \p n values of \p item (8 or 4) bytes at \p p.
void swap_values(char* p, std::int64_t n, std::int64_t item) {
  for (std::int64_t k = 0; k < n; ++k) std::reverse(p + k * item, p + (k + 1) * item);
}

/// True, with \p raw filled in, when the 2-D dataset \p d (rows x cols of \p type) is stored
/// as one contiguous row-major run of IEEE float64 or float32 values (either byte order) in
/// \p f itself, all of it within the file: not chunked, compact, external or unallocated.
bool raw_table(hid_t d, hid_t type, std::int64_t rows, std::int64_t cols, const File& f, RawTable& raw) {
  if (!f.ok()) return false;
  Handle dcpl(H5Dget_create_plist(d), H5Pclose);
  if (!dcpl.ok() || H5Pget_layout(dcpl.get()) != H5D_CONTIGUOUS || H5Pget_external_count(dcpl.get()) != 0)
    return false;
  if (H5Tequal(type, H5T_IEEE_F64LE) > 0 || H5Tequal(type, H5T_IEEE_F64BE) > 0)
    raw.item = 8;
  else if (H5Tequal(type, H5T_IEEE_F32LE) > 0 || H5Tequal(type, H5T_IEEE_F32BE) > 0)
    raw.item = 4;
  else
    return false;
  raw.swap = (H5Tequal(type, H5T_IEEE_F64BE) > 0 || H5Tequal(type, H5T_IEEE_F32BE) > 0) ==
             (std::endian::native == std::endian::little);
  const haddr_t at = H5Dget_offset(d);
  if (at == HADDR_UNDEF || rows < 0 || cols < 0) return false;
  raw.offset = static_cast<std::int64_t>(at);
  raw.cols = cols;
  const double bytes = static_cast<double>(rows) * static_cast<double>(cols) * static_cast<double>(raw.item);
  return bytes < 9e18 && static_cast<double>(H5Dget_storage_size(d)) >= bytes &&
         static_cast<double>(raw.offset) + bytes <= static_cast<double>(f.size());
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

Shard reader_detail::read_hdf5_rows(const ReadOptions& opts, const Communicator& comm, bool with_intercept) {
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
  H5O_info_t info;
  if (exists && H5Oget_info_by_name(file.get(), dataset.c_str(), &info, H5P_DEFAULT) >= 0 &&
      info.type == H5O_TYPE_GROUP)
    return read_hdf5_csr(opts, comm, file.get(), dataset);
  // A chunk cache that holds the chunks a 4 MiB block of rows spans, however they are
  // shaped (HDF5's default is 1 MiB: a block would decompress its chunks again and again).
  Handle dapl(H5Pcreate(H5P_DATASET_ACCESS), H5Pclose);
  H5Pset_chunk_cache(dapl.get(), 12421, kChunkCacheBytes, 1.0);
  Handle dset(exists ? H5Dopen2(file.get(), dataset.c_str(), dapl.get()) : -1, H5Dclose);
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
  const bool intercept = with_intercept && opts.intercept;
  const std::int64_t ic = intercept ? 1 : 0, d = p + ic;
  const auto at_value = [&dataset](std::int64_t row, std::int64_t c) {
    return "dataset '" + shown(dataset) + "' row " + std::to_string(row) + ", column " + std::to_string(c) +
           " (0-based): ";
  };

  Shard shard;
  LocalError local;
  // A contiguous dataset of IEEE floats is a row-major table at a file offset: read it as
  // NPY data is read (read_table: threads, pread, straight into X), when every rank finds
  // it so and the library reads this rank's first row to the same bits.
  RawTable raw;
  File posix(path);
  std::int64_t not_raw[1] = {raw_table(dset.get(), type.get(), n_global, cols, posix, raw) ? 0 : 1};
  if (not_raw[0] == 0 && mine.size() > 0 && cols > 0) {
    std::vector<double> lib(static_cast<std::size_t>(cols)), own(static_cast<std::size_t>(cols));
    std::string row(static_cast<std::size_t>(cols * raw.item), '\0');
    Handle fspace(H5Scopy(space.get()), H5Sclose);
    const hsize_t start[2] = {static_cast<hsize_t>(mine.begin), 0}, count[2] = {1, static_cast<hsize_t>(cols)};
    Handle mspace(H5Screate_simple(2, count, nullptr), H5Sclose);
    H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, start, nullptr, count, nullptr);
    if (H5Dread(dset.get(), H5T_NATIVE_DOUBLE, mspace.get(), fspace.get(), H5P_DEFAULT, lib.data()) < 0 ||
        !posix.read_at(row.data(), raw.offset + mine.begin * cols * raw.item, cols * raw.item).empty()) {
      not_raw[0] = 1;
    } else {
      if (raw.swap) swap_values(row.data(), cols, raw.item);
      for (std::int64_t c = 0; c < cols; ++c) {
        if (raw.item == 8) {
          std::memcpy(&own[static_cast<std::size_t>(c)], row.data() + c * 8, 8);
        } else {
          float v;
          std::memcpy(&v, row.data() + c * 4, 4);
          own[static_cast<std::size_t>(c)] = static_cast<double>(v);
        }
      }
      if (std::memcmp(lib.data(), own.data(), static_cast<std::size_t>(cols) * 8) != 0) not_raw[0] = 1;
    }
  }
  comm.allreduce_max(not_raw, 1);
  if (not_raw[0] == 0) {
    read_table(posix, raw, roles, mine, intercept, threads, shard, local, at_value);
    comm.check(!local.any(), located(path, local, 0));
    if (intercept) roles.names.insert(roles.names.begin(), "(Intercept)");
    finish_shard(shard, mine.begin, mine.size(), n_global, d, std::move(roles.names), path);
    return shard;
  }

  // Chunked, compressed or otherwise stored: through the library, which decompresses and
  // converts. Blocks of rows: every rank makes the same number of (collective) H5Dread
  // calls, the ranks with fewer blocks reading empty selections at the end.
  allocate_shard(shard, mine.size(), d, has_w, has_o, threads, local);
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
      double* xr = shard.x.data() + (r0 + k) * d;
      if (intercept) xr[0] = 1.0;
      for (std::int64_t j = 0; j < p; ++j) {
        xr[ic + j] = src[roles.features[static_cast<std::size_t>(j)]];
        ok = ok && std::isfinite(xr[ic + j]);
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
    local.what = first_bad_value(roles, cols, [&](std::int64_t c) { return src[c]; },
                                 [&](std::int64_t c) { return at_value(bad_row, c); });
  }
  buf = {};
  comm.check(!local.any(), located(path, local, 0));

  if (intercept) roles.names.insert(roles.names.begin(), "(Intercept)");
  finish_shard(shard, mine.begin, mine.size(), n_global, d, std::move(roles.names), path);
  return shard;
}

Shard read_hdf5(const ReadOptions& opts, const Communicator& comm) {
  return reader_detail::read_hdf5_rows(opts, comm, false);
}

}  // namespace natgrad
