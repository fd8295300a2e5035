// The tape and the backward engine: graph shapes, retain_graph, grad mode, hooks, retain_grad,
// accumulation, double backward, autograd::grad / backward / custom, anomaly detection, deep
// graphs and the memory a graph holds.
#include <doctest/doctest.h>

#include <pthread.h>

#include <cmath>
#include <exception>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include <tapegrad.hpp>

#include "autograd/tensor_impl.hpp"

using tg::Tensor;

namespace {

Tensor t64(const std::vector<double>& v, const tg::Shape& s, bool requires_grad = false) {
  return tg::tensor(v, s, tg::TensorOptions(tg::kFloat64).requires_grad(requires_grad));
}

Tensor t64(const std::vector<double>& v, bool requires_grad = false) {
  return t64(v, {int64_t(v.size())}, requires_grad);
}

// Every element of t equals the matching element of want (relative tolerance eps).
void check_values(const Tensor& t, const std::vector<double>& want, double eps = 1e-12) {
  REQUIRE(t.defined());
  std::vector<double> got = t.to_vector<double>();
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("element " << i);
    CHECK(got[i] == doctest::Approx(want[i]).epsilon(eps));
  }
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const tg::Error& e) {
    return e.what();
  }
  return "<no tg::Error thrown>";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST_SUITE("engine") {

// ---------------------------------------------------------------------------------------------
// Graph shapes
// ---------------------------------------------------------------------------------------------

TEST_CASE("a tensor used twice by one op gets both contributions") {
  Tensor x = t64({1, -2, 3}, true);
  (x * x).sum().backward();
  check_values(x.grad(), {2, -4, 6});

  Tensor z = t64({1, 2}, true);
  (z + z).sum().backward();
  check_values(z.grad(), {2, 2});
}

TEST_CASE("diamond graph: gradients along both branches are summed") {
  Tensor x = t64({0.5, 1.5, -2}, true);
  Tensor a = x * 2.0;
  Tensor b = x * 3.0;
  Tensor y = (a * b).sum();  // 6 x^2
  y.backward();
  check_values(x.grad(), {6, 18, -24});
}

TEST_CASE("shared subexpression: its node runs once, with the summed gradient") {
  Tensor x = t64({0.1, -0.4}, true);
  Tensor h = tg::exp(x);
  int calls = 0;
  Tensor seen;
  h.register_hook([&](const Tensor& g) {
    ++calls;
    seen = g.detach().clone();
    return Tensor();
  });
  Tensor y = (h * h + h).sum();  // dy/dh = 2h + 1
  y.backward();
  CHECK(calls == 1);
  std::vector<double> xs{0.1, -0.4};
  check_values(seen, {2 * std::exp(0.1) + 1, 2 * std::exp(-0.4) + 1});
  check_values(x.grad(), {2 * std::exp(0.2) + std::exp(0.1), 2 * std::exp(-0.8) + std::exp(-0.4)});
}

TEST_CASE("only the inputs that require grad receive a gradient") {
  Tensor x = t64({1, 2}, true);
  Tensor c = t64({3, 4});
  (x * c).sum().backward();
  check_values(x.grad(), {3, 4});
  CHECK_FALSE(c.grad().defined());
  CHECK_FALSE(c.requires_grad());
}

TEST_CASE("leaf/non-leaf bookkeeping") {
  Tensor x = t64({1, 2}, true);
  Tensor c = t64({1, 2});
  Tensor y = x * 2.0;
  CHECK(x.is_leaf());
  CHECK(c.is_leaf());
  CHECK_FALSE(y.is_leaf());
  CHECK(y.requires_grad());
  CHECK(y.grad_fn_name() == "mul");
  CHECK(x.grad_fn_name().empty());
  CHECK_FALSE((c * 2.0).requires_grad());
  CHECK_THROWS_AS(y.requires_grad_(false), tg::Error);
  CHECK_NOTHROW(y.requires_grad_(true));
}

// ---------------------------------------------------------------------------------------------
// backward() arguments and errors
// ---------------------------------------------------------------------------------------------

TEST_CASE("backward seeds: implicit only for one-element outputs, explicit must match the shape") {
  Tensor x = t64({1, 2, 3}, true);
  Tensor y = x * 2.0;
  std::string msg = error_of([&] { y.backward(); });
  CHECK(contains(msg, "scalar"));
  CHECK(contains(msg, "[3]"));

  msg = error_of([&] { y.backward(t64({1, 1}), true); });
  CHECK(contains(msg, "[3]"));
  CHECK(contains(msg, "[2]"));

  y.backward(t64({1, 10, 100}));
  check_values(x.grad(), {2, 20, 200});

  // A one-element non-scalar output is seeded with one.
  Tensor w = t64({3}, {1, 1}, true);
  (w * w).backward();
  check_values(w.grad(), {6});

  // A seed of another dtype is converted to the output's.
  Tensor f = tg::ones({2}, tg::TensorOptions().requires_grad(true));
  (f * 3.0).backward(t64({1, 2}));
  CHECK(f.grad().dtype() == tg::kFloat32);
  check_values(f.grad(), {3, 6});
}

TEST_CASE("backward on a tensor that does not require grad throws") {
  Tensor c = t64({1.0});
  CHECK_THROWS_AS(c.backward(), tg::Error);
  CHECK_THROWS_AS(Tensor().backward(), tg::Error);
}

TEST_CASE("backward on a leaf accumulates the seed") {
  Tensor x = t64({2.0}, true);
  x.backward();
  check_values(x.grad(), {1});
}

// ---------------------------------------------------------------------------------------------
// retain_graph
// ---------------------------------------------------------------------------------------------

TEST_CASE("retain_graph: a second backward works with it and throws without it") {
  Tensor x = t64({1, 2}, true);
  Tensor y = tg::exp(x);
  Tensor seed = t64({1, 1});
  y.backward(seed, /*retain_graph=*/true);
  y.backward(seed);  // the graph was kept: accumulates
  check_values(x.grad(), {2 * std::exp(1.0), 2 * std::exp(2.0)});
  // The last backward freed it.
  std::string msg = error_of([&] { y.backward(seed); });
  CHECK(contains(msg, "'exp'"));
  CHECK(contains(msg, "retain_graph"));
  // The failed backward did not change the gradient.
  check_values(x.grad(), {2 * std::exp(1.0), 2 * std::exp(2.0)});
}

TEST_CASE("without retain_graph the error names the first freed op reached") {
  Tensor x = t64({1, 2}, true);
  Tensor h = tg::tanh(x);
  Tensor y1 = (h * 2.0).sum();
  y1.backward();
  // A new branch on the freed tanh: the new nodes run, tanh's saved output is gone.
  Tensor y2 = (h * 3.0).sum();
  std::string msg = error_of([&] { y2.backward(); });
  CHECK(contains(msg, "'tanh'"));
  CHECK(contains(msg, "second time"));
}

TEST_CASE("a failed backward leaves the engine usable") {
  Tensor x = t64({1, 2}, true);
  Tensor y = x * 2.0;
  size_t id = y.register_hook([](const Tensor&) -> Tensor { throw tg::Error("hook failed on purpose"); });
  Tensor loss = y.sum();
  CHECK_THROWS_WITH_AS(loss.backward({}, true), doctest::Contains("on purpose"), tg::Error);
  y.remove_hook(id);
  loss.backward();
  check_values(x.grad(), {2, 2});
}

// ---------------------------------------------------------------------------------------------
// Grad mode
// ---------------------------------------------------------------------------------------------

TEST_CASE("NoGradGuard: nothing is recorded and results do not require grad") {
  Tensor x = t64({1, 2}, true);
  CHECK(tg::is_grad_enabled());
  {
    tg::NoGradGuard guard;
    CHECK_FALSE(tg::is_grad_enabled());
    Tensor y = tg::exp(x * 2.0).sum();
    CHECK_FALSE(y.requires_grad());
    CHECK(!y.grad_fn());
    CHECK(y.is_leaf());
    CHECK_THROWS_AS(y.backward(), tg::Error);
    {
      tg::NoGradGuard nested;
      CHECK_FALSE(tg::is_grad_enabled());
    }
    CHECK_FALSE(tg::is_grad_enabled());
    {
      tg::GradModeGuard on(true);
      CHECK(tg::is_grad_enabled());
      CHECK((x * 2.0).requires_grad());
    }
    CHECK_FALSE(tg::is_grad_enabled());
    // Leaves keep their flag.
    CHECK(x.requires_grad());
  }
  CHECK(tg::is_grad_enabled());
  CHECK((x * 2.0).requires_grad());
}

TEST_CASE("NoGradGuard: the leaf's accumulator is not touched by ops inside") {
  Tensor x = t64({1, 2}, true);
  Tensor y;
  {
    tg::NoGradGuard guard;
    y = x * 5.0;
  }
  Tensor z = (x * 2.0).sum();
  z.backward();
  check_values(x.grad(), {2, 2});
  CHECK_FALSE(y.requires_grad());
}

// ---------------------------------------------------------------------------------------------
// retain_grad, hooks, detach, requires_grad_
// ---------------------------------------------------------------------------------------------

TEST_CASE("retain_grad keeps the gradient of a non-leaf") {
  Tensor x = t64({1, -2}, true);
  Tensor y = x * 3.0;
  Tensor u = x * 4.0;  // not retained
  y.retain_grad();
  Tensor loss = (y * y + u).sum();
  loss.backward();
  check_values(y.grad(), {6, -12});  // 2 y
  CHECK_FALSE(u.grad().defined());
  check_values(x.grad(), {18 + 4, -36 + 4});
  // y's own node was freed by the first backward.
  Tensor loss2 = (y * 0.0).sum();
  CHECK_THROWS_AS(loss2.backward(), tg::Error);
}

TEST_CASE("retain_grad accumulates across backward passes, and its grad is not the leaf's buffer") {
  Tensor x = t64({1, 2}, true);
  Tensor y = x + 0.0;
  y.retain_grad();
  Tensor loss = y.sum();
  loss.backward({}, true);
  loss.backward();
  check_values(y.grad(), {2, 2});
  check_values(x.grad(), {2, 2});
  y.mutable_grad().zero_();
  check_values(x.grad(), {2, 2});
}

TEST_CASE("retain_grad on a tensor that does not require grad throws") {
  CHECK_THROWS_AS(t64({1}).retain_grad(), tg::Error);
  CHECK_NOTHROW(t64({1}, true).retain_grad());  // a leaf: a no-op
}

TEST_CASE("tensor hooks: replace the gradient, keep it by returning {}, remove them") {
  Tensor x = t64({1, 2}, true);
  Tensor y = x * 2.0;
  std::vector<double> observed;
  size_t keep = y.register_hook([&](const Tensor& g) {
    observed = g.to_vector<double>();
    return Tensor();
  });
  size_t scale = y.register_hook([](const Tensor& g) { return g * 10.0; });
  CHECK(keep != scale);
  Tensor loss = (y * t64({1, 3})).sum();
  loss.backward({}, true);
  CHECK(observed == std::vector<double>{1, 3});  // the first hook saw the original gradient
  check_values(x.grad(), {20, 60});

  x.mutable_grad() = {};
  y.remove_hook(scale);
  observed.clear();
  loss.backward({}, true);
  CHECK(observed == std::vector<double>{1, 3});
  check_values(x.grad(), {2, 6});

  x.mutable_grad() = {};
  y.remove_hook(keep);
  y.remove_hook(12345678);  // unknown ids are ignored
  observed.clear();
  loss.backward();
  CHECK(observed.empty());
  check_values(x.grad(), {2, 6});
}

TEST_CASE("hooks run in registration order, each seeing the previous one's result") {
  Tensor x = t64({1.0}, true);
  Tensor y = x * 1.0;
  y.register_hook([](const Tensor& g) { return g + 1.0; });
  y.register_hook([](const Tensor& g) { return g * 3.0; });
  y.sum().backward();
  check_values(x.grad(), {6});  // (1 + 1) * 3, not 1 * 3 + 1
}

TEST_CASE("a hook on a non-leaf also changes what retain_grad stores") {
  Tensor x = t64({1, 2}, true);
  Tensor y = x * 2.0;
  y.retain_grad();
  y.register_hook([](const Tensor& g) { return g * -1.0; });
  y.sum().backward();
  check_values(y.grad(), {-1, -1});
  check_values(x.grad(), {-2, -2});
}

TEST_CASE("hooks on leaves see and may change the gradient that is accumulated") {
  Tensor x = t64({1, 2}, true);
  std::vector<double> seen;
  x.register_hook([&](const Tensor& g) {
    seen = g.to_vector<double>();
    return g * 3.0;
  });
  (x * x).sum().backward();
  CHECK(seen == std::vector<double>{2, 4});
  check_values(x.grad(), {6, 12});
}

TEST_CASE("a hook may not change the gradient's shape; hooks need requires_grad") {
  Tensor x = t64({1, 2}, true);
  Tensor y = x * 2.0;
  y.register_hook([](const Tensor&) { return t64({1, 2, 3}); });
  std::string msg = error_of([&] { y.sum().backward(); });
  CHECK(contains(msg, "[2]"));
  CHECK(contains(msg, "[3]"));
  CHECK_THROWS_AS(t64({1}).register_hook([](const Tensor& g) { return g; }), tg::Error);
}

TEST_CASE("queue_callback: runs once after every leaf's grad is written, in order; outside backward throws") {
  Tensor a = t64({1, 2}, true), b = t64({3, 4}, true);
  std::vector<std::string> log;
  std::vector<double> a_grad_at_end, b_grad_at_end;
  size_t id = a.register_hook([&](const Tensor&) -> Tensor {
    log.push_back("hook a");
    tg::autograd::queue_callback([&] {
      log.push_back("callback 1");
      a_grad_at_end = a.grad().to_vector<double>();
      b_grad_at_end = b.grad().to_vector<double>();
      tg::autograd::queue_callback([&] { log.push_back("callback 2 (queued by callback 1)"); });
    });
    return {};
  });
  b.register_hook([&](const Tensor&) -> Tensor {
    log.push_back("hook b");
    return {};
  });
  Tensor h = a * 2.0;
  (((h * b).exp() * 0.0).sum() + (h * b).sum() + b.sum()).backward();
  REQUIRE(log.size() == 4);
  CHECK(log[2] == "callback 1");
  CHECK(log[3] == "callback 2 (queued by callback 1)");
  check_values(tg::tensor(a_grad_at_end, {2}, tg::kFloat64), {6, 8});
  check_values(tg::tensor(b_grad_at_end, {2}, tg::kFloat64), {3, 5});
  a.remove_hook(id);
  log.clear();
  (a * b).sum().backward();  // nothing queued: nothing runs
  CHECK(log == std::vector<std::string>{"hook b"});
  CHECK(contains(error_of([] { tg::autograd::queue_callback([] {}); }), "no backward pass is running"));
  CHECK_THROWS_AS(tg::autograd::queue_callback(nullptr), tg::Error);
}

TEST_CASE("queue_callback: a pass that throws drops its callbacks; a nested pass defers to the outermost") {
  Tensor x = t64({1, 2}, true);
  int ran = 0;
  Tensor y = x * 2.0;
  size_t id = y.register_hook([&](const Tensor&) -> Tensor {
    tg::autograd::queue_callback([&] { ++ran; });
    throw tg::Error("hook failed on purpose");
  });
  CHECK_THROWS_AS(y.sum().backward(), tg::Error);
  CHECK(ran == 0);
  y.remove_hook(id);
  (x * 3.0).sum().backward();  // a later pass does not run the dropped callback
  CHECK(ran == 0);

  // A backward run from inside a VJP (as checkpoint does): its callback waits for the outer pass.
  Tensor w = t64({5}, true), inner_leaf = t64({7}, true);
  std::vector<std::string> log;
  inner_leaf.register_hook([&](const Tensor&) -> Tensor {
    tg::autograd::queue_callback([&] { log.push_back("callback"); });
    return {};
  });
  Tensor z = tg::autograd::custom(
      "nested", {w}, [](const std::vector<Tensor>& in) { return in[0] * 1.0; },
      [&](const std::vector<Tensor>&, const Tensor&, const Tensor& g) {
        {
          tg::GradModeGuard record(true);  // VJPs run without recording; checkpoint re-enables it the same way
          (inner_leaf * 2.0).sum().backward();
        }
        log.push_back("inner backward returned");
        return std::vector<Tensor>{g};
      });
  Tensor u = z * w;  // w's accumulator runs after the custom op's VJP
  w.register_hook([&](const Tensor&) -> Tensor {
    log.push_back("outer leaf");
    return {};
  });
  u.sum().backward();
  CHECK(log == std::vector<std::string>{"inner backward returned", "outer leaf", "callback"});
}

TEST_CASE("detach shares storage, is off the tape, and stops the gradient") {
  Tensor x = t64({1, 2, 3}, true);
  Tensor y = x * 2.0;
  Tensor d = y.detach();
  CHECK_FALSE(d.requires_grad());
  CHECK(d.is_leaf());
  CHECK(!d.grad_fn());
  d.data_ptr<double>()[0] = 100;
  CHECK(y.to_vector<double>()[0] == 100);  // same storage

  Tensor x2 = t64({1, 2, 3}, true);
  (x2 * x2.detach()).sum().backward();
  check_values(x2.grad(), {1, 2, 3});  // x, not 2x
  Tensor leaf_detached = x2.detach();
  CHECK_FALSE(leaf_detached.requires_grad());
  CHECK_FALSE(leaf_detached.grad().defined());
}

TEST_CASE("requires_grad_ is for floating tensors only") {
  Tensor i = tg::arange(0, 4);
  CHECK(i.dtype() == tg::kInt64);
  CHECK_THROWS_WITH_AS(i.requires_grad_(), doctest::Contains("int64"), tg::Error);
  CHECK_FALSE(i.requires_grad());
  CHECK_THROWS_AS(tg::zeros({2}, tg::TensorOptions(tg::kInt64).requires_grad(true)), tg::Error);
  CHECK_NOTHROW(i.requires_grad_(false));
  Tensor f = tg::zeros({2});
  f.requires_grad_();
  CHECK(f.requires_grad());
  f.requires_grad_(false);
  CHECK_FALSE(f.requires_grad());
  CHECK_FALSE((f * 2.0).requires_grad());
}

// ---------------------------------------------------------------------------------------------
// Accumulation and aliasing of .grad
// ---------------------------------------------------------------------------------------------

TEST_CASE("gradients accumulate across backward calls until reset") {
  Tensor x = t64({1, 2}, true);
  (x * x).sum().backward();
  (x * 3.0).sum().backward();
  check_values(x.grad(), {2 + 3, 4 + 3});
  x.mutable_grad().zero_();  // zeroing in place keeps the buffer
  (x * 3.0).sum().backward();
  check_values(x.grad(), {3, 3});
  x.mutable_grad() = {};
  CHECK_FALSE(x.grad().defined());
  (x * 7.0).sum().backward();
  check_values(x.grad(), {7, 7});
}

TEST_CASE("two leaves fed by one add get separate gradient buffers") {
  Tensor a = t64({1, 2}, true);
  Tensor b = t64({3, 4}, true);
  (a + b).sum().backward();
  check_values(a.grad(), {1, 1});
  check_values(b.grad(), {1, 1});
  a.mutable_grad().zero_();
  check_values(b.grad(), {1, 1});
  b.mutable_grad().fill_(5);
  check_values(a.grad(), {0, 0});
  // And accumulation into one does not leak into the other.
  (a * 2.0).sum().backward();
  check_values(a.grad(), {2, 2});
  check_values(b.grad(), {5, 5});
}

TEST_CASE("an explicit seed passed to backward is never aliased by a leaf's .grad") {
  Tensor a = t64({1, 2}, true);
  Tensor b = t64({3, 4}, true);
  Tensor seed = t64({1, 1});
  Tensor y = a + b;
  y.backward(seed, /*retain_graph=*/true);
  check_values(a.grad(), {1, 1});
  check_values(b.grad(), {1, 1});
  a.mutable_grad().zero_();
  check_values(seed, {1, 1});  // the caller's tensor is untouched
  check_values(b.grad(), {1, 1});
  y.backward(seed);  // accumulation must not write into the seed either
  check_values(seed, {1, 1});
  check_values(a.grad(), {1, 1});
  check_values(b.grad(), {2, 2});
}

TEST_CASE("a tensor returned by a hook is never aliased by a leaf's .grad") {
  Tensor x = t64({1, 2}, true);
  Tensor replacement = t64({7, 8});
  x.register_hook([replacement](const Tensor&) { return replacement; });
  (x * 2.0).sum().backward();
  check_values(x.grad(), {7, 8});
  x.mutable_grad().zero_();
  check_values(replacement, {7, 8});
}

TEST_CASE("create_graph: two leaves fed by one add get separate gradient tensors") {
  Tensor a = t64({1, 2}, true);
  Tensor b = t64({3, 4}, true);
  (a + b).sum().backward({}, false, /*create_graph=*/true);
  check_values(a.grad(), {1, 1});
  check_values(b.grad(), {1, 1});
  a.mutable_grad().zero_();
  check_values(b.grad(), {1, 1});
  a.mutable_grad() = {};
  b.mutable_grad() = {};
}

// ---------------------------------------------------------------------------------------------
// Double backward
// ---------------------------------------------------------------------------------------------

TEST_CASE("create_graph: d2/dx2 of x^3 is 6x (autograd::grad)") {
  Tensor x = t64({1, -2, 0.5}, true);
  for (int variant = 0; variant < 2; ++variant) {
    CAPTURE(variant);
    Tensor y = variant == 0 ? (x * x * x).sum() : x.pow(3).sum();
    Tensor g = tg::autograd::grad({y}, {x}, {}, std::nullopt, /*create_graph=*/true)[0];
    CHECK(g.requires_grad());
    check_values(g, {3, 12, 0.75});
    Tensor g2 = tg::autograd::grad({g.sum()}, {x})[0];
    CHECK_FALSE(g2.requires_grad());
    check_values(g2, {6, -12, 3});
    CHECK_FALSE(x.grad().defined());
  }
}

TEST_CASE("create_graph: d2/dx2 of x^3 is 6x (backward into .grad)") {
  Tensor x = t64({1, -2, 0.5}, true);
  (x * x * x).sum().backward({}, false, /*create_graph=*/true);
  Tensor g = x.grad();
  CHECK(g.requires_grad());
  check_values(g, {3, 12, 0.75});
  x.mutable_grad() = {};  // also breaks the x -> grad -> graph -> x cycle
  g.sum().backward();
  check_values(x.grad(), {6, -12, 3});
}

TEST_CASE("create_graph: third derivative through exp, tanh and sigmoid") {
  Tensor x = t64({0.3, -0.7}, true);
  Tensor y = (tg::exp(x) + tg::tanh(x) + tg::sigmoid(x)).sum();
  Tensor g1 = tg::autograd::grad({y}, {x}, {}, std::nullopt, true)[0];
  Tensor g2 = tg::autograd::grad({g1.sum()}, {x}, {}, std::nullopt, true)[0];
  Tensor g3 = tg::autograd::grad({g2.sum()}, {x})[0];
  auto d1 = [](double v) {
    double t = std::tanh(v), s = 1 / (1 + std::exp(-v));
    return std::exp(v) + (1 - t * t) + s * (1 - s);
  };
  auto d2 = [](double v) {
    double t = std::tanh(v), s = 1 / (1 + std::exp(-v));
    return std::exp(v) - 2 * t * (1 - t * t) + s * (1 - s) * (1 - 2 * s);
  };
  auto d3 = [](double v) {
    double t = std::tanh(v), s = 1 / (1 + std::exp(-v));
    double ds = s * (1 - s);
    return std::exp(v) + (-2 * (1 - t * t) * (1 - t * t) + 4 * t * t * (1 - t * t)) + ds * (1 - 6 * s + 6 * s * s);
  };
  check_values(g1, {d1(0.3), d1(-0.7)}, 1e-10);
  check_values(g2, {d2(0.3), d2(-0.7)}, 1e-10);
  check_values(g3, {d3(0.3), d3(-0.7)}, 1e-10);
}

TEST_CASE("Hessian-vector product of x^T A x is (A + A^T) v") {
  Tensor a = t64({1, 2, 0, -1, 3, 4, 0.5, 0, 2}, {3, 3});
  Tensor x = t64({0.2, -1, 0.7}, true);
  Tensor v = t64({1, 0.5, -2});
  Tensor f = tg::matmul(x, tg::matmul(a, x));
  Tensor g = tg::autograd::grad({f}, {x}, {}, std::nullopt, /*create_graph=*/true)[0];
  // g = (A + A^T) x
  std::vector<double> av = a.to_vector<double>();
  std::vector<double> xv{0.2, -1, 0.7}, vv{1, 0.5, -2}, gx(3), hv(3);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) {
      gx[size_t(i)] += (av[size_t(i * 3 + j)] + av[size_t(j * 3 + i)]) * xv[size_t(j)];
      hv[size_t(i)] += (av[size_t(i * 3 + j)] + av[size_t(j * 3 + i)]) * vv[size_t(j)];
    }
  check_values(g, gx);
  Tensor hvp = tg::autograd::grad({(g * v).sum()}, {x})[0];
  check_values(hvp, hv);
}

