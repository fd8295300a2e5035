// The fused primitives (autograd/primitives.hpp, "fused") against the composites they replace:
// equal values, equal gradients, equal second derivatives, and numerical gradient checks.
#include <doctest/doctest.h>

#include <vector>

#include <tapegrad.hpp>

#include "autograd/primitives.hpp"
#include "autograd/window.hpp"

using tg::Tensor;

namespace {

struct Case {
  tg::Shape x;
  std::vector<int64_t> k, s, p;
  tg::Shape out;
};

Tensor composite(const Tensor& x, const tg::WindowOptions& o, const tg::Shape& out) {
  Tensor idx = tg::prim::window_argmax(x, o, out);
  return tg::gather(x.reshape({x.size(0), x.size(1), -1}), 2, idx);
}

void check_all_close(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    CAPTURE(i);
    REQUIRE(a[i].shape() == b[i].shape());
    const std::vector<double> va = a[i].to_vector<double>(), vb = b[i].to_vector<double>();
    for (size_t j = 0; j < va.size(); ++j) CHECK(va[j] == doctest::Approx(vb[j]).epsilon(1e-12));
  }
}

}  // namespace

TEST_CASE("fused: window_max equals window_argmax + gather (values, indices, first and second derivatives)") {
  tg::manual_seed(11);
  const std::vector<Case> cases = {
      {{2, 3, 8, 8}, {2, 2}, {2, 2}, {0, 0}, {4, 4}},     // separable path
      {{1, 2, 7, 9}, {3, 3}, {2, 2}, {1, 1}, {4, 5}},     // padded: the row path
      {{2, 2, 10}, {3}, {1}, {0}, {8}},                   // 1-D, overlapping
  };
  for (const Case& c : cases) {
    CAPTURE(tg::shape_str(c.x));
    const tg::WindowOptions o = tg::WindowOptions(c.k).stride(c.s).padding(c.p);
    Tensor x = tg::randn(c.x, tg::TensorOptions().dtype(tg::kFloat64)).requires_grad_(true);
    Tensor idx;
    Tensor y = tg::prim::window_max(x, o, c.out, &idx);
    Tensor yr = composite(x, o, c.out);
    check_all_close({y}, {yr});
    CHECK(idx.to_vector<int64_t>() == tg::prim::window_argmax(x, o, c.out).to_vector<int64_t>());
    // First derivatives with a graph, then second derivatives through them (v . dy/dx, d/dx of
    // its product with another direction), for the fused op and the composite.
    Tensor v = tg::randn(y.shape(), tg::TensorOptions().dtype(tg::kFloat64)).requires_grad_(true);
    Tensor u = tg::randn(c.x, tg::TensorOptions().dtype(tg::kFloat64));
    auto derivs = [&](const Tensor& out) {
      Tensor gx = tg::autograd::grad({(out * v).sum()}, {x}, {}, std::nullopt, true)[0];
      std::vector<Tensor> second = tg::autograd::grad({(gx * u).sum()}, {v}, {}, std::nullopt, false, true);
      return std::vector<Tensor>{gx.detach(), second[0]};
    };
    check_all_close(derivs(y), derivs(yr));
    auto fn = [&](const std::vector<Tensor>& in) { return tg::prim::window_max(in[0], o, c.out); };
    tg::GradcheckResult r1 = tg::gradcheck(fn, {x});
    CHECK_MESSAGE(r1.ok, r1.message);
    tg::GradcheckResult r2 = tg::gradgradcheck(fn, {x});
    CHECK_MESSAGE(r2.ok, r2.message);
  }
}

TEST_CASE("fused: window_max names itself in its errors") {
  CHECK_THROWS_WITH_AS(tg::prim::window_max(tg::zeros({2, 3}), tg::WindowOptions({2}), {1}),
                       doctest::Contains("window_max: expected input [N, C, *spatial]"), tg::Error);
  CHECK_THROWS_WITH_AS(tg::prim::window_max(tg::zeros({1, 1, 4, 4}, tg::kInt64), tg::WindowOptions({2}), {2, 2}),
                       doctest::Contains("window_max: expected a float32 or float64 input"), tg::Error);
}

