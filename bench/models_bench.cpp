// One training step of a zoo model, as issue 12's targets define it: inputs [N, 3, S, S], 1000
// classes, cross-entropy, SGD with momentum 0.9, train mode. Reports the median samples/s over
// --steps steps after one warm-up step, and the process's peak RSS (VmHWM: the model, its
// gradients and momentum buffers included, as bench/pytorch_models.py reports torch's).
// bench/models_bench.sh runs it beside torchvision, one process per model and library.
//
//   build-bench/bench/models_bench --model resnet50 [--batch 16] [--size 64] [--steps 5]
//                                  [--threads 2] [--memory-efficient]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "proc_memory.hpp"
#include "tapegrad.hpp"

int main(int argc, char** argv) {
  namespace M = tg::models;
  std::string model_name = "resnet50";
  int batch = 16, size = 64, steps = 5, threads = 2;
  bool memory_efficient = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (a == "--model") model_name = next();
    else if (a == "--batch") batch = std::atoi(next().c_str());
    else if (a == "--size") size = std::atoi(next().c_str());
    else if (a == "--steps") steps = std::atoi(next().c_str());
    else if (a == "--threads") threads = std::atoi(next().c_str());
    else if (a == "--memory-efficient") memory_efficient = true;
    else {
      std::fprintf(stderr, "models_bench: unknown option '%s'\n", a.c_str());
      return 2;
    }
  }
  const std::map<std::string, std::function<M::ModulePtr(const M::ModelOptions&)>> zoo{
      {"alexnet", M::alexnet},   {"vgg11_bn", M::vgg11_bn}, {"vgg16_bn", M::vgg16_bn},
      {"googlenet", M::googlenet}, {"resnet18", M::resnet18}, {"resnet34", M::resnet34},
      {"resnet50", M::resnet50}, {"densenet121", M::densenet121}};
  if (!zoo.count(model_name) || batch < 1 || size < 1 || steps < 1 || threads < 1) {
    std::fprintf(stderr, "models_bench: bad arguments (model %s)\n", model_name.c_str());
    return 2;
  }
  tg::set_num_threads(threads);
  tg::manual_seed(1);
  auto model = zoo.at(model_name)(M::ModelOptions().memory_efficient(memory_efficient));
  model->train();
  tg::optim::SGD opt(model->parameters(), tg::optim::SGDOptions(0.01).momentum(0.9));
  const tg::Tensor x = tg::randn({batch, 3, size, size});
  const tg::Tensor y = tg::randint(0, 1000, {batch});
  std::vector<double> seconds;
  for (int s = 0; s <= steps; ++s) {
    const auto t0 = std::chrono::steady_clock::now();
    opt.zero_grad();
    tg::Tensor loss = tg::nn::functional::cross_entropy((*model)(x), y);
    loss.backward();
    opt.step();
    if (s > 0) seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(seconds.begin(), seconds.end());
  const double median = seconds[seconds.size() / 2];
  std::printf("tapegrad %s%s batch %d size %d threads %d: %.1f samples/s (median of %d steps), peak RSS %.0f MiB\n",
              model_name.c_str(), memory_efficient ? " (memory_efficient)" : "", batch, size, threads, batch / median,
              steps, bench::status_bytes("VmHWM") / bench::kMiB);
}
