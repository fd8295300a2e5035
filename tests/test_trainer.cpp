// tapegrad-train's readers of user input (examples/trainer.hpp): the command line and the
// checkpoint --resume reads. Each corrupt-checkpoint case is a regression of an input the fuzz
// harness tests/fuzz/fuzz_checkpoint.cpp found (undefined behaviour or a hang before the fix),
// or one of its neighbours; tests/cli_test.sh runs the trainer itself.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <tapegrad.hpp>

#include "trainer.hpp"

namespace fs = std::filesystem;
using tg::Tensor;

namespace {

trainer::Args args_of(std::vector<std::string> words) {
  words.insert(words.begin(), "tapegrad-train");
  std::vector<const char*> argv;
  for (const auto& w : words) argv.push_back(w.c_str());
  return trainer::parse_args(int(argv.size()), argv.data());
}

std::shared_ptr<tg::nn::Sequential> tiny_model() {
  auto m = std::make_shared<tg::nn::Sequential>();
  m->push_back(std::make_shared<tg::nn::Linear>(3, 2));
  m->push_back(std::make_shared<tg::nn::BatchNorm1d>(2));
  return m;
}

void check_error(const std::function<void()>& f, const std::vector<std::string>& parts) {
  try {
    f();
    FAIL("no tg::Error thrown; expected one mentioning ", parts.front());
  } catch (const tg::Error& e) {
    const std::string msg = e.what();
    for (const auto& p : parts) CHECK_MESSAGE(msg.find(p) != std::string::npos, "'", msg, "' lacks '", p, "'");
  }
}

// A checkpoint of two epochs of the tiny model under sgd + cosine, as the trainer writes it.
struct Checkpoint {
  std::string path;
  trainer::Args args = args_of({"--model", "mlp", "--epochs", "4", "--batch-size", "16", "--seed", "3", "--quiet"});
  std::vector<trainer::EpochMetrics> hist = {{1, 0.9, 0.5, 0.8, 0.55, 0.9, 1.5, 40}, {2, 0.7, 0.6, 0.6, 0.65, 0.95, 1.25, 51}};
  Checkpoint() {
    path = (fs::temp_directory_path() / ("tapegrad-trainer-" + std::to_string(::getpid()) + ".safetensors")).string();
    tg::manual_seed(args.seed);
    auto m = tiny_model();
    auto opt = trainer::make_optimizer(args, m->parameters());
    auto sched = trainer::make_scheduler(args, *opt);
    for (int e = 0; e < 2; ++e) {
      Tensor loss = (*m)(tg::randn({4, 3})).pow(2).sum();
      opt->zero_grad(true);
      loss.backward();
      opt->step();
      sched->step();
    }
    trainer::save_checkpoint(path, args, *m, *opt, sched.get(), 2, hist);
  }
  ~Checkpoint() { std::remove(path.c_str()); }
  // Rewrites the file with `edit` applied to its tensors and metadata.
  void edit(const std::function<void(std::map<std::string, Tensor>&, std::map<std::string, std::string>&)>& f) {
    std::map<std::string, std::string> meta;
    auto t = tg::load_tensors(path, &meta);
    f(t, meta);
    tg::save_tensors(t, path, meta);
  }
  void set_meta(const std::string& k, const std::string& v) {
    edit([&](std::map<std::string, Tensor>&, std::map<std::string, std::string>& m) { m[k] = v; });
  }
  trainer::Resumed load(const trainer::Args& a) const {
    auto m = tiny_model();
    auto opt = trainer::make_optimizer(a, m->parameters());
    auto sched = trainer::make_scheduler(a, *opt);
    return trainer::load_checkpoint(path, a, *m, *opt, sched.get());
  }
  trainer::Resumed load() const { return load(args); }
};

}  // namespace

TEST_CASE("trainer: parse_args reads the flags and refuses bad ones with a UsageError naming the flag") {
  const trainer::Args a = args_of({"evaluate", "--model", "lenet", "--weights", "w.safetensors", "--lr", "0.5",
                                   "--scheduler", "step", "--no-nesterov", "--threads", "2"});
  CHECK(a.mode == "evaluate");
  CHECK(a.model == "lenet");
  CHECK(a.lr == 0.5);
  CHECK(a.scheduler == "step");
  CHECK_FALSE(a.nesterov);
  CHECK(a.threads == 2);
  CHECK(args_of({"--epochs", "3", "--help"}).help);
  for (const auto& bad : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"--epochs", "0"}, "--epochs"},
           {{"--epochs", "3x"}, "--epochs expects a number"},
           {{"--threads", "4294967297"}, "--threads is out of range"},  // was taken as 1 thread
           {{"--lr", "nan"}, "--lr must be positive"},
           {{"--lr", "1e999"}, "--lr is out of range"},
           {{"--model"}, "--model needs a value"},
           {{"--scheduler", "linear"}, "--scheduler must be one of none, step, exp, inv-time, cosine"},
           {{"--frobnicate"}, "unknown option"},
           {{"evaluate"}, "evaluate needs --weights"}}) {
    try {
      args_of(bad.first);
      FAIL("accepted ", bad.second);
    } catch (const trainer::UsageError& e) {
      CHECK_MESSAGE(std::string(e.what()).find(bad.second) != std::string::npos, e.what());
    }
  }
}

