// Tensor basics: metadata, factories, the global generator, in-place updates and printing.
#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <ostream>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include <cblas.h>

#include "autograd.hpp"
#include "node.hpp"
#include "parallel.hpp"
#include "pool.hpp"

namespace tg {

size_t element_size(Dtype d) { return d == kFloat32 ? 4 : 8; }
const char* dtype_name(Dtype d) {
  switch (d) {
    case kFloat32: return "float32";
    case kFloat64: return "float64";
    default: return "int64";
  }
}
int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t v : s) n *= v;
  return n;
}
std::string shape_str(const Shape& s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

namespace detail {
Tensor make_tensor(const Shape& s, Dtype d) {
  for (int64_t v : s)
    if (v < 0) throw Error(fmt::format("tensor: negative dimension in shape {}", shape_str(s)));
  auto impl = make_pooled<TensorImpl>();
  impl->shape = s;
  impl->numel = shape_numel(s);
  impl->dtype = d;
  impl->storage = make_pooled<Storage>(size_t(impl->numel) * element_size(d));
  return Tensor(std::move(impl));
}
Tensor make_alias(const std::shared_ptr<Storage>& storage, const Shape& s, Dtype d) {
  auto impl = make_pooled<TensorImpl>();
  impl->shape = s;
  impl->numel = shape_numel(s);
  impl->dtype = d;
  impl->storage = storage;
  return Tensor(std::move(impl));
}
}  // namespace detail

namespace {
void require_defined(const Tensor& t, const char* what) {
  if (!t.defined()) throw Error(fmt::format("{}: the tensor is undefined", what));
}
}  // namespace

[[noreturn]] void detail::throw_undefined(const char* what) {
  throw Error(fmt::format("{}: the tensor is undefined", what));
}
int64_t Tensor::size(int64_t i) const {
  int64_t n = dim();
  int64_t j = i < 0 ? i + n : i;
  if (j < 0 || j >= n)
    throw Error(fmt::format("size: dimension {} out of range for a tensor of shape {}", i, shape_str(shape())));
  return impl_->shape[size_t(j)];
}

template <typename T>
static void check_type(const Tensor& t, const char* what) {
  require_defined(t, what);
  Dtype want = std::is_same_v<T, float> ? kFloat32 : std::is_same_v<T, double> ? kFloat64 : kInt64;
  if (t.dtype() != want)
    throw Error(fmt::format("{}: the tensor is {}, asked for {}", what, dtype_name(t.dtype()), dtype_name(want)));
}

template <typename T> T* Tensor::data_ptr() {
  check_type<T>(*this, "data_ptr");
  return static_cast<T*>(impl_->data());
}
template <typename T> const T* Tensor::data_ptr() const {
  check_type<T>(*this, "data_ptr");
  return static_cast<const T*>(impl_->data());
}
template <typename T> T Tensor::item() const {
  require_defined(*this, "item");
  if (numel() != 1)
    throw Error(fmt::format("item: expected a tensor with one element, got shape {}", shape_str(shape())));
  return dispatch(dtype(), [&](auto z) { return static_cast<T>(*static_cast<const decltype(z)*>(impl_->data())); });
}
template <typename T> std::vector<T> Tensor::to_vector() const {
  require_defined(*this, "to_vector");
  std::vector<T> out(static_cast<size_t>(numel()));
  dispatch(dtype(), [&](auto z) {
    auto* p = static_cast<const decltype(z)*>(impl_->data());
    for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<T>(p[i]);
  });
  return out;
}
#define TG_INSTANTIATE(T)                              \
  template T* Tensor::data_ptr<T>();                   \
  template const T* Tensor::data_ptr<T>() const;       \
  template T Tensor::item<T>() const;                  \
  template std::vector<T> Tensor::to_vector<T>() const;
TG_INSTANTIATE(float)
TG_INSTANTIATE(double)
TG_INSTANTIATE(int64_t)
#undef TG_INSTANTIATE

// ---- in-place updates (never recorded) ----
Tensor& Tensor::zero_() { return fill_(0.0); }
Tensor& Tensor::fill_(double v) {
  require_defined(*this, "fill_");
  dispatch(dtype(), [&](auto z) {
    using T = decltype(z);
    T* p = typed<T>(*this);
    const T c = static_cast<T>(v);
    detail::parallel_for(numel(), 1 << 16, [&](int64_t b, int64_t e) { std::fill(p + b, p + e, c); });
  });
  return *this;
}
Tensor& Tensor::copy_(const Tensor& src) {
  require_defined(*this, "copy_");
  require_defined(src, "copy_");
  if (src.numel() != numel())
    throw Error(fmt::format("copy_: expected a source with {} elements (shape {}), got shape {}", numel(),
                            shape_str(shape()), shape_str(src.shape())));
  dispatch(dtype(), [&](auto z) {
    using T = decltype(z);
    T* d = typed<T>(*this);
    dispatch(src.dtype(), [&](auto w) {
      using S = decltype(w);
      const S* s = typed<S>(src);
      for (int64_t i = 0; i < numel(); ++i) d[i] = static_cast<T>(s[i]);
    });
  });
  return *this;
}
Tensor& Tensor::add_(const Tensor& other, double alpha) {
  require_defined(*this, "add_");
  require_defined(other, "add_");
  if (other.shape() != shape() || other.dtype() != dtype())
    throw Error(fmt::format("add_: expected {} {}, got {} {}", dtype_name(dtype()), shape_str(shape()),
                            dtype_name(other.dtype()), shape_str(other.shape())));
  dispatch(dtype(), [&](auto z) {
    using T = decltype(z);
    T* d = typed<T>(*this);
    const T* s = typed<T>(other);
    const T a = static_cast<T>(alpha);
    detail::parallel_for(numel(), 1 << 15, [&](int64_t b, int64_t e) {
      if (alpha == 1.0)
        for (int64_t i = b; i < e; ++i) d[i] += s[i];
      else
        for (int64_t i = b; i < e; ++i) d[i] += a * s[i];
    });
  });
  return *this;
}
Tensor& Tensor::mul_(double s) {
  require_defined(*this, "mul_");
  dispatch(dtype(), [&](auto z) {
    using T = decltype(z);
    T* d = typed<T>(*this);
    const T c = static_cast<T>(s);
    for (int64_t i = 0; i < numel(); ++i) d[i] *= c;
  });
  return *this;
}

// ---- autograd accessors ----
bool Tensor::requires_grad() const { return impl_ && (impl_->requires_grad || impl_->grad_fn); }
Tensor& Tensor::requires_grad_(bool r) {
  require_defined(*this, "requires_grad_");
  if (impl_->grad_fn) {
    if (!r)
      throw Error(fmt::format("requires_grad_: cannot turn off requires_grad on a non-leaf tensor (made by '{}'); "
                              "use detach()",
                              impl_->grad_fn->name));
    return *this;
  }
  if (r && !is_floating(dtype()))
    throw Error(fmt::format("requires_grad_: only floating tensors can require grad, got {}", dtype_name(dtype())));
  impl_->requires_grad = r;
  if (!r) impl_->grad_accumulator.reset();
  return *this;
}
bool Tensor::is_leaf() const { return !impl_ || !impl_->grad_fn; }
const Tensor& Tensor::grad() const {
  require_defined(*this, "grad");
  return impl_->grad;
}
Tensor& Tensor::mutable_grad() {
  require_defined(*this, "mutable_grad");
  return impl_->grad;
}
Tensor Tensor::detach() const {
  require_defined(*this, "detach");
  return detail::make_alias(impl_->storage, impl_->shape, impl_->dtype);
}
const std::shared_ptr<Node>& Tensor::grad_fn() const {
  static const std::shared_ptr<Node> none;
  return impl_ ? impl_->grad_fn : none;
}
std::string Tensor::grad_fn_name() const { return impl_ && impl_->grad_fn ? impl_->grad_fn->name : ""; }

// ---- factories ----
namespace {
// The one global generator (PyTorch's default CPU generator): shared by every thread, each draw
// of a whole tensor and each seeding under this lock, so threads never race on its state.
std::mt19937_64& generator() {
  static std::mt19937_64 gen(5489u);
  return gen;
}
std::mutex& generator_mutex() {
  static std::mutex mu;
  return mu;
}
Tensor finish(Tensor t, const TensorOptions& o) {
  if (o.requires_grad()) t.requires_grad_(true);
  return t;
}
}  // namespace

void manual_seed(uint64_t seed) {
  std::lock_guard<std::mutex> lock(generator_mutex());
  generator().seed(seed);
}
std::string get_rng_state() {
  std::ostringstream os;
  std::lock_guard<std::mutex> lock(generator_mutex());
  os << generator();
  return os.str();
}
void set_rng_state(const std::string& state) {
  std::istringstream is(state);
  std::mt19937_64 g;
  is >> g;
  if (!is) throw Error("set_rng_state: the state string is not a generator state");
  std::lock_guard<std::mutex> lock(generator_mutex());
  generator() = g;
}
void set_num_threads(int n) {
  if (n < 1) throw Error(fmt::format("set_num_threads: expected at least 1 thread, got {}", n));
  detail::set_pool_threads(n);
  // One owner of the cores: the pool. OpenBLAS runs single-threaded inside it (its own threads
  // spinning beside the pool's oversubscribe two cores; measured in docs/benchmarks.md).
  openblas_set_num_threads(1);
}
int get_num_threads() { return detail::pool_threads(); }

Tensor empty(const Shape& s, TensorOptions o) { return finish(detail::make_tensor(s, o.dtype()), o); }
Tensor full(const Shape& s, double value, TensorOptions o) {
  Tensor t = detail::make_tensor(s, o.dtype());
  t.fill_(value);
  return finish(t, o);
}
Tensor zeros(const Shape& s, TensorOptions o) { return full(s, 0.0, o); }
Tensor ones(const Shape& s, TensorOptions o) { return full(s, 1.0, o); }

Tensor randn(const Shape& s, TensorOptions o) {
  Tensor t = detail::make_tensor(s, o.dtype());
  std::normal_distribution<double> dist(0.0, 1.0);
  dispatch_floating(o.dtype(), "randn", [&](auto z) {
    using T = decltype(z);
    T* p = typed<T>(t);
    std::lock_guard<std::mutex> lock(generator_mutex());
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<T>(dist(generator()));
  });
  return finish(t, o);
}
Tensor rand(const Shape& s, TensorOptions o) {
  Tensor t = detail::make_tensor(s, o.dtype());
  std::uniform_real_distribution<double> dist(0.0, 1.0);
  dispatch_floating(o.dtype(), "rand", [&](auto z) {
    using T = decltype(z);
    T* p = typed<T>(t);
    std::lock_guard<std::mutex> lock(generator_mutex());
    for (int64_t i = 0; i < t.numel(); ++i) {
      T v = static_cast<T>(dist(generator()));
      p[i] = v < T(1) ? v : T(0);  // rounding to float can reach 1.0
    }
  });
  return finish(t, o);
}
namespace {
// The options of a *_like factory: t's dtype unless o sets one.
TensorOptions like(const Tensor& t, TensorOptions o, const char* op) {
  if (!t.defined()) throw Error(fmt::format("{}: got an undefined tensor", op));
  if (!o.has_dtype()) o.dtype(t.dtype());
  return o;
}
}  // namespace
Tensor zeros_like(const Tensor& t, TensorOptions o) { return zeros(t.shape(), like(t, o, "zeros_like")); }
Tensor ones_like(const Tensor& t, TensorOptions o) { return ones(t.shape(), like(t, o, "ones_like")); }
Tensor full_like(const Tensor& t, double v, TensorOptions o) { return full(t.shape(), v, like(t, o, "full_like")); }
Tensor empty_like(const Tensor& t, TensorOptions o) { return empty(t.shape(), like(t, o, "empty_like")); }
Tensor rand_like(const Tensor& t, TensorOptions o) { return rand(t.shape(), like(t, o, "rand_like")); }
Tensor randn_like(const Tensor& t, TensorOptions o) { return randn(t.shape(), like(t, o, "randn_like")); }
Tensor randint(int64_t low, int64_t high, const Shape& s, TensorOptions o) {
  if (high <= low) throw Error(fmt::format("randint: expected low < high, got low={} high={}", low, high));
  Tensor t = detail::make_tensor(s, o.dtype());
  std::uniform_int_distribution<int64_t> dist(low, high - 1);
  dispatch(o.dtype(), [&](auto z) {
    using T = decltype(z);
    T* p = typed<T>(t);
    std::lock_guard<std::mutex> lock(generator_mutex());
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<T>(dist(generator()));
  });
  return finish(t, o);
}
Tensor arange(double start, double end, double step, TensorOptions o) {
  if (step == 0 || (end - start) / step < 0)
    throw Error(fmt::format("arange: the range [{}, {}) with step {} is empty or infinite", start, end, step));
  int64_t n = int64_t(std::ceil((end - start) / step));
  Tensor t = detail::make_tensor({n}, o.dtype());
  dispatch(o.dtype(), [&](auto z) {
    using T = decltype(z);
    T* p = typed<T>(t);
    for (int64_t i = 0; i < n; ++i) p[i] = static_cast<T>(start + double(i) * step);
  });
  return finish(t, o);
}
Tensor tensor(const std::vector<double>& values, const Shape& s, TensorOptions o) {
  if (int64_t(values.size()) != shape_numel(s))
    throw Error(fmt::format("tensor: {} values do not fill shape {} ({} elements)", values.size(), shape_str(s),
                            shape_numel(s)));
  Tensor t = detail::make_tensor(s, o.dtype());
  dispatch(o.dtype(), [&](auto z) {
    using T = decltype(z);
    T* p = typed<T>(t);
    for (size_t i = 0; i < values.size(); ++i) p[i] = static_cast<T>(values[i]);
  });
  return finish(t, o);
}
Tensor tensor(const std::vector<double>& values, const Shape& s, Dtype d) { return tensor(values, s, TensorOptions(d)); }
Tensor scalar_tensor(double v, Dtype d) { return full({}, v, d); }

// ---- printing, in PyTorch's manner ----
namespace {
struct Printer {
  const Tensor& t;
  std::vector<double> v;
  bool integral;
  bool summarize;
  int width = 0;
  std::string fmt_value(double x) const {
    if (integral) return fmt::format("{}", int64_t(x));
    return fmt::format("{:.4f}", x);
  }
  void rec(std::string& out, int64_t dim, int64_t offset, int indent) const {
    const Shape& s = t.shape();
    int64_t n = s[size_t(dim)];
    int64_t stride = 1;
    for (size_t k = size_t(dim) + 1; k < s.size(); ++k) stride *= s[k];
    out += '[';
    for (int64_t i = 0; i < n; ++i) {
      if (summarize && n > 6 && i == 3) {
        out += dim + 1 == int64_t(s.size()) ? "..., " : "...,\n" + std::string(size_t(indent + 1), ' ');
        i = n - 3;
      }
      if (dim + 1 == int64_t(s.size())) {
        out += fmt::format("{:>{}}", fmt_value(v[size_t(offset + i)]), width);
        if (i + 1 < n) out += ", ";
      } else {
        rec(out, dim + 1, offset + i * stride, indent + 1);
        if (i + 1 < n) out += "," + std::string(size_t(s.size() - size_t(dim) - 1), '\n') + std::string(size_t(indent + 1), ' ');
      }
    }
    out += ']';
  }
};
}  // namespace

std::string Tensor::str() const {
  if (!defined()) return "tensor(undefined)";
  Printer p{*this, to_vector<double>(), dtype() == kInt64, numel() > 1000};
  for (double x : p.v) p.width = std::max(p.width, int(p.fmt_value(x).size()));
  std::string body;
  if (dim() == 0)
    body = p.fmt_value(p.v[0]);
  else
    p.rec(body, 0, 0, 7);
  std::string out = "tensor(" + body + fmt::format(", shape={}, dtype={}", shape_str(shape()), dtype_name(dtype()));
  if (impl_->grad_fn)
    out += fmt::format(", grad_fn=<{}>", impl_->grad_fn->name);
  else if (impl_->requires_grad)
    out += ", requires_grad=true";
  return out + ")";
}
std::ostream& operator<<(std::ostream& os, const Tensor& t) { return os << t.str(); }

}  // namespace tg
