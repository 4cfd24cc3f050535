// The option tables (natgrad/app/options.hpp): each option declared once, parsed and
// checked by its row, recorded in model.json and read back unchanged, and the
// fingerprint holding exactly the options that change a fit's iterates.
#include <catch2/catch.hpp>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "natgrad/app/options.hpp"
#include "natgrad/core/error.hpp"

using namespace natgrad;
using Catch::Matchers::Contains;
using Given = std::map<std::string, std::string>;

namespace {

template <class T>
std::set<std::string> names(const OptionTable<T>& t) {
  std::set<std::string> s;
  for (const auto& o : t) s.insert(o.name);
  return s;
}

template <class T>
void check_table_shape(const OptionTable<T>& t) {
  std::set<std::string> seen;
  for (const auto& o : t) {
    INFO("option --" << o.name);
    CHECK(seen.insert(o.name).second);  // no name twice in one command
    CHECK(!o.help.empty());
    CHECK(o.parse);
    CHECK(o.json);
    CHECK(o.name.find_first_of(" _=") == std::string::npos);
  }
}

/// The error message apply_options gives for \p given on a fresh fit job ("" if none).
std::string fit_error(const Given& given) {
  FitJob job;
  Given g = given;
  g.emplace("data", "gen:logit:rows=10,cols=2");
  try {
    apply_options(fit_job_table(), g, job);
    job.validate();
  } catch (const Error& e) {
    return e.what();
  }
  return {};
}

}  // namespace

TEST_CASE("options: every command's table is well formed", "[options]") {
  check_table_shape(fit_job_table());
  check_table_shape(predict_job_table());
  check_table_shape(generate_job_table());
  check_table_shape(demo_option_table());
  check_table_shape(plot_job_table());
  check_table_shape(selftest_option_table());
}

TEST_CASE("options: the fit command is made of the layers' tables, each row declared once", "[options]") {
  const auto fit = names(fit_job_table());
  for (const auto& o : read_option_table()) CHECK(fit.count(o.name) == 1);
  for (const auto& o : glm_option_table()) CHECK(fit.count(o.name) == 1);
  for (const auto& o : fit_option_table()) CHECK(names(glm_option_table()).count(o.name) == 1);
  // Rows of different layers never share a name.
  for (const auto& o : read_option_table()) CHECK(names(glm_option_table()).count(o.name) == 0);
}

TEST_CASE("options: defaults give the library's defaults", "[options]") {
  FitJob job;
  apply_options(fit_job_table(), {{"data", "gen:logit:rows=10,cols=2"}}, job);
  const FitOptions plain;
  CHECK(job.glm.fit.method == plain.method);
  CHECK(job.glm.fit.fisher == plain.fisher);
  CHECK(job.glm.fit.step == plain.step);
  CHECK(job.glm.fit.lr == plain.lr);
  CHECK(job.glm.fit.tol == plain.tol);
  CHECK(job.glm.fit.max_iter == plain.max_iter);
  CHECK(job.glm.fit.block_rows == plain.block_rows);
  CHECK(job.glm.family == ModelFamily::binomial);
  CHECK(job.glm.link == LinkFunction::canonical);
  CHECK(job.glm.start == StartRule::irls);
  CHECK(job.glm.inference);
  CHECK(job.read.label_column == "0");
  CHECK(job.read.delimiter == ',');
  CHECK(job.read.header == ReadOptions::Header::auto_detect);
  CHECK(job.threads == 0);  // found at run time
}