TEST_CASE("gradient penalty: grad of ||dy/dx||^2 with respect to a weight") {
  // y = sum(tanh(w * x)); dy/dx = w (1 - tanh^2(w x)); penalty = sum((dy/dx)^2)
  Tensor x = t64({0.4, -0.3}, true);
  Tensor w = t64({1.5, 0.8}, true);
  Tensor y = tg::tanh(w * x).sum();
  Tensor gx = tg::autograd::grad({y}, {x}, {}, std::nullopt, true)[0];
  Tensor penalty = (gx * gx).sum();
  penalty.backward();
  std::vector<double> xs{0.4, -0.3}, ws{1.5, 0.8};
  for (size_t i = 0; i < 2; ++i) {
    double t = std::tanh(ws[i] * xs[i]), s = 1 - t * t;
    double d = ws[i] * s;                                   // dy/dx
    double dd_dw = s + ws[i] * (-2 * t * s * xs[i]);        // d(dy/dx)/dw
    CHECK(w.grad().to_vector<double>()[i] == doctest::Approx(2 * d * dd_dw).epsilon(1e-10));
  }
  x.mutable_grad() = {};
  w.mutable_grad() = {};
}

// ---------------------------------------------------------------------------------------------
// autograd::grad and autograd::backward
// ---------------------------------------------------------------------------------------------

