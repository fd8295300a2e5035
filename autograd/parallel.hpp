#pragma once
// Internal: the library's own thread pool. tg::set_num_threads(n) sizes it (n - 1 workers plus
// the calling thread) and OpenBLAS together, so one setting owns the cores. Kernels split
// large loops with parallel_for; small ones run inline (a wake-up costs more than they do).
#include <cstdint>
#include <functional>

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

}  // namespace tg::detail
