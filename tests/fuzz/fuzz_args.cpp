// libFuzzer harness of tapegrad-train's command line (trainer::parse_args, CLI11): the input is
// the arguments, one per line (a --config FILE among them is read as a file would be). Accepted flags must satisfy the documented bounds and build an
// optimizer and a schedule without anything but a tg::Error; a rejected line must be a
// UsageError. Anything else, or a sanitizer report, is a finding.
#include <string>
#include <vector>

#include <tapegrad.hpp>

#include "fuzz_input.hpp"
#include "trainer.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<std::string> words = {"tapegrad-train"};
  std::string cur;
  for (size_t i = 0; i < size; ++i) {
    if (data[i] == '\n') {
      words.push_back(cur);
      cur.clear();
    } else {
      cur += char(data[i]);
    }
  }
  if (!cur.empty()) words.push_back(cur);
  std::vector<const char*> argv;
  for (const auto& w : words) argv.push_back(w.c_str());
  argv.push_back(nullptr);
  trainer::Args a;
  try {
    a = trainer::parse_args(int(words.size()), argv.data());
  } catch (const trainer::UsageError& e) {
    fuzz::outcome("parse_args", e.what());
    return 0;
  }
  fuzz::outcome("parse_args");
  if (a.help || a.mode == "list") return 0;  // --model list trains nothing
  fuzz::check(a.epochs >= 1 && a.batch_size >= 1 && a.lr > 0 && a.threads >= 0 && a.limit >= 0,
              "parse_args accepted a value outside its documented bounds");
  fuzz::check(a.mode == "train" || a.mode == "evaluate", "parse_args accepted an unknown mode");
  try {
    tg::Tensor p = tg::zeros({1}).requires_grad_();
    auto opt = trainer::make_optimizer(a, {p});
    auto sched = trainer::make_scheduler(a, *opt);
  } catch (const tg::Error&) {
  }
  return 0;
}
