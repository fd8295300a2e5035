// A caching allocator: freed blocks are kept in per-size-class free lists and handed out again,
// because a fresh large allocation here costs a page fault per 4 KiB on first touch (see
// ../shared/ENVIRONMENT.md), more than most ops' arithmetic.
#include <cstdlib>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

#include "tensor_impl.hpp"

namespace tg {
namespace {

constexpr size_t kAlign = 64;
constexpr size_t kMaxCached = size_t(2) << 30;  // keep at most 2 GiB of free blocks

// Size classes: multiples of 64 bytes up to 4 KiB, then four classes per power of two
// (at most 25% slack).
size_t size_class(size_t bytes) {
  if (bytes == 0) bytes = 1;
  if (bytes <= 4096) return (bytes + kAlign - 1) / kAlign * kAlign;
  size_t p = size_t(1) << (63 - __builtin_clzll(bytes - 1));  // largest power of two < bytes
  size_t step = p / 4;
  return (bytes + step - 1) / step * step;
}

struct Allocator {
  std::mutex mu;
  std::unordered_map<size_t, std::vector<void*>> free_lists;
  size_t cached = 0;
  size_t live = 0;

  void* get(size_t cls) {
    {
      std::lock_guard<std::mutex> lock(mu);
      live += cls;
      auto it = free_lists.find(cls);
      if (it != free_lists.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        cached -= cls;
        return p;
      }
    }
    void* p = std::aligned_alloc(kAlign, cls);
    if (!p) {
      std::lock_guard<std::mutex> lock(mu);
      live -= cls;
      throw std::bad_alloc();
    }
    return p;
  }

  void put(void* p, size_t cls) {
    {
      std::lock_guard<std::mutex> lock(mu);
      live -= cls;
      if (cached + cls <= kMaxCached) {
        free_lists[cls].push_back(p);
        cached += cls;
        return;
      }
    }
    std::free(p);
  }

  void release_all() {
    std::lock_guard<std::mutex> lock(mu);
    for (auto& [cls, list] : free_lists)
      for (void* p : list) std::free(p);
    free_lists.clear();
    cached = 0;
  }

  ~Allocator() { release_all(); }
};

Allocator& allocator() {
  static Allocator* a = new Allocator();  // never destroyed: storages may outlive static destructors
  return *a;
}

}  // namespace

Storage::Storage(size_t nbytes) : bytes(size_class(nbytes)) { data = allocator().get(bytes); }
Storage::~Storage() { allocator().put(data, bytes); }

namespace detail {
size_t live_bytes() {
  std::lock_guard<std::mutex> lock(allocator().mu);
  return allocator().live;
}
size_t cached_bytes() {
  std::lock_guard<std::mutex> lock(allocator().mu);
  return allocator().cached;
}
void empty_cache() { allocator().release_all(); }
}  // namespace detail

}  // namespace tg
