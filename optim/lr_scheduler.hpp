#pragma once
/// Learning-rate schedulers. A scheduler takes the optimizer and is stepped once per epoch or
/// per iteration, as the user chooses; each step writes one learning rate into every parameter
/// group:
///   tg::optim::SGD opt(params, tg::optim::SGDOptions(0.1).momentum(0.9));
///   tg::optim::StepLR sched(opt, /*step_size=*/30, /*gamma=*/0.1);
///   for (epoch ...) { train_one_epoch(opt); sched.step(); }
///
/// The schedules are closed forms of the step count t (lr = f(base_lr, t), base_lr the group's
/// lr when the scheduler was made), so they compose (LinearWarmup wraps another schedule), a
/// resumed run needs only t, and the values equal PyTorch's chainable ones up to rounding. A
/// change made to a group's lr by other means is overwritten at the next step.
/// Constructing a scheduler applies f(base_lr, 0), as PyTorch's constructor does. A scheduler
/// keeps a reference to its optimizer, which must outlive it.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "optimizer.hpp"

namespace tg::optim {

class LRScheduler {
 public:
  virtual ~LRScheduler() = default;
  LRScheduler(const LRScheduler&) = delete;
  LRScheduler& operator=(const LRScheduler&) = delete;

  /// t += 1, then every group's lr = lr_at(t, group).
  virtual void step();
  /// The learning rates this scheduler set last, one per parameter group (as PyTorch's).
  const std::vector<double>& get_last_lr() const { return last_lr_; }
  /// Steps taken (PyTorch's last_epoch: 0 right after construction).
  int64_t last_epoch() const { return last_epoch_; }
  const std::vector<double>& base_lrs() const { return base_lrs_; }
  /// Group `group`'s learning rate after t steps; no side effects.
  virtual double lr_at(int64_t t, size_t group) const = 0;

  /// Keys: "last_epoch" (int64 0-d), "base_lrs" and "last_lr" (float64 [groups]); LinearWarmup
  /// adds the wrapped schedule's keys prefixed with "after.".
  virtual StateDict state_dict() const;
  /// Restores t and base_lrs and writes lr_at(t) into the optimizer's groups: the saved
  /// learning rates when this scheduler has the saved one's parameters; when it was constructed
  /// with others (a longer T_max, another gamma), the new schedule's rate at step t. To keep new
  /// base rates instead of the saved ones, replace "base_lrs" in the dict before loading.
  virtual void load_state_dict(const StateDict& sd);

 protected:
  LRScheduler(Optimizer& optimizer, std::string name);
  /// Derived constructors call this last: t = 0 and the lrs lr_at(0, ·) are applied.
  void initial_step();

  Optimizer& optimizer_;
  std::string name_;
  std::vector<double> base_lrs_;

 private:
  void apply();  // writes lr_at(last_epoch_, ·) into the groups and last_lr_
  int64_t last_epoch_ = 0;
  std::vector<double> last_lr_;
  friend class LinearWarmup;
};

/// lr = base_lr · gamma^⌊t / step_size⌋.
class StepLR : public LRScheduler {
 public:
  StepLR(Optimizer& optimizer, int64_t step_size, double gamma = 0.1);
  double lr_at(int64_t t, size_t group) const override;

 private:
  int64_t step_size_;
  double gamma_;
};

/// lr = base_lr · gamma^(number of milestones <= t); milestones in any order, repeats count twice.
class MultiStepLR : public LRScheduler {
 public:
  MultiStepLR(Optimizer& optimizer, std::vector<int64_t> milestones, double gamma = 0.1);
  double lr_at(int64_t t, size_t group) const override;

 private:
  std::vector<int64_t> milestones_;  // sorted
  double gamma_;
};

/// lr = base_lr · gamma^t.
class ExponentialLR : public LRScheduler {
 public:
  ExponentialLR(Optimizer& optimizer, double gamma);
  double lr_at(int64_t t, size_t group) const override;

 private:
  double gamma_;
};

/// lr = base_lr / (1 + k·t).
class InverseTimeLR : public LRScheduler {
 public:
  InverseTimeLR(Optimizer& optimizer, double k);
  double lr_at(int64_t t, size_t group) const override;

 private:
  double k_;
};

/// lr = eta_min + (base_lr − eta_min)·(1 + cos(π·t / T_max)) / 2 (periodic past T_max, as PyTorch's).
class CosineAnnealingLR : public LRScheduler {
 public:
  CosineAnnealingLR(Optimizer& optimizer, int64_t T_max, double eta_min = 0.0);  // NOLINT: PyTorch's name
  double lr_at(int64_t t, size_t group) const override;