TEST_CASE("fused: fma_relu equals relu(fma) (values, first and second derivatives, gradcheck)") {
  tg::manual_seed(12);
  const auto f64 = tg::TensorOptions().dtype(tg::kFloat64);
  // Per-channel scale and shift over rows (the fused loop), and one varying along x's rows.
  for (const tg::Shape& as : {tg::Shape{1, 3, 1, 1}, tg::Shape{1, 1, 1, 5}}) {
    CAPTURE(tg::shape_str(as));
    Tensor x = tg::randn({2, 3, 4, 5}, f64).requires_grad_(true);
    Tensor a = tg::randn(as, f64).requires_grad_(true), b = tg::randn(as, f64).requires_grad_(true);
    Tensor y = tg::prim::fma_relu(x, a, b), yr = tg::relu(tg::prim::fma(x, a, b));
    check_all_close({y}, {yr});
    Tensor v = tg::randn(y.shape(), f64).requires_grad_(true);
    auto derivs = [&](const Tensor& out) {
      std::vector<Tensor> g = tg::autograd::grad({(out * v).sum()}, {x, a, b}, {}, std::nullopt, true);
      Tensor s = (g[0] * g[0]).sum() + (g[1] * g[2]).sum();
      std::vector<Tensor> second = tg::autograd::grad({s}, {x, a, b, v}, {}, std::nullopt, false, true);
      std::vector<Tensor> all{g[0].detach(), g[1].detach(), g[2].detach()};
      for (const Tensor& t : second) all.push_back(t.defined() ? t : tg::zeros({1}, f64));
      return all;
    };
    check_all_close(derivs(y), derivs(yr));
    // Away from the kink: shift x off 0 where x * a + b is close to it.
    auto fn = [](const std::vector<Tensor>& in) { return tg::prim::fma_relu(in[0], in[1], in[2]); };
    tg::GradcheckResult r1 = tg::gradcheck(fn, {x, a, b});
    CHECK_MESSAGE(r1.ok, r1.message);
    tg::GradcheckResult r2 = tg::gradgradcheck(fn, {x, a, b});
    CHECK_MESSAGE(r2.ok, r2.message);
  }
  CHECK_THROWS_WITH_AS(tg::prim::fma_relu(tg::zeros({2, 3}), tg::zeros({3}), tg::zeros({2})),
                       doctest::Contains("fma_relu: expected a scale and a shift of one shape"), tg::Error);
}

TEST_CASE("fused: Sequential runs BatchNorm + ReLU as one pass, with the modules' results") {
  namespace nn = tg::nn;
  for (bool training : {true, false}) {
    CAPTURE(training);
    tg::manual_seed(13);
    auto bn = std::make_shared<nn::BatchNorm2d>(4);
    auto relu = std::make_shared<nn::ReLU>();
    nn::Sequential seq{bn, relu};
    auto bn_ref = std::make_shared<nn::BatchNorm2d>(4);
    tg::manual_seed(14);
    const Tensor w = tg::rand({4}) + 0.5, b = tg::randn({4});
    for (auto* m : {bn.get(), bn_ref.get()}) {
      tg::NoGradGuard guard;
      m->weight.copy_(w);
      m->bias.copy_(b);
    }
    seq.train(training);
    bn_ref->train(training);
    const Tensor x0 = tg::randn({3, 4, 5, 6}), g = tg::randn({3, 4, 5, 6});
    Tensor x1 = x0.clone().requires_grad_(true), x2 = x0.clone().requires_grad_(true);
    Tensor y1 = seq.forward(x1), y2 = tg::relu((*bn_ref)(x2));
    CHECK(y1.grad_fn_name() == "fma_relu");
    (y1 * g).sum().backward();
    (y2 * g).sum().backward();
    for (auto pr : {std::make_pair(y1, y2), std::make_pair(x1.grad(), x2.grad()),
                    std::make_pair(bn->weight.grad(), bn_ref->weight.grad()),
                    std::make_pair(bn->bias.grad(), bn_ref->bias.grad()),
                    std::make_pair(bn->running_mean, bn_ref->running_mean),
                    std::make_pair(bn->running_var, bn_ref->running_var)})
      CHECK(pr.first.to_vector<float>() == pr.second.to_vector<float>());
  }
  // A forward hook on the BatchNorm sees its own output: no fusion then.
  auto bn = std::make_shared<nn::BatchNorm2d>(2);
  nn::Sequential seq{bn, std::make_shared<nn::ReLU>()};
  Tensor seen;
  bn->register_forward_hook([&](nn::Module&, const Tensor&, const Tensor& out) { seen = out; });
  Tensor y = seq.forward(tg::randn({2, 2, 3, 3}));
  REQUIRE(seen.defined());
  CHECK(seen.min().item<float>() < 0.0f);
  CHECK(y.grad_fn_name() != "fma_relu");
}
