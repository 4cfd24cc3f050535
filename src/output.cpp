#include "natgrad/output.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iomanip>
#include <nlohmann/json.hpp>

#include "natgrad/error.hpp"

namespace natgrad {

void write_atomically(const std::filesystem::path& path,
                      const std::function<void(std::ostream&)>& write) {
  namespace fs = std::filesystem;
  const fs::path tmp = path.string() + ".tmp." + std::to_string(::getpid());
  try {
    {
      std::ofstream os(tmp, std::ios::binary | std::ios::trunc);
      if (!os) throw Error(path.string() + ": cannot write: " + std::strerror(errno));
      write(os);
      os.flush();
      if (!os) throw Error(path.string() + ": write failed: " + std::strerror(errno));
    }
    std::error_code ec;
    fs::rename(tmp, path, ec);
    if (ec) throw Error(path.string() + ": cannot rename temporary file: " + ec.message());
  } catch (...) {
    std::error_code ec;
    fs::remove(tmp, ec);
    throw;
  }
}

void write_history_csv(const std::filesystem::path& path, const FitResult& r) {
  write_atomically(path, [&](std::ostream& os) {
    os << "iter,loss,grad_norm,step_norm,kl,damping,step_length,seconds\n";
    os << std::setprecision(17);
    for (const auto& h : r.history)
      os << h.iter << ',' << h.loss << ',' << h.grad_norm << ',' << h.step_norm << ',' << h.kl << ','
         << h.damping << ',' << h.step_length << ',' << h.seconds << '\n';
  });
}

void write_model_json(const std::filesystem::path& path, const FitResult& r,
                      const std::vector<std::string>& names, const RunInfo& info) {
  nlohmann::ordered_json j;
  j["natgrad_version"] = 1;
  j["model"] = info.model_name;
  j["names"] = names;
  j["coefficients"] = r.theta;
  j["n_params"] = r.theta.size();
  j["n_obs"] = r.n_obs;
  j["iterations"] = r.iterations;
  j["converged"] = r.converged();
  j["reason_code"] = static_cast<int>(r.reason);
  j["reason"] = to_string(r.reason);
  j["loss"] = r.loss;
  j["log_likelihood"] = -r.loss * r.weight_sum;
  j["grad_norm"] = r.grad_norm;
  j["seconds"] = r.seconds;
  j["run"] = {{"data", info.data}, {"ranks", info.ranks}, {"threads_per_rank", info.threads}};
  j["options"] = nlohmann::ordered_json::parse(info.options_json);
  write_atomically(path, [&](std::ostream& os) { os << j.dump(2) << '\n'; });
}

}  // namespace natgrad
