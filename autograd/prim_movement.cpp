// Movement primitives. All but reshape copy into a fresh contiguous tensor through one strided
// copy routine; each VJP is the adjoint movement.
#include <fmt/format.h>

#include <array>
#include <atomic>
#include <cstring>

#include "autograd.hpp"
#include "node.hpp"
#include "parallel.hpp"
#include "primitives.hpp"

namespace tg::prim {
namespace {

Shape contiguous_strides(const Shape& s) {
  Shape st(s.size(), 1);
  for (size_t i = s.size(); i-- > 1;) st[i - 1] = st[i] * s[i];
  return st;
}

// dst[idx . dst_strides] = src[idx . src_strides] for every index idx of `shape`.
template <typename T>
void strided_copy(T* dst, const Shape& dst_strides, const T* src, const Shape& src_strides, const Shape& shape) {
  const size_t nd = shape.size();
  if (shape_numel(shape) == 0) return;
  if (nd == 0) {
    *dst = *src;
    return;
  }
  const int64_t n = shape[nd - 1], ds = dst_strides[nd - 1], ss = src_strides[nd - 1];
  std::vector<int64_t> idx(nd, 0);
  const int64_t outer = shape_numel(shape) / n;
  for (int64_t o = 0; o < outer; ++o) {
    if (ds == 1 && ss == 1)
      std::memcpy(dst, src, size_t(n) * sizeof(T));
    else if (ss == 0)
      for (int64_t i = 0; i < n; ++i) dst[i * ds] = *src;
    else
      for (int64_t i = 0; i < n; ++i) dst[i * ds] = src[i * ss];
    // Advance the odometer over the outer dims.
    for (size_t d = nd - 1; d-- > 0;) {
      dst += dst_strides[d];
      src += src_strides[d];
      if (++idx[d] < shape[d]) break;
      dst -= dst_strides[d] * shape[d];
      src -= src_strides[d] * shape[d];
      idx[d] = 0;
    }
  }
}

// out[region] = x where the region of out starts at `offset` (element index) with out's strides
// scaled by `step`.
void copy_into(Tensor& out, int64_t offset, const Shape& out_strides, const Tensor& x) {
  dispatch(x.dtype(), [&](auto z) {
    using T = decltype(z);
    strided_copy<T>(typed<T>(out) + offset, out_strides, typed<T>(x), contiguous_strides(x.shape()), x.shape());
  });
}

int64_t normalize_dim(int64_t d, const Shape& s, const char* op) {
  const int64_t n = int64_t(s.size());
  int64_t r = d < 0 ? d + n : d;
  if (r < 0 || r >= n)
    throw Error(fmt::format("{}: dim {} out of range for a tensor with {} dims (shape {})", op, d, n, shape_str(s)));
  return r;
}

void check_index(const Tensor& index, const char* op) {
  if (!index.defined() || index.dtype() != kInt64)
    throw Error(fmt::format("{}: expected an int64 index tensor, got {}", op,
                            index.defined() ? dtype_name(index.dtype()) : "undefined"));
}

}  // namespace

Tensor reshape(const Tensor& x, const Shape& s) {
  if (shape_numel(s) != x.numel())
    throw Error(fmt::format("reshape: shape {} is invalid for input of shape {} ({} elements)", shape_str(s),
                            shape_str(x.shape()), x.numel()));
  Tensor y = detail::make_alias(x.impl()->storage, s, x.dtype());
  Shape in_shape = x.shape();
  return detail::record("reshape", y, {x}, [in_shape](const Tensor& g, const Tensor&, Needs) {
    return Grads{prim::reshape(g, in_shape)};
  });
}

Tensor permute(const Tensor& x, const std::vector<int64_t>& perm) {
  const size_t nd = size_t(x.dim());
  std::vector<int64_t> inverse(nd, -1);
  if (perm.size() != nd)
    throw Error(fmt::format("permute: expected {} dims for shape {}, got [{}]", nd, shape_str(x.shape()),
                            fmt::join(perm, ", ")));
  for (size_t i = 0; i < nd; ++i) {
    int64_t p = perm[i];
    if (p < 0 || p >= int64_t(nd) || inverse[size_t(p)] != -1)
      throw Error(fmt::format("permute: [{}] is not a permutation of {} dims (shape {})", fmt::join(perm, ", "), nd,
                              shape_str(x.shape())));
    inverse[size_t(p)] = int64_t(i);
  }
  Shape out_shape(nd), src_strides(nd);
  Shape in_strides = contiguous_strides(x.shape());
  for (size_t i = 0; i < nd; ++i) {
    out_shape[i] = x.shape()[size_t(perm[i])];
    src_strides[i] = in_strides[size_t(perm[i])];
  }
  Tensor y = detail::make_tensor(out_shape, x.dtype());
  dispatch(x.dtype(), [&](auto z) {
    using T = decltype(z);
    strided_copy<T>(typed<T>(y), contiguous_strides(out_shape), typed<T>(x), src_strides, out_shape);
  });
  return detail::record("permute", y, {x}, [inverse](const Tensor& g, const Tensor&, Needs) {
    return Grads{prim::permute(g, inverse)};
  });
}

Tensor expand(const Tensor& x, const Shape& s) {
  if (size_t(x.dim()) != s.size())
    throw Error(fmt::format("expand: expected a target of {} dims for shape {}, got {}", x.dim(),
                            shape_str(x.shape()), shape_str(s)));
  Shape src_strides = contiguous_strides(x.shape());
  for (size_t i = 0; i < s.size(); ++i) {
    if (x.shape()[i] == s[i]) continue;
    if (x.shape()[i] != 1)
      throw Error(fmt::format("expand: cannot expand shape {} to {} (dim {} has size {}, not 1)",
                              shape_str(x.shape()), shape_str(s), i, x.shape()[i]));
    src_strides[i] = 0;
  }
  if (s == x.shape()) return x;
  Tensor y = detail::make_tensor(s, x.dtype());
  dispatch(x.dtype(), [&](auto z) {
    using T = decltype(z);
    strided_copy<T>(typed<T>(y), contiguous_strides(s), typed<T>(x), src_strides, s);
  });
  Shape in_shape = x.shape();
  return detail::record("expand", y, {x}, [in_shape](const Tensor& g, const Tensor&, Needs) {
    return Grads{prim::sum_to(g, in_shape)};
  });
}

// The one place a gradient is reduced back to a broadcast operand's shape: the VJP of expand,
// and of the broadcast binary primitives. s may have fewer dims than g (leading dims summed).
Tensor sum_to(const Tensor& g, const Shape& s) {
  const std::vector<int64_t> dims = detail::sum_to_dims(g.shape(), s, "sum_to");
  if (dims.empty()) return g;
  Tensor r = prim::sum(g, dims);
  return r.shape() == s ? r : prim::reshape(r, s);
}

Tensor pad(const Tensor& x, const std::vector<int64_t>& before, const std::vector<int64_t>& after, double value) {
  const size_t nd = size_t(x.dim());
  if (before.size() != nd || after.size() != nd)
    throw Error(fmt::format("pad: expected {} (before, after) pairs for shape {}", nd, shape_str(x.shape())));
  Shape out_shape = x.shape();
  int64_t offset = 0;
  Shape out_strides;
  for (size_t i = 0; i < nd; ++i) {
    if (before[i] < 0 || after[i] < 0)
      throw Error(fmt::format("pad: negative padding ({}, {}) on dim {} is not supported", before[i], after[i], i));
    out_shape[i] += before[i] + after[i];
  }
  out_strides = contiguous_strides(out_shape);
  for (size_t i = 0; i < nd; ++i) offset += before[i] * out_strides[i];
  Tensor y = detail::make_tensor(out_shape, x.dtype());
  y.fill_(value);
  copy_into(y, offset, out_strides, x);
  Shape in_shape = x.shape();
  return detail::record("pad", y, {x}, [before, in_shape](const Tensor& g, const Tensor&, Needs) {
    Tensor r = g;
    for (size_t i = 0; i < in_shape.size(); ++i)
      if (r.shape()[i] != in_shape[i]) r = prim::slice(r, int64_t(i), before[i], before[i] + in_shape[i], 1);
    return Grads{r};
  });
}

Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step) {
  if (dim < 0 || dim >= x.dim() || step <= 0 || start < 0 || end > x.size(dim) || start > end)
    throw Error(fmt::format("slice: invalid range dim={} start={} end={} step={} for shape {}", dim, start, end, step,
                            shape_str(x.shape())));
  Shape out_shape = x.shape();
  out_shape[size_t(dim)] = (end - start + step - 1) / step;
  Shape src_strides = contiguous_strides(x.shape());
  const int64_t offset = start * src_strides[size_t(dim)];
  src_strides[size_t(dim)] *= step;
  Tensor y = detail::make_tensor(out_shape, x.dtype());
  dispatch(x.dtype(), [&](auto z) {
    using T = decltype(z);
    strided_copy<T>(typed<T>(y), contiguous_strides(out_shape), typed<T>(x) + offset, src_strides, out_shape);
  });
  Shape in_shape = x.shape();
  return detail::record("slice", y, {x}, [in_shape, dim, start, step](const Tensor& g, const Tensor&, Needs) {
    return Grads{prim::slice_backward(g, in_shape, dim, start, step)};
  });
}

