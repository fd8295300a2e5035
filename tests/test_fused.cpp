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
      Tensor gx = tg::autograd::grad({(out * v).sum()}, {x}, {}, -1, true)[0];
      std::vector<Tensor> second = tg::autograd::grad({(gx * u).sum()}, {v}, {}, -1, false, true);
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
