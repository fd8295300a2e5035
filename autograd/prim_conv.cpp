// Convolution as three primitives that are each other's VJPs:
//
//   conv(x, w, b)                 y[n] = W @ unfold(x[n]) + b       (per group; b optional)
//   conv_input_grad(g, w)         dx[n] = fold(W^T @ g[n])          the adjoint of conv in x
//   conv_weight_grad(g, x)        dW = sum_n g[n] @ unfold(x[n])^T  the adjoint of conv in W
//
// It is still unfold + matmul, the same arithmetic, but fused per sample: each thread unfolds one
// sample into a scratch buffer that stays in cache and runs the GEMM on it at once. The unfolded
// input ([N, C*K, L], K = kernel size, L = output positions; 9x the input for a 3x3 kernel) is
// never materialised for the batch, and the tape keeps x and W instead of it, so a conv layer's
// saved state is its input, as in PyTorch. See docs/design.md ("Primitives added for speed and
// memory").
//
// For float32 at stride 1, conv and conv_weight_grad (and so conv_input_grad, which is a conv
// there) skip the unfold and OpenBLAS: kernels/conv_direct.hpp's kernels, at the processor's
// instruction-set level, read the windows straight from zero-padded planes.
#include <fmt/format.h>

#include <type_traits>

#include "autograd.hpp"
#include "blas.hpp"
#include "kernels/conv_direct.hpp"
#include "node.hpp"
#include "parallel.hpp"
#include "primitives.hpp"
#include "window.hpp"

