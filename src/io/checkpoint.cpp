#include "natgrad/io/checkpoint.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "natgrad/core/error.hpp"
#include "natgrad/io/output.hpp"

namespace natgrad {

namespace {

using json = nlohmann::ordered_json;

constexpr int kFormatVersion = 2;  // 2: fingerprint keys are the option names
const char* const kHistoryColumns[] = {"iter", "loss", "grad_norm", "step_norm", "kl", "damping", "step_length", "seconds"};

json number(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }
json numbers(const std::vector<double>& v) {
  json a = json::array();
  for (double x : v) a.push_back(number(x));
  return a;
}
double to_double(const json& v) { return v.is_null() ? NAN : v.get<double>(); }
std::vector<double> to_doubles(const json& a) {
  std::vector<double> v;
  v.reserve(a.size());
  for (const auto& x : a) v.push_back(to_double(x));
  return v;
}

std::string show(const json& v) {
  std::string s = v.dump();
  if (s.size() > 120) s = s.substr(0, 117) + "...";
  return s;
}

/// Compares a checkpoint's fingerprint with this run's; returns "" or what differs.
std::string compare(const json& have, const json& want) {
  for (const auto& [key, w] : want.items()) {
    if (key == "data_abs_sums") continue;
    if (!have.contains(key)) return "it has no '" + key + "' (written by another natgrad version?)";
    const json& h = have[key];
    if (key == "data_sums") {
      // Sums over rows in another order (another rank or thread count) agree to rounding.
      const auto a = to_doubles(h), b = to_doubles(w), scale = to_doubles(want["data_abs_sums"]);
      bool same = a.size() == b.size();
      for (std::size_t j = 0; same && j < a.size(); ++j)
        same = std::abs(a[j] - b[j]) <= 1e-9 * scale[j] || (std::isnan(a[j]) && std::isnan(b[j]));
      if (!same) return "the data differ (column sums of the rows do not match)";
      continue;
    }
    if (h != w) return "'" + key + "' is " + show(h) + " in the checkpoint and " + show(w) + " now";
  }
  return {};
}

}  // namespace

std::string data_fingerprint(const std::string& options_json, const Shard& shard, const Communicator& comm) {
  // Column sums of X, then y, weights, offsets; and the same of absolute values, as the
  // scale of the comparison tolerance.
  const std::size_t p = static_cast<std::size_t>(shard.n_cols);
  std::vector<double> sums(2 * (p + 3), 0.0);
  double* abs = sums.data() + p + 3;
  for (std::int64_t i = 0; i < shard.n_rows; ++i) {
    const double* x = shard.row(i);
    for (std::size_t j = 0; j < p; ++j) {
      sums[j] += x[j];
      abs[j] += std::abs(x[j]);
    }
    sums[p] += shard.y[i];
    abs[p] += std::abs(shard.y[i]);
    if (!shard.weight.empty()) sums[p + 1] += shard.weight[i], abs[p + 1] += std::abs(shard.weight[i]);
    if (!shard.offset.empty()) sums[p + 2] += shard.offset[i], abs[p + 2] += std::abs(shard.offset[i]);
  }
  comm.allreduce_sum(sums.data(), sums.size());

  json f = json::parse(options_json);
  f["n_rows"] = shard.n_global;
  f["n_cols"] = shard.n_cols;
  f["names"] = shard.names;
  f["data_sums"] = numbers(std::vector<double>(sums.begin(), sums.begin() + static_cast<std::ptrdiff_t>(p + 3)));
  f["data_abs_sums"] = numbers(std::vector<double>(sums.begin() + static_cast<std::ptrdiff_t>(p + 3), sums.end()));
  return f.dump();
}

void write_checkpoint(const std::filesystem::path& path, const FitState& s, const std::string& fingerprint,
                      const std::string& written_by_json) {
  json j;
  j["natgrad_checkpoint"] = kFormatVersion;
  j["iteration"] = s.iteration;
  j["theta"] = numbers(s.theta);
  j["last_step"] = numbers(s.last_step);
  j["step"] = {{"step_length", number(s.step_length)},
               {"kl", number(s.kl)},
               {"damping", number(s.damping)},
               {"step_norm", number(s.step_norm)}};
  j["prev_loss"] = number(s.prev_loss);
  j["seconds"] = number(s.seconds);
  json rows = json::array();
  for (const auto& h : s.history)
    rows.push_back(json::array({h.iter, number(h.loss), number(h.grad_norm), number(h.step_norm), number(h.kl),
                                number(h.damping), number(h.step_length), number(h.seconds)}));
  json columns = json::array();
  for (const char* c : kHistoryColumns) columns.push_back(c);
  j["history"] = {{"columns", columns}, {"rows", rows}};
  j["fingerprint"] = json::parse(fingerprint);
  j["written_by"] = json::parse(written_by_json);
  // nlohmann prints doubles shortest-round-trip: reading them back gives the same bits.
  write_atomically(path, [&](std::ostream& os) { os << j.dump(1) << '\n'; });
}

FitState read_checkpoint(const std::filesystem::path& path, const std::string& fingerprint,
                         const Communicator& comm) {
  std::string text, err;
  if (comm.is_root()) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      err = "--resume " + path.string() + ": cannot read the checkpoint: " + std::strerror(errno);
    } else {
      std::ostringstream ss;
      ss << in.rdbuf();
      text = ss.str();
    }
  }
  comm.check(err.empty(), err);
  comm.broadcast(text);

  // Every rank parses the same text: errors from here on are collective.
  const std::string where = "--resume " + path.string() + ": ";
  FitState s;
  try {
    const json j = json::parse(text);
    if (!j.is_object() || !j.contains("natgrad_checkpoint"))
      throw CollectiveError(where + "not a natgrad checkpoint (no \"natgrad_checkpoint\" key)");
    if (j["natgrad_checkpoint"] != kFormatVersion)
      throw CollectiveError(where + "checkpoint format " + show(j["natgrad_checkpoint"]) + ", this natgrad reads " +
                            std::to_string(kFormatVersion));
    const std::string why = compare(j.at("fingerprint"), json::parse(fingerprint));
    if (!why.empty())
      throw CollectiveError(where + "the checkpoint belongs to a different fit: " + why +
                            " (resume with the data and options of the checkpointed run, or start afresh without "
                            "--resume)");
    s.iteration = j.at("iteration").get<int>();
    s.theta = to_doubles(j.at("theta"));
    s.last_step = to_doubles(j.at("last_step"));
    const json& st = j.at("step");
    s.step_length = to_double(st.at("step_length"));
    s.kl = to_double(st.at("kl"));
    s.damping = to_double(st.at("damping"));
    s.step_norm = to_double(st.at("step_norm"));
    s.prev_loss = to_double(j.at("prev_loss"));
    s.seconds = to_double(j.at("seconds"));
    for (const auto& r : j.at("history").at("rows")) {
      if (!r.is_array() || r.size() != std::size(kHistoryColumns))
        throw CollectiveError(where + "a history row has " + std::to_string(r.size()) + " entries, expected " +
                              std::to_string(std::size(kHistoryColumns)));
      s.history.push_back({r[0].get<int>(), to_double(r[1]), to_double(r[2]), to_double(r[3]), to_double(r[4]),
                           to_double(r[5]), to_double(r[6]), to_double(r[7])});
    }
    if (s.iteration < 0 || s.history.size() != static_cast<std::size_t>(s.iteration))
      throw CollectiveError(where + "the history has " + std::to_string(s.history.size()) + " rows for iteration " +
                            std::to_string(s.iteration));
    if (!s.theta.empty() && !std::all_of(s.theta.begin(), s.theta.end(), [](double v) { return std::isfinite(v); }))
      throw CollectiveError(where + "the coefficients are not all finite");
  } catch (const nlohmann::json::exception& e) {
    throw CollectiveError(where + "invalid checkpoint: " + e.what());
  }
  return s;
}

}  // namespace natgrad
