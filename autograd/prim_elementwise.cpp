// Elementwise primitives: forward kernel and VJP side by side.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "autograd.hpp"
#include "kernels/loops.hpp"
#include "node.hpp"
#include "primitives.hpp"
#include "parallel.hpp"
#include "simd.hpp"

namespace tg::prim {
namespace {

constexpr int64_t kGrain = 1 << 15;  // elements per chunk below which a loop runs on one thread

void check_defined(const Tensor& t, const char* op) {
  if (!t.defined()) throw Error(fmt::format("{}: got an undefined tensor", op));
}

// y = f(x) elementwise, T -> T, with f(const T* x, T* y, n).
template <bool kFloatingOnly, typename F>
Tensor unary(const Tensor& x, const char* op, F f) {
  check_defined(x, op);
  Tensor y = detail::make_tensor(x.shape(), x.dtype());
  auto body = [&](auto z) {
    using T = decltype(z);
    const T* px = typed<T>(x);
    T* py = typed<T>(y);
    detail::parallel_for(x.numel(), kGrain, [&](int64_t b, int64_t e) { f(px + b, py + b, e - b); });
  };
  if constexpr (kFloatingOnly)
    dispatch_floating(x.dtype(), op, body);
  else
    dispatch(x.dtype(), body);
  return y;
}

void check_pair(const Tensor& a, const Tensor& b, const char* op) {
  check_defined(a, op);
  check_defined(b, op);
  if (a.dtype() != b.dtype())
    throw Error(fmt::format("{}: expected operands of equal dtype, got {} {} and {} {}", op, dtype_name(a.dtype()),
                            shape_str(a.shape()), dtype_name(b.dtype()), shape_str(b.shape())));
}

// y[idx] = f(a[idx'], b[idx'']) over the broadcast shape, reading a broadcast operand through a
// zero stride instead of materialising it. Adjacent dims that are contiguous for both operands
// are merged, so the inner loop is long and, for a per-channel operand, reads a constant.
template <typename T, typename F>
void broadcast_apply(const T* a0, const Shape& as, const T* b0, const Shape& bs, T* y0, const Shape& ys, F f) {
  const size_t nd = ys.size();
  for (int64_t d : ys)
    if (d == 0) return;  // an empty output: nothing to compute (and no row length to divide by)
  auto strides = [nd, &ys](const Shape& s) {
    std::vector<int64_t> st(nd, 0);
    int64_t stride = 1;
    for (size_t i = nd; i-- > 0;) {
      const int64_t dim = i + s.size() >= nd ? s[i + s.size() - nd] : 1;
      st[i] = dim == 1 && ys[i] != 1 ? 0 : stride;
      stride *= dim;
    }
    return st;
  };
  const std::vector<int64_t> sa = strides(as), sb = strides(bs);
  std::vector<int64_t> shape, ca, cb;
  for (size_t i = 0; i < nd; ++i) {
    if (ys[i] == 1) continue;
    if (!shape.empty() && ca.back() == sa[i] * ys[i] && cb.back() == sb[i] * ys[i]) {
      shape.back() *= ys[i];
      ca.back() = sa[i];
      cb.back() = sb[i];
    } else {
      shape.push_back(ys[i]);
      ca.push_back(sa[i]);
      cb.push_back(sb[i]);
    }
  }
  if (shape.empty()) {
    y0[0] = f(a0[0], b0[0]);
    return;
  }
  const size_t k = shape.size();
  const int64_t n = shape[k - 1], ia = ca[k - 1], ib = cb[k - 1];
  int64_t outer = 1;
  for (size_t i = 0; i + 1 < k; ++i) outer *= shape[i];
  // Rows of the output are split between threads; each starts its odometer at its first row.
  detail::parallel_for(outer, std::max<int64_t>(1, kGrain / n), [&](int64_t o0, int64_t o1) {
    std::vector<int64_t> idx(k, 0);
    const T* a = a0;
    const T* b = b0;
    T* y = y0 + o0 * n;
    for (int64_t rem = o0, d = int64_t(k) - 2; d >= 0; --d) {
      idx[size_t(d)] = rem % shape[size_t(d)];
      rem /= shape[size_t(d)];
      a += idx[size_t(d)] * ca[size_t(d)];
      b += idx[size_t(d)] * cb[size_t(d)];
    }
    for (int64_t o = o0; o < o1; ++o, y += n) {
      if (ia == 1 && ib == 1) {
        for (int64_t i = 0; i < n; ++i) y[i] = f(a[i], b[i]);
      } else if (ia == 1) {
        const T c = *b;
        for (int64_t i = 0; i < n; ++i) y[i] = f(a[i], c);
      } else if (ib == 1) {
        const T c = *a;
        for (int64_t i = 0; i < n; ++i) y[i] = f(c, b[i]);
      } else {
        for (int64_t i = 0; i < n; ++i) y[i] = f(a[i * ia], b[i * ib]);
      }
      for (size_t d = k - 1; d-- > 0;) {  // advance the odometer over the outer dims
        a += ca[d];
        b += cb[d];
        if (++idx[d] < shape[d]) break;
        a -= ca[d] * shape[d];
        b -= cb[d] * shape[d];
        idx[d] = 0;
      }
    }
  });
}

// out = f(a, b) with NumPy broadcasting (equal dtypes).
template <typename F>
Tensor binary(const Tensor& a, const Tensor& b, const char* op, F f) {
  check_pair(a, b, op);
  Shape broadcast;
  const bool same = a.shape() == b.shape();
  if (!same) broadcast = detail::broadcast_shapes(a.shape(), b.shape(), op);
  const Shape& ys = same ? a.shape() : broadcast;
  Tensor y = detail::make_tensor(ys, a.dtype());
  dispatch(a.dtype(), [&](auto z) {
    using T = decltype(z);
    const T* pa = typed<T>(a);
    const T* pb = typed<T>(b);
    T* py = typed<T>(y);
    if (same) {
      detail::parallel_for(a.numel(), kGrain, [&](int64_t s0, int64_t s1) {
        for (int64_t i = s0; i < s1; ++i) py[i] = f(pa[i], pb[i]);
      });
    } else {
      broadcast_apply<T>(pa, a.shape(), pb, b.shape(), py, ys, f);
    }
  });
  return y;
}

// The gradient of a broadcast operand: summed back to its shape (expand's VJP).
Tensor reduce_to(const Tensor& g, const Shape& shape) { return g.shape() == shape ? g : prim::sum_to(g, shape); }
Tensor reduce_to(const Tensor& g, const Tensor& like) { return reduce_to(g, like.shape()); }

template <typename F>
auto loop(F f) {
  return [f](auto* x, auto* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = f(x[i]);
  };
}

// A rounding function; integers are whole already (and a round trip through double would lose
// the low bits of large ones).
template <typename F>
auto rounding(F f) {
  return [f](auto* x, auto* y, int64_t n) {
    using T = std::remove_const_t<std::remove_pointer_t<decltype(x)>>;
    if constexpr (std::is_integral_v<T>)
      std::copy(x, x + n, y);
    else
      for (int64_t i = 0; i < n; ++i) y[i] = f(x[i]);
  };
}

}  // namespace

Tensor neg(const Tensor& x) {
  Tensor y = unary<false>(x, "neg", loop([](auto v) { return -v; }));
  return detail::record("neg", y, {x}, [](const Tensor& g, const Tensor&, Needs) { return Grads{-g}; });
}

Tensor exp(const Tensor& x) {
  Tensor y = unary<true>(x, "exp", [](auto* a, auto* b, int64_t n) { simd::exp(a, b, n); });
  return detail::record("exp", y, {x}, [](const Tensor& g, const Tensor& out, Needs) { return Grads{g * out}; }, true);
}

Tensor log(const Tensor& x) {
  Tensor y = unary<true>(x, "log", [](auto* a, auto* b, int64_t n) { simd::log(a, b, n); });
  return detail::record("log", y, {x}, [x](const Tensor& g, const Tensor&, Needs) { return Grads{g / x}; });
}

Tensor sqrt(const Tensor& x) {
  Tensor y = unary<true>(x, "sqrt", [](auto* a, auto* b, int64_t n) { simd::sqrt(a, b, n); });
  return detail::record("sqrt", y, {x},
                        [](const Tensor& g, const Tensor& out, Needs) { return Grads{g / (out * 2.0)}; }, true);
}

Tensor abs(const Tensor& x) {
  Tensor y = unary<false>(x, "abs", loop([](auto v) { return v < 0 ? -v : v; }));
  return detail::record("abs", y, {x}, [x](const Tensor& g, const Tensor&, Needs) { return Grads{g * prim::step(x, StepFn::Sign)}; });
}

Tensor tanh(const Tensor& x) {
  Tensor y = unary<true>(x, "tanh", [](auto* a, auto* b, int64_t n) { simd::tanh(a, b, n); });
  return detail::record("tanh", y, {x},
                        [](const Tensor& g, const Tensor& out, Needs) { return Grads{g * (1.0 - out * out)}; }, true);
}

Tensor sigmoid(const Tensor& x) {
  Tensor y = unary<true>(x, "sigmoid", [](auto* a, auto* b, int64_t n) { simd::sigmoid(a, b, n); });
  return detail::record("sigmoid", y, {x},
                        [](const Tensor& g, const Tensor& out, Needs) { return Grads{g * out * (1.0 - out)}; }, true);
}

Tensor erf(const Tensor& x) {
  Tensor y = unary<true>(x, "erf", loop([](auto v) { return decltype(v)(std::erf(v)); }));
  return detail::record("erf", y, {x}, [x](const Tensor& g, const Tensor&, Needs) {
    return Grads{g * tg::exp(-(x * x)) * 1.1283791670955126};  // 2 / sqrt(pi)
  });
}

Tensor sin(const Tensor& x) {
  Tensor y = unary<true>(x, "sin", [](auto* a, auto* b, int64_t n) { simd::sin(a, b, n); });
  return detail::record("sin", y, {x}, [x](const Tensor& g, const Tensor&, Needs) { return Grads{g * tg::cos(x)}; });
}

Tensor cos(const Tensor& x) {
  Tensor y = unary<true>(x, "cos", [](auto* a, auto* b, int64_t n) { simd::cos(a, b, n); });
  return detail::record("cos", y, {x}, [x](const Tensor& g, const Tensor&, Needs) { return Grads{-g * tg::sin(x)}; });
}

Tensor log1p(const Tensor& x) {
  Tensor y = unary<true>(x, "log1p", [](auto* a, auto* b, int64_t n) { simd::log1p(a, b, n); });
  return detail::record("log1p", y, {x}, [x](const Tensor& g, const Tensor&, Needs) { return Grads{g / (x + 1.0)}; });
}

Tensor expm1(const Tensor& x) {
  Tensor y = unary<true>(x, "expm1", [](auto* a, auto* b, int64_t n) { simd::expm1(a, b, n); });
  return detail::record("expm1", y, {x},
                        [](const Tensor& g, const Tensor& out, Needs) { return Grads{g * (out + 1.0)}; }, true);
}

Tensor step(const Tensor& x, StepFn f) {
  static constexpr const char* kNames[] = {"floor", "ceil", "round", "sign"};
  const char* op = kNames[int(f)];
  Tensor y;
  switch (f) {
    case StepFn::Floor: y = unary<false>(x, op, rounding([](auto v) { return std::floor(v); })); break;
    case StepFn::Ceil: y = unary<false>(x, op, rounding([](auto v) { return std::ceil(v); })); break;
    // nearbyint in the default rounding mode: half to even, as torch.round.
    case StepFn::Round: y = unary<false>(x, op, rounding([](auto v) { return std::nearbyint(v); })); break;
    default: y = unary<false>(x, op, loop([](auto v) { return decltype(v)((v > 0) - (v < 0)); }));  // NaN -> 0
  }
  return detail::record(op, y, {x}, [](const Tensor& g, const Tensor&, Needs) { return Grads{zeros_like(g)}; });
}

Tensor relu(const Tensor& x) {
  Tensor y = unary<false>(x, "relu", [](const auto* px, auto* py, int64_t n) {
    using T = std::remove_const_t<std::remove_pointer_t<decltype(px)>>;
    kernels::loops<T>().relu(px, py, n);
  });
  // The mask from the output (out > 0 exactly where x > 0): the tape keeps the output, which the
  // next layer holds anyway, not the input (for conv-BN-ReLU, the BN output is freed at once).
  return detail::record("relu", y, {x}, [](const Tensor& g, const Tensor& out, Needs) {
    return Grads{prim::relu_backward(g, out)};
  }, true);
}

// g where x > 0, else 0: relu's VJP in one pass (g * (x > 0) would take two and a temporary).
Tensor relu_backward(const Tensor& g, const Tensor& x) {
  check_pair(g, x, "relu_backward");
  if (g.shape() != x.shape())
    throw Error(fmt::format("relu_backward: expected equal shapes, got {} and {}", shape_str(g.shape()),
                            shape_str(x.shape())));
  Tensor y = detail::make_tensor(g.shape(), g.dtype());
  dispatch(g.dtype(), [&](auto z) {
    using T = decltype(z);
    const T *pg = typed<T>(g), *px = typed<T>(x);
    T* py = typed<T>(y);
    const kernels::Loops<T>& loops = kernels::loops<T>();
    detail::parallel_for(g.numel(), kGrain, [&](int64_t b, int64_t e) { loops.relu_backward(pg + b, px + b, py + b, e - b); });
  });
  // Linear in g with the same mask; x gets nothing (the mask is piecewise constant).
  return detail::record("relu_backward", y, {g, x}, [x](const Tensor& gg, const Tensor&, Needs n) {
    return Grads{n[0] ? prim::relu_backward(gg, x) : Tensor(), Tensor()};
  });
}

Tensor pow_scalar(const Tensor& x, double p) {
  Tensor y = unary<true>(x, "pow", loop([p](auto v) { return decltype(v)(std::pow(v, p)); }));
  return detail::record("pow", y, {x}, [x, p](const Tensor& g, const Tensor&, Needs) {
    if (p == 0.0) return Grads{g * 0.0};
    if (p == 1.0) return Grads{g};
    if (p == 2.0) return Grads{g * x * 2.0};
    return Grads{g * pow_scalar(x, p - 1.0) * p};
  });
}

// x * c and x + c for a constant c (a number operand, as PyTorch's mul.Scalar and add.Scalar):
// no tensor for the constant, no broadcast, and a VJP that keeps only c (no allocation for it).
// c is rounded to x's dtype first, as the scalar tensor it replaces was.
Tensor mul_scalar(const Tensor& x, double c) {
  Tensor y = unary<false>(x, "mul", [c](const auto* px, auto* py, int64_t n) {
    using T = std::remove_const_t<std::remove_pointer_t<decltype(px)>>;
    const T k = T(c);
    for (int64_t i = 0; i < n; ++i) py[i] = px[i] * k;
  });
  return detail::record("mul", y, {x}, [c](const Tensor& g, const Tensor&, Needs) { return Grads{mul_scalar(g, c)}; });
}

Tensor add_scalar(const Tensor& x, double c) {
  Tensor y = unary<false>(x, "add", [c](const auto* px, auto* py, int64_t n) {
    using T = std::remove_const_t<std::remove_pointer_t<decltype(px)>>;
    const T k = T(c);
    for (int64_t i = 0; i < n; ++i) py[i] = px[i] + k;
  });
  return detail::record("add", y, {x}, [](const Tensor& g, const Tensor&, Needs) { return Grads{g}; });
}

Tensor cast(const Tensor& x, Dtype d) {
  check_defined(x, "to");
  Tensor y = detail::make_tensor(x.shape(), d);
  y.copy_(x);
  Dtype from = x.dtype();
  if (!is_floating(d)) return y;  // int64 never carries a gradient
  return detail::record("to", y, {x}, [from](const Tensor& g, const Tensor&, Needs) { return Grads{cast(g, from)}; });
}

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor y = binary(a, b, "add", [](auto u, auto v) { return u + v; });
  // The VJP needs only the shapes, and nothing when they are equal (no closure to allocate).
  if (a.shape() == b.shape())
    return detail::record("add", y, {a, b}, [](const Tensor& g, const Tensor&, Needs n) {
      return Grads{n[0] ? g : Tensor(), n[1] ? g : Tensor()};
    });
  return detail::record("add", y, {a, b}, [sa = a.shape(), sb = b.shape()](const Tensor& g, const Tensor&, Needs n) {
    return Grads{n[0] ? reduce_to(g, sa) : Tensor(), n[1] ? reduce_to(g, sb) : Tensor()};
  });
}

Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor y = binary(a, b, "sub", [](auto u, auto v) { return u - v; });
  if (a.shape() == b.shape())
    return detail::record("sub", y, {a, b}, [](const Tensor& g, const Tensor&, Needs n) {
      return Grads{n[0] ? g : Tensor(), n[1] ? -g : Tensor()};
    });
  return detail::record("sub", y, {a, b}, [sa = a.shape(), sb = b.shape()](const Tensor& g, const Tensor&, Needs n) {
    return Grads{n[0] ? reduce_to(g, sa) : Tensor(), n[1] ? reduce_to(-g, sb) : Tensor()};
  });
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor y = binary(a, b, "mul", [](auto u, auto v) { return u * v; });
  return detail::record("mul", y, {a, b}, [a, b](const Tensor& g, const Tensor&, Needs n) {
    // A broadcast factor's gradient: the product and its reduction in one pass when the other
    // factor has the output's shape (a per-channel scale times an activation).
    auto grad = [&g](const Tensor& self, const Tensor& other) {
      if (self.shape() != g.shape() && other.shape() == g.shape()) return prim::mul_sum_to(g, other, self.shape());
      return reduce_to(g * other, self);
    };
    return Grads{n[0] ? grad(a, b) : Tensor(), n[1] ? grad(b, a) : Tensor()};
  });
}

