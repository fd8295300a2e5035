// The PyTorch-style surface of the ops beyond their golden values: the spellings agree
// (function, method, operator), dtypes follow PyTorch's rules, sort/topk indices, the step
// functions' zero gradient, and the vectorised / threaded paths on inputs larger than a golden row.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <tuple>
#include <vector>

#include <tapegrad.hpp>

using tg::Tensor;

namespace {
std::vector<double> values(const Tensor& t) { return t.to_vector<double>(); }
}  // namespace

TEST_CASE("ops api: comparisons with a scalar agree as function, method and operator, either side") {
  Tensor x = tg::tensor({-1.0, 0.0, 0.5, 2.0}, {4});
  CHECK(values(x < 0.5) == std::vector<double>{1, 1, 0, 0});
  CHECK(values(tg::lt(x, 0.5)) == values(x < 0.5));
  CHECK(values(x.lt(0.5)) == values(x < 0.5));
  CHECK(values(0.5 > x) == values(x < 0.5));
  CHECK(values(x <= 0.5) == std::vector<double>{1, 1, 1, 0});
  CHECK(values(0.5 >= x) == values(x <= 0.5));
  CHECK(values(x >= 0.5) == std::vector<double>{0, 0, 1, 1});
  CHECK(values(x > 0.5) == std::vector<double>{0, 0, 0, 1});
  CHECK(values(x == 0.0) == std::vector<double>{0, 1, 0, 0});
  CHECK(values(0.0 == x) == values(x == 0.0));
  CHECK(values(x != 0.0) == std::vector<double>{1, 0, 1, 1});
  CHECK(values(x.ge(tg::zeros({}))) == std::vector<double>{0, 1, 1, 1});
  CHECK((x < 0.5).dtype() == tg::kFloat32);
  CHECK(!(x.requires_grad_() < 0.5).requires_grad());
  // int64 against a fractional scalar compares in float32 (as PyTorch promotes), exactly otherwise.
  Tensor i = tg::tensor({1, 2, 3}, {3}, tg::kInt64);
  CHECK(values(i < 1.5) == std::vector<double>{1, 0, 0});
  CHECK((i < 1.5).dtype() == tg::kFloat32);
  CHECK((i == 2).dtype() == tg::kInt64);
  CHECK(values(i == 2) == std::vector<double>{0, 1, 0});
}

TEST_CASE("ops api: where with scalars takes the tensor's dtype; two scalars give float32") {
  Tensor c = tg::tensor({1, 0, 1}, {3}, tg::kInt64);
  Tensor x = tg::tensor({1.0, 2.0, 3.0}, {3}, tg::kFloat64);
  Tensor a = tg::where(c, x, 0.0), b = tg::where(c, -1.0, x), s = tg::where(c, 1.0, 0.0);
  CHECK(a.dtype() == tg::kFloat64);
  CHECK(values(a) == std::vector<double>{1, 0, 3});
  CHECK(values(b) == std::vector<double>{-1, 2, -1});
  CHECK(s.dtype() == tg::kFloat32);
  CHECK(values(s) == std::vector<double>{1, 0, 1});
  Tensor i = tg::tensor({5, 6, 7}, {3}, tg::kInt64);
  CHECK(tg::where(c, i, 0.0).dtype() == tg::kInt64);
  CHECK(tg::where(c, i, 0.5).dtype() == tg::kFloat32);
  CHECK(values(tg::where(c, i, 0.5)) == std::vector<double>{5, 0.5, 7});
}

TEST_CASE("ops api: the _like factories keep shape and dtype unless the options set a dtype") {
  Tensor x = tg::randn({2, 3}, tg::kFloat64);
  CHECK(tg::zeros_like(x).dtype() == tg::kFloat64);
  CHECK(tg::zeros_like(x, tg::kFloat32).dtype() == tg::kFloat32);
  CHECK(tg::ones_like(x, tg::TensorOptions().dtype(tg::kInt64)).dtype() == tg::kInt64);
  Tensor f = tg::full_like(x, 0.25, tg::TensorOptions().requires_grad(true));
  CHECK(f.dtype() == tg::kFloat64);  // requires_grad alone does not reset the dtype
  CHECK(f.requires_grad());
  CHECK(f.shape() == tg::Shape{2, 3});
  CHECK(values(f) == std::vector<double>(6, 0.25));
  CHECK(tg::empty_like(x).shape() == x.shape());
  Tensor r = tg::rand_like(x), n = tg::randn_like(x, tg::kFloat32);
  CHECK(r.dtype() == tg::kFloat64);
  CHECK(n.dtype() == tg::kFloat32);
  CHECK(n.shape() == x.shape());
  for (double v : values(r)) CHECK((v >= 0.0 && v < 1.0));
  CHECK_THROWS_AS((void)tg::randn_like(tg::zeros({2}, tg::kInt64)), tg::Error);
  CHECK_THROWS_AS((void)tg::zeros_like(Tensor()), tg::Error);
}

