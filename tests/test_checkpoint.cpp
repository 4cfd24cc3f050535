// Checkpoint and resume at the library level (this binary runs at 1, 2, 3 and 4 ranks):
// FitObserver::on_checkpoint, FitOptions::resume and ::interrupt, and the checkpoint file
// (write_checkpoint / read_checkpoint, fingerprints).
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <span>
#include <vector>

#include "natgrad/app/jobs.hpp"
#include "natgrad/io/checkpoint.hpp"
#include "natgrad/core/error.hpp"
#include "natgrad/io/generator.hpp"
#include "natgrad/core/model.hpp"
#include "natgrad/core/partition.hpp"
#include "natgrad/core/solver.hpp"
#include "support/test_support.hpp"

using namespace natgrad;

namespace {
using test::my_rows;
bool same_bits(const std::vector<double>& a, const std::vector<double>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0;
}
/// A checkpoint file path every rank agrees on (in this run's own folder).
std::filesystem::path shared_path(const Communicator&, const std::string& name) {
  return test::tmp_path(name);
}
}  // namespace

TEST_CASE("resume from a checkpoint file continues bit for bit", "[checkpoint]") {
  const Communicator c = Communicator::world();
  const GeneratorSpec g = parse_generator_spec("gen:logit:rows=3001,cols=6,seed=9,cond=30");
  const Shard s = my_rows(g, c);
  const auto model = make_model("binomial", "logit");
  for (StepRule rule : {StepRule::armijo, StepRule::fixed}) {
    CAPTURE(to_string(rule), c.size());
    FitOptions o;
    o.step = rule;
    o.lr = rule == StepRule::fixed ? 0.5 : 1.0;
    o.tol = 0;
    o.max_iter = rule == StepRule::fixed ? 12 : 5;
    const FitResult full = fit(s, *model, o, c);

    // The same fit, stopped early, checkpointing every 2 iterations.
    FitJob job;
    job.read.path = "gen:logit:rows=3001,cols=6,seed=9,cond=30";
    job.read.intercept = true;
    job.glm.fit = o;
    const std::string fp = fit_fingerprint(job, s, model->name(), 0, c);
    const auto path = shared_path(c, "ck");
    FitOptions part = o;
    part.max_iter = o.max_iter - 1;
    part.checkpoint_every = 2;
    FitObserver obs;
    std::vector<int> at;
    if (c.is_root())
      obs.on_checkpoint = [&](const FitState& st) {
        at.push_back(st.iteration);
        write_checkpoint(path, st, fp, "{}");
      };
    fit(s, *model, part, c, obs);
    if (c.is_root()) CHECK(at.back() == (part.max_iter - 1) / 2 * 2);

    FitOptions more = o;
    more.resume = std::make_shared<const FitState>(read_checkpoint(path, fp, c));
    const FitResult resumed = fit(s, *model, more, c);
    CHECK(resumed.iterations == full.iterations);
    CHECK(resumed.reason == full.reason);
    CHECK(same_bits(resumed.theta, full.theta));
    if (c.is_root()) {  // the history is kept on the root
      CHECK(resumed.history.size() == full.history.size());
      for (std::size_t k = 0; k < std::min(full.history.size(), resumed.history.size()); ++k) {
        CHECK(resumed.history[k].loss == full.history[k].loss);
        CHECK(resumed.history[k].step_norm == full.history[k].step_norm);
      }
    }
    if (c.is_root()) std::filesystem::remove(path);
  }
}

TEST_CASE("an interrupt raised on the last rank only stops every rank together", "[checkpoint]") {
  const Communicator c = Communicator::world();
  const GeneratorSpec g = parse_generator_spec("gen:logit:rows=1000,cols=4,seed=2");
  const Shard s = my_rows(g, c);
  const auto model = make_model("binomial", "logit");
  static volatile std::sig_atomic_t flag = 0;
  flag = c.rank() == c.size() - 1 ? 1 : 0;
  FitOptions o;
  o.max_iter = 50;
  o.interrupt = &flag;
  int saved = -1;
  FitObserver obs;
  if (c.is_root()) obs.on_checkpoint = [&](const FitState& st) { saved = st.iteration; };
  const FitResult r = fit(s, *model, o, c, obs);
  CHECK(r.reason == Reason::interrupted);
  CHECK(r.iterations == 0);
  if (c.is_root()) CHECK(saved == 0);
  flag = 0;
}

