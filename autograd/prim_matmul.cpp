// matmul: op(a) @ op(b) through OpenBLAS GEMM (never a broadcast-multiply-sum), and its
// batch-reducing twin matmul_reduce. A 2-D operand of a batched matmul is shared by every batch
// entry without being copied; its gradient is a sum over the batch, which is matmul_reduce
// (one GEMM per entry accumulating into the same output). Each is written in terms of the
// other in the VJPs, so the pair is closed under differentiation.
#include <fmt/format.h>

#include "autograd.hpp"
#include "blas.hpp"
#include "node.hpp"
#include "parallel.hpp"
#include "primitives.hpp"

namespace tg::prim {
namespace {

using blas::gemm;

std::string describe(const Tensor& t, bool trans) {
  return t.defined() ? shape_str(t.shape()) + (trans ? "^T" : "") : "undefined";
}

// The shape bookkeeping shared by both ops: batch entries, the GEMM sizes, each operand's stride
// between batch entries (0 when it is a shared 2-D operand).
struct Plan {
  Shape batch;
  int64_t entries = 1, m = 0, n = 0, k = 0, stride_a = 0, stride_b = 0;
};

Plan plan(const Tensor& a, const Tensor& b, bool ta, bool tb, const char* op, bool allow_shared) {
  if (!a.defined() || !b.defined() || a.dim() < 2 || b.dim() < 2 || a.dtype() != b.dtype())
    throw Error(fmt::format("{}: expected tensors of rank >= 2 and equal dtype, got {} and {}", op, describe(a, ta),
                            describe(b, tb)));
  const bool a_shared = a.dim() == 2 && b.dim() > 2, b_shared = b.dim() == 2 && a.dim() > 2;
  if ((a_shared || b_shared) && !allow_shared)
    throw Error(fmt::format("{}: expected equal batch dims, got {} and {}", op, describe(a, ta), describe(b, tb)));
  if (!a_shared && !b_shared &&
      (a.dim() != b.dim() || !std::equal(a.shape().begin(), a.shape().end() - 2, b.shape().begin())))
    throw Error(fmt::format("{}: batch dims differ: {} and {}", op, describe(a, ta), describe(b, tb)));
  Plan p;
  const Tensor& batched = a_shared ? b : a;
  p.batch.assign(batched.shape().begin(), batched.shape().end() - 2);
  p.entries = shape_numel(p.batch);
  const int64_t ar = a.size(-2), ac = a.size(-1), br = b.size(-2), bc = b.size(-1);
  p.m = ta ? ac : ar;
  p.k = ta ? ar : ac;
  p.n = tb ? br : bc;
  const int64_t kb = tb ? bc : br;
  if (p.k != kb)
    throw Error(fmt::format("{}: inner dimensions differ: {} @ {} ({} vs {})", op, describe(a, ta), describe(b, tb),
                            p.k, kb));
  p.stride_a = a_shared ? 0 : ar * ac;
  p.stride_b = b_shared ? 0 : br * bc;
  return p;
}

// op(x) @ op(y), as a batched matmul or, when the result must be 2-D while both are batched,
// summed over the batch.
Tensor mm_as(const Tensor& x, const Tensor& y, bool tx, bool ty, bool batched_result) {
  if (!batched_result && x.dim() > 2 && y.dim() > 2) return prim::matmul_reduce(x, y, tx, ty);
  return prim::matmul(x, y, tx, ty);
}

// With C = op(A) op(B): dA = G op(B)^T, or op(B) G^T when A was transposed; dB = op(A)^T G,
// or G^T op(A) when B was transposed. No transpose is materialised.
VjpFn matmul_vjp(const Tensor& a, const Tensor& b, bool ta, bool tb) {
  return [a, b, ta, tb](const Tensor& g, const Tensor&, Needs need) {
    Tensor ga, gb;
    const bool a_batched = a.dim() > 2, b_batched = b.dim() > 2;
    if (need[0]) ga = ta ? mm_as(b, g, tb, true, a_batched) : mm_as(g, b, false, !tb, a_batched);
    if (need[1]) gb = tb ? mm_as(g, a, true, ta, b_batched) : mm_as(a, g, !ta, false, b_batched);
    return Grads{ga, gb};
  };
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b, bool ta, bool tb) {
  detail::ensure_blas_core();
  Plan p = plan(a, b, ta, tb, "matmul", true);
  Shape out_shape = p.batch;
  out_shape.push_back(p.m);
  out_shape.push_back(p.n);
  Tensor y = detail::make_tensor(out_shape, a.dtype());
  dispatch(a.dtype(), [&](auto z) {
    using T = decltype(z);
    const T* pa = typed<T>(a);
    const T* pb = typed<T>(b);
    T* py = typed<T>(y);
    if (p.k == 0) {
      std::fill(py, py + y.numel(), T(0));
      return;
    }
    const int64_t lda = a.size(-1), ldb = b.size(-1);
    if (p.entries > 1) {  // batch entries split between the pool's threads (OpenBLAS runs single-threaded)
      detail::parallel_for(p.entries, 1, [&](int64_t e0, int64_t e1) {
        for (int64_t i = e0; i < e1; ++i)
          gemm(ta, tb, p.m, p.n, p.k, pa + i * p.stride_a, lda, pb + i * p.stride_b, ldb, T(0), py + i * p.m * p.n, p.n);
      });
    } else {  // one GEMM: blocks of rows of op(a) (a row offset, or a column offset when transposed)
      // One block per thread: smaller blocks each repack op(b), which cost 14-23% at 2 threads
      // (n = 256-1024) when the pool cut every loop into four chunks per thread.
      const int64_t threads = detail::pool_threads();
      detail::parallel_for(p.m, std::max<int64_t>(32, (p.m + threads - 1) / threads), [&](int64_t r0, int64_t r1) {
        gemm(ta, tb, r1 - r0, p.n, p.k, pa + (ta ? r0 : r0 * lda), lda, pb, ldb, T(0), py + r0 * p.n, p.n);
      });
    }
  });
  return detail::record("matmul", y, {a, b}, matmul_vjp(a, b, ta, tb));
}

Tensor matmul_reduce(const Tensor& a, const Tensor& b, bool ta, bool tb) {
  detail::ensure_blas_core();
  Plan p = plan(a, b, ta, tb, "matmul_reduce", false);
  Tensor y = zeros({p.m, p.n}, a.dtype());
  dispatch(a.dtype(), [&](auto z) {
    using T = decltype(z);
    const T* pa = typed<T>(a);
    const T* pb = typed<T>(b);
    T* py = typed<T>(y);
    if (p.k == 0) return;
    const int64_t lda = a.size(-1), ldb = b.size(-1);
    // Each chunk of the batch accumulates into its own buffer, added in a fixed order
    // (detail::chunked_sum): the result does not depend on timing.
    detail::chunked_sum(p.entries, py, p.m * p.n, [&](int64_t e0, int64_t e1, T* out) {
      for (int64_t i = e0; i < e1; ++i)
        gemm(ta, tb, p.m, p.n, p.k, pa + i * p.stride_a, lda, pb + i * p.stride_b, ldb, T(i > e0 ? 1 : 0), out, p.n);
    });
  });
  return detail::record("matmul_reduce", y, {a, b}, matmul_vjp(a, b, ta, tb));
}

}  // namespace tg::prim
