// libFuzzer harness of the trainer's checkpoint reader (trainer::load_checkpoint, what
// `tapegrad-train --resume FILE` runs): safetensors parsing, the run flags in the metadata,
// model, optimizer and scheduler state, the RNG state and the metrics history. The first byte
// picks the optimizer and schedule (checkpoint_config.hpp). Any exception but tg::Error (a
// UsageError is one), any sanitizer report, or a hang (libFuzzer's -timeout) is a finding.
#include <cstdio>

#include <tapegrad.hpp>

#include "checkpoint_config.hpp"
#include "fuzz_input.hpp"
#include "tiny_model.hpp"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // The reader reports changed flags on stdout; libFuzzer's own output is on stderr.
  if (!std::freopen("/dev/null", "w", stdout)) return 1;
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  static fuzz::InputFile file;
  const std::string& path = file.write(data + 1, size - 1);
  const trainer::Args args = fuzz::config_args(data[0]);
  tg::manual_seed(args.seed);
  auto model = fuzz::tiny_model();
  auto opt = trainer::make_optimizer(args, model->parameters());
  auto sched = trainer::make_scheduler(args, *opt);
  try {
    const trainer::Resumed r = trainer::load_checkpoint(path, args, *model, *opt, sched.get());
    fuzz::check(r.epochs_done >= 0, "load_checkpoint accepted a negative epoch count");
    fuzz::outcome("load_checkpoint");
  } catch (const tg::Error& e) {
    fuzz::outcome("load_checkpoint", e.what());
  }
  return 0;
}
