// The parallel HDF5 reader (src/reader_hdf5.cpp): rank 0 writes .h5 files with the HDF5
// C API (serial driver), every rank reads them back through MPI-IO at the current rank
// count and compares with the same table written as CSV. Also --label-column none for
// every format. Built only when natgrad is built with parallel HDF5 (NATGRAD_HDF5).
#include <hdf5.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "natgrad/core/communicator.hpp"
#include "natgrad/core/error.hpp"
#include "natgrad/io/reader.hpp"
#include "support/test_support.hpp"

namespace {

using Catch::Matchers::Contains;
using namespace natgrad;
using namespace natgrad::test;

std::string h5_path(const std::string& name) { return tmp_path("h5_" + name); }

/// Row-major table: column 0 a 0/1 label, 1 positive (weight-like), 2..4 features whose
/// values are exact in float32.
std::vector<double> table(std::int64_t rows, std::int64_t cols = 5) {
  std::vector<double> v;
  for (std::int64_t i = 0; i < rows; ++i)
    for (std::int64_t j = 0; j < cols; ++j)
      v.push_back(j == 0   ? static_cast<double>(i % 3 == 0)
                  : j == 1 ? 0.5 * static_cast<double>(i) + 0.25
                           : 0.125 * static_cast<double>((i * (j + 3)) % 61) - 2.0);
  return v;
}

/// Rank 0 writes \p v (rows x cols) as dataset \p name (file type \p ftype; chunked
/// when \p chunk_rows > 0) into a new file; every rank waits.
std::string write_h5(const Communicator& comm, const std::string& file, const std::string& name,
                     const std::vector<double>& v, hsize_t rows, hsize_t cols, hid_t ftype,
                     hsize_t chunk_rows = 0, int ndims = 2) {
  const std::string path = h5_path(file);
  if (comm.is_root()) {
    const hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    const hsize_t dims3[3] = {rows, cols, 1};
    const hid_t space = H5Screate_simple(ndims, dims3, nullptr);
    const hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (chunk_rows > 0) {
      const hsize_t chunk[3] = {chunk_rows, cols, 1};
      H5Pset_chunk(dcpl, ndims, chunk);
    }
    const hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    const hid_t d = H5Dcreate2(f, name.c_str(), ftype, space, lcpl, dcpl, H5P_DEFAULT);
    if (!v.empty()) H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data());
    H5Dclose(d);
    H5Pclose(lcpl);
    H5Pclose(dcpl);
    H5Sclose(space);
    H5Fclose(f);
  }
  comm.barrier();
  return path;
}

std::string write_csv(const Communicator& comm, const std::string& file,
                      const std::vector<double>& v, std::int64_t cols) {
  const std::string path = h5_path(file);
  if (comm.is_root()) {
    std::ofstream out(path, std::ios::trunc);
    for (std::size_t k = 0; k < v.size(); ++k)
      out << num(v[k]) << ((k + 1) % static_cast<std::size_t>(cols) == 0 ? "\n" : ",");
  }
  comm.barrier();
  return path;
}

/// Collective: the two loads hold the same rows (each rank its own, by rows for HDF5 and
/// by bytes for CSV, so compared over all ranks).
void check_same(const Shard& a, const Shard& b, const Communicator& comm) {
  CHECK(a.n_global == b.n_global);
  CHECK(a.n_cols == b.n_cols);
  CHECK(a.names == b.names);
  CHECK(a.weight.empty() == b.weight.empty());
  CHECK(a.offset.empty() == b.offset.empty());
  const std::string ra = global_rows(a, comm), rb = global_rows(b, comm);
  CHECK(ra.size() ==
        static_cast<std::size_t>(
            comm.is_root() ? a.n_global * (1 + a.n_cols + !a.weight.empty() + !a.offset.empty()) * 8
                           : 0));
  CHECK(ra == rb);
}

}  // namespace

