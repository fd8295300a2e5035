#pragma once
/// Delta-bar-delta (Jacobs 1988, "Increased rates of convergence through learning rate
/// adaptation"): every parameter element has its own learning rate ε, starting at lr. With
/// d = g + weight_decay·p the gradient and δ̄ its exponential average:
///   ε += kappa          if δ̄·d > 0   (the gradient kept the sign of its recent average)
///   ε *= 1 − phi        if δ̄·d < 0   (the sign flipped: oscillation)
///   δ̄ = (1 − theta)·d + theta·δ̄;   p -= ε·d
/// (δ̄ is the average before this step's update; it starts at 0, so the first step is plain SGD).
///   tg::optim::DeltaBarDelta opt(params, tg::optim::DeltaBarDeltaOptions(0.01).kappa(1e-3).phi(0.1));
/// kappa is an absolute increment, so it must match the scale of lr: it defaults to lr/10 (the
/// lr given to the constructor), which keeps the method scale-free; phi = 0.1, theta = 0.7.
/// The per-element rates are state: after the first step the group's lr (and any scheduler)
/// no longer changes them. State: "rates", "bar_delta".
#include "optimizer.hpp"

namespace tg::optim {

class DeltaBarDeltaOptions : public OptimizerOptions {
 public:
  DeltaBarDeltaOptions(double lr) : lr_(lr), kappa_(lr / 10) {}  // NOLINT: implicit, like SGDOptions
  TG_ARG(double, lr);
  TG_ARG(double, kappa);
  TG_ARG(double, phi) = 0.1;
  TG_ARG(double, theta) = 0.7;
  TG_ARG(double, weight_decay) = 0.0;

 public:
  std::unique_ptr<OptimizerOptions> clone() const override { return std::make_unique<DeltaBarDeltaOptions>(*this); }
  double get_lr() const override { return lr_; }
  void set_lr(double lr) override { lr_ = lr; }
  /// lr, kappa, weight_decay >= 0; phi in [0, 1]; theta in [0, 1).
  void validate(const std::string& who) const override;
  void visit(const Visitor& f) override;
};

class DeltaBarDelta : public Optimizer {
 public:
  DeltaBarDelta(std::vector<Tensor> params, const DeltaBarDeltaOptions& defaults);
  DeltaBarDelta(std::vector<ParamGroup> groups, const DeltaBarDeltaOptions& defaults);

 protected:
  void update(Tensor& param, const Tensor& grad, ParamState& state, const OptimizerOptions& options) override;
  bool accepts(const OptimizerOptions& o) const override {
    return dynamic_cast<const DeltaBarDeltaOptions*>(&o) != nullptr;
  }
};

}  // namespace tg::optim
