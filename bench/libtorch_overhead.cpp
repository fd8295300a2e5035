// libtorch's side of bench_autograd's Tape/* benchmarks, measured the same way from C++ (no
// Python in between): a chain of 100 ops on one-element tensors, y = y * w; y = y + w with a
// leaf w that requires grad, forward + backward; and the number-operand loop
// y = y * 1.0001 + 0.0001. Process CPU time per op, the median of 5 batches of >= 0.5 s, one
// thread. Built when CMake finds Debian's libtorch-dev (find_package(Torch)); bench/run.sh runs it.
#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <vector>

namespace {

constexpr int kChainOps = 100;

double cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

template <typename F>
double ns_per_op(F step) {
  std::vector<double> batches;
  for (int b = 0; b < 5; ++b) {
    int64_t n = 0;
    const double t0 = cpu_seconds();
    double t1 = t0;
    while (t1 - t0 < 0.5) {
      step();
      ++n;
      t1 = cpu_seconds();
    }
    batches.push_back((t1 - t0) / double(n * kChainOps) * 1e9);
  }
  std::sort(batches.begin(), batches.end());
  return batches[batches.size() / 2];
}

}  // namespace

int main() {
  torch::set_num_threads(1);
  torch::Tensor x0 = torch::full({1}, 0.5);
  torch::Tensor w = torch::full({1}, 0.5, torch::requires_grad());
  const double tensor = ns_per_op([&] {
    torch::Tensor y = x0;
    for (int i = 0; i < kChainOps / 2; ++i) {
      y = y * w;
      y = y + w;
    }
    y.backward();
    w.mutable_grad() = torch::Tensor();
  });
  const double number = ns_per_op([&] {
    torch::Tensor y = w;
    for (int i = 0; i < kChainOps / 2; ++i) y = y * 1.0001 + 0.0001;
    y.backward();
    w.mutable_grad() = torch::Tensor();
  });
  std::printf("{\"libtorch\": \"%s\", \"chain_fwd_bwd_ns_per_op\": %.1f, \"scalar_fwd_bwd_ns_per_op\": %.1f}\n",
              TORCH_VERSION, tensor, number);
}
