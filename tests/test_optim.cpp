// Optimizers, schedulers and clipping. Golden trajectories come from PyTorch 1.13
// (tests/golden/generate_optim.py writes tests/golden/optim.txt): every optimizer and option
// combination is run for 50 steps on the same float64 problems here and compared after each step.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <tapegrad.hpp>

#include "golden_io.hpp"
#include <vector>

namespace optim = tg::optim;
using tg::Tensor;

namespace {

// ---- the golden file ----
using Fields = std::map<std::string, std::string>;
struct Run {
  std::string name;
  Fields fields;
  std::vector<std::vector<double>> rows;  // params (optimizers) or lrs (schedulers) per step
  std::vector<double> metrics;            // ReduceLROnPlateau only
};
struct Golden {
  std::map<std::string, Tensor> data;
  std::vector<Run> optimizers, schedulers;
};

using golden::numbers;

const Golden& golden_file() {
  static const Golden g = [] {
    Golden out;
    const std::string path = std::string(TAPEGRAD_GOLDEN_DIR) + "/optim.txt";
    std::ifstream f(path);
    if (!f) throw std::runtime_error("cannot open golden file " + path);
    Run* run = nullptr;
    for (std::string line; std::getline(f, line);) {
      if (line.empty() || line[0] == '#') continue;
      std::istringstream is(line);
      std::string kind;
      is >> kind;
      if (kind == "data") {
        std::string name, dims;
        is >> name >> dims;
        out.data[name] = tg::tensor(numbers(is), golden::parse_shape(dims), tg::kFloat64);
      } else if (kind == "case" || kind == "sched") {
        auto& list = kind == "case" ? out.optimizers : out.schedulers;
        list.emplace_back();
        run = &list.back();
        is >> run->name;
        run->fields = golden::fields(is);
      } else if (kind == "params" || kind == "lr") {
        run->rows.push_back(numbers(is));
      } else if (kind == "metric") {
        run->metrics.push_back(numbers(is).at(0));
      }
    }
    return out;
  }();
  return g;
}

std::optional<double> field(const Fields& f, const std::string& key) {
  auto it = f.find(key);
  if (it == f.end()) return std::nullopt;
  return std::stod(it->second);
}
bool flag(const Fields& f, const std::string& key) { return field(f, key).value_or(0) != 0; }
std::vector<double> list(const Fields& f, const std::string& key) {
  std::vector<double> v;
  std::stringstream ss(f.at(key));
  for (std::string tok; std::getline(ss, tok, ',');) v.push_back(std::stod(tok));
  return v;
}

// ---- the problems, built from the golden data ----
struct Problem {
  std::vector<Tensor> params;
  std::function<Tensor(const std::vector<Tensor>&)> loss;
  Tensor operator()() const { return loss(params); }
};

Problem make_problem(const std::string& name, tg::Dtype dtype = tg::kFloat64) {
  const auto& d = golden_file().data;
  Problem pb;
  for (const char* p : {".p0", ".p1"}) pb.params.push_back(d.at(name + p).to(dtype).clone().requires_grad_());
  if (name == "lsq") {
    Tensor X = d.at("lsq.X").to(dtype), Y = d.at("lsq.Y").to(dtype);
    pb.loss = [X, Y](const std::vector<Tensor>& p) { return (tg::matmul(X, p[0]) + p[1] - Y).pow(2).mean(); };
  } else {
    Tensor X = d.at("logreg.X").to(dtype), S = d.at("logreg.S").to(dtype);
    pb.loss = [X, S](const std::vector<Tensor>& p) {
      return tg::log(1.0 + tg::exp(-S * (tg::matmul(X, p[0]) + p[1]))).mean();
    };
  }
  return pb;
}

std::vector<double> flat(const std::vector<Tensor>& params) {
  std::vector<double> out;
  for (const Tensor& p : params)
    for (double v : p.to_vector<double>()) out.push_back(v);
  return out;
}

// Builds the optimizer a golden case describes; group_lr puts the second parameter in its own group.
template <typename Opt, typename Options>
std::unique_ptr<optim::Optimizer> build(const std::vector<Tensor>& params, const Options& o, const Fields& f) {
  if (auto glr = field(f, "group_lr")) {
    Options second = o;
    second.lr(*glr);
    std::vector<optim::ParamGroup> groups{optim::ParamGroup({params[0]}), optim::ParamGroup({params[1]}, second)};
    return std::make_unique<Opt>(groups, o);
  }
  return std::make_unique<Opt>(params, o);
}

std::unique_ptr<optim::Optimizer> make_optimizer(const Fields& f, const std::vector<Tensor>& params) {
  const std::string kind = f.at("opt");
  const double lr = *field(f, "lr");
  auto set = [&](const char* key, auto&& setter) {
    if (auto v = field(f, key)) setter(*v);
  };
  if (kind == "SGD") {
    optim::SGDOptions o(lr);
    set("momentum", [&](double v) { o.momentum(v); });
    set("dampening", [&](double v) { o.dampening(v); });
    set("weight_decay", [&](double v) { o.weight_decay(v); });
    o.nesterov(flag(f, "nesterov")).maximize(flag(f, "maximize"));
    return build<optim::SGD>(params, o, f);
  }
  if (kind == "Adagrad") {
    optim::AdagradOptions o(lr);
    set("lr_decay", [&](double v) { o.lr_decay(v); });
    set("initial_accumulator_value", [&](double v) { o.initial_accumulator_value(v); });
    set("eps", [&](double v) { o.eps(v); });
    set("weight_decay", [&](double v) { o.weight_decay(v); });
    o.maximize(flag(f, "maximize"));
    return build<optim::Adagrad>(params, o, f);
  }
  if (kind == "RMSprop") {
    optim::RMSpropOptions o(lr);
    set("alpha", [&](double v) { o.alpha(v); });
    set("eps", [&](double v) { o.eps(v); });
    set("momentum", [&](double v) { o.momentum(v); });
    set("weight_decay", [&](double v) { o.weight_decay(v); });
    o.centered(flag(f, "centered")).maximize(flag(f, "maximize"));
    return build<optim::RMSprop>(params, o, f);
  }
  if (kind == "Adam" || kind == "AdamW") {
    auto fill = [&](auto& o) {
      if (f.count("betas")) o.betas({list(f, "betas")[0], list(f, "betas")[1]});
      set("eps", [&](double v) { o.eps(v); });
      set("weight_decay", [&](double v) { o.weight_decay(v); });
      o.amsgrad(flag(f, "amsgrad")).maximize(flag(f, "maximize"));
    };
    if (kind == "Adam") {
      optim::AdamOptions o(lr);
      fill(o);
      return build<optim::Adam>(params, o, f);
    }
    optim::AdamWOptions o(lr);
    fill(o);
    return build<optim::AdamW>(params, o, f);
  }
  if (kind == "DeltaBarDelta") {
    optim::DeltaBarDeltaOptions o(lr);
    set("kappa", [&](double v) { o.kappa(v); });
    set("phi", [&](double v) { o.phi(v); });
    set("theta", [&](double v) { o.theta(v); });
    set("weight_decay", [&](double v) { o.weight_decay(v); });
    return build<optim::DeltaBarDelta>(params, o, f);
  }
  throw std::runtime_error("unknown optimizer " + kind);
}

void train_step(optim::Optimizer& opt, const Problem& pb, bool maximize = false) {
  opt.zero_grad();
  Tensor loss = pb();
  (maximize ? -loss : loss).backward();
  opt.step();
}

bool close(double a, double b, double rtol) { return std::abs(a - b) <= rtol * std::abs(b); }

}  // namespace

