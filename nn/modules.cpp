// The built-in modules: parameters with PyTorch's default initialisation, input checks that
// name the module path, and forward through tg::nn::functional.
#include "modules.hpp"

#include <fmt/format.h>

#include <cmath>

#include "../autograd/checkpoint.hpp"
#include "init.hpp"

namespace tg::nn {
namespace F = functional;

namespace {
// PyTorch's default for Linear and Conv: kaiming_uniform_(a = sqrt(5)) on the weight, which is
// U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the bias from the same bound.
void default_init(Tensor& w, Tensor& b) {
  init::kaiming_uniform_(w, std::sqrt(5.0));
  if (b.defined()) {
    double bound = 1.0 / std::sqrt(double(init::fans(w).first));
    init::uniform_(b, -bound, bound);
  }
}
// One value per spatial dim from a 1- or dims-value option; throws for any other count or for a
// value below `min` (a zero stride would divide by zero).
std::vector<int64_t> per_dim(const Module& m, const IntList& v, int dims, const char* what, int64_t min) {
  if (v.size() != 1 && int(v.size()) != dims)
    throw Error(fmt::format("{}: {} expects 1 or {} values, got [{}]", m.describe(), what, dims, fmt::join(v, ", ")));
  std::vector<int64_t> r = v.size() == 1 ? std::vector<int64_t>(size_t(dims), v[0]) : std::vector<int64_t>(v);
  for (int64_t x : r)
    if (x < min) throw Error(fmt::format("{}: {} must be >= {}, got [{}]", m.describe(), what, min, fmt::join(v, ", ")));
  return r;
}
// A floating input whose dtype differs from the module's parameters or buffers: said here with the
// module path, before the functional form says it without one.
void check_dtype(const Module& m, const Tensor& x, const Tensor& p) {
  if (x.defined() && p.defined() && x.dtype() != p.dtype())
    throw Error(fmt::format("{}: expected a {} input (the dtype of its parameters), got {} {}; convert the input "
                            "with .to() or the module with to({})",
                            m.describe(), dtype_name(p.dtype()), dtype_name(x.dtype()), shape_str(x.shape()),
                            dtype_name(x.dtype())));
}
}  // namespace

// ---- Linear ----
Linear::Linear(const LinearOptions& o) : Module("Linear"), options(o) {
  if (o.in_features() < 1 || o.out_features() < 1)
    fail(fmt::format("in_features and out_features must be positive, got {} and {}", o.in_features(), o.out_features()));
  weight = register_parameter("weight", tg::empty({o.out_features(), o.in_features()}));
  if (o.bias()) bias = register_parameter("bias", tg::empty({o.out_features()}));
  reset_parameters();
}
void Linear::reset_parameters() { default_init(weight, bias); }
Tensor Linear::forward(const Tensor& x) {
  if (!x.defined() || x.dim() < 1 || x.size(-1) != options.in_features())
    fail(fmt::format("expected input with {} features in the last dim, got {}", options.in_features(),
                     x.defined() ? shape_str(x.shape()) : "undefined"));
  check_dtype(*this, x, weight);
  return after_forward(x, F::linear(x, weight, bias));
}

// ---- ConvNd ----
ConvNd::ConvNd(int dims, const ConvNdOptions& o, const char* type_name) : Module(type_name), dims(dims), options(o) {
  if (o.groups() < 1 || o.in_channels() % o.groups() != 0 || o.out_channels() % o.groups() != 0)
    fail(fmt::format("in_channels {} and out_channels {} must be divisible by groups {}", o.in_channels(),
                     o.out_channels(), o.groups()));
  if (o.in_channels() < 1 || o.out_channels() < 1)
    fail(fmt::format("in_channels and out_channels must be positive, got {} and {}", o.in_channels(), o.out_channels()));
  per_dim(*this, o.stride(), dims, "stride", 1);
  per_dim(*this, o.padding(), dims, "padding", 0);
  per_dim(*this, o.dilation(), dims, "dilation", 1);
  Shape ws{o.out_channels(), o.in_channels() / o.groups()};
  for (int64_t k : per_dim(*this, o.kernel_size(), dims, "kernel_size", 1)) ws.push_back(k);
  weight = register_parameter("weight", tg::empty(ws));
  if (o.bias()) bias = register_parameter("bias", tg::empty({o.out_channels()}));
  reset_parameters();
}
void ConvNd::reset_parameters() { default_init(weight, bias); }
Tensor ConvNd::forward(const Tensor& x) {
  if (!x.defined() || x.dim() != dims + 2)
    fail(fmt::format("expected input with {} dims (N, C, *{} spatial), got {}", dims + 2, dims,
                     x.defined() ? shape_str(x.shape()) : "undefined"));
  if (x.size(1) != options.in_channels())
    fail(fmt::format("expected input with {} channels, got {} (input {})", options.in_channels(), x.size(1),
                     shape_str(x.shape())));
  check_dtype(*this, x, weight);
  auto o = F::ConvOptions().stride(options.stride()).padding(options.padding()).dilation(options.dilation())
               .groups(options.groups());
  switch (dims) {
    case 1: return after_forward(x, F::conv1d(x, weight, bias, o));
    case 2: return after_forward(x, F::conv2d(x, weight, bias, o));
    default: return after_forward(x, F::conv3d(x, weight, bias, o));
  }
}

// ---- ConvTranspose2d ----
ConvTranspose2d::ConvTranspose2d(const ConvTranspose2dOptions& o) : Module("ConvTranspose2d"), options(o) {
  if (o.groups() < 1 || o.in_channels() % o.groups() != 0 || o.out_channels() % o.groups() != 0)
    fail(fmt::format("in_channels {} and out_channels {} must be divisible by groups {}", o.in_channels(),
                     o.out_channels(), o.groups()));
  per_dim(*this, o.stride(), 2, "stride", 1);
  per_dim(*this, o.padding(), 2, "padding", 0);
  per_dim(*this, o.output_padding(), 2, "output_padding", 0);
  per_dim(*this, o.dilation(), 2, "dilation", 1);
  Shape ws{o.in_channels(), o.out_channels() / o.groups()};
  for (int64_t k : per_dim(*this, o.kernel_size(), 2, "kernel_size", 1)) ws.push_back(k);
  weight = register_parameter("weight", tg::empty(ws));
  if (o.bias()) bias = register_parameter("bias", tg::empty({o.out_channels()}));
  // PyTorch computes fan_in from weight.size(1) * kernel for transposed convolutions too.
  default_init(weight, bias);
}
Tensor ConvTranspose2d::forward(const Tensor& x) {
  if (!x.defined() || x.dim() != 4 || x.size(1) != options.in_channels())
    fail(fmt::format("expected input [N, {}, H, W], got {}", options.in_channels(),
                     x.defined() ? shape_str(x.shape()) : "undefined"));
  check_dtype(*this, x, weight);
  return after_forward(
      x, F::conv_transpose2d(x, weight, bias,
                             F::ConvTransposeOptions().stride(options.stride()).padding(options.padding())
                                 .output_padding(options.output_padding()).dilation(options.dilation())
                                 .groups(options.groups())));
}

// ---- LocallyConnected2d ----
LocallyConnected2d::LocallyConnected2d(const LocallyConnected2dOptions& o) : Module("LocallyConnected2d"), options(o) {
  auto in = per_dim(*this, o.in_size(), 2, "in_size", 1), k = per_dim(*this, o.kernel_size(), 2, "kernel_size", 1),
       s = per_dim(*this, o.stride(), 2, "stride", 1), p = per_dim(*this, o.padding(), 2, "padding", 0);
  out_h = (in[0] + 2 * p[0] - k[0]) / s[0] + 1;
  out_w = (in[1] + 2 * p[1] - k[1]) / s[1] + 1;
  if (out_h < 1 || out_w < 1)
    fail(fmt::format("kernel [{}] does not fit input size [{}] with padding [{}]", fmt::join(k, ", "),
                     fmt::join(in, ", "), fmt::join(p, ", ")));
  const int64_t fan_in = o.in_channels() * k[0] * k[1];
  weight = register_parameter("weight", tg::empty({out_h * out_w, o.out_channels(), fan_in}));
  double bound = 1.0 / std::sqrt(double(fan_in));
  init::uniform_(weight, -bound, bound);
  if (o.bias()) {
    bias = register_parameter("bias", tg::empty({o.out_channels(), out_h, out_w}));
    init::uniform_(bias, -bound, bound);
  }
}
Tensor LocallyConnected2d::forward(const Tensor& x) {
  auto in = per_dim(*this, options.in_size(), 2, "in_size", 1);
  if (!x.defined() || x.dim() != 4 || x.size(1) != options.in_channels() || x.size(2) != in[0] || x.size(3) != in[1])
    fail(fmt::format("expected input [N, {}, {}, {}], got {}", options.in_channels(), in[0], in[1],
                     x.defined() ? shape_str(x.shape()) : "undefined"));
  check_dtype(*this, x, weight);
  return after_forward(x, F::locally_connected2d(x, weight, bias, options.kernel_size(),
                                                 F::ConvOptions().stride(options.stride()).padding(options.padding())));
}

// ---- normalisation ----
BatchNormNd::BatchNormNd(const BatchNormOptions& o, const char* type_name, std::vector<int64_t> ranks)
    : Module(type_name), options(o), ranks_(std::move(ranks)) {
  if (o.num_features() < 1) fail(fmt::format("num_features must be positive, got {}", o.num_features()));
  const int64_t c = o.num_features();
  if (o.affine()) {
    weight = register_parameter("weight", tg::ones({c}));
    bias = register_parameter("bias", tg::zeros({c}));
  }
  if (o.track_running_stats()) {
    running_mean = register_buffer("running_mean", tg::zeros({c}));
    running_var = register_buffer("running_var", tg::ones({c}));
    num_batches_tracked = register_buffer("num_batches_tracked", tg::zeros({}, kInt64));
  }
}
void BatchNormNd::reset_parameters() {
  if (weight.defined()) init::ones_(weight);
  if (bias.defined()) init::zeros_(bias);
  if (running_mean.defined()) {
    running_mean.zero_();
    running_var.fill_(1.0);
    num_batches_tracked.zero_();
  }
}
Tensor BatchNormNd::forward(const Tensor& x) { return run(x, false); }
Tensor BatchNormNd::forward_relu(const Tensor& x) { return run(x, true); }

Tensor BatchNormNd::run(const Tensor& x, bool relu) {
  bool rank_ok = x.defined() && std::find(ranks_.begin(), ranks_.end(), x.dim()) != ranks_.end();
  if (!rank_ok)
    fail(fmt::format("expected input with {} dims, got {}", fmt::join(ranks_, " or "),
                     x.defined() ? shape_str(x.shape()) : "undefined"));
  if (x.size(1) != options.num_features())
    fail(fmt::format("expected input with {} channels, got {} (input {})", options.num_features(), x.size(1),
                     shape_str(x.shape())));
  check_dtype(*this, x, weight.defined() ? weight : running_mean);
  const bool use_batch_stats = is_training() || !running_mean.defined();
  if (is_training() && num_batches_tracked.defined() && !autograd::in_checkpoint_recompute())
    num_batches_tracked.add_(tg::ones({}, kInt64));  // once per forward, as the running statistics
  const Tensor rm = use_batch_stats && !is_training() ? Tensor() : running_mean;
  const Tensor rv = use_batch_stats && !is_training() ? Tensor() : running_var;
  // forward_relu is only called by Sequential for a hook-free pair: no hooks to run.
  if (relu)
    return F::detail::batch_norm_relu(x, rm, rv, weight, bias, use_batch_stats, options.momentum(), options.eps());
  return after_forward(x, F::batch_norm(x, rm, rv, weight, bias, use_batch_stats, options.momentum(), options.eps()));
}

GroupNorm::GroupNorm(const GroupNormOptions& o) : Module("GroupNorm"), options(o) {
  if (o.num_groups() < 1 || o.num_channels() % o.num_groups() != 0)
    fail(fmt::format("num_channels {} must be divisible by num_groups {}", o.num_channels(), o.num_groups()));
  if (o.affine()) {
    weight = register_parameter("weight", tg::ones({o.num_channels()}));
    bias = register_parameter("bias", tg::zeros({o.num_channels()}));
  }
}
Tensor GroupNorm::forward(const Tensor& x) {
  if (!x.defined() || x.dim() < 2 || x.size(1) != options.num_channels())
    fail(fmt::format("expected input [N, {}, *], got {}", options.num_channels(),
                     x.defined() ? shape_str(x.shape()) : "undefined"));
  check_dtype(*this, x, weight);
  return after_forward(x, F::group_norm(x, options.num_groups(), weight, bias, options.eps()));
}

LayerNorm::LayerNorm(const LayerNormOptions& o) : Module("LayerNorm"), options(o) {
  if (o.elementwise_affine()) {
    weight = register_parameter("weight", tg::ones(o.normalized_shape()));
    bias = register_parameter("bias", tg::zeros(o.normalized_shape()));
  }
}
Tensor LayerNorm::forward(const Tensor& x) {
  const Shape& ns = options.normalized_shape();
  bool ok = x.defined() && x.dim() >= int64_t(ns.size()) && std::equal(ns.begin(), ns.end(), x.shape().end() - ns.size());
  if (!ok)
    fail(fmt::format("expected input ending in {}, got {}", shape_str(ns), x.defined() ? shape_str(x.shape()) : "undefined"));
  check_dtype(*this, x, weight);
  return after_forward(x, F::layer_norm(x, ns, weight, bias, options.eps()));
}

Tensor LocalResponseNorm::forward(const Tensor& x) {
  return after_forward(x, F::local_response_norm(x, options.size(), options.alpha(), options.beta(), options.k()));
}

Dropout::Dropout(double p) : Module("Dropout"), p(p) {
  if (p < 0 || p > 1) fail(fmt::format("p must be in [0, 1], got {}", p));
}
Dropout2d::Dropout2d(double p) : Module("Dropout2d"), p(p) {
  if (p < 0 || p > 1) fail(fmt::format("p must be in [0, 1], got {}", p));
}

// ---- containers ----
void ModuleSequence::add_item(const std::string& name, std::shared_ptr<Module> m) {
  register_module(name, m);
  items_.push_back(std::move(m));
}
const std::shared_ptr<Module>& ModuleSequence::operator[](size_t i) const {
  if (i >= items_.size()) fail(fmt::format("index {} out of range for {} modules", i, items_.size()));
  return items_[i];
}

Sequential::Sequential(std::initializer_list<std::shared_ptr<Module>> modules) : Sequential() {
  for (const auto& m : modules) push_back(m);
}
Sequential::Sequential(std::initializer_list<NamedModule> modules) : Sequential() {
  for (const auto& m : modules) push_back(m.name, m.module);
}
// Lists flow from child to child, so a child may take or return several tensors.
// A BatchNorm followed by a ReLU, neither with hooks, runs as one pass over the activation
// (BatchNormNd::forward_relu): the same values and gradients, one tensor fewer.
TensorList Sequential::chain(const TensorList& inputs) {
  TensorList y = inputs;
  const size_t n = size();
  for (size_t i = 0; i < n; ++i) {
    Module* m = (*this)[i].get();
    if (y.size() == 1 && i + 1 < n && m->forward_hook_count() == 0 && (*this)[i + 1]->forward_hook_count() == 0)
      if (auto* bn = dynamic_cast<BatchNormNd*>(m))
        if (dynamic_cast<ReLU*>((*this)[i + 1].get())) {
          y = {bn->forward_relu(y[0])};
          ++i;
          continue;
        }
    y = (*(*this)[i])(y);
  }
  return y;
}
Tensor Sequential::forward(const Tensor& x) {
  TensorList y = chain({x});
  if (y.size() != 1)
    fail(fmt::format("its last module returned {} tensors where one was expected; call it with a TensorList, "
                     "(*m)(tg::nn::TensorList{{...}}), to get them all",
                     y.size()));
  return after_forward(x, y[0]);
}
TensorList Sequential::forward_list(const TensorList& inputs) { return after_forward(inputs, chain(inputs)); }

ModuleList::ModuleList(std::initializer_list<std::shared_ptr<Module>> modules) : ModuleList() {
  for (const auto& m : modules) push_back(m);
}

}  // namespace tg::nn
