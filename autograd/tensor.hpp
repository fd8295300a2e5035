#pragma once
/// tg::Tensor: a cheap-to-copy handle to a dense, row-major, contiguous n-d array of float32,
/// float64 or int64, with the autograd metadata that puts it on the tape.
///
///   tg::Tensor w = tg::randn({3, 4}).requires_grad_();
///   tg::Tensor loss = tg::matmul(x, w).relu().sum();
///   loss.backward();  w.grad();
///
/// Copies of a handle share data, as torch::Tensor's do. Every op returns a new contiguous
/// tensor except reshape/view/flatten/squeeze/unsqueeze, which share the input's storage
/// (see docs/design.md, "Views").
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <iosfwd>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "dtype.hpp"
#include "error.hpp"

namespace tg {

struct TensorImpl;
struct Node;
class Tensor;

using Hook = std::function<Tensor(const Tensor&)>;

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- metadata ----
  bool defined() const { return impl_ != nullptr; }
  inline const Shape& shape() const;
  const Shape& sizes() const { return shape(); }
  inline int64_t dim() const;
  inline int64_t numel() const;
  /// Size of dimension i; negative i counts from the end.
  int64_t size(int64_t i) const;
  inline Dtype dtype() const;
  std::string str() const;  ///< PyTorch-like printout: values, shape, dtype, grad_fn

  // ---- data ----
  template <typename T> T* data_ptr();
  template <typename T> const T* data_ptr() const;
  template <typename T> T item() const;
  template <typename T> std::vector<T> to_vector() const;
  Tensor to(Dtype d) const;  ///< differentiable cast; returns *this when d == dtype()
  Tensor contiguous() const { return *this; }  ///< every tensor is contiguous
  Tensor clone() const;      ///< differentiable copy with fresh storage

  // ---- in-place (not recorded on the tape; for optimizers, initialisers, buffers) ----
  Tensor& zero_();
  Tensor& fill_(double v);
  Tensor& copy_(const Tensor& src);  ///< same numel; src converted to this dtype
  Tensor& add_(const Tensor& other, double alpha = 1.0);  ///< same shape
  Tensor& mul_(double s);
  // The same on a const handle (the data is shared, as in libtorch): `w.grad().zero_()`.
  const Tensor& zero_() const { return const_cast<Tensor*>(this)->zero_(); }
  const Tensor& fill_(double v) const { return const_cast<Tensor*>(this)->fill_(v); }
  const Tensor& copy_(const Tensor& src) const { return const_cast<Tensor*>(this)->copy_(src); }
  const Tensor& add_(const Tensor& other, double alpha = 1.0) const {
    return const_cast<Tensor*>(this)->add_(other, alpha);
  }
  const Tensor& mul_(double s) const { return const_cast<Tensor*>(this)->mul_(s); }

  // ---- autograd ----
  bool requires_grad() const;
  Tensor& requires_grad_(bool r = true);
  bool is_leaf() const;
  /// The accumulated gradient; undefined until a backward reaches this tensor.
  const Tensor& grad() const;
  Tensor& mutable_grad();
  void backward(const Tensor& grad = {}, bool retain_graph = false, bool create_graph = false) const;
  void retain_grad() const;
  /// fn(g) may return a replacement gradient, or an undefined tensor to keep g. Returns an id.
  size_t register_hook(Hook fn) const;
  void remove_hook(size_t id) const;
  Tensor detach() const;  ///< shares storage, off the tape
  const std::shared_ptr<Node>& grad_fn() const;
  /// Name of the op that made this tensor ("mul", ...), or "" for a leaf.
  std::string grad_fn_name() const;

