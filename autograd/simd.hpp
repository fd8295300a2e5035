#pragma once
// Internal: vectorised transcendental kernels (xsimd), y[i] = f(x[i]) for i < n.
#include <cstdint>

namespace tg::simd {
#define TG_SIMD_DECL(name)                                   \
  void name(const float* x, float* y, int64_t n);           \
  void name(const double* x, double* y, int64_t n);
TG_SIMD_DECL(exp)
TG_SIMD_DECL(log)
TG_SIMD_DECL(sqrt)
TG_SIMD_DECL(tanh)
TG_SIMD_DECL(sigmoid)
TG_SIMD_DECL(sin)
TG_SIMD_DECL(cos)
TG_SIMD_DECL(log1p)
TG_SIMD_DECL(expm1)
#undef TG_SIMD_DECL
}  // namespace tg::simd
