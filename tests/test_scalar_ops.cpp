// Number operands (x * 2.5, x + 1, 3 - x, ...): mul_scalar / add_scalar keep the tensor's dtype
// and round the number to it, exactly as the scalar tensor they replace did; int64 with a
// fractional number promotes to float32; first and second derivatives.
#include <doctest/doctest.h>

#include <vector>

#include <tapegrad.hpp>

using tg::Tensor;

namespace {
bool same(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() && a.to_vector<double>() == b.to_vector<double>();
}
}  // namespace

TEST_CASE("scalar ops: the same values as with a scalar tensor, in each dtype") {
  tg::manual_seed(5);
  for (tg::Dtype d : {tg::kFloat32, tg::kFloat64}) {
    CAPTURE(tg::dtype_name(d));
    const Tensor x = tg::randn({3, 4}, tg::TensorOptions().dtype(d));
    for (double c : {1.0001, -0.3, 0.0, -0.0, 1e-30, 7.0}) {
      CAPTURE(c);
      const Tensor k = tg::scalar_tensor(c, d);
      CHECK(same(x * c, x * k));
      CHECK(same(c * x, k * x));
      CHECK(same(x + c, x + k));
      CHECK(same(c + x, k + x));
      CHECK(same(x - c, x - k));
      CHECK(same(c - x, k - x));
      CHECK((x * c).dtype() == d);
    }
  }
  const Tensor i = tg::arange(0, 5);
  CHECK((i * 2.0).dtype() == tg::kInt64);
  CHECK((i + 3.0).to_vector<int64_t>() == std::vector<int64_t>{3, 4, 5, 6, 7});
  CHECK((i * 2.5).dtype() == tg::kFloat32);
  CHECK((i - 0.5).to_vector<float>() == std::vector<float>{-0.5f, 0.5f, 1.5f, 2.5f, 3.5f});
  CHECK_THROWS_WITH_AS(Tensor() * 2.0, doctest::Contains("mul"), tg::Error);
}

TEST_CASE("scalar ops: gradients and second derivatives") {
  Tensor x = tg::randn({5}, tg::TensorOptions().dtype(tg::kFloat64)).requires_grad_(true);
  auto f = [](const std::vector<Tensor>& in) { return ((in[0] * 1.5 + 0.25) * in[0] - 2.0 + 3.0 * in[0]).sum(); };
  tg::GradcheckResult r1 = tg::gradcheck(f, {x});
  CHECK_MESSAGE(r1.ok, r1.message);
  tg::GradcheckResult r2 = tg::gradgradcheck(f, {x});
  CHECK_MESSAGE(r2.ok, r2.message);
  Tensor y = (x * 2.0 + 1.0).sum();
  y.backward();
  for (double g : x.grad().to_vector<double>()) CHECK(g == 2.0);
}