TEST_SUITE_BEGIN("optim");

TEST_CASE("optim: every optimizer and option combination follows PyTorch 1.13 for 50 steps (float64)") {
  const auto& runs = golden_file().optimizers;
  REQUIRE(runs.size() >= 50);
  std::map<std::string, int> per_kind;
  for (const Run& run : runs) {
    INFO("case " << run.name);
    Problem pb = make_problem(run.fields.at("problem"));
    auto opt = make_optimizer(run.fields, pb.params);
    const bool maximize = flag(run.fields, "maximize");
    REQUIRE(run.rows.size() == 50);
    int bad = 0;
    for (size_t step = 0; step < run.rows.size(); ++step) {
      train_step(*opt, pb, maximize);
      std::vector<double> got = flat(pb.params);
      REQUIRE(got.size() == run.rows[step].size());
      for (size_t i = 0; i < got.size() && bad < 3; ++i) {
        if (!close(got[i], run.rows[step][i], 1e-9)) {
          ++bad;
          FAIL_CHECK("step " << step + 1 << ", element " << i << ": " << got[i] << " vs PyTorch " << run.rows[step][i]);
        }
      }
    }
    ++per_kind[run.fields.at("opt")];
  }
  for (const char* kind : {"SGD", "Adagrad", "RMSprop", "Adam", "AdamW", "DeltaBarDelta"}) CHECK(per_kind[kind] >= 5);
}

TEST_CASE("optim: schedulers follow PyTorch 1.13's learning rates") {
  const auto& runs = golden_file().schedulers;
  REQUIRE(runs.size() >= 15);
  for (const Run& run : runs) {
    INFO("scheduler " << run.name);
    const Fields& f = run.fields;
    std::vector<double> lrs = list(f, "lrs");
    Tensor a = tg::zeros({1}, tg::kFloat64).requires_grad_(), b = tg::zeros({1}, tg::kFloat64).requires_grad_();
    optim::SGD opt(std::vector<optim::ParamGroup>{optim::ParamGroup({a}, optim::SGDOptions(lrs[0])),
                                                  optim::ParamGroup({b}, optim::SGDOptions(lrs[1]))},
                   optim::SGDOptions(lrs[0]));
    const std::string kind = f.at("kind");
    auto check_row = [&](const std::vector<double>& got, const std::vector<double>& want, size_t step) {
      REQUIRE(got.size() == want.size());
      for (size_t g = 0; g < got.size(); ++g) {
        INFO("step " << step << ", group " << g);
        CHECK(close(got[g], want[g], 1e-12));
        CHECK(opt.param_groups()[g].options().get_lr() == got[g]);  // the optimizer uses it
      }
    };
    if (kind == "ReduceLROnPlateau") {
      optim::ReduceLROnPlateauOptions o;
      o.mode(f.at("mode") == "max" ? optim::PlateauMode::Max : optim::PlateauMode::Min);
      o.factor(*field(f, "factor")).patience(int64_t(*field(f, "patience")));
      if (auto v = field(f, "threshold")) o.threshold(*v);
      if (f.count("threshold_mode") && f.at("threshold_mode") == "abs") o.threshold_mode(optim::ThresholdMode::Abs);
      if (auto v = field(f, "cooldown")) o.cooldown(int64_t(*v));
      if (auto v = field(f, "eps")) o.eps(*v);
      if (f.count("min_lr")) o.min_lr(list(f, "min_lr"));
      optim::ReduceLROnPlateau sched(opt, o);
      for (size_t i = 0; i < run.metrics.size(); ++i) {
        sched.step(run.metrics[i]);
        check_row(sched.get_last_lr(), run.rows[i], i + 1);
      }
      continue;
    }
    auto make = [&](const std::string& k, const std::string& pre) -> std::shared_ptr<optim::LRScheduler> {
      auto num = [&](const char* key) { return field(f, pre + key); };
      if (k == "StepLR")
        return std::make_shared<optim::StepLR>(opt, int64_t(*num("step_size")), num("gamma").value_or(0.1));
      if (k == "MultiStepLR") {
        std::vector<int64_t> ms;
        for (double m : list(f, pre + "milestones")) ms.push_back(int64_t(m));
        return std::make_shared<optim::MultiStepLR>(opt, ms, *num("gamma"));
      }
      if (k == "ExponentialLR") return std::make_shared<optim::ExponentialLR>(opt, *num("gamma"));
      if (k == "InverseTimeLR") return std::make_shared<optim::InverseTimeLR>(opt, *num("k"));
      if (k == "CosineAnnealingLR")
        return std::make_shared<optim::CosineAnnealingLR>(opt, int64_t(*num("T_max")), num("eta_min").value_or(0.0));
      throw std::runtime_error("unknown scheduler " + k);
    };
    std::shared_ptr<optim::LRScheduler> sched;
    if (kind == "LinearWarmup") {
      std::shared_ptr<optim::LRScheduler> after = f.count("after") ? make(f.at("after"), "") : nullptr;
      sched = std::make_shared<optim::LinearWarmup>(opt, int64_t(*field(f, "warmup_steps")), after,
                                                    field(f, "start_factor").value_or(1.0 / 3));
    } else {
      sched = make(kind, "");
    }
    check_row(sched->get_last_lr(), run.rows[0], 0);
    for (size_t i = 1; i < run.rows.size(); ++i) {
      sched->step();
      check_row(sched->get_last_lr(), run.rows[i], i);
      CHECK(sched->last_epoch() == int64_t(i));
    }
  }
}