namespace tg::prim {
namespace {

using blas::gemm;

// Shapes of one convolution: x [N, C, *in], w [O, C/groups, *k], y [N, O, *out].
struct Conv {
  window::Geometry g;  // n, c = N, C; in/out/k/s/p/d of the window
  int64_t o = 0, groups = 1, cg = 0, og = 0;
  int64_t ck() const { return cg * g.kernel_numel(); }  // rows of one group's unfolded sample
  int64_t cols() const { return g.c * g.kernel_numel() * g.positions(); }  // one sample unfolded
  // A 1x1 kernel, stride 1, no padding: the unfolded sample is the sample itself.
  bool identity() const {
    return g.kernel_numel() == 1 && g.s == std::array<int64_t, 3>{1, 1, 1} && g.p == std::array<int64_t, 3>{0, 0, 0};
  }
  Shape out_shape(int64_t nsp) const {
    Shape s{g.n, o};
    for (int64_t i = 3 - nsp; i < 3; ++i) s.push_back(g.out[size_t(i)]);
    return s;
  }
};

Conv plan(const Shape& xs, const Shape& ws, const WindowOptions& o, int64_t groups, const char* op) {
  if (xs.size() < 3 || xs.size() > 5 || ws.size() != xs.size())
    throw Error(fmt::format("{}: expected input [N, C, *spatial] and weight [O, C/groups, *kernel] with 1 to 3 "
                            "spatial dims, got {} and {}",
                            op, shape_str(xs), shape_str(ws)));
  if (groups < 1 || xs[1] % groups != 0 || ws[0] % groups != 0 || ws[1] * groups != xs[1])
    throw Error(fmt::format("{}: input {} and weight {} do not match groups {}", op, shape_str(xs), shape_str(ws),
                            groups));
  Shape spatial(xs.begin() + 2, xs.end());
  std::vector<int64_t> kernel(ws.begin() + 2, ws.end());
  WindowOptions win = WindowOptions(kernel).stride(o.stride()).padding(o.padding()).dilation(o.dilation());
  Conv c;
  c.g = window::geometry(xs[0], xs[1], spatial, win, op, xs);
  c.o = ws[0];
  c.groups = groups;
  c.cg = xs[1] / groups;
  c.og = ws[0] / groups;
  return c;
}

void check_floating(const Tensor& t, const char* op, const char* what) {
  if (!t.defined()) throw Error(fmt::format("{}: {} is undefined", op, what));
  if (!is_floating(t.dtype()))
    throw Error(fmt::format("{}: expected a float32 or float64 {}, got int64 {}", op, what, shape_str(t.shape())));
}

// Samples split between threads; each thread gets one scratch buffer for an unfolded sample
// (from the caching allocator, so steady-state training does not page-fault).
template <typename T, typename F>
void per_sample(const Conv& c, bool need_scratch, Dtype dtype, F f) {
  detail::parallel_for(c.g.n, 1, [&](int64_t n0, int64_t n1) {
    Tensor scratch;
    if (need_scratch) scratch = detail::make_tensor({c.cols()}, dtype);
    T* s = need_scratch ? typed<T>(scratch) : nullptr;
    for (int64_t n = n0; n < n1; ++n) f(n, s);
  });
}

// The direct kernels' plan, or false: stride > 1, or a shape where they measured slower than
// unfold + GEMM (see direct::make_plan); float64 never asks.
bool direct_plan(const Conv& c, bool weight_grad, direct::Plan& pl) {
  return c.g.s == std::array<int64_t, 3>{1, 1, 1} &&
         direct::make_plan(c.cg, c.og, c.groups, c.g.in, c.g.out, c.g.k, c.g.d, c.g.p, weight_grad, pl);
}

// Per-thread zero-padded planes for one sample: the borders are zeroed once here and never
// written by pad_sample, so each sample only copies its interior.
Tensor padded_planes(const direct::Plan& pl) {
  Tensor t = detail::make_tensor({pl.padded_floats()}, Dtype::Float32);
  std::fill(typed<float>(t), typed<float>(t) + pl.padded_floats(), 0.0f);
  return t;
}

void conv_forward_direct(const Conv& c, const direct::Plan& pl, const float* px, const float* pw, const float* pb,
                         float* py) {
  Tensor packed = detail::make_tensor({pl.groups * pl.ogr * pl.kk}, Dtype::Float32);
  direct::pack_weights(pl, pw, typed<float>(packed));
  const int64_t plane = c.g.plane(), L = c.g.positions(), items = direct::forward_items(pl);
  if (c.g.n >= detail::pool_threads()) {  // samples split between threads
    detail::parallel_for(c.g.n, 1, [&](int64_t n0, int64_t n1) {
      Tensor pad = padded_planes(pl);
      for (int64_t n = n0; n < n1; ++n) {
        direct::pad_sample(pl, px + n * c.g.c * plane, typed<float>(pad), 0, c.g.c);
        direct::forward_sample(pl, typed<float>(pad), typed<float>(packed), pb, py + n * c.o * L, 0, items);
      }
    });
    return;
  }
  // Fewer samples than threads (one image through a network): each sample's tiles are split.
  Tensor pad = padded_planes(pl);
  for (int64_t n = 0; n < c.g.n; ++n) {
    direct::pad_sample(pl, px + n * c.g.c * plane, typed<float>(pad), 0, c.g.c);
    detail::parallel_for(items, 1, [&](int64_t i0, int64_t i1) {
      direct::forward_sample(pl, typed<float>(pad), typed<float>(packed), pb, py + n * c.o * L, i0, i1);
    });
  }
}

// dw (zeroed, [O, C/groups * kernel]) = the weight gradient by the direct kernels: chunks of
// samples split between threads (per-chunk sums added in a fixed order), or for a single sample
// its taps (disjoint rows of dw). The choice depends on the batch only, so the result depends
// neither on timing nor on the thread count.
void conv_weight_grad_direct(const Conv& c, const direct::Plan& pl, const float* pg, const float* px, float* pdw,
                             int64_t numel) {
  const int64_t plane = c.g.plane(), L = c.g.positions();
  // Per chunk of samples: padded planes, the transposed weight gradient, the transposed gradient.
  struct Buffers {
    Tensor pad, dwt, gt;
  };
  auto buffers = [&] {
    return Buffers{padded_planes(pl), zeros({pl.groups * pl.kpad * pl.ogl}, Dtype::Float32),
                   detail::make_tensor({direct::weight_grad_scratch(pl)}, Dtype::Float32)};
  };
  if (c.g.n > 1) {
    detail::chunked_sum(c.g.n, pdw, numel, [&](int64_t n0, int64_t n1, float* out) {
      const Buffers b = buffers();
      for (int64_t n = n0; n < n1; ++n) {
        direct::pad_sample(pl, px + n * c.g.c * plane, typed<float>(b.pad), 0, c.g.c);
        direct::weight_grad_sample(pl, pg + n * c.o * L, typed<float>(b.pad), typed<float>(b.dwt),
                                   typed<float>(b.gt));
      }
      direct::weight_grad_finish(pl, typed<float>(b.dwt), out);
    });
    return;
  }
  const Buffers b = buffers();
  for (int64_t n = 0; n < c.g.n; ++n) {
    direct::pad_sample(pl, px + n * c.g.c * plane, typed<float>(b.pad), 0, c.g.c);
    for (int64_t gi = 0; gi < c.groups; ++gi) {
      direct::transpose_gradient(pl, pg + n * c.o * L, gi, typed<float>(b.gt));
      detail::parallel_for(direct::tap_blocks(pl), 1, [&](int64_t b0, int64_t b1) {
        direct::weight_grad_taps(pl, typed<float>(b.gt), typed<float>(b.pad), gi, typed<float>(b.dwt), b0, b1);
      });
    }
  }
  direct::weight_grad_finish(pl, typed<float>(b.dwt), pdw);
}

// y[n] = W_g @ unfold(x[n])_g (+ bias per output channel) for every sample and group: the
// forward of conv. The bias initialises the output rows and the GEMM accumulates onto it.
template <typename T>
void conv_forward(const Conv& c, const T* px, const T* pw, const T* pb, T* py, Dtype dtype) {
  if constexpr (std::is_same_v<T, float>) {
    direct::Plan pl;
    if (direct_plan(c, false, pl)) return conv_forward_direct(c, pl, px, pw, pb, py);
  }
  const int64_t L = c.g.positions(), plane = c.g.plane();
  per_sample<T>(c, !c.identity(), dtype, [&](int64_t n, T* scratch) {
    const T* xn = px + n * c.g.c * plane;
    const T* cols = xn;
    if (scratch) {
      window::unfold_planes(c.g, xn, scratch, 0, c.g.c);
      cols = scratch;
    }
    T* yn = py + n * c.o * L;
    if (pb)
      for (int64_t oc = 0; oc < c.o; ++oc) std::fill(yn + oc * L, yn + (oc + 1) * L, pb[oc]);
    for (int64_t gi = 0; gi < c.groups; ++gi)
      gemm(false, false, c.og, L, c.ck(), pw + gi * c.og * c.ck(), c.ck(), cols + gi * c.ck() * L, L, T(pb ? 1 : 0),
           yn + gi * c.og * L, L);
  });
}

}  // namespace

Tensor conv(const Tensor& x, const Tensor& w, const Tensor& b, const WindowOptions& o, int64_t groups) {
  check_floating(x, "conv", "input");
  check_floating(w, "conv", "weight");
  if (x.dtype() != w.dtype() || (b.defined() && b.dtype() != x.dtype()))
    throw Error(fmt::format("conv: input, weight and bias dtypes differ ({}, {}, {})", dtype_name(x.dtype()),
                            dtype_name(w.dtype()), b.defined() ? dtype_name(b.dtype()) : "no bias"));
  detail::ensure_blas_core();
  const Conv c = plan(x.shape(), w.shape(), o, groups, "conv");
  if (b.defined() && b.shape() != Shape{c.o})
    throw Error(fmt::format("conv: bias expects shape [{}], got {}", c.o, shape_str(b.shape())));
  const int64_t nsp = x.dim() - 2;
  Tensor y = detail::make_tensor(c.out_shape(nsp), x.dtype());
  dispatch_floating(x.dtype(), "conv", [&](auto z) {
    using T = decltype(z);
    conv_forward<T>(c, typed<T>(x), typed<T>(w), b.defined() ? typed<T>(b) : nullptr, typed<T>(y), x.dtype());
  });
  auto vjp = [x, w, o, groups, nsp, bias = b.defined()](const Tensor& g, const Tensor&, Needs need) {
    Grads r{need[0] ? prim::conv_input_grad(g, w, x.shape(), o, groups) : Tensor(),
            need[1] ? prim::conv_weight_grad(g, x, w.shape(), o, groups) : Tensor()};
    if (bias) {  // the bias: g summed over the batch and the positions
      std::vector<int64_t> dims{0};
      for (int64_t d = 0; d < nsp; ++d) dims.push_back(2 + d);
      r.push_back(need[2] ? prim::reshape(prim::sum(g, dims), {g.size(1)}) : Tensor());
    }
    return r;
  };
  if (b.defined()) return detail::record("conv", y, {x, w, b}, vjp);
  return detail::record("conv", y, {x, w}, vjp);
}

Tensor conv_input_grad(const Tensor& g, const Tensor& w, const Shape& x_shape, const WindowOptions& o,
                       int64_t groups) {
  check_floating(g, "conv_input_grad", "gradient");
  check_floating(w, "conv_input_grad", "weight");
  detail::ensure_blas_core();
  const Conv c = plan(x_shape, w.shape(), o, groups, "conv_input_grad");
  const int64_t nsp = int64_t(x_shape.size()) - 2, L = c.g.positions(), plane = c.g.plane();
  if (g.shape() != c.out_shape(nsp) || g.dtype() != w.dtype())
    throw Error(fmt::format("conv_input_grad: expected a gradient {} of the weight's dtype, got {} {}",
                            shape_str(c.out_shape(nsp)), dtype_name(g.dtype()), shape_str(g.shape())));
  Tensor dx = detail::make_tensor(x_shape, g.dtype());
  // With stride 1 the adjoint is itself a convolution: g padded by d (k - 1) - p, correlated with
  // the kernel flipped in space and transposed in channels (per group). Unfolding g is cheaper
  // than folding (no accumulation), and it needs no zero-filled output.
  bool as_conv = c.g.s == std::array<int64_t, 3>{1, 1, 1} && !c.identity();
  for (size_t i = 0; i < 3; ++i)  // (an output_padding of a transposed conv breaks the second condition)
    as_conv = as_conv && c.g.p[i] <= c.g.d[i] * (c.g.k[i] - 1) &&
              c.g.out[i] + c.g.d[i] * (c.g.k[i] - 1) - 2 * c.g.p[i] == c.g.in[i];
  if (as_conv) {
    Shape ws{c.cg * c.groups, c.og};  // [C, O/groups, *kernel]
    ws.insert(ws.end(), w.shape().begin() + 2, w.shape().end());
    std::vector<int64_t> pad, dil;
    for (size_t i = 3 - size_t(nsp); i < 3; ++i) {
      pad.push_back(c.g.d[i] * (c.g.k[i] - 1) - c.g.p[i]);
      dil.push_back(c.g.d[i]);
    }
    const WindowOptions o2 = WindowOptions(std::vector<int64_t>(w.shape().begin() + 2, w.shape().end()))
                                 .padding(pad)
                                 .dilation(dil);
    const Conv c2 = plan(g.shape(), ws, o2, groups, "conv_input_grad");
    Tensor wt = detail::make_tensor(ws, w.dtype());
    const int64_t K = c.g.kernel_numel();
    dispatch_floating(g.dtype(), "conv", [&](auto z) {
      using T = decltype(z);
      const T* pw = typed<T>(w);
      T* pt = typed<T>(wt);
      // wt[gi, ci, oi, k] = w[gi, oi, ci, K - 1 - k] (group-major channels on both sides).
      for (int64_t gi = 0; gi < c.groups; ++gi)
        for (int64_t oi = 0; oi < c.og; ++oi)
          for (int64_t ci = 0; ci < c.cg; ++ci) {
            const T* src = pw + ((gi * c.og + oi) * c.cg + ci) * K;
            T* dst = pt + ((gi * c.cg + ci) * c.og + oi) * K;
            for (int64_t k = 0; k < K; ++k) dst[k] = src[K - 1 - k];
          }
      conv_forward<T>(c2, typed<T>(g), pt, nullptr, typed<T>(dx), g.dtype());
    });
  } else {
    dispatch_floating(g.dtype(), "conv", [&](auto z) {
      using T = decltype(z);
      const T* pg = typed<T>(g);
      const T* pw = typed<T>(w);
      T* pdx = typed<T>(dx);
      const bool identity = c.identity();
      per_sample<T>(c, !identity, g.dtype(), [&](int64_t n, T* scratch) {
        T* dxn = pdx + n * c.g.c * plane;
        T* cols = identity ? dxn : scratch;  // W^T g[n], [C*K, L]
        for (int64_t gi = 0; gi < c.groups; ++gi)
          gemm(true, false, c.ck(), L, c.og, pw + gi * c.og * c.ck(), c.ck(), pg + (n * c.o + gi * c.og) * L, L, T(0),
               cols + gi * c.ck() * L, L);
        if (!identity) window::fold_planes(c.g, dxn, scratch, 0, c.g.c);
      });
    });
  }
  // Linear in g (the adjoint of conv in x) and in w.
  return detail::record("conv_input_grad", dx, {g, w}, [g, w, o, groups](const Tensor& gg, const Tensor&, Needs need) {
    return Grads{need[0] ? prim::conv(gg, w, Tensor(), o, groups) : Tensor(),
                 need[1] ? prim::conv_weight_grad(g, gg, w.shape(), o, groups) : Tensor()};
  });
}

Tensor conv_weight_grad(const Tensor& g, const Tensor& x, const Shape& w_shape, const WindowOptions& o,
                        int64_t groups) {
  check_floating(g, "conv_weight_grad", "gradient");
  check_floating(x, "conv_weight_grad", "input");
  detail::ensure_blas_core();
  const Conv c = plan(x.shape(), w_shape, o, groups, "conv_weight_grad");
  const int64_t nsp = x.dim() - 2, L = c.g.positions(), plane = c.g.plane();
  if (g.shape() != c.out_shape(nsp) || g.dtype() != x.dtype())
    throw Error(fmt::format("conv_weight_grad: expected a gradient {} of the input's dtype, got {} {}",
                            shape_str(c.out_shape(nsp)), dtype_name(g.dtype()), shape_str(g.shape())));
  Tensor dw = zeros(w_shape, g.dtype());
  dispatch_floating(g.dtype(), "conv", [&](auto z) {
    using T = decltype(z);
    const T* pg = typed<T>(g);
    const T* px = typed<T>(x);
    T* pdw = typed<T>(dw);
    const bool identity = c.identity();
    // Each chunk of the batch accumulates into its own zeroed buffer (the first into dw), added
    // in a fixed order (detail::chunked_sum): the result does not depend on timing.
    if constexpr (std::is_same_v<T, float>) {
      direct::Plan pl;
      if (direct_plan(c, true, pl)) return conv_weight_grad_direct(c, pl, pg, px, pdw, dw.numel());
    }
    detail::chunked_sum(c.g.n, pdw, dw.numel(), [&](int64_t n0, int64_t n1, T* out) {
      Tensor scratch;
      if (!identity) scratch = detail::make_tensor({c.cols()}, g.dtype());
      for (int64_t n = n0; n < n1; ++n) {
        const T* xn = px + n * c.g.c * plane;
        const T* cols = xn;
        if (!identity) {
          window::unfold_planes(c.g, xn, typed<T>(scratch), 0, c.g.c);
          cols = typed<T>(scratch);
        }
        for (int64_t gi = 0; gi < c.groups; ++gi)
          gemm(false, true, c.og, c.ck(), L, pg + (n * c.o + gi * c.og) * L, L, cols + gi * c.ck() * L, L, T(1),
               out + gi * c.og * c.ck(), c.ck());
      }
    });
  });
  // Bilinear in (g, x): each factor's gradient is a convolution with the other.
  return detail::record("conv_weight_grad", dw, {g, x}, [g, x, o, groups](const Tensor& gg, const Tensor&, Needs need) {
    return Grads{need[0] ? prim::conv(x, gg, Tensor(), o, groups) : Tensor(),
                 need[1] ? prim::conv_input_grad(g, gg, x.shape(), o, groups) : Tensor()};
  });
}

}  // namespace tg::prim
