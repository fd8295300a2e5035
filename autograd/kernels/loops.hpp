#pragma once
// Internal: the inner loops of the memory-bound primitives (normalisation statistics and
// scale-and-shift, products reduced to a shape, ReLU and its VJP, max pooling's running maximum),
// written once as plain loops over contiguous runs (loops_impl.hpp) and compiled per
// instruction-set level like the convolution kernels (kernels/isa.hpp). A primitive keeps its
// validation, its walk over the tensor's runs, its threading and its recording; it calls these
// on each run.
#include <cstdint>

#include "isa.hpp"

namespace tg::kernels {

/// One level's loops for one element type T (float, double or int64_t; the NaN cases are the
/// floating types').
template <typename T>
struct Loops {
  Isa isa;
  /// s1 += sum (x[i] - shift), s2 += sum (x[i] - shift)^2 over n values, in double.
  void (*shifted_moments)(const T* x, int64_t n, double shift, double* s1, double* s2);
  /// sum a[i] * b[i] over n values, in double.
  double (*dot)(const T* a, const T* b, int64_t n);
  /// sum a[i] over n values, in double.
  double (*sum)(const T* a, int64_t n);
  /// y[i] = x[i] * s + t.
  void (*scale_shift)(const T* x, T s, T t, T* y, int64_t n);
  /// y[i] = max(x[i] * s + t, 0) (NaN stays NaN, as relu).
  void (*scale_shift_relu)(const T* x, T s, T t, T* y, int64_t n);
  /// y[i] = x[i] > 0 ? x[i] : 0, NaN stays NaN (PyTorch's relu).
  void (*relu)(const T* x, T* y, int64_t n);
  /// y[i] = x[i] <= 0 ? 0 : g[i]: a NaN passes g (PyTorch's threshold_backward).
  void (*relu_backward)(const T* g, const T* x, T* y, int64_t n);
  /// Running maximum of max pooling, along one axis of a plane taken as one flat array: for f < n,
  /// the candidate at f + off (value x[f + off], index xi[f + off], or f + off itself when xi is
  /// null) against the current (cv[f], ci[f], or f itself when ci is null): the larger, or the NaN,
  /// the current one on ties, lands in (bv[f], bi[f]), which may be (cv, ci) themselves.
  void (*running_max)(const T* x, const int32_t* xi, int64_t off, int64_t n, const T* cv, const int32_t* ci, T* bv,
                      int32_t* bi);
  /// One kernel offset over a row of max-pooling windows: window o in [lo, hi) reads x[o * stride],
  /// at index base + o * stride of its plane, and takes it as (bv[o], bi[o]) when larger or NaN.
  void (*row_max)(const T* x, int64_t stride, int64_t lo, int64_t hi, int64_t base, T* bv, int32_t* bi);
  /// The same with 64-bit indices (planes of more than 2^31 elements).
  void (*row_max_i64)(const T* x, int64_t stride, int64_t lo, int64_t hi, int64_t base, T* bv, int64_t* bi);
};

/// The loops of the active level (active_isa()).
template <typename T>
const Loops<T>& loops();

/// The loops of a given level (tests).
template <typename T>
const Loops<T>& loops_for(Isa isa);

}  // namespace tg::kernels
