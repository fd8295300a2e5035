// The public op surface: broadcasting wrappers over the primitives, and composites written only
// with primitives (no VJP of their own).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "autograd.hpp"
#include "node.hpp"
#include "primitives.hpp"

namespace tg {
namespace {

void need(const Tensor& t, const char* op) {
  if (!t.defined()) throw Error(fmt::format("{}: got an undefined tensor", op));
}

Dtype promote(Dtype a, Dtype b) {
  if (a == kFloat64 || b == kFloat64) return kFloat64;
  if (a == kFloat32 || b == kFloat32) return kFloat32;
  return kInt64;
}

// Broadcasts x to s: leading size-1 dims by reshape, then the primitive expand.
Tensor expand_to(const Tensor& x, const Shape& s) {
  if (x.shape() == s) return x;
  Tensor r = x;
  if (size_t(x.dim()) < s.size()) {
    Shape padded(s.size() - size_t(x.dim()), 1);
    padded.insert(padded.end(), x.shape().begin(), x.shape().end());
    r = prim::reshape(x, padded);
  }
  return prim::expand(r, s);
}

// Promotes two operands to a common dtype; the binary primitives broadcast them themselves
// (a zero-stride read instead of a copy).
std::pair<Tensor, Tensor> promote_pair(const Tensor& a, const Tensor& b, const char* op) {
  need(a, op);
  need(b, op);
  if (a.dtype() == b.dtype()) return {a, b};
  Dtype d = promote(a.dtype(), b.dtype());
  return {a.dtype() == d ? a : prim::cast(a, d), b.dtype() == d ? b : prim::cast(b, d)};
}

// Promotes and materialises the broadcast (for where and matmul's batch dims).
std::pair<Tensor, Tensor> broadcast(const Tensor& a, const Tensor& b, const char* op) {
  auto [x, y] = promote_pair(a, b, op);
  if (x.shape() == y.shape()) return {x, y};
  Shape s = detail::broadcast_shapes(x.shape(), y.shape(), op);
  return {expand_to(x, s), expand_to(y, s)};
}

Tensor scalar_like(const Tensor& t, double v) {
  need(t, "scalar op");
  Dtype d = t.dtype();
  if (d == kInt64 && v != std::floor(v)) d = kFloat32;
  return scalar_tensor(v, d);
}

int64_t wrap_dim(int64_t d, const Shape& s, const char* op) {
  // A 0-d tensor takes dim 0 or -1, as in PyTorch.
  const int64_t n = int64_t(s.size()), m = std::max<int64_t>(n, 1);
  int64_t r = d < 0 ? d + m : d;
  if (r < 0 || r >= m)
    throw Error(fmt::format("{}: dim {} out of range for a tensor with {} dims (shape {})", op, d, n, shape_str(s)));
  return r;
}

std::vector<int64_t> wrap_dims(const std::vector<int64_t>& dims, const Shape& s, const char* op) {
  const int64_t n = int64_t(s.size());
  std::vector<int64_t> r;
  if (dims.empty()) {
    r.resize(size_t(n));
    std::iota(r.begin(), r.end(), 0);
    return r;
  }
  for (int64_t d : dims) r.push_back(wrap_dim(d, s, op));
  std::sort(r.begin(), r.end());
  if (std::adjacent_find(r.begin(), r.end()) != r.end())
    throw Error(fmt::format("{}: dim listed twice in [{}]", op, fmt::join(dims, ", ")));
  return r;
}

Shape drop_dims(const Shape& s, const std::vector<int64_t>& dims) {
  Shape out;
  for (size_t i = 0; i < s.size(); ++i)
    if (std::find(dims.begin(), dims.end(), int64_t(i)) == dims.end()) out.push_back(s[i]);
  return out;
}

// The node a composite made last takes the composite's name, so grad_fn_name(), to_dot and the
// engine's errors (a second backward through a freed graph) name the op the user called: 'sum',
// not the reshape that drops its dims.
Tensor named(Tensor y, const char* op, const Tensor& x) {
  if (y.defined() && y.impl()->grad_fn && (!x.defined() || y.impl()->grad_fn != x.impl()->grad_fn))
    y.impl()->grad_fn->name = op;
  return y;
}

// Runs a keepdim primitive reduction and drops the reduced dims unless keepdim.
template <typename F>
Tensor reduce(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim, const char* op, F prim_fn) {
  need(x, op);
  auto d = wrap_dims(dims, x.shape(), op);
  if (x.dim() == 0) return x;
  Tensor y = prim_fn(x, d);
  return named(keepdim ? y : prim::reshape(y, drop_dims(x.shape(), d)), op, x);
}

}  // namespace

namespace detail {
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  const size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t x = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t y = i < n - b.size() ? 1 : b[i - (n - b.size())];
    if (x != y && x != 1 && y != 1)
      throw Error(fmt::format("{}: shapes {} and {} cannot be broadcast (dim {}: {} vs {})", op, shape_str(a),
                              shape_str(b), i, x, y));
    out[i] = x == 1 ? y : x;
  }
  return out;
}

