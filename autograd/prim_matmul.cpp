// matmul: op(a) @ op(b) over equal batch dims through OpenBLAS GEMM (never a broadcast-multiply-sum).
#include <fmt/format.h>

#include <cblas.h>

#include "autograd.hpp"
#include "node.hpp"
#include "primitives.hpp"

namespace tg::prim {
namespace {

void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
          int64_t ldb, float* c) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, int(m), int(n), int(k),
              1.0f, a, int(lda), b, int(ldb), 0.0f, c, int(n));
}
void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const double* a, int64_t lda, const double* b,
          int64_t ldb, double* c) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, int(m), int(n), int(k),
              1.0, a, int(lda), b, int(ldb), 0.0, c, int(n));
}
void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const int64_t* a, int64_t lda, const int64_t* b,
          int64_t ldb, int64_t* c) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      int64_t s = 0;
      for (int64_t p = 0; p < k; ++p) s += (ta ? a[p * lda + i] : a[i * lda + p]) * (tb ? b[j * ldb + p] : b[p * ldb + j]);
      c[i * n + j] = s;
    }
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b, bool ta, bool tb) {
  if (!a.defined() || !b.defined() || a.dim() < 2 || a.dim() != b.dim() || a.dtype() != b.dtype())
    throw Error(fmt::format("matmul: expected two tensors of equal rank >= 2 and dtype, got {} and {}",
                            a.defined() ? shape_str(a.shape()) : "undefined",
                            b.defined() ? shape_str(b.shape()) : "undefined"));
  const int64_t nd = a.dim();
  for (int64_t i = 0; i < nd - 2; ++i)
    if (a.size(i) != b.size(i))
      throw Error(fmt::format("matmul: batch dims differ: {} and {}", shape_str(a.shape()), shape_str(b.shape())));
  const int64_t ar = a.size(-2), ac = a.size(-1), br = b.size(-2), bc = b.size(-1);
  const int64_t m = ta ? ac : ar, k = ta ? ar : ac, kb = tb ? bc : br, n = tb ? br : bc;
  if (k != kb)
    throw Error(fmt::format("matmul: inner dimensions differ: {}{} @ {}{} ({} vs {})", shape_str(a.shape()),
                            ta ? "^T" : "", shape_str(b.shape()), tb ? "^T" : "", k, kb));
  Shape out_shape(a.shape().begin(), a.shape().end() - 2);
  out_shape.push_back(m);
  out_shape.push_back(n);
  Tensor y = detail::make_tensor(out_shape, a.dtype());
  const int64_t batch = shape_numel(Shape(a.shape().begin(), a.shape().end() - 2));
  dispatch(a.dtype(), [&](auto z) {
    using T = decltype(z);
    const T* pa = typed<T>(a);
    const T* pb = typed<T>(b);
    T* py = typed<T>(y);
    if (k == 0) {
      std::fill(py, py + y.numel(), T(0));
      return;
    }
    for (int64_t i = 0; i < batch; ++i)
      gemm(ta, tb, m, n, k, pa + i * ar * ac, ac, pb + i * br * bc, bc, py + i * m * n);
  });
  return detail::record("matmul", y, {a, b}, [a, b, ta, tb](const Tensor& g, const Tensor&, Needs need) {
    Tensor ga, gb;
    if (need[0]) ga = ta ? prim::matmul(b, g, tb, true) : prim::matmul(g, b, false, !tb);
    if (need[1]) gb = tb ? prim::matmul(g, a, true, ta) : prim::matmul(a, g, !ta, false);
    return Grads{ga, gb};
  });
}

}  // namespace tg::prim
