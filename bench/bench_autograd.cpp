// tapegrad benchmarks, each beside the baseline it is judged against, in one program so that
// ratios come from one run on one (shared, noisy) machine:
//
//   Tape/*         per-op overhead of recording and running the tape on one-element tensors
//                  (Tape/scalar_fwd_bwd: with number operands)
//                  (counter op_time: seconds per op, shown with an SI prefix, e.g. 450n = 450 ns)
//   Matmul/*       tg::matmul forward + backward vs the same three raw cblas_sgemm calls
//                  (counter FLOPS; args: n, threads; the raw calls use OpenBLAS's own threads,
//                  tapegrad whatever tg::set_num_threads arranges); Matmul/paired times both
//                  in each iteration
//   Elementwise/*  10M-float add/mul/exp/relu under NoGradGuard vs plain C++ loops (bytes_per_second)
//   Window/*       tg::unfold / tg::fold vs memcpy moving the same number of bytes (bytes_per_second)
//
// Single-threaded benchmarks report CPU time (more robust than wall time on a shared machine);
// the matmul ones report wall time, since the GEMMs run on several threads.
// Run: build-bench/bench/bench_autograd (see bench/run.sh and docs/benchmarks.md).
#include <benchmark/benchmark.h>
#include <sys/mman.h>
#include <cblas.h>
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "tapegrad.hpp"