std::vector<int64_t> sum_to_dims(const Shape& from, const Shape& to, const char* op) {
  if (to.size() > from.size())
    throw Error(fmt::format("{}: cannot reduce shape {} to {}", op, shape_str(from), shape_str(to)));
  const size_t lead = from.size() - to.size();
  std::vector<int64_t> dims;
  for (size_t i = 0; i < from.size(); ++i) {
    if (i >= lead && to[i - lead] == from[i]) continue;
    if (i >= lead && to[i - lead] != 1)
      throw Error(fmt::format("{}: cannot reduce shape {} to {}", op, shape_str(from), shape_str(to)));
    dims.push_back(int64_t(i));
  }
  return dims;
}
}  // namespace detail

// ---- arithmetic ----
Tensor operator+(const Tensor& a, const Tensor& b) { auto [x, y] = promote_pair(a, b, "add"); return prim::add(x, y); }
Tensor operator-(const Tensor& a, const Tensor& b) { auto [x, y] = promote_pair(a, b, "sub"); return prim::sub(x, y); }
Tensor operator*(const Tensor& a, const Tensor& b) { auto [x, y] = promote_pair(a, b, "mul"); return prim::mul(x, y); }
Tensor operator/(const Tensor& a, const Tensor& b) {
  // True division, as PyTorch's: integer operands are divided as float32.
  auto [x, y] = promote_pair(a, b, "div");
  if (x.dtype() == kInt64) return prim::div(prim::cast(x, kFloat32), prim::cast(y, kFloat32));
  return prim::div(x, y);
}
// A number operand keeps the tensor's dtype (add_scalar / mul_scalar: no tensor for it), except
// a fractional number with an int64 tensor, which promotes to float32 as in PyTorch.
namespace {
bool promotes(const Tensor& t, double v) { return t.dtype() == kInt64 && v != std::floor(v); }
}  // namespace
Tensor operator+(const Tensor& a, double b) {
  need(a, "add");
  return promotes(a, b) ? a + scalar_like(a, b) : prim::add_scalar(a, b);
}
Tensor operator-(const Tensor& a, double b) {
  need(a, "sub");
  return promotes(a, b) ? a - scalar_like(a, b) : prim::add_scalar(a, -b);  // x - c == x + (-c) exactly
}
Tensor operator*(const Tensor& a, double b) {
  need(a, "mul");
  return promotes(a, b) ? a * scalar_like(a, b) : prim::mul_scalar(a, b);
}
Tensor operator/(const Tensor& a, double b) { return a / scalar_like(a, b); }
Tensor operator+(double a, const Tensor& b) { return b + a; }
Tensor operator-(double a, const Tensor& b) { return scalar_like(b, a) - b; }
Tensor operator*(double a, const Tensor& b) { return b * a; }
Tensor operator/(double a, const Tensor& b) { return scalar_like(b, a) / b; }