TEST_CASE("hdf5: rows by hyperslab per rank match the CSV of the same table", "[hdf5]") {
  const Communicator comm = Communicator::world();
  REQUIRE(natgrad::hdf5_available());
  const std::int64_t rows = 1003, cols = 5;
  const std::vector<double> t = table(rows, cols);
  ReadOptions csv;
  csv.path = write_csv(comm, "t.csv", t, cols);
  csv.header = ReadOptions::Header::no;
  const Shard want = natgrad::load_shard(csv, comm);

  ReadOptions h5;
  // float64 contiguous; float32; big-endian float64; chunked, in a group.
  h5.path = write_h5(comm, "f64.h5", "data", t, rows, cols, H5T_IEEE_F64LE);
  check_same(natgrad::load_shard(h5, comm), want, comm);
  h5.path = write_h5(comm, "f32.h5", "data", t, rows, cols, H5T_IEEE_F32LE);
  check_same(natgrad::load_shard(h5, comm), want, comm);
  h5.path = write_h5(comm, "be.h5", "data", t, rows, cols, H5T_IEEE_F64BE);
  check_same(natgrad::load_shard(h5, comm), want, comm);
  h5.path = write_h5(comm, "chunked.hdf5", "g/x", t, rows, cols, H5T_IEEE_F64LE, 100);
  h5.dataset = "g/x";
  check_same(natgrad::load_shard(h5, comm), want, comm);

  // Column roles by index, as for NPY; threads.
  for (ReadOptions* o : {&csv, &h5}) {
    o->label_column = "0";
    o->weight_column = "1";
    o->offset_column = "4";
    o->columns = "3,2";
    o->threads = 2;
    o->intercept = true;
  }
  check_same(natgrad::load_shard(h5, comm), natgrad::load_shard(csv, comm), comm);

  // --label-column none: y is 0.
  for (ReadOptions* o : {&csv, &h5}) {
    o->label_column = "none";
    o->weight_column = o->offset_column = o->columns = "";
  }
  const Shard no_label = natgrad::load_shard(h5, comm);
  CHECK(no_label.n_cols == 6);  // intercept + 5 columns
  CHECK(no_label.y == std::vector<double>(static_cast<std::size_t>(no_label.n_rows), 0.0));
  check_same(no_label, natgrad::load_shard(csv, comm), comm);
}