namespace {

// ---------------------------------------------------------------------------------------------
// Tape overhead: a chain of kChainOps ops on one-element tensors, alternating mul and add with a
// leaf w that requires grad (y = y * w; y = y + w; ...), so every op records a node with two
// edges and every backward step produces a gradient for w.
constexpr int kChainOps = 100;

tg::Tensor chain(const tg::Tensor& x0, const tg::Tensor& w) {
  tg::Tensor y = x0;
  for (int i = 0; i < kChainOps / 2; ++i) {
    y = y * w;
    y = y + w;
  }
  return y;
}

void set_op_time(benchmark::State& st, int64_t ops_per_iter) {
  st.counters["op_time"] = benchmark::Counter(double(st.iterations()) * double(ops_per_iter),
                                              benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

// Forward (recording the tape) + backward + freeing the graph: the full cost of an op in training.
void BM_Tape_FwdBwd(benchmark::State& st) {
  tg::set_num_threads(1);
  tg::Tensor x0 = tg::full({1}, 0.5);
  tg::Tensor w = tg::full({1}, 0.5).requires_grad_();
  for (auto _ : st) {
    tg::Tensor y = chain(x0, w);
    y.backward();
    w.mutable_grad() = tg::Tensor();  // as optimizer.zero_grad(set_to_none=True)
  }
  set_op_time(st, kChainOps);
}
BENCHMARK(BM_Tape_FwdBwd)->Name("Tape/fwd_bwd");

// The same with number operands, y = y * 1.0001 + 0.0001 (the loop): each op records a
// node with one edge, and no tensor is made for the constant.
void BM_Tape_Scalar(benchmark::State& st) {
  tg::set_num_threads(1);
  tg::Tensor w = tg::full({1}, 0.5).requires_grad_();
  for (auto _ : st) {
    tg::Tensor y = w;
    for (int i = 0; i < kChainOps / 2; ++i) y = y * 1.0001 + 0.0001;
    y.backward();
    w.mutable_grad() = tg::Tensor();
  }
  set_op_time(st, kChainOps);
}
BENCHMARK(BM_Tape_Scalar)->Name("Tape/scalar_fwd_bwd");

// Forward only, recording the tape (the graph is built and then freed unused).
void BM_Tape_Fwd(benchmark::State& st) {
  tg::set_num_threads(1);
  tg::Tensor x0 = tg::full({1}, 0.5);
  tg::Tensor w = tg::full({1}, 0.5).requires_grad_();
  for (auto _ : st) {
    tg::Tensor y = chain(x0, w);
    benchmark::DoNotOptimize(y.impl().get());
  }
  set_op_time(st, kChainOps);
}
BENCHMARK(BM_Tape_Fwd)->Name("Tape/fwd_record");

// Forward under NoGradGuard: no node is recorded; what is left is op dispatch + allocation.
void BM_Tape_NoGrad(benchmark::State& st) {
  tg::set_num_threads(1);
  tg::Tensor x0 = tg::full({1}, 0.5);
  tg::Tensor w = tg::full({1}, 0.5).requires_grad_();
  tg::NoGradGuard guard;
  for (auto _ : st) {
    tg::Tensor y = chain(x0, w);
    benchmark::DoNotOptimize(y.impl().get());
  }
  set_op_time(st, kChainOps);
}
BENCHMARK(BM_Tape_NoGrad)->Name("Tape/fwd_nograd");

// ---------------------------------------------------------------------------------------------
// Matmul: C = A B forward, dA = G B^T and dB = A^T G backward: 2n^3 + 4n^3 flops.
double matmul_flops(int64_t n) { return 6.0 * double(n) * double(n) * double(n); }

void set_flops(benchmark::State& st, double flops_per_iter) {
  st.counters["FLOPS"] = benchmark::Counter(double(st.iterations()) * flops_per_iter, benchmark::Counter::kIsRate);
}

void BM_Matmul_Tapegrad(benchmark::State& st) {
  const int64_t n = st.range(0);
  tg::set_num_threads(int(st.range(1)));
  tg::manual_seed(1);
  tg::Tensor a = tg::randn({n, n}).requires_grad_();
  tg::Tensor b = tg::randn({n, n}).requires_grad_();
  tg::Tensor g = tg::ones({n, n});
  for (auto _ : st) {
    tg::Tensor c = tg::matmul(a, b);
    c.backward(g);
    benchmark::DoNotOptimize(a.grad().impl().get());
    benchmark::DoNotOptimize(b.grad().impl().get());
    a.mutable_grad() = tg::Tensor();
    b.mutable_grad() = tg::Tensor();
  }
  set_flops(st, matmul_flops(n));
}

// The same three GEMMs (NN, NT, TN) on preallocated buffers: the floor for tapegrad's matmul.
void BM_Matmul_RawSgemm(benchmark::State& st) {
  const int n = int(st.range(0));
  openblas_set_num_threads(int(st.range(1)));
  std::mt19937 gen(1);
  std::normal_distribution<float> dist;
  const size_t nn = size_t(n) * size_t(n);
  std::vector<float> a(nn), b(nn), g(nn, 1.0f), c(nn), da(nn), db(nn);
  for (auto& v : a) v = dist(gen);
  for (auto& v : b) v = dist(gen);
  for (auto _ : st) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, g.data(), n, b.data(), n, 0.0f, da.data(), n);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n, g.data(), n, 0.0f, db.data(), n);
    benchmark::DoNotOptimize(c.data());
    benchmark::DoNotOptimize(da.data());
    benchmark::DoNotOptimize(db.data());
    benchmark::ClobberMemory();
  }
  set_flops(st, matmul_flops(n));
}

// One plain NN sgemm (2n^3): OpenBLAS's headline number, for reference.
void BM_Matmul_RawSgemmNN(benchmark::State& st) {
  const int n = int(st.range(0));
  openblas_set_num_threads(int(st.range(1)));
  std::mt19937 gen(1);
  std::normal_distribution<float> dist;
  const size_t nn = size_t(n) * size_t(n);
  std::vector<float> a(nn), b(nn), c(nn);
  for (auto& v : a) v = dist(gen);
  for (auto& v : b) v = dist(gen);
  for (auto _ : st) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  set_flops(st, 2.0 * double(n) * double(n) * double(n));
}