// x * a + b in one pass; x has the output's shape, a and b share one shape broadcast against it
// (a per-channel scale and shift): a normalisation's forward and moments' VJP.
namespace {

// fma's forward, and with relu (fma_relu) max(x * a + b, 0) in the same pass.
Tensor fma_forward(const Tensor& x, const Tensor& a, const Tensor& b, bool relu, const char* op) {
  check_pair(x, a, op);
  check_pair(x, b, op);
  if (a.shape() != b.shape() || detail::broadcast_shapes(x.shape(), a.shape(), op) != x.shape())
    throw Error(fmt::format("{}: expected a scale and a shift of one shape that broadcasts to {}, got {} and {}", op,
                            shape_str(x.shape()), shape_str(a.shape()), shape_str(b.shape())));
  // x as rows over which a and b are constant: the trailing dims where a has size 1.
  const size_t nd = x.shape().size(), lead = nd - a.shape().size();
  int64_t inner = 1;
  size_t d = nd;
  while (d > lead && a.shape()[d - 1 - lead] == 1) inner *= x.shape()[--d];
  if (d == lead)
    while (d > 0) inner *= x.shape()[--d];
  if (inner < 4) {  // a varies along x's rows: two passes (three with relu), without a tape
    NoGradGuard no_grad;
    Tensor y = prim::add(prim::mul(x, a), b);
    return relu ? prim::relu(y) : y;
  }
  const Shape rows_shape(x.shape().begin(), x.shape().begin() + int64_t(d));
  const int64_t rows = shape_numel(rows_shape);
  // Row r of x reads element amap[r] of a and b.
  std::vector<int64_t> amap(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    int64_t rem = r, ai = 0, mult = 1;
    for (size_t i = rows_shape.size(); i-- > lead;) {
      const int64_t size = a.shape()[i - lead], c = rem % rows_shape[i];
      rem /= rows_shape[i];
      if (size != 1) ai += c * mult;
      mult *= size;
    }
    amap[size_t(r)] = ai;
  }
  Tensor y = detail::make_tensor(x.shape(), x.dtype());
  dispatch(x.dtype(), [&](auto z) {
    using T = decltype(z);
    const T *px = typed<T>(x), *pa = typed<T>(a), *pb = typed<T>(b);
    T* py = typed<T>(y);
    const kernels::Loops<T>& loops = kernels::loops<T>();
    detail::parallel_for(rows, std::max<int64_t>(1, kGrain / inner), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r)
        (relu ? loops.scale_shift_relu : loops.scale_shift)(px + r * inner, pa[amap[size_t(r)]], pb[amap[size_t(r)]],
                                                           py + r * inner, inner);
    });
  });
  return y;
}

