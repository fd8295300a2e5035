#pragma once
/// L-BFGS, iteration for iteration as torch.optim.LBFGS (PyTorch 1.13). All parameters form one
/// flat vector x with gradient g; each step(closure) runs up to max_iter iterations of
///   d = −H·g     H: the inverse-Hessian estimate from the last history_size pairs
///                (s = t·d, y = g_new − g_old, kept when y·s > 1e-10), by the two-loop recursion,
///                starting from H0 = (y·s)/(y·y)·I; the very first iteration takes d = −g
///   x = x + t·d  t = lr (the very first iteration: min(1, 1/‖g‖₁)·lr), or the step a strong-Wolfe
///                line search finds from t (line_search_fn "strong_wolfe": cubic interpolation,
///                c1 = 1e-4, c2 = 0.9, at most 25 evaluations)
/// and returns the loss of the closure's first call. See docs/optim.md for the stopping rules.
///
///   tg::optim::LBFGS opt(params, tg::optim::LBFGSOptions(1).history_size(10).line_search_fn("strong_wolfe"));
///   tg::Tensor loss = opt.step([&] { opt.zero_grad(); tg::Tensor l = f(); l.backward(); return l; });
///
/// One parameter group only, as PyTorch. The state is global (not per parameter), kept across
/// step() calls and saved by state_dict() under state.0.* (func_evals, n_iter, d, t, old_dirs,
/// old_stps, ro, H_diag, prev_flat_grad, prev_loss).
#include <cstdint>
#include <deque>
#include <optional>
#include <string>

#include "optimizer.hpp"

namespace tg::optim {

class LBFGSOptions : public OptimizerOptions {
 public:
  LBFGSOptions(double lr = 1) : lr_(lr) {}  // NOLINT: implicit, as libtorch's
  TG_ARG(double, lr);
  /// Iterations per step() call (>= 1).
  TG_ARG(int64_t, max_iter) = 20;
  /// Closure evaluations per step() call (>= 1); unset: max_iter * 5 / 4, fixed when the
  /// optimizer is built (as PyTorch).
  TG_ARG(std::optional<int64_t>, max_eval);
  /// Stop when max |g| <= tolerance_grad.
  TG_ARG(double, tolerance_grad) = 1e-7;
  /// Stop when the step, the loss change or the directional derivative is below it.
  TG_ARG(double, tolerance_change) = 1e-9;
  /// Correction pairs (s, y) kept (>= 1).
  TG_ARG(int64_t, history_size) = 100;
  /// "" (fixed steps t = lr) or "strong_wolfe".
  TG_ARG(std::string, line_search_fn) = "";

 public:
  std::unique_ptr<OptimizerOptions> clone() const override { return std::make_unique<LBFGSOptions>(*this); }
  double get_lr() const override { return lr_; }
  void set_lr(double lr) override { lr_ = lr; }
  /// lr, tolerance_grad, tolerance_change >= 0 and finite; max_iter, max_eval, history_size >= 1;
  /// line_search_fn "" or "strong_wolfe".
  void validate(const std::string& who) const override;
  /// In the state dict: max_eval as its value, line_search_fn as 0 ("") or 1 ("strong_wolfe").
  void visit(const Visitor& f) override;
};

class LBFGS : public Optimizer {
 public:
  /// Throws tg::Error unless there is exactly one group whose parameters share one dtype.
  LBFGS(std::vector<Tensor> params, const LBFGSOptions& defaults = {});
  LBFGS(std::vector<ParamGroup> groups, const LBFGSOptions& defaults = {});

  /// Runs the iterations. closure: zero the gradients, compute the loss (a one-element tensor),
  /// call backward, return the loss; it is called with grad mode on, once per function
  /// evaluation. Returns the loss of its first call (before any update), as PyTorch.
  Tensor step(const LossClosure& closure) override;

  /// The options (param_groups.0.*) and, after a step, the state under state.0.*: func_evals,
  /// n_iter (int64 0-d); once an iteration ran also d, prev_flat_grad (the parameters' dtype,
  /// [N], N the parameters' total size), old_dirs, old_stps ([k, N], oldest first), ro (float64
  /// [k]), t, H_diag, prev_loss (float64 0-d).
  StateDict state_dict() const override;
  /// Restores state_dict(); checks every key and shape first, and on error changes nothing.
  void load_state_dict(const StateDict& sd) override;

 protected:
  void update(Tensor& param, const Tensor& grad, ParamState& state, const OptimizerOptions& options) override;
  bool accepts(const OptimizerOptions& o) const override { return dynamic_cast<const LBFGSOptions*>(&o) != nullptr; }

 private:
  /// What torch.optim.LBFGS keeps in state[params[0]]; vectors are flat, in the parameters' dtype.
  struct State {
    int64_t func_evals = 0;
    int64_t n_iter = 0;            // iterations over all step() calls
    Tensor d;                      // the last direction
    double t = 0;                  // the last step length
    std::deque<Tensor> old_dirs;   // y pairs, oldest first
    std::deque<Tensor> old_stps;   // s pairs
    std::deque<double> ro;         // 1 / (y·s)
    double H_diag = 1;
    Tensor prev_flat_grad;
    double prev_loss = 0;
  };
  State lbfgs_;
};

}  // namespace tg::optim
