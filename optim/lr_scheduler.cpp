// Learning-rate schedulers: closed forms of the step count, and ReduceLROnPlateau.
#include "lr_scheduler.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "detail.hpp"

namespace tg::optim {
namespace {

constexpr double kPi = 3.14159265358979323846;

Tensor vector_tensor(const std::vector<double>& v) { return tg::tensor(v, {int64_t(v.size())}, kFloat64); }

const Tensor& find_key(const StateDict& sd, const std::string& key, const std::string& who) {
  auto it = sd.find(key);
  if (it == sd.end() || !it->second.defined()) throw Error(fmt::format("{}: missing key '{}'", who, key));
  return it->second;
}

double scalar_key(const StateDict& sd, const std::string& key, const std::string& who) {
  const Tensor& t = find_key(sd, key, who);
  if (t.numel() != 1)
    throw Error(fmt::format("{}: key '{}' should hold one value, got shape {}", who, key, shape_str(t.shape())));
  return t.item<double>();
}

int64_t count_key(const StateDict& sd, const std::string& key, const std::string& who) {
  double v = scalar_key(sd, key, who);
  if (!(v >= 0) || v != std::floor(v) || v > 9e15)
    throw Error(fmt::format("{}: key '{}' should be a non-negative integer, got {}", who, key, v));
  return int64_t(v);
}

std::vector<double> vector_key(const StateDict& sd, const std::string& key, size_t n, const std::string& who) {
  const Tensor& t = find_key(sd, key, who);
  if (t.numel() != int64_t(n))
    throw Error(
        fmt::format("{}: key '{}' has {} values, the optimizer has {} parameter groups", who, key, t.numel(), n));
  return t.to_vector<double>();
}

std::vector<double> group_lrs(const Optimizer& opt) {
  std::vector<double> lrs;
  for (const ParamGroup& g : opt.param_groups()) lrs.push_back(g.options().get_lr());
  return lrs;
}

void check_groups(const Optimizer& opt, size_t n, const std::string& who) {
  if (opt.param_groups().size() != n)
    throw Error(fmt::format("{}: the optimizer has {} parameter groups, the scheduler was made for {}", who,
                            opt.param_groups().size(), n));
}

}  // namespace

// ---- LRScheduler ----
LRScheduler::LRScheduler(Optimizer& optimizer, std::string name)
    : optimizer_(optimizer), name_(std::move(name)), base_lrs_(group_lrs(optimizer)) {}

void LRScheduler::initial_step() {
  last_epoch_ = 0;
  apply();
}

void LRScheduler::step() {
  ++last_epoch_;
  apply();
}

void LRScheduler::apply() {
  check_groups(optimizer_, base_lrs_.size(), name_ + ".step");
  last_lr_.resize(base_lrs_.size());
  for (size_t i = 0; i < base_lrs_.size(); ++i) {
    last_lr_[i] = lr_at(last_epoch_, i);
    optimizer_.param_groups()[i].options().set_lr(last_lr_[i]);
  }
}

StateDict LRScheduler::state_dict() const {
  return {{"last_epoch", tg::scalar_tensor(double(last_epoch_), kInt64)},
          {"base_lrs", vector_tensor(base_lrs_)},
          {"last_lr", vector_tensor(last_lr_)}};
}

void LRScheduler::load_state_dict(const StateDict& sd) {
  const std::string who = name_ + ".load_state_dict";
  check_groups(optimizer_, base_lrs_.size(), who);
  int64_t last_epoch = count_key(sd, "last_epoch", who);
  std::vector<double> base = vector_key(sd, "base_lrs", base_lrs_.size(), who);
  vector_key(sd, "last_lr", base_lrs_.size(), who);  // validated; recomputed below from t
  last_epoch_ = last_epoch;
  base_lrs_ = base;
  // The learning rate in force is this schedule's lr_at(t): the saved last_lr for an unchanged
  // schedule, the new plan's for one constructed with another horizon (a resumed run that was
  // given more epochs continues on the schedule planned for the new total).
  apply();
}

// ---- closed forms ----
StepLR::StepLR(Optimizer& optimizer, int64_t step_size, double gamma)
    : LRScheduler(optimizer, "StepLR"), step_size_(step_size), gamma_(gamma) {
  detail::check(step_size > 0, name_, "step_size", double(step_size), "> 0");
  detail::check_non_negative(name_, "gamma", gamma);
  initial_step();
}
double StepLR::lr_at(int64_t t, size_t group) const {
  return base_lrs_[group] * std::pow(gamma_, double(t / step_size_));
}

MultiStepLR::MultiStepLR(Optimizer& optimizer, std::vector<int64_t> milestones, double gamma)
    : LRScheduler(optimizer, "MultiStepLR"), milestones_(std::move(milestones)), gamma_(gamma) {
  for (int64_t m : milestones_) detail::check(m >= 0, name_, "milestone", double(m), ">= 0");
  detail::check_non_negative(name_, "gamma", gamma);
  std::sort(milestones_.begin(), milestones_.end());
  initial_step();
}
double MultiStepLR::lr_at(int64_t t, size_t group) const {
  auto passed = std::upper_bound(milestones_.begin(), milestones_.end(), t) - milestones_.begin();
  return base_lrs_[group] * std::pow(gamma_, double(passed));
}

ExponentialLR::ExponentialLR(Optimizer& optimizer, double gamma)
    : LRScheduler(optimizer, "ExponentialLR"), gamma_(gamma) {
  detail::check_non_negative(name_, "gamma", gamma);
  initial_step();
}
double ExponentialLR::lr_at(int64_t t, size_t group) const { return base_lrs_[group] * std::pow(gamma_, double(t)); }

InverseTimeLR::InverseTimeLR(Optimizer& optimizer, double k) : LRScheduler(optimizer, "InverseTimeLR"), k_(k) {
  detail::check_non_negative(name_, "k", k);
  initial_step();
}
double InverseTimeLR::lr_at(int64_t t, size_t group) const { return base_lrs_[group] / (1 + k_ * double(t)); }

CosineAnnealingLR::CosineAnnealingLR(Optimizer& optimizer, int64_t T_max, double eta_min)
    : LRScheduler(optimizer, "CosineAnnealingLR"), T_max_(T_max), eta_min_(eta_min) {
  detail::check(T_max > 0, name_, "T_max", double(T_max), "> 0");
  detail::check_non_negative(name_, "eta_min", eta_min);
  initial_step();
}
double CosineAnnealingLR::lr_at(int64_t t, size_t group) const {
  return eta_min_ + (base_lrs_[group] - eta_min_) * (1 + std::cos(kPi * double(t) / double(T_max_))) / 2;
}

// ---- LinearWarmup ----
LinearWarmup::LinearWarmup(Optimizer& optimizer, int64_t warmup_steps, std::shared_ptr<LRScheduler> after,
                           double start_factor)
    : LRScheduler(optimizer, "LinearWarmup"),
      warmup_steps_(warmup_steps),
      after_(std::move(after)),
      start_factor_(start_factor) {
  detail::check(warmup_steps >= 0, name_, "warmup_steps", double(warmup_steps), ">= 0");
  detail::check(start_factor >= 0 && start_factor <= 1, name_, "start_factor", start_factor, "in [0, 1]");
  if (after_) {
    if (&after_->optimizer_ != &optimizer)
      throw Error(fmt::format("{}: the wrapped {} is attached to another optimizer", name_, after_->name_));
    base_lrs_ = after_->base_lrs_;
  }
  initial_step();
}

double LinearWarmup::lr_at(int64_t t, size_t group) const {
  if (t < warmup_steps_)
    return base_lrs_[group] * (start_factor_ + (1 - start_factor_) * double(t) / double(warmup_steps_));
  return after_ ? after_->lr_at(t - warmup_steps_, group) : base_lrs_[group];
}

void LinearWarmup::step() {
  LRScheduler::step();
  if (after_ && last_epoch() >= warmup_steps_) {  // keep the wrapped schedule's view in step
    after_->last_epoch_ = last_epoch() - warmup_steps_;
    after_->last_lr_ = get_last_lr();
  }
}

StateDict LinearWarmup::state_dict() const {
  StateDict sd = LRScheduler::state_dict();
  if (after_)
    for (auto& [key, value] : after_->state_dict()) sd["after." + key] = value;
  return sd;
}

void LinearWarmup::load_state_dict(const StateDict& sd) {
  StateDict mine, wrapped;
  for (const auto& [key, value] : sd) (key.rfind("after.", 0) == 0 ? wrapped[key.substr(6)] : mine[key]) = value;
  if (after_) after_->load_state_dict(wrapped);
  LRScheduler::load_state_dict(mine);  // last: the warm-up's lrs are the ones in force
}

// ---- ReduceLROnPlateau ----
ReduceLROnPlateau::ReduceLROnPlateau(Optimizer& optimizer, ReduceLROnPlateauOptions options)
    : optimizer_(optimizer), options_(std::move(options)) {
  const std::string who = "ReduceLROnPlateau";
  const ReduceLROnPlateauOptions& o = options_;
  detail::check(o.factor() >= 0 && o.factor() < 1, who, "factor", o.factor(), "in [0, 1)");
  detail::check(o.patience() >= 0, who, "patience", double(o.patience()), ">= 0");
  detail::check_non_negative(who, "threshold", o.threshold());
  detail::check(o.cooldown() >= 0, who, "cooldown", double(o.cooldown()), ">= 0");
  detail::check_non_negative(who, "eps", o.eps());
  const size_t groups = optimizer.param_groups().size();
  if (o.min_lr().size() != 1 && o.min_lr().size() != groups)
    throw Error(
        fmt::format("{}: expected one min_lr or one per parameter group ({}), got {}", who, groups, o.min_lr().size()));
  for (double m : o.min_lr()) detail::check_non_negative(who, "min_lr", m);
  min_lrs_ = o.min_lr().size() == 1 ? std::vector<double>(groups, o.min_lr()[0]) : o.min_lr();
  best_ =
      o.mode() == PlateauMode::Min ? std::numeric_limits<double>::infinity() : -std::numeric_limits<double>::infinity();
  last_lr_ = group_lrs(optimizer);
}

bool ReduceLROnPlateau::is_better(double a) const {
  const double th = options_.threshold();
  const bool rel = options_.threshold_mode() == ThresholdMode::Rel;
  if (options_.mode() == PlateauMode::Min) return rel ? a < best_ * (1 - th) : a < best_ - th;
  return rel ? a > best_ * (th + 1) : a > best_ + th;
}

void ReduceLROnPlateau::step(double metric) {
  check_groups(optimizer_, min_lrs_.size(), "ReduceLROnPlateau.step");
  ++last_epoch_;
  if (is_better(metric)) {
    best_ = metric;
    num_bad_epochs_ = 0;
  } else {
    ++num_bad_epochs_;
  }
  if (cooldown_counter_ > 0) {
    --cooldown_counter_;
    num_bad_epochs_ = 0;  // bad epochs in cooldown do not count
  }
  if (num_bad_epochs_ > options_.patience()) {
    for (size_t i = 0; i < min_lrs_.size(); ++i) {
      OptimizerOptions& g = optimizer_.param_groups()[i].options();
      const double old_lr = g.get_lr(), new_lr = std::max(old_lr * options_.factor(), min_lrs_[i]);
      if (old_lr - new_lr > options_.eps()) g.set_lr(new_lr);
    }
    cooldown_counter_ = options_.cooldown();
    num_bad_epochs_ = 0;
  }
  last_lr_ = group_lrs(optimizer_);
}

StateDict ReduceLROnPlateau::state_dict() const {
  return {{"best", tg::scalar_tensor(best_, kFloat64)},
          {"num_bad_epochs", tg::scalar_tensor(double(num_bad_epochs_), kInt64)},
          {"cooldown_counter", tg::scalar_tensor(double(cooldown_counter_), kInt64)},
          {"last_epoch", tg::scalar_tensor(double(last_epoch_), kInt64)},
          {"last_lr", vector_tensor(last_lr_)}};
}

void ReduceLROnPlateau::load_state_dict(const StateDict& sd) {
  const std::string who = "ReduceLROnPlateau.load_state_dict";
  check_groups(optimizer_, min_lrs_.size(), who);
  double best = scalar_key(sd, "best", who);
  int64_t bad = count_key(sd, "num_bad_epochs", who), cooldown = count_key(sd, "cooldown_counter", who);
  int64_t last_epoch = count_key(sd, "last_epoch", who);
  std::vector<double> last = vector_key(sd, "last_lr", min_lrs_.size(), who);
  best_ = best;
  num_bad_epochs_ = bad;
  cooldown_counter_ = cooldown;
  last_epoch_ = last_epoch;
  last_lr_ = last;
  for (size_t i = 0; i < last_lr_.size(); ++i) optimizer_.param_groups()[i].options().set_lr(last_lr_[i]);
}

}  // namespace tg::optim
