// tg::models::WaveNet: causality and the receptive field, gradcheck and gradgradcheck of the
// gated residual layer in float64, the cached generator against the full forward, bad input.
#include <doctest/doctest.h>

#include <cmath>
#include <random>

#include <tapegrad.hpp>

using tg::Tensor;
namespace M = tg::models;

namespace {

M::WaveNetOptions small_options() {
  return M::WaveNetOptions().quantization_channels(16).residual_channels(4).gate_channels(3).skip_channels(5)
      .layers_per_cycle(3).cycles(2);
}

Tensor random_codes(int64_t n, int64_t t, int64_t q, uint64_t seed) {
  std::mt19937_64 rng(seed);
  Tensor c = tg::empty({n, t}, tg::kInt64);
  for (int64_t i = 0; i < n * t; ++i) c.data_ptr<int64_t>()[i] = int64_t(rng() % uint64_t(q));
  return c;
}

// max |a - b| over logits[:, :, from..to) of two forwards
double max_diff(const Tensor& a, const Tensor& b, int64_t from, int64_t to) {
  const Tensor d = tg::abs(a.narrow(2, from, to - from) - b.narrow(2, from, to - from));
  return d.max().item<double>();
}

}  // namespace

TEST_CASE("wavenet: the output at t depends on inputs 0..t only, over exactly the receptive field") {
  tg::manual_seed(7);
  M::WaveNet net(small_options());
  CHECK(net.receptive_field() == 1 + 2 * (1 + 2 + 4));
  const int64_t t_len = 40, t0 = 25, rf = net.receptive_field();
  const Tensor codes = random_codes(2, t_len, 16, 1);
  const Tensor logits = net.forward(codes);
  CHECK(logits.shape() == tg::Shape{2, 16, t_len});

  Tensor later = codes.clone();  // every input after t0 changed
  for (int64_t t = t0 + 1; t < t_len; ++t)
    for (int64_t n = 0; n < 2; ++n) later.data_ptr<int64_t>()[n * t_len + t] = (codes.data_ptr<int64_t>()[n * t_len + t] + 5) % 16;
  const Tensor changed = net.forward(later);
  CHECK(max_diff(logits, changed, 0, t0 + 1) == 0.0);
  CHECK(max_diff(logits, changed, t0 + 1, t_len) > 1e-4);  // the change is seen from t0 + 1 on

  // Changing input s moves outputs s .. s + rf - 1 and no others.
  const int64_t s = 10;
  Tensor one = codes.clone();
  one.data_ptr<int64_t>()[s] = (one.data_ptr<int64_t>()[s] + 3) % 16;
  const Tensor moved = net.forward(one);
  CHECK(max_diff(logits, moved, 0, s) == 0.0);
  CHECK(max_diff(logits, moved, s + rf - 1, s + rf) > 0.0);
  CHECK(max_diff(logits, moved, s + rf, t_len) == 0.0);
}

TEST_CASE("wavenet: the gated residual layer passes gradcheck and gradgradcheck in float64") {
  tg::manual_seed(11);
  auto opts = tg::TensorOptions().dtype(tg::kFloat64);
  const int64_t r = 3, g = 2, s = 2, t = 7;
  const std::vector<Tensor> inputs = {tg::randn({2, r, t}, opts), tg::randn({2 * g, r, 2}, opts) * 0.5,
                                      tg::randn({2 * g}, opts),    tg::randn({r, g, 1}, opts),
                                      tg::randn({r}, opts),        tg::randn({s, g, 1}, opts),
                                      tg::randn({s}, opts)};
  for (int64_t dilation : {1, 2, 4}) {
    CAPTURE(dilation);
    auto fn = [dilation](const std::vector<Tensor>& in) {
      // through a preceding op, so that a zero input gradient cannot pass
      const std::vector<Tensor> out = M::functional::wavenet_residual(in[0] * 1.5, in[1], in[2], in[3], in[4], in[5],
                                                                     in[6], dilation);
      return tg::cat({out[0].flatten(), out[1].flatten()});
    };
    tg::GradcheckResult r1 = tg::gradcheck(fn, inputs);
    CHECK_MESSAGE(r1.ok, r1.message);
    tg::GradcheckResult r2 = tg::gradgradcheck(fn, inputs);
    CHECK_MESSAGE(r2.ok, r2.message);
  }

  // The module: two outputs through forward_list, gradients with respect to its input.
  M::WaveNetResidualBlock block(r, g, s, 2);
  block.to(tg::kFloat64);
  const tg::nn::TensorList out = block(tg::nn::TensorList{inputs[0]});
  REQUIRE(out.size() == 2);
  CHECK(out[0].shape() == tg::Shape{2, r, t});
  CHECK(out[1].shape() == tg::Shape{2, s, t});
  tg::GradcheckResult rb = tg::gradcheck(
      [&](const std::vector<Tensor>& in) {
        const tg::nn::TensorList o = block(tg::nn::TensorList{in[0].tanh()});
        return (o[0].sum() + (o[1] * o[1]).sum()).reshape({1});
      },
      {inputs[0]});
  CHECK_MESSAGE(rb.ok, rb.message);
}

