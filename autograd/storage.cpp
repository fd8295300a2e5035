// A caching allocator: freed blocks are kept in per-size-class free lists and handed out again,
// because a fresh large allocation here costs a page fault per 4 KiB on first touch (see
// ../shared/ENVIRONMENT.md), more than most ops' arithmetic.
#include <sys/mman.h>

#include <cstdlib>
#include <mutex>
#include <new>
#include <vector>

#include "tensor_impl.hpp"

namespace tg {
namespace {

constexpr size_t kAlign = 64;
constexpr size_t kMaxCached = size_t(2) << 30;  // keep at most 2 GiB of free blocks

// Size classes: multiples of 64 bytes up to 4 KiB (classes 1..64), then four classes per power
// of two (at most 25% slack). Each class has an index into a flat array of free lists.
constexpr size_t kSmallClasses = 65;
constexpr size_t kClasses = kSmallClasses + 4 * 64;

size_t size_class(size_t bytes, size_t* index) {
  if (bytes == 0) bytes = 1;
  if (bytes <= 4096) {
    size_t c = (bytes + kAlign - 1) / kAlign;
    *index = c;
    return c * kAlign;
  }
  int lg = 63 - __builtin_clzll(bytes - 1);  // 2^lg < bytes <= 2^(lg+1)
  size_t p = size_t(1) << lg;
  size_t step = p / 4;
  size_t q = (bytes - p + step - 1) / step;  // 1..4
  *index = kSmallClasses + size_t(lg) * 4 + (q - 1);
  return p + q * step;
}

// Blocks of 32 MiB or more are aligned to 2 MiB and offered to transparent huge pages
// (madvise; this kernel's THP mode is "madvise"): a streamed tensor then crosses one page per
// 2 MiB, so the hardware prefetchers, which stop at page boundaries, keep going, and first touch
// costs one fault per 2 MiB instead of 512.
constexpr size_t kHugeMin = size_t(32) << 20, kHuge = size_t(2) << 20;
void* alloc_block(size_t bytes) {
  if (bytes < kHugeMin) return std::aligned_alloc(kAlign, bytes);
  void* p = std::aligned_alloc(kHuge, (bytes + kHuge - 1) / kHuge * kHuge);
  if (p) madvise(p, bytes, MADV_HUGEPAGE);
  return p;
}

struct Allocator {
  std::mutex mu;
  std::vector<void*> free_lists[kClasses];
  size_t cached = 0;
  size_t live = 0;
  size_t peak = 0;  // high-water mark of live since start or reset_peak_live_bytes()

  void* get(size_t cls, size_t index) {
    {
      std::lock_guard<std::mutex> lock(mu);
      live += cls;
      if (live > peak) peak = live;
      auto& list = free_lists[index];
      if (!list.empty()) {
        void* p = list.back();
        list.pop_back();
        cached -= cls;
        return p;
      }
    }
    void* p = alloc_block(cls);
    if (!p) {
      std::lock_guard<std::mutex> lock(mu);
      live -= cls;
      throw std::bad_alloc();
    }
    return p;
  }

  void put(void* p, size_t cls, size_t index) {
    {
      std::lock_guard<std::mutex> lock(mu);
      live -= cls;
#ifndef TAPEGRAD_NO_POOL  // sanitizer builds: every block goes back, so ASan sees use after free
      if (cached + cls <= kMaxCached) {
        free_lists[index].push_back(p);
        cached += cls;
        return;
      }
#endif
    }
    std::free(p);
  }

  void release_all() {
    std::lock_guard<std::mutex> lock(mu);
    for (auto& list : free_lists) {
      for (void* p : list) std::free(p);
      list.clear();
    }
    cached = 0;
  }

  ~Allocator() { release_all(); }
};

Allocator& allocator() {
  static Allocator* a = new Allocator();  // never destroyed: storages may outlive static destructors
  return *a;
}

}  // namespace

Storage::Storage(size_t nbytes) {
  bytes = size_class(nbytes, &size_index);
  data = allocator().get(bytes, size_index);
}
Storage::~Storage() { allocator().put(data, bytes, size_index); }

namespace detail {
size_t live_bytes() {
  std::lock_guard<std::mutex> lock(allocator().mu);
  return allocator().live;
}
size_t peak_live_bytes() {
  std::lock_guard<std::mutex> lock(allocator().mu);
  return allocator().peak;
}
void reset_peak_live_bytes() {
  std::lock_guard<std::mutex> lock(allocator().mu);
  allocator().peak = allocator().live;
}
size_t cached_bytes() {
  std::lock_guard<std::mutex> lock(allocator().mu);
  return allocator().cached;
}
void empty_cache() { allocator().release_all(); }
}  // namespace detail

}  // namespace tg
