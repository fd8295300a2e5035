// tg::checkpoint and tg::checkpoint_sequential: the same loss, gradients, running statistics and
// random state as without checkpointing, bitwise (the kernels are deterministic), for a residual
// stack with dropout and BatchNorm; nesting, tied parameters, retain_graph, and the errors.
#include <doctest/doctest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <tapegrad.hpp>
#include <vector>

namespace nn = tg::nn;
using tg::Tensor;

namespace {

// x + dropout(relu(bn(conv(x)))): a residual block with every kind of state checkpointing must
// reproduce (parameters, running statistics, random numbers).
struct Block : nn::Module {
  std::shared_ptr<nn::Conv2d> conv;
  std::shared_ptr<nn::BatchNorm2d> bn;
  std::shared_ptr<nn::Dropout> drop;
  explicit Block(int64_t c) : nn::Module("Block") {
    conv = register_module("conv", std::make_shared<nn::Conv2d>(nn::Conv2dOptions(c, c, {3}).padding({1}).bias(false)));
    bn = register_module("bn", std::make_shared<nn::BatchNorm2d>(c));
    drop = register_module("drop", std::make_shared<nn::Dropout>(0.2));
  }
  Tensor forward(const Tensor& x) override { return x + drop->forward(tg::relu(bn->forward(conv->forward(x)))); }
};

std::shared_ptr<nn::Sequential> make_stack(int blocks, int64_t c, uint64_t seed) {
  tg::manual_seed(seed);
  auto seq = std::make_shared<nn::Sequential>();
  for (int i = 0; i < blocks; ++i) seq->push_back(std::make_shared<Block>(c));
  return seq;
}

// Everything a step leaves behind: the loss, every parameter's gradient and every buffer.
struct Outcome {
  double loss;
  std::vector<std::vector<double>> grads, buffers;
  std::vector<double> input_grad;
  std::string rng;
};

// One forward and backward of `stack` on a fixed input, the forward given by `run`.
template <typename Run>
Outcome step(const std::shared_ptr<nn::Sequential>& stack, bool input_requires_grad, Run&& run) {
  tg::manual_seed(99);
  Tensor x = tg::randn({4, 3, 6, 6});
  if (input_requires_grad) x.requires_grad_();
  Tensor w = tg::randn({4, 3, 6, 6});
  Tensor loss = (run(x) * w).sum();
  loss.backward();
  Outcome o;
  o.loss = loss.item<double>();
  for (const Tensor& p : stack->parameters()) {
    REQUIRE(p.grad().defined());
    o.grads.push_back(p.grad().to_vector<double>());
  }
  for (const Tensor& b : stack->buffers()) o.buffers.push_back(b.to_vector<double>());
  if (input_requires_grad) o.input_grad = x.grad().to_vector<double>();
  o.rng = tg::get_rng_state();
  return o;
}

void check_same(const Outcome& a, const Outcome& b) {
  CHECK(a.loss == b.loss);
  REQUIRE(a.grads.size() == b.grads.size());
  for (size_t i = 0; i < a.grads.size(); ++i) {
    CAPTURE(i);
    CHECK(a.grads[i] == b.grads[i]);
  }
  REQUIRE(a.buffers.size() == b.buffers.size());
  for (size_t i = 0; i < a.buffers.size(); ++i) {
    CAPTURE(i);
    CHECK(a.buffers[i] == b.buffers[i]);
  }
  CHECK(a.input_grad == b.input_grad);
  CHECK(a.rng == b.rng);
}

}  // namespace

TEST_CASE("checkpoint: a residual stack with dropout and BatchNorm, bitwise as without it") {
  for (bool input_grad : {true, false}) {
    CAPTURE(input_grad);
    auto plain = make_stack(6, 3, 7);
    Outcome want = step(plain, input_grad, [&](const Tensor& x) { return plain->forward(x); });

    {  // each block checkpointed
      auto stack = make_stack(6, 3, 7);
      Outcome got = step(stack, input_grad, [&](const Tensor& x) {
        Tensor y = x;
        for (size_t i = 0; i < stack->size(); ++i) {
          auto block = (*stack)[i];
          y = tg::checkpoint([block](const std::vector<Tensor>& in) { return block->forward(in[0]); }, {y});
        }
        return y;
      });
      check_same(want, got);
    }
    {  // checkpoint_sequential, 1, 2, 3 and 6 segments
      for (int64_t segments : {1, 2, 3, 6}) {
        CAPTURE(segments);
        auto stack = make_stack(6, 3, 7);
        check_same(want, step(stack, input_grad, [&](const Tensor& x) {
                     return tg::checkpoint_sequential(stack, segments, x);
                   }));
      }
    }
    {  // the running statistics are updated once per forward
      auto stack = make_stack(6, 3, 7);
      step(stack, input_grad, [&](const Tensor& x) { return tg::checkpoint_sequential(stack, 3, x); });
      auto bn = std::dynamic_pointer_cast<Block>((*stack)[0])->bn;
      CHECK(bn->num_batches_tracked.item<int64_t>() == 1);
      CHECK_FALSE(tg::autograd::in_checkpoint_recompute());
    }
  }
}

