#pragma once
/// Adam and AdamW, step for step as torch.optim.Adam / AdamW (PyTorch 1.13). With t the step:
///   Adam:  d = ±g + weight_decay·p          AdamW: d = ±g;  p *= 1 − lr·weight_decay
///   m = β1·m + (1 − β1)·d;  v = β2·v + (1 − β2)·d²;  v̂ = max(v̂, v) (amsgrad) or v
///   p -= lr/(1 − β1^t) · m / (√v̂ / √(1 − β2^t) + eps)
///   tg::optim::Adam opt(params, tg::optim::AdamOptions(1e-3).betas({0.9, 0.999}).amsgrad(true));
/// State: "exp_avg", "exp_avg_sq", and "max_exp_avg_sq" with amsgrad.
#include <tuple>

#include "optimizer.hpp"

namespace tg::optim {

/// (beta1, beta2): the decay rates of the first and second moment averages.
using Betas = std::tuple<double, double>;

class AdamOptions : public OptimizerOptions {
 public:
  AdamOptions(double lr = 1e-3) : lr_(lr) {}  // NOLINT: implicit, as libtorch's
  TG_ARG(double, lr);
  TG_ARG(Betas, betas) = std::make_tuple(0.9, 0.999);
  TG_ARG(double, eps) = 1e-8;
  TG_ARG(double, weight_decay) = 0.0;
  TG_ARG(bool, amsgrad) = false;
  TG_ARG(bool, maximize) = false;

 public:
  std::unique_ptr<OptimizerOptions> clone() const override { return std::make_unique<AdamOptions>(*this); }
  double get_lr() const override { return lr_; }
  void set_lr(double lr) override { lr_ = lr; }
  /// lr, eps, weight_decay >= 0; both betas in [0, 1).
  void validate(const std::string& who) const override;
  void visit(const Visitor& f) override;
};

/// AdamW's options: Adam's, with decoupled weight decay defaulting to 1e-2 as in PyTorch.
class AdamWOptions : public OptimizerOptions {
 public:
  AdamWOptions(double lr = 1e-3) : lr_(lr) {}  // NOLINT: implicit, as libtorch's
  TG_ARG(double, lr);
  TG_ARG(Betas, betas) = std::make_tuple(0.9, 0.999);
  TG_ARG(double, eps) = 1e-8;
  TG_ARG(double, weight_decay) = 1e-2;
  TG_ARG(bool, amsgrad) = false;
  TG_ARG(bool, maximize) = false;

 public:
  std::unique_ptr<OptimizerOptions> clone() const override { return std::make_unique<AdamWOptions>(*this); }
  double get_lr() const override { return lr_; }
  void set_lr(double lr) override { lr_ = lr; }
  void validate(const std::string& who) const override;
  void visit(const Visitor& f) override;
};

class Adam : public Optimizer {
 public:
  Adam(std::vector<Tensor> params, const AdamOptions& defaults = {});
  Adam(std::vector<ParamGroup> groups, const AdamOptions& defaults = {});

 protected:
  void update(Tensor& param, const Tensor& grad, ParamState& state, const OptimizerOptions& options) override;
  bool accepts(const OptimizerOptions& o) const override { return dynamic_cast<const AdamOptions*>(&o) != nullptr; }
};

class AdamW : public Optimizer {
 public:
  AdamW(std::vector<Tensor> params, const AdamWOptions& defaults = {});
  AdamW(std::vector<ParamGroup> groups, const AdamWOptions& defaults = {});

 protected:
  void update(Tensor& param, const Tensor& grad, ParamState& state, const OptimizerOptions& options) override;
  bool accepts(const OptimizerOptions& o) const override { return dynamic_cast<const AdamWOptions*>(&o) != nullptr; }
};

}  // namespace tg::optim
