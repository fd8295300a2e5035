// Memory over a long training run: 10^4 steps (by default) of one of the trainer's models on a
// small batch, fed by a DataLoader (shuffled, one worker thread, restarted every epoch) over an
// in-memory synthetic data set (--workers 0: batches on the training thread), SGD with momentum, a cosine schedule per epoch and an evaluation
// under NoGradGuard after every epoch. Every --every steps it prints the resident set (VmRSS)
// and the allocator's own counters: bytes of live storages, bytes cached for reuse, and the
// high-water mark of live bytes. After the warm-up (the first report) a leak shows as a
// growing column; the program exits 1 if RSS grew by more than --tolerance-mib from the
// first report to the last (docs/reliability.md has a run).
//
//   build-bench/bench/steady_memory [--model mlp] [--steps 10000] [--batch-size 16] [--every 1000]
//                                   [--threads 1] [--workers 1] [--tolerance-mib 2]
#include <malloc.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "models.hpp"
#include "proc_memory.hpp"
#include "tapegrad.hpp"

namespace {

namespace F = tg::nn::functional;
using bench::kMiB;
using tg::Tensor;

// 2,048 random 28x28 images whose class brightens one row, as the CLI test's data.
struct Synthetic : tg::data::Dataset {
  Tensor images, labels;
  Synthetic() {
    tg::manual_seed(7);
    labels = tg::randint(0, 10, {2048}, tg::kInt64);
    images = tg::rand({2048, 1, 28, 28}) * 0.25;
    auto lab = labels.to_vector<int64_t>();
    float* p = images.data_ptr<float>();
    for (size_t i = 0; i < lab.size(); ++i)
      for (int c = 0; c < 28; ++c) p[i * 784 + size_t(2 + 2 * lab[i]) * 28 + size_t(c)] = 1.0f;
  }
  int64_t size() const override { return labels.size(0); }
  tg::data::Example get(int64_t i) const override {
    return {tg::slice(images, 0, i, i + 1).reshape({1, 28, 28}), tg::slice(labels, 0, i, i + 1).reshape({})};
  }
  tg::data::Example get_batch(const std::vector<int64_t>& idx) const override {
    const Tensor at = tg::tensor(std::vector<double>(idx.begin(), idx.end()), {int64_t(idx.size())}, tg::kInt64);
    return {tg::index_select(images, 0, at), tg::index_select(labels, 0, at)};
  }
};

}  // namespace

int main(int argc, char** argv) {
  std::string model_name = "mlp";
  int64_t steps = 10000, batch = 16, every = 1000;
  int threads = 1, workers = 1;
  double tolerance_mib = 2;
  for (int i = 1; i < argc; ++i) {
    const std::string f = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : nullptr;
    if (!v) {
      std::fprintf(stderr, "steady_memory: %s needs a value\n", f.c_str());
      return 2;
    }
    ++i;
    if (f == "--model") model_name = v;
    else if (f == "--steps") steps = std::atoll(v);
    else if (f == "--batch-size") batch = std::atoll(v);
    else if (f == "--every") every = std::atoll(v);
    else if (f == "--threads") threads = std::atoi(v);
    else if (f == "--workers") workers = std::atoi(v);
    else if (f == "--tolerance-mib") tolerance_mib = std::atof(v);
    else {
      std::fprintf(stderr, "steady_memory: unknown option %s\n", f.c_str());
      return 2;
    }
  }
  if (steps < 1 || batch < 1 || every < 1 || threads < 1 || workers < 0) {
    std::fprintf(stderr, "steady_memory: --steps, --batch-size, --every, --threads must be positive, --workers >= 0\n");
    return 2;
  }
  tg::set_num_threads(threads);
  auto data = std::make_shared<Synthetic>();
  tg::manual_seed(1);
  auto model = models::make_model(model_name);
  tg::optim::SGD opt(model->parameters(), tg::optim::SGDOptions(0.02).momentum(0.9).weight_decay(5e-4));
  tg::optim::CosineAnnealingLR sched(opt, std::max<int64_t>(1, steps * batch / data->size()) + 1);
  tg::data::DataLoader loader(data, tg::data::DataLoaderOptions().batch_size(batch).shuffle(true).seed(1).num_workers(workers));
  const Tensor eval_x = tg::slice(data->images, 0, 0, 256), eval_y = tg::slice(data->labels, 0, 0, 256);

  std::printf("steady_memory: %s, batch %lld, %lld steps, %d thread(s), %d loader worker(s); %s\n",
              model_name.c_str(), (long long)batch, (long long)steps, threads, workers, tg::config_string().c_str());
  std::printf("%8s %10s %10s %10s %10s %10s %10s\n", "step", "loss", "RSS MiB", "live MiB", "cached MiB",
              "peak MiB", "eval acc");
  double first_rss = -1, last_rss = 0, max_rss = 0, last_acc = 0;
  int64_t step = 0;
  for (int64_t epoch = 0; step < steps; ++epoch) {
    loader.set_epoch(epoch);
    model->train();
    for (auto& b : loader) {
      Tensor loss = F::cross_entropy((*model)(b.data), b.target);
      opt.zero_grad(true);
      loss.backward();
      opt.step();
      ++step;
      if (step % every == 0 || step == steps) {
        const double rss = bench::status_bytes("VmRSS");
        std::printf("%8lld %10.4f %10.2f %10.3f %10.3f %10.3f %10.4f\n", (long long)step, loss.item<double>(),
                    rss / kMiB, double(tg::detail::live_bytes()) / kMiB, double(tg::detail::cached_bytes()) / kMiB,
                    double(tg::detail::peak_live_bytes()) / kMiB, last_acc);
        std::fflush(stdout);
        if (first_rss < 0) first_rss = rss;
        last_rss = rss;
        max_rss = std::max(max_rss, rss);
      }
      if (step == steps) break;
    }
    sched.step();
    tg::NoGradGuard no_grad;
    model->eval();
    last_acc = tg::metrics::accuracy((*model)(eval_x), eval_y);
  }
  const double growth = (last_rss - first_rss) / kMiB, spread = (max_rss - first_rss) / kMiB;
  std::printf("RSS from the first report to the last: %+.2f MiB (highest %+.2f MiB); tolerance %.2f MiB: %s\n", growth,
              spread, tolerance_mib, growth <= tolerance_mib ? "flat" : "GROWING");
  return growth <= tolerance_mib ? 0 : 1;
}
