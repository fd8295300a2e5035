// tg::autograd::custom with a context (torch.autograd.Function): values saved in the forward for
// the backward, several outputs (unused ones get zero gradients, integer ones none), first and
// second derivatives checked numerically, anomaly errors named after the custom op, no
// reference cycle through saved outputs; and the engine's errors that name the op the user called.
#include <doctest/doctest.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include <tapegrad.hpp>

#include "autograd/node.hpp"  // to find the custom op's node in the graph

using tg::Tensor;
using tg::autograd::CustomContext;
using In = std::vector<Tensor>;

namespace {

Tensor t64(const std::vector<double>& v, bool grad = false) {
  Tensor t = tg::tensor(v, {int64_t(v.size())}, tg::kFloat64);
  if (grad) t.requires_grad_();
  return t;
}

void check_values(const Tensor& t, const std::vector<double>& want, double tol = 1e-12) {
  REQUIRE(t.defined());
  std::vector<double> got = t.to_vector<double>();
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) CHECK_MESSAGE(std::abs(got[i] - want[i]) <= tol, "element ", i);
}

template <typename Fn>
std::string error_of(Fn&& f) {
  try {
    f();
  } catch (const tg::Error& e) {
    return e.what();
  }
  return "(no tg::Error)";
}

bool contains(const std::string& s, const std::string& piece) { return s.find(piece) != std::string::npos; }

std::shared_ptr<tg::Node> find_node(const Tensor& t, const std::string& name) {
  std::vector<std::shared_ptr<tg::Node>> stack{t.grad_fn()};
  while (!stack.empty()) {
    auto n = stack.back();
    stack.pop_back();
    if (!n) continue;
    if (n->name == name) return n;
    for (auto& c : n->next) stack.push_back(c);
  }
  return nullptr;
}

// Polar to Cartesian: (r, theta) -> (x = r cos theta, y = r sin theta). The forward computes
// cos and sin once; the backward uses only saved inputs and outputs (r, x, y), so it is
// differentiable and double backward is exact:
//   dL/dr = (gx x + gy y) / r,   dL/dtheta = -gx y + gy x.
std::vector<Tensor> polar(const Tensor& r, const Tensor& theta, int* forward_calls = nullptr) {
  return tg::autograd::custom(
      "polar", {r, theta},
      [forward_calls](CustomContext& ctx, const In& in) {
        if (forward_calls) ++*forward_calls;
        Tensor x = in[0] * tg::cos(in[1]), y = in[0] * tg::sin(in[1]);
        ctx.save_for_backward({in[0], x, y});
        return In{x, y};
      },
      [](CustomContext& ctx, const In& g) {
        const In& s = ctx.saved_tensors();
        const Tensor &r = s[0], &x = s[1], &y = s[2];
        return In{ctx.needs_input_grad(0) ? (g[0] * x + g[1] * y) / r : Tensor(), g[1] * x - g[0] * y};
      });
}

// x / |x| with the norm computed in the forward and saved as a value (not an input or output):
// it comes back in the backward as a constant, so first derivatives are exact.
Tensor normalize(const Tensor& v) {
  return tg::autograd::custom(
      "normalize", {v},
      [](CustomContext& ctx, const In& in) {
        Tensor n = tg::sqrt((in[0] * in[0]).sum());
        Tensor y = in[0] / n;
        ctx.save_for_backward({y, n});
        return In{y};
      },
      [](CustomContext& ctx, const In& g) {
        const Tensor &y = ctx.saved_tensors()[0], &n = ctx.saved_tensors()[1];
        return In{(g[0] - y * (g[0] * y).sum()) / n};
      })[0];
}

}  // namespace

TEST_CASE("custom op with a context: saved values, two outputs, forward run once") {
  Tensor r = t64({1.0, 2.0}, true), th = t64({0.3, -1.2}, true);
  int calls = 0;
  std::vector<Tensor> out = polar(r, th, &calls);
  REQUIRE(out.size() == 2);
  CHECK(out[0].grad_fn_name() != "");
  check_values(out[0], {std::cos(0.3), 2 * std::cos(-1.2)});
  check_values(out[1], {std::sin(0.3), 2 * std::sin(-1.2)});
  (out[0] * 3.0 + out[1] * out[1]).sum().backward();
  CHECK(calls == 1);  // the backward used the saved values, it did not run the forward again
  // d/dr (3 r cos + r^2 sin^2) = 3 cos + 2 r sin^2; d/dth = -3 r sin + 2 r^2 sin cos
  check_values(r.grad(), {3 * std::cos(0.3) + 2 * std::pow(std::sin(0.3), 2),
                          3 * std::cos(-1.2) + 4 * std::pow(std::sin(-1.2), 2)},
               1e-12);
  check_values(th.grad(), {-3 * std::sin(0.3) + 2 * std::sin(0.3) * std::cos(0.3),
                           -6 * std::sin(-1.2) + 8 * std::sin(-1.2) * std::cos(-1.2)},
               1e-12);
}