TEST_CASE("autograd::grad does not touch .grad()") {
  Tensor x = t64({1, 2}, true);
  Tensor w = t64({3, 4}, true);
  Tensor y = (x * w).sum();
  auto gs = tg::autograd::grad({y}, {x});
  REQUIRE(gs.size() == 1);
  check_values(gs[0], {3, 4});
  CHECK_FALSE(gs[0].requires_grad());
  CHECK_FALSE(x.grad().defined());
  CHECK_FALSE(w.grad().defined());  // not asked for: not accumulated either
}

TEST_CASE("autograd::grad: several inputs, grad_outputs, retain_graph default") {
  Tensor x = t64({1, 2}, true);
  Tensor w = t64({3, 4}, true);
  Tensor y = x * w;
  auto gs = tg::autograd::grad({y}, {w, x}, {t64({10, 100})}, /*retain_graph=*/1);
  check_values(gs[0], {10, 200});
  check_values(gs[1], {30, 400});
  // retain_graph defaults to create_graph (false): the graph is freed by this call.
  auto again = tg::autograd::grad({y}, {x}, {t64({1, 1})});
  check_values(again[0], {3, 4});
  CHECK_THROWS_WITH_AS(tg::autograd::grad({y}, {x}, {t64({1, 1})}), doctest::Contains("'mul'"), tg::Error);
  // Non-scalar outputs need grad_outputs.
  Tensor z = x * 2.0;
  CHECK_THROWS_AS(tg::autograd::grad({z}, {x}), tg::Error);
  CHECK_THROWS_AS(tg::autograd::grad({z}, {x}, {t64({1, 1}), t64({1, 1})}), tg::Error);
}

