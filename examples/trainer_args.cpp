// tapegrad-train's command line (trainer.hpp), parsed by CLI11: the flags, --config FILE (TOML or
// INI, overridden by the command line) and the effective configuration written back as TOML.
// Every value goes through one validator per type that also rewrites it in a canonical form, so
// CLI11's own conversion never fails and a value read from a file is checked like one typed.
// User input, fuzzed (tests/fuzz/fuzz_args.cpp): every failure is a UsageError.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <set>
#include <stdexcept>
#include <string>
#include <system_error>
#include <type_traits>
#include <vector>

#include "cli_flags.hpp"
#include "models.hpp"
#include "trainer.hpp"

namespace trainer {

const char* const kUsage = R"(usage: tapegrad-train [train] [options]
       tapegrad-train evaluate --weights FILE [--model NAME] [--data DIR]

Trains a classifier on Fashion-MNIST (any directory with the four IDX files works, MNIST too).

options:
  --model NAME          mlp | lenet | cnn-bn | resnet-small | densenet-small, or a zoo model with its
                        small-input stem: alexnet | vgg11_bn | vgg16_bn | googlenet | resnet18 |
                        resnet34 | resnet50 | densenet121 | densenet-bc-40 | densenet-bc-100
                        (default cnn-bn); --model list prints them with their parameter counts
  --epochs N            epochs to train (default 10)
  --batch-size N        mini-batch size (default 64)
  --optimizer NAME      sgd | adam | adamw | rmsprop | adagrad | delta-bar-delta   (default sgd)
  --lr X                initial learning rate (default 0.02)
  --momentum X          momentum for sgd and rmsprop (default 0.9)
  --weight-decay X      L2 penalty (decoupled for adamw) (default 5e-4)
  --scheduler NAME      none | step | exp | inv-time | cosine, stepped per epoch (default cosine)
  --no-nesterov         plain momentum for sgd (PyTorch's SGD default); Nesterov otherwise (--nesterov)
  --augment             random crop (padding 2) and horizontal flip of the training images
  --seed N              seed of the weights, the shuffling, dropout and augmentation (default 1)
  --threads N           threads for the library and OpenBLAS (default: all cores)
  --data DIR            the IDX files (default /usr/share/datasets/fashion-mnist)
  --out DIR             metrics.csv, curves.svg, confusion_matrix.csv, checkpoint.safetensors and
                        config.toml, the run's flags for --config (default out)
  --config FILE         read the flags from a TOML or INI file (epochs = 3, model = "lenet",
                        augment = true, nesterov = false: the long flags without --); flags on
                        the command line override it. --config out/config.toml repeats a run
  --resume FILE         continue from a checkpoint written by an earlier run
  --weights FILE        (evaluate) a checkpoint or a model file saved by tg::save
  --limit N             train on the first N samples only (quick checks)
  --quiet               no progress bar, one line per epoch
  --dot FILE            write the graph of the first training step (Graphviz DOT, autograd::to_dot)
  --distributed         data-parallel over MPI, under mpirun -np N: each rank trains on its shard of
                        every epoch with --batch-size samples per step; rank 0 prints and writes
  --help                this text

Values are given as --lr 0.1 or --lr=0.1. The defaults (cnn-bn, 10 epochs, SGD lr 0.02 momentum 0.9
nesterov, weight decay 5e-4, cosine schedule) are the recipe of docs/benchmarks.md.
)";

namespace {

// A config file is read whole: larger than this it is not a configuration (nor /dev/zero).
constexpr std::uintmax_t kMaxConfigBytes = 1 << 20;

// A UsageError about one flag, so that parse_args can say when the value came from --config.
struct FlagError : UsageError {
  std::string flag;
  FlagError(std::string f, const std::string& what) : UsageError(what), flag(std::move(f)) {}
};

// The validator of a numeric flag: parses the whole string as T (range-checked: --threads
// 4294967297 is not 1 thread), and rewrites it as T's canonical decimal for CLI11 to convert.
template <typename T>
CLI::Validator number(const std::string& flag) {
  auto check = [flag](std::string& v) -> std::string {
    try {
      size_t used = 0;
      std::string canonical;
      if constexpr (std::is_floating_point_v<T>) {
        const double d = std::stod(v, &used);
        canonical = fmt::format("{}", d);  // shortest decimal that reads back to the same double
      } else if constexpr (std::is_unsigned_v<T>) {
        const auto first = v.find_first_not_of(" \t");
        if (first != std::string::npos && v[first] == '-')
          throw FlagError(flag, fmt::format("{} expects an integer >= 0, got '{}'", flag, v));
        const unsigned long long x = std::stoull(v, &used);
        if (x > std::numeric_limits<T>::max()) throw std::out_of_range(v);
        canonical = std::to_string(x);
      } else {
        const long long x = std::stoll(v, &used);
        if (x < (long long)std::numeric_limits<T>::min() || x > (long long)std::numeric_limits<T>::max())
          throw std::out_of_range(v);
        canonical = std::to_string(x);
      }
      if (used != v.size()) throw std::invalid_argument(v);
      v = canonical;
      return "";
    } catch (const std::out_of_range&) {
      throw FlagError(flag, fmt::format("{} is out of range, got '{}'", flag, v));
    } catch (const std::invalid_argument&) {
      throw FlagError(flag, fmt::format("{} expects a number, got '{}'", flag, v));
    }
  };
  return CLI::Validator(check, std::is_floating_point_v<T> ? "X" : "N");
}

// --config's file must be a regular file of at most kMaxConfigBytes; checked when the flag is
// parsed (trigger_on_parse), before CLI11 opens it.
std::string check_config_file(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    throw FlagError("--config", fmt::format("--config: '{}' is not a readable file", path));
  const auto bytes = std::filesystem::file_size(path, ec);
  if (ec || bytes > kMaxConfigBytes)
    throw FlagError("--config", fmt::format("--config: '{}' is {} bytes, more than a configuration ({} at most)",
                                            path, bytes, kMaxConfigBytes));
  return "";
}

// The flags of `a`, bound to its fields, each with its current value as CLI11's default string
// (what config_to_str writes for a flag that was not given). Numbers go through number<T>.
void add_flags(CLI::App& app, Args& a) {
  auto text = [&](const char* name, std::string& v) { app.add_option(name, v)->default_str(v); };
  auto num = [&](const char* name, auto& v) {
    using T = std::decay_t<decltype(v)>;
    app.add_option(name, v)->default_str(fmt::format("{}", v))->check(number<T>(name));
  };
  auto flag = [&](const char* names, bool& v) { app.add_flag(names, v)->default_str(v ? "true" : "false"); };
  app.add_option("mode", a.mode)->default_str(a.mode);
  text("--model", a.model);
  num("--epochs", a.epochs);
  num("--batch-size", a.batch_size);
  text("--optimizer", a.optimizer);
  num("--lr", a.lr);
  num("--momentum", a.momentum);
  num("--weight-decay", a.weight_decay);
  text("--scheduler", a.scheduler);
  flag("--nesterov,!--no-nesterov", a.nesterov);
  flag("--augment", a.augment);
  num("--seed", a.seed);
  num("--threads", a.threads);
  text("--data", a.data);
  text("--out", a.out);
  text("--resume", a.resume);
  text("--weights", a.weights);
  num("--limit", a.limit);
  flag("--quiet", a.quiet);
  flag("--distributed", a.distributed);
  text("--dot", a.dot);
}

}  // namespace

Args parse_args(int argc, const char* const* argv) {
  Args a;
  CLI::App app("tapegrad-train", "tapegrad-train");
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);  // --lr 1 --lr 2: 2
  add_flags(app, a);
  CLI::Option* config = app.set_config("--config");
  config->check(CLI::Validator(check_config_file, "FILE"))->trigger_on_parse();
  app.allow_config_extras(CLI::config_extras_mode::error);
  app.allow_extras();  // unknown flags are reported below, with a suggestion
  // The flags typed on the command line: a bad value of any other came from --config.
  std::set<std::string> typed;
  for (int i = 1; i < argc; ++i) {
    const std::string w = argv[i];
    if (w.rfind("--", 0) == 0) typed.insert(w.substr(0, w.find('=')));
  }
  auto config_file = [&] { return config->count() ? config->as<std::string>() : std::string(); };
  auto from_config = [&](const std::string& flag, const std::string& what) -> UsageError {
    const std::string file = config_file();
    if (file.empty() || typed.count(flag) || flag == "--config") return UsageError(what);
    return UsageError(fmt::format("--config {}: {} (the key '{}')", file, what, flag.substr(2)));
  };
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    a.help = true;
    return a;
  } catch (const FlagError& e) {
    throw from_config(e.flag, e.what());
  } catch (const CLI::ArgumentMismatch& e) {
    // "--model: 1 required TEXT missing": the flag was the last word, or followed by another flag
    const std::string m = e.what();
    const auto colon = m.find(": ");
    if (colon != std::string::npos && m.size() >= 7 && m.compare(m.size() - 7, 7, "missing") == 0)
      throw UsageError(fmt::format("{} needs a value", m.substr(0, colon)));
    throw UsageError(m);
  } catch (const CLI::ConfigError& e) {
    // CLI11's "INI was not able to parse KEY" and "KEY: This option is not allowed in a
    // configuration file", said with the file and the keys there are.
    const std::string m = e.what(), extra = "INI was not able to parse ", not_here = ": This option is not allowed";
    std::string key = m.rfind(extra, 0) == 0 ? m.substr(extra.size()) : std::string();
    if (key.size() > 3 && key.compare(key.size() - 3, 3, ".++") == 0)
      throw UsageError(fmt::format("--config {}: a section [{}]; the keys are top-level, as in the config.toml a "
                                   "run writes", config_file(), key.substr(0, key.size() - 3)));
    if (!key.empty())
      throw UsageError(fmt::format("--config {}: unknown key '{}'; the keys are the long flags without --, as in "
                                   "the config.toml a run writes", config_file(), key));
    if (m.find(not_here) != std::string::npos)
      throw UsageError(fmt::format("--config {}: '{}' cannot be set in a configuration file", config_file(),
                                   m.substr(0, m.find(not_here))));
    throw UsageError(fmt::format("--config {}: {}", config_file(), m));
  } catch (const CLI::FileError& e) {
    throw UsageError(fmt::format("--config: {}", e.what()));
  } catch (const CLI::Error& e) {
    throw UsageError(e.what());
  }
  a.config = config_file();
  if (!app.remaining().empty()) {
    const std::string arg = app.remaining().front();
    if (arg.rfind("-", 0) == 0) throw UsageError(cli_flags::unknown_option(app, arg));
    throw UsageError(fmt::format("unexpected argument '{}' (the one word without a flag is train or evaluate)", arg));
  }
  auto fail = [&](const std::string& flag, const std::string& what) { return from_config(flag, what); };
  if (a.mode != "train" && a.mode != "evaluate")  // the positional word (or mode = ... in --config)
    throw UsageError(fmt::format("the command is train or evaluate, got '{}'", a.mode));
  auto one_of = [&](const std::string& flag, const std::string& v, const std::vector<std::string>& allowed) {
    if (std::find(allowed.begin(), allowed.end(), v) == allowed.end())
      throw fail(flag, fmt::format("{} must be one of {}, got '{}'", flag, fmt::join(allowed, ", "), v));
  };
  if (a.model == "list") {  // the trainer prints the models and their sizes, and trains nothing
    a.mode = "list";
    return a;
  }
  one_of("--model", a.model, models::names());
  one_of("--optimizer", a.optimizer, optimizer_names());
  one_of("--scheduler", a.scheduler, scheduler_names());
  if (a.epochs < 1) throw fail("--epochs", fmt::format("--epochs must be at least 1, got {}", a.epochs));
  if (a.batch_size < 1) throw fail("--batch-size", fmt::format("--batch-size must be at least 1, got {}", a.batch_size));
  if (!(a.lr > 0)) throw fail("--lr", fmt::format("--lr must be positive, got {}", a.lr));
  if (a.threads < 0) throw fail("--threads", fmt::format("--threads must be positive, got {}", a.threads));
  if (a.limit < 0) throw fail("--limit", fmt::format("--limit must be positive, got {}", a.limit));
  if (a.mode == "evaluate" && a.weights.empty()) throw UsageError("evaluate needs --weights FILE");
#ifndef TAPEGRAD_HAS_MPI
  if (a.distributed)
    throw fail("--distributed", "--distributed: this tapegrad-train was built without MPI (TAPEGRAD_MPI is off)");
#endif
  if (a.distributed && a.mode == "evaluate")
    throw UsageError("--distributed is for training; evaluate runs in one process");
  return a;
}

std::string config_toml(const Args& a) {
  Args v = a;
  v.resume.clear();  // a straight run with these flags ends where the resumed one did
  CLI::App app("tapegrad-train");
  add_flags(app, v);
  return "# tapegrad-train's effective configuration; tapegrad-train --config FILE repeats the run\n"
         "# (flags on the command line override these; --help lists them)\n" +
         app.config_to_str(/*default_also=*/true, /*write_description=*/false);
}

}  // namespace trainer
