// L-BFGS against torch.optim.LBFGS (PyTorch 1.13): tests/golden/generate_lbfgs.py writes
// tests/golden/lbfgs.txt, the loss each step() call returned, the optimizer's counters and the
// parameters after it, on a quadratic and on Rosenbrock (2-D and 10-D), float64, with fixed
// steps and with the strong-Wolfe line search. Then options, errors and the state dict.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <tapegrad.hpp>

#include "golden_io.hpp"
#include <vector>

namespace optim = tg::optim;
using tg::Tensor;

namespace {

struct Step {
  double loss;
  int64_t func_evals, n_iter;
  std::vector<double> params;
};
struct Run {
  std::string name;
  std::map<std::string, std::string> fields;
  std::vector<double> x0;
  std::vector<Step> steps;
};
struct Golden {
  std::map<std::string, Tensor> data;
  std::vector<Run> runs;
};

using golden::numbers;

const Golden& golden_file() {
  static const Golden g = [] {
    Golden out;
    const std::string path = std::string(TAPEGRAD_GOLDEN_DIR) + "/lbfgs.txt";
    std::ifstream f(path);
    if (!f) throw std::runtime_error("cannot open golden file " + path);
    for (std::string line; std::getline(f, line);) {
      if (line.empty() || line[0] == '#') continue;
      std::istringstream is(line);
      std::string kind;
      is >> kind;
      if (kind == "data") {
        std::string name, dims;
        is >> name >> dims;
        out.data[name] = tg::tensor(numbers(is), golden::parse_shape(dims), tg::kFloat64);
      } else if (kind == "case") {
        out.runs.emplace_back();
        is >> out.runs.back().name;
        out.runs.back().fields = golden::fields(is);
      } else if (kind == "x0") {
        out.runs.back().x0 = numbers(is);
      } else if (kind == "step") {
        const auto f = golden::fields(is);
        Step s{std::stod(f.at("loss")), std::stoll(f.at("func_evals")), std::stoll(f.at("n_iter")), {}};
        out.runs.back().steps.push_back(s);
      } else if (kind == "params") {
        out.runs.back().steps.back().params = numbers(is);
      }
    }
    return out;
  }();
  return g;
}

const Run& golden_run(const std::string& name) {
  for (const Run& r : golden_file().runs)
    if (r.name == name) return r;
  throw std::runtime_error("no golden case " + name);
}

// ---- the problems (the same formulas as the generator's) ----
struct Problem {
  std::vector<Tensor> params;
  std::function<Tensor()> loss;
};

Tensor quadratic(const Tensor& x) {
  const Tensor& A = golden_file().data.at("quadratic.A");
  const Tensor& b = golden_file().data.at("quadratic.b");
  return 0.5 * tg::matmul(x, tg::matmul(A.to(x.dtype()), x)) - tg::matmul(b.to(x.dtype()), x);
}

Problem make_problem(const std::string& name, const std::vector<double>& x0, tg::Dtype dtype = tg::kFloat64) {
  Problem pb;
  auto param = [&](size_t offset, tg::Shape shape) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    std::vector<double> v(x0.begin() + long(offset), x0.begin() + long(offset) + n);
    pb.params.push_back(tg::tensor(v, shape, dtype).requires_grad_());
  };
  if (name == "quadratic") {
    param(0, {6});
    pb.loss = [p = pb.params] { return quadratic(p[0]); };
  } else if (name == "quad_split") {
    param(0, {2, 2});
    param(4, {2});
    pb.loss = [p = pb.params] { return quadratic(tg::cat({p[0].reshape({-1}), p[1]})); };
  } else if (name == "rosen2") {
    param(0, {1});
    param(1, {1});
    pb.loss = [p = pb.params] { return ((1.0 - p[0]).pow(2) + 100.0 * (p[1] - p[0].pow(2)).pow(2)).sum(); };
  } else if (name == "rosen10") {
    param(0, {10});
    pb.loss = [p = pb.params] {
      Tensor head = tg::slice(p[0], 0, 0, 9), tail = tg::slice(p[0], 0, 1, 10);
      return (100.0 * (tail - head.pow(2)).pow(2) + (1.0 - head).pow(2)).sum();
    };
  } else {
    throw std::runtime_error("unknown problem " + name);
  }
  return pb;
}

