// Reduction primitives: sum and amax over any set of dims (keepdim shape), argmax.
#include <fmt/format.h>

#include <algorithm>
#include <limits>

#include "autograd.hpp"
#include "node.hpp"
#include "parallel.hpp"
#include "primitives.hpp"

namespace tg::prim {
namespace {

void check_dims(const Tensor& x, const std::vector<int64_t>& dims, const char* op) {
  if (!x.defined()) throw Error(fmt::format("{}: got an undefined tensor", op));
  for (size_t i = 0; i < dims.size(); ++i)
    if (dims[i] < 0 || dims[i] >= x.dim() || (i > 0 && dims[i] <= dims[i - 1]))
      throw Error(fmt::format("{}: expected sorted unique dims in [0, {}), got [{}] for shape {}", op, x.dim(),
                              fmt::join(dims, ", "), shape_str(x.shape())));
}

Shape keep_shape(const Shape& s, const std::vector<int64_t>& dims) {
  Shape out = s;
  for (int64_t d : dims) out[size_t(d)] = 1;
  return out;
}

// Reduces x over dims with a binary op `f` starting from `init`. Adjacent dims of the same kind
// (reduced / kept) are merged, then each reduced run is folded as (outer, r, inner).
template <typename T, typename F>
void reduce(const T* x, T* y, const Shape& shape, const std::vector<int64_t>& dims, T init, F f) {
  // Build the merged list of (size, reduced) runs.
  std::vector<std::pair<int64_t, bool>> runs;
  for (size_t i = 0; i < shape.size(); ++i) {
    bool r = std::find(dims.begin(), dims.end(), int64_t(i)) != dims.end();
    if (!runs.empty() && runs.back().second == r)
      runs.back().first *= shape[i];
    else
      runs.emplace_back(shape[i], r);
  }
  std::vector<T> a, b;
  const T* cur = x;
  // Fold the runs from the last: each reduced run collapses to size 1.
  for (size_t k = runs.size(); k-- > 0;) {
    if (!runs[k].second) continue;
    int64_t inner = 1, outer = 1;
    for (size_t j = k + 1; j < runs.size(); ++j) inner *= runs[j].first;
    for (size_t j = 0; j < k; ++j) outer *= runs[j].first;
    const int64_t r = runs[k].first;
    b.assign(size_t(outer * inner), init);
    detail::parallel_for(outer, std::max<int64_t>(1, (1 << 15) / std::max<int64_t>(1, r * inner)),
                         [&](int64_t o0, int64_t o1) {
    for (int64_t o = o0; o < o1; ++o) {
      const T* src = cur + o * r * inner;
      T* dst = b.data() + o * inner;
      if (inner == 1) {
        T acc[8];
        for (auto& v : acc) v = init;
        int64_t i = 0;
        for (; i + 8 <= r; i += 8)
          for (int j = 0; j < 8; ++j) acc[j] = f(acc[j], src[i + j]);
        T s = init;
        for (int j = 0; j < 8; ++j) s = f(s, acc[j]);
        for (; i < r; ++i) s = f(s, src[i]);
        dst[0] = s;
      } else {
        for (int64_t i = 0; i < r; ++i)
          for (int64_t j = 0; j < inner; ++j) dst[j] = f(dst[j], src[i * inner + j]);
      }
    }
    });
    runs[k].first = 1;
    a.swap(b);
    cur = a.data();
  }
  std::copy(cur, cur + shape_numel(keep_shape(shape, dims)), y);
}

}  // namespace

Tensor sum(const Tensor& x, const std::vector<int64_t>& dims) {
  check_dims(x, dims, "sum");
  Tensor y = detail::make_tensor(keep_shape(x.shape(), dims), x.dtype());
  dispatch(x.dtype(), [&](auto z) {
    using T = decltype(z);
    reduce<T>(typed<T>(x), typed<T>(y), x.shape(), dims, T(0), [](T u, T v) { return u + v; });
  });
  Shape in_shape = x.shape();
  return detail::record("sum", y, {x}, [in_shape](const Tensor& g, const Tensor&, Needs) {
    return Grads{tg::expand(g, in_shape)};
  });
}

Tensor amax(const Tensor& x, const std::vector<int64_t>& dims) {
  check_dims(x, dims, "max");
  for (int64_t d : dims)
    if (x.size(d) == 0)
      throw Error(fmt::format("max: cannot reduce over dim {} of size 0 (shape {})", d, shape_str(x.shape())));
  Tensor y = detail::make_tensor(keep_shape(x.shape(), dims), x.dtype());
  dispatch(x.dtype(), [&](auto z) {
    using T = decltype(z);
    reduce<T>(typed<T>(x), typed<T>(y), x.shape(), dims, std::numeric_limits<T>::lowest(),
              [](T u, T v) { return v > u || v != v ? v : u; });
  });
  return detail::record("max", y, {x}, [x, dims](const Tensor& g, const Tensor& out, Needs) {
    // The gradient is shared equally among the elements equal to the maximum.
    Tensor mask = eq(x, tg::expand(out.detach(), x.shape()));
    Tensor count = prim::sum(mask, dims);
    return Grads{mask * tg::expand(g / count, x.shape())};
  }, true);
}

Tensor argmax(const Tensor& x, int64_t dim) {
  check_dims(x, {dim}, "argmax");
  if (x.size(dim) == 0) throw Error(fmt::format("argmax: dim {} has size 0 (shape {})", dim, shape_str(x.shape())));
  Tensor y = detail::make_tensor(keep_shape(x.shape(), {dim}), kInt64);
  int64_t outer = 1, inner = 1, r = x.size(dim);
  for (int64_t i = 0; i < dim; ++i) outer *= x.size(i);
  for (int64_t i = dim + 1; i < x.dim(); ++i) inner *= x.size(i);
  dispatch(x.dtype(), [&](auto z) {
    using T = decltype(z);
    const T* p = typed<T>(x);
    int64_t* q = typed<int64_t>(y);
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t j = 0; j < inner; ++j) {
        const T* s = p + o * r * inner + j;
        int64_t best = 0;
        for (int64_t i = 1; i < r; ++i)
          if (s[i * inner] > s[best * inner]) best = i;
        q[o * inner + j] = best;
      }
  });
  return y;
}

}  // namespace tg::prim
