// A small fork-join pool: workers sleep on a condition variable between jobs; the caller takes
// the first chunk itself and waits for the rest. One job at a time (a nested parallel_for, or
// one issued while another thread owns the pool, runs inline).
#include "parallel.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace tg::detail {
namespace {

class Pool {
 public:
  ~Pool() { resize(1); }

  void resize(int n) {
    std::lock_guard<std::mutex> job(job_mu_);
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
      ++generation_;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
    stop_ = false;
    threads_ = std::max(1, n);
    for (int i = 1; i < threads_; ++i) workers_.emplace_back([this] { work(); });
  }

  int threads() const { return threads_; }

  void run(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
    // Up to four chunks per thread, taken by whichever thread is free next: when one thread is
    // delayed (another process on its core), the others take its share instead of waiting at
    // the join. Chunk boundaries depend only on n and the thread count, never on timing.
    const int64_t chunks = std::min<int64_t>(int64_t(threads_) * 4, n / std::max<int64_t>(grain, 1));
    if (in_job_ || threads_ < 2 || chunks < 2) {  // nested, one thread, or too small to split
      fn(0, n);
      return;
    }
    std::unique_lock<std::mutex> job(job_mu_, std::try_to_lock);
    if (!job.owns_lock()) {  // another thread is using the pool
      fn(0, n);
      return;
    }
    in_job_ = true;
    {
      std::lock_guard<std::mutex> lk(mu_);
      fn_ = &fn;
      n_ = n;
      chunks_ = chunks;
      next_.store(0, std::memory_order_relaxed);
      pending_ = int(workers_.size());
      ++generation_;
    }
    cv_.notify_all();
    drain(fn, n, chunks);  // the caller takes chunks too
    {
      std::unique_lock<std::mutex> lk(mu_);
      done_cv_.wait(lk, [this] { return pending_ == 0; });
      fn_ = nullptr;
    }
    in_job_ = false;
  }

 private:
  // Runs chunks of the current job until none is left.
  void drain(const std::function<void(int64_t, int64_t)>& fn, int64_t n, int64_t chunks) {
    for (int64_t c = next_.fetch_add(1, std::memory_order_relaxed); c < chunks;
         c = next_.fetch_add(1, std::memory_order_relaxed))
      fn(n * c / chunks, n * (c + 1) / chunks);
  }

  void work() {
    in_job_ = true;  // a parallel_for inside a chunk runs inline
    uint64_t seen = 0;
    while (true) {
      const std::function<void(int64_t, int64_t)>* fn;
      int64_t n, chunks;
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
        fn = fn_;
        n = n_;
        chunks = chunks_;
      }
      if (fn) {
        drain(*fn, n, chunks);
        std::lock_guard<std::mutex> lk(mu_);
        if (--pending_ == 0) done_cv_.notify_one();
      }
    }
  }

  std::mutex job_mu_;  // one job at a time
  std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  std::vector<std::thread> workers_;
  const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
  int64_t n_ = 0, chunks_ = 0;
  int pending_ = 0;
  std::atomic<int64_t> next_{0};  // the next chunk of the current job
  uint64_t generation_ = 0;
  bool stop_ = false;
  int threads_ = 1;
  static thread_local bool in_job_;
};
thread_local bool Pool::in_job_ = false;

Pool& pool() {
  static Pool* p = [] {
    auto* q = new Pool();  // never destroyed: workers must not be joined during static destruction
    q->resize(int(std::max(1u, std::thread::hardware_concurrency())));
    return q;
  }();
  return *p;
}

}  // namespace

void parallel_for_impl(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  pool().run(n, grain, fn);
}

int pool_threads() { return pool().threads(); }
void set_pool_threads(int n) { pool().resize(n); }

}  // namespace tg::detail