TEST_CASE("checkpoint: float64, several inputs, and gradients through a preceding op") {
  tg::manual_seed(3);
  Tensor a0 = tg::randn({3, 4}, tg::kFloat64).requires_grad_();
  Tensor b0 = tg::randn({4, 2}, tg::kFloat64).requires_grad_();
  Tensor w = tg::randn({2, 2}, tg::kFloat64).requires_grad_();  // a leaf fn captures
  auto fn = [&](const std::vector<Tensor>& in) { return tg::matmul(tg::tanh(tg::matmul(in[0], in[1])), w).exp(); };
  auto run = [&](bool ckpt) {
    for (Tensor* t : {&a0, &b0, &w}) t->mutable_grad() = {};
    Tensor a = a0 * 2.0, b = b0.sigmoid();  // non-leaf inputs
    Tensor y = ckpt ? tg::checkpoint(fn, {a, b}) : fn({a, b});
    (y * y).sum().backward();
    return std::vector<std::vector<double>>{a0.grad().to_vector<double>(), b0.grad().to_vector<double>(),
                                            w.grad().to_vector<double>()};
  };
  auto want = run(false);
  auto got = run(true);
  CHECK(want == got);
  for (const auto& g : got) CHECK(std::any_of(g.begin(), g.end(), [](double v) { return v != 0; }));
}

TEST_CASE("checkpoint: nested checkpoints") {
  auto plain = make_stack(4, 3, 11);
  Outcome want = step(plain, true, [&](const Tensor& x) { return plain->forward(x); });
  auto stack = make_stack(4, 3, 11);
  Outcome got = step(stack, true, [&](const Tensor& x) {
    // Two outer segments of two blocks; inside each, the second block checkpointed again.
    auto segment = [&](size_t first) {
      return [first, stack](const std::vector<Tensor>& in) {
        Tensor y = (*stack)[first]->forward(in[0]);
        auto inner = (*stack)[first + 1];
        return tg::checkpoint([inner](const std::vector<Tensor>& v) { return inner->forward(v[0]); }, {y});
      };
    };
    return tg::checkpoint(segment(2), {tg::checkpoint(segment(0), {x})});
  });
  check_same(want, got);
}

TEST_CASE("checkpoint: a parameter used inside and outside the checkpoint (tied weights)") {
  tg::manual_seed(5);
  Tensor x = tg::randn({5, 4}, tg::kFloat64);
  Tensor w = tg::randn({4, 4}, tg::kFloat64).requires_grad_();
  auto inside = [&](const std::vector<Tensor>& in) { return tg::tanh(tg::matmul(in[0], w)); };
  auto run = [&](bool ckpt) {
    w.mutable_grad() = {};
    Tensor h = tg::matmul(x, w);  // w's accumulator is pending in the outer pass meanwhile
    Tensor y = ckpt ? tg::checkpoint(inside, {h}) : inside({h});
    Tensor loss = (tg::matmul(y, w) * tg::matmul(h, w)).sum();
    loss.backward();
    return w.grad().to_vector<double>();
  };
  std::vector<double> want = run(false), got = run(true);
  REQUIRE(want.size() == got.size());
  for (size_t i = 0; i < want.size(); ++i) CHECK(got[i] == doctest::Approx(want[i]).epsilon(1e-12));
}

TEST_CASE("checkpoint: fn captures a non-leaf tensor that is used outside too") {
  tg::manual_seed(6);
  Tensor x = tg::randn({4}, tg::kFloat64).requires_grad_();
  Tensor w = tg::randn({4}, tg::kFloat64).requires_grad_();
  auto run = [&](bool ckpt) {
    x.mutable_grad() = {};
    w.mutable_grad() = {};
    Tensor z = (w * 0.5).exp();  // its node waits in the outer pass while the checkpoint runs
    auto fn = [z](const std::vector<Tensor>& in) { return tg::tanh(in[0] * z); };
    Tensor y = ckpt ? tg::checkpoint(fn, {x}) : fn({x});
    (tg::tanh(z * 3.0) + y * y).sum().backward();
    return std::vector<std::vector<double>>{x.grad().to_vector<double>(), w.grad().to_vector<double>()};
  };
  auto want = run(false), got = run(true);
  for (size_t k = 0; k < 2; ++k)
    for (size_t i = 0; i < want[k].size(); ++i) CHECK(got[k][i] == doctest::Approx(want[k][i]).epsilon(1e-12));
}