// Paired: each iteration times one tapegrad step and one raw step (alternating which goes first),
// so both sides see the same load from other processes; the fastest iteration of each side
// estimates its unloaded speed. Counters: tg_FLOPS and raw_FLOPS (best iteration), tg_over_raw
// (best/best) and tg_over_raw_mean (total/total).
void BM_Matmul_Paired(benchmark::State& st) {
  using clock = std::chrono::steady_clock;
  const int64_t n = st.range(0);
  const int ni = int(n);
  tg::set_num_threads(int(st.range(1)));
  tg::manual_seed(1);
  tg::Tensor a = tg::randn({n, n}).requires_grad_();
  tg::Tensor b = tg::randn({n, n}).requires_grad_();
  tg::Tensor g = tg::ones({n, n});
  const size_t nn = size_t(n) * size_t(n);
  std::vector<float> c(nn), da(nn), db(nn);
  const float* pa = a.data_ptr<float>();
  const float* pb = b.data_ptr<float>();
  const float* pg = g.data_ptr<float>();
  auto tg_step = [&] {
    tg::Tensor out = tg::matmul(a, b);
    out.backward(g);
    benchmark::DoNotOptimize(a.grad().impl().get());
    a.mutable_grad() = tg::Tensor();
    b.mutable_grad() = tg::Tensor();
  };
  // tg::set_num_threads may leave OpenBLAS single-threaded (the library can split GEMMs over its
  // own pool); the raw baseline uses OpenBLAS's own threads, restored after each raw step.
  const int threads = int(st.range(1));
  auto raw_step = [&] {
    const int tg_blas_threads = openblas_get_num_threads();
    openblas_set_num_threads(threads);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, ni, ni, ni, 1.0f, pa, ni, pb, ni, 0.0f, c.data(), ni);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, ni, ni, ni, 1.0f, pg, ni, pb, ni, 0.0f, da.data(), ni);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ni, ni, ni, 1.0f, pa, ni, pg, ni, 0.0f, db.data(), ni);
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
    openblas_set_num_threads(tg_blas_threads);
  };
  tg_step();
  raw_step();
  double tg_best = 1e30, raw_best = 1e30, tg_total = 0, raw_total = 0;
  bool tg_first = true;
  for (auto _ : st) {
    for (int half = 0; half < 2; ++half) {
      const bool run_tg = (half == 0) == tg_first;
      auto t0 = clock::now();
      if (run_tg) tg_step(); else raw_step();
      const double dt = std::chrono::duration<double>(clock::now() - t0).count();
      (run_tg ? tg_total : raw_total) += dt;
      double& best = run_tg ? tg_best : raw_best;
      best = std::min(best, dt);
    }
    tg_first = !tg_first;
  }
  const double flops = matmul_flops(n);
  st.counters["tg_FLOPS"] = flops / tg_best;
  st.counters["raw_FLOPS"] = flops / raw_best;
  st.counters["tg_over_raw"] = raw_best / tg_best;
  st.counters["tg_over_raw_mean"] = raw_total / tg_total;
}

void matmul_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"n", "threads"});
  for (int threads : {1, 2})
    for (int n : {256, 512, 1024}) b->Args({n, threads});
  b->UseRealTime();  // OpenBLAS works on its own threads: wall-clock time is the honest measure
}
BENCHMARK(BM_Matmul_Tapegrad)->Name("Matmul/tapegrad_fwd_bwd")->Apply(matmul_args);
BENCHMARK(BM_Matmul_RawSgemm)->Name("Matmul/raw_sgemm_x3")->Apply(matmul_args);
BENCHMARK(BM_Matmul_RawSgemmNN)->Name("Matmul/raw_sgemm_nn")->Apply(matmul_args);
BENCHMARK(BM_Matmul_Paired)->Name("Matmul/paired")->Apply(matmul_args)->MinTime(2.0);

// tapegrad's kernels run at threads:1 (CPU time; compared with the single-threaded baselines:
// the targets) and at threads:2 (the library's pool splits the loop; wall time, since the main
// thread's CPU time would count only its own share).
#define TG_BENCH_THREADS(fn, name)                                   \
  BENCHMARK(fn)->Name(name)->ArgName("threads")->Arg(1);             \
  BENCHMARK(fn)->Name(name)->ArgName("threads")->Arg(2)->UseRealTime()

// ---------------------------------------------------------------------------------------------
// Elementwise on 10M floats, forward only. Bytes counted: inputs read + output written.
constexpr int64_t kElems = 10'000'000;

struct ElemData {
  tg::Tensor a, b;
  ElemData() {
    tg::manual_seed(2);
    a = tg::randn({kElems});
    b = tg::randn({kElems});
  }
};
ElemData& elem_data() {
  static ElemData d;
  return d;
}

