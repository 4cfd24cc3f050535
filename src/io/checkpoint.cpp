#include "natgrad/io/checkpoint.hpp"

#include <algorithm>
#include <bit>
#include <boost/crc.hpp>
#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "natgrad/core/error.hpp"
#include "natgrad/io/output.hpp"

namespace natgrad {

namespace {

using json = nlohmann::ordered_json;

// 2: fingerprint keys are the option names; 3: a checksum, and the data by content
// (data_hash) instead of the path and column sums; 4: data_hash over the non-zeros
// (column, value), the same for a dense and a sparse shard of the same rows.
constexpr int kFormatVersion = 4;
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
    if (!have.contains(key)) return "it has no '" + key + "' (written by another natgrad version?)";
    const json& h = have[key];
    if (h == w) continue;
    if (key == "data_hash")
      return "the data differ (the content hash of the rows does not match: other values, or the same rows in "
             "another order)";
    return "'" + key + "' is " + show(h) + " in the checkpoint and " + show(w) + " now";
  }
  return {};
}

std::string hex64(std::uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%016" PRIx64, v);
  return buf;
}

/// The checkpoint's checksum: CRC-64/XZ (Boost.CRC) of the compact JSON of every field
/// but "checksum", in the file's order, as hexadecimal text.
std::string checksum_of(const json& j) {
  json body = j;
  body.erase("checksum");
  const std::string text = body.dump();
  boost::crc_optimal<64, 0x42F0E1EBA9EA3693ULL, ~0ULL, ~0ULL, true, true> crc;
  crc.process_bytes(text.data(), text.size());
  return "crc64:" + hex64(crc.checksum());
}

// The row hash of data_fingerprint: xxHash64's round and final mix over 64-bit words.
constexpr std::uint64_t kP1 = 0x9E3779B185EBCA87ULL, kP2 = 0xC2B2AE3D27D4EB4FULL, kP3 = 0x165667B19E3779F9ULL;
inline std::uint64_t mix_in(std::uint64_t acc, std::uint64_t word) {
  acc += word * kP2;
  acc = (acc << 31) | (acc >> 33);
  return acc * kP1;
}
inline std::uint64_t avalanche(std::uint64_t h) {
  h ^= h >> 33;
  h *= kP2;
  h ^= h >> 29;
  h *= kP3;
  h ^= h >> 32;
  return h;
}
inline std::uint64_t bits(double v) { return std::bit_cast<std::uint64_t>(v); }

}  // namespace

std::uint64_t data_content_hash(const Shard& shard, const Communicator& comm, int threads) {
  // Sum over rows (mod 2^64) of a hash of (global row index, x's non-zeros as (column,
  // value), y, weight, offset): the index makes it order-sensitive, the sum makes it
  // independent of how rows are split, and hashing only the non-zeros (a zero of either
  // sign is absent) makes it independent of the layout (dense or CSR).
  const std::int64_t p = shard.n_cols;
  const bool has_w = !shard.weight.empty(), has_o = !shard.offset.empty();
  std::uint64_t local = 0;
#pragma omp parallel for num_threads(std::max(threads, 1)) schedule(static) reduction(+ : local)
  for (std::int64_t i = 0; i < shard.n_rows; ++i) {
    std::uint64_t acc = mix_in(kP3, static_cast<std::uint64_t>(shard.first_row + i));
    shard.for_each_nonzero(i, [&](std::int64_t j, double v) {
      if (v == 0.0) return;
      acc = mix_in(acc, static_cast<std::uint64_t>(j));
      acc = mix_in(acc, bits(v));
    });
    acc = mix_in(acc, bits(shard.y[static_cast<std::size_t>(i)]));
    if (has_w) acc = mix_in(acc, bits(shard.weight[static_cast<std::size_t>(i)]));
    if (has_o) acc = mix_in(acc, bits(shard.offset[static_cast<std::size_t>(i)]));
    local += avalanche(acc ^ static_cast<std::uint64_t>(p));
  }
  // An exact sum mod 2^64 over ranks, as two sums of 32-bit halves (no overflow below 2^31 ranks).
  std::int64_t halves[2] = {static_cast<std::int64_t>(local & 0xFFFFFFFFULL), static_cast<std::int64_t>(local >> 32)};
  comm.allreduce_sum(halves, 2);
  return static_cast<std::uint64_t>(halves[0]) + (static_cast<std::uint64_t>(halves[1]) << 32);
}

std::string data_fingerprint(const std::string& options_json, const Shard& shard, const Communicator& comm,
                             int threads) {
  const std::uint64_t hash = data_content_hash(shard, comm, threads);
  json f = json::parse(options_json);
  f["n_rows"] = shard.n_global;
  f["n_cols"] = shard.n_cols;
  f["names"] = shard.names;
  f["weights"] = !shard.weight.empty();
  f["offsets"] = !shard.offset.empty();
  f["data_hash"] = hex64(hash);
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
  j["checksum"] = checksum_of(j);
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
                            std::to_string(kFormatVersion) + " (start afresh without --resume)");
    if (!j.contains("checksum") || !j["checksum"].is_string() || j["checksum"] != checksum_of(j))
      throw CollectiveError(where + "the checkpoint is damaged or was edited: its checksum does not match its "
                            "content (resume from an intact copy, or start afresh without --resume)");
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
