// unfold (im2col) and fold (col2im) for 1-D, 2-D and 3-D windows: each is the other's VJP.
// Convolution is unfold + matmul; average pooling is unfold + a reduction; max pooling is
// window_argmax + gather.
#include <fmt/format.h>

#include <array>
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "autograd.hpp"
#include "kernels/loops.hpp"
#include "parallel.hpp"
#include "node.hpp"
#include "primitives.hpp"
#include "window.hpp"

namespace tg::prim {
namespace {

std::vector<int64_t> per_dim(const std::vector<int64_t>& v, size_t nsp, const char* op, const char* what,
                             int64_t min) {
  if (v.size() != 1 && v.size() != nsp)
    throw Error(fmt::format("{}: expected {} with 1 or {} values, got [{}]", op, what, nsp, fmt::join(v, ", ")));
  std::vector<int64_t> r(nsp, v[0]);
  if (v.size() == nsp) r = v;
  for (int64_t x : r)
    if (x < min) throw Error(fmt::format("{}: {} must be >= {}, got [{}]", op, what, min, fmt::join(v, ", ")));
  return r;
}

}  // namespace

namespace window {

Geometry geometry(int64_t n, int64_t c, const Shape& spatial, const WindowOptions& o, const char* op,
                  const Shape& shape) {
  const size_t nsp = spatial.size();
  if (nsp < 1 || nsp > 3)
    throw Error(fmt::format("{}: expected 1 to 3 spatial dims, got {}", op, nsp));
  if (o.kernel_size().empty()) throw Error(fmt::format("{}: kernel_size is not set", op));
  auto k = per_dim(o.kernel_size(), nsp, op, "kernel_size", 1);
  auto s = per_dim(o.stride(), nsp, op, "stride", 1);
  auto p = per_dim(o.padding(), nsp, op, "padding", 0);
  auto d = per_dim(o.dilation(), nsp, op, "dilation", 1);
  Geometry g;
  g.n = n;
  g.c = c;
  const size_t off = 3 - nsp;
  for (size_t i = 0; i < nsp; ++i) {
    g.in[off + i] = spatial[i];
    g.k[off + i] = k[i];
    g.s[off + i] = s[i];
    g.p[off + i] = p[i];
    g.d[off + i] = d[i];
    int64_t span = d[i] * (k[i] - 1) + 1;
    int64_t o_i = (spatial[i] + 2 * p[i] - span) / s[i] + 1;
    if (spatial[i] + 2 * p[i] < span || o_i < 1)
      throw Error(fmt::format("{}: a window of {} (kernel {}, dilation {}) does not fit spatial size {} with padding {} "
                              "(input {}, spatial size {})",
                              op, span, k[i], d[i], spatial[i], p[i], shape_str(shape), shape_str(spatial)));
    g.out[off + i] = o_i;
  }
  return g;
}

}  // namespace window

namespace {

using window::Geometry;
using window::geometry;

// Outputs above this size are written with non-temporal stores: they cannot stay in cache for
// the next op anyway, and ordinary stores would first read every line of them.
constexpr int64_t kStreamBytes = int64_t(8) << 20;

// unfold of every (image, channel) plane, planes split between threads. A large output is
// streamed to memory: row by row from a padded plane at stride 1 along w
// (window::unfold_planes_stream), otherwise built plane by plane in a small buffer that stays in
// L1/L2 and streamed out.
template <typename T>
void unfold_all(const Geometry& g, const T* img, T* col) {
  const int64_t block = g.kernel_numel() * g.positions(), plane = g.plane();
  const bool stream = g.n * g.c * block * int64_t(sizeof(T)) >= kStreamBytes;
  detail::parallel_for(g.n * g.c, std::max<int64_t>(1, (1 << 15) / std::max<int64_t>(1, block)),
                       [&](int64_t nc0, int64_t nc1) {
    if (!stream) {
      window::unfold_planes(g, img, col, nc0, nc1);
      return;
    }
    if (g.s[2] == 1) {
      window::unfold_planes_stream(g, img, col, nc0, nc1);
      window::stream_fence();
      return;
    }
    std::vector<T> buf(static_cast<size_t>(block));
    for (int64_t nc = nc0; nc < nc1; ++nc) {
      window::unfold_planes(g, img + nc * plane, buf.data(), 0, 1);
      window::stream_copy(col + nc * block, buf.data(), block);
    }
    window::stream_fence();  // this thread's non-temporal stores, ordered before the join
  });
}

// fold of every plane (window::fold_planes), planes split between threads. A large output is
// written with non-temporal stores, as unfold's: without them its read-for-ownership traffic
// slowed the whole fold by a fifth (cold caches, 3x3 on [32, 64, 32, 32]: 12.6 -> 15.3 GB/s).
template <typename T>
void fold_all(const Geometry& g, T* img, const T* col) {
  const int64_t work = g.kernel_numel() * g.positions();
  const bool stream = g.n * g.c * g.plane() * int64_t(sizeof(T)) >= kStreamBytes;
  detail::parallel_for(g.n * g.c, std::max<int64_t>(1, (1 << 15) / std::max<int64_t>(1, work)),
                       [&](int64_t nc0, int64_t nc1) {
    window::fold_planes(g, img, col, nc0, nc1, stream);
    if (stream) window::stream_fence();  // this thread's non-temporal stores, before the join
  });
}

}  // namespace

Tensor unfold(const Tensor& x, const WindowOptions& o) {
  if (!x.defined() || x.dim() < 3 || x.dim() > 5)
    throw Error(fmt::format("unfold: expected input [N, C, *spatial] with 1 to 3 spatial dims, got {}",
                            x.defined() ? shape_str(x.shape()) : "undefined"));
  Shape spatial(x.shape().begin() + 2, x.shape().end());
  Geometry g = geometry(x.size(0), x.size(1), spatial, o, "unfold", x.shape());
  Tensor y = detail::make_tensor({g.n, g.c * g.kernel_numel(), g.positions()}, x.dtype());
  dispatch(x.dtype(), [&](auto z) {
    using T = decltype(z);
    unfold_all<T>(g, typed<T>(x), typed<T>(y));
  });
  return detail::record("unfold", y, {x}, [spatial, o](const Tensor& gr, const Tensor&, Needs) {
    return Grads{prim::fold(gr, spatial, o)};
  });
}

Tensor fold(const Tensor& cols, const Shape& output_size, const WindowOptions& o) {
  if (!cols.defined() || cols.dim() != 3)
    throw Error(fmt::format("fold: expected input [N, C * prod(kernel), L], got {}",
                            cols.defined() ? shape_str(cols.shape()) : "undefined"));
  Geometry g = geometry(cols.size(0), 1, output_size, o, "fold", cols.shape());
  const int64_t K = g.kernel_numel();
  if (cols.size(1) % K != 0 || cols.size(2) != g.positions())
    throw Error(fmt::format("fold: input {} does not match kernel size {} ({} values) and {} window positions for "
                            "output size {}",
                            shape_str(cols.shape()), K, K, g.positions(), shape_str(output_size)));
  g.c = cols.size(1) / K;
  Shape out_shape{g.n, g.c};
  out_shape.insert(out_shape.end(), output_size.begin(), output_size.end());
  Tensor y = detail::make_tensor(out_shape, cols.dtype());
  dispatch(cols.dtype(), [&](auto z) {
    using T = decltype(z);
    fold_all<T>(g, typed<T>(y), typed<T>(cols));
  });
  return detail::record("fold", y, {cols}, [o](const Tensor& gr, const Tensor&, Needs) {
    return Grads{prim::unfold(gr, o)};
  });
}

namespace {

// Per output coordinate along one dim: the first input coordinate of its window and the range
// [lo, hi) of kernel offsets that land inside the input.
struct WindowSpan {
  int64_t start, lo, hi;
};

std::vector<WindowSpan> spans(int64_t in, int64_t out, int64_t k, int64_t s, int64_t p, int64_t d) {
  std::vector<WindowSpan> r(static_cast<size_t>(out));
  for (int64_t o = 0; o < out; ++o) {
    const int64_t start = o * s - p;
    int64_t lo = 0, hi = k;
    while (lo < k && start + lo * d < 0) ++lo;
    while (hi > lo && start + (hi - 1) * d >= in) --hi;
    r[size_t(o)] = {start, lo, hi};
  }
  return r;
}

// window_argmax of one plane when there is no padding and every window lies inside: the window
// maximum is separable (along w, then h, then d, each over the whole plane as a flat array, so
// the loops are long whatever the row length), and window (i0, i1, i2) reads the entry at its
// first element. Row-major order within a window is kept: the first maximum along w, then the
// earlier row on ties, and a later NaN wins, as PyTorch. Each pass is the running maximum of
// kernels/loops.hpp (index i32: the plane has at most 2^31 elements).
template <typename T>
void plane_argmax_separable(const Geometry& g, const T* im, T* av, int32_t* ai, T* bv, int32_t* bi, int64_t* out,
                            T* vout) {
  using I = int32_t;
  const kernels::Loops<T>& loops = kernels::loops<T>();
  const int64_t h = g.in[1], w = g.in[2];
  // Each axis's first comparison reads the current maximum from the previous axis's arrays (the
  // plane itself, with its own indices, before the first) and writes the next ones: no copies.
  int64_t n = g.plane();
  const T* sv = im;
  const I* si = nullptr;  // the plane's own index
  T* dv = av;
  I* di = ai;
  const int64_t step[3] = {g.d[2], g.d[1] * w, g.d[0] * h * w}, kk[3] = {g.k[2], g.k[1], g.k[0]};
  for (int a = 0; a < 3; ++a) {
    if (kk[a] == 1) continue;
    n -= (kk[a] - 1) * step[a];
    for (int64_t j = 1; j < kk[a]; ++j)
      loops.running_max(sv, si, j * step[a], n, j == 1 ? sv : dv, j == 1 ? si : di, dv, di);
    sv = dv;
    si = di;
    dv = dv == av ? bv : av;
    di = di == ai ? bi : ai;
  }
  // Window (i0, i1, i2)'s maximum sits at its first element's position (sv, si), or is that
  // element itself for 1 x 1 (x 1) windows (si null).
  for (int64_t i0 = 0; i0 < g.out[0]; ++i0)
    for (int64_t i1 = 0; i1 < g.out[1]; ++i1) {
      const int64_t row = (i0 * g.s[0] * h + i1 * g.s[1]) * w;
      for (int64_t i2 = 0; i2 < g.out[2]; ++i2) *out++ = si ? si[row + i2 * g.s[2]] : row + i2 * g.s[2];
      if (vout)
        for (int64_t i2 = 0; i2 < g.out[2]; ++i2) *vout++ = sv[row + i2 * g.s[2]];
    }
}


// Each window's first maximum: its index into the plane (int64 [N, C, L], returned) and, when
// `values` is given, its value (x's dtype, [N, C, L], into *values).
Tensor window_max_indices(const Tensor& x, const WindowOptions& o, const Shape& out_size, const char* op,
                          Tensor* values) {
  if (!x.defined() || x.dim() < 3 || x.dim() > 5)
    throw Error(fmt::format("{}: expected input [N, C, *spatial] with 1 to 3 spatial dims, got {}", op,
                            x.defined() ? shape_str(x.shape()) : "undefined"));
  if (x.dtype() == kInt64) throw Error(fmt::format("{}: expected a float32 or float64 input, got int64", op));
  Shape spatial(x.shape().begin() + 2, x.shape().end());
  Geometry g = geometry(x.size(0), x.size(1), spatial, o, op, x.shape());
  const size_t off = 3 - spatial.size();
  if (out_size.size() != spatial.size())
    throw Error(fmt::format("{}: expected an output size of {} dims, got {}", op, spatial.size(),
                            shape_str(out_size)));
  std::array<std::vector<WindowSpan>, 3> sp;
  for (size_t i = 0; i < 3; ++i) {
    const int64_t out = i < off ? 1 : out_size[i - off];
    sp[i] = spans(g.in[i], out, g.k[i], g.s[i], g.p[i], g.d[i]);
    for (const WindowSpan& w : sp[i])
      if (w.lo >= w.hi)  // a window entirely in the padding (ceil_mode or padding too large)
        throw Error(fmt::format("{}: output size {} has a window outside input {}", op, shape_str(out_size),
                                shape_str(x.shape())));
    g.out[i] = out;
  }
  const int64_t plane = g.plane(), L = g.positions();
  Shape ys{g.n, g.c, L};
  Tensor y = detail::make_tensor(ys, kInt64);
  if (values) *values = detail::make_tensor(ys, x.dtype());
  // Geometry in locals: the int64 output stores could otherwise alias g's fields.
  const int64_t h = g.in[1], w = g.in[2], d0 = g.d[0], d1 = g.d[1], d2 = g.d[2];
  const int64_t s2 = g.s[2], p2 = g.p[2], k2 = g.k[2];
  const WindowSpan *s0 = sp[0].data(), *s1 = sp[1].data(), *c = sp[2].data();
  const int64_t n0 = g.out[0], n1 = g.out[1], n2 = g.out[2];
  dispatch(x.dtype(), [&](auto z) {
    using T = decltype(z);
    const T* px = typed<T>(x);
    int64_t* py = typed<int64_t>(y);
    T* pv = values ? typed<T>(*values) : nullptr;
    bool separable = plane <= std::numeric_limits<int32_t>::max();
    for (size_t i = 0; i < 3; ++i)
      separable = separable && g.p[i] == 0 && (g.out[i] - 1) * g.s[i] + (g.k[i] - 1) * g.d[i] < g.in[i];
    const kernels::Loops<T>& loops = kernels::loops<T>();
    if (separable) {
      detail::parallel_for(g.n * g.c, std::max<int64_t>(1, (1 << 14) / std::max<int64_t>(1, plane * 2)),
                           [&](int64_t p0, int64_t p1) {
        std::vector<T> av(static_cast<size_t>(plane)), bv(static_cast<size_t>(plane));
        std::vector<int32_t> ai(static_cast<size_t>(plane)), bi(static_cast<size_t>(plane));
        for (int64_t nc = p0; nc < p1; ++nc)
          plane_argmax_separable<T>(g, px + nc * plane, av.data(), ai.data(), bv.data(), bi.data(), py + nc * L,
                                    pv ? pv + nc * L : nullptr);
      });
      return;
    }
    auto run = [&](auto index_type) {
      using I = decltype(index_type);
      detail::parallel_for(g.n * g.c, std::max<int64_t>(1, (1 << 14) / std::max<int64_t>(1, L * g.kernel_numel())),
                           [&](int64_t p0, int64_t p1) {
        std::vector<T> best_v(static_cast<size_t>(n2));
        std::vector<I> best_i(static_cast<size_t>(n2));
        T* bv = best_v.data();
        I* bi = best_i.data();
        for (int64_t nc = p0; nc < p1; ++nc) {
          const T* im = px + nc * plane;
          for (int64_t i0 = 0; i0 < n0; ++i0)
            for (int64_t i1 = 0; i1 < n1; ++i1) {
              const WindowSpan a = s0[i0], b = s1[i1];
              // A row of windows at once, kernel offsets in row-major order; a window of -inf
              // keeps its first in-bounds element.
              const int64_t first = ((a.start + a.lo * d0) * h + b.start + b.lo * d1) * w;
              for (int64_t o = 0; o < n2; ++o) {
                bv[o] = -std::numeric_limits<T>::infinity();
                bi[o] = I(first + c[o].start + c[o].lo * d2);
              }
              for (int64_t i = a.lo; i < a.hi; ++i)
                for (int64_t j = b.lo; j < b.hi; ++j) {
                  const int64_t row = ((a.start + i * d0) * h + b.start + j * d1) * w;
                  for (int64_t k = 0; k < k2; ++k) {
                    // Windows o whose column o*s2 - p2 + k*d2 lies in [0, w), as in im2col.
                    const int64_t shift = k * d2 - p2;
                    const auto [lo, hi] = window::valid_range(w, n2, shift, s2);
                    if (lo >= hi) continue;
                    if constexpr (std::is_same_v<I, int32_t>)
                      loops.row_max(im + row + shift, s2, lo, hi, row + shift, bv, bi);
                    else
                      loops.row_max_i64(im + row + shift, s2, lo, hi, row + shift, bv, bi);
                  }
                }
              std::copy(bi, bi + n2, py + nc * L + (i0 * n1 + i1) * n2);
              if (pv) std::copy(bv, bv + n2, pv + nc * L + (i0 * n1 + i1) * n2);
            }
        }
      });
    };
    if (plane <= std::numeric_limits<int32_t>::max())
      run(int32_t());
    else
      run(int64_t());
  });
  return y;
}

}  // namespace

Tensor window_argmax(const Tensor& x, const WindowOptions& o, const Shape& out_size) {
  return window_max_indices(x, o, out_size, "window_argmax", nullptr);
}

// Fused: gather(x.reshape([N, C, -1]), 2, window_argmax(x, ...)) in one pass over x.
Tensor window_max(const Tensor& x, const WindowOptions& o, const Shape& out_size, Tensor* indices) {
  Tensor y;
  Tensor idx = window_max_indices(x, o, out_size, "window_max", &y);
  if (indices) *indices = idx;
  // gather's VJP: the gradient flows to each window's maximum, one scatter into x's planes.
  const Shape shape = x.shape();
  const Shape planes{shape[0], shape[1], shape_numel(Shape(shape.begin() + 2, shape.end()))};
  return detail::record("window_max", y, {x}, [shape, planes, idx](const Tensor& g, const Tensor&, Needs) {
    return Grads{prim::scatter_add(g, planes, 2, idx).reshape(shape)};
  });
}

}  // namespace tg::prim