TEST_CASE("a checkpoint with the wrong coefficient count is a collective error on every rank", "[checkpoint]") {
  const Communicator c = Communicator::world();
  const GeneratorSpec g = parse_generator_spec("gen:logit:rows=500,cols=4,seed=3");
  const Shard s = my_rows(g, c);
  const auto model = make_model("binomial", "logit");
  FitState st;
  st.theta.assign(3, 0.0);  // the model has s.n_cols > 3
  FitOptions o;
  o.resume = std::make_shared<const FitState>(st);
  bool collective = false;
  std::string what;
  try {
    fit(s, *model, o, c);
  } catch (const CollectiveError& e) {
    collective = true;
    what = e.what();
  } catch (const std::exception& e) {
    what = e.what();
  }
  INFO(what);
  CHECK(collective);
  CHECK(what.find("the checkpoint has 3 coefficients, the model has " + std::to_string(s.n_cols)) != std::string::npos);
}

TEST_CASE("on_state reports every regular iterate with its history rows, as a checkpoint would", "[checkpoint]") {
  const Communicator c = Communicator::world();
  const GeneratorSpec g = parse_generator_spec("gen:logit:rows=1000,cols=4,seed=2");
  const Shard s = my_rows(g, c);
  const auto model = make_model("binomial", "logit");
  FitOptions o;
  o.max_iter = 5;
  o.tol = 0;
  o.step = StepRule::fixed;
  o.lr = 0.5;
  o.checkpoint_every = 1;
  std::vector<int> seen;
  std::vector<FitState> checkpoints, states;
  FitObserver obs;
  if (c.is_root()) {
    obs.on_checkpoint = [&](const FitState& st) { checkpoints.push_back(st); };
    obs.on_state = [&](const FitState& st, std::span<const IterationRecord> h) {
      CHECK(st.history.empty());
      CHECK(h.size() == static_cast<std::size_t>(st.iteration));
      FitState full = st;
      full.history.assign(h.begin(), h.end());
      states.push_back(full);
    };
  }
  fit(s, *model, o, c, obs);
  if (c.is_root()) {
    REQUIRE(states.size() == 5);  // iterates 0..4 have a direction; 5 stops at the limit
    REQUIRE(checkpoints.size() == 4);  // 1..4
    for (std::size_t i = 0; i < checkpoints.size(); ++i) {
      const FitState& a = checkpoints[i];
      const FitState& b = states[i + 1];
      CHECK(a.iteration == b.iteration);
      CHECK(same_bits(a.theta, b.theta));
      CHECK(a.history.size() == b.history.size());
      CHECK(a.step_length == b.step_length);
      CHECK(a.prev_loss == b.prev_loss);
    }
  }
}

TEST_CASE("a checkpoint of other options or data is refused, naming the field", "[checkpoint]") {
  const Communicator c = Communicator::world();
  const GeneratorSpec g = parse_generator_spec("gen:logit:rows=500,cols=3,seed=1");
  const Shard s = my_rows(g, c);
  const auto model = make_model("binomial", "logit");
  FitJob job;
  job.read.path = "gen:logit:rows=500,cols=3,seed=1";
  job.read.intercept = true;
  const std::string fp = fit_fingerprint(job, s, model->name(), 0, c);
  FitState st;
  st.theta.assign(4, 0.0);
  const auto path = shared_path(c, "ck-other");
  if (c.is_root()) write_checkpoint(path, st, fp, "{}");
  c.barrier();

  FitJob other = job;
  other.glm.fit.l2 = 2;
  const std::string fp2 = fit_fingerprint(other, s, model->name(), 0, c);
  CHECK_THROWS_WITH(read_checkpoint(path, fp2, c), Catch::Contains("'l2' is 0.0 in the checkpoint and 2.0 now"));

  Shard changed = s;
  if (c.is_root() && changed.n_rows > 0) changed.x[1] += 1;  // the same shape, other values
  const std::string fp3 = fit_fingerprint(job, changed, model->name(), 0, c);
  CHECK_THROWS_WITH(read_checkpoint(path, fp3, c), Catch::Contains("the data differ"));
  CHECK_NOTHROW(read_checkpoint(path, fp, c));
  c.barrier();
  if (c.is_root()) std::filesystem::remove(path);
}