TEST_CASE("trainer: a checkpoint loads back the epochs done, the history and the weights") {
  Checkpoint c;
  const trainer::Resumed r = c.load();
  CHECK(r.epochs_done == 2);
  REQUIRE(r.history.size() == 2);
  CHECK(r.history[1].epoch == 2);
  CHECK(r.history[1].samples_per_s == 51);
  CHECK(r.history[0].seconds == 1.5);
}

TEST_CASE("trainer: a corrupt checkpoint is a tg::Error naming the file, never undefined behaviour or a hang") {
  Checkpoint c;
  SUBCASE("a history epoch too large for int64 (fuzz finding: UB in the cast)") {
    c.edit([](std::map<std::string, Tensor>& t, std::map<std::string, std::string>&) {
      t["history"] = tg::tensor({1.99111e+209, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0}, {2, 8}, tg::kFloat64);
    });
    check_error([&] { c.load(); }, {c.path, "history row 0 is for epoch"});
  }
  SUBCASE("a NaN epoch in the history") {
    c.edit([](std::map<std::string, Tensor>& t, std::map<std::string, std::string>&) {
      t["history"] = tg::tensor({1, 0, 0, 0, 0, 0, 0, 0, NAN, 0, 0, 0, 0, 0, 0, 0}, {2, 8}, tg::kFloat64);
    });
    check_error([&] { c.load(); }, {c.path, "history row 1 is for epoch nan, expected 2"});
  }
  SUBCASE("a history of another shape, or none") {
    c.edit([](std::map<std::string, Tensor>& t, std::map<std::string, std::string>&) {
      t["history"] = tg::zeros({2, 7}, tg::kFloat64);
    });
    check_error([&] { c.load(); }, {c.path, "history has shape [2, 7], expected [2, 8]"});
    c.edit([](std::map<std::string, Tensor>& t, std::map<std::string, std::string>&) { t.erase("history"); });
    check_error([&] { c.load(); }, {c.path, "no history tensor"});
  }
  SUBCASE("an epoch count past the history (before: a loop of that many scheduler steps)") {
    c.set_meta("epoch", "999999999999999");
    check_error([&] { c.load(); }, {c.path, "history has shape [2, 8], expected [999999999999999, 8]"});
  }
  SUBCASE("epoch metadata that is not a positive integer") {
    for (const char* v : {"", "abc", "-3", "0", "2x", "1e300", "99999999999999999999"}) {
      c.set_meta("epoch", v);
      check_error([&] { c.load(); }, {c.path, "its metadata has epoch", "expected an integer >= 1"});
    }
    c.edit([](std::map<std::string, Tensor>&, std::map<std::string, std::string>& m) { m.erase("epoch"); });
    check_error([&] { c.load(); }, {c.path, "not a tapegrad-train checkpoint"});
  }
  SUBCASE("recorded flags out of range (before: 1e300 epochs cast to int64, UB)") {
    c.set_meta("epochs", "1e300");
    check_error([&] { c.load(); }, {c.path, "its metadata has epochs '1e300', expected an integer >= 1"});
    c.set_meta("epochs", "4");
    for (const char* v : {"nan", "-0.1", "inf", "0.1x"}) {
      c.set_meta("lr", v);
      check_error([&] { c.load(); }, {c.path, "its metadata has lr", "expected a positive number"});
    }
    c.set_meta("lr", "0.02");
    c.set_meta("scheduler", "linear");
    check_error([&] { c.load(); }, {c.path, "its metadata has scheduler 'linear'"});
  }
  SUBCASE("the generator state missing or garbled") {
    c.set_meta("rng", "12 34 not a state");
    check_error([&] { c.load(); }, {c.path, "set_rng_state"});
    c.edit([](std::map<std::string, Tensor>&, std::map<std::string, std::string>& m) { m.erase("rng"); });
    check_error([&] { c.load(); }, {c.path, "no rng in its metadata"});
  }
  SUBCASE("weights or optimizer state of the wrong shape") {
    c.edit([](std::map<std::string, Tensor>& t, std::map<std::string, std::string>&) {
      t["model.0.weight"] = tg::zeros({3, 3});
    });
    check_error([&] { c.load(); }, {c.path, "0.weight"});
  }
  SUBCASE("a fixed flag that changed is a UsageError naming it") {
    trainer::Args other = c.args;
    other.batch_size = 8;
    try {
      c.load(other);
      FAIL("a changed --batch-size was accepted");
    } catch (const trainer::UsageError& e) {
      CHECK(std::string(e.what()).find("--batch-size cannot change on resume") != std::string::npos);
    }
  }
}
