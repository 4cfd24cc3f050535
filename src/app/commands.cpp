// The commands of the executable as library calls: each takes its parsed job (options.hpp),
// applies the thread count and returns the process's exit status.
#include <iostream>
#include <sstream>

#include "natgrad/app/options.hpp"
#include "natgrad/app/selftest.hpp"
#include "natgrad/core/error.hpp"
#include "natgrad/io/report.hpp"

namespace natgrad {

int run_fit_command(FitJob& job, const Communicator& comm, std::ostream& out) {
  const FitResult res = run_fit(job, comm, out);
  // A rank that exits non-zero makes mpirun kill the others: no rank leaves before root
  // has written its outputs (model.json, summary) and flushed its log.
  out << std::flush;
  comm.barrier();
  if (res.converged()) return 0;
  if (res.reason == Reason::max_iterations) {  // as R warns: exit 0, but never silently
    if (comm.is_root()) std::cerr << "natgrad: warning: " << nonconvergence_note(res) << std::endl;
    return 0;
  }
  if (res.reason == Reason::interrupted) return kExitInterrupted;
  if (comm.is_root()) {
    out << std::flush;
    std::cerr << "natgrad: fit " << to_string(res.reason) << std::endl;
  }
  return kExitDiverged;
}

int run_predict_command(PredictJob& job, const Communicator& comm, std::ostream& out) {
  run_predict(job, comm, out);
  return 0;
}

int run_generate_command(GenerateJob& job, const Communicator& comm, std::ostream& out) {
  job.threads = use_threads(job.threads, comm);
  run_generate(job, comm, out);
  return 0;
}

int run_demo_command(DemoOptions& job, const Communicator& comm, std::ostream& out) {
  job.threads = use_threads(job.threads, comm);
  run_demo(job, comm, out);
  return 0;
}

int run_selftest_command(SelftestJob& job, const Communicator& comm, std::ostream& out) {
  job.threads = use_threads(job.threads, comm);
  const std::string layout = describe_layout(comm, job.threads);
  if (comm.is_root()) out << "natgrad selftest: " << layout << '\n';
  return run_selftest(comm, job.threads, out) == 0 ? 0 : 1;
}

int run_plot_command(PlotJob& job, const Communicator& comm, std::ostream& out) {
  job.threads = use_threads(job.threads, comm);
  std::vector<std::string> ys;
  std::stringstream ss(job.y);
  for (std::string c; std::getline(ss, c, ',');)
    if (!c.empty()) ys.push_back(c);
  std::string err;
  if (comm.is_root()) {
    try {
      plot_csv(job.csv, job.x, ys, job.out, job.plot);
      out << "wrote " << job.out.string() << '\n';
    } catch (const std::exception& e) {
      err = std::string("natgrad plot: ") + e.what();
    }
  }
  comm.check(err.empty(), err);
  return 0;
}

}  // namespace natgrad
