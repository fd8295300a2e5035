// Elementwise primitives: forward kernel and VJP side by side.
#include <fmt/format.h>

#include <cmath>

#include "autograd.hpp"
#include "node.hpp"
#include "primitives.hpp"
#include "simd.hpp"

namespace tg::prim {
namespace {

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
    f(typed<T>(x), typed<T>(y), x.numel());
  };
  if constexpr (kFloatingOnly)
    dispatch_floating(x.dtype(), op, body);
  else
    dispatch(x.dtype(), body);
  return y;
}

void check_same(const Tensor& a, const Tensor& b, const char* op) {
  check_defined(a, op);
  check_defined(b, op);
  if (a.shape() != b.shape() || a.dtype() != b.dtype())
    throw Error(fmt::format("{}: expected operands of equal shape and dtype, got {} {} and {} {}", op,
                            dtype_name(a.dtype()), shape_str(a.shape()), dtype_name(b.dtype()), shape_str(b.shape())));
}

// out[i] = f(a[i], b[i]).
template <typename F>
Tensor binary(const Tensor& a, const Tensor& b, const char* op, F f) {
  check_same(a, b, op);
  Tensor y = detail::make_tensor(a.shape(), a.dtype());
  dispatch(a.dtype(), [&](auto z) {
    using T = decltype(z);
    const T* pa = typed<T>(a);
    const T* pb = typed<T>(b);
    T* py = typed<T>(y);
    const int64_t n = a.numel();
    for (int64_t i = 0; i < n; ++i) py[i] = f(pa[i], pb[i]);
  });
  return y;
}

template <typename F>
auto loop(F f) {
  return [f](auto* x, auto* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = f(x[i]);
  };
}

Tensor sign(const Tensor& x) { return gt(x, zeros_like(x)) - lt(x, zeros_like(x)); }

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
  return detail::record("abs", y, {x}, [x](const Tensor& g, const Tensor&, Needs) { return Grads{g * sign(x)}; });
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

Tensor relu(const Tensor& x) {
  Tensor y = unary<false>(x, "relu", loop([](auto v) { return v > 0 ? v : decltype(v)(0); }));
  return detail::record("relu", y, {x},
                        [x](const Tensor& g, const Tensor&, Needs) { return Grads{g * gt(x, zeros_like(x))}; });
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
  return detail::record("add", y, {a, b}, [](const Tensor& g, const Tensor&, Needs) { return Grads{g, g}; });
}

Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor y = binary(a, b, "sub", [](auto u, auto v) { return u - v; });
  return detail::record("sub", y, {a, b}, [](const Tensor& g, const Tensor&, Needs n) {
    return Grads{g, n[1] ? -g : Tensor()};
  });
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor y = binary(a, b, "mul", [](auto u, auto v) { return u * v; });
  return detail::record("mul", y, {a, b}, [a, b](const Tensor& g, const Tensor&, Needs n) {
    return Grads{n[0] ? g * b : Tensor(), n[1] ? g * a : Tensor()};
  });
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor y = binary(a, b, "div", [](auto u, auto v) { return u / v; });
  return detail::record("div", y, {a, b}, [a, b](const Tensor& g, const Tensor&, Needs n) {
    return Grads{n[0] ? g / b : Tensor(), n[1] ? -g * a / (b * b) : Tensor()};
  });
}

Tensor pow(const Tensor& a, const Tensor& b) {
  check_same(a, b, "pow");
  dispatch_floating(a.dtype(), "pow", [](auto) {});
  Tensor y = binary(a, b, "pow", [](auto u, auto v) { return decltype(u)(std::pow(u, v)); });
  return detail::record("pow", y, {a, b}, [a, b](const Tensor& g, const Tensor& out, Needs n) {
    Tensor ga, gb;
    if (n[0]) ga = g * b * tg::pow(a, b - 1.0);
    // d/db a^b = a^b log a; zero where a == 0 and b >= 0 (PyTorch's convention).
    if (n[1]) gb = tg::where(eq(a, zeros_like(a)), zeros_like(a), g * out * tg::log(a));
    return Grads{ga, gb};
  }, true);
}

Tensor maximum(const Tensor& a, const Tensor& b) {
  Tensor y = binary(a, b, "maximum", [](auto u, auto v) { return u > v ? u : v; });
  return detail::record("maximum", y, {a, b}, [a, b](const Tensor& g, const Tensor&, Needs n) {
    Tensor half = eq(a, b) * 0.5;
    return Grads{n[0] ? g * (gt(a, b) + half) : Tensor(), n[1] ? g * (lt(a, b) + half) : Tensor()};
  });
}

Tensor minimum(const Tensor& a, const Tensor& b) {
  Tensor y = binary(a, b, "minimum", [](auto u, auto v) { return u < v ? u : v; });
  return detail::record("minimum", y, {a, b}, [a, b](const Tensor& g, const Tensor&, Needs n) {
    Tensor half = eq(a, b) * 0.5;
    return Grads{n[0] ? g * (lt(a, b) + half) : Tensor(), n[1] ? g * (gt(a, b) + half) : Tensor()};
  });
}

Tensor compare(const Tensor& a, const Tensor& b, Cmp op) {
  static const char* names[] = {"eq", "ne", "lt", "le", "gt", "ge"};
  return binary(a, b, names[int(op)], [op](auto u, auto v) {
    using T = decltype(u);
    switch (op) {
      case Cmp::Eq: return T(u == v);
      case Cmp::Ne: return T(u != v);
      case Cmp::Lt: return T(u < v);
      case Cmp::Le: return T(u <= v);
      case Cmp::Gt: return T(u > v);
      default: return T(u >= v);
    }
  });
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  check_same(a, b, "where");
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
