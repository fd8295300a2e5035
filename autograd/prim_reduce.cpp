// Reduction primitives: sum and amax over any set of dims (keepdim shape), argmax; the scan
// cumsum and argsort along one dim.
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <limits>
#include <numeric>
#include <type_traits>

#include "autograd.hpp"
#include "kernels/loops.hpp"
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

// (outer, size, inner) of a contiguous shape around dim.
std::array<int64_t, 3> around(const Shape& s, int64_t dim) {
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < dim; ++i) outer *= s[size_t(i)];
  for (size_t i = size_t(dim) + 1; i < s.size(); ++i) inner *= s[i];
  return {outer, s[size_t(dim)], inner};
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

// The elements of x grouped by output element of a reduction over dims: kept runs give the
// group's base offset, reduced runs the walk inside a group (adjacent dims of one kind merged;
// the last reduced run is the inner loop).
struct GroupPlan {
  std::vector<int64_t> ksize, kstride, rsize, rstride;
  int64_t groups = 1, count = 1;

  GroupPlan(const Shape& shape, const std::vector<int64_t>& dims) {
    Shape st(shape.size(), 1);
    for (size_t i = shape.size(); i-- > 1;) st[i - 1] = st[i] * shape[i];
    int last = -1;  // kind of the previous non-unit dim: 0 kept, 1 reduced
    for (size_t i = 0; i < shape.size(); ++i) {
      if (shape[i] == 1) continue;
      const bool r = std::find(dims.begin(), dims.end(), int64_t(i)) != dims.end();
      auto& size = r ? rsize : ksize;
      auto& stride = r ? rstride : kstride;
      if (last == int(r) && stride.back() == st[i] * shape[i]) {
        size.back() *= shape[i];
        stride.back() = st[i];
      } else {
        size.push_back(shape[i]);
        stride.push_back(st[i]);
      }
      last = int(r);
      (r ? count : groups) *= shape[i];
    }
  }

  int64_t base(int64_t group) const {
    int64_t off = 0;
    for (size_t d = ksize.size(); d-- > 0;) {
      off += (group % ksize[d]) * kstride[d];
      group /= ksize[d];
    }
    return off;
  }

  // f(offset, n, stride) for each inner run of the group starting at `base`.
  template <typename F>
  void walk(int64_t base, F f) const {
    if (rsize.empty()) {
      f(base, int64_t(1), int64_t(1));
      return;
    }
    const size_t k = rsize.size();
    std::vector<int64_t> idx(k - 1, 0);
    const int64_t n = rsize[k - 1], stride = rstride[k - 1];
    int64_t off = base;
    while (true) {
      f(off, n, stride);
      size_t d = k - 1;
      while (d-- > 0) {
        off += rstride[d];
        if (++idx[d] < rsize[d]) break;
        off -= rstride[d] * rsize[d];
        idx[d] = 0;
      }
      if (d == size_t(-1)) return;
    }
  }
};

}  // namespace