Tensor neg(const Tensor& x) { need(x, "neg"); return prim::neg(x); }
Tensor exp(const Tensor& x) { need(x, "exp"); return prim::exp(x); }
Tensor log(const Tensor& x) { need(x, "log"); return prim::log(x); }
Tensor sqrt(const Tensor& x) { need(x, "sqrt"); return prim::sqrt(x); }
Tensor abs(const Tensor& x) { need(x, "abs"); return prim::abs(x); }
Tensor tanh(const Tensor& x) { need(x, "tanh"); return prim::tanh(x); }
Tensor sigmoid(const Tensor& x) { need(x, "sigmoid"); return prim::sigmoid(x); }
Tensor relu(const Tensor& x) { need(x, "relu"); return prim::relu(x); }
Tensor erf(const Tensor& x) { need(x, "erf"); return prim::erf(x); }
Tensor sin(const Tensor& x) { need(x, "sin"); return prim::sin(x); }
Tensor cos(const Tensor& x) { need(x, "cos"); return prim::cos(x); }
Tensor log1p(const Tensor& x) { need(x, "log1p"); return prim::log1p(x); }
Tensor expm1(const Tensor& x) { need(x, "expm1"); return prim::expm1(x); }
Tensor rsqrt(const Tensor& x) {
  need(x, "rsqrt");
  dispatch_floating(x.dtype(), "rsqrt", [](auto) {});
  return 1.0 / prim::sqrt(x);
}
Tensor square(const Tensor& x) { need(x, "square"); return x * x; }
Tensor floor(const Tensor& x) { need(x, "floor"); return prim::step(x, prim::StepFn::Floor); }
Tensor ceil(const Tensor& x) { need(x, "ceil"); return prim::step(x, prim::StepFn::Ceil); }
Tensor round(const Tensor& x) { need(x, "round"); return prim::step(x, prim::StepFn::Round); }
Tensor sign(const Tensor& x) { need(x, "sign"); return prim::step(x, prim::StepFn::Sign); }
Tensor pow(const Tensor& x, double p) { need(x, "pow"); return prim::pow_scalar(x, p); }
Tensor pow(const Tensor& x, const Tensor& p) { auto [a, b] = promote_pair(x, p, "pow"); return prim::pow(a, b); }
Tensor maximum(const Tensor& a, const Tensor& b) { auto [x, y] = promote_pair(a, b, "maximum"); return prim::maximum(x, y); }
Tensor minimum(const Tensor& a, const Tensor& b) { auto [x, y] = promote_pair(a, b, "minimum"); return prim::minimum(x, y); }
Tensor atan2(const Tensor& a, const Tensor& b) { auto [x, y] = promote_pair(a, b, "atan2"); return prim::atan2(x, y); }

Tensor clamp(const Tensor& x, double lo, double hi) {
  need(x, "clamp");
  if (lo > hi) throw Error(fmt::format("clamp: expected min <= max, got min={} max={}", lo, hi));
  // where keeps a gradient of 1 at the bounds, as PyTorch's clamp does. A NaN stays NaN and
  // takes no gradient (PyTorch's mask is lo <= x <= hi).
  Tensor low = scalar_like(x, lo), high = scalar_like(x, hi);
  return where(lt(x, low), low, where(gt(x, high), high, where(ne(x, x), x.detach(), x)));
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  need(cond, "where");
  auto [x, y] = broadcast(a, b, "where");
  Shape s = detail::broadcast_shapes(cond.shape(), x.shape(), "where");
  return prim::where(expand_to(cond.detach(), s), expand_to(x, s), expand_to(y, s));
}
Tensor where(const Tensor& cond, const Tensor& a, double b) { return where(cond, a, scalar_like(a, b)); }
Tensor where(const Tensor& cond, double a, const Tensor& b) { return where(cond, scalar_like(b, a), b); }
Tensor where(const Tensor& cond, double a, double b) {
  return where(cond, scalar_tensor(a, kFloat32), scalar_tensor(b, kFloat32));
}

