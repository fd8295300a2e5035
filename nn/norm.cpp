// Normalisation layers, composed from reductions and elementwise ops.
#include <fmt/format.h>

#include <tuple>
#include <utility>

#include "../autograd/autograd.hpp"
#include "../autograd/checkpoint.hpp"
#include "../autograd/primitives.hpp"
#include "functional.hpp"

namespace tg::nn::functional {
namespace {

// [1, C, 1, ...] so a per-channel vector broadcasts against x [N, C, *].
Shape channel_shape(const Tensor& x) {
  Shape s(size_t(x.dim()), 1);
  s[1] = x.size(1);
  return s;
}

void check_channel_vector(const Tensor& t, int64_t c, const char* op, const char* what) {
  if (t.defined() && (t.dim() != 1 || t.size(0) != c))
    throw Error(fmt::format("{}: {} expects shape [{}], got {}", op, what, c, shape_str(t.shape())));
}

// The mean and the biased variance of x over dims (one pass, prim::moments), each of shape ks.
std::pair<Tensor, Tensor> mean_var(const Tensor& x, const std::vector<int64_t>& dims, const Shape& ks) {
  Tensor m = prim::moments(x, dims);
  return {m.narrow(0, 0, 1).reshape(ks), m.narrow(0, 1, 1).reshape(ks)};
}

}  // namespace

namespace {

// batch_norm, followed by ReLU in the same pass when `relu` (prim::fma_relu).
Tensor batch_norm_impl(const Tensor& x, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight,
                       const Tensor& bias, bool training, double momentum, double eps, bool relu) {
  const char* op = "batch_norm";
  auto apply = [relu](const Tensor& v, const Tensor& scale, const Tensor& shift) {
    return relu ? prim::fma_relu(v, scale, shift) : prim::fma(v, scale, shift);
  };
  if (!x.defined() || x.dim() < 2)
    throw Error(fmt::format("batch_norm: expected input [N, C, *], got {}", x.defined() ? shape_str(x.shape()) : "undefined"));
  const int64_t c = x.size(1);
  check_channel_vector(weight, c, op, "weight");
  check_channel_vector(bias, c, op, "bias");
  check_channel_vector(running_mean, c, op, "running_mean");
  check_channel_vector(running_var, c, op, "running_var");
  const Shape cs = channel_shape(x);
  std::vector<int64_t> dims{0};
  for (int64_t d = 2; d < x.dim(); ++d) dims.push_back(d);
  if (!training) {
    if (!running_mean.defined() || !running_var.defined())
      throw Error("batch_norm: evaluation mode needs running_mean and running_var");
    Tensor inv = 1.0 / tg::sqrt(running_var.to(x.dtype()) + eps);
    Tensor scale = weight.defined() ? inv * weight : inv;
    Tensor shift = -running_mean.to(x.dtype()) * scale;
    if (bias.defined()) shift = shift + bias;
    return apply(x, scale.reshape(cs), shift.reshape(cs));
  }
  const int64_t count = x.numel() / c;
  if (count <= 1)
    throw Error(fmt::format("batch_norm: expected more than 1 value per channel when training, got input {}",
                            shape_str(x.shape())));
  // Mean and biased variance in one pass (prim::moments), then everything per channel folds
  // into one scale and one shift: the full-size tensor is read once for the statistics and once
  // for x * scale + shift, and the backward pass is as short (see docs/design.md).
  Tensor mean, var;
  std::tie(mean, var) = mean_var(x, dims, cs);
  Tensor scale = 1.0 / tg::sqrt(var + eps);
  if (weight.defined()) scale = scale * weight.reshape(cs);
  // Not again when tg::checkpoint re-runs the forward in backward: once per forward pass.
  if (running_mean.defined() && running_var.defined() && !autograd::in_checkpoint_recompute()) {
    NoGradGuard no_grad;
    Tensor m = mean.detach().reshape({c}).to(running_mean.dtype());
    Tensor v = (var.detach().reshape({c}) * (double(count) / double(count - 1))).to(running_var.dtype());
    Tensor rm = running_mean, rv = running_var;
    rm.mul_(1.0 - momentum).add_(m, momentum);
    rv.mul_(1.0 - momentum).add_(v, momentum);
  }
  Tensor shift = -mean * scale;
  if (bias.defined()) shift = shift + bias.reshape(cs);
  return apply(x, scale, shift);
}

}  // namespace

Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight,
                  const Tensor& bias, bool training, double momentum, double eps) {
  return batch_norm_impl(x, running_mean, running_var, weight, bias, training, momentum, eps, false);
}