TEST_CASE("checkpoint: retain_graph backward twice recomputes twice and accumulates twice") {
  tg::manual_seed(8);
  Tensor x = tg::randn({3, 3}, tg::kFloat64).requires_grad_();
  Tensor w = tg::randn({3, 3}, tg::kFloat64).requires_grad_();
  int calls = 0;
  auto fn = [&](const std::vector<Tensor>& in) {
    ++calls;
    return tg::matmul(in[0], w).relu();
  };
  Tensor y = tg::checkpoint(fn, {x});
  CHECK(calls == 1);
  Tensor loss = y.pow(2).sum();
  loss.backward({}, /*retain_graph=*/true);
  CHECK(calls == 2);
  std::vector<double> once = w.grad().to_vector<double>();
  loss.backward();
  CHECK(calls == 3);
  std::vector<double> twice = w.grad().to_vector<double>();
  for (size_t i = 0; i < once.size(); ++i) CHECK(twice[i] == doctest::Approx(2 * once[i]));
  CHECK_THROWS_AS(loss.backward(), tg::Error);  // the graph is freed now
}

TEST_CASE("checkpoint: without grad mode it is the plain call") {
  Tensor x = tg::randn({2, 2}).requires_grad_();
  tg::NoGradGuard guard;
  Tensor y = tg::checkpoint([](const std::vector<Tensor>& in) { return in[0] * 2.0; }, {x});
  CHECK_FALSE(y.requires_grad());
  CHECK(y.to_vector<double>() == (x * 2.0).to_vector<double>());
}

TEST_CASE("checkpoint: double backward and autograd::grad give a clear tg::Error") {
  Tensor x = tg::randn({3}, tg::kFloat64).requires_grad_();
  auto fn = [](const std::vector<Tensor>& in) { return in[0].pow(3); };
  auto message = [](auto&& f) {
    try {
      f();
    } catch (const tg::Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  std::string m1 = message([&] { tg::checkpoint(fn, {x}).sum().backward({}, false, /*create_graph=*/true); });
  CHECK(m1.find("checkpoint") != std::string::npos);
  CHECK(m1.find("create_graph") != std::string::npos);
  std::string m2 = message([&] { tg::autograd::grad({tg::checkpoint(fn, {x}).sum()}, {x}); });
  CHECK(m2.find("checkpoint") != std::string::npos);
  CHECK(m2.find("autograd::grad") != std::string::npos);
  CHECK_FALSE(tg::autograd::in_checkpoint_recompute());
  // The engine is usable afterwards.
  x.mutable_grad() = {};
  tg::checkpoint(fn, {x}).sum().backward();
  std::vector<double> g = x.grad().to_vector<double>(), v = x.to_vector<double>();
  for (size_t i = 0; i < g.size(); ++i) CHECK(g[i] == doctest::Approx(3 * v[i] * v[i]));
}

TEST_CASE("checkpoint: bad arguments throw tg::Error") {
  Tensor x = tg::randn({2, 3}).requires_grad_();
  auto id = [](const std::vector<Tensor>& in) { return in[0] * 1.0; };
  CHECK_THROWS_AS(tg::checkpoint(nullptr, {x}), tg::Error);
  CHECK_THROWS_AS(tg::checkpoint(id, {Tensor()}), tg::Error);
  CHECK_THROWS_AS(tg::checkpoint([](const std::vector<Tensor>&) { return Tensor(); }, {x}), tg::Error);
  // A function that does not compute the same thing when re-run.
  int calls = 0;
  Tensor y = tg::checkpoint(
      [&](const std::vector<Tensor>& in) { return ++calls == 1 ? in[0] * 2.0 : in[0].sum(); }, {x});
  CHECK_THROWS_AS(y.sum().backward(), tg::Error);

  auto stack = make_stack(3, 3, 1);
  Tensor in = tg::randn({2, 3, 4, 4});
  CHECK_THROWS_AS(tg::checkpoint_sequential(stack, 0, in), tg::Error);
  CHECK_THROWS_AS(tg::checkpoint_sequential(stack, 4, in), tg::Error);
  CHECK_THROWS_AS(tg::checkpoint_sequential(std::shared_ptr<nn::Sequential>(), 1, in), tg::Error);
  CHECK_THROWS_AS(tg::checkpoint_sequential(stack, 2, Tensor()), tg::Error);
}
