#pragma once
/// The built-in modules. Each holds its parameters and buffers and calls tg::nn::functional;
/// default initialisation follows PyTorch's. Options classes are <Module>Options with fluent
/// setters, as in libtorch.
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "../autograd/arg.hpp"
#include "functional.hpp"
#include "module.hpp"

namespace tg::nn {

using functional::IntList;


// ---- linear and convolution ----
class LinearOptions {
 public:
  LinearOptions(int64_t in, int64_t out) : in_features_(in), out_features_(out) {}
  TG_ARG(int64_t, in_features);
  TG_ARG(int64_t, out_features);
  TG_ARG(bool, bias){true};
};
class Linear : public Module {
 public:
  explicit Linear(const LinearOptions& o);
  Linear(int64_t in, int64_t out) : Linear(LinearOptions(in, out)) {}
  Tensor forward(const Tensor& x) override;
  void reset_parameters();
  LinearOptions options;
  Tensor weight, bias;  // [out, in], [out]
};

/// Options of Conv1d/2d/3d: in and out channels, kernel, then stride, padding, dilation, groups, bias.
class ConvNdOptions {
 public:
  ConvNdOptions(int64_t in, int64_t out, IntList kernel)
      : in_channels_(in), out_channels_(out), kernel_size_(std::move(kernel)) {}
  TG_ARG(int64_t, in_channels);
  TG_ARG(int64_t, out_channels);
  TG_ARG(IntList, kernel_size);
  TG_ARG(IntList, stride){1};
  TG_ARG(IntList, padding){0};
  TG_ARG(IntList, dilation){1};
  TG_ARG(int64_t, groups){1};
  TG_ARG(bool, bias){true};
};
using Conv1dOptions = ConvNdOptions;
using Conv2dOptions = ConvNdOptions;
using Conv3dOptions = ConvNdOptions;

/// Convolution over 1, 2 or 3 spatial dims (Conv1d, Conv2d, Conv3d below).
class ConvNd : public Module {
 public:
  ConvNd(int dims, const ConvNdOptions& o, const char* type_name);
  Tensor forward(const Tensor& x) override;
  void reset_parameters();
  int dims;
  ConvNdOptions options;
  Tensor weight, bias;  // [O, C / groups, *kernel], [O]
};
struct Conv1d : ConvNd {
  explicit Conv1d(const ConvNdOptions& o) : ConvNd(1, o, "Conv1d") {}
  Conv1d(int64_t in, int64_t out, IntList k) : Conv1d(ConvNdOptions(in, out, std::move(k))) {}
};
struct Conv2d : ConvNd {
  explicit Conv2d(const ConvNdOptions& o) : ConvNd(2, o, "Conv2d") {}
  Conv2d(int64_t in, int64_t out, IntList k) : Conv2d(ConvNdOptions(in, out, std::move(k))) {}
};
struct Conv3d : ConvNd {
  explicit Conv3d(const ConvNdOptions& o) : ConvNd(3, o, "Conv3d") {}
  Conv3d(int64_t in, int64_t out, IntList k) : Conv3d(ConvNdOptions(in, out, std::move(k))) {}
};

class ConvTranspose2dOptions {
 public:
  ConvTranspose2dOptions(int64_t in, int64_t out, IntList kernel)
      : in_channels_(in), out_channels_(out), kernel_size_(std::move(kernel)) {}
  TG_ARG(int64_t, in_channels);
  TG_ARG(int64_t, out_channels);
  TG_ARG(IntList, kernel_size);
  TG_ARG(IntList, stride){1};
  TG_ARG(IntList, padding){0};
  TG_ARG(IntList, output_padding){0};
  TG_ARG(IntList, dilation){1};
  TG_ARG(int64_t, groups){1};
  TG_ARG(bool, bias){true};
};
class ConvTranspose2d : public Module {
 public:
  explicit ConvTranspose2d(const ConvTranspose2dOptions& o);
  Tensor forward(const Tensor& x) override;
  ConvTranspose2dOptions options;
  Tensor weight, bias;  // [C, O / groups, kh, kw], [O]
};

class LocallyConnected2dOptions {
 public:
  /// in_size: the input's spatial size (H, W), needed to size the unshared weights.
  LocallyConnected2dOptions(int64_t in, int64_t out, IntList in_size, IntList kernel)
      : in_channels_(in), out_channels_(out), in_size_(std::move(in_size)), kernel_size_(std::move(kernel)) {}
  TG_ARG(int64_t, in_channels);
  TG_ARG(int64_t, out_channels);
  TG_ARG(IntList, in_size);
  TG_ARG(IntList, kernel_size);
  TG_ARG(IntList, stride){1};
  TG_ARG(IntList, padding){0};
  TG_ARG(bool, bias){true};
};
/// One filter bank per output position: weight [OH * OW, O, C * kh * kw], bias [O, OH, OW].
class LocallyConnected2d : public Module {
 public:
  explicit LocallyConnected2d(const LocallyConnected2dOptions& o);
  Tensor forward(const Tensor& x) override;
  LocallyConnected2dOptions options;
  Tensor weight, bias;
  int64_t out_h = 0, out_w = 0;
};

// ---- pooling ----
using MaxPool2dOptions = functional::PoolOptions;
using AvgPool2dOptions = functional::PoolOptions;
class MaxPool2d : public Module {
 public:
  explicit MaxPool2d(const functional::PoolOptions& o) : Module("MaxPool2d"), options(o) {}
  explicit MaxPool2d(IntList kernel) : MaxPool2d(functional::PoolOptions(std::move(kernel))) {}
  Tensor forward(const Tensor& x) override { return after_forward(x, functional::max_pool2d(x, options)); }
  functional::PoolOptions options;
};
class AvgPool2d : public Module {
 public:
  explicit AvgPool2d(const functional::PoolOptions& o) : Module("AvgPool2d"), options(o) {}
  explicit AvgPool2d(IntList kernel) : AvgPool2d(functional::PoolOptions(std::move(kernel))) {}
  Tensor forward(const Tensor& x) override { return after_forward(x, functional::avg_pool2d(x, options)); }
  functional::PoolOptions options;
};
class AdaptiveAvgPool2d : public Module {
 public:
  explicit AdaptiveAvgPool2d(IntList output_size) : Module("AdaptiveAvgPool2d"), output_size(std::move(output_size)) {}
  Tensor forward(const Tensor& x) override { return after_forward(x, functional::adaptive_avg_pool2d(x, output_size)); }
  IntList output_size;
};

// ---- normalisation ----
class BatchNormOptions {
 public:
  BatchNormOptions(int64_t features) : num_features_(features) {}  // NOLINT
  TG_ARG(int64_t, num_features);
  TG_ARG(double, eps){1e-5};
  TG_ARG(double, momentum){0.1};
  TG_ARG(bool, affine){true};
  TG_ARG(bool, track_running_stats){true};
};
/// Batch norm over [N, C] / [N, C, L] (BatchNorm1d) or [N, C, H, W] (BatchNorm2d).
class BatchNormNd : public Module {
 public:
  BatchNormNd(const BatchNormOptions& o, const char* type_name, std::vector<int64_t> ranks);
  Tensor forward(const Tensor& x) override;
  /// relu(forward(x)) in one pass over x: Sequential calls it for a BatchNorm followed by a ReLU
  /// when neither has hooks (the same values and gradients as the two modules).
  Tensor forward_relu(const Tensor& x);
  void reset_parameters();
  BatchNormOptions options;
  Tensor weight, bias, running_mean, running_var, num_batches_tracked;