namespace detail {
Tensor batch_norm_relu(const Tensor& x, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight,
                       const Tensor& bias, bool training, double momentum, double eps) {
  return batch_norm_impl(x, running_mean, running_var, weight, bias, training, momentum, eps, true);
}
}  // namespace detail

Tensor group_norm(const Tensor& x, int64_t groups, const Tensor& weight, const Tensor& bias, double eps) {
  const char* op = "group_norm";
  if (!x.defined() || x.dim() < 2)
    throw Error(fmt::format("group_norm: expected input [N, C, *], got {}", x.defined() ? shape_str(x.shape()) : "undefined"));
  const int64_t c = x.size(1);
  if (groups < 1 || c % groups != 0)
    throw Error(fmt::format("group_norm: {} channels (input {}) are not divisible into {} groups", c,
                            shape_str(x.shape()), groups));
  check_channel_vector(weight, c, op, "weight");
  check_channel_vector(bias, c, op, "bias");
  // Statistics per (sample, group); the weight and bias per channel fold with them into one
  // scale and shift per (sample, channel), so x is touched by one multiply and one add.
  const int64_t n = x.size(0);
  Tensor mean, var;
  std::tie(mean, var) = mean_var(x.reshape({n, groups, -1}), {2}, {n, groups, 1});
  Tensor rstd = 1.0 / tg::sqrt(var + eps);  // [N, G, 1]
  Shape nc(size_t(x.dim()), 1);
  nc[0] = n;
  nc[1] = c;
  Tensor scale = weight.defined() ? rstd * weight.reshape({1, groups, c / groups}) : rstd.expand({n, groups, c / groups});
  Tensor shift = -mean * scale;
  if (bias.defined()) shift = shift + bias.reshape({1, groups, c / groups});
  return prim::fma(x, scale.reshape(nc), shift.reshape(nc));
}

Tensor instance_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps) {
  if (!x.defined() || x.dim() < 3)
    throw Error(fmt::format("instance_norm: expected input [N, C, *spatial], got {}",
                            x.defined() ? shape_str(x.shape()) : "undefined"));
  return group_norm(x, x.size(1), weight, bias, eps);
}

Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight, const Tensor& bias,
                  double eps) {
  const int64_t k = int64_t(normalized_shape.size());
  bool ok = x.defined() && k >= 1 && x.dim() >= k &&
            std::equal(normalized_shape.begin(), normalized_shape.end(), x.shape().end() - k);
  if (!ok)
    throw Error(fmt::format("layer_norm: expected input whose last dims are {}, got {}", shape_str(normalized_shape),
                            x.defined() ? shape_str(x.shape()) : "undefined"));
  for (const Tensor* t : {&weight, &bias})
    if (t->defined() && t->shape() != normalized_shape)
      throw Error(fmt::format("layer_norm: weight and bias expect shape {}, got {}", shape_str(normalized_shape),
                              shape_str(t->shape())));
  std::vector<int64_t> dims;
  for (int64_t d = x.dim() - k; d < x.dim(); ++d) dims.push_back(d);
  Shape ks = x.shape();
  for (int64_t d : dims) ks[size_t(d)] = 1;
  Tensor mean, var;
  std::tie(mean, var) = mean_var(x, dims, ks);
  Tensor rstd = 1.0 / tg::sqrt(var + eps);
  Tensor y = prim::fma(x, rstd, -mean * rstd);
  if (weight.defined()) y = y * weight;
  if (bias.defined()) y = y + bias;
  return y;
}

Tensor local_response_norm(const Tensor& x, int64_t size, double alpha, double beta, double k) {
  if (!x.defined() || x.dim() < 3)
    throw Error(fmt::format("local_response_norm: expected input [N, C, *spatial], got {}",
                            x.defined() ? shape_str(x.shape()) : "undefined"));
  if (size < 1) throw Error(fmt::format("local_response_norm: size must be positive, got {}", size));
  const int64_t n = x.size(0), c = x.size(1), rest = x.numel() / (n * c);
  // Mean of squares over a window of `size` channels, zero-padded as PyTorch does.
  Tensor sq = (x * x).reshape({n, 1, c, rest});
  sq = tg::pad(sq, {0, 0, size / 2, (size - 1) / 2});
  Tensor win = tg::unfold(sq, WindowOptions({size, 1}));  // [N, size, C * rest]
  Tensor avg = tg::mean(win, {1}).reshape(x.shape());
  return x / tg::pow(avg * alpha + k, beta);
}

}  // namespace tg::nn::functional