Tensor slice_backward(const Tensor& g, const Shape& in_shape, int64_t dim, int64_t start, int64_t step) {
  Tensor y = zeros(in_shape, g.dtype());
  Shape strides = contiguous_strides(in_shape);
  const int64_t offset = start * strides[size_t(dim)];
  strides[size_t(dim)] *= step;
  copy_into(y, offset, strides, g);
  const int64_t len = g.size(dim);
  return detail::record("slice_backward", y, {g}, [dim, start, step, len](const Tensor& gg, const Tensor&, Needs) {
    return Grads{prim::slice(gg, dim, start, start + (len - 1) * step + 1, step)};
  });
}

Tensor cat(const std::vector<Tensor>& xs, int64_t dim) {
  if (xs.empty()) throw Error("cat: expected a non-empty list of tensors");
  const Tensor& first = xs[0];
  dim = normalize_dim(dim, first.shape(), "cat");
  Shape out_shape = first.shape();
  out_shape[size_t(dim)] = 0;
  for (size_t k = 0; k < xs.size(); ++k) {
    const Tensor& x = xs[k];
    bool ok = x.defined() && x.dim() == first.dim() && x.dtype() == first.dtype();
    for (int64_t i = 0; ok && i < x.dim(); ++i) ok = i == dim || x.size(i) == first.size(i);
    if (!ok)
      throw Error(fmt::format("cat: tensor {} has shape {} ({}), expected {} like tensor 0 ({}) except in dim {}", k,
                              x.defined() ? shape_str(x.shape()) : "undefined",
                              x.defined() ? dtype_name(x.dtype()) : "-", shape_str(first.shape()),
                              dtype_name(first.dtype()), dim));
    out_shape[size_t(dim)] += x.size(dim);
  }
  Tensor y = detail::make_tensor(out_shape, first.dtype());
  Shape out_strides = contiguous_strides(out_shape);
  std::vector<int64_t> starts;
  int64_t at = 0;
  for (const Tensor& x : xs) {
    starts.push_back(at);
    copy_into(y, at * out_strides[size_t(dim)], out_strides, x);
    at += x.size(dim);
  }
  std::vector<int64_t> sizes;
  for (const Tensor& x : xs) sizes.push_back(x.size(dim));
  return detail::record("cat", y, xs, [dim, starts, sizes](const Tensor& g, const Tensor&, Needs n) {
    Grads out(starts.size());
    for (size_t k = 0; k < starts.size(); ++k)
      if (n[k]) out[k] = prim::slice(g, dim, starts[k], starts[k] + sizes[k], 1);
    return out;
  });
}