 private:
  int64_t T_max_;
  double eta_min_;
};

/// Linear warm-up over warmup_steps steps, then the wrapped schedule (started afresh):
///   t < warmup_steps:  lr = base_lr · (start_factor + (1 − start_factor) · t / warmup_steps)
///   t >= warmup_steps: lr = after.lr_at(t − warmup_steps), or base_lr without `after`.
///   auto cosine = std::make_shared<tg::optim::CosineAnnealingLR>(opt, 90);
///   tg::optim::LinearWarmup sched(opt, 10, cosine);   // step only `sched`
/// Equals PyTorch's SequentialLR([LinearLR(start_factor, total_iters=warmup_steps), after],
/// milestones=[warmup_steps]). The wrapped scheduler must be on the same optimizer; its
/// last_epoch and get_last_lr follow the warm-up's steps.
class LinearWarmup : public LRScheduler {
 public:
  LinearWarmup(Optimizer& optimizer, int64_t warmup_steps, std::shared_ptr<LRScheduler> after = nullptr,
               double start_factor = 1.0 / 3);
  double lr_at(int64_t t, size_t group) const override;
  StateDict state_dict() const override;
  void load_state_dict(const StateDict& sd) override;
  void step() override;

 private:
  int64_t warmup_steps_;
  std::shared_ptr<LRScheduler> after_;
  double start_factor_;
};

enum class PlateauMode { Min, Max };
enum class ThresholdMode { Rel, Abs };

/// Options of ReduceLROnPlateau, PyTorch's names and defaults.
class ReduceLROnPlateauOptions {
  TG_ARG(PlateauMode, mode) = PlateauMode::Min;
  TG_ARG(double, factor) = 0.1;
  TG_ARG(int64_t, patience) = 10;
  TG_ARG(double, threshold) = 1e-4;
  TG_ARG(ThresholdMode, threshold_mode) = ThresholdMode::Rel;
  TG_ARG(int64_t, cooldown) = 0;
  TG_ARG(double, eps) = 1e-8;

 public:
  /// One floor for every group, or one per group.
  ReduceLROnPlateauOptions& min_lr(double v) {
    min_lr_ = {v};
    return *this;
  }
  ReduceLROnPlateauOptions& min_lr(std::vector<double> v) {
    min_lr_ = std::move(v);
    return *this;
  }
  const std::vector<double>& min_lr() const { return min_lr_; }

 private:
  std::vector<double> min_lr_{0.0};
};

/// Multiplies every group's lr by factor (not below min_lr) when the metric has not improved
/// for more than `patience` steps; after a reduction, waits `cooldown` steps before counting
/// again. Improvement: metric < best·(1 − threshold) (min, rel), < best − threshold (min, abs),
/// > best·(1 + threshold) (max, rel), > best + threshold (max, abs). A reduction smaller than
/// eps is skipped. As torch.optim.lr_scheduler.ReduceLROnPlateau.
///   tg::optim::ReduceLROnPlateau sched(opt, tg::optim::ReduceLROnPlateauOptions().patience(5).factor(0.5));
///   sched.step(validation_loss);
class ReduceLROnPlateau {
 public:
  explicit ReduceLROnPlateau(Optimizer& optimizer, ReduceLROnPlateauOptions options = {});
  void step(double metric);
  /// The groups' learning rates after the last step (one per group).
  const std::vector<double>& get_last_lr() const { return last_lr_; }
  const ReduceLROnPlateauOptions& options() const { return options_; }
  double best() const { return best_; }
  int64_t num_bad_epochs() const { return num_bad_epochs_; }

  /// Keys (0-d): "best" (float64), "num_bad_epochs", "cooldown_counter", "last_epoch" (int64),
  /// and "last_lr" (float64 [groups]).
  StateDict state_dict() const;
  /// Restores the keys above and writes last_lr into the optimizer's groups.
  void load_state_dict(const StateDict& sd);

 private:
  bool is_better(double a) const;
  Optimizer& optimizer_;
  ReduceLROnPlateauOptions options_;
  std::vector<double> min_lrs_;  // one per group
  double best_;
  int64_t num_bad_epochs_ = 0, cooldown_counter_ = 0, last_epoch_ = 0;
  std::vector<double> last_lr_;
};

}  // namespace tg::optim
