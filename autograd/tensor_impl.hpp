#pragma once
// What a Tensor handle points to. Included at the end of tensor.hpp so the hot accessors inline;
// not part of the public API (its fields may change).
#include <atomic>
#include <cstddef>
#include <memory>

#include "tensor.hpp"

namespace tg {

/// A block of memory from the caching allocator (autograd/storage.cpp).
struct Storage {
  void* data = nullptr;
  size_t bytes = 0;       // rounded up to the allocator's size class
  size_t size_index = 0;  // the class's free list
  Storage(size_t nbytes);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  int64_t numel = 0;
  Dtype dtype = kFloat32;
  bool requires_grad = false;              // leaves only; a non-leaf requires grad iff grad_fn
  std::shared_ptr<Node> grad_fn;           // the node that made this tensor (non-leaf)
  std::shared_ptr<Node> grad_accumulator;  // leaf requiring grad: where its gradient lands
  Tensor grad;

  void* data() const { return storage ? storage->data : nullptr; }
};

namespace detail {
[[noreturn]] void throw_undefined(const char* what);
/// The OpenBLAS kernel set in use ("SkylakeX", "Haswell", "Prescott"...).
const char* blas_core_name();
/// Upgrades OpenBLAS from its generic fallback kernels when the CPU allows (autograd/blas_core.cpp).
void ensure_blas_core();
/// NumPy broadcast of two shapes; throws naming `op` and both shapes.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);
/// The dims of `from` that summing back to `to` (the reverse of broadcasting) reduces: the
/// leading dims `to` lacks and the dims where `to` has 1; throws naming `op` when `to` is not
/// a broadcast source of `from`.
std::vector<int64_t> sum_to_dims(const Shape& from, const Shape& to, const char* op);
/// A fresh, uninitialised tensor of shape s.
Tensor make_tensor(const Shape& s, Dtype d);
/// A tensor sharing `storage` with shape s (numel must fit).
Tensor make_alias(const std::shared_ptr<Storage>& storage, const Shape& s, Dtype d);
/// Bytes held by live storages (not counting the allocator's cache).
size_t live_bytes();
/// The highest live_bytes() since the start or the last reset_peak_live_bytes().
size_t peak_live_bytes();
/// Restarts the high-water mark at the current live_bytes().
void reset_peak_live_bytes();
/// Bytes the caching allocator keeps for reuse.
size_t cached_bytes();
/// Returns every cached block to the system.
void empty_cache();
}  // namespace detail

inline const Shape& Tensor::shape() const {
  if (!impl_) detail::throw_undefined("shape");
  return impl_->shape;
}
inline int64_t Tensor::dim() const { return int64_t(shape().size()); }
inline int64_t Tensor::numel() const {
  if (!impl_) detail::throw_undefined("numel");
  return impl_->numel;
}
inline Dtype Tensor::dtype() const {
  if (!impl_) detail::throw_undefined("dtype");
  return impl_->dtype;
}

template <typename T>
inline T* typed(const Tensor& t) {
  return static_cast<T*>(t.impl()->data());
}

/// Calls f(T{}) with T the C++ type of d: float, double or int64_t.
template <typename F>
decltype(auto) dispatch(Dtype d, F&& f) {
  switch (d) {
    case Dtype::Float32: return f(float{});
    case Dtype::Float64: return f(double{});
    default: return f(int64_t{});
  }
}
/// Same for floating dtypes only; int64 throws naming `op`.
template <typename F>
decltype(auto) dispatch_floating(Dtype d, const char* op, F&& f) {
  if (d == Dtype::Int64) throw Error(std::string(op) + ": expected a floating tensor (float32 or float64), got int64");
  if (d == Dtype::Float32) return f(float{});
  return f(double{});
}

}  // namespace tg