#define TG_COMPARE(name, op)                                     \
  Tensor name(const Tensor& a, const Tensor& b) {                \
    auto [x, y] = promote_pair(a.detach(), b.detach(), #name);   \
    return prim::compare(x, y, prim::Cmp::op);                   \
  }
TG_COMPARE(eq, Eq)
TG_COMPARE(ne, Ne)
TG_COMPARE(lt, Lt)
TG_COMPARE(le, Le)
TG_COMPARE(gt, Gt)
TG_COMPARE(ge, Ge)
#undef TG_COMPARE

// A scalar is taken in the tensor's dtype, as for arithmetic; an operator with the scalar first
// is the mirrored comparison.
#define TG_COMPARE_OPS(name, op, mirror)                                                     \
  Tensor name(const Tensor& a, double b) { return name(a, scalar_like(a, b)); }              \
  Tensor operator op(const Tensor& a, const Tensor& b) { return name(a, b); }                \
  Tensor operator op(const Tensor& a, double b) { return name(a, b); }                       \
  Tensor operator op(double a, const Tensor& b) { return mirror(b, a); }
TG_COMPARE_OPS(eq, ==, eq)
TG_COMPARE_OPS(ne, !=, ne)
TG_COMPARE_OPS(lt, <, gt)
TG_COMPARE_OPS(le, <=, ge)
TG_COMPARE_OPS(gt, >, lt)
TG_COMPARE_OPS(ge, >=, le)
#undef TG_COMPARE_OPS

// ---- reductions ----
Tensor sum(const Tensor& x) { return sum(x, {}, false); }
Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  return reduce(x, dims, keepdim, "sum", [](const Tensor& t, const std::vector<int64_t>& d) { return prim::sum(t, d); });
}
Tensor mean(const Tensor& x) { return mean(x, {}, false); }
Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  need(x, "mean");
  if (!is_floating(x.dtype())) throw Error("mean: expected a floating tensor, got int64");
  int64_t count = 1;
  for (int64_t d : wrap_dims(dims, x.shape(), "mean")) count *= x.size(d);
  return named(sum(x, dims, keepdim) / double(count), "mean", x);
}
Tensor var(const Tensor& x, const std::vector<int64_t>& dims, bool unbiased, bool keepdim) {
  need(x, "var");
  int64_t count = 1;
  for (int64_t d : wrap_dims(dims, x.shape(), "var")) count *= x.size(d);
  if (!is_floating(x.dtype())) throw Error("var: expected a floating tensor, got int64");
  // prim::moments: mean and biased variance in one pass; rescaled for the unbiased estimate
  // (n / 0 = inf gives NaN for a single element, as PyTorch).
  const std::vector<int64_t> ds = wrap_dims(dims, x.shape(), "var");
  Shape ks = x.shape();
  for (int64_t d : ds) ks[size_t(d)] = 1;
  Tensor v = prim::moments(x, ds).narrow(0, 1, 1).reshape(keepdim ? ks : drop_dims(x.shape(), ds));
  if (!unbiased) return named(v, "var", x);
  return named(v * (double(count) / double(std::max<int64_t>(count - 1, 0))), "var", x);
}
Tensor std(const Tensor& x, const std::vector<int64_t>& dims, bool unbiased, bool keepdim) {
  // Where the variance is 0 (a constant slice) the gradient is 0, as PyTorch's (not sqrt's
  // 1 / 0 times var's 0, a NaN): the sqrt reads 1 there, and its branch is not taken.
  Tensor v = var(x, dims, unbiased, keepdim);
  Tensor zero = eq(v, 0.0);
  return named(where(zero, 0.0, sqrt(where(zero, 1.0, v))), "std", x);
}
Tensor max(const Tensor& x) { return max(x, {}, false); }
Tensor max(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  return reduce(x, dims, keepdim, "max", [](const Tensor& t, const std::vector<int64_t>& d) { return prim::amax(t, d); });
}
Tensor min(const Tensor& x) { return min(x, {}, false); }
Tensor min(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  return named(-max(-x, dims, keepdim), "min", x);
}
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim) {
  need(x, "argmax");
  int64_t d = wrap_dim(dim, x.shape(), "argmax");
  if (x.dim() == 0) return zeros({}, kInt64);
  Tensor y = prim::argmax(x.detach(), d);
  return keepdim ? y : prim::reshape(y, drop_dims(x.shape(), {d}));
}
Tensor argmin(const Tensor& x, int64_t dim, bool keepdim) { return argmax(-x.detach(), dim, keepdim); }
Tensor logsumexp(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  need(x, "logsumexp");
  if (!is_floating(x.dtype())) throw Error("logsumexp: expected a floating tensor (float32 or float64), got int64");
  const std::vector<int64_t> d = wrap_dims(dims, x.shape(), "logsumexp");
  // log sum exp(x - m) + m with m the maximum: the value does not depend on m, so m takes no
  // gradient. An infinite maximum is replaced by 0, as PyTorch does (all -inf gives -inf, not NaN).
  Tensor m = max(x, d, true).detach();
  m = where(eq(abs(m), std::numeric_limits<double>::infinity()), 0.0, m);
  Tensor y = log(sum(exp(x - m), d, true)) + m;
  return keepdim || x.dim() == 0 ? y : prim::reshape(y, drop_dims(x.shape(), d));
}

