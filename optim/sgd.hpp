#pragma once
/// Stochastic gradient descent with momentum, dampening, Nesterov momentum, weight decay and
/// maximize, step for step as torch.optim.SGD (PyTorch 1.13):
///   d = ±g + weight_decay·p;  b = d (first step) or momentum·b + (1 − dampening)·d;
///   d = d + momentum·b (nesterov) or b;  p -= lr·d.
///   tg::optim::SGD opt(params, tg::optim::SGDOptions(0.1).momentum(0.9).nesterov(true));
/// State: "momentum_buffer" (when momentum != 0).
#include "optimizer.hpp"

namespace tg::optim {

class SGDOptions : public OptimizerOptions {
 public:
  SGDOptions(double lr) : lr_(lr) {}  // NOLINT: implicit, as libtorch's (SGD opt(params, 0.1))
  TG_ARG(double, lr);
  TG_ARG(double, momentum) = 0.0;
  TG_ARG(double, dampening) = 0.0;
  TG_ARG(double, weight_decay) = 0.0;
  TG_ARG(bool, nesterov) = false;
  TG_ARG(bool, maximize) = false;

 public:
  std::unique_ptr<OptimizerOptions> clone() const override { return std::make_unique<SGDOptions>(*this); }
  double get_lr() const override { return lr_; }
  void set_lr(double lr) override { lr_ = lr; }
  /// lr, momentum, weight_decay >= 0; nesterov needs momentum > 0 and dampening == 0.
  void validate(const std::string& who) const override;
  void visit(const Visitor& f) override;
};

class SGD : public Optimizer {
 public:
  SGD(std::vector<Tensor> params, const SGDOptions& defaults);
  SGD(std::vector<ParamGroup> groups, const SGDOptions& defaults);

 protected:
  void update(Tensor& param, const Tensor& grad, ParamState& state, const OptimizerOptions& options) override;
  bool accepts(const OptimizerOptions& o) const override { return dynamic_cast<const SGDOptions*>(&o) != nullptr; }
};

}  // namespace tg::optim
