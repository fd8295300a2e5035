#pragma once
// Internal: a thread-local free-list allocator for the small objects every op creates
// (TensorImpl, Node, their shared_ptr control blocks). glibc's tcache keeps only 7 blocks per
// size, and a forward pass creates hundreds before backward frees them; reusing our own free
// lists takes malloc/free off the per-op path. Sanitizer builds (TAPEGRAD_NO_POOL) bypass it so
// AddressSanitizer sees every use after free.
//
// A thread keeps at most as many blocks of a size as it has itself taken from the system. Without
// that bound, objects made on one thread and freed on another (a DataLoader worker's batches,
// freed by the training thread) piled up in the freeing thread's lists: RSS grew by 0.46 MiB
// per 1,000 steps of a training loop (bench/steady_memory, docs/reliability.md).
#include <cstddef>
#include <memory>
#include <new>
#include <vector>

namespace tg::detail {

class SmallPool {
 public:
  static constexpr size_t kGranule = 16, kMaxBytes = 512, kMaxPerClass = 1 << 16;

  static void* get(size_t bytes) {
#ifndef TAPEGRAD_NO_POOL
    if (bytes <= kMaxBytes) {
      if (state_ != kDead) {
        Lists& l = local();
        auto& list = l.lists[bytes_class(bytes)];
        if (!list.empty()) {
          void* p = list.back();
          list.pop_back();
          return p;
        }
        ++l.made[bytes_class(bytes)];
      }
      return ::operator new(bytes_class(bytes) * kGranule);  // always the full class size
    }
#endif
    return ::operator new(bytes);
  }

  static void put(void* p, size_t bytes) {
#ifndef TAPEGRAD_NO_POOL
    if (bytes <= kMaxBytes) {
      if (state_ == kAlive) {
        Lists& l = local();
        auto& list = l.lists[bytes_class(bytes)];
        if (list.size() < kMaxPerClass && list.size() < l.made[bytes_class(bytes)]) {
          list.push_back(p);
          return;
        }
      }
      ::operator delete(p);
      return;
    }
#endif
    ::operator delete(p);
  }

 private:
  enum State : unsigned char { kUnborn, kAlive, kDead };
  static size_t bytes_class(size_t bytes) { return (bytes + kGranule - 1) / kGranule; }
  struct Lists {
    std::vector<void*> lists[kMaxBytes / kGranule + 1];
    size_t made[kMaxBytes / kGranule + 1] = {};  // blocks of each class this thread took from the system
    Lists() { state_ = kAlive; }
    ~Lists() {
      state_ = kDead;  // blocks freed after this go straight back to the system
      for (auto& l : lists)
        for (void* p : l) ::operator delete(p);
    }
  };
  static Lists& local() {
    thread_local Lists l;
    return l;
  }
  static inline thread_local State state_ = kUnborn;
};

/// std::allocator-compatible front end of SmallPool, for std::allocate_shared.
template <typename T>
struct PoolAllocator {
  using value_type = T;
  PoolAllocator() = default;
  template <typename U>
  PoolAllocator(const PoolAllocator<U>&) {}  // NOLINT
  T* allocate(size_t n) { return static_cast<T*>(SmallPool::get(n * sizeof(T))); }
  void deallocate(T* p, size_t n) { SmallPool::put(p, n * sizeof(T)); }
  template <typename U>
  bool operator==(const PoolAllocator<U>&) const { return true; }
  template <typename U>
  bool operator!=(const PoolAllocator<U>&) const { return false; }
};

template <typename T, typename... Args>
std::shared_ptr<T> make_pooled(Args&&... args) {
  return std::allocate_shared<T>(PoolAllocator<T>(), std::forward<Args>(args)...);
}

}  // namespace tg::detail
