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
           {{"--frobnicate"}, "unknown option '--frobnicate'"},
           {{"--epoch", "3"}, "unknown option '--epoch' (did you mean --epochs?)"},
           {{"--seed", "-1"}, "--seed expects an integer >= 0, got '-1'"},  // was taken as 2^64 - 1
           {{"fit"}, "the command is train or evaluate, got 'fit'"},
           {{"--config", "/nonexistent/run.toml"}, "--config: '/nonexistent/run.toml' is not a readable file"},
           {{"--config", "/dev/zero"}, "is not a readable file"},
           {{"evaluate"}, "evaluate needs --weights"}}) {
    try {
      args_of(bad.first);
      FAIL("accepted ", bad.second);
    } catch (const trainer::UsageError& e) {
      CHECK_MESSAGE(std::string(e.what()).find(bad.second) != std::string::npos, e.what());
    }
  }
}

TEST_CASE("trainer: CLI11 forms: --flag=value, a repeated flag takes the last value, --nesterov, -h") {
  const trainer::Args a = args_of({"--lr=0.5", "--epochs", "3", "--epochs", "4", "--no-nesterov", "--nesterov", "train"});
  CHECK(a.lr == 0.5);
  CHECK(a.epochs == 4);
  CHECK(a.nesterov);
  CHECK(args_of({"-h"}).help);
  CHECK(args_of({"--model", "list"}).mode == "list");
  CHECK(args_of({"--seed", "18446744073709551615"}).seed == 18446744073709551615ull);
}

namespace {
// A file in the temporary directory, removed at the end of the scope.
struct TempFile {
  std::string path;
  TempFile(const std::string& name, const std::string& content)
      : path((fs::temp_directory_path() / (name + "-" + std::to_string(::getpid()))).string()) {
    std::FILE* f = std::fopen(path.c_str(), "wb");
    REQUIRE(f);
    std::fwrite(content.data(), 1, content.size(), f);
    std::fclose(f);
  }
  ~TempFile() { std::remove(path.c_str()); }
};

void check_same(const trainer::Args& x, const trainer::Args& y) {
  CHECK(x.mode == y.mode);
  CHECK(x.model == y.model);
  CHECK(x.epochs == y.epochs);
  CHECK(x.batch_size == y.batch_size);
  CHECK(x.optimizer == y.optimizer);
  CHECK(x.lr == y.lr);  // exactly: the file holds the shortest decimal of the double
  CHECK(x.momentum == y.momentum);
  CHECK(x.weight_decay == y.weight_decay);
  CHECK(x.scheduler == y.scheduler);
  CHECK(x.augment == y.augment);
  CHECK(x.nesterov == y.nesterov);
  CHECK(x.seed == y.seed);
  CHECK(x.threads == y.threads);
  CHECK(x.data == y.data);
  CHECK(x.out == y.out);
  CHECK(x.weights == y.weights);
  CHECK(x.limit == y.limit);
  CHECK(x.quiet == y.quiet);
  CHECK(x.distributed == y.distributed);
  CHECK(x.dot == y.dot);
}
}  // namespace

TEST_CASE("trainer: config_toml reads back through --config to the same flags") {
  const trainer::Args a = args_of({"--model", "lenet", "--epochs", "7", "--batch-size", "32", "--optimizer", "adamw",
                                   "--lr", "0.0123456789012345", "--momentum", "0.5", "--weight-decay", "1e-07",
                                   "--scheduler", "step", "--no-nesterov", "--augment", "--seed", "12345678901234",
                                   "--threads", "3", "--data", "/data/my \"fashion\" set", "--out", "runs/a b",
                                   "--limit", "100", "--quiet", "--dot", "g.dot", "--resume", "old.safetensors"});
  const std::string toml = trainer::config_toml(a);
  CHECK(toml.find("lr=0.0123456789012345") != std::string::npos);
  CHECK(toml.find("nesterov=false") != std::string::npos);
  TempFile f("tapegrad-config.toml", toml);
  const trainer::Args b = args_of({"--config", f.path});
  check_same(a, b);
  CHECK(b.resume.empty());  // a straight run with these flags ends where the resumed one did
  CHECK(b.config == f.path);
  // The defaults read back too, and a file written from a file is the same file.
  const trainer::Args d = args_of({});
  TempFile g("tapegrad-defaults.toml", trainer::config_toml(d));
  check_same(d, args_of({"--config", g.path}));
  CHECK(trainer::config_toml(b) == toml);
}

TEST_CASE("trainer: --config: the command line overrides the file; INI works; bad keys and values name the file") {
  TempFile f("tapegrad-run.toml", "# a run\nmodel = \"mlp\"\nepochs = 3\nlr = 0.1\naugment = true\nnesterov = false\n");
  const trainer::Args a = args_of({"--config", f.path, "--lr", "0.5"});
  CHECK(a.model == "mlp");
  CHECK(a.epochs == 3);
  CHECK(a.lr == 0.5);
  CHECK(a.augment);
  CHECK_FALSE(a.nesterov);
  TempFile ini("tapegrad-run.ini", "; INI comments and spacing\nbatch-size=8\nscheduler=exp\n");
  const trainer::Args b = args_of({"--config", ini.path});
  CHECK(b.batch_size == 8);
  CHECK(b.scheduler == "exp");
  for (const auto& bad : std::vector<std::pair<std::string, std::vector<std::string>>>{
           {"epochs = 3\nfrob = 2\n", {"unknown key 'frob'", "long flags without --"}},
           {"epohcs = 3\n", {"unknown key 'epohcs'"}},
           {"epochs = \"3x\"\n", {"--epochs expects a number, got '3x'", "the key 'epochs'"}},
           {"epochs = 0\n", {"--epochs must be at least 1, got 0", "the key 'epochs'"}},
           {"lr = -1\n", {"--lr must be positive, got -1"}},
           {"threads = 4294967297\n", {"--threads is out of range"}},
           {"optimizer = \"lion\"\n", {"--optimizer must be one of", "got 'lion'"}},
           {"[train]\nepochs = 2\n", {"a section [train]"}},
           {"help = true\n", {"'help' cannot be set in a configuration file"}},
           {"config = \"other.toml\"\n", {"'config' cannot be set"}}}) {
    TempFile b2("tapegrad-bad.toml", bad.first);
    try {
      args_of({"--config", b2.path});
      FAIL("accepted ", bad.first);
    } catch (const trainer::UsageError& e) {
      CHECK_MESSAGE(std::string(e.what()).find(b2.path) != std::string::npos, e.what());
      for (const auto& part : bad.second)
        CHECK_MESSAGE(std::string(e.what()).find(part) != std::string::npos, e.what(), " lacks ", part);
    }
  }
  // A bad value typed on the command line is blamed on the command line, not the file.
  try {
    args_of({"--config", f.path, "--epochs", "0"});
    FAIL("accepted --epochs 0");
  } catch (const trainer::UsageError& e) {
    CHECK(std::string(e.what()) == "--epochs must be at least 1, got 0");
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
