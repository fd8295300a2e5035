#pragma once
// The parts of tapegrad-train that read user input, apart from its main loop: the command line
// and the checkpoint a run resumes from. A library of their own so that the fuzz harnesses
// (tests/fuzz/) call exactly the code the trainer runs.
#include <tapegrad.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace trainer {

struct Args {
  std::string mode = "train";
  std::string model = "cnn-bn";
  int64_t epochs = 10;
  int64_t batch_size = 64;
  std::string optimizer = "sgd";
  double lr = 0.02;
  double momentum = 0.9;
  double weight_decay = 5e-4;
  std::string scheduler = "cosine";
  bool augment = false;
  bool nesterov = true;
  uint64_t seed = 1;
  int threads = 0;  // 0: all cores
  std::string data = tg::data::MNIST::kDefaultRoot;
  std::string out = "out";
  std::string resume;
  std::string weights;  // evaluate mode
  int64_t limit = 0;    // use only the first N training samples (smoke tests)
  bool quiet = false;
  bool distributed = false;  // under mpirun: one rank per process, DistributedDataParallel
  std::string dot;           // --dot FILE: the first training step's graph (Graphviz DOT)
  bool help = false;   // --help: print kUsage and do nothing else
  std::string config;  // --config FILE: the TOML/INI file the flags not on the command line came from
};

/// The text of --help.
extern const char* const kUsage;

/// The --optimizer and --scheduler names, in the order --help lists them.
const std::vector<std::string>& optimizer_names();
const std::vector<std::string>& scheduler_names();

/// A bad command line, or a flag that a resumed run cannot change: the trainer prints the
/// message with a pointer to --help and exits with code 2.
class UsageError : public tg::Error {
 public:
  explicit UsageError(const std::string& what) : tg::Error(what) {}
};

/// The command line (argv[0] is the program), parsed by CLI11 (trainer_args.cpp). `--config FILE`
/// reads the flags from a TOML or INI file (`epochs = 3`, `model = "lenet"`, `augment = true`:
/// the long flags without "--"); a flag on the command line overrides the file. Throws UsageError
/// naming the flag (and the file, for a value that came from it), what it expects and what it got.
Args parse_args(int argc, const char* const* argv);

/// The effective configuration of a run as a TOML file that `--config` reads back to the same
/// Args (every flag but --resume, --config and --help, with the values `a` holds; numbers as
/// their shortest exact decimal). The trainer writes it to <out>/config.toml.
std::string config_toml(const Args& a);

std::unique_ptr<tg::optim::Optimizer> make_optimizer(const Args& a, const std::vector<tg::Tensor>& params);
/// The --scheduler of `a` on `opt`, stepped once per epoch; null for "none".
std::unique_ptr<tg::optim::LRScheduler> make_scheduler(const Args& a, tg::optim::Optimizer& opt);

struct EpochMetrics {
  int64_t epoch = 0;
  double train_loss = 0, train_acc = 0, test_loss = 0, test_acc = 0, test_top5 = 0, seconds = 0, samples_per_s = 0;
};

/// Model, optimizer, scheduler, RNG, epoch and history in one safetensors file, written
/// atomically by tg::save_tensors.
void save_checkpoint(const std::string& path, const Args& a, const tg::nn::Module& model, tg::optim::Optimizer& opt,
                     tg::optim::LRScheduler* sched, int64_t epoch, const std::vector<EpochMetrics>& hist);

/// What a checkpoint restores besides the tensors it loads.
struct Resumed {
  int64_t epochs_done = 0;
  std::vector<EpochMetrics> history;
};

/// Reads the checkpoint `path` written by save_checkpoint into model, opt and sched (the
/// optimizer's buffers; its options stay this run's flags) and restores the RNG. A flag that
/// cannot change on resume is a UsageError; a changed one is said on stdout. A file that is not
/// such a checkpoint is a tg::Error naming it. `say` false: nothing printed (ranks but 0).
Resumed load_checkpoint(const std::string& path, const Args& a, tg::nn::Module& model, tg::optim::Optimizer& opt,
                        tg::optim::LRScheduler* sched, bool say = true);

/// The tensors of `all` whose names start with `prefix`, with the prefix removed.
std::map<std::string, tg::Tensor> with_prefix(const std::map<std::string, tg::Tensor>& all, const std::string& prefix);

}  // namespace trainer