optim::LBFGSOptions options_of(const Run& r) {
  const auto& f = r.fields;
  auto num = [&](const char* k) { return std::stod(f.at(k)); };
  optim::LBFGSOptions o(f.count("lr") ? num("lr") : 1.0);
  if (f.count("max_iter")) o.max_iter(int64_t(num("max_iter")));
  if (f.count("max_eval")) o.max_eval(int64_t(num("max_eval")));
  if (f.count("history_size")) o.history_size(int64_t(num("history_size")));
  if (f.count("tolerance_grad")) o.tolerance_grad(num("tolerance_grad"));
  if (f.count("tolerance_change")) o.tolerance_change(num("tolerance_change"));
  if (f.count("line_search_fn")) o.line_search_fn(f.at("line_search_fn"));
  return o;
}

optim::LossClosure closure_for(optim::Optimizer& opt, const Problem& pb) {
  return [&opt, &pb] {
    opt.zero_grad();
    Tensor l = pb.loss();
    l.backward();
    return l;
  };
}

std::vector<double> flat(const std::vector<Tensor>& params) {
  std::vector<double> out;
  for (const Tensor& p : params)
    for (double v : p.to_vector<double>()) out.push_back(v);
  return out;
}

int64_t counter(const optim::Optimizer& opt, const char* name) {
  return opt.state_dict().at(std::string("state.0.") + name).item<int64_t>();
}

bool close(double a, double b, double rtol, double atol) { return std::abs(a - b) <= atol + rtol * std::abs(b); }

}  // namespace

// The decisions (closure calls, iterations, which line-search branch) must be torch's exactly:
// the counters are compared exactly. The values agree to rounding, but rounding differences (in
// the loss and its gradient, and in the order of sums) grow over tens of iterations on
// Rosenbrock's valley: after 60 iterations in 10-D they reach ~2e-7 relative, hence rtol 1e-5.
// A wrong decision shows as an O(1) difference and a counter mismatch.
TEST_CASE("lbfgs: trajectories match torch.optim.LBFGS (float64)") {
  REQUIRE(golden_file().runs.size() >= 10);
  for (const Run& r : golden_file().runs) {
    CAPTURE(r.name);
    Problem pb = make_problem(r.fields.at("problem"), r.x0);
    optim::LBFGS opt(pb.params, options_of(r));
    auto closure = closure_for(opt, pb);
    REQUIRE(r.steps.size() == size_t(std::stoi(r.fields.at("steps"))));
    for (size_t k = 0; k < r.steps.size(); ++k) {
      CAPTURE(k);
      const Step& want = r.steps[k];
      Tensor loss = opt.step(closure);
      CHECK(counter(opt, "func_evals") == want.func_evals);
      CHECK(counter(opt, "n_iter") == want.n_iter);
      CHECK(close(loss.item<double>(), want.loss, 1e-5, 1e-9));
      std::vector<double> got = flat(pb.params);
      REQUIRE(got.size() == want.params.size());
      for (size_t i = 0; i < got.size(); ++i) {
        CAPTURE(i);
        CHECK(close(got[i], want.params[i], 1e-5, 1e-9));
      }
    }
  }
}

TEST_CASE("lbfgs: defaults are PyTorch's") {
  optim::LBFGSOptions o;
  CHECK(o.lr() == 1.0);
  CHECK(o.max_iter() == 20);
  CHECK(!o.max_eval().has_value());
  CHECK(o.tolerance_grad() == 1e-7);
  CHECK(o.tolerance_change() == 1e-9);
  CHECK(o.history_size() == 100);
  CHECK(o.line_search_fn().empty());
  // max_eval follows max_iter when unset, fixed at construction (max_iter * 5 / 4).
  Tensor w = tg::zeros({3}, tg::kFloat64).requires_grad_();
  optim::LBFGS a({w}, optim::LBFGSOptions().max_iter(10));
  CHECK(a.state_dict().at("param_groups.0.max_eval").item<double>() == 12);
  optim::LBFGS b({w}, optim::LBFGSOptions().max_eval(3));
  CHECK(b.state_dict().at("param_groups.0.max_eval").item<double>() == 3);
  CHECK(b.state_dict().at("param_groups.0.line_search_fn").item<double>() == 0);
  optim::LBFGS c({w}, optim::LBFGSOptions(0.5).line_search_fn("strong_wolfe"));
  CHECK(c.state_dict().at("param_groups.0.line_search_fn").item<double>() == 1);
  CHECK(c.name() == "LBFGS");
}