  // ---- methods mirroring the free functions ----
  Tensor operator-() const;
  Tensor sum() const;
  Tensor sum(const std::vector<int64_t>& dims, bool keepdim = false) const;
  Tensor mean() const;
  Tensor mean(const std::vector<int64_t>& dims, bool keepdim = false) const;
  Tensor max() const;
  Tensor max(const std::vector<int64_t>& dims, bool keepdim = false) const;
  Tensor min() const;
  Tensor min(const std::vector<int64_t>& dims, bool keepdim = false) const;
  Tensor argmax(int64_t dim, bool keepdim = false) const;
  Tensor argmin(int64_t dim, bool keepdim = false) const;
  Tensor var(const std::vector<int64_t>& dims, bool unbiased = true, bool keepdim = false) const;
  Tensor std(const std::vector<int64_t>& dims, bool unbiased = true, bool keepdim = false) const;
  Tensor logsumexp(const std::vector<int64_t>& dims, bool keepdim = false) const;
  Tensor cumsum(int64_t dim) const;
  std::tuple<Tensor, Tensor> sort(int64_t dim = -1, bool descending = false) const;
  Tensor argsort(int64_t dim = -1, bool descending = false) const;
  std::tuple<Tensor, Tensor> topk(int64_t k, int64_t dim = -1, bool largest = true, bool sorted = true) const;
  Tensor reshape(const Shape& s) const;
  Tensor view(const Shape& s) const;
  Tensor permute(const std::vector<int64_t>& dims) const;
  Tensor transpose(int64_t d0, int64_t d1) const;
  Tensor t() const;
  Tensor flatten(int64_t start_dim = 0, int64_t end_dim = -1) const;
  Tensor unsqueeze(int64_t d) const;
  Tensor squeeze() const;
  Tensor squeeze(int64_t d) const;
  Tensor expand(const Shape& s) const;
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  std::vector<Tensor> split(int64_t split_size, int64_t dim = 0) const;
  std::vector<Tensor> chunk(int64_t chunks, int64_t dim = 0) const;
  Tensor gather(int64_t dim, const Tensor& index) const;
  Tensor index_select(int64_t dim, const Tensor& index) const;
  Tensor pow(double p) const;
  Tensor pow(const Tensor& p) const;
  Tensor exp() const;
  Tensor log() const;
  Tensor sqrt() const;
  Tensor abs() const;
  Tensor tanh() const;
  Tensor sigmoid() const;
  Tensor relu() const;
  Tensor neg() const;
  Tensor erf() const;
  Tensor sin() const;
  Tensor cos() const;
  Tensor log1p() const;
  Tensor expm1() const;
  Tensor rsqrt() const;
  Tensor square() const;
  Tensor floor() const;
  Tensor ceil() const;
  Tensor round() const;
  Tensor sign() const;
  Tensor atan2(const Tensor& other) const;
  Tensor maximum(const Tensor& other) const;
  Tensor minimum(const Tensor& other) const;
  Tensor clamp(double lo, double hi) const;
  Tensor eq(const Tensor& other) const;
  Tensor ne(const Tensor& other) const;
  Tensor lt(const Tensor& other) const;
  Tensor le(const Tensor& other) const;
  Tensor gt(const Tensor& other) const;
  Tensor ge(const Tensor& other) const;
  Tensor eq(double other) const;
  Tensor ne(double other) const;
  Tensor lt(double other) const;
  Tensor le(double other) const;
  Tensor gt(double other) const;
  Tensor ge(double other) const;
  Tensor matmul(const Tensor& other) const;

