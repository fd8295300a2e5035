#pragma once
/// tg::nn::Module: named parameters, buffers and submodules, as in PyTorch.
///
///   struct Net : tg::nn::Module {
///     std::shared_ptr<tg::nn::Linear> fc;
///     Net() { fc = register_module("fc", std::make_shared<tg::nn::Linear>(4, 2)); }
///     tg::Tensor forward(const tg::Tensor& x) override { return fc->forward(x); }
///   };
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "../autograd/tensor.hpp"

namespace tg::nn {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;
/// Parameters and buffers by dotted name ("features.0.weight"), as PyTorch's state_dict.
using StateDict = std::map<std::string, Tensor>;
using ForwardHook = std::function<void(class Module&, const Tensor& input, const Tensor& output)>;

class Module : public std::enable_shared_from_this<Module> {
 public:
  explicit Module(std::string type_name = "Module");
  virtual ~Module();
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  /// The computation. Modules with one input and one output override this, so they fit in
  /// Sequential. The default throws.
  virtual Tensor forward(const Tensor& x);
  /// forward(x), then the forward hooks. Sequential calls children this way.
  Tensor operator()(const Tensor& x);

  /// Registers a parameter (requires grad) under `name`; returns the handle (it shares the stored tensor).
  Tensor register_parameter(const std::string& name, Tensor t, bool requires_grad = true);
  /// Registers a buffer (saved in the state dict, never a parameter): running statistics...
  Tensor register_buffer(const std::string& name, Tensor t);
  template <typename M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    add_child(name, m);
    return m;
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

  /// fn(module, input, output) after every call through operator(); returns an id.
  size_t register_forward_hook(ForwardHook fn);
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

 private:
  void add_child(const std::string& name, std::shared_ptr<Module> m);
  void collect(const std::string& prefix, bool recurse, bool params, NamedTensors& out) const;

  std::string type_name_;
  bool training_ = true;
  std::vector<std::pair<std::string, Tensor>> params_;
  std::vector<std::pair<std::string, Tensor>> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  std::vector<std::pair<size_t, ForwardHook>> hooks_;
  const Module* parent_ = nullptr;
  std::string name_in_parent_;
};

}  // namespace tg::nn