 private:
  std::vector<int64_t> ranks_;
  Tensor run(const Tensor& x, bool relu);
};
struct BatchNorm1d : BatchNormNd {
  explicit BatchNorm1d(const BatchNormOptions& o) : BatchNormNd(o, "BatchNorm1d", {2, 3}) {}
};
struct BatchNorm2d : BatchNormNd {
  explicit BatchNorm2d(const BatchNormOptions& o) : BatchNormNd(o, "BatchNorm2d", {4}) {}
};
using BatchNorm1dOptions = BatchNormOptions;
using BatchNorm2dOptions = BatchNormOptions;

class GroupNormOptions {
 public:
  GroupNormOptions(int64_t groups, int64_t channels) : num_groups_(groups), num_channels_(channels) {}
  TG_ARG(int64_t, num_groups);
  TG_ARG(int64_t, num_channels);
  TG_ARG(double, eps){1e-5};
  TG_ARG(bool, affine){true};
};
class GroupNorm : public Module {
 public:
  explicit GroupNorm(const GroupNormOptions& o);
  GroupNorm(int64_t groups, int64_t channels) : GroupNorm(GroupNormOptions(groups, channels)) {}
  Tensor forward(const Tensor& x) override;
  GroupNormOptions options;
  Tensor weight, bias;
};

class LayerNormOptions {
 public:
  LayerNormOptions(Shape normalized_shape) : normalized_shape_(std::move(normalized_shape)) {}  // NOLINT
  TG_ARG(Shape, normalized_shape);
  TG_ARG(double, eps){1e-5};
  TG_ARG(bool, elementwise_affine){true};
};
class LayerNorm : public Module {
 public:
  explicit LayerNorm(const LayerNormOptions& o);
  Tensor forward(const Tensor& x) override;
  LayerNormOptions options;
  Tensor weight, bias;
};

class LocalResponseNormOptions {
 public:
  LocalResponseNormOptions(int64_t size) : size_(size) {}  // NOLINT
  TG_ARG(int64_t, size);
  TG_ARG(double, alpha){1e-4};
  TG_ARG(double, beta){0.75};
  TG_ARG(double, k){1.0};
};
class LocalResponseNorm : public Module {
 public:
  explicit LocalResponseNorm(const LocalResponseNormOptions& o) : Module("LocalResponseNorm"), options(o) {}
  Tensor forward(const Tensor& x) override;
  LocalResponseNormOptions options;
};

// ---- dropout and activations ----
class Dropout : public Module {
 public:
  explicit Dropout(double p = 0.5);
  Tensor forward(const Tensor& x) override { return after_forward(x, functional::dropout(x, p, is_training())); }
  double p;
};
class Dropout2d : public Module {
 public:
  explicit Dropout2d(double p = 0.5);
  Tensor forward(const Tensor& x) override { return after_forward(x, functional::dropout2d(x, p, is_training())); }
  double p;
};
struct ReLU : Module {
  ReLU() : Module("ReLU") {}
  Tensor forward(const Tensor& x) override { return after_forward(x, functional::relu(x)); }
};
struct LeakyReLU : Module {
  explicit LeakyReLU(double negative_slope = 0.01) : Module("LeakyReLU"), negative_slope(negative_slope) {}
  Tensor forward(const Tensor& x) override { return after_forward(x, functional::leaky_relu(x, negative_slope)); }
  double negative_slope;
};
struct Sigmoid : Module {
  Sigmoid() : Module("Sigmoid") {}
  Tensor forward(const Tensor& x) override { return after_forward(x, functional::sigmoid(x)); }
};
struct Tanh : Module {
  Tanh() : Module("Tanh") {}
  Tensor forward(const Tensor& x) override { return after_forward(x, functional::tanh(x)); }
};
struct GELU : Module {
  explicit GELU(bool tanh_approximation = false) : Module("GELU"), tanh_approximation(tanh_approximation) {}
  Tensor forward(const Tensor& x) override { return after_forward(x, functional::gelu(x, tanh_approximation)); }
  bool tanh_approximation;
};
struct Identity : Module {
  Identity() : Module("Identity") {}
  Tensor forward(const Tensor& x) override { return after_forward(x, x); }
};
struct Flatten : Module {
  explicit Flatten(int64_t start_dim = 1, int64_t end_dim = -1)
      : Module("Flatten"), start_dim(start_dim), end_dim(end_dim) {}
  Tensor forward(const Tensor& x) override { return after_forward(x, tg::flatten(x, start_dim, end_dim)); }
  int64_t start_dim, end_dim;
};
struct Upsample : Module {
  explicit Upsample(const functional::InterpolateOptions& o) : Module("Upsample"), options(o) {}
  Tensor forward(const Tensor& x) override { return after_forward(x, functional::interpolate(x, options)); }
  functional::InterpolateOptions options;
};

// ---- containers ----
/// A child with its name, for containers with named children (PyTorch's
/// `nn.Sequential(OrderedDict(...))`): `{"conv0", nn::Conv2d(opts)}` or `{"conv0", conv_ptr}`.
struct NamedModule {
  template <typename M>
  NamedModule(std::string name, M&& m)  // NOLINT: built from braces
      : name(std::move(name)), module(detail::module_ptr(std::forward<M>(m))) {}
  std::string name;
  std::shared_ptr<Module> module;
};

namespace detail {
template <typename M>
struct is_module_arg : std::is_base_of<Module, std::remove_cv_t<std::remove_reference_t<M>>> {};
template <typename M>
struct is_module_arg<std::shared_ptr<M>> : std::is_base_of<Module, M> {};
/// Enables the variadic constructors of the containers for module values and handles only.
template <typename... Ms>
using if_module_args = std::enable_if_t<(sizeof...(Ms) > 0) && (is_module_arg<std::decay_t<Ms>>::value && ...)>;
}  // namespace detail

/// The ordered children of Sequential and ModuleList, named "0", "1", ... (or as given), with
/// typed access as libtorch's: at<T>(i) (a T&), ptr<T>(i) / ptr(i) (a handle).
class ModuleSequence : public Module {
 public:
  /// Appends a handle or a module value (moved in); the child's name is its index.
  template <typename M>
  auto push_back(M&& m) {
    auto p = detail::module_ptr(std::forward<M>(m));
    add_item(std::to_string(size()), p);
    return p;
  }
  /// Appends under a name of its own: `features->push_back("conv0", nn::Conv2d(opts))`.
  template <typename M>
  auto push_back(const std::string& name, M&& m) {
    auto p = detail::module_ptr(std::forward<M>(m));
    add_item(name, p);
    return p;
  }
  size_t size() const { return items_.size(); }
  bool is_empty() const { return items_.empty(); }
  const std::shared_ptr<Module>& operator[](size_t i) const;
  std::shared_ptr<Module> ptr(size_t i) const { return (*this)[i]; }
  /// The i-th child as a T; throws tg::Error naming both types when it is not one.
  template <typename T>
  std::shared_ptr<T> ptr(size_t i) const {
    auto p = std::dynamic_pointer_cast<T>((*this)[i]);
    if (!p) detail::bad_module_cast(*this, i, *(*this)[i], typeid(T));
    return p;
  }
  template <typename T>
  T& at(size_t i) const {
    return *ptr<T>(i);
  }
  std::vector<std::shared_ptr<Module>>::const_iterator begin() const { return items_.begin(); }
  std::vector<std::shared_ptr<Module>>::const_iterator end() const { return items_.end(); }