TEST_CASE("hdf5: contiguous datasets read by file offset, chunked through the library, threads and intercept",
          "[hdf5]") {
  const Communicator comm = Communicator::world();
  // 5 columns: 13107 float64 rows per 512 KiB read; 30011 rows divide evenly by no
  // thread or rank count.
  const std::int64_t rows = 30011, cols = 5;
  const std::vector<double> t = table(rows, cols);
  ReadOptions csv;
  csv.path = write_csv(comm, "thr.csv", t, cols);
  csv.header = ReadOptions::Header::no;
  // Every stored form: contiguous float64 / float32 in either byte order (read by
  // offset), chunked (through the library), and a file with a 512-byte user block (an
  // offset that does not start at 0).
  std::vector<std::string> files = {
      write_h5(comm, "thr_f64.h5", "data", t, rows, cols, H5T_IEEE_F64LE),
      write_h5(comm, "thr_f64be.h5", "data", t, rows, cols, H5T_IEEE_F64BE),
      write_h5(comm, "thr_f32.h5", "data", t, rows, cols, H5T_IEEE_F32LE),
      write_h5(comm, "thr_f32be.h5", "data", t, rows, cols, H5T_IEEE_F32BE),
      write_h5(comm, "thr_chunked.h5", "data", t, rows, cols, H5T_IEEE_F64LE, 777)};
  {
    const std::string path = h5_path("thr_userblock.h5");
    if (comm.is_root()) {
      const hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
      H5Pset_userblock(fcpl, 512);
      const hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, fcpl, H5P_DEFAULT);
      const hsize_t dims[2] = {static_cast<hsize_t>(rows), static_cast<hsize_t>(cols)};
      const hid_t space = H5Screate_simple(2, dims, nullptr);
      const hid_t d = H5Dcreate2(f, "data", H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
      H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.data());
      H5Dclose(d);
      H5Sclose(space);
      H5Fclose(f);
      H5Pclose(fcpl);
    }
    comm.barrier();
    files.push_back(path);
  }
  struct Case {
    const char *label, *weight, *offset, *columns;
  };
  const Case cases[] = {{"0", "", "", ""}, {"none", "", "", ""}, {"0", "1", "4", "3,2"}};
  for (const bool intercept : {false, true}) {
    for (const Case& c : cases) {
      ReadOptions h5 = csv;
      for (ReadOptions* o : {&h5, &csv}) {
        o->label_column = c.label;
        o->weight_column = c.weight;
        o->offset_column = c.offset;
        o->columns = c.columns;
        o->intercept = intercept;
      }
      h5.header = ReadOptions::Header::auto_detect;
      const Shard want = natgrad::load_shard(csv, comm);
      for (const std::string& f : files) {
        for (const int threads : {1, 3, 8}) {
          INFO(f << ", threads " << threads << ", intercept " << intercept << ", label " << c.label);
          h5.path = f;
          h5.threads = threads;
          const Shard got = natgrad::load_shard(h5, comm);
          check_same(got, want, comm);
          if (intercept) CHECK((!got.names.empty() && got.names[0] == "(Intercept)"));
        }
      }
    }
  }
  // The first bad row wins over the threads, by offset as through the library.
  std::vector<double> bad = t;
  bad[29990 * 5 + 2] = std::numeric_limits<double>::infinity();
  bad[15001 * 5 + 0] = std::numeric_limits<double>::quiet_NaN();
  for (const hsize_t chunk : {hsize_t{0}, hsize_t{500}}) {
    ReadOptions o;
    o.path = write_h5(comm, "thr_bad.h5", "data", bad, rows, cols, H5T_IEEE_F64LE, chunk);
    o.threads = 3;
    o.intercept = true;
    CHECK_THAT(load_error(o, comm),
               Contains(o.path + ": dataset 'data' row 15001, column 0 (0-based): value nan is not finite"));
    o.label_column = "none";  // the label's column unused: its NaN no longer matters, the inf does
    o.columns = "1,2,3,4";
    CHECK_THAT(load_error(o, comm),
               Contains(o.path + ": dataset 'data' row 29990, column 2 (0-based): value inf is not finite"));
  }
}

TEST_CASE("hdf5: fewer rows than ranks, and many blocks per rank", "[hdf5]") {
  const Communicator comm = Communicator::world();
  ReadOptions h5;
  h5.path = write_h5(comm, "three.h5", "data", table(3, 2), 3, 2, H5T_IEEE_F64LE);
  const Shard s = natgrad::load_shard(h5, comm);
  std::int64_t total = s.n_rows;
  comm.allreduce_sum(&total, 1);
  CHECK(total == 3);
  CHECK(s.n_global == 3);
  // 2 columns: 262144 rows per 4 MiB block; 600000 rows: 1 to 3 blocks per rank.
  const std::int64_t rows = 600000;
  const std::vector<double> t = table(rows, 2);
  h5.path = write_h5(comm, "tall.h5", "data", t, rows, 2, H5T_IEEE_F64LE, 4096);
  const Shard tall = natgrad::load_shard(h5, comm);
  std::int64_t bad = 0;
  for (std::int64_t k = 0; k < tall.n_rows; ++k) {
    const std::int64_t i = tall.first_row + k;
    if (tall.y[k] != t[i * 2] || tall.x[k] != t[i * 2 + 1]) ++bad;
  }
  CHECK(bad == 0);
  total = tall.n_rows;
  comm.allreduce_sum(&total, 1);
  CHECK(total == rows);
}

