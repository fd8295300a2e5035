// Peak memory of one training step (forward + backward) through a stack of conv-BN-ReLU blocks,
// for the side-by-side with PyTorch (bench/pytorch_nn.py measures the same model the same way):
//
//   blocks x [Conv2d(64, 64, 3, padding 1), BatchNorm2d(64), ReLU], input [32, 64, 32, 32],
//   loss = mean(output), training mode, one thread unless --threads.
//
// One warm-up step, then the allocator's cache is returned to the system (detail::empty_cache(),
// and malloc_trim for glibc's heap), the resident set is read (the baseline), the high-water mark
// is reset (writing "5" to /proc/self/clear_refs) and one measured step runs. Reported:
//   - RSS: baseline before the step, peak during it (VmHWM), and their difference (what the step
//     itself needs, comparable across programs whose start-up sizes differ), plus the peak of the
//     whole process (VmHWM before the reset: start-up + model + warm-up step);
//   - tensor bytes: detail::live_bytes() before the step and detail::peak_live_bytes() during it
//     (storages only, rounded to the allocator's size classes; kernels' scratch buffers are not
//     tensors and show only in RSS).
// Without releasing the cache, the measured step would be served from blocks the warm-up left
// behind and its RSS difference would be about zero: the baseline would already hold them.
//
//   build-bench-nn/bench/peak_memory [--blocks 10] [--threads 1] [--json out.json]
#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>

#include "proc_memory.hpp"
#include "tapegrad.hpp"

namespace {

using bench::kMiB;
using bench::reset_hwm;
using bench::status_bytes;

void step(tg::nn::Sequential& model, const tg::Tensor& x) {
  tg::Tensor loss = model.forward(x).mean();
  loss.backward();
}

}  // namespace

int main(int argc, char** argv) {
  int blocks = 10, threads = 1;
  std::string json;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--blocks" && i + 1 < argc) blocks = std::atoi(argv[++i]);
    else if (a == "--threads" && i + 1 < argc) threads = std::atoi(argv[++i]);
    else if (a == "--json" && i + 1 < argc) json = argv[++i];
    else {
      std::fprintf(stderr, "usage: %s [--blocks N] [--threads N] [--json FILE]\n", argv[0]);
      return 2;
    }
  }
  tg::set_num_threads(threads);
  const double rss_start = status_bytes("VmRSS");

  tg::manual_seed(1);
  tg::nn::Sequential model;
  for (int b = 0; b < blocks; ++b) {
    model.push_back(std::make_shared<tg::nn::Conv2d>(tg::nn::Conv2dOptions(64, 64, 3).padding(1)));
    model.push_back(std::make_shared<tg::nn::BatchNorm2d>(tg::nn::BatchNorm2dOptions(64)));
    model.push_back(std::make_shared<tg::nn::ReLU>());
  }
  model.train();
  tg::Tensor x = tg::randn({32, 64, 32, 32});

  step(model, x);  // warm-up
  model.zero_grad();
  tg::detail::empty_cache();
  malloc_trim(0);

  const double hwm_process_before = status_bytes("VmHWM");
  const bool hwm_reset = reset_hwm();
  const double rss_before = status_bytes("VmRSS");
  const size_t live_before = tg::detail::live_bytes();
  tg::detail::reset_peak_live_bytes();

  const auto t0 = std::chrono::steady_clock::now();
  step(model, x);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  const double rss_peak = status_bytes("VmHWM");
  const size_t live_peak = tg::detail::peak_live_bytes();
  const double process_peak = std::max(hwm_process_before, rss_peak);

  std::printf("tapegrad: %d x [Conv2d(64, 64, 3, padding 1), BatchNorm2d(64), ReLU], input [32, 64, 32, 32], "
              "forward + backward of mean(out), %d thread(s)\n", blocks, threads);
  std::printf("  RSS at start %.1f MiB; before the measured step %.1f MiB; peak during it %.1f MiB%s\n",
              rss_start / kMiB, rss_before / kMiB, rss_peak / kMiB,
              hwm_reset ? "" : " (clear_refs not permitted: peak of the whole process)");
  std::printf("  RSS the step added (peak - before): %.1f MiB; process peak RSS %.1f MiB\n",
              (rss_peak - rss_before) / kMiB, process_peak / kMiB);
  std::printf("  tensor bytes (detail::live_bytes): %.1f MiB before, peak %.1f MiB, the step added %.1f MiB\n",
              double(live_before) / kMiB, double(live_peak) / kMiB, double(live_peak - live_before) / kMiB);
  std::printf("  measured step: %.2f s\n", seconds);

  if (!json.empty()) {
    std::ofstream f(json);
    f << "{\"library\": \"tapegrad\", \"blocks\": " << blocks << ", \"threads\": " << threads
      << ", \"hwm_reset\": " << (hwm_reset ? "true" : "false") << ", \"rss_start\": " << rss_start
      << ", \"rss_before\": " << rss_before << ", \"rss_peak\": " << rss_peak << ", \"process_peak\": " << process_peak
      << ", \"live_before\": " << live_before << ", \"live_peak\": " << live_peak << ", \"step_seconds\": " << seconds
      << "}\n";
    if (!f) {
      std::fprintf(stderr, "peak_memory: cannot write %s\n", json.c_str());
      return 1;
    }
  }
  return 0;
}
