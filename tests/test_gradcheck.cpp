// gradcheck and gradgradcheck: they pass on correct ops and fail, with a useful message, on
// wrong first or second derivatives.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include <tapegrad.hpp>

using tg::Tensor;
using In = std::vector<Tensor>;

namespace {

Tensor t64(const std::vector<double>& v, const tg::Shape& s) { return tg::tensor(v, s, tg::kFloat64); }

// x * x with a VJP of g * factor * x (factor 2 is right).
Tensor square_with_vjp_factor(const Tensor& x, double factor) {
  return tg::autograd::custom(
      "square", {x}, [](const In& in) { return in[0] * in[0]; },
      [factor](const In& in, const Tensor&, const Tensor& g) { return In{g * in[0] * factor}; });
}

struct Mismatch {
  bool found = false;
  double analytic = 0, numeric = 0;
};

// The two values of a gradcheck failure message ("... analytic A vs numeric N ...").
Mismatch parse(const std::string& msg) {
  Mismatch r;
  const size_t a = msg.find("analytic "), v = msg.find(" vs numeric ");
  if (a == std::string::npos || v == std::string::npos || v < a) return r;
  try {
    r.analytic = std::stod(msg.substr(a + 9));
    r.numeric = std::stod(msg.substr(v + 12));
    r.found = true;
  } catch (const std::exception&) {
  }
  return r;
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST_SUITE("gradcheck") {

// ---------------------------------------------------------------------------------------------
// gradcheck passes on correct ops
// ---------------------------------------------------------------------------------------------

TEST_CASE("gradcheck passes on correct elementwise, reduction and matmul ops") {
  tg::manual_seed(1);
  Tensor a = tg::randn({3, 4}, tg::kFloat64);
  Tensor b = tg::randn({4, 2}, tg::kFloat64);
  Tensor pos = tg::rand({3, 4}, tg::kFloat64) + 0.5;
  struct Case {
    const char* name;
    tg::GradcheckFn fn;
    In inputs;
  };
  std::vector<Case> cases{
      {"tanh", [](const In& in) { return tg::tanh(in[0]); }, {a}},
      {"sigmoid*exp", [](const In& in) { return tg::sigmoid(in[0]) * tg::exp(in[0]); }, {a}},
      {"log/sqrt", [](const In& in) { return tg::log(in[0]) / tg::sqrt(in[0]); }, {pos}},
      {"matmul", [](const In& in) { return tg::matmul(in[0], in[1]); }, {a, b}},
      {"broadcast", [](const In& in) { return in[0] * in[1] + in[1]; }, {a, tg::randn({4}, tg::kFloat64)}},
      {"sum dims", [](const In& in) { return tg::sum(in[0] * in[0], {1}); }, {a}},
      {"mean", [](const In& in) { return tg::mean(tg::pow(in[0], 3.0)); }, {a}},
      {"permute+reshape", [](const In& in) { return in[0].t().reshape({2, 6}) * 2.0; }, {a}},
      {"div", [](const In& in) { return in[0] / in[1]; }, {a, pos}},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    tg::GradcheckResult r = tg::gradcheck(c.fn, c.inputs);
    INFO(r.message);
    CHECK(r.ok);
    CHECK(bool(r));
    CHECK(r.message.empty());
  }
}

TEST_CASE("gradcheck promotes float32 inputs to float64 and leaves the caller's tensors alone") {
  tg::manual_seed(2);
  Tensor x = tg::randn({2, 3});  // float32
  Tensor w = tg::randn({3}, tg::TensorOptions(tg::kFloat64).requires_grad(true));
  const std::vector<double> x_before = x.to_vector<double>(), w_before = w.to_vector<double>();
  std::vector<tg::Dtype> seen;
  tg::GradcheckResult r = tg::gradcheck(
      [&](const In& in) {
        seen.push_back(in[0].dtype());
        seen.push_back(in[1].dtype());
        return tg::tanh(in[0] * in[1]);
      },
      {x, w});
  INFO(r.message);
  CHECK(r.ok);
  REQUIRE_FALSE(seen.empty());
  for (tg::Dtype d : seen) CHECK(d == tg::kFloat64);
  // float32 with eps 1e-6 could never pass these tolerances: the check really ran in float64.
  CHECK(x.dtype() == tg::kFloat32);
  CHECK(x.to_vector<double>() == x_before);
  CHECK(w.to_vector<double>() == w_before);
  CHECK_FALSE(x.grad().defined());
  CHECK_FALSE(w.grad().defined());
}

TEST_CASE("gradcheck passes int64 inputs through as constants") {
  Tensor x = t64({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor idx = tg::tensor({2, 0, 1, 1}, {2, 2}, tg::kInt64);
  std::vector<tg::Dtype> seen;
  tg::GradcheckResult r = tg::gradcheck(
      [&](const In& in) {
        seen.push_back(in[1].dtype());
        return tg::gather(in[0], 1, in[1]) * 3.0;
      },
      {x, idx});
  INFO(r.message);
  CHECK(r.ok);
  for (tg::Dtype d : seen) CHECK(d == tg::kInt64);
}

TEST_CASE("gradcheck: a function of no floating input, or with a bad output, fails with a message") {
  tg::GradcheckResult none = tg::gradcheck([](const In& in) { return in[0]; }, {tg::arange(0, 3)});
  CHECK_FALSE(none.ok);
  CHECK_FALSE(none.message.empty());
  tg::GradcheckResult undefined = tg::gradcheck([](const In&) { return Tensor(); }, {t64({1}, {1})});
  CHECK_FALSE(undefined.ok);
  CHECK(contains(undefined.message, "undefined"));
  tg::GradcheckResult f32 = tg::gradcheck([](const In& in) { return in[0].to(tg::kFloat32); }, {t64({1}, {1})});
  CHECK_FALSE(f32.ok);
  CHECK(contains(f32.message, "float32"));
}

TEST_CASE("gradcheck: an output that does not depend on the input has a zero Jacobian") {
  tg::GradcheckResult r = tg::gradcheck([](const In&) { return t64({1, 2}, {2}); }, {t64({1, 2}, {2})});
  INFO(r.message);
  CHECK(r.ok);
  // ...and the numeric side notices when it does depend, through a detach.
  tg::GradcheckResult d = tg::gradcheck([](const In& in) { return in[0].detach() * in[0]; }, {t64({1, 2}, {2})});
  CHECK_FALSE(d.ok);
}

// ---------------------------------------------------------------------------------------------
// gradcheck catches wrong VJPs
// ---------------------------------------------------------------------------------------------

TEST_CASE("gradcheck: a wrong VJP fails naming the input, the element and both values") {
  Tensor w = t64({0.5, -1.5, 2}, {3});
  Tensor x = t64({1, 2, 3}, {3});
  CHECK(tg::gradcheck([](const In& in) { return square_with_vjp_factor(in[1], 2.0) * in[0]; }, {w, x}).ok);

  tg::GradcheckResult r =
      tg::gradcheck([](const In& in) { return square_with_vjp_factor(in[1], 3.0) * in[0]; }, {w, x});
  CHECK_FALSE(r.ok);
  CHECK_FALSE(bool(r));
  INFO(r.message);
  CHECK(contains(r.message, "input 1"));
  CHECK(contains(r.message, "[3]"));
  CHECK(contains(r.message, "element 0"));
  Mismatch m = parse(r.message);
  REQUIRE(m.found);
  // d/dx0 of w0 * x0^2 = 2 w0 x0 = 1; the VJP says 3 w0 x0 = 1.5.
  CHECK(m.analytic == doctest::Approx(1.5).epsilon(1e-9));
  CHECK(m.numeric == doctest::Approx(1.0).epsilon(1e-6));
}

TEST_CASE("gradcheck names the element where the Jacobian first differs") {
  // The VJP is right except at element 2.
  Tensor x = t64({1, 2, 3, 4}, {4});
  auto fn = [](const In& in) {
    return tg::autograd::custom(
        "almost_square", {in[0]}, [](const In& v) { return v[0] * v[0]; },
        [](const In& v, const Tensor&, const Tensor& g) {
          return In{g * v[0] * t64({2, 2, 2.5, 2}, {4})};
        });
  };
  tg::GradcheckResult r = tg::gradcheck(fn, {x});
  CHECK_FALSE(r.ok);
  INFO(r.message);
  CHECK(contains(r.message, "input 0"));
  CHECK(contains(r.message, "element 2"));
  Mismatch m = parse(r.message);
  REQUIRE(m.found);
  CHECK(m.analytic == doctest::Approx(7.5).epsilon(1e-9));
  CHECK(m.numeric == doctest::Approx(6.0).epsilon(1e-6));
}

TEST_CASE("gradcheck: a VJP returning zeros (analytic 0, numeric non-zero) fails") {
  Tensor x = t64({0.3, -0.8}, {2});
  auto fn = [](const In& in) {
    return tg::autograd::custom(
        "flat_exp", {in[0]}, [](const In& v) { return tg::exp(v[0]); },
        [](const In& v, const Tensor&, const Tensor&) { return In{tg::zeros_like(v[0])}; });
  };
  tg::GradcheckResult r = tg::gradcheck(fn, {x});
  CHECK_FALSE(r.ok);
  INFO(r.message);
  Mismatch m = parse(r.message);
  REQUIRE(m.found);
  CHECK(m.analytic == 0.0);
  CHECK(m.numeric == doctest::Approx(std::exp(0.3)).epsilon(1e-6));
  // An undefined gradient (treated as zero) fails the same way.
  auto undefined_grad = [](const In& in) {
    return tg::autograd::custom(
        "no_grad_exp", {in[0]}, [](const In& v) { return tg::exp(v[0]); },
        [](const In&, const Tensor&, const Tensor&) { return In{Tensor()}; });
  };
  CHECK_FALSE(tg::gradcheck(undefined_grad, {x}).ok);
}

TEST_CASE("gradcheck: tolerances decide") {
  // A VJP 25% too large on small values (analytic 0.025 / 0.05 vs numeric 0.02 / 0.04): fails
  // with the defaults, passes once atol or rtol allows the difference.
  Tensor x = t64({0.01, 0.02}, {2});
  auto fn = [](const In& in) { return square_with_vjp_factor(in[0], 2.5); };
  CHECK_FALSE(tg::gradcheck(fn, {x}).ok);
  CHECK(tg::gradcheck(fn, {x}, tg::GradcheckOptions().atol(0.02)).ok);
  CHECK(tg::gradcheck(fn, {x}, tg::GradcheckOptions().atol(0).rtol(0.3)).ok);
  CHECK_FALSE(tg::gradcheck(fn, {x}, tg::GradcheckOptions().atol(0).rtol(0.2)).ok);
}

TEST_CASE("gradcheck: a large output is checked along random output directions") {
  tg::manual_seed(3);
  Tensor x = tg::randn({40}, tg::kFloat64);  // 40 outputs > 16: random output directions
  CHECK(tg::gradcheck([](const In& in) { return tg::tanh(in[0]) * 2.0; }, {x}).ok);
  tg::GradcheckResult r = tg::gradcheck([](const In& in) { return square_with_vjp_factor(in[0], 2.2); }, {x});
  CHECK_FALSE(r.ok);
  INFO(r.message);
  CHECK(contains(r.message, "random output direction"));
  CHECK(contains(r.message, "element"));
}

TEST_CASE("gradcheck: inputs above max_elements use random projections and still catch a wrong VJP") {
  tg::manual_seed(4);
  SUBCASE("max_elements lowered") {
    Tensor x = tg::randn({5, 10}, tg::kFloat64);
    tg::GradcheckOptions o = tg::GradcheckOptions().max_elements(8);
    int calls = 0;
    auto good = [&](const In& in) {
      ++calls;
      return (tg::sigmoid(in[0]) * in[0]).sum({1});
    };
    CHECK(tg::gradcheck(good, {x}, o).ok);
    // Projections: 2 evaluations per direction (+1 for the analytic pass), not 2 per element.
    CHECK(calls <= 1 + 2 * o.projections());
    calls = 0;
    CHECK(tg::gradcheck(good, {x}).ok);
    CHECK(calls == 1 + 2 * 50);

    tg::GradcheckResult r = tg::gradcheck([](const In& in) { return square_with_vjp_factor(in[0], 2.1).sum({1}); },
                                          {x}, o);
    CHECK_FALSE(r.ok);
    INFO(r.message);
    CHECK(contains(r.message, "input 0"));
    CHECK(contains(r.message, "random direction"));
    Mismatch m = parse(r.message);
    REQUIRE(m.found);
    CHECK(m.analytic == doctest::Approx(m.numeric * 1.05).epsilon(1e-4));
  }
  SUBCASE("the default threshold (4096)") {
    Tensor x = tg::randn({4100}, tg::kFloat64);
    CHECK(tg::gradcheck([](const In& in) { return (tg::tanh(in[0]) * in[0]).sum(); }, {x}).ok);
    tg::GradcheckResult r = tg::gradcheck([](const In& in) { return square_with_vjp_factor(in[0], 0.0).sum(); }, {x});
    CHECK_FALSE(r.ok);
    INFO(r.message);
    CHECK(contains(r.message, "random direction"));
  }
}

// ---------------------------------------------------------------------------------------------
// gradgradcheck
// ---------------------------------------------------------------------------------------------

TEST_CASE("gradgradcheck passes on tanh, sigmoid, matmul, exp and div") {
  tg::manual_seed(5);
  Tensor a = tg::randn({2, 3}, tg::kFloat64);
  Tensor b = tg::randn({3, 2}, tg::kFloat64);
  Tensor pos = tg::rand({2, 3}, tg::kFloat64) + 0.5;
  struct Case {
    const char* name;
    tg::GradcheckFn fn;
    In inputs;
  };
  std::vector<Case> cases{
      {"tanh", [](const In& in) { return tg::tanh(in[0]); }, {a}},
      {"sigmoid", [](const In& in) { return tg::sigmoid(in[0]); }, {a}},
      {"matmul", [](const In& in) { return tg::matmul(in[0], in[1]); }, {a, b}},
      {"exp", [](const In& in) { return tg::exp(in[0]); }, {a}},
      {"div", [](const In& in) { return in[0] / in[1]; }, {a, pos}},
      {"tanh(matmul) * x", [](const In& in) { return (tg::tanh(tg::matmul(in[0], in[1])) * 1.5).sum(); }, {a, b}},
      {"custom square, differentiable VJP", [](const In& in) { return square_with_vjp_factor(in[0], 2.0); }, {a}},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    tg::GradcheckResult r = tg::gradgradcheck(c.fn, c.inputs);
    INFO(r.message);
    CHECK(r.ok);
  }
}

TEST_CASE("gradgradcheck fails when the VJP is right but not differentiable") {
  Tensor x = t64({0.5, -1, 2}, {3});
  // First derivatives are right: gradcheck passes.
  auto detached_vjp = [](const In& in) {
    return tg::autograd::custom(
        "square_detached_vjp", {in[0]}, [](const In& v) { return v[0] * v[0]; },
        [](const In& v, const Tensor&, const Tensor& g) { return In{g * (v[0] * 2.0).detach()}; });
  };
  tg::GradcheckResult first = tg::gradcheck(detached_vjp, {x});
  INFO(first.message);
  CHECK(first.ok);
  // Second derivatives are not: d/dx (g * 2x) = 2g, the detached VJP says 0.
  tg::GradcheckResult second = tg::gradgradcheck(detached_vjp, {x});
  CHECK_FALSE(second.ok);
  INFO(second.message);
  CHECK(contains(second.message, "gradgradcheck"));
  CHECK(contains(second.message, "input 0"));
  Mismatch m = parse(second.message);
  REQUIRE(m.found);
  CHECK(m.analytic == 0.0);
  CHECK(m.numeric != doctest::Approx(0.0));
}

TEST_CASE("gradgradcheck catches a wrong second derivative of a custom op") {
  // cube with VJP g * 3 x^2 written as g * 3 * x * x.detach(): first derivative right, second
  // derivative 3 x g instead of 6 x g.
  Tensor x = t64({0.7, -1.2}, {2});
  auto half_detached = [](const In& in) {
    return tg::autograd::custom(
        "cube", {in[0]}, [](const In& v) { return v[0] * v[0] * v[0]; },
        [](const In& v, const Tensor&, const Tensor& g) { return In{g * 3.0 * v[0] * v[0].detach()}; });
  };
  CHECK(tg::gradcheck(half_detached, {x}).ok);
  tg::GradcheckResult r = tg::gradgradcheck(half_detached, {x});
  CHECK_FALSE(r.ok);
  INFO(r.message);
  Mismatch m = parse(r.message);
  REQUIRE(m.found);
  CHECK(m.numeric == doctest::Approx(2 * m.analytic).epsilon(1e-4));
}

}  // TEST_SUITE