TEST_CASE("hdf5: errors name the file, the dataset and what was expected", "[hdf5]") {
  const Communicator comm = Communicator::world();
  const std::vector<double> t = table(50);
  ReadOptions o;
  o.path = write_h5(comm, "named.h5", "features", t, 50, 5, H5T_IEEE_F64LE);
  CHECK_THAT(load_error(o, comm),
             Contains(o.path + ": no dataset 'data' (--dataset); its datasets: features"));
  o.dataset = "features";
  CHECK(load_error(o, comm).empty());
  o.path = write_h5(comm, "int.h5", "data", t, 50, 5, H5T_STD_I32LE);
  o.dataset = "";
  CHECK_THAT(load_error(o, comm),
             Contains(o.path + ": dataset 'data': unsupported type (integer of 4 bytes); expected "
                               "float64 or float32"));
  o.path = write_h5(comm, "3d.h5", "data", t, 10, 5, H5T_IEEE_F64LE, 0, 3);
  CHECK_THAT(load_error(o, comm),
             Contains(o.path + ": dataset 'data' is 3-D, expected a 2-D dataset"));
  o.path = write_h5(comm, "empty.h5", "data", {}, 0, 5, H5T_IEEE_F64LE);
  CHECK_THAT(load_error(o, comm), Contains("no data rows in " + o.path));

  std::vector<double> bad = t;
  bad[37 * 5 + 3] = std::numeric_limits<double>::quiet_NaN();
  o.path = write_h5(comm, "nan.h5", "data", bad, 50, 5, H5T_IEEE_F64LE);
  CHECK_THAT(
      load_error(o, comm),
      Contains(o.path + ": dataset 'data' row 37, column 3 (0-based): value nan is not finite"));
  o.columns = "1,2,4";  // column 3 unused: its NaN does not matter
  CHECK(load_error(o, comm).empty());
  o.columns = "";
  bad = t;
  bad[12 * 5 + 1] = -1.5;
  o.path = write_h5(comm, "w.h5", "data", bad, 50, 5, H5T_IEEE_F64LE);
  o.weight_column = "1";
  CHECK_THAT(
      load_error(o, comm),
      Contains(o.path + ": dataset 'data' row 12, column 1 (0-based): weight -1.5 must be >= 0"));
  o.weight_column = "";
  o.label_column = "5";
  CHECK_THAT(load_error(o, comm), Contains("--label-column 5 but " + o.path + " has 5 columns"));
  o.label_column = "y";
  CHECK_THAT(load_error(o, comm), Contains("is an HDF5 dataset, whose columns have no names"));
  o.label_column = "0";

  o.path = h5_path("not_h5.h5");
  if (comm.is_root()) std::ofstream(o.path, std::ios::trunc) << "y,a\n1,2\n";
  comm.barrier();
  CHECK_THAT(load_error(o, comm), Contains(o.path + ": not an HDF5 file"));
  o.path = h5_path("missing.h5");
  CHECK_THAT(load_error(o, comm), Contains(o.path + ": cannot open: No such file or directory"));
}

// ===========================================================================
// A CSR matrix as an HDF5 group (data, indices, indptr, shape), as scipy + h5py write it