TEST_CASE("lbfgs: bad options and arguments throw tg::Error naming LBFGS and the option") {
  Tensor w = tg::zeros({3}, tg::kFloat64).requires_grad_();
  auto throws = [&](const optim::LBFGSOptions& o, const std::string& option) {
    CAPTURE(option);
    try {
      optim::LBFGS opt({w}, o);
      FAIL("no error");
    } catch (const tg::Error& e) {
      const std::string msg = e.what();
      CAPTURE(msg);
      CHECK(msg.find("LBFGS") != std::string::npos);
      CHECK(msg.find(option) != std::string::npos);
    }
  };
  throws(optim::LBFGSOptions(-1), "lr");
  throws(optim::LBFGSOptions(NAN), "lr");
  throws(optim::LBFGSOptions().max_iter(0), "max_iter");
  throws(optim::LBFGSOptions().max_eval(0), "max_eval");
  throws(optim::LBFGSOptions().max_iter(-3), "max_iter");
  throws(optim::LBFGSOptions().tolerance_grad(-1e-3), "tolerance_grad");
  throws(optim::LBFGSOptions().tolerance_change(INFINITY), "tolerance_change");
  throws(optim::LBFGSOptions().history_size(0), "history_size");
  throws(optim::LBFGSOptions().line_search_fn("backtracking"), "line_search_fn");

  // One group only, one dtype, a closure that returns a scalar.
  Tensor v = tg::zeros({2}, tg::kFloat64).requires_grad_();
  std::vector<optim::ParamGroup> two{optim::ParamGroup({w}), optim::ParamGroup({v})};
  CHECK_THROWS_AS(optim::LBFGS(two, optim::LBFGSOptions()), tg::Error);
  Tensor f32 = tg::zeros({2}).requires_grad_();
  CHECK_THROWS_AS(optim::LBFGS({w, f32}), tg::Error);
  CHECK_THROWS_AS(optim::LBFGS(std::vector<Tensor>{}), tg::Error);
  optim::LBFGS opt({w});
  CHECK_THROWS_AS(opt.step(nullptr), tg::Error);
  CHECK_THROWS_AS(opt.step([&] { return w * 2.0; }), tg::Error);  // 3 elements
  CHECK_THROWS_AS(opt.step([&] { return Tensor(); }), tg::Error);
  opt.add_param_group(optim::ParamGroup({v}));
  CHECK_THROWS_AS(opt.step([&] { return (w * w).sum(); }), tg::Error);  // now two groups
}

TEST_CASE("lbfgs: through the Optimizer base, step(closure) is LBFGS's") {
  const Run& r = golden_run("rosen2_sw");
  Problem pb = make_problem("rosen2", r.x0);
  optim::LBFGS opt(pb.params, options_of(r));
  optim::Optimizer& base = opt;
  base.step(closure_for(opt, pb));
  CHECK(counter(opt, "func_evals") == r.steps[0].func_evals);
  std::vector<double> got = flat(pb.params);
  for (size_t i = 0; i < got.size(); ++i) CHECK(close(got[i], r.steps[0].params[i], 1e-9, 1e-12));
}

TEST_CASE("lbfgs: state_dict round trip continues the same trajectory, bitwise") {
  for (const char* name : {"rosen10_sw", "rosen10", "quadratic_lr"}) {
    CAPTURE(name);
    const Run& r = golden_run(name);
    Problem first = make_problem(r.fields.at("problem"), r.x0);
    optim::LBFGS a(first.params, options_of(r));
    auto ca = closure_for(a, first);
    for (int k = 0; k < 2; ++k) a.step(ca);

    // Through a safetensors file, into an optimizer built with other options.
    const std::string path = "lbfgs_state_test.safetensors";
    tg::save_tensors(a.state_dict(), path);
    optim::StateDict sd = tg::load_tensors(path);
    std::remove(path.c_str());
    CHECK(sd.count("state.0.old_dirs") == 1);
    CHECK(sd.at("state.0.old_dirs").dim() == 2);
    CHECK(sd.at("state.0.d").dtype() == tg::kFloat64);

    Problem second = make_problem(r.fields.at("problem"), flat(first.params));
    optim::LBFGS b(second.params, optim::LBFGSOptions(7.0).max_iter(3).history_size(2));
    b.load_state_dict(sd);
    auto cb = closure_for(b, second);
    for (int k = 0; k < 3; ++k) {
      Tensor la = a.step(ca), lb = b.step(cb);
      CHECK(la.item<double>() == lb.item<double>());
      CHECK(flat(first.params) == flat(second.params));
      CHECK(counter(a, "func_evals") == counter(b, "func_evals"));
      CHECK(counter(a, "n_iter") == counter(b, "n_iter"));
    }
    // And the loaded run still follows PyTorch's.
    const Step& last = r.steps.back();
    std::vector<double> got = flat(second.params);
    if (r.steps.size() == 5)
      for (size_t i = 0; i < got.size(); ++i) CHECK(close(got[i], last.params[i], 1e-9, 1e-12));
  }
}