TEST_CASE("optim: DeltaBarDelta, three steps checked by hand") {
  // f(w) = 0.5·w0² + 1.5·w1², so g = (w0, 3·w1); w = (1, 1); lr 0.5, kappa 0.1, phi 0.5, theta 0.5.
  // Element 0 (gradient keeps its sign):
  //   step 1: d = 1;     δ̄·d = 0     -> ε = 0.5;  δ̄ = 0.5·1 + 0.5·0 = 0.5;       w = 1 − 0.5·1 = 0.5
  //   step 2: d = 0.5;   δ̄·d > 0     -> ε = 0.6;  δ̄ = 0.25 + 0.25 = 0.5;         w = 0.5 − 0.6·0.5 = 0.2
  //   step 3: d = 0.2;   δ̄·d > 0     -> ε = 0.7;  δ̄ = 0.1 + 0.25 = 0.35;         w = 0.2 − 0.7·0.2 = 0.06
  // Element 1 (overshoots, then the sign flips):
  //   step 1: d = 3;     δ̄·d = 0     -> ε = 0.5;  δ̄ = 1.5;                      w = 1 − 1.5 = −0.5
  //   step 2: d = −1.5;  δ̄·d < 0     -> ε = 0.5·(1 − 0.5) = 0.25;  δ̄ = −0.75 + 0.75 = 0;  w = −0.5 + 0.375 = −0.125
  //   step 3: d = −0.375; δ̄·d = 0    -> ε = 0.25; δ̄ = −0.1875;                  w = −0.125 + 0.09375 = −0.03125
  for (tg::Dtype dtype : {tg::kFloat64, tg::kFloat32}) {
    Tensor w = tg::tensor({1.0, 1.0}, {2}, dtype).requires_grad_();
    Tensor h = tg::tensor({0.5, 1.5}, {2}, dtype);
    optim::DeltaBarDelta opt({w}, optim::DeltaBarDeltaOptions(0.5).kappa(0.1).phi(0.5).theta(0.5));
    const double want_w[3][2] = {{0.5, -0.5}, {0.2, -0.125}, {0.06, -0.03125}};
    const double want_rate[3][2] = {{0.5, 0.5}, {0.6, 0.25}, {0.7, 0.25}};
    const double want_bar[3][2] = {{0.5, 1.5}, {0.5, 0.0}, {0.35, -0.1875}};
    const double tol = dtype == tg::kFloat64 ? 1e-15 : 1e-6;
    for (int s = 0; s < 3; ++s) {
      opt.zero_grad();
      (h * w * w).sum().backward();
      opt.step();
      const optim::ParamState* st = opt.state(w);
      REQUIRE(st != nullptr);
      CHECK(st->step == s + 1);
      std::vector<double> got_w = w.to_vector<double>(), rate = st->buffers.at("rates").to_vector<double>(),
                          bar = st->buffers.at("bar_delta").to_vector<double>();
      for (int i = 0; i < 2; ++i) {
        INFO("step " << s + 1 << ", element " << i);
        CHECK(got_w[i] == doctest::Approx(want_w[s][i]).epsilon(tol));
        CHECK(rate[i] == doctest::Approx(want_rate[s][i]).epsilon(tol));
        CHECK(bar[i] == doctest::Approx(want_bar[s][i]).epsilon(tol));
      }
    }
  }
  optim::DeltaBarDeltaOptions d(0.02);  // the defaults
  CHECK(d.kappa() == doctest::Approx(0.002));
  CHECK(d.phi() == 0.1);
  CHECK(d.theta() == 0.7);
}