TEST_CASE("ops api: sort and topk return values and int64 indices; stable ties; NaN the largest") {
  Tensor x = tg::tensor({3.0, 1.0, 2.0, 1.0, std::nan(""), 0.0}, {6});
  auto [v, i] = tg::sort(x);
  CHECK(i.dtype() == tg::kInt64);
  CHECK(i.to_vector<int64_t>() == std::vector<int64_t>{5, 1, 3, 2, 0, 4});  // ties 1 then 3
  auto vv = values(v);
  CHECK(std::isnan(vv.back()));
  auto [vd, id] = x.sort(0, /*descending=*/true);
  CHECK(id.to_vector<int64_t>() == std::vector<int64_t>{4, 0, 2, 1, 3, 5});  // NaN first, ties in order
  CHECK(tg::argsort(x).to_vector<int64_t>() == i.to_vector<int64_t>());
  CHECK(x.argsort(0, true).to_vector<int64_t>() == id.to_vector<int64_t>());
  auto [tv, ti] = tg::topk(x, 2, 0, /*largest=*/false, /*sorted=*/false);
  CHECK(ti.to_vector<int64_t>() == std::vector<int64_t>{5, 1});
  CHECK(values(tv) == std::vector<double>{0.0, 1.0});
  auto [ev, ei] = tg::topk(tg::randn({3, 4}), 0, 1);
  CHECK(ev.shape() == tg::Shape{3, 0});
  CHECK(ei.shape() == tg::Shape{3, 0});
  Tensor s = tg::scalar_tensor(2.0);  // 0-d, as torch.sort(tensor(2.))
  auto [sv, si] = tg::sort(s);
  CHECK(sv.item<double>() == 2.0);
  CHECK(si.dim() == 0);
  auto [ki, kj] = tg::tensor({4, 9, 1}, {3}, tg::kInt64).topk(1);
  CHECK(ki.dtype() == tg::kInt64);
  CHECK(ki.item<int64_t>() == 9);
  CHECK(kj.item<int64_t>() == 1);
}

TEST_CASE("ops api: sort and topk agree with std::sort on rows large enough to be threaded") {
  tg::manual_seed(3);
  Tensor x = tg::randn({64, 700});
  auto [v, i] = tg::sort(x.transpose(0, 1), 0, true);  // along a strided dim
  auto [tv, ti] = tg::topk(x, 5, 1);
  auto xs = values(x), vs = values(v), tvs = values(tv);
  auto is = i.to_vector<int64_t>(), tis = ti.to_vector<int64_t>();
  bool ok = true;
  for (int64_t r = 0; r < 64; ++r) {
    std::vector<double> row(xs.begin() + r * 700, xs.begin() + (r + 1) * 700);
    std::vector<double> want = row;
    std::sort(want.begin(), want.end(), std::greater<double>());
    for (int64_t k = 0; k < 700; ++k) {
      ok = ok && vs[size_t(k * 64 + r)] == want[size_t(k)];
      ok = ok && row[size_t(is[size_t(k * 64 + r)])] == want[size_t(k)];
    }
    for (int64_t k = 0; k < 5; ++k) {
      ok = ok && tvs[size_t(r * 5 + k)] == want[size_t(k)];
      ok = ok && row[size_t(tis[size_t(r * 5 + k)])] == want[size_t(k)];
    }
  }
  CHECK(ok);
}

TEST_CASE("ops api: sort's gradient goes back to where each value came from") {
  Tensor x = tg::tensor({3.0, 1.0, 2.0}, {3}).requires_grad_();
  auto [v, i] = tg::sort(x);
  (v * tg::tensor({1.0, 10.0, 100.0}, {3})).sum().backward();
  CHECK(values(x.grad()) == std::vector<double>{100, 1, 10});
}