TEST_CASE("wavenet: the cached generator gives the full forward's logits, sample by sample") {
  tg::manual_seed(5);
  M::WaveNet net(small_options().quantization_channels(32).layers_per_cycle(4));
  const int64_t t_len = 60;
  const Tensor codes = random_codes(1, t_len, 32, 9);
  Tensor logits;
  {
    tg::NoGradGuard guard;
    logits = net.forward(codes).contiguous();
  }
  const std::vector<double> full = logits.to_vector<double>();  // [1, 32, T]
  M::WaveNetGenerator gen(net);
  double worst = 0;
  for (int64_t t = 0; t < t_len; ++t) {
    const std::vector<float> step = gen.step(codes.data_ptr<int64_t>()[t]);
    REQUIRE(step.size() == 32);
    for (int64_t k = 0; k < 32; ++k) worst = std::max(worst, std::abs(double(step[k]) - full[size_t(k * t_len + t)]));
  }
  CHECK(worst < 1e-4);

  // reset() forgets the history: the first step's logits again.
  gen.reset();
  const std::vector<float> again = gen.step(codes.data_ptr<int64_t>()[0]);
  for (int64_t k = 0; k < 32; ++k) CHECK(double(again[k]) == doctest::Approx(full[size_t(k * t_len)]).epsilon(1e-4));

  std::mt19937_64 rng(1);
  std::vector<int64_t> sampled = gen.generate(50, rng, 0.8, 3);
  CHECK(sampled.size() == 50);
  for (int64_t c : sampled) CHECK((c >= 0 && c < 32));
  sampled = gen.generate(20, rng);  // from the code of silence, 16 of 32
  for (int64_t c : sampled) CHECK((c >= 0 && c < 32));
}

TEST_CASE("wavenet: bad options and inputs throw tg::Error") {
  CHECK_THROWS_AS(M::WaveNet(M::WaveNetOptions().cycles(0)), tg::Error);
  CHECK_THROWS_AS(M::WaveNetResidualBlock(4, 0, 4, 1), tg::Error);
  M::WaveNet net(small_options());
  CHECK_THROWS_AS(net.forward(tg::zeros({1, 10})), tg::Error);                                   // float codes
  CHECK_THROWS_AS(net.forward(tg::zeros({10}, tg::TensorOptions().dtype(tg::kInt64))), tg::Error);  // [T]
  M::WaveNetResidualBlock block(4, 3, 5, 1);
  CHECK_THROWS_AS(block(tg::nn::TensorList{tg::zeros({1, 4, 5}), tg::zeros({1, 4, 5})}), tg::Error);
  CHECK_THROWS_AS(block(tg::nn::TensorList{tg::zeros({1, 3, 5})}), tg::Error);  // wrong channels
  M::WaveNetGenerator gen(net);
  CHECK_THROWS_AS(gen.step(16), tg::Error);
  CHECK_THROWS_AS(gen.step(-1), tg::Error);
  std::mt19937_64 rng(1);
  CHECK_THROWS_AS(gen.generate(4, rng, 0.0), tg::Error);
  // The parameters are named as the paper's figure reads: layers.<i>.dilated / residual / skip.
  bool found = false;
  for (const auto& [name, p] : net.named_parameters()) found |= name == "layers.5.dilated.weight";
  CHECK(found);
}