TEST_CASE("autograd::grad: unused inputs") {
  Tensor x = t64({1, 2}, true);
  Tensor unused = t64({5, 6, 7}, true);
  Tensor y = (x * x).sum();
  auto gs = tg::autograd::grad({y}, {x, unused}, {}, true, false, /*allow_unused=*/true);
  check_values(gs[0], {2, 4});
  CHECK_FALSE(gs[1].defined());
  std::string msg = error_of([&] { tg::autograd::grad({y}, {x, unused}, {}, 1); });
  CHECK(contains(msg, "input 1"));
  CHECK(contains(msg, "[3]"));
  // An input that does not require grad at all.
  CHECK_THROWS_AS(tg::autograd::grad({y}, {t64({1.0})}, {}, 1), tg::Error);
}

TEST_CASE("autograd::grad with respect to a non-leaf intermediate") {
  Tensor x = t64({1, -2}, true);
  Tensor h = x * 3.0;
  Tensor y = (h * h).sum();
  auto gs = tg::autograd::grad({y}, {h, x}, {}, 1);
  check_values(gs[0], {6, -12});   // 2h
  check_values(gs[1], {18, -36});  // 2h * 3
  auto only_h = tg::autograd::grad({y}, {h});
  check_values(only_h[0], {6, -12});
  CHECK_FALSE(h.grad().defined());
  CHECK_FALSE(x.grad().defined());
}

