// Trains a two-layer network on generated data (a noisy 2-D spiral, 3 classes) with plain SGD,
// written directly on the autograd API, and prints the loss falling. This is the main job until
// the Fashion-MNIST trainer lands.
#include <tapegrad.hpp>

#include <cmath>
#include <cstdio>
#include <vector>

int main() {
  using tg::Tensor;
  tg::manual_seed(0);
  const int64_t per_class = 200, classes = 3, n = per_class * classes, hidden = 64;

  // The spiral data set of CS231n: each class is an arm of a spiral with angular noise.
  std::vector<double> xs, ys;
  Tensor noise = tg::randn({n}, tg::kFloat64);
  auto nz = noise.to_vector<double>();
  for (int64_t c = 0; c < classes; ++c)
    for (int64_t i = 0; i < per_class; ++i) {
      double r = double(i) / double(per_class);
      double t = double(c) * 4.0 + 4.0 * r + 0.2 * nz[size_t(c * per_class + i)];
      xs.push_back(r * std::sin(t));
      xs.push_back(r * std::cos(t));
      for (int64_t k = 0; k < classes; ++k) ys.push_back(k == c ? 1.0 : 0.0);
    }
  Tensor x = tg::tensor(xs, {n, 2});
  Tensor y = tg::tensor(ys, {n, classes});

  Tensor w1 = (tg::randn({2, hidden}) * std::sqrt(2.0 / 2)).requires_grad_();
  Tensor b1 = tg::zeros({hidden}).requires_grad_();
  Tensor w2 = (tg::randn({hidden, classes}) * std::sqrt(1.0 / hidden)).requires_grad_();
  Tensor b2 = tg::zeros({classes}).requires_grad_();
  std::vector<Tensor> params{w1, b1, w2, b2};

  const double lr = 0.5;
  for (int step = 0; step <= 2000; ++step) {
    Tensor h = tg::relu(tg::matmul(x, w1) + b1);
    Tensor logits = tg::matmul(h, w2) + b2;
    // Cross-entropy with a numerically stable log-softmax: logits - max - log(sum(exp(.))).
    Tensor shifted = logits - tg::max(logits, {1}, true).detach();
    Tensor log_probs = shifted - tg::log(tg::sum(tg::exp(shifted), {1}, true));
    Tensor loss = -tg::mean(tg::sum(log_probs * y, {1}));
    for (Tensor& p : params) p.mutable_grad() = {};
    loss.backward();
    {
      tg::NoGradGuard no_grad;
      for (Tensor& p : params) p.add_(p.grad(), -lr);
    }
    if (step % 200 == 0) {
      Tensor pred = tg::argmax(logits, 1);
      Tensor truth = tg::argmax(y, 1);
      double acc = tg::mean(tg::eq(pred, truth).to(tg::kFloat32)).item<double>();
      std::printf("step %4d  loss %.4f  train accuracy %.3f\n", step, loss.item<double>(), acc);
    }
  }
  return 0;
}