TEST_CASE("custom op with a context: gradcheck and gradgradcheck through both outputs") {
  tg::manual_seed(11);
  Tensor r = tg::rand({3, 2}, tg::kFloat64) + 0.5, th = tg::randn({3, 2}, tg::kFloat64);
  Tensor w = tg::randn({3, 2}, tg::kFloat64);
  auto f = [&w](const In& in) {
    std::vector<Tensor> o = polar(in[0], in[1]);
    return o[0] * w + o[1] * o[1] * o[0];  // both outputs, nonlinearly: second derivatives mix them
  };
  auto g1 = tg::gradcheck(f, {r, th});
  CHECK_MESSAGE(g1.ok, g1.message);
  auto g2 = tg::gradgradcheck(f, {r, th});
  CHECK_MESSAGE(g2.ok, g2.message);
  // A saved intermediate is a constant: first derivatives exact, as PyTorch's ctx.
  auto n1 = tg::gradcheck([](const In& in) { return normalize(in[0]) * in[0]; }, {th.reshape({6})});
  CHECK_MESSAGE(n1.ok, n1.message);
}

TEST_CASE("custom op with a context: gradgradcheck catches a backward that uses a saved intermediate") {
  // The saved norm is a constant in the backward, so the second derivative misses its
  // dependence on the input: gradgradcheck must see it (as it would in PyTorch).
  Tensor v = t64({0.6, -1.1, 0.4});
  auto r = tg::gradgradcheck([](const In& in) { return normalize(in[0]); }, {v});
  CHECK_FALSE(r.ok);
}

TEST_CASE("custom op with a context: an unused output gets zeros, an integer output no gradient") {
  Tensor x = t64({3.0, -1.0, 2.0}, true);
  std::vector<In> seen;
  auto out = tg::autograd::custom(
      "max_and_argmax", {x},
      [](CustomContext& ctx, const In& in) {
        Tensor i = tg::argmax(in[0], 0);
        ctx.save_for_backward({i});
        return In{tg::max(in[0]), i, in[0] * 2.0};
      },
      [&seen](CustomContext& ctx, const In& g) {
        seen.push_back(g);
        Tensor onehot = tg::eq(tg::arange(0, 3), ctx.saved_tensors()[0]).to(tg::kFloat64);
        return In{g[0] * onehot + g[2] * 2.0};
      });
  REQUIRE(out.size() == 3);
  CHECK(out[1].dtype() == tg::kInt64);
  CHECK_FALSE(out[1].requires_grad());
  CHECK(out[1].item<int64_t>() == 0);
  CHECK(out[0].requires_grad());
  (out[0] * 5.0).backward();
  REQUIRE(seen.size() == 1);
  REQUIRE(seen[0].size() == 3);
  check_values(seen[0][0], {5.0});
  CHECK_FALSE(seen[0][1].defined());
  check_values(seen[0][2], {0, 0, 0});  // unused: zeros, as PyTorch's materialized gradients
  check_values(x.grad(), {5, 0, 0});
}

TEST_CASE("custom op with a context: needs_input_grad, no node without a grad-requiring input, errors name the op") {
  Tensor a = t64({1, 2}), b = t64({3, 4}, true);
  bool needs_a = true, needs_b = false;
  auto mul = [&](const Tensor& x, const Tensor& y) {
    return tg::autograd::custom(
        "my_mul", {x, y},
        [](CustomContext& ctx, const In& in) {
          ctx.save_for_backward({in[0], in[1]});
          return In{in[0] * in[1]};
        },
        [&](CustomContext& ctx, const In& g) {
          needs_a = ctx.needs_input_grad(0);
          needs_b = ctx.needs_input_grad(1);
          return In{Tensor(), g[0] * ctx.saved_tensors()[0]};
        })[0];
  };
  Tensor y = mul(a, b);
  CHECK(y.grad_fn_name() == "my_mul");
  y.sum().backward();
  CHECK_FALSE(needs_a);
  CHECK(needs_b);
  check_values(b.grad(), {1, 2});
  CHECK_FALSE(mul(a, a).requires_grad());

  std::string msg = error_of([&] {
    tg::autograd::custom(
        "mixed", {b}, [](CustomContext&, const In& in) { return In{in[0], in[0].to(tg::kFloat32)}; },
        [](CustomContext&, const In& g) { return In{g[0]}; });
  });
  CHECK(contains(msg, "'mixed'"));
  CHECK(contains(msg, "float64 (output 0) and float32 (output 1)"));
  CHECK(contains(error_of([&] {
                   tg::autograd::custom("none", {b}, [](CustomContext&, const In&) { return In{}; },
                                        [](CustomContext&, const In& g) { return g; });
                 }),
                 "'none': the forward returned no outputs"));
  auto bad = tg::autograd::custom(
      "bad_count", {b}, [](CustomContext&, const In& in) { return In{in[0] * 2.0, in[0] * 3.0}; },
      [](CustomContext&, const In& g) { return In{g[0], g[1]}; });
  msg = error_of([&] { (bad[0] + bad[1]).sum().backward(); });
  CHECK(contains(msg, "'bad_count': the VJP returned 2 gradients for 1 inputs"));
  CHECK(contains(error_of([&] {
                   tg::autograd::custom(
                       "late_save", {b}, [](CustomContext&, const In& in) { return In{in[0] * 2.0}; },
                       [](CustomContext& c, const In& g) {
                         c.save_for_backward({g[0]});
                         return In{g[0]};
                       })[0]
                       .sum()
                       .backward();
                 }),
                 "save_for_backward"));
}

