// Optimizer steps over 10 million float32 parameters (one tensor), against a plain loop doing
// the same arithmetic on the same arrays; tapegrad with 1 and 2 threads (tg::set_num_threads),
// the plain loop on one. The step is memory-bound, so the counter is bytes per
// second: SGD with momentum reads p, g, buf and writes p, buf (5 × 4 bytes per element); Adam
// reads p, g, m, v and writes p, m, v (7 × 4 bytes).
//
//   build-optim/bench/bench_optim --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <cmath>
#include <tapegrad.hpp>
#include <vector>

namespace {

constexpr int64_t kN = 10'000'000;

struct Setup {
  tg::Tensor p;
  Setup() {
    tg::manual_seed(0);
    p = tg::randn({kN}).requires_grad_();
    p.mutable_grad() = tg::randn({kN}) * 1e-3;
  }
};

void count_bytes(benchmark::State& state, int arrays) {
  state.SetBytesProcessed(int64_t(state.iterations()) * kN * arrays * int64_t(sizeof(float)));
}

void SGDMomentum_tapegrad(benchmark::State& state) {
  tg::set_num_threads(int(state.range(0)));
  Setup s;
  tg::optim::SGD opt({s.p}, tg::optim::SGDOptions(1e-3).momentum(0.9));
  opt.step();  // the first step creates the momentum buffer
  for (auto _ : state) {
    opt.step();
    benchmark::ClobberMemory();
  }
  count_bytes(state, 5);
}

void SGDMomentum_plain(benchmark::State& state) {
  std::vector<float> p(kN), g(kN), b(kN);
  Setup s;
  std::copy_n(s.p.data_ptr<float>(), kN, p.data());
  std::copy_n(s.p.grad().data_ptr<float>(), kN, g.data());
  const float lr = 1e-3f, momentum = 0.9f, keep = 1.0f;  // keep = 1 − dampening
  for (auto _ : state) {
    float* __restrict pp = p.data();
    const float* __restrict gg = g.data();
    float* __restrict bb = b.data();
    for (int64_t i = 0; i < kN; ++i) {
      const float bi = momentum * bb[i] + keep * gg[i];
      bb[i] = bi;
      pp[i] -= lr * bi;
    }
    benchmark::ClobberMemory();
  }
  count_bytes(state, 5);
}

void Adam_tapegrad(benchmark::State& state) {
  tg::set_num_threads(int(state.range(0)));
  Setup s;
  tg::optim::Adam opt({s.p}, tg::optim::AdamOptions(1e-3));
  opt.step();  // the first step creates the moment buffers
  for (auto _ : state) {
    opt.step();
    benchmark::ClobberMemory();
  }
  count_bytes(state, 7);
}

void Adam_plain(benchmark::State& state) {
  std::vector<float> p(kN), g(kN), m(kN), v(kN);
  Setup s;
  std::copy_n(s.p.data_ptr<float>(), kN, p.data());
  std::copy_n(s.p.grad().data_ptr<float>(), kN, g.data());
  const double b1 = 0.9, b2 = 0.999, lr = 1e-3;
  int t = 1;
  for (auto _ : state) {
    ++t;
    const float step_size = float(lr / (1 - std::pow(b1, t))), c2 = float(std::sqrt(1 - std::pow(b2, t)));
    const float beta1 = float(b1), beta2 = float(b2), one_m_b1 = float(1 - b1), one_m_b2 = float(1 - b2), eps = 1e-8f;
    float* __restrict pp = p.data();
    const float* __restrict gg = g.data();
    float* __restrict mm = m.data();
    float* __restrict vv = v.data();
    for (int64_t i = 0; i < kN; ++i) {
      const float mi = beta1 * mm[i] + one_m_b1 * gg[i];
      const float vi = beta2 * vv[i] + one_m_b2 * gg[i] * gg[i];
      mm[i] = mi;
      vv[i] = vi;
      pp[i] -= step_size * mi / (std::sqrt(vi) / c2 + eps);
    }
    benchmark::ClobberMemory();
  }
  count_bytes(state, 7);
}

}  // namespace

BENCHMARK(SGDMomentum_tapegrad)
    ->Name("Optim/SGDMomentum/tapegrad")
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(SGDMomentum_plain)->Name("Optim/SGDMomentum/plain_loop")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(Adam_tapegrad)
    ->Name("Optim/Adam/tapegrad")
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(Adam_plain)->Name("Optim/Adam/plain_loop")->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
