// unfold (im2col) and fold (col2im) for 1-D, 2-D and 3-D windows: each is the other's VJP.
// Convolution is unfold + matmul; pooling is unfold + a reduction.
#include <fmt/format.h>

#include <array>

#include "autograd.hpp"
#include "parallel.hpp"
#include "node.hpp"
#include "primitives.hpp"

namespace tg::prim {
namespace {

// The geometry of one window op, padded to 3 spatial dims (leading dims of size 1).
struct Geometry {
  int64_t n = 0, c = 0;
  std::array<int64_t, 3> in{1, 1, 1}, out{1, 1, 1}, k{1, 1, 1}, s{1, 1, 1}, p{0, 0, 0}, d{1, 1, 1};
  int64_t kernel_numel() const { return k[0] * k[1] * k[2]; }
  int64_t positions() const { return out[0] * out[1] * out[2]; }
};

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

// `shape` is the op's input, named in errors.
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

// Walks every (channel, kernel offset, output position) and calls f(col index, image index or -1).
// The innermost loop runs over output columns with the in-bounds range computed once.
template <typename T, bool kFold>
void im2col(const Geometry& g, T* img, T* col) {
  const int64_t K = g.kernel_numel(), L = g.positions();
  const int64_t in_numel = g.in[0] * g.in[1] * g.in[2];
  // (image, channel) planes are independent: split them between threads.
  detail::parallel_for(g.n * g.c, std::max<int64_t>(1, (1 << 15) / std::max<int64_t>(1, K * L)), [&](int64_t nc0, int64_t nc1) {
  for (int64_t nc = nc0; nc < nc1; ++nc) {
    T* im = img + nc * in_numel;
    for (int64_t kd = 0; kd < g.k[0]; ++kd)
      for (int64_t kh = 0; kh < g.k[1]; ++kh)
        for (int64_t kw = 0; kw < g.k[2]; ++kw) {
          const int64_t kidx = (kd * g.k[1] + kh) * g.k[2] + kw;
          T* row = col + (nc * K + kidx) * L;
          // Output columns ow whose input column iw = ow*s - p + kw*d lies in [0, in).
          const int64_t shift = kw * g.d[2] - g.p[2];
          int64_t lo = shift >= 0 ? 0 : (-shift + g.s[2] - 1) / g.s[2];
          int64_t hi = g.in[2] - shift <= 0 ? 0 : (g.in[2] - shift - 1) / g.s[2] + 1;
          hi = std::min(hi, g.out[2]);
          lo = std::min(lo, hi);
          for (int64_t od = 0; od < g.out[0]; ++od) {
            const int64_t id = od * g.s[0] - g.p[0] + kd * g.d[0];
            for (int64_t oh = 0; oh < g.out[1]; ++oh) {
              const int64_t ih = oh * g.s[1] - g.p[1] + kh * g.d[1];
              T* r = row + (od * g.out[1] + oh) * g.out[2];
              const bool inside = id >= 0 && id < g.in[0] && ih >= 0 && ih < g.in[1];
              if (!inside) {
                if (!kFold) std::fill(r, r + g.out[2], T(0));
                continue;
              }
              T* src = im + (id * g.in[1] + ih) * g.in[2] + shift;
              const int64_t st = g.s[2];
              if (kFold) {
                for (int64_t ow = lo; ow < hi; ++ow) src[ow * st] += r[ow];
              } else {
                std::fill(r, r + lo, T(0));
                if (st == 1)
                  std::copy(src + lo, src + hi, r + lo);
                else
                  for (int64_t ow = lo; ow < hi; ++ow) r[ow] = src[ow * st];
                std::fill(r + hi, r + g.out[2], T(0));
              }
            }
          }
        }
  }
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
    im2col<T, false>(g, typed<T>(x), typed<T>(y));
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
  Tensor y = zeros(out_shape, cols.dtype());
  dispatch(cols.dtype(), [&](auto z) {
    using T = decltype(z);
    im2col<T, true>(g, typed<T>(y), typed<T>(cols));
  });
  return detail::record("fold", y, {cols}, [o](const Tensor& gr, const Tensor&, Needs) {
    return Grads{prim::unfold(gr, o)};
  });
}

}  // namespace tg::prim