TEST_CASE("optim: DeltaBarDelta with its defaults beats SGD at the same rate on ill-conditioned quadratics") {
  // f(x) = ½ xᵀ H x with eigenvalues 1 ... 100 (condition number 100); lr = 0.01 is near SGD's
  // best constant rate (stable below 2/100). Axis-aligned H, then H rotated by a fixed rotation.
  const int n = 10, steps = 200;
  tg::manual_seed(3);
  std::vector<double> eig(n);
  for (int i = 0; i < n; ++i) eig[i] = std::pow(100.0, double(i) / (n - 1));
  Tensor x0 = tg::randn({n}, tg::kFloat64);
  // A rotation mixing neighbouring coordinates (Givens rotations by 0.3 rad).
  std::vector<double> q(n * n, 0.0);
  for (int i = 0; i < n; ++i) q[i * n + i] = 1;
  for (int k = 0; k + 1 < n; ++k) {
    const double c = std::cos(0.3), s = std::sin(0.3);
    for (int r = 0; r < n; ++r) {
      double a = q[r * n + k], b = q[r * n + k + 1];
      q[r * n + k] = c * a - s * b;
      q[r * n + k + 1] = s * a + c * b;
    }
  }
  Tensor Q = tg::tensor(q, {n, n}, tg::kFloat64), D = tg::tensor(eig, {n}, tg::kFloat64);
  Tensor H = tg::matmul(Q * D, Q.t());  // Q diag(D) Qᵀ
  auto loss_of = [&](bool diagonal, const Tensor& x) {
    return diagonal ? (D * x * x).sum() * 0.5 : (x * tg::matmul(H, x)).sum() * 0.5;
  };
  for (bool diagonal : {true, false}) {
    const std::string label = diagonal ? "axis-aligned" : "rotated";
    INFO(label);
    auto run = [&](optim::Optimizer& opt, Tensor& x) {
      for (int s = 0; s < steps; ++s) {
        opt.zero_grad();
        loss_of(diagonal, x).backward();
        opt.step();
      }
      return loss_of(diagonal, x).item<double>();
    };
    Tensor xs = x0.clone().requires_grad_(), xd = x0.clone().requires_grad_();
    optim::SGD sgd({xs}, optim::SGDOptions(0.01));
    optim::DeltaBarDelta dbd({xd}, optim::DeltaBarDeltaOptions(0.01));
    const double start = loss_of(diagonal, x0).item<double>();
    const double f_sgd = run(sgd, xs), f_dbd = run(dbd, xd);
    MESSAGE(label << ": f0 " << start << ", SGD " << f_sgd << ", DeltaBarDelta " << f_dbd);
    CHECK(f_sgd < start);
    CHECK(f_dbd < f_sgd / 100);
  }
}

namespace {

// Rebuilds every tensor from its values, as a trip through a file would.
optim::StateDict through_values(const optim::StateDict& sd) {
  optim::StateDict out;
  for (const auto& [k, v] : sd) out[k] = tg::tensor(v.to_vector<double>(), v.shape(), v.dtype());
  return out;
}

const Run& golden_case(const std::string& name) {
  for (const Run& r : golden_file().optimizers)
    if (r.name == name) return r;
  throw std::runtime_error("no golden case " + name);
}

}  // namespace

TEST_CASE("optim: state_dict round trip: 20 steps + save + load + 30 steps == 50 steps, bitwise") {
  // Golden cases for their options (several per optimizer, parameter groups too).
  const char* names[] = {"sgd_nesterov_wd_max_lsq", "sgd_dampening_wd_logreg", "sgd_groups_lsq",
                         "adagrad_decay_init_lsq",  "rmsprop_all_lsq",         "rmsprop_groups_lsq",
                         "adam_amsgrad_wd_max_lsq", "adam_groups_lsq",         "adamw_wd_amsgrad_logreg",
                         "dbd_options_lsq",         "dbd_groups_lsq"};
  for (tg::Dtype dtype : {tg::kFloat64, tg::kFloat32}) {
    for (const char* name : names) {
      INFO(name << (dtype == tg::kFloat64 ? " float64" : " float32"));
      const Fields& fields = golden_case(name).fields;
      const bool maximize = flag(fields, "maximize");
      Fields other = fields;  // what the resumed run is built with before loading: other lrs
      other["lr"] = "123";
      if (other.count("group_lr")) other["group_lr"] = "0.5";
      // Uninterrupted, with a StepLR stepped every iteration.
      Problem full = make_problem(fields.at("problem"), dtype);
      auto opt_full = make_optimizer(fields, full.params);
      optim::StepLR sched_full(*opt_full, 7, 0.5);
      for (int s = 0; s < 50; ++s) {
        train_step(*opt_full, full, maximize);
        sched_full.step();
      }
      // Interrupted after 20 steps; the state goes through plain values.
      Problem first = make_problem(fields.at("problem"), dtype);
      auto opt_first = make_optimizer(fields, first.params);
      optim::StepLR sched_first(*opt_first, 7, 0.5);
      for (int s = 0; s < 20; ++s) {
        train_step(*opt_first, first, maximize);
        sched_first.step();
      }
      optim::StateDict saved = through_values(opt_first->state_dict());
      optim::StateDict saved_sched = through_values(sched_first.state_dict());
      // A fresh run: parameters restored, an optimizer made with other options, then loaded.
      Problem second = make_problem(fields.at("problem"), dtype);
      for (size_t i = 0; i < second.params.size(); ++i) second.params[i].copy_(first.params[i]);
      auto opt_second = make_optimizer(other, second.params);
      optim::StepLR sched_second(*opt_second, 7, 0.5);
      opt_second->load_state_dict(saved);
      sched_second.load_state_dict(saved_sched);
      for (int s = 0; s < 30; ++s) {
        train_step(*opt_second, second, maximize);
        sched_second.step();
      }
      for (size_t i = 0; i < full.params.size(); ++i) {
        const Tensor& a = full.params[i];
        const Tensor& b = second.params[i];
        REQUIRE(a.numel() == b.numel());
        const size_t bytes = size_t(a.numel()) * tg::element_size(dtype);
        CHECK(std::memcmp(a.impl()->data(), b.impl()->data(), bytes) == 0);
      }
      CHECK(sched_second.get_last_lr() == sched_full.get_last_lr());
      // The step counts continued from the loaded 20.
      CHECK(opt_second->state_dict().at("state.0.step").item<int64_t>() == 50);
    }
  }
}