// ---- scans and sorting ----
Tensor cumsum(const Tensor& x, int64_t dim) {
  need(x, "cumsum");
  const int64_t d = wrap_dim(dim, x.shape(), "cumsum");
  if (x.dim() == 0) return x.clone();
  return prim::cumsum(x, d, false);
}

namespace {
// The first k of the sorting permutation along dim, and the values it picks with gather (whose
// VJP scatters the gradient back: the indices themselves take none).
std::tuple<Tensor, Tensor> sorted_prefix(const Tensor& x, int64_t k, int64_t dim, bool descending, const char* op) {
  need(x, op);
  const int64_t d = wrap_dim(dim, x.shape(), op);
  const int64_t n = x.dim() == 0 ? 1 : x.size(d);
  if (k < 0 || k > n)
    throw Error(fmt::format("{}: expected k in [0, {}] (the size of dim {}), got k = {} for shape {}", op, n, dim, k,
                            shape_str(x.shape())));
  if (x.dim() == 0) return {x.clone(), zeros({}, kInt64)};
  Tensor idx = prim::argsort(x.detach(), d, descending, k);
  return {prim::gather(x, d, idx), idx};
}
}  // namespace

std::tuple<Tensor, Tensor> sort(const Tensor& x, int64_t dim, bool descending) {
  need(x, "sort");
  return sorted_prefix(x, x.dim() == 0 ? 1 : x.size(wrap_dim(dim, x.shape(), "sort")), dim, descending, "sort");
}
Tensor argsort(const Tensor& x, int64_t dim, bool descending) {
  need(x, "argsort");
  const int64_t d = wrap_dim(dim, x.shape(), "argsort");
  if (x.dim() == 0) return zeros({}, kInt64);
  return prim::argsort(x.detach(), d, descending, x.size(d));
}
std::tuple<Tensor, Tensor> topk(const Tensor& x, int64_t k, int64_t dim, bool largest, bool /*sorted*/) {
  return sorted_prefix(x, k, dim, largest, "topk");
}