 protected:
  explicit ModuleSequence(std::string type_name) : Module(std::move(type_name)) {}
  ModuleSequence(ModuleSequence&&) = default;

 private:
  void add_item(const std::string& name, std::shared_ptr<Module> m);
  std::vector<std::shared_ptr<Module>> items_;
};

/// Runs its children in order, each on the output of the one before (a TensorList flows on as
/// a list: a child may take or return several tensors).
///
///   nn::Sequential block{nn::Conv2d(nn::Conv2dOptions(3, 32, 3)), nn::BatchNorm2d(32), nn::ReLU()};
///   nn::Sequential named{{"conv0", nn::Conv2d(nn::Conv2dOptions(3, 32, 3))}, {"relu0", nn::ReLU()}};
class Sequential : public ModuleSequence {
 public:
  Sequential() : ModuleSequence("Sequential") {}
  Sequential(std::initializer_list<std::shared_ptr<Module>> modules);
  Sequential(std::initializer_list<NamedModule> modules);
  /// Module values (moved in) and handles, in order: `nn::Sequential seq{nn::Linear(4, 8), nn::ReLU()}`.
  template <typename... Ms, typename = detail::if_module_args<Ms...>>
  explicit Sequential(Ms&&... modules) : Sequential() {
    (push_back(std::forward<Ms>(modules)), ...);
  }
  Sequential(Sequential&&) = default;
  Tensor forward(const Tensor& x) override;
  TensorList forward_list(const TensorList& inputs) override;

 private:
  TensorList chain(const TensorList& inputs);
};

/// A list of modules registered as "0", "1", ...; forward is up to the owner.
class ModuleList : public ModuleSequence {
 public:
  ModuleList() : ModuleSequence("ModuleList") {}
  ModuleList(std::initializer_list<std::shared_ptr<Module>> modules);
  template <typename... Ms, typename = detail::if_module_args<Ms...>>
  explicit ModuleList(Ms&&... modules) : ModuleList() {
    (push_back(std::forward<Ms>(modules)), ...);
  }
  ModuleList(ModuleList&&) = default;
};


}  // namespace tg::nn