TEST_CASE("custom op under DetectAnomalyGuard: a NaN inside its forward is blamed on the custom op") {
  tg::DetectAnomalyGuard anomaly;
  Tensor x = t64({0.0, 1.0}, true);
  // x / x at 0 is 0/0 inside the forward: the error names 'safe_ratio', not the inner 'div'.
  std::string msg = error_of([&] {
    tg::autograd::custom(
        "safe_ratio", {x}, [](CustomContext&, const In& in) { return In{in[0] * 2.0, in[0] / in[0]}; },
        [](CustomContext&, const In& g) { return In{g[0] * 2.0}; });
  });
  CHECK(contains(msg, "custom op 'safe_ratio'"));
  CHECK(contains(msg, "output 1"));
  CHECK_FALSE(contains(msg, "'div'"));
  // The one-output form too.
  msg = error_of([&] {
    tg::autograd::custom(
        "my_log", {x}, [](const In& in) { return tg::log(in[0]); },
        [](const In& in, const Tensor&, const Tensor& g) { return In{g / in[0]}; });
  });
  CHECK(contains(msg, "custom op 'my_log'"));
  CHECK_FALSE(contains(msg, "'log'"));
  // A NaN made in its backward is blamed on it as well.
  Tensor y = tg::autograd::custom(
      "bad_backward", {x}, [](CustomContext&, const In& in) { return In{in[0] * 2.0}; },
      [](CustomContext&, const In& g) { return In{g[0] / tg::zeros({2}, tg::kFloat64) * 0.0}; })[0];
  msg = error_of([&] { y.sum().backward(); });
  CHECK(contains(msg, "'bad_backward'"));
  CHECK(contains(msg, "backward"));
}

TEST_CASE("custom op: saved outputs do not keep the graph alive after a create_graph backward") {
  std::weak_ptr<tg::Node> node;
  {
    Tensor r = t64({1.5}, true), th = t64({0.2}, true);
    std::vector<Tensor> o = polar(r, th);
    Tensor loss = (o[0] * o[1]).sum();
    node = find_node(loss, "polar");
    REQUIRE_FALSE(node.expired());
    // With create_graph the graph is retained and the backward saw the outputs with their graph.
    std::vector<Tensor> g = tg::autograd::grad({loss}, {r, th}, {}, std::nullopt, /*create_graph=*/true);
    // d/dth of (r^2 cos sin) = r^2 cos 2th
    check_values(g[1], {1.5 * 1.5 * std::cos(0.4)}, 1e-12);
    CHECK(g[1].requires_grad());
    CHECK_FALSE(node.expired());
  }
  CHECK(node.expired());  // nothing held it: no cycle through the saved outputs
  {
    Tensor r = t64({1.5}, true), th = t64({0.2}, true);
    std::vector<Tensor> o = polar(r, th);
    std::vector<Tensor> g = tg::autograd::grad({(o[0] * o[1]).sum()}, {r, th}, {}, std::nullopt, true);
    Tensor gg = tg::autograd::grad({g[1].sum()}, {th})[0];
    check_values(gg, {-2 * 1.5 * 1.5 * std::sin(0.4)}, 1e-12);  // d/dth r^2 cos 2th
  }
}

TEST_CASE("engine errors name the op the user called: a second backward through a freed sum") {
  Tensor x = t64({1, 2}, true);
  Tensor y = x.exp().sum();
  CHECK(y.grad_fn_name() == "sum");
  CHECK(x.mean().grad_fn_name() == "mean");
  CHECK(tg::sum(x, {0}, true).grad_fn_name() == "sum");
  CHECK(x.exp().grad_fn_name() == "exp");
  y.backward();
  std::string msg = error_of([&] { y.backward(); });
  CHECK(contains(msg, "'sum'"));
  CHECK(contains(msg, "second time"));
  CHECK(contains(msg, "retain_graph"));
  // retain_graph unset is create_graph; set, it keeps the graph for a second pass.
  Tensor z = (x * x).sum();
  tg::autograd::grad({z}, {x}, {}, /*retain_graph=*/true);
  CHECK_NOTHROW(tg::autograd::grad({z}, {x}));
  CHECK(contains(error_of([&] { tg::autograd::grad({z}, {x}); }), "'sum'"));
}
