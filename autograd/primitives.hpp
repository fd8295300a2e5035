#pragma once
/// The closed set of primitives. Each is one function in autograd/prim_*.cpp that validates its
/// inputs, computes the forward, and records its VJP beside it, written with differentiable ops
/// (so create_graph gives second derivatives). Everything else in tapegrad (broadcasting,
/// mean, softmax, convolution, pooling, norms, losses) is composed from these.
///
/// Binary primitives take equal dtypes and NumPy-broadcastable shapes: a broadcast operand is
/// read through a zero stride (a virtual expand, never copied), and its gradient is reduced with
/// sum_to, expand's VJP: still the one place a gradient is reduced to a shape.
/// Adding a primitive needs a reason in docs/design.md.
#include <vector>

#include "tensor.hpp"

namespace tg::prim {

// ---- elementwise unary (prim_elementwise.cpp) ----
Tensor neg(const Tensor& x);                    // -g
Tensor exp(const Tensor& x);                    // g * out
Tensor log(const Tensor& x);                    // g / x
Tensor sqrt(const Tensor& x);                   // g / (2 out)
Tensor abs(const Tensor& x);                    // g * sign(x)
Tensor tanh(const Tensor& x);                   // g * (1 - out^2)
Tensor sigmoid(const Tensor& x);                // g * out * (1 - out)
Tensor relu(const Tensor& x);                   // relu_backward(g, x)
Tensor relu_backward(const Tensor& g, const Tensor& x);  // g * [x > 0] in one pass; VJP: itself in g
Tensor erf(const Tensor& x);                    // g * 2/sqrt(pi) * exp(-x^2); exact GELU needs it
Tensor pow_scalar(const Tensor& x, double p);   // g * p * x^(p-1)
Tensor mul_scalar(const Tensor& x, double c);   // x * c, c in x's dtype: mul_scalar(g, c)
Tensor add_scalar(const Tensor& x, double c);   // x + c, c in x's dtype: g
Tensor cast(const Tensor& x, Dtype d);          // cast(g, x.dtype)
Tensor sin(const Tensor& x);                    // g * cos(x)
Tensor cos(const Tensor& x);                    // -g * sin(x)
Tensor log1p(const Tensor& x);                  // g / (1 + x); log(1 + x) loses the digits of a small x
Tensor expm1(const Tensor& x);                  // g * (out + 1); exp(x) - 1 loses the digits of a small x
/// Step functions: floor, ceil, round (half to even) and sign, of any dtype. Their derivative
/// is 0 wherever it exists, and PyTorch's gradient is zeros_like(g) (also at the jumps).
enum class StepFn { Floor, Ceil, Round, Sign };
Tensor step(const Tensor& x, StepFn f);         // zeros_like(g)

// ---- elementwise binary with broadcasting (prim_elementwise.cpp); g reduced by sum_to ----
Tensor add(const Tensor& a, const Tensor& b);      // g, g
Tensor sub(const Tensor& a, const Tensor& b);      // g, -g
Tensor mul(const Tensor& a, const Tensor& b);      // g b, g a
Tensor div(const Tensor& a, const Tensor& b);      // g / b, -g a / b^2
Tensor pow(const Tensor& a, const Tensor& b);      // g b a^(b-1), g out log(a)
Tensor maximum(const Tensor& a, const Tensor& b);  // g [a > b] + g/2 [a == b], and the mirror
Tensor minimum(const Tensor& a, const Tensor& b);
Tensor atan2(const Tensor& a, const Tensor& b);    // g b / (a^2 + b^2), -g a / (a^2 + b^2)
/// x * a + b in one pass, a and b of one shape broadcast against x (a per-channel scale and
/// shift): g a, mul_sum_to(g, x), sum_to(g).
Tensor fma(const Tensor& x, const Tensor& a, const Tensor& b);

// ---- comparisons and selection (no gradient to comparisons or to the condition) ----
enum class Cmp { Eq, Ne, Lt, Le, Gt, Ge };
Tensor compare(const Tensor& a, const Tensor& b, Cmp op);          // 0/1 in a's dtype
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);  // where(c, g, 0), where(c, 0, g)