namespace {
// Rows [o0, o1) of for_index's common case. A function with its arguments by value, so f's
// pointers and the bounds live in registers (through the lambda's captures they were reloaded
// after every store). Returns whether an index was out of range (skipped).
template <typename F>
bool index_rows(F f, const int64_t* idx, int64_t o0, int64_t o1, int64_t irows, int64_t xrows, int64_t inner) {
  bool bad = false;
  if (inner == 1) {  // dim is the last one (pooling, cross-entropy): a plain row loop
    for (int64_t o = o0; o < o1; ++o) {
      const int64_t* row = idx + o * irows;
      for (int64_t j = 0; j < irows; ++j) {
        const int64_t c = row[j];
        const bool out = uint64_t(c) >= uint64_t(xrows);  // also c < 0
        bad |= out;
        if (!out) f(o * irows + j, o * xrows + c);
      }
    }
    return bad;
  }
  for (int64_t o = o0; o < o1; ++o)
    for (int64_t j = 0; j < irows; ++j) {
      const int64_t base = (o * irows + j) * inner;
      for (int64_t i = 0; i < inner; ++i) {
        const int64_t c = idx[base + i];
        const bool out = c < 0 || c >= xrows;
        bad |= out;
        if (!out) f(base + i, (o * xrows + c) * inner + i);
      }
    }
  return bad;
}

// Shared loop of gather / scatter_add: for every element of index, f(index position, x position).
template <typename F>
void for_index(const Shape& x_shape, int64_t dim, const Tensor& index, const char* op, F f) {
  const Shape& is = index.shape();
  bool same_outside = true;
  for (size_t d = 0; d < is.size(); ++d) same_outside = same_outside && (int64_t(d) == dim || is[d] == x_shape[d]);
  if (same_outside) {
    // The common case (index and input agree outside dim): (outer, rows, inner) loops.
    int64_t outer = 1, inner = 1;
    for (int64_t d = 0; d < dim; ++d) outer *= is[size_t(d)];
    for (size_t d = size_t(dim) + 1; d < is.size(); ++d) inner *= is[d];
    const int64_t irows = is[size_t(dim)], xrows = x_shape[size_t(dim)];
    const int64_t* idx = typed<int64_t>(index);
    // Each outer slice of x is touched by its own slice of index only: split those (scatter_add
    // stays race-free). An index out of range is skipped and reported after the loop (a loop
    // body must not throw).
    std::atomic<bool> bad{false};
    detail::parallel_for(outer, std::max<int64_t>(1, (1 << 15) / std::max<int64_t>(1, irows * inner)),
                         [&](int64_t o0, int64_t o1) {
      if (index_rows(f, idx, o0, o1, irows, xrows, inner)) bad.store(true, std::memory_order_relaxed);
    });
    if (bad.load())
      for (int64_t k = 0; k < index.numel(); ++k)
        if (idx[k] < 0 || idx[k] >= xrows)
          throw Error(fmt::format("{}: index {} out of range for dim {} of size {}", op, idx[k], dim, xrows));
    return;
  }
  Shape xs = contiguous_strides(x_shape), ist = contiguous_strides(is);
  const int64_t* idx = typed<int64_t>(index);
  const int64_t n = index.numel(), nd = index.dim(), limit = x_shape[size_t(dim)];
  for (int64_t flat = 0; flat < n; ++flat) {
    int64_t rem = flat, xoff = 0;
    for (int64_t d = 0; d < nd; ++d) {
      int64_t c = rem / ist[size_t(d)];
      rem %= ist[size_t(d)];
      if (d == dim) {
        c = idx[flat];
        if (c < 0 || c >= limit)
          throw Error(fmt::format("{}: index {} out of range for dim {} of size {}", op, c, dim, limit));
      }
      xoff += c * xs[size_t(d)];
    }
    f(flat, xoff);
  }
}
void check_gather_shapes(const Shape& x_shape, int64_t dim, const Tensor& index, const char* op) {
  check_index(index, op);
  bool ok = size_t(index.dim()) == x_shape.size() && dim >= 0 && dim < index.dim();
  for (size_t d = 0; ok && d < x_shape.size(); ++d) ok = int64_t(d) == dim || index.shape()[d] <= x_shape[d];
  if (!ok)
    throw Error(fmt::format("{}: index of shape {} does not fit input of shape {} along dim {}", op,
                            shape_str(index.shape()), shape_str(x_shape), dim));
}
}  // namespace