TEST_CASE("lbfgs: state dict keys, and load_state_dict checks before changing anything") {
  Tensor w = tg::tensor({-1.2, 1.0, -1.2}, {3}, tg::kFloat64).requires_grad_();
  optim::LBFGS opt({w}, optim::LBFGSOptions().max_iter(4).history_size(3));
  CHECK(opt.state_dict().count("state.0.n_iter") == 0);  // no step yet
  auto closure = [&] {
    opt.zero_grad();
    Tensor l = (w * w * w * w).sum();
    l.backward();
    return l;
  };
  opt.step(closure);
  optim::StateDict sd = opt.state_dict();
  for (const char* k : {"param_groups.0.params", "param_groups.0.lr", "param_groups.0.max_iter",
                        "param_groups.0.max_eval", "param_groups.0.tolerance_grad", "param_groups.0.tolerance_change",
                        "param_groups.0.history_size", "param_groups.0.line_search_fn", "state.0.func_evals",
                        "state.0.n_iter", "state.0.d", "state.0.t", "state.0.old_dirs", "state.0.old_stps",
                        "state.0.ro", "state.0.H_diag", "state.0.prev_flat_grad", "state.0.prev_loss"}) {
    CAPTURE(k);
    CHECK(sd.count(k) == 1);
  }
  CHECK(sd.size() == 18);
  CHECK(sd.at("state.0.old_dirs").shape() == tg::Shape{sd.at("state.0.ro").numel(), 3});

  Tensor v = tg::tensor({0.5, 0.5, 0.5}, {3}, tg::kFloat64).requires_grad_();
  optim::LBFGS fresh({v}, optim::LBFGSOptions(0.25));
  auto broken = [&](const std::string& key, Tensor value) {
    optim::StateDict bad = sd;
    if (value.defined())
      bad[key] = value;
    else
      bad.erase(key);
    CAPTURE(key);
    CHECK_THROWS_AS(fresh.load_state_dict(bad), tg::Error);
    CHECK(fresh.state_dict().count("state.0.n_iter") == 0);  // unchanged
    CHECK(fresh.param_groups()[0].options().get_lr() == 0.25);
  };
  broken("state.0.d", tg::zeros({4}, tg::kFloat64));
  broken("state.0.old_dirs", tg::zeros({1, 3}, tg::kFloat64));
  broken("state.0.n_iter", tg::scalar_tensor(-1, tg::kInt64));
  broken("state.0.t", Tensor());
  broken("state.0.bogus", tg::zeros({}, tg::kFloat64));
  broken("state.1.d", tg::zeros({3}, tg::kFloat64));
  broken("param_groups.0.history_size", tg::scalar_tensor(0, tg::kFloat64));
  broken("param_groups.0.max_iter", tg::scalar_tensor(2.5, tg::kFloat64));
  broken("param_groups.0.line_search_fn", tg::scalar_tensor(2, tg::kFloat64));
  fresh.load_state_dict(sd);
  CHECK(fresh.param_groups()[0].options().get_lr() == 1.0);
  CHECK(fresh.state_dict().at("state.0.n_iter").item<int64_t>() == sd.at("state.0.n_iter").item<int64_t>());
}

TEST_CASE("lbfgs: float32 parameters, and a step at an optimum returns at once") {
  const Run& r = golden_run("rosen2_sw_defaults");
  Problem pb = make_problem("rosen2", r.x0, tg::kFloat32);
  optim::LBFGS opt(pb.params, options_of(r).max_iter(100));
  auto closure = closure_for(opt, pb);
  Tensor first = opt.step(closure);
  CHECK(first.dtype() == tg::kFloat32);
  CHECK(first.item<double>() == doctest::Approx(12.5));
  for (int k = 0; k < 3; ++k) opt.step(closure);
  CHECK(pb.params[0].item<double>() == doctest::Approx(1.0).epsilon(1e-3));
  CHECK(pb.params[1].item<double>() == doctest::Approx(1.0).epsilon(1e-3));

  // At a stationary point max |g| <= tolerance_grad: one evaluation, no iteration.
  Tensor w = tg::zeros({2}, tg::kFloat64).requires_grad_();
  optim::LBFGS at_min({w});
  auto c = [&] {
    at_min.zero_grad();
    Tensor l = (w * w).sum();
    l.backward();
    return l;
  };
  at_min.step(c);
  at_min.step(c);
  CHECK(counter(at_min, "func_evals") == 2);
  CHECK(counter(at_min, "n_iter") == 0);
  CHECK(at_min.state_dict().count("state.0.d") == 0);
}
