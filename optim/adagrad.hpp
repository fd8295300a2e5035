#pragma once
/// Adagrad, step for step as torch.optim.Adagrad (PyTorch 1.13). With t the step:
///   d = ±g + weight_decay·p;  s += d²;  p -= lr/(1 + (t − 1)·lr_decay) · d / (√s + eps)
/// with s starting at initial_accumulator_value.
///   tg::optim::Adagrad opt(params, tg::optim::AdagradOptions(0.1).lr_decay(1e-3));
/// State: "sum".
#include "optimizer.hpp"

namespace tg::optim {

class AdagradOptions : public OptimizerOptions {
 public:
  AdagradOptions(double lr = 1e-2) : lr_(lr) {}  // NOLINT: implicit, as libtorch's
  TG_ARG(double, lr);
  TG_ARG(double, lr_decay) = 0.0;
  TG_ARG(double, weight_decay) = 0.0;
  TG_ARG(double, initial_accumulator_value) = 0.0;
  TG_ARG(double, eps) = 1e-10;
  TG_ARG(bool, maximize) = false;

 public:
  std::unique_ptr<OptimizerOptions> clone() const override { return std::make_unique<AdagradOptions>(*this); }
  double get_lr() const override { return lr_; }
  void set_lr(double lr) override { lr_ = lr; }
  /// Every numeric option >= 0.
  void validate(const std::string& who) const override;
  void visit(const Visitor& f) override;
};

class Adagrad : public Optimizer {
 public:
  Adagrad(std::vector<Tensor> params, const AdagradOptions& defaults = {});
  Adagrad(std::vector<ParamGroup> groups, const AdagradOptions& defaults = {});

 protected:
  void update(Tensor& param, const Tensor& grad, ParamState& state, const OptimizerOptions& options) override;
  bool accepts(const OptimizerOptions& o) const override { return dynamic_cast<const AdagradOptions*>(&o) != nullptr; }
};

}  // namespace tg::optim
