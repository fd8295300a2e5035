// Pooling, adaptive pooling, interpolation and padding modes, composed from pad, unfold,
// reductions and index_select.
#include <fmt/format.h>

#include <cmath>

#include "../autograd/primitives.hpp"
#include "functional.hpp"

namespace tg::nn::functional {
namespace {

struct PoolGeometry {
  std::vector<int64_t> k, s, p, d, out, extra;  // extra: right padding that ceil_mode needs
};

PoolGeometry pool_geometry(const Tensor& x, const PoolOptions& o, int64_t nsp, const char* op) {
  static const char* layouts[] = {"", "(N, C, L)", "(N, C, H, W)", "(N, C, D, H, W)"};
  if (!x.defined() || x.dim() != nsp + 2)
    throw Error(fmt::format("{}: expected input with {} dims {}, got {}", op, nsp + 2, layouts[nsp],
                            x.defined() ? shape_str(x.shape()) : "undefined"));
  auto expand = [&](const IntList& v, const char* what, const IntList& fallback) {
    const IntList& src = v.empty() ? fallback : v;
    if (src.size() != 1 && int64_t(src.size()) != nsp)
      throw Error(fmt::format("{}: expected {} with 1 or {} values, got [{}]", op, what, nsp, fmt::join(src, ", ")));
    return src.size() == 1 ? std::vector<int64_t>(size_t(nsp), src[0]) : std::vector<int64_t>(src);
  };
  if (o.kernel_size().empty()) throw Error(fmt::format("{}: kernel_size is not set", op));
  PoolGeometry g;
  g.k = expand(o.kernel_size(), "kernel_size", {});
  g.s = expand(o.stride(), "stride", o.kernel_size());
  g.p = expand(o.padding(), "padding", {0});
  g.d = expand(o.dilation(), "dilation", {1});
  for (int64_t i = 0; i < nsp; ++i) {
    const size_t j = size_t(i);
    if (g.k[j] < 1 || g.s[j] < 1 || g.d[j] < 1 || g.p[j] < 0)
      throw Error(fmt::format("{}: kernel, stride and dilation must be positive and padding non-negative, got kernel "
                              "[{}] stride [{}] padding [{}]",
                              op, fmt::join(g.k, ", "), fmt::join(g.s, ", "), fmt::join(g.p, ", ")));
    if (g.p[j] * 2 > g.k[j])
      throw Error(fmt::format("{}: padding {} should be at most half of kernel size {}", op, g.p[j], g.k[j]));
    const int64_t in = x.size(2 + i), span = g.d[j] * (g.k[j] - 1) + 1;
    const int64_t num = in + 2 * g.p[j] - span;
    if (num < 0)
      throw Error(fmt::format("{}: window {} larger than padded input {} (input {})", op, span, in + 2 * g.p[j],
                              shape_str(x.shape())));
    int64_t out = (o.ceil_mode() ? (num + g.s[j] - 1) / g.s[j] : num / g.s[j]) + 1;
    if (o.ceil_mode() && (out - 1) * g.s[j] >= in + g.p[j]) --out;  // the last window must start inside
    g.out.push_back(out);
    g.extra.push_back(std::max<int64_t>(0, (out - 1) * g.s[j] + span - (in + 2 * g.p[j])));
  }
  return g;
}

// F.pad's list (last dim first) for padding the spatial dims by (before, after).
std::vector<int64_t> spatial_pads(const std::vector<int64_t>& before, const std::vector<int64_t>& after) {
  std::vector<int64_t> pads;
  for (size_t i = before.size(); i-- > 0;) {
    pads.push_back(before[i]);
    pads.push_back(after[i]);
  }
  return pads;
}

// Windows of the (already padded) input: [N, C, K, L].
Tensor windows(const Tensor& xp, const PoolGeometry& g) {
  Tensor cols = tg::unfold(xp, WindowOptions(g.k).stride(g.s).dilation(g.d));
  const int64_t kn = cols.size(1) / xp.size(1);
  return cols.reshape({xp.size(0), xp.size(1), kn, cols.size(2)});
}

Shape out_shape(const Tensor& x, const PoolGeometry& g) {
  Shape s{x.size(0), x.size(1)};
  s.insert(s.end(), g.out.begin(), g.out.end());
  return s;
}

Tensor max_pool_nd(const Tensor& x, const PoolOptions& o, int64_t nsp, const char* op) {
  PoolGeometry g = pool_geometry(x, o, nsp, op);
  if (x.dtype() == kInt64) throw Error(fmt::format("{}: expected a float32 or float64 input, got int64", op));
  // Each window's first maximum (padding never chosen), as window_argmax + gather fused in one
  // pass: the gradient flows to that one element, as in PyTorch's max_pool, through a single
  // scatter into x's shape.
  return prim::window_max(x, WindowOptions(g.k).stride(g.s).padding(g.p).dilation(g.d), Shape(g.out))
      .reshape(out_shape(x, g));
}

Tensor avg_pool_nd(const Tensor& x, const PoolOptions& o, int64_t nsp, const char* op) {
  PoolGeometry g = pool_geometry(x, o, nsp, op);
  std::vector<int64_t> after(g.p);
  for (size_t i = 0; i < after.size(); ++i) after[i] += g.extra[i];
  Tensor sums = tg::sum(windows(tg::pad(x, spatial_pads(g.p, after)), g), {2});  // [N, C, L]
  // The divisor of each window: its elements inside the padded input (count_include_pad) or
  // inside the input itself, never the ceil_mode overhang. Computed once on a ones tensor.
  Shape unit{1, 1};
  for (int64_t i = 0; i < nsp; ++i) unit.push_back(x.size(2 + i));
  Tensor ones = tg::ones(unit, x.dtype());
  Tensor counted = tg::pad(ones, spatial_pads(g.p, g.p), o.count_include_pad() ? 1.0 : 0.0);
  counted = tg::pad(counted, spatial_pads(std::vector<int64_t>(size_t(nsp), 0), g.extra));
  Tensor divisor = tg::sum(windows(counted, g), {2});  // [1, 1, L]
  return (sums / divisor).reshape(out_shape(x, g));
}

// Adaptive pooling along one dim: bins [floor(i*in/out), ceil((i+1)*in/out)).
Tensor adaptive_dim(const Tensor& x, int64_t dim, int64_t out, bool is_max) {
  const int64_t in = x.size(dim);
  if (in % out == 0) {  // equal bins: one reshape and one reduction
    Shape s(x.shape().begin(), x.shape().begin() + dim);
    s.push_back(out);
    s.push_back(in / out);
    s.insert(s.end(), x.shape().begin() + dim + 1, x.shape().end());
    Tensor r = x.reshape(s);
    return is_max ? tg::max(r, {dim + 1}) : tg::mean(r, {dim + 1});
  }
  std::vector<Tensor> bins;
  for (int64_t i = 0; i < out; ++i) {
    int64_t start = (i * in) / out, end = ((i + 1) * in + out - 1) / out;
    Tensor piece = tg::narrow(x, dim, start, end - start);
    bins.push_back(is_max ? tg::max(piece, {dim}, true) : tg::mean(piece, {dim}, true));
  }
  return tg::cat(bins, dim);
}

Tensor adaptive_pool2d(const Tensor& x, const IntList& size, bool is_max, const char* op) {
  if (!x.defined() || x.dim() != 4)
    throw Error(fmt::format("{}: expected input with 4 dims (N, C, H, W), got {}", op,
                            x.defined() ? shape_str(x.shape()) : "undefined"));
  if (size.size() != 1 && size.size() != 2)
    throw Error(fmt::format("{}: expected an output size of 1 or 2 values, got [{}]", op, fmt::join(size, ", ")));
  int64_t oh = size[0], ow = size.size() == 2 ? size[1] : size[0];
  if (oh < 1 || ow < 1) throw Error(fmt::format("{}: output size must be positive, got [{}]", op, fmt::join(size, ", ")));
  return adaptive_dim(adaptive_dim(x, 2, oh, is_max), 3, ow, is_max);
}

}  // namespace

Tensor max_pool1d(const Tensor& x, const PoolOptions& o) { return max_pool_nd(x, o, 1, "max_pool1d"); }
Tensor max_pool2d(const Tensor& x, const PoolOptions& o) { return max_pool_nd(x, o, 2, "max_pool2d"); }
Tensor max_pool3d(const Tensor& x, const PoolOptions& o) { return max_pool_nd(x, o, 3, "max_pool3d"); }
Tensor avg_pool1d(const Tensor& x, const PoolOptions& o) { return avg_pool_nd(x, o, 1, "avg_pool1d"); }
Tensor avg_pool2d(const Tensor& x, const PoolOptions& o) { return avg_pool_nd(x, o, 2, "avg_pool2d"); }
Tensor avg_pool3d(const Tensor& x, const PoolOptions& o) { return avg_pool_nd(x, o, 3, "avg_pool3d"); }
Tensor max_pool2d(const Tensor& x, IntList kernel, IntList stride, IntList padding) {
  return max_pool2d(x, PoolOptions(std::move(kernel)).stride(std::move(stride)).padding(std::move(padding)));
}
Tensor avg_pool2d(const Tensor& x, IntList kernel, IntList stride, IntList padding) {
  return avg_pool2d(x, PoolOptions(std::move(kernel)).stride(std::move(stride)).padding(std::move(padding)));
}
Tensor adaptive_avg_pool2d(const Tensor& x, IntList output_size) {
  return adaptive_pool2d(x, output_size, false, "adaptive_avg_pool2d");
}
Tensor adaptive_max_pool2d(const Tensor& x, IntList output_size) {
  return adaptive_pool2d(x, output_size, true, "adaptive_max_pool2d");
}
Tensor global_avg_pool(const Tensor& x) {
  if (!x.defined() || x.dim() < 3)
    throw Error(fmt::format("global_avg_pool: expected [N, C, *spatial], got {}", x.defined() ? shape_str(x.shape()) : "undefined"));
  return tg::mean(x.flatten(2), {2});
}
Tensor global_max_pool(const Tensor& x) {
  if (!x.defined() || x.dim() < 3)
    throw Error(fmt::format("global_max_pool: expected [N, C, *spatial], got {}", x.defined() ? shape_str(x.shape()) : "undefined"));
  return tg::max(x.flatten(2), {2});
}

namespace {
// Source indices and weights for resampling one dim.
Tensor nearest_index(int64_t in, int64_t out, double scale) {
  std::vector<double> idx(static_cast<size_t>(out));
  for (int64_t i = 0; i < out; ++i) idx[size_t(i)] = double(std::min<int64_t>(int64_t(std::floor(double(i) * scale)), in - 1));
  return tg::tensor(idx, {out}, kInt64);
}

Tensor resample_dim(const Tensor& x, int64_t dim, int64_t out, double scale, InterpolateMode mode, bool align) {
  const int64_t in = x.size(dim);
  if (mode == kNearest) return tg::index_select(x, dim, nearest_index(in, out, scale));
  const size_t m = static_cast<size_t>(out);
  std::vector<double> i0(m), i1(m), w1(m);
  for (int64_t i = 0; i < out; ++i) {
    double src = align ? (out > 1 ? double(i) * double(in - 1) / double(out - 1) : 0.0)
                       : std::max(0.0, (double(i) + 0.5) * scale - 0.5);
    int64_t lo = std::min<int64_t>(int64_t(std::floor(src)), in - 1);
    i0[size_t(i)] = double(lo);
    i1[size_t(i)] = double(std::min<int64_t>(lo + 1, in - 1));
    w1[size_t(i)] = src - double(lo);
  }
  Shape ws(size_t(x.dim()), 1);
  ws[size_t(dim)] = out;
  Tensor lam = tg::tensor(w1, ws, x.dtype());
  Tensor a = tg::index_select(x, dim, tg::tensor(i0, {out}, kInt64));
  Tensor b = tg::index_select(x, dim, tg::tensor(i1, {out}, kInt64));
  return a + (b - a) * lam;
}
}  // namespace

Tensor interpolate(const Tensor& x, const InterpolateOptions& o) {
  if (!x.defined() || x.dim() < 3 || x.dim() > 5)
    throw Error(fmt::format("interpolate: expected [N, C, *spatial] with 1 to 3 spatial dims, got {}",
                            x.defined() ? shape_str(x.shape()) : "undefined"));
  const int64_t nsp = x.dim() - 2;
  if (o.mode() == kBilinear && nsp != 2)
    throw Error(fmt::format("interpolate: bilinear expects a 4-D input, got {}", shape_str(x.shape())));
  if (o.size().empty() == o.scale_factor().empty())
    throw Error("interpolate: give exactly one of size and scale_factor");
  Tensor y = x;
  for (int64_t d = 0; d < nsp; ++d) {
    const int64_t in = x.size(2 + d);
    int64_t out;
    double scale;
    if (!o.size().empty()) {
      out = o.size().size() == 1 ? o.size()[0] : o.size().at(size_t(d));
      scale = double(in) / double(out);
    } else {
      double f = o.scale_factor().size() == 1 ? o.scale_factor()[0] : o.scale_factor().at(size_t(d));
      if (f <= 0) throw Error(fmt::format("interpolate: scale_factor must be positive, got {}", f));
      out = int64_t(std::floor(double(in) * f));
      scale = 1.0 / f;
    }
    if (out < 1) throw Error(fmt::format("interpolate: output size {} for dim {} is not positive", out, 2 + d));
    y = resample_dim(y, 2 + d, out, scale, o.mode(), o.align_corners());
  }
  return y;
}

Tensor pad(const Tensor& x, const std::vector<int64_t>& pads, PadMode mode, double value) {
  if (mode == kConstant) return tg::pad(x, pads, value);
  if (!x.defined() || pads.size() % 2 != 0 || pads.size() / 2 > size_t(x.dim()))
    throw Error(fmt::format("pad: expected an even number of pads, at most 2 per dim of {}, got [{}]",
                            x.defined() ? shape_str(x.shape()) : "undefined", fmt::join(pads, ", ")));
  Tensor y = x;
  for (size_t i = 0; i < pads.size() / 2; ++i) {
    const int64_t dim = x.dim() - 1 - int64_t(i), n = x.size(dim), before = pads[2 * i], after = pads[2 * i + 1];
    if (before < 0 || after < 0) throw Error("pad: negative padding is not supported with reflect/replicate");
    if (mode == kReflect && (before >= n || after >= n))
      throw Error(fmt::format("pad: reflect padding ({}, {}) must be smaller than the dim size {} (input {})", before,
                              after, n, shape_str(x.shape())));
    std::vector<double> idx;
    for (int64_t j = -before; j < n + after; ++j) {
      int64_t k = j;
      if (mode == kReflect)
        k = j < 0 ? -j : (j >= n ? 2 * (n - 1) - j : j);
      else
        k = std::clamp<int64_t>(j, 0, n - 1);
      idx.push_back(double(k));
    }
    y = tg::index_select(y, dim, tg::tensor(idx, {int64_t(idx.size())}, kInt64));
  }
  return y;
}

}  // namespace tg::nn::functional