TEST_CASE("optim: state dict through a safetensors file resumes bitwise") {
  const std::string path = "optim_state_test.safetensors";
  Problem full = make_problem("logreg"), first = make_problem("logreg"), second = make_problem("logreg");
  auto make = [](const std::vector<Tensor>& p) {
    return std::make_unique<optim::Adam>(
        std::vector<optim::ParamGroup>{optim::ParamGroup({p[0]}), optim::ParamGroup({p[1]}, optim::AdamOptions(0.2))},
        optim::AdamOptions(0.05).amsgrad(true));
  };
  auto a = make(full.params), b = make(first.params), c = make(second.params);
  for (int s = 0; s < 50; ++s) train_step(*a, full);
  for (int s = 0; s < 20; ++s) train_step(*b, first);
  tg::save_tensors(b->state_dict(), path);
  for (size_t i = 0; i < 2; ++i) second.params[i].copy_(first.params[i]);
  c->load_state_dict(tg::load_tensors(path));
  std::remove(path.c_str());
  for (int s = 0; s < 30; ++s) train_step(*c, second);
  CHECK(flat(second.params) == flat(full.params));
}

TEST_CASE("optim: state-dict keys, as documented") {
  Tensor w = tg::ones({2, 3}, tg::kFloat64).requires_grad_(), b = tg::ones({3}, tg::kFloat64).requires_grad_();
  Tensor unused = tg::ones({4}, tg::kFloat64).requires_grad_();
  optim::Adam opt(
      std::vector<optim::ParamGroup>{optim::ParamGroup({w, unused}), optim::ParamGroup({b}, optim::AdamOptions(0.5))},
      optim::AdamOptions(0.1).amsgrad(true));
  (tg::matmul(tg::ones({1, 2}, tg::kFloat64), w) + b).sum().backward();
  opt.step();
  optim::StateDict sd = opt.state_dict();
  std::vector<std::string> keys;
  for (const auto& kv : sd) keys.push_back(kv.first);
  const std::vector<std::string> want = {"param_groups.0.amsgrad",
                                         "param_groups.0.betas",
                                         "param_groups.0.eps",
                                         "param_groups.0.lr",
                                         "param_groups.0.maximize",
                                         "param_groups.0.params",
                                         "param_groups.0.weight_decay",
                                         "param_groups.1.amsgrad",
                                         "param_groups.1.betas",
                                         "param_groups.1.eps",
                                         "param_groups.1.lr",
                                         "param_groups.1.maximize",
                                         "param_groups.1.params",
                                         "param_groups.1.weight_decay",
                                         "state.0.exp_avg",
                                         "state.0.exp_avg_sq",
                                         "state.0.max_exp_avg_sq",
                                         "state.0.step",
                                         "state.2.exp_avg",
                                         "state.2.exp_avg_sq",
                                         "state.2.step"};  // 1 had no gradient; group 1 has no amsgrad
  std::string got_keys;
  for (const auto& k : keys) got_keys += k + " ";
  INFO(got_keys);
  CHECK(keys == want);
  CHECK(sd.at("param_groups.0.lr").dim() == 0);
  CHECK(sd.at("param_groups.0.lr").dtype() == tg::kFloat64);
  CHECK(sd.at("param_groups.1.lr").item<double>() == 0.5);
  CHECK(sd.at("param_groups.0.betas").to_vector<double>() == std::vector<double>{0.9, 0.999});
  CHECK(sd.at("param_groups.0.params").to_vector<int64_t>() == std::vector<int64_t>{0, 1});
  CHECK(sd.at("param_groups.1.params").to_vector<int64_t>() == std::vector<int64_t>{2});
  CHECK(sd.at("state.2.step").dtype() == tg::kInt64);
  CHECK(sd.at("state.2.step").item<int64_t>() == 1);
  CHECK(sd.at("state.0.exp_avg").shape() == tg::Shape{2, 3});
  CHECK(opt.state(unused) == nullptr);
}

TEST_CASE("optim: load_state_dict validates before changing anything") {
  Tensor w = tg::ones({3}, tg::kFloat64).requires_grad_();
  optim::SGD opt({w}, optim::SGDOptions(0.1).momentum(0.9));
  w.sum().backward();
  opt.step();
  const optim::StateDict good = opt.state_dict();
  auto expect_error = [&](optim::StateDict sd, const std::string& needle) {
    Tensor v = tg::ones({3}, tg::kFloat64).requires_grad_();
    optim::SGD fresh({v}, optim::SGDOptions(0.7));
    try {
      fresh.load_state_dict(sd);
      FAIL("no error for " << needle);
    } catch (const tg::Error& e) {
      CHECK_MESSAGE(std::string(e.what()).find(needle) != std::string::npos, e.what());
    }
    CHECK(fresh.param_groups()[0].options().get_lr() == 0.7);  // unchanged
    CHECK(fresh.state(v) == nullptr);
  };
  optim::StateDict sd = good;
  sd.erase("param_groups.0.momentum");
  expect_error(sd, "param_groups.0.momentum");
  sd = good;
  sd["state.0.momentum_buffer"] = tg::zeros({4}, tg::kFloat64);
  expect_error(sd, "state.0.momentum_buffer");
  sd = good;
  sd["param_groups.1.lr"] = tg::scalar_tensor(0.1, tg::kFloat64);
  expect_error(sd, "parameter groups");
  sd = good;
  sd["bogus"] = tg::scalar_tensor(1.0, tg::kFloat64);
  expect_error(sd, "bogus");
  sd = good;
  sd["param_groups.0.lr"] = tg::scalar_tensor(-1.0, tg::kFloat64);
  expect_error(sd, "lr -1");
  sd = good;
  sd["state.5.step"] = tg::scalar_tensor(1.0, tg::kInt64);
  expect_error(sd, "state.5");
  sd = good;
  sd["param_groups.0.params"] = tg::tensor({0.0, 1.0}, {2}, tg::kInt64);
  expect_error(sd, "parameter group 0 has 2 parameters");
}