template <typename F>
void run_tg_elementwise(benchmark::State& st, int n_inputs, F f) {
  tg::set_num_threads(int(st.range(0)));  // the library's pool splits large loops
  ElemData& d = elem_data();
  tg::NoGradGuard guard;
  { tg::Tensor warm = f(d.a, d.b); }  // the output's block is then served from the allocator's cache
  for (auto _ : st) {
    tg::Tensor c = f(d.a, d.b);
    benchmark::DoNotOptimize(c.impl().get());
    benchmark::ClobberMemory();
  }
  st.SetBytesProcessed(int64_t(st.iterations()) * kElems * int64_t(sizeof(float)) * (n_inputs + 1));
}

void BM_Elem_TgAdd(benchmark::State& st) {
  run_tg_elementwise(st, 2, [](const tg::Tensor& a, const tg::Tensor& b) { return a + b; });
}
void BM_Elem_TgMul(benchmark::State& st) {
  run_tg_elementwise(st, 2, [](const tg::Tensor& a, const tg::Tensor& b) { return a * b; });
}
void BM_Elem_TgExp(benchmark::State& st) {
  run_tg_elementwise(st, 1, [](const tg::Tensor& a, const tg::Tensor&) { return tg::exp(a); });
}
void BM_Elem_TgRelu(benchmark::State& st) {
  run_tg_elementwise(st, 1, [](const tg::Tensor& a, const tg::Tensor&) { return tg::relu(a); });
}
TG_BENCH_THREADS(BM_Elem_TgAdd, "Elementwise/tapegrad_add");
TG_BENCH_THREADS(BM_Elem_TgMul, "Elementwise/tapegrad_mul");
TG_BENCH_THREADS(BM_Elem_TgExp, "Elementwise/tapegrad_exp");
TG_BENCH_THREADS(BM_Elem_TgRelu, "Elementwise/tapegrad_relu");

// Plain loops over preallocated std::vectors (outputs touched once before timing).
struct PlainData {
  std::vector<float> a, b, c;
  PlainData() : a(kElems), b(kElems), c(kElems) {
    std::mt19937 gen(2);
    std::normal_distribution<float> dist;
    for (auto& v : a) v = dist(gen);
    for (auto& v : b) v = dist(gen);
  }
};
PlainData& plain_data() {
  static PlainData d;
  return d;
}

template <typename F>
void run_plain(benchmark::State& st, int n_inputs, F loop) {
  PlainData& d = plain_data();
  const float* a = d.a.data();
  const float* b = d.b.data();
  float* c = d.c.data();
  for (auto _ : st) {
    loop(a, b, c, kElems);
    benchmark::DoNotOptimize(c);
    benchmark::ClobberMemory();
  }
  st.SetBytesProcessed(int64_t(st.iterations()) * kElems * int64_t(sizeof(float)) * (n_inputs + 1));
}

void BM_Elem_PlainAdd(benchmark::State& st) {
  run_plain(st, 2, [](const float* a, const float* b, float* c, int64_t n) {
    for (int64_t i = 0; i < n; ++i) c[i] = a[i] + b[i];
  });
}
void BM_Elem_PlainMul(benchmark::State& st) {
  run_plain(st, 2, [](const float* a, const float* b, float* c, int64_t n) {
    for (int64_t i = 0; i < n; ++i) c[i] = a[i] * b[i];
  });
}
void BM_Elem_PlainExp(benchmark::State& st) {
  run_plain(st, 1, [](const float* a, const float*, float* c, int64_t n) {
    for (int64_t i = 0; i < n; ++i) c[i] = std::exp(a[i]);
  });
}
void BM_Elem_PlainRelu(benchmark::State& st) {
  run_plain(st, 1, [](const float* a, const float*, float* c, int64_t n) {
    for (int64_t i = 0; i < n; ++i) c[i] = a[i] > 0.0f ? a[i] : 0.0f;
  });
}
BENCHMARK(BM_Elem_PlainAdd)->Name("Elementwise/plain_add");
BENCHMARK(BM_Elem_PlainMul)->Name("Elementwise/plain_mul");
BENCHMARK(BM_Elem_PlainExp)->Name("Elementwise/plain_exp");
BENCHMARK(BM_Elem_PlainRelu)->Name("Elementwise/plain_relu");