TEST_CASE("autograd::backward with several roots") {
  Tensor x = t64({1, 2}, true);
  Tensor shared = tg::exp(x);
  Tensor y1 = (shared * 2.0).sum();
  Tensor y2 = (shared * x).sum();
  tg::autograd::backward({y1, y2});
  // d/dx [2 e^x + x e^x] = 2 e^x + e^x + x e^x
  check_values(x.grad(), {3 * std::exp(1.0) + std::exp(1.0), 3 * std::exp(2.0) + 2 * std::exp(2.0)});

  Tensor z = t64({1, 2}, true);
  Tensor a = z * 2.0, b = z * z;
  tg::autograd::backward({a, b}, {t64({1, 10}), t64({100, 1000})});
  check_values(z.grad(), {2 + 200, 20 + 4000});
  CHECK_THROWS_AS(tg::autograd::backward({z * 1.0, z * 2.0}, {t64({1, 1})}), tg::Error);
}

// ---------------------------------------------------------------------------------------------
// autograd::custom
// ---------------------------------------------------------------------------------------------

TEST_CASE("custom op: forward and VJP") {
  Tensor x = t64({1, 2, 3}, true);
  Tensor w = t64({4, 5, 6}, true);
  bool forward_saw_graph = true;
  Tensor y = tg::autograd::custom(
      "my_mul", {x, w},
      [&](const std::vector<Tensor>& in) {
        forward_saw_graph = in[0].requires_grad() || tg::is_grad_enabled();
        return in[0] * in[1];
      },
      [](const std::vector<Tensor>& in, const Tensor&, const Tensor& g) {
        return std::vector<Tensor>{g * in[1], g * in[0]};
      });
  CHECK_FALSE(forward_saw_graph);
  CHECK(y.grad_fn_name() == "my_mul");
  check_values(y, {4, 10, 18});
  y.sum().backward();
  check_values(x.grad(), {4, 5, 6});
  check_values(w.grad(), {1, 2, 3});
}