TEST_CASE("options: families and links accept R's spellings, case-insensitively", "[options]") {
  CHECK(family_from_string("Gamma") == ModelFamily::gamma);
  CHECK(family_from_string("GAUSSIAN") == ModelFamily::gaussian);
  CHECK(family_from_string("binomial") == ModelFamily::binomial);
  CHECK(family_from_string("logistic") == ModelFamily::binomial);
  CHECK(link_from_string("Logit") == LinkFunction::logit);
  CHECK(link_from_string("") == LinkFunction::canonical);
  CHECK_THROWS_WITH(family_from_string("gama"),
                    Contains("unknown --family 'gama' (expected: binomial, poisson, gaussian, gamma, multinomial, "
                             "quasibinomial, quasipoisson, negative.binomial)"));
  FitJob job;
  apply_options(fit_job_table(), {{"data", "x.csv"}, {"family", "Gamma"}, {"link", "LOG"}}, job);
  CHECK(job.glm.family == ModelFamily::gamma);
  CHECK(job.glm.link == LinkFunction::log);
}

TEST_CASE("options: bad values are refused by their row, naming the option", "[options]") {
  CHECK_THAT(fit_error({{"lr", "-1"}}), Contains("--lr must be a positive number"));
  CHECK_THAT(fit_error({{"lr", "fast"}}), Contains("--lr 'fast' is not a number"));
  CHECK_THAT(fit_error({{"max-iter", "2.5"}}), Contains("--max-iter '2.5' is not an integer"));
  CHECK_THAT(fit_error({{"max-iter", "-1"}}), Contains("--max-iter must be >= 0"));
  CHECK_THAT(fit_error({{"damping", "inf"}}), Contains("--damping must be >= 0"));
  CHECK_THAT(fit_error({{"fisher-sample", "1.5"}}), Contains("--fisher-sample must be in (0, 1]"));
  CHECK_THAT(fit_error({{"header", "maybe"}}), Contains("--header 'maybe' is not one of: auto, yes, no"));
  CHECK_THAT(fit_error({{"delimiter", ";;"}}), Contains("--delimiter must be one character"));
  CHECK_THAT(fit_error({{"classes", "1"}}), Contains("--classes must be >= 2"));
  CHECK_THAT(fit_error({{"threads", "0"}}), Contains("--threads must be >= 1"));
  CHECK_THAT(fit_error({{"checkpoint-every", "0"}}), Contains("--checkpoint-every must be >= 1"));
  CHECK_THAT(fit_error({{"method", "newton"}}), Contains("--method 'newton' is not one of: ngd, gd, diag"));
  CHECK_THAT(fit_error({{"start", "ones"}}), Contains("--start 'ones' is not one of: irls, zero"));
  CHECK_THAT(fit_error({{"data", "gen:logit:rows=0"}}), Contains("rows must be >= 1"));
  // Relations between options: checked after the rows.
  CHECK_THAT(fit_error({{"family", "poisson"}, {"link", "logit"}}),
             Contains("--link logit is not available for family poisson"));
  CHECK_THAT(fit_error({{"step", "kl"}, {"method", "gd"}}), Contains("--step kl needs a Fisher metric"));
  CHECK_THAT(fit_error({{"label-column", "none"}}), Contains("fit needs a label column"));
  CHECK_THAT(fit_error({{"init", "a.json"}, {"resume", "b.json"}}), Contains("--init and --resume exclude each other"));
  CHECK(fit_error({{"family", "multinomial"}, {"classes", "3"}, {"l2", "0.5"}}).empty());
  // The library checks the same rows when it is called directly.
  FitOptions direct;
  direct.lr = 0;
  CHECK_THROWS_WITH(direct.validate(), Contains("--lr must be a positive number"));
}