// fma's VJP for the gradient g of x * a + b.
Grads fma_vjp(const Tensor& g, const Tensor& x, const Tensor& a, const Shape& sb, Needs n) {
  return Grads{n[0] ? g * a : Tensor(), n[1] ? prim::mul_sum_to(g, x, a.shape()) : Tensor(),
               n[2] ? reduce_to(g, sb) : Tensor()};
}

}  // namespace

Tensor fma(const Tensor& x, const Tensor& a, const Tensor& b) {
  Tensor y = fma_forward(x, a, b, false, "fma");
  return detail::record("fma", y, {x, a, b}, [x, a, sb = b.shape()](const Tensor& g, const Tensor&, Needs n) {
    return fma_vjp(g, x, a, sb, n);
  });
}

// Fused: relu(fma(x, a, b)) in one pass (batch norm followed by ReLU). The VJP masks g by the
// output, as relu's, then is fma's.
Tensor fma_relu(const Tensor& x, const Tensor& a, const Tensor& b) {
  Tensor y = fma_forward(x, a, b, true, "fma_relu");
  return detail::record("fma_relu", y, {x, a, b}, [x, a, sb = b.shape()](const Tensor& g, const Tensor& out, Needs n) {
    return fma_vjp(prim::relu_backward(g, out), x, a, sb, n);
  }, true);
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor y = binary(a, b, "div", [](auto u, auto v) { return u / v; });
  return detail::record("div", y, {a, b}, [a, b](const Tensor& g, const Tensor&, Needs n) {
    return Grads{n[0] ? reduce_to(g / b, a) : Tensor(), n[1] ? reduce_to(-g * a / (b * b), b) : Tensor()};
  });
}