Tensor gather(const Tensor& x, int64_t dim, const Tensor& index) {
  check_gather_shapes(x.shape(), dim, index, "gather");
  Tensor y = detail::make_tensor(index.shape(), x.dtype());
  dispatch(x.dtype(), [&](auto z) {
    using T = decltype(z);
    const T* px = typed<T>(x);
    T* py = typed<T>(y);
    for_index(x.shape(), dim, index, "gather", [px, py](int64_t i, int64_t xo) { py[i] = px[xo]; });
  });
  Shape x_shape = x.shape();
  Tensor idx = index;
  return detail::record("gather", y, {x}, [x_shape, dim, idx](const Tensor& g, const Tensor&, Needs) {
    return Grads{prim::scatter_add(g, x_shape, dim, idx)};
  });
}

Tensor scatter_add(const Tensor& g, const Shape& x_shape, int64_t dim, const Tensor& index) {
  check_gather_shapes(x_shape, dim, index, "scatter_add");
  if (g.shape() != index.shape())
    throw Error(fmt::format("scatter_add: expected a source of shape {}, got {}", shape_str(index.shape()),
                            shape_str(g.shape())));
  Tensor y = zeros(x_shape, g.dtype());
  dispatch(g.dtype(), [&](auto z) {
    using T = decltype(z);
    const T* pg = typed<T>(g);
    T* py = typed<T>(y);
    for_index(x_shape, dim, index, "scatter_add", [pg, py](int64_t i, int64_t xo) { py[xo] += pg[i]; });
  });
  Tensor idx = index;
  return detail::record("scatter_add", y, {g}, [dim, idx](const Tensor& gg, const Tensor&, Needs) {
    return Grads{prim::gather(gg, dim, idx)};
  });
}

