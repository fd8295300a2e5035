#pragma once
/// The optimizer base: parameter groups with per-group options, per-parameter state, zero_grad,
/// step, add_param_group, and a flat state dict for resuming.
///
///   tg::optim::SGD opt(params, tg::optim::SGDOptions(0.1).momentum(0.9));
///   opt.zero_grad();  loss.backward();  opt.step();
///   auto sd = opt.state_dict();   // ... later, on a fresh optimizer over the same parameters:
///   opt2.load_state_dict(sd);     // continues exactly where opt stopped
///
/// State-dict keys (every value a tensor, so the map can go to a safetensors file); i is the
/// parameter's position counting through all groups in order, g the group:
///   param_groups.<g>.params        int64 [n]   the positions i of the group's parameters
///   param_groups.<g>.<option>      float64 0-d (bools as 0/1; betas as float64 [2])
///   state.<i>.step                 int64 0-d   steps taken by parameter i
///   state.<i>.<buffer>             the parameter's dtype and shape (exp_avg, momentum_buffer, ...)
/// See docs/optim.md for each optimizer's options and buffers.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "../autograd/arg.hpp"
#include "../autograd/tensor.hpp"

namespace tg::optim {

using StateDict = std::map<std::string, Tensor>;
using LossClosure = std::function<Tensor()>;


/// Base of the per-optimizer options classes (SGDOptions, AdamOptions, ...).
class OptimizerOptions {
 public:
  virtual ~OptimizerOptions() = default;
  virtual std::unique_ptr<OptimizerOptions> clone() const = 0;
  /// The learning rate, whatever the concrete class (schedulers use these).
  virtual double get_lr() const = 0;
  virtual void set_lr(double lr) = 0;
  /// Throws tg::Error naming `who`, the option and its value when an option is out of range.
  virtual void validate(const std::string& who) const = 0;

  /// Calls f(name, values, count) for every option, in a fixed order; f may change the values
  /// (bools are passed as 0/1). Used by state_dict / load_state_dict.
  using Visitor = std::function<void(const char* name, double* values, size_t count)>;
  virtual void visit(const Visitor& f) = 0;
};

/// Parameters that share options. Without options the group takes the optimizer's defaults.
///   std::vector<ParamGroup> groups{ParamGroup(backbone), ParamGroup(head, SGDOptions(0.1))};
class ParamGroup {
 public:
  ParamGroup(std::vector<Tensor> params);  // NOLINT: a plain list is a group with default options
  ParamGroup(std::vector<Tensor> params, const OptimizerOptions& options);
  ParamGroup(const ParamGroup& o);
  ParamGroup& operator=(const ParamGroup& o);
  ParamGroup(ParamGroup&&) = default;
  ParamGroup& operator=(ParamGroup&&) = default;

  std::vector<Tensor>& params() { return params_; }
  const std::vector<Tensor>& params() const { return params_; }
  bool has_options() const { return options_ != nullptr; }
  OptimizerOptions& options();
  const OptimizerOptions& options() const;
  void set_options(std::unique_ptr<OptimizerOptions> options) { options_ = std::move(options); }

 private:
  std::vector<Tensor> params_;
  std::unique_ptr<OptimizerOptions> options_;
};

/// What an optimizer keeps for one parameter: its step count and named buffers of the
/// parameter's shape and dtype (PyTorch's names: "exp_avg", "momentum_buffer", ...).
struct ParamState {
  int64_t step = 0;
  std::map<std::string, Tensor> buffers;
  /// The named buffer, created filled with `init` (in the shape and dtype of `param`) if absent.
  Tensor& buffer(const char* name, const Tensor& param, double init = 0.0);
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  /// One update of every parameter that has a gradient (others are skipped). With a closure,
  /// it is called first with grad mode on (it should zero the grads, compute the loss and call
  /// backward) and its loss is returned; otherwise the result is undefined. Virtual for the
  /// optimizers that drive the closure themselves (LBFGS).
  virtual Tensor step(const LossClosure& closure = nullptr);

  /// Makes every parameter's gradient undefined (set_to_none, the default, as Module::zero_grad
  /// and PyTorch 2's), or zeroes it in place.
  void zero_grad(bool set_to_none = true);

  /// Adds a group; without options it takes the defaults. Throws if a parameter is already
  /// in a group, is not a floating leaf, or an option is invalid.
  void add_param_group(const ParamGroup& group);

  std::vector<ParamGroup>& param_groups() { return param_groups_; }
  const std::vector<ParamGroup>& param_groups() const { return param_groups_; }
  const OptimizerOptions& defaults() const { return *defaults_; }
  OptimizerOptions& defaults() { return *defaults_; }
  /// The state of a parameter: nullptr before its first step; valid until the next step() or
  /// load_state_dict().
  const ParamState* state(const Tensor& param) const;
  /// "SGD", "Adam", ...
  const std::string& name() const { return name_; }

  /// A snapshot (tensors are copies) of the options of every group and the state of every
  /// parameter; keys as in the header comment. Virtual for optimizers whose state is not
  /// per parameter (LBFGS adds its own state.0.* keys).
  virtual StateDict state_dict() const;
  /// Restores options and state from state_dict() of an optimizer of the same kind over
  /// parameters of the same shapes, grouped the same way. Validates everything first: on error
  /// nothing changes. State tensors are copied and converted to the parameter's dtype.
  virtual void load_state_dict(const StateDict& sd);

 protected:
  Optimizer(std::string name, const OptimizerOptions& defaults);
  /// Validates the defaults and adds the groups; derived constructors call it (it needs accepts()).
  void init(std::vector<ParamGroup> groups);

  /// Updates one parameter (its gradient is defined, same shape and dtype) under NoGradGuard.
  virtual void update(Tensor& param, const Tensor& grad, ParamState& state, const OptimizerOptions& options) = 0;
  /// True when `o` is this optimizer's options type.
  virtual bool accepts(const OptimizerOptions& o) const = 0;

 private:
  std::string name_;
  std::unique_ptr<OptimizerOptions> defaults_;
  std::vector<ParamGroup> param_groups_;
  std::unordered_map<const TensorImpl*, ParamState> state_;
};

}  // namespace tg::optim