TEST_CASE("optim: bad options throw tg::Error naming the option and the value") {
  Tensor w = tg::ones({2}).requires_grad_();
  struct Row {
    std::function<void()> make;
    std::string needle;
  };
  optim::SGD sgd({w}, 0.1);  // for the schedulers
  // clang-format off
  const std::vector<Row> rows = {
      {[&] { optim::SGD({w}, optim::SGDOptions(-0.1)); }, "lr -0.1"},
      {[&] { optim::SGD({w}, optim::SGDOptions(0.1).momentum(-0.5)); }, "momentum -0.5"},
      {[&] { optim::SGD({w}, optim::SGDOptions(0.1).weight_decay(-1e-4)); }, "weight_decay -0.0001"},
      {[&] { optim::SGD({w}, optim::SGDOptions(0.1).nesterov(true)); }, "momentum 0"},
      {[&] { optim::SGD({w}, optim::SGDOptions(0.1).momentum(0.9).dampening(0.1).nesterov(true)); }, "dampening 0.1"},
      {[&] { optim::Adam({w}, optim::AdamOptions(-1e-3)); }, "lr -0.001"},
      {[&] { optim::Adam({w}, optim::AdamOptions().betas({1.0, 0.999})); }, "betas[0] 1"},
      {[&] { optim::Adam({w}, optim::AdamOptions().betas({0.9, -0.1})); }, "betas[1] -0.1"},
      {[&] { optim::Adam({w}, optim::AdamOptions().eps(-1e-8)); }, "eps -1e-08"},
      {[&] { optim::Adam({w}, optim::AdamOptions().weight_decay(-0.1)); }, "weight_decay -0.1"},
      {[&] { optim::AdamW({w}, optim::AdamWOptions().betas({0.9, 1.5})); }, "betas[1] 1.5"},
      {[&] { optim::AdamW({w}, optim::AdamWOptions().weight_decay(-0.01)); }, "weight_decay -0.01"},
      {[&] { optim::Adagrad({w}, optim::AdagradOptions(-0.01)); }, "lr -0.01"},
      {[&] { optim::Adagrad({w}, optim::AdagradOptions().lr_decay(-1)); }, "lr_decay -1"},
      {[&] { optim::Adagrad({w}, optim::AdagradOptions().initial_accumulator_value(-2)); }, "initial_accumulator_value -2"},
      {[&] { optim::Adagrad({w}, optim::AdagradOptions().eps(-1)); }, "eps -1"},
      {[&] { optim::RMSprop({w}, optim::RMSpropOptions().alpha(1.5)); }, "alpha 1.5"},
      {[&] { optim::RMSprop({w}, optim::RMSpropOptions().momentum(-0.9)); }, "momentum -0.9"},
      {[&] { optim::RMSprop({w}, optim::RMSpropOptions().eps(-1e-8)); }, "eps -1e-08"},
      {[&] { optim::DeltaBarDelta({w}, optim::DeltaBarDeltaOptions(-0.1)); }, "lr -0.1"},
      {[&] { optim::DeltaBarDelta({w}, optim::DeltaBarDeltaOptions(0.1).kappa(-1)); }, "kappa -1"},
      {[&] { optim::DeltaBarDelta({w}, optim::DeltaBarDeltaOptions(0.1).phi(1.5)); }, "phi 1.5"},
      {[&] { optim::DeltaBarDelta({w}, optim::DeltaBarDeltaOptions(0.1).theta(1.0)); }, "theta 1"},
      // a bad option in a parameter group, and a group with another optimizer's options
      {[&] { optim::SGD(std::vector<optim::ParamGroup>{optim::ParamGroup({w}, optim::SGDOptions(-2))}, 0.1); }, "parameter group 0"},
      {[&] { optim::SGD(std::vector<optim::ParamGroup>{optim::ParamGroup({w}, optim::AdamOptions())}, 0.1); }, "options of another optimizer"},
      // parameters
      {[&] { optim::SGD(std::vector<Tensor>{}, 0.1); }, "empty parameter list"},
      {[&] { optim::SGD({w, w}, 0.1); }, "more than once"},
      {[&] { optim::SGD({w * 2}, 0.1); }, "not a leaf"},
      {[&] { optim::SGD({tg::arange(0, 3)}, 0.1); }, "int64"},
      {[&] { optim::SGD({Tensor()}, 0.1); }, "undefined"},
      // schedulers
      {[&] { optim::StepLR(sgd, 0); }, "step_size 0"},
      {[&] { optim::CosineAnnealingLR(sgd, -3); }, "T_max -3"},
      {[&] { optim::InverseTimeLR(sgd, -0.5); }, "k -0.5"},
      {[&] { optim::MultiStepLR(sgd, {3, -1}); }, "milestone -1"},
      {[&] { optim::LinearWarmup(sgd, 5, nullptr, 1.5); }, "start_factor 1.5"},
      {[&] { optim::ReduceLROnPlateau(sgd, optim::ReduceLROnPlateauOptions().factor(1.0)); }, "factor 1"},
      {[&] { optim::ReduceLROnPlateau(sgd, optim::ReduceLROnPlateauOptions().patience(-1)); }, "patience -1"},
      {[&] { optim::ReduceLROnPlateau(sgd, optim::ReduceLROnPlateauOptions().min_lr({0.1, 0.2})); }, "min_lr"},
      // clipping
      {[&] { tg::nn::utils::clip_grad_norm_({w}, 1.0, -2.0); }, "norm_type -2"},
      {[&] { tg::nn::utils::clip_grad_value_({w}, -1.0); }, "clip_value -1"},
  };
  // clang-format on
  for (const Row& row : rows) {
    INFO("expecting " << row.needle);
    try {
      row.make();
      FAIL("no error");
    } catch (const tg::Error& e) {
      CHECK_MESSAGE(std::string(e.what()).find(row.needle) != std::string::npos, e.what());
    }
  }
}