Tensor moments(const Tensor& x, const std::vector<int64_t>& dims) {
  check_dims(x, dims, "moments");
  dispatch_floating(x.dtype(), "moments", [](auto) {});
  Shape ks = keep_shape(x.shape(), dims);
  const GroupPlan plan(x.shape(), dims);
  if (plan.count == 0) throw Error(fmt::format("moments: no elements to reduce in shape {}", shape_str(x.shape())));
  Shape ys{2};
  ys.insert(ys.end(), ks.begin(), ks.end());
  Tensor y = detail::make_tensor(ys, x.dtype());
  dispatch(x.dtype(), [&](auto z) {
    using T = decltype(z);
    const T* px = typed<T>(x);
    T* py = typed<T>(y);
    const int64_t groups = plan.groups;
    const kernels::Loops<T>& loops = kernels::loops<T>();
    detail::parallel_for(groups, std::max<int64_t>(1, (1 << 15) / plan.count), [&](int64_t g0, int64_t g1) {
      for (int64_t gi = g0; gi < g1; ++gi) {
        const int64_t base = plan.base(gi);
        // One pass, in double, about a shift K (the group's first element): the sums of x - K
        // and (x - K)^2 do not cancel catastrophically when |mean| >> std.
        const double shift = double(px[base]);
        double s1 = 0, s2 = 0;
        plan.walk(base, [&](int64_t off, int64_t n, int64_t stride) {
          const T* p = px + off;
          if (stride == 1) {
            loops.shifted_moments(p, n, shift, &s1, &s2);
          } else {
            for (int64_t i = 0; i < n; ++i) {
              const double d = double(p[i * stride]) - shift;
              s1 += d;
              s2 += d * d;
            }
          }
        });
        const double n = double(plan.count), m = s1 / n;
        py[gi] = T(shift + m);
        py[groups + gi] = T(std::max(0.0, s2 / n - m * m));
      }
    });
  });
  const double n = double(plan.count);
  return detail::record("moments", y, {x}, [x, n, ks](const Tensor& g, const Tensor& out, Needs) {
    // d mean/dx = 1/n, d var/dx = 2 (x - mean)/n: dx = x * a + b, a = 2 g_var/n,
    // b = g_mean/n - a mean (one broadcast multiply-add over x).
    auto part = [&ks](const Tensor& t, int64_t i) { return t.narrow(0, i, 1).reshape(ks); };
    Tensor gm = part(g, 0), gv = part(g, 1), mean = part(out, 0);
    Tensor a = gv * (2.0 / n);
    return Grads{prim::fma(x, a, gm * (1.0 / n) - a * mean)};
  }, true);
}

Tensor mul_sum_to(const Tensor& a, const Tensor& b, const Shape& s) {
  if (!a.defined() || !b.defined() || a.shape() != b.shape() || a.dtype() != b.dtype())
    throw Error(fmt::format("mul_sum_to: expected two tensors of one shape and dtype, got {} and {}",
                            a.defined() ? shape_str(a.shape()) : "undefined", b.defined() ? shape_str(b.shape()) : "undefined"));
  const std::vector<int64_t> dims = detail::sum_to_dims(a.shape(), s, "mul_sum_to");
  const GroupPlan plan(a.shape(), dims);
  Tensor y = detail::make_tensor(s, a.dtype());
  dispatch(a.dtype(), [&](auto z) {
    using T = decltype(z);
    const T* pa = typed<T>(a);
    const T* pb = typed<T>(b);
    T* py = typed<T>(y);
    const kernels::Loops<T>& loops = kernels::loops<T>();
    detail::parallel_for(plan.groups, std::max<int64_t>(1, (1 << 15) / std::max<int64_t>(1, plan.count)),
                         [&](int64_t g0, int64_t g1) {
      for (int64_t gi = g0; gi < g1; ++gi) {
        double acc = 0;
        plan.walk(plan.base(gi), [&](int64_t off, int64_t n, int64_t stride) {
          const T *p = pa + off, *q = pb + off;
          if (stride == 1) {
            acc += loops.dot(p, q, n);
          } else {
            for (int64_t i = 0; i < n; ++i) acc += double(p[i * stride]) * double(q[i * stride]);
          }
        });
        py[gi] = T(acc);
      }
    });
  });
  return detail::record("mul_sum_to", y, {a, b}, [a, b](const Tensor& g, const Tensor&, Needs n) {
    // Linear in each factor: the reduced gradient is broadcast back through the other one.
    return Grads{n[0] ? g * b : Tensor(), n[1] ? g * a : Tensor()};
  });
}

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
    // From -inf, not the lowest finite value: a row of -inf has the maximum -inf.
    constexpr T kLowest = std::numeric_limits<T>::has_infinity ? -std::numeric_limits<T>::infinity()
                                                               : std::numeric_limits<T>::lowest();
    reduce<T>(typed<T>(x), typed<T>(y), x.shape(), dims, kLowest, [](T u, T v) { return v > u || v != v ? v : u; });
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

