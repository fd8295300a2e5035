// Initialisers, as torch.nn.init; all draw from tg's global generator.
#include "init.hpp"

#include <fmt/format.h>

#include <cmath>

#include "../autograd/autograd.hpp"

namespace tg::nn::init {

double calculate_gain(Nonlinearity n, double param) {
  switch (n) {
    case Nonlinearity::ReLU: return std::sqrt(2.0);
    case Nonlinearity::LeakyReLU: return std::sqrt(2.0 / (1.0 + param * param));
    case Nonlinearity::Tanh: return 5.0 / 3.0;
    default: return 1.0;
  }
}

std::pair<int64_t, int64_t> fans(const Tensor& w) {
  if (!w.defined() || w.dim() < 2)
    throw Error(fmt::format("init: fan in and fan out need a tensor with at least 2 dims, got {}",
                            w.defined() ? shape_str(w.shape()) : "undefined"));
  int64_t receptive = 1;
  for (int64_t d = 2; d < w.dim(); ++d) receptive *= w.size(d);
  return {w.size(1) * receptive, w.size(0) * receptive};
}

namespace {
Tensor& fill_from(Tensor& t, const Tensor& values) {
  NoGradGuard g;
  t.copy_(values);
  return t;
}
}  // namespace

Tensor& normal_(Tensor& t, double mean, double std) {
  return fill_from(t, tg::randn(t.shape(), kFloat64) * std + mean);
}
Tensor& uniform_(Tensor& t, double low, double high) {
  return fill_from(t, tg::rand(t.shape(), kFloat64) * (high - low) + low);
}
Tensor& constant_(Tensor& t, double value) {
  NoGradGuard g;
  t.fill_(value);
  return t;
}
Tensor& zeros_(Tensor& t) { return constant_(t, 0.0); }
Tensor& ones_(Tensor& t) { return constant_(t, 1.0); }

Tensor& xavier_uniform_(Tensor& t, double gain) {
  auto [in, out] = fans(t);
  double a = gain * std::sqrt(6.0 / double(in + out));
  return uniform_(t, -a, a);
}
Tensor& xavier_normal_(Tensor& t, double gain) {
  auto [in, out] = fans(t);
  return normal_(t, 0.0, gain * std::sqrt(2.0 / double(in + out)));
}
Tensor& kaiming_uniform_(Tensor& t, double a, FanMode mode, Nonlinearity nl) {
  auto [in, out] = fans(t);
  double std = calculate_gain(nl, a) / std::sqrt(double(mode == FanMode::FanIn ? in : out));
  double bound = std::sqrt(3.0) * std;
  return uniform_(t, -bound, bound);
}
Tensor& kaiming_normal_(Tensor& t, double a, FanMode mode, Nonlinearity nl) {
  auto [in, out] = fans(t);
  return normal_(t, 0.0, calculate_gain(nl, a) / std::sqrt(double(mode == FanMode::FanIn ? in : out)));
}
Tensor& lecun_normal_(Tensor& t) {
  auto [in, out] = fans(t);
  return normal_(t, 0.0, 1.0 / std::sqrt(double(in)));
}

}  // namespace tg::nn::init