// ---------------------------------------------------------------------------------------------
// unfold / fold: N=32, C=64, 32x32, 3x3 kernel, padding 1 (the conv layer of ENVIRONMENT.md).
// Bytes counted: output written + input read (each element once).
constexpr int64_t kN = 32, kC = 64, kH = 32, kW = 32, kK = 3;
const tg::WindowOptions& window_opts() {
  static const tg::WindowOptions o = tg::WindowOptions({kK}).padding({1});
  return o;
}
constexpr int64_t kImgElems = kN * kC * kH * kW;               // 2.1M floats, 8.4 MB
constexpr int64_t kColElems = kN * kC * kK * kK * kH * kW;     // 18.9M floats, 75.5 MB
constexpr int64_t kWindowBytes = (kImgElems + kColElems) * 4;  // the same for unfold and fold

// A baseline buffer allocated as tapegrad's allocator allocates blocks of 32 MiB or more
// (2 MiB-aligned, offered to transparent huge pages), so that baselines and tapegrad stream
// through the same kind of pages.
struct BaselineBuffer {
  char* p;
  explicit BaselineBuffer(size_t bytes, char fill) {
    const size_t huge = size_t(2) << 20, rounded = (bytes + huge - 1) / huge * huge;
    p = static_cast<char*>(std::aligned_alloc(huge, rounded));
    madvise(p, rounded, MADV_HUGEPAGE);
    std::memset(p, fill, bytes);
  }
  ~BaselineBuffer() { std::free(p); }
  BaselineBuffer(const BaselineBuffer&) = delete;
  BaselineBuffer& operator=(const BaselineBuffer&) = delete;
};

// Each window benchmark runs warm (Window/*: the loop as it is) and from memory
// (WindowCold/*, 1 thread). This VM reports a 260 MiB L3, larger than every buffer here, so a
// warm loop measures a mix of L3 and memory that depends on what ran before (memcpy's 84 MB
// loop stays L3-resident better than fold's; see docs/benchmarks.md). Cold, a 512 MiB buffer is
// written before each iteration, outside the timed region, so every iteration starts from
// memory: this is the "memory speed" the window target is judged on.
void evict_caches() {
  static BaselineBuffer buf(size_t(512) << 20, 0);
  static char round = 0;
  std::memset(buf.p, ++round, size_t(512) << 20);
}

template <typename F>
void window_loop(benchmark::State& st, bool cold, const F& body) {
  for (auto _ : st) {
    if (cold) {
      st.PauseTiming();
      evict_caches();
      st.ResumeTiming();
    }
    body();
  }
  st.SetBytesProcessed(int64_t(st.iterations()) * kWindowBytes);
}

void window_unfold(benchmark::State& st, int threads, bool cold) {
  tg::set_num_threads(threads);
  tg::manual_seed(3);
  tg::Tensor x = tg::randn({kN, kC, kH, kW});
  tg::NoGradGuard guard;
  { tg::Tensor warm = tg::unfold(x, window_opts()); }
  window_loop(st, cold, [&] {
    tg::Tensor cols = tg::unfold(x, window_opts());
    benchmark::DoNotOptimize(cols.impl().get());
    benchmark::ClobberMemory();
  });
}
void BM_Window_Unfold(benchmark::State& st) { window_unfold(st, int(st.range(0)), false); }
TG_BENCH_THREADS(BM_Window_Unfold, "Window/tapegrad_unfold");
void BM_Cold_Unfold(benchmark::State& st) { window_unfold(st, 1, true); }
BENCHMARK(BM_Cold_Unfold)->Name("WindowCold/tapegrad_unfold");

void window_fold(benchmark::State& st, int threads, bool cold) {
  tg::set_num_threads(threads);
  tg::manual_seed(3);
  tg::Tensor cols = tg::randn({kN, kC * kK * kK, kH * kW});
  tg::NoGradGuard guard;
  { tg::Tensor warm = tg::fold(cols, {kH, kW}, window_opts()); }
  window_loop(st, cold, [&] {
    tg::Tensor y = tg::fold(cols, {kH, kW}, window_opts());
    benchmark::DoNotOptimize(y.impl().get());
    benchmark::ClobberMemory();
  });
}
void BM_Window_Fold(benchmark::State& st) { window_fold(st, int(st.range(0)), false); }
TG_BENCH_THREADS(BM_Window_Fold, "Window/tapegrad_fold");
void BM_Cold_Fold(benchmark::State& st) { window_fold(st, 1, true); }
BENCHMARK(BM_Cold_Fold)->Name("WindowCold/tapegrad_fold");

