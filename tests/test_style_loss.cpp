// The style-transfer losses of examples/style_loss.hpp: the Gram matrix against its definition,
// and gradcheck / gradgradcheck of the style, content and total-variation losses in float64.
#include <doctest/doctest.h>

#include <vector>

#include <tapegrad.hpp>

#include "../examples/style_loss.hpp"

using tg::Tensor;

TEST_CASE("style transfer: the Gram matrix is F F^T / (C H W)") {
  tg::manual_seed(2);
  const Tensor f = tg::randn({2, 3, 4, 5}, tg::TensorOptions().dtype(tg::kFloat64));
  const std::vector<double> g = style::gram(f).to_vector<double>(), v = f.to_vector<double>();
  REQUIRE(g.size() == 2u * 3u * 3u);
  for (int n = 0; n < 2; ++n)
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 3; ++j) {
        double s = 0;
        for (int p = 0; p < 20; ++p) s += v[size_t((n * 3 + i) * 20 + p)] * v[size_t((n * 3 + j) * 20 + p)];
        CHECK(g[size_t((n * 3 + i) * 3 + j)] == doctest::Approx(s / 60.0).epsilon(1e-12));
      }
}

TEST_CASE("style transfer: gradcheck of the losses in float64") {
  tg::manual_seed(3);
  const auto f64 = tg::TensorOptions().dtype(tg::kFloat64);
  Tensor x = tg::randn({1, 3, 5, 6}, f64).requires_grad_(true);
  const Tensor w = tg::randn({4, 3, 3, 3}, f64), target = tg::randn({1, 4, 3, 4}, f64);
  const Tensor target_gram = style::gram(tg::randn({1, 4, 3, 4}, f64));
  // Features of a random convolution with a ReLU, as the example's network.
  auto fn = [&](const std::vector<Tensor>& in) {
    Tensor feat = tg::relu(tg::nn::functional::conv2d(in[0], w));
    return style::style_loss({feat}, {target_gram}) + style::content_loss(feat, target) +
           style::total_variation(in[0]);
  };
  tg::GradcheckResult r1 = tg::gradcheck(fn, {x});
  CHECK_MESSAGE(r1.ok, r1.message);
  tg::GradcheckResult r2 = tg::gradgradcheck(fn, {x});
  CHECK_MESSAGE(r2.ok, r2.message);
}
