// Gradient checkpointing: peak memory and step time of a deep conv-BN-ReLU stack, trained
// plainly and with tg::checkpoint_sequential, in one process on the same model and input:
//
//   blocks x Sequential[Conv2d(C, C, 3, padding 1), BatchNorm2d(C), ReLU], input [N, C, H, H],
//   loss = mean(output), training mode; checkpointed: checkpoint_sequential(stack, segments, x)
//   with segments = round(sqrt(blocks)) unless --segments.
//
// Memory: before each mode's measured step the allocator's cache goes back to the system
// (detail::empty_cache, malloc_trim) and the high-water marks are reset; reported are the tensor
// bytes the step adds (detail::peak_live_bytes() - live_bytes() before: storages only) and the
// RSS it adds (VmHWM - VmRSS before; includes kernel scratch). Time: the median of --reps steps
// per mode after a warm-up step, the modes alternating so that a change in the machine's load
// affects both alike. A step is zero_grad + forward + backward.
//
//   build-bench/bench/checkpoint_memory [--blocks 50] [--segments S] [--batch 32] [--channels 64]
//                                       [--size 32] [--reps 3] [--threads 1]
#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "proc_memory.hpp"
#include "tapegrad.hpp"

namespace {

using bench::kMiB;
using bench::reset_hwm;
using bench::status_bytes;

struct Memory {
  double tensor_added, rss_added;
};

}  // namespace

int main(int argc, char** argv) {
  int blocks = 50, segments = 0, batch = 32, channels = 64, size = 32, reps = 3, threads = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::atoi(argv[++i]) : -1; };
    if (a == "--blocks") blocks = next();
    else if (a == "--segments") segments = next();
    else if (a == "--batch") batch = next();
    else if (a == "--channels") channels = next();
    else if (a == "--size") size = next();
    else if (a == "--reps") reps = next();
    else if (a == "--threads") threads = next();
    else {
      std::fprintf(stderr,
                   "usage: %s [--blocks N] [--segments S] [--batch N] [--channels C] [--size H] [--reps R] "
                   "[--threads T]\n",
                   argv[0]);
      return 2;
    }
  }
  if (segments <= 0) segments = std::max(1, int(std::lround(std::sqrt(double(blocks)))));
  tg::set_num_threads(threads);

  tg::manual_seed(1);
  auto stack = std::make_shared<tg::nn::Sequential>();
  for (int b = 0; b < blocks; ++b) {
    auto block = std::make_shared<tg::nn::Sequential>();
    block->push_back(std::make_shared<tg::nn::Conv2d>(tg::nn::Conv2dOptions(channels, channels, 3).padding(1)));
    block->push_back(std::make_shared<tg::nn::BatchNorm2d>(tg::nn::BatchNorm2dOptions(channels)));
    block->push_back(std::make_shared<tg::nn::ReLU>());
    stack->push_back(block);
  }
  stack->train();
  const tg::Tensor x = tg::randn({batch, channels, size, size});

  auto step = [&](bool checkpointed) {
    stack->zero_grad();
    tg::Tensor y = checkpointed ? tg::checkpoint_sequential(stack, segments, x) : stack->forward(x);
    y.mean().backward();
  };
  auto measure_memory = [&](bool checkpointed) {
    stack->zero_grad();
    tg::detail::empty_cache();
    malloc_trim(0);
    reset_hwm();
    const double rss_before = status_bytes("VmRSS");
    const size_t live_before = tg::detail::live_bytes();
    tg::detail::reset_peak_live_bytes();
    step(checkpointed);
    return Memory{double(tg::detail::peak_live_bytes() - live_before), status_bytes("VmHWM") - rss_before};
  };
  auto seconds = [&](bool checkpointed) {
    const auto t0 = std::chrono::steady_clock::now();
    step(checkpointed);
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };

  step(false);  // warm-up: the kernels' first-use costs, the allocator's free lists
  step(true);
  const Memory plain = measure_memory(false), ckpt = measure_memory(true);
  std::vector<double> t_plain, t_ckpt;
  for (int r = 0; r < reps; ++r) {
    t_plain.push_back(seconds(false));
    t_ckpt.push_back(seconds(true));
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  const double tp = median(t_plain), tc = median(t_ckpt);

  std::printf("%d x [Conv2d(%d, %d, 3, padding 1), BatchNorm2d(%d), ReLU], input [%d, %d, %d, %d], "
              "forward + backward of mean(out), %d thread(s); checkpointed: %d segments\n",
              blocks, channels, channels, channels, batch, channels, size, size, threads, segments);
  std::printf("%-14s %18s %16s %14s\n", "", "tensor MiB added", "RSS MiB added", "step s (med)");
  std::printf("%-14s %18.1f %16.1f %14.3f\n", "plain", plain.tensor_added / kMiB, plain.rss_added / kMiB, tp);
  std::printf("%-14s %18.1f %16.1f %14.3f\n", "checkpointed", ckpt.tensor_added / kMiB, ckpt.rss_added / kMiB, tc);
  std::printf("ratio          %18.3f %16.3f %14.3f   (checkpointed / plain)\n",
              ckpt.tensor_added / plain.tensor_added, ckpt.rss_added / plain.rss_added, tc / tp);
  std::printf("step times, s: plain");
  for (double t : t_plain) std::printf(" %.3f", t);
  std::printf("; checkpointed");
  for (double t : t_ckpt) std::printf(" %.3f", t);
  std::printf("\n");
  return 0;
}
