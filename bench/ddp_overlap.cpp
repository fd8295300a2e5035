// How much of DistributedDataParallel's all-reduce time backward hides (issue 15), run under
// mpirun: for each bucket size, training steps of a trainer model on random data, timing the step
// and the wait at the end of backward (DistributedDataParallel::last_wait_seconds: the
// communication backward did not hide; of the rank that ended backward last, so that load
// imbalance between the ranks is not counted as communication), then the same buckets all-reduced alone, blocking, with
// nothing else running (the communication there is to hide). hidden = 1 - wait / alone.
//
//   mpirun --allow-run-as-root --oversubscribe -np 2 build-bench/bench/ddp_overlap cnn-bn 40 32 1
//   arguments: model (a tapegrad-train --model name), steps, per-rank batch, threads per rank
#include <tapegrad.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "models.hpp"

namespace dist = tg::distributed;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  dist::init(&argc, &argv);
  const std::string model_name = argc > 1 ? argv[1] : "cnn-bn";
  const int steps = argc > 2 ? std::atoi(argv[2]) : 40;
  const int64_t batch = argc > 3 ? std::atoll(argv[3]) : 32;
  const int threads = argc > 4 ? std::atoi(argv[4]) : 1;
  tg::set_num_threads(threads);
  const int rank = dist::rank(), world = dist::world_size();
  if (rank == 0) {
    std::printf("%s\n", tg::config_string().c_str());
    std::printf("model %s, %d ranks x %d threads, batch %lld per rank, %d timed steps per bucket size\n",
                model_name.c_str(), world, threads, (long long)batch, steps);
    std::printf("| bucket cap MiB | buckets | started in backward | step ms | wait ms | all-reduce alone ms | hidden |\n");
    std::printf("|---|---|---|---|---|---|---|\n");
  }
  for (double cap : {25.0, 4.0, 1.0, 0.25}) {
    tg::manual_seed(uint64_t(rank) + 1);
    auto model = models::make_model(model_name);
    auto ddp = std::make_shared<dist::DistributedDataParallel>(model, dist::DistributedDataParallelOptions().bucket_cap_mb(cap));
    tg::optim::SGD opt(ddp->parameters(), tg::optim::SGDOptions(0.01).momentum(0.9));
    tg::Tensor x = tg::randn({batch, 1, 28, 28});
    tg::Tensor y = tg::randint(0, 10, {batch});
    std::vector<double> step_s, wait_s, alone_s;
    size_t in_backward = 0;
    for (int s = 0; s < steps + 3; ++s) {
      dist::barrier();
      const auto t0 = Clock::now();
      tg::Tensor loss = tg::nn::functional::cross_entropy(ddp->forward(x), y);
      opt.zero_grad();
      loss.backward();
      opt.step();
      const double dt = seconds_since(t0);
      if (s < 3) continue;  // warm-up: allocator cache, first-touch pages
      step_s.push_back(dt);
      // The rank that ends backward last waits only for the communication still in flight; the
      // others also wait for it (load imbalance), so the step's exposed communication is the
      // smallest wait over ranks.
      tg::Tensor w = tg::full({1}, ddp->last_wait_seconds(), tg::kFloat64);
      dist::all_reduce(w, dist::ReduceOp::Min);
      wait_s.push_back(w.item<double>());
      in_backward = ddp->buckets_started_in_backward();
    }
    // The same buckets alone: every rank idle but for the all-reduces, as blocking calls.
    std::vector<tg::Tensor> flats;
    for (int64_t n : ddp->bucket_numels()) flats.push_back(tg::zeros({n}));
    for (int s = 0; s < steps + 3; ++s) {
      dist::barrier();
      const auto t0 = Clock::now();
      for (const tg::Tensor& f : flats) dist::all_reduce(f);
      if (s >= 3) alone_s.push_back(seconds_since(t0));
    }
    // Each rank's medians, the largest over ranks (the slower rank sets the pace; the waits are
    // already the same on every rank).
    tg::Tensor m = tg::tensor({median(step_s), median(wait_s), median(alone_s)}, {3}, tg::kFloat64);
    dist::all_reduce(m, dist::ReduceOp::Max);
    const std::vector<double> mv = m.to_vector<double>();
    const double step = mv[0], wait = mv[1], alone = mv[2];
    if (rank == 0)
      std::printf("| %g | %zu | %zu | %.2f | %.3f | %.3f | %.0f%% |\n", cap, ddp->bucket_count(), in_backward,
                  step * 1e3, wait * 1e3, alone * 1e3, 100.0 * std::max(0.0, 1.0 - wait / alone));
  }
  dist::finalize();
}