  // internal
  const std::shared_ptr<TensorImpl>& impl() const { return impl_; }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

// ---- factories ----
Tensor empty(const Shape& s, TensorOptions o = {});
Tensor zeros(const Shape& s, TensorOptions o = {});
Tensor ones(const Shape& s, TensorOptions o = {});
Tensor full(const Shape& s, double value, TensorOptions o = {});
/// Standard normal / uniform [0, 1) from the global generator.
Tensor randn(const Shape& s, TensorOptions o = {});
Tensor rand(const Shape& s, TensorOptions o = {});
/// t's shape, and t's dtype unless o sets one (torch.zeros_like(t, dtype=...)); requires_grad
/// from o. `tg::zeros_like(x)`, `tg::full_like(x, 0.5, tg::kFloat64)`.
Tensor zeros_like(const Tensor& t, TensorOptions o = {});
Tensor ones_like(const Tensor& t, TensorOptions o = {});
Tensor full_like(const Tensor& t, double value, TensorOptions o = {});
Tensor empty_like(const Tensor& t, TensorOptions o = {});
Tensor rand_like(const Tensor& t, TensorOptions o = {});
Tensor randn_like(const Tensor& t, TensorOptions o = {});
/// Integers uniformly drawn from [low, high) (int64 unless a dtype is given).
Tensor randint(int64_t low, int64_t high, const Shape& s, TensorOptions o = TensorOptions(kInt64));
/// [start, end) with step; int64 unless a dtype is given.
Tensor arange(double start, double end, double step = 1.0, TensorOptions o = TensorOptions(kInt64));
/// Values in row-major order.
Tensor tensor(const std::vector<double>& values, const Shape& s, TensorOptions o = {});
Tensor tensor(const std::vector<double>& values, const Shape& s, Dtype d);
Tensor scalar_tensor(double v, Dtype d = kFloat32);

/// Seeds the one global generator: the same seed gives the same numbers.
void manual_seed(uint64_t seed);
/// The global generator's full state as text, and its restoration (checkpoints).
std::string get_rng_state();
void set_rng_state(const std::string& state);
/// The threads the library may use (its own loops and OpenBLAS).
void set_num_threads(int n);
int get_num_threads();
/// What runs: the kernels' instruction-set level (and the processor's best), the BLAS library and
/// its core, and the threads, e.g. "kernels avx2 (processor: avx2), BLAS OpenBLAS 0.3.21 core
/// Zen, 2 threads". TAPEGRAD_ISA=avx512|avx2|generic lowers the level.
std::string config_string();

std::ostream& operator<<(std::ostream& os, const Tensor& t);

// ---- operators (NumPy broadcasting; a scalar is a 0-d tensor of the other side's dtype) ----
Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator+(const Tensor& a, double b);
Tensor operator-(const Tensor& a, double b);
Tensor operator*(const Tensor& a, double b);
Tensor operator/(const Tensor& a, double b);
Tensor operator+(double a, const Tensor& b);
Tensor operator-(double a, const Tensor& b);
Tensor operator*(double a, const Tensor& b);
Tensor operator/(double a, const Tensor& b);
/// Comparisons as operators: eq ne lt le gt ge below (`x < 0.5`, `0.0 == x`, `a >= b`).
Tensor operator==(const Tensor& a, const Tensor& b);
Tensor operator!=(const Tensor& a, const Tensor& b);
Tensor operator<(const Tensor& a, const Tensor& b);
Tensor operator<=(const Tensor& a, const Tensor& b);
Tensor operator>(const Tensor& a, const Tensor& b);
Tensor operator>=(const Tensor& a, const Tensor& b);
Tensor operator==(const Tensor& a, double b);
Tensor operator!=(const Tensor& a, double b);
Tensor operator<(const Tensor& a, double b);
Tensor operator<=(const Tensor& a, double b);
Tensor operator>(const Tensor& a, double b);
Tensor operator>=(const Tensor& a, double b);
Tensor operator==(double a, const Tensor& b);
Tensor operator!=(double a, const Tensor& b);
Tensor operator<(double a, const Tensor& b);
Tensor operator<=(double a, const Tensor& b);
Tensor operator>(double a, const Tensor& b);
Tensor operator>=(double a, const Tensor& b);

// ---- elementwise ----
Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor abs(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor relu(const Tensor& x);
Tensor erf(const Tensor& x);
Tensor sin(const Tensor& x);
Tensor cos(const Tensor& x);
/// log(1 + x) and exp(x) - 1, accurate for small |x|.
Tensor log1p(const Tensor& x);
Tensor expm1(const Tensor& x);
/// 1 / sqrt(x).
Tensor rsqrt(const Tensor& x);
/// x * x, any dtype.
Tensor square(const Tensor& x);
/// Step functions, any dtype; their gradient is 0, as PyTorch's. round: half to even
/// (torch.round: 0.5 -> 0, 1.5 -> 2); sign: -1, 0 or 1 (0 for NaN).
Tensor floor(const Tensor& x);
Tensor ceil(const Tensor& x);
Tensor round(const Tensor& x);
Tensor sign(const Tensor& x);
Tensor pow(const Tensor& x, double p);
Tensor pow(const Tensor& x, const Tensor& p);
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor minimum(const Tensor& a, const Tensor& b);
/// The angle of the point (b, a) in [-pi, pi], elementwise with broadcasting (torch.atan2(a, b)).
Tensor atan2(const Tensor& a, const Tensor& b);
Tensor clamp(const Tensor& x, double lo, double hi);
/// cond != 0 picks a, else b; no gradient flows to cond. Broadcasts all three.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
/// A scalar operand takes the tensor's dtype (float32 when that is int64 and the scalar is
/// fractional), as in PyTorch: `tg::where(x > 0, x, 0.0)`; two scalars give float32.
Tensor where(const Tensor& cond, const Tensor& a, double b);
Tensor where(const Tensor& cond, double a, const Tensor& b);
Tensor where(const Tensor& cond, double a, double b);
/// Comparisons return 0/1 in the broadcast inputs' dtype (there is no bool dtype).
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
/// Against a scalar, taken in a's dtype (float32 when a is int64 and the scalar fractional).
Tensor eq(const Tensor& a, double b);
Tensor ne(const Tensor& a, double b);
Tensor lt(const Tensor& a, double b);
Tensor le(const Tensor& a, double b);
Tensor gt(const Tensor& a, double b);
Tensor ge(const Tensor& a, double b);

// ---- reductions (dims may be negative; empty dims = all) ----
Tensor sum(const Tensor& x);
Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim = false);
Tensor mean(const Tensor& x);
Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim = false);
Tensor var(const Tensor& x, const std::vector<int64_t>& dims, bool unbiased = true, bool keepdim = false);
Tensor std(const Tensor& x, const std::vector<int64_t>& dims, bool unbiased = true, bool keepdim = false);
/// Values of the maximum over dims (torch.amax); ties share the gradient equally.
Tensor max(const Tensor& x);
Tensor max(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim = false);
Tensor min(const Tensor& x);
Tensor min(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim = false);
/// Index of the first maximum along dim (int64).
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor argmin(const Tensor& x, int64_t dim, bool keepdim = false);
/// log(sum(exp(x))) over dims, computed about the maximum, so large inputs do not overflow.
Tensor logsumexp(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim = false);