TEST_CASE("ops api: cumsum keeps int64 exact and matches a running sum on a threaded size") {
  Tensor i = tg::tensor({1, 2, 3, 4}, {2, 2}, tg::kInt64);
  CHECK(tg::cumsum(i, 0).dtype() == tg::kInt64);
  CHECK(tg::cumsum(i, 0).to_vector<int64_t>() == std::vector<int64_t>{1, 2, 4, 6});
  Tensor halves = tg::full({2}, double(int64_t(1) << 59), tg::kInt64);
  halves.data_ptr<int64_t>()[1] += 1;  // 2^59 + 1: exact in int64, not in a double accumulator
  CHECK(tg::cumsum(halves, 0).to_vector<int64_t>()[1] == (int64_t(1) << 60) + 1);
  tg::manual_seed(4);
  Tensor x = tg::randn({300, 200}, tg::kFloat64);
  auto c = values(tg::cumsum(x, 0)), xs = values(x);
  double worst = 0;
  for (int64_t j = 0; j < 200; ++j) {
    double acc = 0;
    for (int64_t r = 0; r < 300; ++r) {
      acc += xs[size_t(r * 200 + j)];
      worst = std::max(worst, std::abs(acc - c[size_t(r * 200 + j)]));
    }
  }
  CHECK(worst < 1e-12);
}

TEST_CASE("ops api: floor, ceil, round, sign: int64 passes through exactly, and the gradient is 0") {
  const int64_t big = (int64_t(1) << 60) + 1;  // not representable in double
  Tensor i = tg::tensor({0, -3, 5}, {3}, tg::kInt64);
  Tensor b = tg::full({1}, 0, tg::kInt64);
  b.data_ptr<int64_t>()[0] = big;
  CHECK(tg::floor(b).to_vector<int64_t>()[0] == big);
  CHECK(tg::round(b).to_vector<int64_t>()[0] == big);
  CHECK(tg::ceil(i).to_vector<int64_t>() == std::vector<int64_t>{0, -3, 5});
  CHECK(tg::sign(i).to_vector<int64_t>() == std::vector<int64_t>{0, -1, 1});
  CHECK(tg::sign(i).dtype() == tg::kInt64);
  Tensor x = tg::tensor({-1.5, -0.5, 0.5, 2.5, std::nan("")}, {5});
  CHECK(values(x.round()).size() == 5);
  auto r = values(x.round());
  CHECK(r[0] == -2.0);
  CHECK(r[1] == 0.0);
  CHECK(r[2] == 0.0);
  CHECK(r[3] == 2.0);
  CHECK(values(tg::sign(x))[4] == 0.0);  // sign(NaN) = 0, as PyTorch
  for (auto f : {&tg::floor, &tg::ceil, &tg::round, &tg::sign}) {
    Tensor y = tg::tensor({0.3, 1.7}, {2}).requires_grad_();
    Tensor out = f(y * 2.0);
    CHECK(out.requires_grad());
    out.sum().backward();
    REQUIRE(y.grad().defined());
    CHECK(values(y.grad()) == std::vector<double>{0, 0});
  }
}

TEST_CASE("ops api: the xsimd kernels of sin cos log1p expm1 match std:: past the vector width") {
  tg::manual_seed(5);
  Tensor x64 = tg::randn({1003}, tg::kFloat64) * 3.0;  // 1003: full vectors and a scalar tail
  Tensor x32 = x64.to(tg::kFloat32);
  auto xs = values(x64);
  auto check = [&](Tensor (*f)(const Tensor&), double (*ref)(double), bool positive) {
    Tensor a = positive ? tg::abs(x64) : x64, b = positive ? tg::abs(x32) : x32;
    auto y64 = values(f(a)), y32 = values(f(b));
    double worst64 = 0, worst32 = 0;
    auto v32 = values(b);
    for (size_t k = 0; k < xs.size(); ++k) {
      const double v = positive ? std::abs(xs[k]) : xs[k], want = ref(v), want32 = ref(v32[k]);
      worst64 = std::max(worst64, std::abs(y64[k] - want) / (1e-15 + 1e-14 * std::abs(want)));
      worst32 = std::max(worst32, std::abs(y32[k] - want32) / (2e-7 + 1e-6 * std::abs(want32)));
    }
    CHECK(worst64 <= 1.0);
    CHECK(worst32 <= 1.0);
  };
  check(&tg::sin, [](double v) { return std::sin(v); }, false);
  check(&tg::cos, [](double v) { return std::cos(v); }, false);
  check(&tg::log1p, [](double v) { return std::log1p(v); }, true);
  check(&tg::expm1, [](double v) { return std::expm1(v); }, false);
}