namespace {

/// Rank 0 writes a rows x cols CSR matrix (the pattern below; indices int32, indptr int64,
/// data float64, a `shape` attribute unless \p with_shape is false) as group "X" and labels
/// "y" at the root; returns the path. \p libsvm gets the same data as LIBSVM text.
std::string write_csr_h5(const Communicator& comm, const std::string& file, std::int64_t rows, std::int64_t cols,
                         bool with_shape, std::string& libsvm) {
  std::vector<double> data, y;
  std::vector<std::int32_t> indices;
  std::vector<std::int64_t> indptr{0};
  libsvm.clear();
  for (std::int64_t i = 0; i < rows; ++i) {
    y.push_back(static_cast<double>(i % 4 == 1));
    libsvm += num(y.back());
    for (std::int64_t j = 0; j < cols; ++j)
      if ((i * 31 + j * 17) % 23 < 3) {
        const double v = 0.5 * static_cast<double>(j) - static_cast<double>(i % 5) + 0.25;
        data.push_back(v);
        indices.push_back(static_cast<std::int32_t>(j));
        libsvm += " " + std::to_string(j + 1) + ":" + num(v);
      }
    indptr.push_back(static_cast<std::int64_t>(data.size()));
    libsvm += "\n";
  }
  const std::string path = h5_path(file);
  if (comm.is_root()) {
    const hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    const hid_t g = H5Gcreate2(f, "X", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    auto put = [](hid_t loc, const char* name, hid_t ftype, hid_t mtype, const void* v, hsize_t n) {
      const hid_t space = H5Screate_simple(1, &n, nullptr);
      const hid_t d = H5Dcreate2(loc, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
      if (n > 0) H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
      H5Dclose(d);
      H5Sclose(space);
    };
    put(g, "data", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, data.data(), data.size());
    put(g, "indices", H5T_STD_I32LE, H5T_NATIVE_INT32, indices.data(), indices.size());
    put(g, "indptr", H5T_STD_I64LE, H5T_NATIVE_INT64, indptr.data(), indptr.size());
    put(f, "y", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, y.data(), y.size());
    if (with_shape) {
      const hsize_t two = 2;
      const std::int64_t shape[2] = {rows, cols};
      const hid_t as = H5Screate_simple(1, &two, nullptr);
      const hid_t a = H5Acreate2(g, "shape", H5T_STD_I64LE, as, H5P_DEFAULT, H5P_DEFAULT);
      H5Awrite(a, H5T_NATIVE_INT64, shape);
      H5Aclose(a);
      H5Sclose(as);
    }
    H5Gclose(g);
    H5Fclose(f);
  }
  comm.barrier();
  return path;
}

}  // namespace

TEST_CASE("hdf5: a CSR group reads as the same rows as the LIBSVM file of the same matrix", "[hdf5][sparse]") {
  const Communicator comm = Communicator::world();
  for (const bool with_shape : {true, false}) {
    INFO("shape attribute " << with_shape);
    std::string text;
    // The last column is never used (so without `shape` the column count is one less).
    const std::string h5 = write_csr_h5(comm, with_shape ? "csr.h5" : "csr_noshape.h5", 389, 61, with_shape, text);
    ReadOptions o;
    o.path = h5;
    o.dataset = "X";
    o.intercept = true;
    o.layout = ReadOptions::Layout::sparse;
    const Shard a = natgrad::load_shard(o, comm);
    ReadOptions l = o;
    l.path = write_file(comm, with_shape ? "h5_csr.svm" : "h5_csr_noshape.svm", text);
    l.dataset = "";
    if (with_shape) l.n_features = 61;
    const Shard b = natgrad::load_shard(l, comm);
    CHECK(a.sparse);
    CHECK(a.n_cols == b.n_cols);
    CHECK(a.names == b.names);
    CHECK(a.n_global == 389);
    CHECK(a.csr.row_ptr == b.csr.row_ptr);
    const std::string ra = global_rows(a, comm), rb = global_rows(b, comm);
    if (comm.is_root()) {
      CHECK(!ra.empty());
      CHECK(ra == rb);
    }
  }
  // Errors: a missing part, no labels, --n-features below the shape.
  std::string text;
  const std::string h5 = write_csr_h5(comm, "csr_err.h5", 20, 7, true, text);
  ReadOptions o;
  o.path = h5;
  o.dataset = "X";
  o.label_dataset = "labels";
  CHECK_THAT(load_error(o, comm), Contains(h5 + ": no label dataset 'labels' (--label-dataset"));
  o.label_dataset = "";
  o.n_features = 5;
  CHECK_THAT(load_error(o, comm), Contains(h5 + ": group 'X': shape says 7 columns, above --n-features 5"));
  o.n_features = 0;
  o.weight_column = "1";
  CHECK_THAT(load_error(o, comm), Contains("is a CSR matrix: --label-column, --weight-column"));
}