TEST_CASE("custom op: the VJP receives the output; undefined gradients mean zero") {
  Tensor x = t64({0.5, -1}, true);
  Tensor c = t64({2, 2}, true);
  Tensor y = tg::autograd::custom(
      "my_exp", {x, c}, [](const std::vector<Tensor>& in) { return tg::exp(in[0]) * in[1]; },
      [](const std::vector<Tensor>&, const Tensor& out, const Tensor& g) {
        return std::vector<Tensor>{g * out, Tensor()};
      });
  y.sum().backward();
  check_values(x.grad(), {2 * std::exp(0.5), 2 * std::exp(-1.0)});
  CHECK_FALSE(c.grad().defined());
}

TEST_CASE("custom op: no node without an input that requires grad") {
  Tensor x = t64({1, 2});
  Tensor y = tg::autograd::custom(
      "plain", {x}, [](const std::vector<Tensor>& in) { return in[0] * 2.0; },
      [](const std::vector<Tensor>&, const Tensor&, const Tensor& g) { return std::vector<Tensor>{g}; });
  CHECK_FALSE(y.requires_grad());
  check_values(y, {2, 4});
}

TEST_CASE("custom op: a VJP with the wrong shape or count throws naming the op") {
  Tensor x = t64({1, 2, 3}, true);
  Tensor y = tg::autograd::custom(
      "bad_shape", {x}, [](const std::vector<Tensor>& in) { return in[0] * in[0]; },
      [](const std::vector<Tensor>&, const Tensor&, const Tensor& g) {
        return std::vector<Tensor>{g.sum()};
      });
  std::string msg = error_of([&] { y.sum().backward(); });
  CHECK(contains(msg, "bad_shape"));
  CHECK(contains(msg, "[3]"));

  Tensor z = tg::autograd::custom(
      "bad_count", {x}, [](const std::vector<Tensor>& in) { return in[0] * 1.0; },
      [](const std::vector<Tensor>&, const Tensor&, const Tensor& g) { return std::vector<Tensor>{g, g}; });
  CHECK_THROWS_WITH_AS(z.sum().backward(), doctest::Contains("bad_count"), tg::Error);

  CHECK_THROWS_WITH_AS(tg::autograd::custom(
                           "no_output", {x}, [](const std::vector<Tensor>&) { return Tensor(); },
                           [](const std::vector<Tensor>&, const Tensor&, const Tensor& g) {
                             return std::vector<Tensor>{g};
                           }),
                       doctest::Contains("no_output"), tg::Error);
}

