#pragma once
// The runs the checkpoint harness resumes: the first input byte picks the optimizer and the
// schedule, the rest is the checkpoint file. Shared with make_seeds, which writes one valid
// checkpoint per configuration.
#include <cstdint>
#include <string>
#include <vector>

#include "trainer.hpp"

namespace fuzz {

inline const std::vector<std::string>& optimizers() {
  static const std::vector<std::string> v = {"sgd", "adam", "adamw", "rmsprop", "adagrad", "delta-bar-delta"};
  return v;
}
inline const std::vector<std::string>& schedulers() {
  static const std::vector<std::string> v = {"none", "step", "exp", "inv-time", "cosine"};
  return v;
}
inline size_t num_configs() { return optimizers().size() * schedulers().size(); }

/// The trainer's flags for configuration `c` (taken modulo num_configs()): through its own
/// parser, so they are flags a user can give.
inline trainer::Args config_args(size_t c) {
  c %= num_configs();
  const std::string opt = optimizers()[c % optimizers().size()];
  const std::string sched = schedulers()[c / optimizers().size()];
  const char* argv[] = {"tapegrad-train", "--model",  "mlp",         "--epochs",  "3",     "--batch-size",
                        "16",             "--seed",   "3",           "--optimizer", opt.c_str(), "--scheduler",
                        sched.c_str(),    "--quiet"};
  return trainer::parse_args(int(sizeof argv / sizeof *argv), argv);
}

}  // namespace fuzz
