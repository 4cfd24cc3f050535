// A program outside natgrad's tree that fits a GLM through the installed library, as
// `natgrad fit` does, with its own communicator (a duplicate of MPI_COMM_WORLD): the data
// from natgrad::io (each rank loads only its rows), the whole R-style pipeline from
// natgrad::fit_glm (natgrad::core). Links natgrad::natgrad (core + io) only: no plotting
// library, no JSON library. Prints the coefficients and standard errors at full precision
// so tests/install/run_install_test.sh can compare them with the CLI's model.json.
//
// usage: consumer DATA   (a file or generator spec, read with an intercept, binomial logit)
#include <mpi.h>

#include <cmath>
#include <cstdio>
#include <natgrad/core/glm_fit.hpp>
#include <natgrad/io/reader.hpp>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm mine;
  MPI_Comm_dup(MPI_COMM_WORLD, &mine);
  int rc = 1;
  try {
    const natgrad::Communicator comm(mine);
    natgrad::ReadOptions read;
    read.path = argc > 1 ? argv[1] : "gen:logit:rows=4000,cols=5,seed=7";
    read.intercept = true;
    natgrad::Shard shard = natgrad::load_shard(read, comm);
    natgrad::GlmOptions options;  // binomial logit, R's start, inference: natgrad fit's defaults
    options.fit.threads = 1;
    const natgrad::GlmFit g = natgrad::fit_glm(shard, options, comm);
    if (comm.is_root()) {
      std::printf("consumer: %d rank(s), %s after %d iterations, n_obs %lld\n", comm.size(),
                  natgrad::to_string(g.fit.reason), g.fit.iterations, static_cast<long long>(g.fit.n_obs));
      for (std::size_t j = 0; j < g.fit.theta.size(); ++j)
        std::printf("coef %s %.17g %.17g\n", g.columns[j].c_str(), g.fit.theta[j], g.inference.std_errors[j]);
      std::printf("deviance %.17g\n", g.inference.deviance);
    }
    rc = g.fit.converged() && g.has_inference && std::isfinite(g.fit.loss) ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "consumer: %s\n", e.what());
  }
  MPI_Comm_free(&mine);
  MPI_Finalize();
  return rc;
}