// memcpy of kWindowBytes / 2 bytes: reads and writes kWindowBytes in total, counted the same way.
void window_memcpy(benchmark::State& st, bool cold) {
  const size_t half = size_t(kWindowBytes) / 2;
  BaselineBuffer src(half, 1), dst(half, 0);
  window_loop(st, cold, [&] {
    std::memcpy(dst.p, src.p, half);
    benchmark::DoNotOptimize(dst.p);
    benchmark::ClobberMemory();
  });
}
void BM_Window_Memcpy(benchmark::State& st) { window_memcpy(st, false); }
BENCHMARK(BM_Window_Memcpy)->Name("Window/memcpy_same_bytes");
void BM_Cold_Memcpy(benchmark::State& st) { window_memcpy(st, true); }
BENCHMARK(BM_Cold_Memcpy)->Name("WindowCold/memcpy_same_bytes");

// A read-only stream of the same number of bytes (a sum, eight lanes): fold's traffic is 90%
// reads (75.5 MB read, 8.4 MB written), so this is its memory-speed ceiling on a machine whose
// read bandwidth differs from memcpy's.
void window_read_only(benchmark::State& st, bool cold) {
  const size_t n = size_t(kWindowBytes) / sizeof(float);
  BaselineBuffer buf(n * sizeof(float), 0);
  const float* src = reinterpret_cast<const float*>(buf.p);
  window_loop(st, cold, [&] {
    float acc[16] = {};
    for (size_t i = 0; i + 16 <= n; i += 16)
      for (int j = 0; j < 16; ++j) acc[j] += src[i + size_t(j)];
    benchmark::DoNotOptimize(acc);
    benchmark::ClobberMemory();
  });
}
void BM_Window_ReadOnly(benchmark::State& st) { window_read_only(st, false); }
BENCHMARK(BM_Window_ReadOnly)->Name("Window/read_only_same_bytes");
void BM_Cold_ReadOnly(benchmark::State& st) { window_read_only(st, true); }
BENCHMARK(BM_Cold_ReadOnly)->Name("WindowCold/read_only_same_bytes");

