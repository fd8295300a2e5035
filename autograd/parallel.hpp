#pragma once
// Internal: the library's own thread pool. tg::set_num_threads(n) sizes it (n - 1 workers plus
// the calling thread) and OpenBLAS together, so one setting owns the cores. Kernels split
// large loops with parallel_for; small ones run inline (a wake-up costs more than they do).
#include <algorithm>
#include <cstdint>
#include <functional>
#include <vector>

namespace tg::detail {

void parallel_for_impl(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

/// Calls fn(begin, end) on disjoint chunks covering [0, n) (up to four per thread, each taken by
/// the next free thread; the boundaries depend only on n and the thread count), in parallel when n >= 2 * grain
/// and more than one thread is allowed; otherwise inline. fn must not throw. A template, so a
/// small loop runs without wrapping fn in a std::function (which would allocate per op).
template <typename F>
inline void parallel_for(int64_t n, int64_t grain, const F& fn) {
  if (n <= 0) return;
  if (n < 2 * grain) {
    fn(int64_t(0), n);
    return;
  }
  parallel_for_impl(n, grain, std::function<void(int64_t, int64_t)>(std::cref(fn)));
}

/// Threads the pool may use (tg::get_num_threads()).
int pool_threads();
void set_pool_threads(int n);

/// The number of partial sums chunked_sum cuts n items into: a constant, never the thread count,
/// so a sum's bits are the same on any number of threads (and it keeps up to 8 threads busy).
constexpr int64_t kSumChunks = 8;

/// A sum over items [0, n) into out[0, numel), split between threads and independent of timing
/// and of the thread count: the items are cut into min(kSumChunks, n) contiguous chunks, chunk c
/// runs fn(i0, i1, buffer) to accumulate its items into its own buffer (chunk 0 into out itself,
/// the others into zeroed scratch), and the buffers are then added into out in chunk order.
template <typename T, typename F>
void chunked_sum(int64_t n, T* out, int64_t numel, const F& fn) {
  const int64_t chunks = std::min<int64_t>(kSumChunks, n);
  if (chunks <= 0) return;
  std::vector<std::vector<T>> partial(size_t(chunks - 1), std::vector<T>(size_t(numel)));
  parallel_for(chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c)
      fn(n * c / chunks, n * (c + 1) / chunks, c == 0 ? out : partial[size_t(c - 1)].data());
  });
  for (const auto& buf : partial)
    for (int64_t j = 0; j < numel; ++j) out[j] += buf[size_t(j)];
}

}  // namespace tg::detail
