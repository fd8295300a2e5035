#pragma once
/// RMSprop, step for step as torch.optim.RMSprop (PyTorch 1.13):
///   d = ±g + weight_decay·p;  s = α·s + (1 − α)·d²;  a = √s, or with centered
///   (ḡ = α·ḡ + (1 − α)·d) a = √(s − ḡ²);  a += eps
///   momentum > 0: b = momentum·b + d/a, p -= lr·b;  else p -= lr·d/a.
///   tg::optim::RMSprop opt(params, tg::optim::RMSpropOptions(1e-2).alpha(0.9).centered(true));
/// State: "square_avg", "momentum_buffer" (momentum > 0), "grad_avg" (centered).
#include "optimizer.hpp"

namespace tg::optim {

class RMSpropOptions : public OptimizerOptions {
 public:
  RMSpropOptions(double lr = 1e-2) : lr_(lr) {}  // NOLINT: implicit, as libtorch's
  TG_ARG(double, lr);
  TG_ARG(double, alpha) = 0.99;
  TG_ARG(double, eps) = 1e-8;
  TG_ARG(double, weight_decay) = 0.0;
  TG_ARG(double, momentum) = 0.0;
  TG_ARG(bool, centered) = false;
  TG_ARG(bool, maximize) = false;

 public:
  std::unique_ptr<OptimizerOptions> clone() const override { return std::make_unique<RMSpropOptions>(*this); }
  double get_lr() const override { return lr_; }
  void set_lr(double lr) override { lr_ = lr; }
  /// lr, eps, weight_decay, momentum >= 0; alpha in [0, 1].
  void validate(const std::string& who) const override;
  void visit(const Visitor& f) override;
};

class RMSprop : public Optimizer {
 public:
  RMSprop(std::vector<Tensor> params, const RMSpropOptions& defaults = {});
  RMSprop(std::vector<ParamGroup> groups, const RMSpropOptions& defaults = {});

 protected:
  void update(Tensor& param, const Tensor& grad, ParamState& state, const OptimizerOptions& options) override;
  bool accepts(const OptimizerOptions& o) const override { return dynamic_cast<const RMSpropOptions*>(&o) != nullptr; }
};

}  // namespace tg::optim