// Diagnostic: unfold's data movement without its index arithmetic or padding (each input plane
// memcpy'd once per kernel offset into its rows of the output). It writes the same output bytes
// with ordinary stores, so it shows what the store path alone costs.
void BM_Window_Im2colPattern(benchmark::State& st) {
  tg::manual_seed(3);
  tg::Tensor x = tg::randn({kN, kC, kH, kW});
  std::vector<float> out(size_t(kColElems), 0.0f);
  const float* in = x.data_ptr<float>();
  const int64_t plane = kH * kW;
  for (auto _ : st) {
    for (int64_t nc = 0; nc < kN * kC; ++nc)
      for (int64_t k = 0; k < kK * kK; ++k)
        std::memcpy(out.data() + (nc * kK * kK + k) * plane, in + nc * plane, size_t(plane) * sizeof(float));
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  st.SetBytesProcessed(int64_t(st.iterations()) * kWindowBytes);
}
BENCHMARK(BM_Window_Im2colPattern)->Name("Window/memcpy_im2col_pattern");

// Diagnostics for docs/benchmarks.md ("what limits it"): the two changes proposed for
// autograd/prim_window.cpp, written for this geometry only (3x3, stride 1, padding 1).
// Each (n, c) plane goes through a zero-padded (H+2) x (W+2) scratch plane that stays in L1, so
// every row of the window loop is a full, unclipped run of W floats (no bounds, no scalar tail).
constexpr int64_t kHp = kH + 2, kWp = kW + 2;

// unfold from a padded plane, output rows written with non-temporal stores (no read-for-ownership
// of the 75 MB output).
void BM_Window_DiagUnfoldStream(benchmark::State& st) {
  tg::manual_seed(3);
  tg::Tensor x = tg::randn({kN, kC, kH, kW});
  const float* in = x.data_ptr<float>();
  float* out = static_cast<float*>(std::aligned_alloc(64, size_t(kColElems) * sizeof(float)));
  std::memset(out, 0, size_t(kColElems) * sizeof(float));  // fault the pages in before timing
  alignas(64) float pad[kHp * kWp] = {};
  for (auto _ : st) {
    for (int64_t nc = 0; nc < kN * kC; ++nc) {
      for (int64_t h = 0; h < kH; ++h) std::memcpy(pad + (h + 1) * kWp + 1, in + (nc * kH + h) * kW, kW * sizeof(float));
      for (int64_t k = 0; k < kK * kK; ++k) {
        float* rows = out + (nc * kK * kK + k) * kH * kW;
        for (int64_t oh = 0; oh < kH; ++oh) {
          const float* s = pad + (oh + k / kK) * kWp + k % kK;
          float* d = rows + oh * kW;
#if defined(__AVX512F__)
          static_assert(kW % 16 == 0, "rows of whole 64-byte lines");
          for (int64_t i = 0; i < kW; i += 16) _mm512_stream_ps(d + i, _mm512_loadu_ps(s + i));
#elif defined(__AVX__)
          for (int64_t i = 0; i < kW; i += 8) _mm256_stream_ps(d + i, _mm256_loadu_ps(s + i));
#else
          std::memcpy(d, s, kW * sizeof(float));
#endif
        }
      }
    }
#if defined(__AVX__)
    _mm_sfence();
#endif
    benchmark::DoNotOptimize(out);
    benchmark::ClobberMemory();
  }
  std::free(out);
  st.SetBytesProcessed(int64_t(st.iterations()) * kWindowBytes);
}
BENCHMARK(BM_Window_DiagUnfoldStream)->Name("Window/diag_unfold_padded_stream");

// fold into a padded plane (full-width vectorised adds), then the interior copied out once.
void BM_Window_DiagFoldPadded(benchmark::State& st) {
  tg::manual_seed(3);
  tg::Tensor cols = tg::randn({kN, kC * kK * kK, kH * kW});
  const float* in = cols.data_ptr<float>();
  std::vector<float> out(static_cast<size_t>(kImgElems));
  alignas(64) float pad[kHp * kWp];
  for (auto _ : st) {
    for (int64_t nc = 0; nc < kN * kC; ++nc) {
      std::fill(pad, pad + kHp * kWp, 0.0f);
      for (int64_t k = 0; k < kK * kK; ++k) {
        const float* rows = in + (nc * kK * kK + k) * kH * kW;
        for (int64_t oh = 0; oh < kH; ++oh) {
          float* d = pad + (oh + k / kK) * kWp + k % kK;
          const float* s = rows + oh * kW;
          for (int64_t i = 0; i < kW; ++i) d[i] += s[i];
        }
      }
      for (int64_t h = 0; h < kH; ++h)
        std::memcpy(out.data() + (nc * kH + h) * kW, pad + (h + 1) * kWp + 1, kW * sizeof(float));
    }
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  st.SetBytesProcessed(int64_t(st.iterations()) * kWindowBytes);
}
BENCHMARK(BM_Window_DiagFoldPadded)->Name("Window/diag_fold_padded");

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  // tapegrad replaces OpenBLAS's generic "Prescott" fallback kernels with SkylakeX/Haswell ones
  // before its first GEMM (autograd/blas_core.cpp; off when OPENBLAS_CORETYPE or
  // TAPEGRAD_KEEP_BLAS_CORE is set). Trigger that now, so that the raw-sgemm baselines and
  // tapegrad run on the same kernels whatever order the benchmarks run in.
  {
    tg::Tensor t = tg::ones({2, 2});
    benchmark::DoNotOptimize(tg::matmul(t, t).impl().get());
  }
  benchmark::AddCustomContext("openblas", openblas_get_config());
  benchmark::AddCustomContext("openblas_core", openblas_get_corename());
  benchmark::AddCustomContext("tapegrad", tg::config_string());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
