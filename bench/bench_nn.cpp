// nn layers, forward + backward, at the sizes of the conv layer in ../shared/ENVIRONMENT.md
// ([32, 64, 32, 32] float32), for the side-by-side with PyTorch in bench/pytorch_nn.py:
//
//   NN/conv2d      conv2d 64 -> 64, 3x3, padding 1, with bias (counter FLOPS: 3 x 2 N O C k k H W,
//                  forward + the two backward GEMMs, 7.25 GFLOP per step)
//   NN/max_pool2d  max_pool2d 2x2, stride 2 (counter items_per_second: input elements)
//   NN/batch_norm  batch_norm in training mode, with weight, bias and running statistics
//                  (counter items_per_second: input elements)
//
// Each step: out = op(x, ...), out.backward(R) with R a fixed random tensor of out's shape (the
// same as backward of sum(out * R), without timing that product), then every gradient reset, as
// optimizer.zero_grad(set_to_none=True). x requires grad; weight and bias are leaves that do.
// Args: threads (tg::set_num_threads). Wall time per iteration (UseRealTime: at 2 threads the
// main thread's CPU time would count only its share); bench/run_nn.sh reports the median over
// repetitions and, as a second view, the best repetition (from the per-repetition JSON).
// Run: build-bench-nn/bench/bench_nn (see bench/run_nn.sh).
#include <benchmark/benchmark.h>

#include "tapegrad.hpp"

namespace {

namespace F = tg::nn::functional;

constexpr int64_t kN = 32, kC = 64, kH = 32, kW = 32, kK = 3;
constexpr int64_t kInElems = kN * kC * kH * kW;

void reset_grads(std::initializer_list<tg::Tensor*> ts) {
  for (tg::Tensor* t : ts) t->mutable_grad() = tg::Tensor();
}

void BM_Conv2d(benchmark::State& st) {
  tg::set_num_threads(int(st.range(0)));
  tg::manual_seed(1);
  tg::Tensor x = tg::randn({kN, kC, kH, kW}).requires_grad_();
  tg::Tensor w = (tg::randn({kC, kC, kK, kK}) * 0.05).requires_grad_();
  tg::Tensor b = tg::randn({kC}).requires_grad_();
  const F::ConvOptions opts = F::ConvOptions().padding(1);
  tg::Tensor r = tg::randn({kN, kC, kH, kW});
  auto step = [&] {
    tg::Tensor out = F::conv2d(x, w, b, opts);
    out.backward(r);
    benchmark::DoNotOptimize(x.grad().impl().get());
    benchmark::DoNotOptimize(w.grad().impl().get());
    reset_grads({&x, &w, &b});
  };
  step();  // warm-up: the caching allocator then serves every block of the step
  for (auto _ : st) step();
  const double flops = 3.0 * 2.0 * double(kN * kC * kC * kK * kK * kH * kW);
  st.counters["FLOPS"] = benchmark::Counter(double(st.iterations()) * flops, benchmark::Counter::kIsRate);
}

void BM_MaxPool2d(benchmark::State& st) {
  tg::set_num_threads(int(st.range(0)));
  tg::manual_seed(2);
  tg::Tensor x = tg::randn({kN, kC, kH, kW}).requires_grad_();
  tg::Tensor r = tg::randn({kN, kC, kH / 2, kW / 2});
  const F::PoolOptions opts = F::PoolOptions(F::IntList{2}).stride(2);
  auto step = [&] {
    tg::Tensor out = F::max_pool2d(x, opts);
    out.backward(r);
    benchmark::DoNotOptimize(x.grad().impl().get());
    reset_grads({&x});
  };
  step();
  for (auto _ : st) step();
  st.SetItemsProcessed(int64_t(st.iterations()) * kInElems);
}

void BM_BatchNorm(benchmark::State& st) {
  tg::set_num_threads(int(st.range(0)));
  tg::manual_seed(3);
  tg::Tensor x = tg::randn({kN, kC, kH, kW}).requires_grad_();
  tg::Tensor weight = tg::ones({kC}).requires_grad_();
  tg::Tensor bias = tg::zeros({kC}).requires_grad_();
  tg::Tensor running_mean = tg::zeros({kC});
  tg::Tensor running_var = tg::ones({kC});
  tg::Tensor r = tg::randn({kN, kC, kH, kW});
  auto step = [&] {
    tg::Tensor out = F::batch_norm(x, running_mean, running_var, weight, bias, /*training=*/true);
    out.backward(r);
    benchmark::DoNotOptimize(x.grad().impl().get());
    reset_grads({&x, &weight, &bias});
  };
  step();
  for (auto _ : st) step();
  st.SetItemsProcessed(int64_t(st.iterations()) * kInElems);
}

void nn_args(benchmark::internal::Benchmark* b) {
  b->ArgName("threads")->Arg(1)->Arg(2);
  b->UseRealTime()->Unit(benchmark::kMillisecond)->MinTime(0.5);
}
BENCHMARK(BM_Conv2d)->Name("NN/conv2d")->Apply(nn_args);
BENCHMARK(BM_MaxPool2d)->Name("NN/max_pool2d")->Apply(nn_args);
BENCHMARK(BM_BatchNorm)->Name("NN/batch_norm")->Apply(nn_args);

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  // The OpenBLAS kernel upgrade (autograd/blas_core.cpp) happens before the first GEMM; do it
  // now so that no benchmark's first step pays for it, and record which kernels are in use.
  {
    tg::Tensor t = tg::ones({2, 2});
    benchmark::DoNotOptimize(tg::matmul(t, t).impl().get());
  }
  benchmark::AddCustomContext("openblas_core", tg::detail::blas_core_name());
  benchmark::AddCustomContext("tapegrad", tg::config_string());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