TEST_CASE("custom op: double backward through a VJP made of differentiable ops") {
  Tensor x = t64({1, -2, 0.5}, true);
  auto cube = [](const Tensor& in) {
    return tg::autograd::custom(
        "my_cube", {in},
        [](const std::vector<Tensor>& v) {
          // forward computed by hand, off the tape
          std::vector<double> d = v[0].to_vector<double>();
          for (double& e : d) e = e * e * e;
          return tg::tensor(d, v[0].shape(), tg::kFloat64);
        },
        [](const std::vector<Tensor>& v, const Tensor&, const Tensor& g) {
          return std::vector<Tensor>{g * v[0] * v[0] * 3.0};
        });
  };
  Tensor y = cube(x).sum();
  Tensor g = tg::autograd::grad({y}, {x}, {}, std::nullopt, true)[0];
  check_values(g, {3, 12, 0.75});
  Tensor g2 = tg::autograd::grad({g.sum()}, {x})[0];
  check_values(g2, {6, -12, 3});
}

TEST_CASE("custom op: double backward through a VJP that uses the output") {
  // y = exp(x) via a custom op whose VJP is g * out: the second derivative flows through out.
  Tensor x = t64({0.2, -0.3}, true);
  Tensor y = tg::autograd::custom(
      "my_exp2", {x}, [](const std::vector<Tensor>& in) { return tg::exp(in[0]); },
      [](const std::vector<Tensor>&, const Tensor& out, const Tensor& g) { return std::vector<Tensor>{g * out}; });
  Tensor g = tg::autograd::grad({y.sum()}, {x}, {}, std::nullopt, true)[0];
  Tensor g2 = tg::autograd::grad({g.sum()}, {x})[0];
  check_values(g2, {std::exp(0.2), std::exp(-0.3)});
}

// ---------------------------------------------------------------------------------------------
// Anomaly detection
// ---------------------------------------------------------------------------------------------

TEST_CASE("DetectAnomalyGuard: NaN in a forward throws naming the op") {
  Tensor x = t64({-1, 2}, true);
  CHECK_FALSE(tg::is_anomaly_enabled());
  {
    tg::DetectAnomalyGuard anomaly;
    CHECK(tg::is_anomaly_enabled());
    std::string msg = error_of([&] { tg::log(x); });
    CHECK(contains(msg, "'log'"));
    CHECK(contains(msg, "forward"));
    // Also with grad mode off.
    tg::NoGradGuard no_grad;
    CHECK_THROWS_WITH_AS(tg::sqrt(x), doctest::Contains("sqrt"), tg::Error);
    CHECK_NOTHROW(tg::log(x * x));
  }
  CHECK_FALSE(tg::is_anomaly_enabled());
  Tensor quiet = tg::log(x);  // outside the guard: NaN passes silently
  CHECK(std::isnan(quiet.to_vector<double>()[0]));
}

TEST_CASE("DetectAnomalyGuard: NaN or Inf produced in a backward throws naming that op") {
  tg::DetectAnomalyGuard anomaly;
  SUBCASE("a custom op whose VJP returns NaN") {
    Tensor x = t64({1, 2}, true);
    Tensor y = tg::autograd::custom(
        "nan_vjp", {x}, [](const std::vector<Tensor>& in) { return in[0] * 2.0; },
        [](const std::vector<Tensor>& in, const Tensor&, const Tensor&) {
          return std::vector<Tensor>{tg::full(in[0].shape(), std::nan(""), tg::kFloat64)};
        });
    std::string msg = error_of([&] { (y * 3.0).sum().backward(); });
    CHECK(contains(msg, "nan_vjp"));
    CHECK(contains(msg, "backward"));
    CHECK_FALSE(x.grad().defined());
  }
  SUBCASE("sqrt at 0: the forward is finite, its VJP divides by zero") {
    Tensor x = t64({0, 4}, true);
    Tensor y = tg::sqrt(x);
    check_values(y, {0, 2});
    std::string msg = error_of([&] { (y * 3.0).sum().backward(); });
    CHECK(contains(msg, "'sqrt'"));
    CHECK(contains(msg, "backward"));
  }
}

// ---------------------------------------------------------------------------------------------
// Deep graphs
// ---------------------------------------------------------------------------------------------

