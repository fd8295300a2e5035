// tapegrad-train's optimizers, schedules and checkpoints (trainer.hpp); the command line is in
// trainer_args.cpp. Checkpoints are user input, so they are fuzzed (tests/fuzz/); every failure
// is a UsageError or a tg::Error.
#include "trainer.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>

#include "models.hpp"

namespace trainer {
using tg::Tensor;

const std::vector<std::string>& optimizer_names() {
  static const std::vector<std::string> names = {"sgd", "adam", "adamw", "rmsprop", "adagrad", "delta-bar-delta"};
  return names;
}

const std::vector<std::string>& scheduler_names() {
  static const std::vector<std::string> names = {"none", "step", "exp", "inv-time", "cosine"};
  return names;
}

std::unique_ptr<tg::optim::Optimizer> make_optimizer(const Args& a, const std::vector<Tensor>& params) {
  namespace O = tg::optim;
  if (a.optimizer == "sgd")
    return std::make_unique<O::SGD>(params, O::SGDOptions(a.lr).momentum(a.momentum).nesterov(a.nesterov && a.momentum > 0)
                                                .weight_decay(a.weight_decay));
  if (a.optimizer == "adam") return std::make_unique<O::Adam>(params, O::AdamOptions(a.lr).weight_decay(a.weight_decay));
  if (a.optimizer == "adamw") return std::make_unique<O::AdamW>(params, O::AdamWOptions(a.lr).weight_decay(a.weight_decay));
  if (a.optimizer == "rmsprop")
    return std::make_unique<O::RMSprop>(params, O::RMSpropOptions(a.lr).momentum(a.momentum).weight_decay(a.weight_decay));
  if (a.optimizer == "adagrad")
    return std::make_unique<O::Adagrad>(params, O::AdagradOptions(a.lr).weight_decay(a.weight_decay));
  return std::make_unique<O::DeltaBarDelta>(params, O::DeltaBarDeltaOptions(a.lr));
}

std::unique_ptr<tg::optim::LRScheduler> make_scheduler(const Args& a, tg::optim::Optimizer& opt) {
  namespace O = tg::optim;
  if (a.scheduler == "step") return std::make_unique<O::StepLR>(opt, std::max<int64_t>(1, a.epochs / 3), 0.1);
  if (a.scheduler == "exp") return std::make_unique<O::ExponentialLR>(opt, 0.8);
  if (a.scheduler == "inv-time") return std::make_unique<O::InverseTimeLR>(opt, 0.5);
  if (a.scheduler == "cosine") return std::make_unique<O::CosineAnnealingLR>(opt, a.epochs, 0.0);
  return nullptr;
}

// ---- checkpoints: model, optimizer, scheduler, RNG, epoch and history in one safetensors file ----
namespace {
// The flags that shape a run, as the checkpoint's metadata records them. The first four fix
// what was trained on and how it was drawn, so a resumed run cannot change them; the others are
// applied from the epoch the run resumes at.
const char* const kFixedOnResume[] = {"model", "optimizer", "batch-size", "seed"};

std::map<std::string, std::string> run_flags(const Args& a) {
  return {{"model", a.model},
          {"optimizer", a.optimizer},
          {"batch-size", std::to_string(a.batch_size)},
          {"seed", std::to_string(a.seed)},
          {"epochs", std::to_string(a.epochs)},
          {"lr", fmt::format("{}", a.lr)},
          {"momentum", fmt::format("{}", a.momentum)},
          {"weight-decay", fmt::format("{}", a.weight_decay)},
          {"nesterov", a.nesterov ? "true" : "false"},
          {"scheduler", a.scheduler},
          {"augment", a.augment ? "true" : "false"}};
}

// The learning rates of epochs 1..n under the plan of `a` (a scheduler on a throwaway optimizer).
std::vector<double> planned_lrs(const Args& a, int64_t n) {
  Tensor p = tg::zeros({1}).requires_grad_();
  auto opt = make_optimizer(a, {p});
  auto sched = make_scheduler(a, *opt);
  std::vector<double> lrs;
  for (int64_t e = 0; e < n; ++e) {
    lrs.push_back(opt->param_groups()[0].options().get_lr());
    if (sched) sched->step();
  }
  return lrs;
}

// The value of metadata key k, "" when absent.
std::string saved(const std::map<std::string, std::string>& meta, const std::string& k) {
  auto it = meta.find(k);
  return it == meta.end() ? std::string() : it->second;
}

// A checkpoint's metadata is user input like the rest of the file: numbers are parsed whole
// and range-checked before they size a loop or become an int64 (1e300 or NaN would be UB).
int64_t meta_count(const std::string& path, const std::string& key, const std::string& v, int64_t lo) {
  size_t used = 0;
  int64_t r = 0;
  try {
    r = std::stoll(v, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (v.empty() || used != v.size() || r < lo)
    throw tg::Error(fmt::format("--resume: {}: its metadata has {} '{}', expected an integer >= {}", path, key,
                                v.substr(0, 40), lo));
  return r;
}
double meta_rate(const std::string& path, const std::string& key, const std::string& v) {
  size_t used = 0;
  double r = 0;
  try {
    r = std::stod(v, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (v.empty() || used != v.size() || !(r > 0) || !std::isfinite(r))
    throw tg::Error(fmt::format("--resume: {}: its metadata has {} '{}', expected a positive number", path, key,
                                v.substr(0, 40)));
  return r;
}

// The epochs a checkpoint has done, from its metadata.
int64_t checkpoint_epoch(const std::string& path, const std::map<std::string, std::string>& meta) {
  if (!meta.count("epoch"))
    throw tg::Error(fmt::format("--resume: {} is not a tapegrad-train checkpoint (no epoch in its metadata)", path));
  return meta_count(path, "epoch", meta.at("epoch"), 1);
}

// The metrics history: one row of 8 per epoch done, epochs 1..done in order (save_checkpoint
// writes nothing else); its values become int64 epochs and the rows of metrics.csv.
std::vector<EpochMetrics> checkpoint_history(const std::string& path, const std::map<std::string, Tensor>& all,
                                             int64_t done) {
  auto it = all.find("history");
  if (it == all.end())
    throw tg::Error(fmt::format("--resume: {}: no history tensor (the metrics of the {} epochs done)", path, done));
  const Tensor& t = it->second;
  if (t.dim() != 2 || t.size(0) != done || t.size(1) != 8)
    throw tg::Error(fmt::format("--resume: {}: history has shape {}, expected [{}, 8] (one row per epoch done)", path,
                                tg::shape_str(t.shape()), done));
  const auto h = t.to_vector<double>();
  std::vector<EpochMetrics> out;
  for (int64_t k = 0; k < done; ++k) {
    const double* r = &h[size_t(8 * k)];
    if (r[0] != double(k + 1))
      throw tg::Error(fmt::format("--resume: {}: history row {} is for epoch {}, expected {}", path, k, r[0], k + 1));
    out.push_back({k + 1, r[1], r[2], r[3], r[4], r[5], r[6], r[7]});
  }
  return out;
}

// Checks this run's flags against the checkpoint's, which has done `done` epochs (the fixed ones
// must agree; a changed one is said, when `say`: rank 0 alone speaks).
void check_resume_flags(const std::string& path, const Args& a, const std::map<std::string, std::string>& meta,
                        int64_t done, bool say) {
  auto saved = [&](const std::string& k) { return trainer::saved(meta, k); };
  const auto now = run_flags(a);
  for (const char* k : kFixedOnResume) {
    const std::string was = saved(k);
    if (!was.empty() && was != now.at(k))
      throw UsageError(fmt::format("--resume: {} was trained with --{} {}; --{} cannot change on resume (got {})",
                                   path, k, was, k, now.at(k)));
  }
  for (const auto& [k, v] : now) {
    const std::string was = saved(k);
    if (was.empty() || was == v ||
        std::find(std::begin(kFixedOnResume), std::end(kFixedOnResume), k) != std::end(kFixedOnResume))
      continue;
    if (say)
      std::printf("resume: --%s %s (the checkpoint's run had %s), applied from epoch %lld\n", k.c_str(), v.c_str(),
                  was.c_str(), (long long)(done + 1));
  }
  if (say && done >= a.epochs)
    std::printf("resume: %s has already done %lld epochs; --epochs %lld trains no more\n", path.c_str(),
                (long long)done, (long long)a.epochs);
  // A schedule planned for another horizon may have given the epochs already done other rates.
  Args before = a;
  if (!saved("epochs").empty()) before.epochs = meta_count(path, "epochs", saved("epochs"), 1);
  if (!saved("lr").empty()) before.lr = meta_rate(path, "lr", saved("lr"));
  if (!saved("scheduler").empty()) {
    before.scheduler = saved("scheduler");
    const auto& known = scheduler_names();
    if (std::find(std::begin(known), std::end(known), before.scheduler) == std::end(known))
      throw tg::Error(fmt::format("--resume: {}: its metadata has scheduler '{}', expected one of {}", path,
                                  before.scheduler.substr(0, 40), fmt::join(known, ", ")));
  }
  if (say && planned_lrs(before, done) != planned_lrs(a, done))
    std::printf("resume: this run's schedule gives epochs 1-%lld other learning rates than the ones they were "
                "trained with, so it will not end where a straight %lld-epoch run ends\n",
                (long long)done, (long long)a.epochs);
}

}  // namespace

void save_checkpoint(const std::string& path, const Args& a, const tg::nn::Module& model, tg::optim::Optimizer& opt,
                     tg::optim::LRScheduler* sched, int64_t epoch, const std::vector<EpochMetrics>& hist) {
  std::map<std::string, Tensor> t;
  for (auto& [k, v] : model.state_dict()) t["model." + k] = v;
  for (auto& [k, v] : opt.state_dict()) t["optim." + k] = v;
  if (sched)
    for (auto& [k, v] : sched->state_dict()) t["sched." + k] = v;
  std::vector<double> h;
  for (const auto& m : hist)
    h.insert(h.end(), {double(m.epoch), m.train_loss, m.train_acc, m.test_loss, m.test_acc, m.test_top5, m.seconds,
                       m.samples_per_s});
  if (!h.empty()) t["history"] = tg::tensor(h, {int64_t(hist.size()), 8}, tg::kFloat64);
  std::map<std::string, std::string> meta = run_flags(a);
  meta["epoch"] = std::to_string(epoch);
  meta["rng"] = tg::get_rng_state();
  tg::save_tensors(t, path, meta);
}

Resumed load_checkpoint(const std::string& path, const Args& a, tg::nn::Module& model, tg::optim::Optimizer& opt,
                        tg::optim::LRScheduler* sched, bool say) {
  std::map<std::string, std::string> meta;
  auto all = tg::load_tensors(path, &meta);  // a corrupt file: an error naming it
  Resumed r;
  r.epochs_done = checkpoint_epoch(path, meta);
  r.history = checkpoint_history(path, all, r.epochs_done);  // bounds epochs_done by the file's size
  if (saved(meta, "rng").empty())
    throw tg::Error(fmt::format("--resume: {}: no rng in its metadata (the random generator's state)", path));
  check_resume_flags(path, a, meta, r.epochs_done, say);
  try {
    model.load_state_dict(with_prefix(all, "model."));
    // The optimizer's buffers (momentum, moments, steps) come from the checkpoint; its options
    // are this run's flags, so a changed --lr, --momentum or --weight-decay is applied.
    tg::optim::StateDict osd = with_prefix(all, "optim.");
    for (auto& [k, v] : opt.state_dict())
      if (k.rfind("param_groups.", 0) == 0) osd[k] = v;
    opt.load_state_dict(osd);
    // The schedule is a closed form of the epochs done: this run's schedule (its horizon is
    // this run's --epochs) continues at t = done.
    if (sched) {
      tg::optim::StateDict ssd = sched->state_dict();
      ssd["last_epoch"] = tg::scalar_tensor(double(r.epochs_done), tg::kInt64);
      sched->load_state_dict(ssd);
    }
    tg::set_rng_state(meta.at("rng"));
  } catch (const tg::Error& e) {
    throw tg::Error(fmt::format("--resume: {}: {}", path, e.what()));
  }
  return r;
}

std::map<std::string, Tensor> with_prefix(const std::map<std::string, Tensor>& all, const std::string& prefix) {
  std::map<std::string, Tensor> out;
  for (auto& [k, v] : all)
    if (k.compare(0, prefix.size(), prefix) == 0) out[k.substr(prefix.size())] = v;
  return out;
}

}  // namespace trainer