Tensor pow(const Tensor& a, const Tensor& b) {
  check_pair(a, b, "pow");
  dispatch_floating(a.dtype(), "pow", [](auto) {});
  Tensor y = binary(a, b, "pow", [](auto u, auto v) { return decltype(u)(std::pow(u, v)); });
  return detail::record("pow", y, {a, b}, [a, b](const Tensor& g, const Tensor& out, Needs n) {
    Tensor ga, gb;
    // d/da a^b = b a^(b-1); zero where b == 0, also at a == 0 (PyTorch's convention). The
    // exponent of the unused branch is made safe, so that a second derivative sees no 0 * inf.
    if (n[0]) {
      Tensor b0 = eq(b, zeros_like(b));
      ga = reduce_to(tg::where(b0, zeros_like(g), g * b * tg::pow(a, tg::where(b0, ones_like(b), b) - 1.0)), a);
    }
    // d/db a^b = a^b log a; zero where a == 0 and b >= 0 (PyTorch's convention: a^b is 0 or 1
    // there), -inf or inf where a == 0 and b < 0. log reads 1 where the gradient is zero.
    if (n[1]) {
      Tensor at_zero = eq(a, zeros_like(a)) * ge(b, zeros_like(b));
      gb = reduce_to(g * out * tg::log(tg::where(at_zero, 1.0, a)), b);
    }
    return Grads{ga, gb};
  }, true);
}