namespace {

// Runs f on a thread with a 512 KiB stack and rethrows what it threw. The engine's own frames
// fit many times over; anything that recurses once per node of a deep graph does not.
void run_on_small_stack(const std::function<void()>& f) {
  struct Job {
    const std::function<void()>* f;
    std::exception_ptr error;
  } job{&f, nullptr};
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 512 * 1024);
  pthread_t thread;
  int rc = pthread_create(
      &thread, &attr,
      [](void* p) -> void* {
        auto* j = static_cast<Job*>(p);
        try {
          (*j->f)();
        } catch (...) {
          j->error = std::current_exception();
        }
        return nullptr;
      },
      &job);
  pthread_attr_destroy(&attr);
  REQUIRE(rc == 0);
  pthread_join(thread, nullptr);
  if (job.error) std::rethrow_exception(job.error);
}

}  // namespace

TEST_CASE("a 1,000,000-op chain: backward and destruction do not overflow the stack") {
  // The cheap path (same-shape tensor operand, a VJP that saves nothing) keeps this affordable
  // under the sanitizers; a recursive backward or destructor would need ~1M frames.
  const int n = 1000000;
  Tensor x = t64({0.0}, true);
  double forward = 0, grad = 0, grad_after_destroy = 0;
  run_on_small_stack([&] {
    Tensor step = t64({1e-7});
    Tensor y = x;
    for (int i = 0; i < n; ++i) y = y + step;
    forward = y.item<double>();
    y.backward();
    grad = x.grad().item<double>();
    y = Tensor();  // destroys the released graph
    grad_after_destroy = x.grad().item<double>();
  });
  CHECK(forward == doctest::Approx(0.1).epsilon(1e-9));
  CHECK(grad == 1.0);
  CHECK(grad_after_destroy == 1.0);
}

TEST_CASE("a 100,000-op chain of saved tensors: product rule all the way, then destroyed unreleased") {
  // Each mul node saves its input, whose grad_fn is the previous node: destroying a retained
  // graph goes through the saved tensors as well as the edges.
  const int n = 100000;
  const double c = 1.000002;
  Tensor x = t64({1.0}, true);
  double forward = 0, grad = 0;
  size_t live_with_graph = 0, live_after = 0;
  run_on_small_stack([&] {
    Tensor factor = t64({c});
    Tensor y = x;
    for (int i = 0; i < n; ++i) y = y * factor;
    forward = y.item<double>();
    y.backward({}, /*retain_graph=*/true);
    grad = x.grad().item<double>();
    live_with_graph = tg::detail::live_bytes();
    y = Tensor();  // the graph still holds every saved tensor
    live_after = tg::detail::live_bytes();
  });
  const double want = std::pow(c, n);
  CHECK(forward == doctest::Approx(want).epsilon(1e-9));
  CHECK(grad == doctest::Approx(want).epsilon(1e-9));
  CHECK(x.grad().item<double>() == doctest::Approx(want).epsilon(1e-9));
  CHECK(live_with_graph >= live_after + size_t(n) * sizeof(double));  // the saved tensors were freed
}

// ---------------------------------------------------------------------------------------------
// Memory
// ---------------------------------------------------------------------------------------------

namespace {

struct Mlp {
  Tensor x = tg::randn({16, 8});
  Tensor w1 = (tg::randn({8, 32}) * 0.3).requires_grad_();
  Tensor b1 = tg::zeros({32}).requires_grad_();
  Tensor w2 = (tg::randn({32, 4}) * 0.3).requires_grad_();
  Tensor b2 = tg::zeros({4}).requires_grad_();
  Tensor loss() const {
    Tensor h = tg::tanh(tg::matmul(x, w1) + b1);
    Tensor out = tg::matmul(tg::relu(h), w2) + b2;
    return (tg::exp(out * 0.1) * tg::sigmoid(out)).mean();
  }
};

}  // namespace

TEST_CASE("memory: a forward+backward leaves no live storage behind") {
  tg::manual_seed(7);
  Mlp m;
  m.loss().backward();  // warm up: the leaves' .grad now exist
  const size_t before = tg::detail::live_bytes();
  {
    Tensor loss = m.loss();
    CHECK(tg::detail::live_bytes() > before);  // the graph holds activations
    loss.backward();
  }
  CHECK(tg::detail::live_bytes() == before);
  // The same with a graph dropped without a backward.
  { Tensor loss = m.loss(); }
  CHECK(tg::detail::live_bytes() == before);
}

TEST_CASE("memory: backward frees the saved tensors while the loss is still alive") {
  tg::manual_seed(8);
  Mlp m;
  m.loss().backward();
  const size_t before = tg::detail::live_bytes();
  Tensor loss = m.loss();
  const size_t loss_bytes = loss.impl()->storage->bytes;
  const size_t after_forward = tg::detail::live_bytes();
  CHECK(after_forward > before + loss_bytes + 16 * 32 * 4);  // at least one activation is saved
  loss.backward();
  CHECK(tg::detail::live_bytes() == before + loss_bytes);
  loss = Tensor();
  CHECK(tg::detail::live_bytes() == before);
}

TEST_CASE("memory: retain_graph keeps the saved tensors until the graph is dropped") {
  tg::manual_seed(9);
  Mlp m;
  m.loss().backward();
  const size_t before = tg::detail::live_bytes();
  Tensor loss = m.loss();
  const size_t loss_bytes = loss.impl()->storage->bytes;
  loss.backward({}, /*retain_graph=*/true);
  CHECK(tg::detail::live_bytes() > before + loss_bytes);
  loss.backward();
  CHECK(tg::detail::live_bytes() == before + loss_bytes);
  loss = Tensor();
  CHECK(tg::detail::live_bytes() == before);
}

}  // TEST_SUITE
