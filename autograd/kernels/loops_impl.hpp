// The memory-bound loops (loops.hpp), written once as plain loops that the compiler vectorises
// with the target flags of the file that includes this one: loops_<level>.cpp defines
//   TG_LOOPS_NS     the namespace of that level's copies (every function gets a name of its own
//                   per level, so the linker never merges a wider copy into another level's code);
//   TG_LOOPS_ISA    the level;
//   TG_LOOPS_TABLE  the name of its tables (TABLE_f32, TABLE_f64, TABLE_i64).
// Reductions keep eight independent double lanes, so they vectorise (a single accumulator is a
// dependency chain).
#include "loops.hpp"

#define TG_LOOPS_CAT2(a, b) a##b
#define TG_LOOPS_CAT(a, b) TG_LOOPS_CAT2(a, b)

namespace tg::kernels::TG_LOOPS_NS {
namespace {

template <typename T>
void shifted_moments(const T* __restrict x, int64_t n, double shift, double* s1, double* s2) {
  double a1[8] = {}, a2[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) {
      const double d = double(x[i + j]) - shift;
      a1[j] += d;
      a2[j] += d * d;
    }
  for (; i < n; ++i) {
    const double d = double(x[i]) - shift;
    a1[0] += d;
    a2[0] += d * d;
  }
  double t1 = 0, t2 = 0;
  for (int j = 0; j < 8; ++j) {
    t1 += a1[j];
    t2 += a2[j];
  }
  *s1 += t1;
  *s2 += t2;
}

template <typename T>
double dot(const T* __restrict a, const T* __restrict b, int64_t n) {
  double part[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) part[j] += double(a[i + j]) * double(b[i + j]);
  for (; i < n; ++i) part[0] += double(a[i]) * double(b[i]);
  double t = 0;
  for (int j = 0; j < 8; ++j) t += part[j];
  return t;
}

template <typename T>
double sum(const T* __restrict a, int64_t n) {
  double part[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) part[j] += double(a[i + j]);
  for (; i < n; ++i) part[0] += double(a[i]);
  double t = 0;
  for (int j = 0; j < 8; ++j) t += part[j];
  return t;
}

template <typename T>
void scale_shift(const T* __restrict x, T s, T t, T* __restrict y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * s + t;
}

template <typename T>
void scale_shift_relu(const T* __restrict x, T s, T t, T* __restrict y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const T v = x[i] * s + t;
    y[i] = v > T(0) || v != v ? v : T(0);
  }
}

template <typename T>
void relu(const T* __restrict x, T* __restrict y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = !(x[i] <= T(0)) ? x[i] : T(0);  // NaN stays NaN, as PyTorch
}

template <typename T>
void relu_backward(const T* __restrict g, const T* __restrict x, T* __restrict y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = !(x[i] <= T(0)) ? g[i] : T(0);  // NaN passes g, as PyTorch
}

// Branch-free (the maximum of random data would mispredict half of its branches); the first
// maximum wins and a NaN wins, as PyTorch's max_pool. No __restrict on the current and best
// arrays: they may be one array.
template <typename T, bool kXi, bool kCi>
void running_max_at(const T* __restrict x, const int32_t* __restrict xi, int64_t off, int64_t n, const T* cv,
                    const int32_t* ci, T* bv, int32_t* bi) {
#pragma GCC ivdep
  for (int64_t f = 0; f < n; ++f) {
    const T v = x[f + off], c = cv[f];
    const int32_t iv = kXi ? xi[f + off] : int32_t(f + off), ic = kCi ? ci[f] : int32_t(f);
    const bool take = (v > c) | (v != v);
    bv[f] = take ? v : c;
    bi[f] = take ? iv : ic;
  }
}

template <typename T>
void running_max(const T* x, const int32_t* xi, int64_t off, int64_t n, const T* cv, const int32_t* ci, T* bv,
                 int32_t* bi) {
  if (xi && ci) return running_max_at<T, true, true>(x, xi, off, n, cv, ci, bv, bi);
  if (xi) return running_max_at<T, true, false>(x, xi, off, n, cv, ci, bv, bi);
  if (ci) return running_max_at<T, false, true>(x, xi, off, n, cv, ci, bv, bi);
  running_max_at<T, false, false>(x, xi, off, n, cv, ci, bv, bi);
}

template <typename T, typename I, int S>
void row_max_at(const T* __restrict x, int64_t stride, int64_t lo, int64_t hi, int64_t base, T* __restrict bv,
                I* __restrict bi) {
  const int64_t s = S ? S : stride;  // a constant stride lets the loads vectorise as shuffles
  for (int64_t o = lo; o < hi; ++o) {
    const T v = x[o * s];
    const bool take = (v > bv[o]) | (v != v);
    bv[o] = take ? v : bv[o];
    bi[o] = take ? I(base + o * s) : bi[o];
  }
}

template <typename T, typename I>
void row_max(const T* x, int64_t stride, int64_t lo, int64_t hi, int64_t base, T* bv, I* bi) {
  if (stride == 1) return row_max_at<T, I, 1>(x, 1, lo, hi, base, bv, bi);
  if (stride == 2) return row_max_at<T, I, 2>(x, 2, lo, hi, base, bv, bi);
  row_max_at<T, I, 0>(x, stride, lo, hi, base, bv, bi);
}

template <typename T>
constexpr Loops<T> table() {
  return Loops<T>{TG_LOOPS_ISA,      &shifted_moments<T>, &dot<T>,           &sum<T>,        &scale_shift<T>,
                  &scale_shift_relu<T>, &relu<T>,          &relu_backward<T>, &running_max<T>, &row_max<T, int32_t>, &row_max<T, int64_t>};
}

}  // namespace
}  // namespace tg::kernels::TG_LOOPS_NS

namespace tg::kernels {
extern const Loops<float> TG_LOOPS_CAT(TG_LOOPS_TABLE, _f32);
extern const Loops<double> TG_LOOPS_CAT(TG_LOOPS_TABLE, _f64);
extern const Loops<int64_t> TG_LOOPS_CAT(TG_LOOPS_TABLE, _i64);
const Loops<float> TG_LOOPS_CAT(TG_LOOPS_TABLE, _f32) = TG_LOOPS_NS::table<float>();
const Loops<double> TG_LOOPS_CAT(TG_LOOPS_TABLE, _f64) = TG_LOOPS_NS::table<double>();
const Loops<int64_t> TG_LOOPS_CAT(TG_LOOPS_TABLE, _i64) = TG_LOOPS_NS::table<int64_t>();
}  // namespace tg::kernels