// ---- scans and sorting ----
/// Running sums along dim (torch.cumsum); int64 stays int64.
Tensor cumsum(const Tensor& x, int64_t dim);
/// (values, int64 indices) sorted along dim. Ties keep their order (a stable sort); NaN sorts
/// as the largest. `auto [v, i] = tg::sort(x, 1, /*descending=*/true);`
std::tuple<Tensor, Tensor> sort(const Tensor& x, int64_t dim = -1, bool descending = false);
/// The indices of sort (torch.argsort).
Tensor argsort(const Tensor& x, int64_t dim = -1, bool descending = false);
/// The k largest (or smallest) entries along dim and their int64 indices, in sorted order
/// (also when sorted = false, where PyTorch leaves the order unspecified); 0 <= k <= size(dim).
std::tuple<Tensor, Tensor> topk(const Tensor& x, int64_t k, int64_t dim = -1, bool largest = true,
                                bool sorted = true);

// ---- movement ----
Tensor reshape(const Tensor& x, const Shape& s);  ///< one -1 allowed
Tensor view(const Tensor& x, const Shape& s);
Tensor permute(const Tensor& x, const std::vector<int64_t>& dims);
Tensor transpose(const Tensor& x, int64_t d0, int64_t d1);
Tensor flatten(const Tensor& x, int64_t start_dim = 0, int64_t end_dim = -1);
Tensor unsqueeze(const Tensor& x, int64_t d);
Tensor squeeze(const Tensor& x);
Tensor squeeze(const Tensor& x, int64_t d);
/// Broadcast to s (-1 keeps a size); size-1 dims repeat, new leading dims are added.
Tensor expand(const Tensor& x, const Shape& s);
/// Constant padding; pads lists (before, after) pairs starting from the LAST dim, as F.pad.
Tensor pad(const Tensor& x, const std::vector<int64_t>& pads, double value = 0.0);
/// Elements start, start+step, ... < end along dim (negative start/end count from the end).
Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step = 1);
Tensor narrow(const Tensor& x, int64_t dim, int64_t start, int64_t length);
Tensor cat(const std::vector<Tensor>& xs, int64_t dim = 0);
Tensor stack(const std::vector<Tensor>& xs, int64_t dim = 0);
std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim = 0);
std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim = 0);
/// out[i][j] = x[index[i][j]][j] for dim 0 (torch.gather); index is int64 of x's rank.
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);
/// Rows (along dim) of x picked by a 1-D int64 index.
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);

// ---- linear algebra ----
/// torch.matmul: 1-D and 2-D operands, and batched operands with broadcast batch dims.
Tensor matmul(const Tensor& a, const Tensor& b);

// ---- windows (the basis of convolution and pooling) ----
/// Options of unfold/fold for an n-d window (n = 1, 2, 3); a one-element list applies to all dims.
class WindowOptions {
 public:
  WindowOptions() = default;
  WindowOptions(std::vector<int64_t> kernel) : kernel_size_(std::move(kernel)) {}  // NOLINT
  WindowOptions& kernel_size(std::vector<int64_t> v) { kernel_size_ = std::move(v); return *this; }
  WindowOptions& stride(std::vector<int64_t> v) { stride_ = std::move(v); return *this; }
  WindowOptions& padding(std::vector<int64_t> v) { padding_ = std::move(v); return *this; }
  WindowOptions& dilation(std::vector<int64_t> v) { dilation_ = std::move(v); return *this; }
  const std::vector<int64_t>& kernel_size() const { return kernel_size_; }
  const std::vector<int64_t>& stride() const { return stride_; }
  const std::vector<int64_t>& padding() const { return padding_; }
  const std::vector<int64_t>& dilation() const { return dilation_; }

 private:
  std::vector<int64_t> kernel_size_;
  std::vector<int64_t> stride_{1};
  std::vector<int64_t> padding_{0};
  std::vector<int64_t> dilation_{1};
};
/// im2col: x [N, C, *spatial] -> [N, C * prod(kernel), L], L = number of window positions
/// (torch.nn.functional.unfold's layout, generalised to 1-D and 3-D).
Tensor unfold(const Tensor& x, const WindowOptions& o);
/// col2im, the adjoint of unfold: cols [N, C * prod(kernel), L] -> [N, C, *output_size],
/// overlapping windows summed.
Tensor fold(const Tensor& cols, const Shape& output_size, const WindowOptions& o);

}  // namespace tg

// The accessors above are inline (they run several times per op); TensorImpl is defined here.
#include "tensor_impl.hpp"