// ---- movement ----
Tensor reshape(const Tensor& x, const Shape& s) {
  need(x, "reshape");
  Shape r = s;
  int64_t infer = -1, known = 1;
  for (size_t i = 0; i < r.size(); ++i) {
    if (r[i] == -1) {
      if (infer >= 0) throw Error(fmt::format("reshape: only one dim can be -1, got {}", shape_str(s)));
      infer = int64_t(i);
    } else if (r[i] < 0) {
      throw Error(fmt::format("reshape: invalid size in {}", shape_str(s)));
    } else {
      known *= r[i];
    }
  }
  if (infer >= 0) {
    if (known == 0 || x.numel() % known != 0)
      throw Error(fmt::format("reshape: shape {} is invalid for input of shape {}", shape_str(s), shape_str(x.shape())));
    r[size_t(infer)] = x.numel() / known;
  }
  if (r == x.shape()) return x;
  return prim::reshape(x, r);
}
Tensor view(const Tensor& x, const Shape& s) { return reshape(x, s); }
Tensor permute(const Tensor& x, const std::vector<int64_t>& dims) {
  need(x, "permute");
  std::vector<int64_t> d;
  for (int64_t v : dims) d.push_back(v < 0 ? v + x.dim() : v);
  bool identity = true;
  for (size_t i = 0; i < d.size(); ++i) identity = identity && d[i] == int64_t(i);
  if (identity && int64_t(d.size()) == x.dim()) return x;
  return prim::permute(x, d);
}
Tensor transpose(const Tensor& x, int64_t d0, int64_t d1) {
  need(x, "transpose");
  d0 = wrap_dim(d0, x.shape(), "transpose");
  d1 = wrap_dim(d1, x.shape(), "transpose");
  std::vector<int64_t> p(size_t(x.dim()));
  std::iota(p.begin(), p.end(), 0);
  std::swap(p[size_t(d0)], p[size_t(d1)]);
  return permute(x, p);
}
Tensor flatten(const Tensor& x, int64_t start_dim, int64_t end_dim) {
  need(x, "flatten");
  if (x.dim() == 0) return reshape(x, {1});
  int64_t s = wrap_dim(start_dim, x.shape(), "flatten"), e = wrap_dim(end_dim, x.shape(), "flatten");
  if (s > e) throw Error(fmt::format("flatten: start_dim {} comes after end_dim {}", start_dim, end_dim));
  Shape out(x.shape().begin(), x.shape().begin() + s);
  int64_t m = 1;
  for (int64_t i = s; i <= e; ++i) m *= x.size(i);
  out.push_back(m);
  out.insert(out.end(), x.shape().begin() + e + 1, x.shape().end());
  return reshape(x, out);
}
Tensor unsqueeze(const Tensor& x, int64_t d) {
  need(x, "unsqueeze");
  int64_t r = d < 0 ? d + x.dim() + 1 : d;
  if (r < 0 || r > x.dim())
    throw Error(fmt::format("unsqueeze: dim {} out of range for a tensor with {} dims", d, x.dim()));
  Shape s = x.shape();
  s.insert(s.begin() + r, 1);
  return prim::reshape(x, s);
}
Tensor squeeze(const Tensor& x) {
  need(x, "squeeze");
  Shape s;
  for (int64_t v : x.shape())
    if (v != 1) s.push_back(v);
  return reshape(x, s);
}
Tensor squeeze(const Tensor& x, int64_t d) {
  need(x, "squeeze");
  if (x.dim() == 0) return x;
  int64_t r = wrap_dim(d, x.shape(), "squeeze");
  if (x.size(r) != 1) return x;
  Shape s = x.shape();
  s.erase(s.begin() + r);
  return reshape(x, s);
}
Tensor expand(const Tensor& x, const Shape& s) {
  need(x, "expand");
  if (s.size() < size_t(x.dim()))
    throw Error(fmt::format("expand: target {} has fewer dims than the input {}", shape_str(s), shape_str(x.shape())));
  Shape t = s;
  const size_t lead = s.size() - size_t(x.dim());
  for (size_t i = 0; i < t.size(); ++i)
    if (t[i] == -1) {
      if (i < lead) throw Error(fmt::format("expand: -1 is not allowed in a new leading dim ({})", shape_str(s)));
      t[i] = x.shape()[i - lead];
    }
  return expand_to(x, t);
}
Tensor pad(const Tensor& x, const std::vector<int64_t>& pads, double value) {
  need(x, "pad");
  if (pads.size() % 2 != 0 || pads.size() / 2 > size_t(x.dim()))
    throw Error(fmt::format("pad: expected an even number of pads, at most 2 per dim of {}, got [{}]",
                            shape_str(x.shape()), fmt::join(pads, ", ")));
  std::vector<int64_t> before(size_t(x.dim()), 0), after(size_t(x.dim()), 0);
  for (size_t i = 0; i < pads.size() / 2; ++i) {
    before[size_t(x.dim()) - 1 - i] = pads[2 * i];
    after[size_t(x.dim()) - 1 - i] = pads[2 * i + 1];
  }
  return prim::pad(x, before, after, value);
}
Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step) {
  need(x, "slice");
  int64_t d = wrap_dim(dim, x.shape(), "slice");
  if (step <= 0) throw Error(fmt::format("slice: step must be positive, got {} (shape {})", step, shape_str(x.shape())));
  const int64_t n = x.size(d);
  auto clampi = [n](int64_t v) { return std::clamp(v < 0 ? v + n : v, int64_t(0), n); };
  int64_t s = clampi(start), e = std::max(clampi(end), clampi(start));
  if (s == 0 && e == n && step == 1) return x;
  return prim::slice(x, d, s, e, step);
}
Tensor narrow(const Tensor& x, int64_t dim, int64_t start, int64_t length) {
  need(x, "narrow");
  int64_t d = wrap_dim(dim, x.shape(), "narrow");
  int64_t s = start < 0 ? start + x.size(d) : start;
  if (s < 0 || length < 0 || s + length > x.size(d))
    throw Error(fmt::format("narrow: start {} and length {} exceed dim {} of size {} (shape {})", start, length, dim,
                            x.size(d), shape_str(x.shape())));
  return slice(x, d, s, s + length, 1);
}
Tensor cat(const std::vector<Tensor>& xs, int64_t dim) {
  if (xs.size() == 1) return xs[0];
  return prim::cat(xs, dim);
}
Tensor stack(const std::vector<Tensor>& xs, int64_t dim) {
  if (xs.empty()) throw Error("stack: expected a non-empty list of tensors");
  std::vector<Tensor> u;
  for (const Tensor& x : xs) {
    need(x, "stack");
    if (x.shape() != xs[0].shape())
      throw Error(fmt::format("stack: expected equal shapes, got {} and {}", shape_str(xs[0].shape()),
                              shape_str(x.shape())));
    u.push_back(unsqueeze(x, dim));
  }
  return cat(u, dim < 0 ? dim + xs[0].dim() + 1 : dim);
}
std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim) {
  need(x, "split");
  if (split_size <= 0) throw Error(fmt::format("split: split_size must be positive, got {}", split_size));
  int64_t d = wrap_dim(dim, x.shape(), "split");
  std::vector<Tensor> out;
  for (int64_t s = 0; s < x.size(d) || (s == 0 && x.size(d) == 0); s += split_size) {
    out.push_back(slice(x, d, s, std::min(s + split_size, x.size(d)), 1));
    if (x.size(d) == 0) break;
  }
  return out;
}
std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim) {
  need(x, "chunk");
  if (chunks <= 0) throw Error(fmt::format("chunk: chunks must be positive, got {}", chunks));
  int64_t d = wrap_dim(dim, x.shape(), "chunk");
  return split(x, std::max<int64_t>(1, (x.size(d) + chunks - 1) / chunks), d);
}
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index) {
  need(x, "gather");
  return prim::gather(x, wrap_dim(dim, x.shape(), "gather"), index);
}
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  need(x, "index_select");
  return prim::index_select(x, wrap_dim(dim, x.shape(), "index_select"), index);
}