TEST_CASE("the data hash follows the rows' content and order, not the rank count", "[checkpoint]") {
  const Communicator c = Communicator::world();
  const GeneratorSpec g = parse_generator_spec("gen:logit:rows=997,cols=4,seed=3");
  const Shard mine = my_rows(g, c);
  const std::uint64_t at_this_layout = data_content_hash(mine, c);
  // All rows on one rank: the same hash.
  const Communicator self(MPI_COMM_SELF);
  Shard all = generate_rows(g, 0, g.rows, 1);
  all.first_row = 0;
  all.n_global = g.rows;
  add_intercept(all);
  CHECK(data_content_hash(all, self) == at_this_layout);
  // Two labels swapped in place (the same multiset of labels, the same column sums): another hash.
  std::int64_t a = -1, b = -1;
  for (std::int64_t i = 0; i < all.n_rows && (a < 0 || b < 0); ++i) {
    if (all.y[i] == 0 && a < 0) a = i;
    if (all.y[i] == 1 && b < 0) b = i;
  }
  REQUIRE((a >= 0 && b >= 0));
  Shard swapped = all;
  std::swap(swapped.y[a], swapped.y[b]);
  CHECK(data_content_hash(swapped, self) != at_this_layout);
  // Two whole rows swapped: another hash too (the row index is hashed).
  Shard moved = all;
  for (std::int64_t j = 0; j < moved.n_cols; ++j)
    std::swap(moved.x[a * moved.n_cols + j], moved.x[b * moved.n_cols + j]);
  std::swap(moved.y[a], moved.y[b]);
  CHECK(data_content_hash(moved, self) != at_this_layout);
  // One value changed in the last bit.
  Shard nudged = all;
  nudged.x[5] = std::nextafter(nudged.x[5], 10.0);
  CHECK(data_content_hash(nudged, self) != at_this_layout);
  // Weights of 1 are data too: with them the hash differs from without.
  Shard weighted = all;
  weighted.weight.assign(static_cast<std::size_t>(all.n_rows), 1.0);
  CHECK(data_content_hash(weighted, self) != at_this_layout);
}

TEST_CASE("the data hash of a sparse shard: its content, the same as dense, at any rank count", "[checkpoint][sparse]") {
  const Communicator c = Communicator::world();
  const Communicator self(MPI_COMM_SELF);
  const GeneratorSpec g = parse_generator_spec("gen:sparse-logit:rows=1201,cols=5000,nnz=6,seed=9");
  const Shard mine = my_rows(g, c);  // CSR, with the intercept
  REQUIRE(mine.sparse);
  const std::uint64_t h = data_content_hash(mine, c, 2);
  // All rows on one rank, CSR or densified: the same hash.
  Shard all = generate_rows(g, 0, g.rows, 1);
  all.first_row = 0;
  all.n_global = g.rows;
  add_intercept(all);
  CHECK(data_content_hash(all, self) == h);
  CHECK(data_content_hash(densified(all), self) == h);
  // The dense shard of this rank against its CSR shard.
  CHECK(data_content_hash(densified(mine), c) == h);
  // A value moved to another column of the same row: another hash.
  Shard moved = all;
  REQUIRE(moved.csr.index(1) + 1 < moved.n_cols);
  if (moved.csr.index(2) != moved.csr.index(1) + 1) moved.csr.index32[1] += 1;
  else moved.csr.values[1] = 2.0;
  CHECK(data_content_hash(moved, self) != h);
  // One label flipped: another hash.
  Shard flipped = all;
  flipped.y[7] = 1 - flipped.y[7];
  CHECK(data_content_hash(flipped, self) != h);
}

TEST_CASE("the fingerprint ignores the data's path and a checkpoint edited by hand is refused", "[checkpoint]") {
  const Communicator c = Communicator::world();
  const GeneratorSpec g = parse_generator_spec("gen:logit:rows=300,cols=3,seed=4");
  const Shard s = my_rows(g, c);
  const auto model = make_model("binomial", "logit");
  FitJob job;
  job.read.path = "/data/first/place.csv";
  job.read.intercept = true;
  const std::string fp = fit_fingerprint(job, s, model->name(), 0, c);
  FitJob moved = job;
  moved.read.path = "/elsewhere/a copy.csv";
  CHECK(fit_fingerprint(moved, s, model->name(), 0, c) == fp);
  FitJob other_roles = job;
  other_roles.read.columns = "1,2";  // what is read: still compared
  CHECK(fit_fingerprint(other_roles, s, model->name(), 0, c) != fp);

  FitState st;
  st.theta = {0.5, -1.25, 2.0, 0.125};
  const auto path = shared_path(c, "ck-edited");
  const auto edited = shared_path(c, "ck-edited-2");
  if (c.is_root()) {
    write_checkpoint(path, st, fp, "{\"ranks\": 1}");
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    auto j = nlohmann::ordered_json::parse(text.str());
    CHECK(j["natgrad_checkpoint"] == 4);
    CHECK(j["checksum"].get<std::string>().rfind("crc64:", 0) == 0);
    j["theta"][1] = -1.6875;  // the coefficient, off by 35%
    std::ofstream(edited) << j.dump(1) << '\n';
  }
  c.barrier();
  const FitState back = read_checkpoint(path, fp, c);
  CHECK(back.theta == st.theta);
  CHECK_THROWS_WITH(read_checkpoint(edited, fp, c),
                    Catch::Contains("ck-edited-2: the checkpoint is damaged or was edited: its checksum does "
                                    "not match"));
  c.barrier();
  if (c.is_root()) {
    std::filesystem::remove(path);
    std::filesystem::remove(edited);
  }
}