TEST_CASE("options: model.json's options read back through the table give the same job", "[options]") {
  FitJob job;
  apply_options(fit_job_table(),
                {{"data", "train.csv"}, {"label-column", "y"}, {"weight-column", "w"}, {"delimiter", ";"},
                 {"header", "yes"}, {"intercept", "true"}, {"family", "Gamma"}, {"link", "log"}, {"lr", "0.25"},
                 {"tol", "1e-10"}, {"l2", "0.1"}, {"fisher-sample", "0.125"}, {"fisher-sample-seed", "7"},
                 {"no-inference", "true"}, {"max-iter", "7"}, {"threads", "3"}, {"covariance", "true"}},
                job);
  const std::string recorded = options_json(fit_job_table(), job, kOptionRecorded);
  const auto j = nlohmann::json::parse(recorded);
  CHECK(j["family"] == "gamma");
  CHECK(j["lr"] == 0.25);
  CHECK(j["tol"] == 1e-10);
  CHECK(j["intercept"] == true);
  CHECK(j["no-inference"] == true);
  CHECK(j["delimiter"] == ";");
  Given back;
  for (const auto& [k, v] : j.items()) back[k] = option_text(v.dump());
  FitJob again;
  apply_options(fit_job_table(), back, again);
  CHECK(options_json(fit_job_table(), again, kOptionRecorded) == recorded);
  CHECK(again.glm.fit.sample.fraction == 0.125);
  CHECK(again.glm.fit.sample.seed == 7);
  CHECK_FALSE(again.glm.inference);
  CHECK(again.read.delimiter == ';');
}

TEST_CASE("options: the fingerprint holds what changes the iterates, not how the job runs", "[options]") {
  const auto fp = nlohmann::json::parse(options_json(fit_job_table(), FitJob{}, kOptionFingerprint));
  // The data enter by content (checkpoint.hpp data_content_hash), not by path.
  for (const char* k : {"format", "dataset", "label-column", "weight-column", "offset-column", "columns", "intercept",
                        "family", "link", "classes", "method", "fisher", "step", "lr", "kl", "damping", "tol", "ftol",
                        "l2", "fisher-sample", "fisher-sample-seed", "penalize-intercept"})
    CHECK(fp.contains(k));
  for (const char* k : {"data", "threads", "max-iter", "block-rows", "quiet", "out", "checkpoint", "resume", "init"})
    CHECK_FALSE(fp.contains(k));
}

TEST_CASE("options: predict takes the reader's rows and no fit rows", "[options]") {
  const auto p = names(predict_job_table());
  for (const char* k : {"model", "data", "out", "se", "label-column", "columns", "delimiter", "header", "threads"})
    CHECK(p.count(k) == 1);
  for (const char* k : {"lr", "family", "intercept", "tol"}) CHECK(p.count(k) == 0);
  PredictJob job;
  CHECK_THROWS_WITH(apply_options(predict_job_table(), {{"header", "perhaps"}}, job),
                    Contains("--header 'perhaps' is not one of: auto, yes, no"));
}

TEST_CASE("options: fit has an intercept unless --no-intercept, as R", "[options]") {
  auto intercept = [](const Given& given) {
    FitJob job;
    job.read.intercept = false;  // the table's default must set it
    Given g = given;
    g.emplace("data", "x.csv");
    apply_options(fit_job_table(), g, job);
    return job.read.intercept;
  };
  CHECK(FitJob{}.read.intercept);
  CHECK(intercept({}));
  CHECK(intercept({{"intercept", "true"}}));
  CHECK_FALSE(intercept({{"no-intercept", "true"}}));
  CHECK_FALSE(intercept({{"intercept", "false"}}));  // a config file's "intercept = false"
  CHECK(intercept({{"no-intercept", "false"}}));
  CHECK(fit_error({{"intercept", "true"}, {"no-intercept", "true"}}) ==
        "--intercept and --no-intercept exclude each other");
  // recorded once, as "intercept"; predict takes it from the model, not from an option
  FitJob job;
  apply_options(fit_job_table(), {{"data", "x.csv"}, {"no-intercept", "true"}}, job);
  const auto j = nlohmann::json::parse(options_json(fit_job_table(), job, kOptionRecorded));
  CHECK(j["intercept"] == false);
  CHECK_FALSE(j.contains("no-intercept"));
  CHECK(nlohmann::json::parse(options_json(fit_job_table(), job, kOptionFingerprint))["intercept"] == false);
  const auto p = names(predict_job_table());
  CHECK(p.count("intercept") + p.count("no-intercept") == 0);
}