// ---- reductions over dims (prim_reduce.cpp); sorted unique non-negative dims, keepdim shape out ----
Tensor sum(const Tensor& x, const std::vector<int64_t>& dims);   // expand(g, x.shape)
Tensor amax(const Tensor& x, const std::vector<int64_t>& dims);  // g spread equally over the maxima
Tensor argmax(const Tensor& x, int64_t dim);                     // int64, keepdim shape; no gradient
/// [2, *keepdim shape]: the mean and the biased variance over dims, in one pass (shifted, in
/// double). Normalisation layers need both; VJP: x * (2 g_var / n) + (g_mean / n - 2 g_var mean / n).
Tensor moments(const Tensor& x, const std::vector<int64_t>& dims);
/// sum_to(a * b, s) for a and b of one shape, in one pass without the product: the gradient of a
/// broadcast factor of mul. VJP: g * b, g * a.
Tensor mul_sum_to(const Tensor& a, const Tensor& b, const Shape& s);
/// Inclusive prefix sums along dim, or suffix sums when reverse: each is the other's VJP.
Tensor cumsum(const Tensor& x, int64_t dim, bool reverse);   // cumsum(g, dim, !reverse)
/// The first k entries (k <= x.size(dim)) of the permutation that sorts x along dim, ascending or
/// descending; ties keep index order, NaN counts as the largest. int64 [..., k, ...]; no gradient.
Tensor argsort(const Tensor& x, int64_t dim, bool descending, int64_t k);

// ---- movement (prim_movement.cpp) ----
Tensor reshape(const Tensor& x, const Shape& s);             // reshape(g, x.shape); shares storage
Tensor permute(const Tensor& x, const std::vector<int64_t>& perm);  // permute(g, inverse)
Tensor expand(const Tensor& x, const Shape& s);              // sum_to(g, x.shape); x.dim() == s.size()
Tensor sum_to(const Tensor& g, const Shape& s);              // adjoint of expand (sum + reshape)
Tensor pad(const Tensor& x, const std::vector<int64_t>& before, const std::vector<int64_t>& after,
           double value);                                    // slice of g
Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step);  // slice_backward
Tensor slice_backward(const Tensor& g, const Shape& in_shape, int64_t dim, int64_t start, int64_t step);  // slice
Tensor cat(const std::vector<Tensor>& xs, int64_t dim);      // slices of g
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);  // scatter_add(g)
Tensor scatter_add(const Tensor& g, const Shape& x_shape, int64_t dim, const Tensor& index);  // gather
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);  // index_add(g)
Tensor index_add(const Tensor& g, const Shape& x_shape, int64_t dim, const Tensor& index);  // index_select

// ---- matmul (prim_matmul.cpp); op = transpose when its flag is set ----
/// op(a) @ op(b) over equal batch dims; a 2-D operand is shared by every batch entry (no copy).
Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b);
/// sum over the batch of op(a_i) @ op(b_i): the gradient of a shared operand. Each of the pair
/// is differentiated with the other.
Tensor matmul_reduce(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b);

// ---- windows (prim_window.cpp): im2col and its adjoint col2im ----
Tensor unfold(const Tensor& x, const WindowOptions& o);                          // fold(g)
Tensor fold(const Tensor& cols, const Shape& output_size, const WindowOptions& o);  // unfold(g)

/// For each window (out_size windows per spatial dim, starting at -padding; ceil_mode's extra
/// windows allowed), the flat index into x's spatial plane of its maximum: int64 [N, C, L], no
/// gradient. max pooling is this + gather, so its backward is one scatter into x's shape.
Tensor window_argmax(const Tensor& x, const WindowOptions& o, const Shape& out_size);

// ---- convolution (prim_conv.cpp): unfold + matmul fused per sample; each is another's VJP ----
/// x [N, C, *in], w [O, C/groups, *kernel], optional bias b [O] -> [N, O, *out]:
/// y[n] = W @ unfold(x[n]) + b per group (o: stride, padding, dilation; kernel from w).
/// conv_input_grad(g, w), conv_weight_grad(g, x), sum of g over N and positions.
Tensor conv(const Tensor& x, const Tensor& w, const Tensor& b, const WindowOptions& o, int64_t groups);
/// The adjoint of conv in x: fold(W^T @ g[n]). conv(gg, w), conv_weight_grad(g, gg).
Tensor conv_input_grad(const Tensor& g, const Tensor& w, const Shape& x_shape, const WindowOptions& o,
                       int64_t groups);
/// The adjoint of conv in W: sum_n g[n] @ unfold(x[n])^T. conv(x, gg), conv_input_grad(g, gg).
Tensor conv_weight_grad(const Tensor& g, const Tensor& x, const Shape& w_shape, const WindowOptions& o,
                        int64_t groups);

// ---- fused primitives: one pass where a composite of the above takes several; each is tested
// equal to its composite in values, gradients and second derivatives (tests/test_fused.cpp) ----
/// gather(x.reshape([N, C, -1]), 2, window_argmax(x, o, out_size)) in one pass: each window's
/// maximum, [N, C, L]; *indices (when given) gets the window_argmax. VJP: scatter_add of g at
/// the indices into x's planes.
Tensor window_max(const Tensor& x, const WindowOptions& o, const Shape& out_size, Tensor* indices = nullptr);
/// relu(fma(x, a, b)) in one pass: a normalisation followed by ReLU. VJP: fma's, of
/// relu_backward(g, out).
Tensor fma_relu(const Tensor& x, const Tensor& a, const Tensor& b);

}  // namespace tg::prim