// ---- matmul (torch.matmul's rules) ----
Tensor matmul(const Tensor& a, const Tensor& b) {
  need(a, "matmul");
  need(b, "matmul");
  if (a.dim() == 0 || b.dim() == 0)
    throw Error(fmt::format("matmul: both operands need at least 1 dim, got {} and {}", shape_str(a.shape()),
                            shape_str(b.shape())));
  Dtype dt = promote(a.dtype(), b.dtype());
  Tensor x = a.dtype() == dt ? a : prim::cast(a, dt);
  Tensor y = b.dtype() == dt ? b : prim::cast(b, dt);
  const bool a1 = x.dim() == 1, b1 = y.dim() == 1;
  // Checked here, on the caller's shapes (below, 1-D operands have been unsqueezed).
  const int64_t ka = a.size(-1), kb = b1 ? b.size(0) : b.size(-2);
  if (ka != kb)
    throw Error(fmt::format("matmul: inner dimensions differ: {} @ {} ({} vs {})", shape_str(a.shape()),
                            shape_str(b.shape()), ka, kb));
  if (a1) x = unsqueeze(x, 0);
  if (b1) y = unsqueeze(y, 1);
  Tensor out;
  if (x.dim() == 2 && y.dim() > 2) {
    // [m, k] @ [..., k, n]: the 2-D operand is shared by every batch entry, not copied.
    out = prim::matmul(x, y, false, false);
  } else if (y.dim() == 2 && x.dim() > 2) {
    // [..., m, k] @ [k, n]: fold the batch into the GEMM's rows (one large GEMM).
    Shape lead(x.shape().begin(), x.shape().end() - 1);
    Tensor flat = reshape(x, {-1, x.size(-1)});
    out = prim::matmul(flat, y, false, false);
    lead.push_back(y.size(1));
    out = reshape(out, lead);
  } else {
    Shape ba(x.shape().begin(), x.shape().end() - 2), bb(y.shape().begin(), y.shape().end() - 2);
    Shape batch;
    try {
      batch = detail::broadcast_shapes(ba, bb, "matmul");
    } catch (const Error&) {
      throw Error(fmt::format("matmul: the batch dims {} of {} and {} of {} cannot be broadcast", shape_str(ba),
                              shape_str(a.shape()), shape_str(bb), shape_str(b.shape())));
    }
    Shape sa = batch, sb = batch;
    sa.insert(sa.end(), x.shape().end() - 2, x.shape().end());
    sb.insert(sb.end(), y.shape().end() - 2, y.shape().end());
    out = prim::matmul(expand_to(x, sa), expand_to(y, sb), false, false);
  }
  if (a1) out = squeeze(out, -2);
  if (b1) out = squeeze(out, -1);
  return out;
}

Tensor unfold(const Tensor& x, const WindowOptions& o) { return prim::unfold(x, o); }
Tensor fold(const Tensor& cols, const Shape& output_size, const WindowOptions& o) {
  return prim::fold(cols, output_size, o);
}

}  // namespace tg