TEST_CASE("optim: zero_grad, skipped parameters, add_param_group and the closure step") {
  Tensor a = tg::tensor({1.0, 2.0}, {2}, tg::kFloat64).requires_grad_();
  Tensor b = tg::tensor({3.0}, {1}, tg::kFloat64).requires_grad_();
  optim::SGD opt({a, b}, optim::SGDOptions(0.5).momentum(0.9));
  (a * a).sum().backward();  // b gets no gradient
  opt.step();
  CHECK(a.to_vector<double>() == std::vector<double>{0.0, 0.0});  // a -= 0.5 · 2a
  CHECK(b.to_vector<double>() == std::vector<double>{3.0});
  CHECK(opt.state(b) == nullptr);
  CHECK(opt.state(a)->buffers.count("momentum_buffer") == 1);

  opt.zero_grad(/*set_to_none=*/false);
  REQUIRE(a.grad().defined());
  CHECK(a.grad().to_vector<double>() == std::vector<double>{0.0, 0.0});
  opt.zero_grad();  // default: set_to_none, as Module::zero_grad
  CHECK(!a.grad().defined());
  opt.step();  // nothing has a gradient: nothing moves
  CHECK(a.to_vector<double>() == std::vector<double>{0.0, 0.0});

  // A create_graph gradient loses its graph when zeroed.
  Tensor y = (a * a * a).sum();
  y.backward({}, false, /*create_graph=*/true);
  REQUIRE(a.grad().defined());
  opt.zero_grad(/*set_to_none=*/false);
  CHECK(a.grad().grad_fn() == nullptr);

  Tensor c = tg::tensor({1.0}, {1}, tg::kFloat64).requires_grad_();
  opt.add_param_group(optim::ParamGroup({c}, optim::SGDOptions(0.25)));
  CHECK_THROWS_AS(opt.add_param_group(optim::ParamGroup({a})), tg::Error);  // already in group 0
  REQUIRE(opt.param_groups().size() == 2);
  Tensor loss = opt.step([&] {
    opt.zero_grad();
    Tensor l = (c * c).sum() * 2.0;
    l.backward();
    return l;
  });
  CHECK(loss.item<double>() == 2.0);
  CHECK(c.to_vector<double>()[0] == doctest::Approx(0.0));  // c -= 0.25 · 4c
  optim::SGD plain({c}, 0.1);                               // the lr alone converts to options
  CHECK(plain.defaults().get_lr() == 0.1);
}

TEST_CASE("optim: float32 parameters follow the float64 trajectory") {
  for (const char* name : {"adam_amsgrad_wd_max_lsq", "rmsprop_all_logreg", "sgd_nesterov_wd_max_logreg", "dbd_lsq",
                           "adagrad_decay_init_lsq", "adamw_betas_max_lsq"}) {
    INFO(name);
    const Run* run = &golden_case(name);
    Problem pb = make_problem(run->fields.at("problem"), tg::kFloat32);
    auto opt = make_optimizer(run->fields, pb.params);
    for (size_t s = 0; s < run->rows.size(); ++s) train_step(*opt, pb, flag(run->fields, "maximize"));
    std::vector<double> got = flat(pb.params);
    for (size_t i = 0; i < got.size(); ++i) CHECK(got[i] == doctest::Approx(run->rows.back()[i]).epsilon(2e-4));
  }
}

TEST_CASE("optim: scheduler state round trip, warm-up from zero, and the wrapped schedule's view") {
  Tensor w = tg::ones({1}).requires_grad_();
  {
    optim::SGD opt({w}, 0.1);
    auto cosine = std::make_shared<optim::CosineAnnealingLR>(opt, 10, 0.0);
    optim::LinearWarmup warm(opt, 4, cosine, 0.0);
    CHECK(warm.get_last_lr()[0] == 0.0);  // t = 0 with start_factor 0
    std::vector<double> want = {0.0, 0.025, 0.05, 0.075, 0.1, 0.1 * (1 + std::cos(std::acos(-1.0) / 10)) / 2};
    for (size_t t = 1; t < want.size(); ++t) {
      warm.step();
      CHECK(warm.get_last_lr()[0] == doctest::Approx(want[t]).epsilon(1e-15));
    }
    CHECK(cosine->last_epoch() == 1);
    CHECK(cosine->get_last_lr() == warm.get_last_lr());
    optim::StateDict sd = warm.state_dict();
    CHECK(sd.count("after.last_epoch") == 1);

    optim::SGD opt2({w}, 0.1);
    auto cosine2 = std::make_shared<optim::CosineAnnealingLR>(opt2, 10, 0.0);
    optim::LinearWarmup warm2(opt2, 4, cosine2, 0.0);
    warm2.load_state_dict(sd);
    CHECK(opt2.param_groups()[0].options().get_lr() == warm.get_last_lr()[0]);
    for (int s = 0; s < 7; ++s) {
      warm.step();
      warm2.step();
      CHECK(warm2.get_last_lr() == warm.get_last_lr());
    }
  }
  {
    optim::SGD opt({w}, 1.0);
    optim::ReduceLROnPlateau a(opt, optim::ReduceLROnPlateauOptions().patience(1).factor(0.5).cooldown(1));
    for (double m : {5.0, 4.0, 4.0, 4.0, 4.5}) a.step(m);
    optim::StateDict sd = a.state_dict();
    optim::SGD opt2({w}, 1.0);
    optim::ReduceLROnPlateau b(opt2, optim::ReduceLROnPlateauOptions().patience(1).factor(0.5).cooldown(1));
    b.load_state_dict(sd);
    CHECK(b.best() == 4.0);
    CHECK(opt2.param_groups()[0].options().get_lr() == a.get_last_lr()[0]);
    for (double m : {4.0, 4.0, 3.0, 3.0, 3.0, 3.0}) {
      a.step(m);
      b.step(m);
      CHECK(a.get_last_lr() == b.get_last_lr());
    }
    CHECK(a.get_last_lr()[0] < 0.5);
  }
  {  // a schedule loaded into one with a longer horizon continues on the new plan at the saved t
    optim::SGD opt({w}, 0.2);
    optim::CosineAnnealingLR short_plan(opt, 2);
    short_plan.step();
    optim::StateDict sd = short_plan.state_dict();
    optim::SGD opt2({w}, 0.2);
    optim::CosineAnnealingLR long_plan(opt2, 4);
    long_plan.load_state_dict(sd);
    CHECK(long_plan.last_epoch() == 1);
    CHECK(long_plan.get_last_lr()[0] == long_plan.lr_at(1, 0));
    CHECK(opt2.param_groups()[0].options().get_lr() == long_plan.lr_at(1, 0));
    CHECK(long_plan.lr_at(1, 0) != short_plan.get_last_lr()[0]);
  }
  {  // a group added after the scheduler was made is an error, not a silent mismatch
    optim::SGD opt({w}, 0.1);
    optim::StepLR s(opt, 2);
    opt.add_param_group(optim::ParamGroup({tg::ones({1}).requires_grad_()}));
    CHECK_THROWS_AS(s.step(), tg::Error);
  }
}

