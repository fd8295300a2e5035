#pragma once
/// tg::nn::Module: named parameters, buffers and submodules, as in PyTorch.
///
///   struct Net : tg::nn::Module {
///     std::shared_ptr<tg::nn::Linear> fc;
///     Net() { fc = register_module("fc", std::make_shared<tg::nn::Linear>(4, 2)); }
///     tg::Tensor forward(const tg::Tensor& x) override { return fc->forward(x); }
///   };
///
/// A module with several inputs or outputs overrides forward_list instead and is called with a
/// TensorList: `auto out = (*block)(tg::nn::TensorList{x});` (a WaveNet block's residual and skip).
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include "../autograd/tensor.hpp"

namespace tg::nn {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;
/// Parameters and buffers by dotted name ("features.0.weight"), as PyTorch's state_dict.
using StateDict = std::map<std::string, Tensor>;
/// The inputs or outputs of a module that takes or returns several tensors.
using TensorList = std::vector<Tensor>;
/// fn(module, input, output): for modules with one input and one output.
using ForwardHook = std::function<void(class Module&, const Tensor& input, const Tensor& output)>;
/// fn(module, inputs, outputs): for any module (PyTorch's hooks see the input tuple).
using ForwardListHook = std::function<void(class Module&, const TensorList& inputs, const TensorList& outputs)>;

class Module;
namespace detail {
template <typename M>
using if_module_value = std::enable_if_t<std::is_base_of_v<Module, M> && !std::is_reference_v<M>>;
/// A module handle from a shared_ptr (kept) or a module value (moved into a new shared_ptr):
/// what lets `nn::Sequential seq{nn::Linear(4, 8), nn::ReLU()}` hold its children.
template <typename M>
std::shared_ptr<M> module_ptr(std::shared_ptr<M> m) {
  return m;
}
template <typename M, typename = if_module_value<M>>
std::shared_ptr<M> module_ptr(M&& m) {
  return std::make_shared<M>(std::move(m));
}
[[noreturn]] void bad_module_cast(const Module& owner, size_t i, const Module& got, const std::type_info& want);
}  // namespace detail

class Module : public std::enable_shared_from_this<Module> {
 public:
  explicit Module(std::string type_name = "Module");
  virtual ~Module();
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;
  /// Moves a module that is not registered in a parent (a value just built, as in
  /// `nn::Sequential seq{nn::Linear(4, 8)}`): its parameters, buffers, children and hooks go to
  /// the new module, a root. Moving a registered module throws tg::Error.
  Module(Module&& other);

  /// The computation. Modules with one input and one output override this, so they fit in
  /// Sequential. The default calls forward_list({x}) and expects one output.
  virtual Tensor forward(const Tensor& x);
  /// The computation of a module that takes or returns several tensors (a WaveNet block's
  /// (residual, skip), Inception's branches, a detector head's per-level outputs). The default
  /// calls forward(inputs[0]) and expects one input; a module overrides one of the two.
  virtual TensorList forward_list(const TensorList& inputs);
  /// forward(x), then the forward hooks. Sequential calls children this way.
  Tensor operator()(const Tensor& x);
  /// forward_list(inputs), then the forward hooks.
  TensorList operator()(const TensorList& inputs);

  /// Registers a parameter (requires grad) under `name`; returns the handle (it shares the stored tensor).
  Tensor register_parameter(const std::string& name, Tensor t, bool requires_grad = true);
  /// Registers a buffer (saved in the state dict, never a parameter): running statistics...
  Tensor register_buffer(const std::string& name, Tensor t);
  template <typename M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    add_child(name, m);
    return m;
  }
  /// Registers a module value (moved into a new shared_ptr) and returns its handle:
  /// `conv = register_module("conv", nn::Conv2d(nn::Conv2dOptions(3, 8, 3)));`
  template <typename M, typename = detail::if_module_value<M>>
  std::shared_ptr<M> register_module(const std::string& name, M&& m) {
    return register_module(name, detail::module_ptr(std::move(m)));
  }

  std::vector<Tensor> parameters(bool recurse = true) const;
  NamedTensors named_parameters(bool recurse = true) const;
  std::vector<Tensor> buffers(bool recurse = true) const;
  NamedTensors named_buffers(bool recurse = true) const;
  std::vector<std::shared_ptr<Module>> children() const;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_children() const;
  /// This module and all below it, depth first, with dotted names ("" for this one).
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_modules();

  /// Training mode (dropout active, batch norm uses batch statistics), recursively.
  virtual void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }
  /// Resets every parameter's gradient (undefined when set_to_none, else zeros).
  void zero_grad(bool set_to_none = true);
  /// Converts floating parameters and buffers to d, in place (handles stay valid).
  void to(Dtype d);

  StateDict state_dict() const;
  /// Copies values into the registered tensors. strict: a missing, unexpected or wrongly
  /// shaped key is a tg::Error listing them, and nothing is changed.
  void load_state_dict(const StateDict& sd, bool strict = true);

  /// fn(module, input, output) after every call; returns an id. A built-in module runs its hooks
  /// however it is called, (*m)(x) or m->forward(x); a user module through operator(), or from
  /// its forward too when it returns through after_forward. The one-tensor form throws tg::Error
  /// when the module takes or returns several tensors.
  size_t register_forward_hook(ForwardHook fn);
  /// fn(module, inputs, outputs): the form for any module, several tensors or one.
  size_t register_forward_hook(ForwardListHook fn);
  void remove_forward_hook(size_t id);
  /// How many forward hooks are registered (tests check that a tool removed its own).
  size_t forward_hook_count() const { return hooks_.size(); }

  /// "Conv2d".
  const std::string& type_name() const { return type_name_; }
  /// Dotted path from the outermost module that registered this one ("features.3"), or "".
  std::string path() const;
  /// "features.3 (Conv2d)", or "Conv2d" for a root: how errors name a module.
  std::string describe() const;

 protected:
  /// Throws tg::Error prefixed with describe().
  [[noreturn]] void fail(const std::string& what) const;
  /// Returns y, running the forward hooks first unless this module's operator() is the caller
  /// (which runs them itself, once, on its final output): a forward that returns through this
  /// runs its hooks even when called directly (m->forward(x)). Every built-in module does.
  Tensor after_forward(const Tensor& x, Tensor y);
  TensorList after_forward(const TensorList& inputs, TensorList outputs);

 private:
  void add_child(const std::string& name, std::shared_ptr<Module> m);
  void run_hooks(const TensorList& inputs, const TensorList& outputs);
  static std::string movable_type_name(const Module& other);
  void collect(const std::string& prefix, bool recurse, bool params, NamedTensors& out) const;

  std::string type_name_;
  bool training_ = true;
  std::vector<std::pair<std::string, Tensor>> params_;
  std::vector<std::pair<std::string, Tensor>> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  std::vector<std::pair<size_t, ForwardListHook>> hooks_;
  const Module* parent_ = nullptr;
  std::string name_in_parent_;
};

}  // namespace tg::nn