// A NaN on either side gives NaN, and both operands then take all of g (PyTorch: g masked only
// where the operand is the strictly smaller one, halved at ties).
Tensor maximum(const Tensor& a, const Tensor& b) {
  Tensor y = binary(a, b, "maximum", [](auto u, auto v) { return u > v || u != u ? u : v; });
  return detail::record("maximum", y, {a, b}, [a, b](const Tensor& g, const Tensor&, Needs n) {
    Tensor half = eq(a, b) * 0.5;
    return Grads{n[0] ? reduce_to(g * (1.0 - (lt(a, b) + half)), a) : Tensor(),
                 n[1] ? reduce_to(g * (1.0 - (gt(a, b) + half)), b) : Tensor()};
  });
}

Tensor minimum(const Tensor& a, const Tensor& b) {
  Tensor y = binary(a, b, "minimum", [](auto u, auto v) { return u < v || u != u ? u : v; });
  return detail::record("minimum", y, {a, b}, [a, b](const Tensor& g, const Tensor&, Needs n) {
    Tensor half = eq(a, b) * 0.5;
    return Grads{n[0] ? reduce_to(g * (1.0 - (gt(a, b) + half)), a) : Tensor(),
                 n[1] ? reduce_to(g * (1.0 - (lt(a, b) + half)), b) : Tensor()};
  });
}