TEST_CASE("optim: clip_grad_norm_ and clip_grad_value_") {
  namespace U = tg::nn::utils;
  auto with_grads = [](std::vector<std::vector<double>> gs) {
    std::vector<Tensor> ps;
    for (auto& g : gs) {
      Tensor p = tg::zeros({int64_t(g.size())}, tg::kFloat64).requires_grad_();
      p.mutable_grad() = tg::tensor(g, {int64_t(g.size())}, tg::kFloat64);
      ps.push_back(p);
    }
    return ps;
  };
  // 2-norm of (3, 4 | 12) is 13; scaled by 6.5 / (13 + 1e-6).
  auto ps = with_grads({{3, 4}, {12}});
  ps.push_back(tg::zeros({2}).requires_grad_());  // no gradient: skipped
  CHECK(U::clip_grad_norm_(ps, 6.5) == 13.0);
  const double c = 6.5 / (13 + 1e-6);
  CHECK(ps[0].grad().to_vector<double>()[1] == doctest::Approx(4 * c).epsilon(1e-15));
  CHECK(ps[1].grad().to_vector<double>()[0] == doctest::Approx(12 * c).epsilon(1e-15));
  // Below the threshold: unchanged.
  ps = with_grads({{3, 4}});
  CHECK(U::clip_grad_norm_(ps, 10.0) == 5.0);
  CHECK(ps[0].grad().to_vector<double>() == std::vector<double>{3, 4});
  // inf-, 1- and 3-norms.
  ps = with_grads({{-7, 2}, {5}});
  CHECK(U::clip_grad_norm_(ps, 100.0, INFINITY) == 7.0);
  CHECK(U::clip_grad_norm_(ps, 100.0, 1.0) == 14.0);
  CHECK(U::clip_grad_norm_(ps, 100.0, 3.0) == doctest::Approx(std::cbrt(343.0 + 8 + 125)).epsilon(1e-14));
  // One tensor, float32.
  Tensor p = tg::zeros({2}).requires_grad_();
  p.mutable_grad() = tg::tensor({30.0, 40.0}, {2});
  CHECK(U::clip_grad_norm_(p, 5.0) == doctest::Approx(50.0));
  CHECK(p.grad().to_vector<double>()[1] == doctest::Approx(4.0).epsilon(1e-6));
  // Non-finite.
  ps = with_grads({{1, NAN}});
  CHECK(std::isnan(U::clip_grad_norm_(ps, 1.0)));
  CHECK_THROWS_AS(U::clip_grad_norm_(ps, 1.0, 2.0, /*error_if_nonfinite=*/true), tg::Error);
  CHECK(U::clip_grad_norm_(std::vector<Tensor>{}, 1.0) == 0.0);
  // Values.
  ps = with_grads({{-3, 0.5, 2}, {1.5}});
  U::clip_grad_value_(ps, 1.0);
  CHECK(ps[0].grad().to_vector<double>() == std::vector<double>{-1, 0.5, 1});
  CHECK(ps[1].grad().to_vector<double>() == std::vector<double>{1});
}

TEST_CASE("optim: a large parameter is split between threads with the same result") {
  const int saved = tg::get_num_threads();
  auto run = [](int threads, int which) {
    tg::set_num_threads(threads);
    tg::manual_seed(11);
    Tensor w = tg::randn({300001}).requires_grad_();  // several chunks, and a ragged end
    Tensor target = tg::randn({300001});
    std::unique_ptr<optim::Optimizer> opt;
    if (which == 0) opt = std::make_unique<optim::SGD>(std::vector<Tensor>{w}, optim::SGDOptions(0.1).momentum(0.9));
    if (which == 1) opt = std::make_unique<optim::Adam>(std::vector<Tensor>{w}, optim::AdamOptions(0.01).amsgrad(true));
    if (which == 2)
      opt = std::make_unique<optim::RMSprop>(std::vector<Tensor>{w}, optim::RMSpropOptions().centered(true));
    if (which == 3)
      opt = std::make_unique<optim::DeltaBarDelta>(std::vector<Tensor>{w}, optim::DeltaBarDeltaOptions(0.1));
    for (int s = 0; s < 3; ++s) {
      opt->zero_grad();
      ((w - target) * (w - target)).sum().backward();
      opt->step();
    }
    return w.to_vector<float>();
  };
  for (int which = 0; which < 4; ++which) {
    INFO("optimizer " << which);
    CHECK(run(1, which) == run(2, which));
  }
  tg::set_num_threads(saved);
}

TEST_SUITE_END();