Tensor cumsum(const Tensor& x, int64_t dim, bool reverse) {
  check_dims(x, {dim}, "cumsum");
  Tensor y = detail::make_tensor(x.shape(), x.dtype());
  const std::array<int64_t, 3> split = around(x.shape(), dim);
  const int64_t outer = split[0], r = split[1], inner = split[2];
  dispatch(x.dtype(), [&](auto z) {
    using T = decltype(z);
    // Floating sums accumulate in double, as PyTorch's CPU kernel; int64 ones exactly, in
    // unsigned arithmetic so that an overflow wraps (as PyTorch's) instead of being undefined.
    using A = std::conditional_t<std::is_integral_v<T>, uint64_t, double>;
    const T* px = typed<T>(x);
    T* py = typed<T>(y);
    detail::parallel_for(outer, std::max<int64_t>(1, (1 << 15) / std::max<int64_t>(1, r * inner)),
                         [&](int64_t o0, int64_t o1) {
      std::vector<A> acc(static_cast<size_t>(inner));
      for (int64_t o = o0; o < o1; ++o) {
        std::fill(acc.begin(), acc.end(), A(0));
        for (int64_t s = 0; s < r; ++s) {
          const int64_t off = (o * r + (reverse ? r - 1 - s : s)) * inner;
          for (int64_t j = 0; j < inner; ++j) {
            acc[size_t(j)] += A(px[off + j]);
            py[off + j] = T(acc[size_t(j)]);
          }
        }
      }
    });
  });
  // The adjoint of a prefix sum is the suffix sum of g, and the other way round.
  return detail::record("cumsum", y, {x}, [dim, reverse](const Tensor& g, const Tensor&, Needs) {
    return Grads{prim::cumsum(g, dim, !reverse)};
  });
}

Tensor argsort(const Tensor& x, int64_t dim, bool descending, int64_t k) {
  check_dims(x, {dim}, "argsort");
  const std::array<int64_t, 3> split = around(x.shape(), dim);
  const int64_t outer = split[0], r = split[1], inner = split[2];
  if (k < 0 || k > r)
    throw Error(fmt::format("argsort: expected k in [0, {}] for dim {} of shape {}, got {}", r, dim,
                            shape_str(x.shape()), k));
  Shape ys = x.shape();
  ys[size_t(dim)] = k;
  Tensor y = detail::make_tensor(ys, kInt64);
  dispatch(x.dtype(), [&](auto z) {
    using T = decltype(z);
    const T* px = typed<T>(x);
    int64_t* py = typed<int64_t>(y);
    detail::parallel_for(outer * inner, std::max<int64_t>(1, (1 << 15) / std::max<int64_t>(1, r)),
                         [&](int64_t l0, int64_t l1) {
      std::vector<int64_t> perm(static_cast<size_t>(r));
      for (int64_t l = l0; l < l1; ++l) {
        const T* s = px + (l / inner) * r * inner + l % inner;
        // A strict total order (NaN the largest, ties by index): sort and partial_sort then give
        // what a stable sort gives.
        auto before = [s, inner, descending](int64_t a, int64_t b) {
          const T u = s[a * inner], v = s[b * inner];
          const bool un = u != u, vn = v != v;
          if (un != vn) return descending ? un : vn;
          if (!un && u != v) return descending ? u > v : u < v;
          return a < b;
        };
        std::iota(perm.begin(), perm.end(), int64_t(0));
        if (k < r)
          std::partial_sort(perm.begin(), perm.begin() + k, perm.end(), before);
        else
          std::sort(perm.begin(), perm.end(), before);
        int64_t* out = py + (l / inner) * k * inner + l % inner;
        for (int64_t i = 0; i < k; ++i) out[i * inner] = perm[size_t(i)];
      }
    });
  });
  return y;
}

}  // namespace tg::prim