namespace {
void check_select(const Shape& x_shape, int64_t dim, const Tensor& index, const char* op) {
  check_index(index, op);
  if (index.dim() != 1 || dim < 0 || dim >= int64_t(x_shape.size()))
    throw Error(fmt::format("{}: expected a 1-D index and a dim of shape {}, got index {} and dim {}", op,
                            shape_str(x_shape), shape_str(index.shape()), dim));
  const int64_t* p = typed<int64_t>(index);
  for (int64_t i = 0; i < index.numel(); ++i)
    if (p[i] < 0 || p[i] >= x_shape[size_t(dim)])
      throw Error(fmt::format("{}: index {} out of range for dim {} of size {}", op, p[i], dim,
                              x_shape[size_t(dim)]));
}
// (outer, rows along dim, inner) view of a contiguous shape.
std::array<int64_t, 3> split_at(const Shape& s, int64_t dim) {
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < dim; ++i) outer *= s[size_t(i)];
  for (size_t i = size_t(dim) + 1; i < s.size(); ++i) inner *= s[i];
  return {outer, s[size_t(dim)], inner};
}
}  // namespace

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  check_select(x.shape(), dim, index, "index_select");
  Shape out_shape = x.shape();
  out_shape[size_t(dim)] = index.numel();
  Tensor y = detail::make_tensor(out_shape, x.dtype());
  // Plain variables, not a structured binding: lambdas capture them (C++17 forbids capturing
  // bindings; clang rejects it).
  const std::array<int64_t, 3> sizes = split_at(x.shape(), dim);
  const int64_t outer = sizes[0], rows = sizes[1], inner = sizes[2];
  const int64_t* p = typed<int64_t>(index);
  const int64_t k = index.numel();
  dispatch(x.dtype(), [&](auto z) {
    using T = decltype(z);
    const T* px = typed<T>(x);
    T* py = typed<T>(y);
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < k; ++i)
        std::memcpy(py + (o * k + i) * inner, px + (o * rows + p[i]) * inner, size_t(inner) * sizeof(T));
  });
  Shape x_shape = x.shape();
  Tensor idx = index;
  return detail::record("index_select", y, {x}, [x_shape, dim, idx](const Tensor& g, const Tensor&, Needs) {
    return Grads{prim::index_add(g, x_shape, dim, idx)};
  });
}

Tensor index_add(const Tensor& g, const Shape& x_shape, int64_t dim, const Tensor& index) {
  check_select(x_shape, dim, index, "index_add");
  Shape g_shape = x_shape;
  g_shape[size_t(dim)] = index.numel();
  if (g.shape() != g_shape)
    throw Error(fmt::format("index_add: expected a source of shape {}, got {}", shape_str(g_shape),
                            shape_str(g.shape())));
  Tensor y = zeros(x_shape, g.dtype());
  const std::array<int64_t, 3> sizes = split_at(x_shape, dim);  // captured below: no binding
  const int64_t outer = sizes[0], rows = sizes[1], inner = sizes[2];
  const int64_t* p = typed<int64_t>(index);
  const int64_t k = index.numel();
  dispatch(g.dtype(), [&](auto z) {
    using T = decltype(z);
    const T* pg = typed<T>(g);
    T* py = typed<T>(y);
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < k; ++i) {
        T* dst = py + (o * rows + p[i]) * inner;
        const T* src = pg + (o * k + i) * inner;
        for (int64_t j = 0; j < inner; ++j) dst[j] += src[j];
      }
  });
  Tensor idx = index;
  return detail::record("index_add", y, {g}, [dim, idx](const Tensor& gg, const Tensor&, Needs) {
    return Grads{prim::index_select(gg, dim, idx)};
  });
}

}  // namespace tg::prim
