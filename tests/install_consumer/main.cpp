// Calls natgrad::fit from another program, with that program's own communicator: a
// duplicate of MPI_COMM_WORLD, each rank generating its block of rows.
#include <mpi.h>

#include <cmath>
#include <cstdio>

#include <natgrad/core/communicator.hpp>
#include <natgrad/io/generator.hpp>
#include <natgrad/core/model.hpp>
#include <natgrad/core/partition.hpp>
#include <natgrad/core/solver.hpp>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm mine;
  MPI_Comm_dup(MPI_COMM_WORLD, &mine);
  int rc = 1;
  {
    const natgrad::Communicator comm(mine);
    const auto spec = natgrad::parse_generator_spec("gen:logit:rows=4000,cols=5,seed=7");
    const auto rows = natgrad::partition(spec.rows, comm.rank(), comm.size());
    natgrad::Shard shard = natgrad::generate_rows(spec, rows.begin, rows.end);
    shard.first_row = rows.begin;
    shard.n_global = spec.rows;
    const auto model = natgrad::make_model("binomial", "logit");
    natgrad::FitOptions options;
    options.threads = 1;
    const natgrad::FitResult r = natgrad::fit(shard, *model, options, comm);
    if (comm.is_root()) {
      std::printf("consumer: %d rank(s), %s after %d iterations, loss %.12f, n_obs %lld\n", comm.size(),
                  natgrad::to_string(r.reason), r.iterations, r.loss, static_cast<long long>(r.n_obs));
      std::printf("consumer: theta");
      for (double v : r.theta) std::printf(" %.6f", v);
      std::printf("\n");
    }
    rc = r.converged() && r.n_obs == spec.rows && std::isfinite(r.loss) ? 0 : 1;
  }
  MPI_Comm_free(&mine);
  MPI_Finalize();
  return rc;
}