Tensor atan2(const Tensor& a, const Tensor& b) {
  check_pair(a, b, "atan2");
  dispatch_floating(a.dtype(), "atan2", [](auto) {});
  Tensor y = binary(a, b, "atan2", [](auto u, auto v) { return decltype(u)(std::atan2(u, v)); });
  return detail::record("atan2", y, {a, b}, [a, b](const Tensor& g, const Tensor&, Needs n) {
    Tensor s = g / (a * a + b * b);
    return Grads{n[0] ? reduce_to(s * b, a) : Tensor(), n[1] ? reduce_to(-s * a, b) : Tensor()};
  });
}

Tensor compare(const Tensor& a, const Tensor& b, Cmp op) {
  // One loop per comparison, so each vectorises.
  switch (op) {
    case Cmp::Eq: return binary(a, b, "eq", [](auto u, auto v) { return decltype(u)(u == v); });
    case Cmp::Ne: return binary(a, b, "ne", [](auto u, auto v) { return decltype(u)(u != v); });
    case Cmp::Lt: return binary(a, b, "lt", [](auto u, auto v) { return decltype(u)(u < v); });
    case Cmp::Le: return binary(a, b, "le", [](auto u, auto v) { return decltype(u)(u <= v); });
    case Cmp::Gt: return binary(a, b, "gt", [](auto u, auto v) { return decltype(u)(u > v); });
    default: return binary(a, b, "ge", [](auto u, auto v) { return decltype(u)(u >= v); });
  }
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  check_pair(a, b, "where");
  if (a.shape() != b.shape())
    throw Error(fmt::format("where: expected operands of equal shape, got {} and {}", shape_str(a.shape()),
                            shape_str(b.shape())));
  check_defined(cond, "where");
  if (cond.shape() != a.shape())
    throw Error(fmt::format("where: expected a condition of shape {}, got {}", shape_str(a.shape()),
                            shape_str(cond.shape())));
  Tensor y = detail::make_tensor(a.shape(), a.dtype());
  dispatch(a.dtype(), [&](auto z) {
    using T = decltype(z);
    const T* pa = typed<T>(a);
    const T* pb = typed<T>(b);
    T* py = typed<T>(y);
    dispatch(cond.dtype(), [&](auto w) {
      using C = decltype(w);
      const C* pc = typed<C>(cond);
      for (int64_t i = 0; i < a.numel(); ++i) py[i] = pc[i] != C(0) ? pa[i] : pb[i];
    });
  });
  Tensor c = cond.detach();
  return detail::record("where", y, {a, b}, [c](const Tensor& g, const Tensor&, Needs n) {
    Tensor zero = zeros_like(g);
    return Grads{n[0] ? tg::where(c, g, zero) : Tensor(), n[1] ? tg::where(c, zero, g) : Tensor()};
  });
}

}  // namespace tg::prim