TEST_CASE("ops api: logsumexp and softplus stay finite where the naive formulas overflow") {
  const double inf = std::numeric_limits<double>::infinity();
  CHECK(tg::logsumexp(tg::full({3}, -inf), {0}).item<double>() == -inf);
  CHECK(tg::logsumexp(tg::tensor({inf, 1.0}, {2}), {0}).item<double>() == inf);
  Tensor x = tg::tensor({1000.0, 1000.0}, {2}).requires_grad_();
  Tensor l = tg::logsumexp(x, {0});
  CHECK(l.item<double>() == doctest::Approx(1000.0 + std::log(2.0)));
  l.backward();
  CHECK(values(x.grad()) == std::vector<double>{0.5, 0.5});
  namespace F = tg::nn::functional;
  // exp(1000) overflows even in float64: the unused branch must not turn the gradient into NaN.
  Tensor z = tg::tensor({-200.0, 0.0, 100.0, 1000.0}, {4}, tg::kFloat64).requires_grad_();
  Tensor s = F::softplus(z);
  auto sv = values(s);
  CHECK(std::abs(sv[0] / std::exp(-200.0) - 1.0) < 1e-12);  // log1p keeps a tiny value
  CHECK(sv[1] == doctest::Approx(std::log(2.0)));
  CHECK(sv[2] == 100.0);
  s.sum().backward();
  auto g = values(z.grad());
  CHECK(g[1] == doctest::Approx(0.5));  // sigmoid(0): no kink at 0 in the composite
  CHECK(g[2] == 1.0);
  CHECK(g[3] == 1.0);
  for (double v : g) CHECK(std::isfinite(v));
}

TEST_CASE("ops api: methods mirror the free functions") {
  tg::manual_seed(6);
  Tensor x = tg::rand({3, 4}, tg::kFloat64) + 0.5, y = tg::randn({3, 4}, tg::kFloat64);
  CHECK(values(x.sin()) == values(tg::sin(x)));
  CHECK(values(x.square()) == values(x * x));
  CHECK(values(x.rsqrt()) == values(1.0 / tg::sqrt(x)));
  CHECK(values(x.log1p()) == values(tg::log1p(x)));
  CHECK(values(x.atan2(y)) == values(tg::atan2(x, y)));
  CHECK(values(x.cumsum(1)) == values(tg::cumsum(x, 1)));
  CHECK(values(x.logsumexp({1})) == values(tg::logsumexp(x, {1})));
  CHECK(values(x.neg()) == values(-x));
  CHECK(values(x.erf()) == values(tg::erf(x)));
  CHECK(x.argmin(1).to_vector<int64_t>() == tg::argmin(x, 1).to_vector<int64_t>());
  CHECK(values(x.var({1})) == values(tg::var(x, {1})));
  CHECK(values(x.std({0}, false, true)) == values(tg::std(x, {0}, false, true)));
  CHECK(values(x.maximum(y)) == values(tg::maximum(x, y)));
  CHECK(values(x.minimum(y)) == values(tg::minimum(x, y)));
  Tensor idx = tg::tensor({2, 0}, {2}, tg::kInt64);
  CHECK(values(x.index_select(1, idx)) == values(tg::index_select(x, 1, idx)));
  CHECK(values(x.gather(1, idx.reshape({1, 2}))) == values(tg::gather(x, 1, idx.reshape({1, 2}))));
  CHECK(x.split(2, 1).size() == 2);
  CHECK(x.chunk(3, 0).size() == 3);
}

TEST_CASE("elementwise: broadcasting ops on empty tensors give empty results") {
  // An empty broadcast output used to divide by its zero row length (UBSan: division by zero).
  tg::Tensor a = tg::zeros({0, 4}), b = tg::ones({1, 4});
  CHECK((a + b).shape() == tg::Shape{0, 4});
  CHECK(tg::gt(a, b).shape() == tg::Shape{0, 4});
  CHECK(tg::clamp(tg::zeros({3, 0}), 0.0, 1.0).shape() == tg::Shape{3, 0});
}
