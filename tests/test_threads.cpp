// Two models trained at the same time on two std::threads of one process end bit for bit where
// the same two trainings end one after the other. What they share is safe to share: grad mode
// and anomaly mode are per thread, the global generator is locked (a draw of a whole tensor is
// atomic), the allocator is locked, and the thread pool runs one job at a time (a thread that
// finds it busy runs its loop inline, over the same chunks).
#include <doctest/doctest.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <tapegrad.hpp>

namespace F = tg::nn::functional;
using tg::Tensor;

namespace {

// conv-BN-ReLU-pool-linear, big enough (32 x 16 x 16 x 16 activations) for the pool to split
// its loops.
std::shared_ptr<tg::nn::Sequential> conv_bn() {
  auto m = std::make_shared<tg::nn::Sequential>();
  m->push_back(std::make_shared<tg::nn::Conv2d>(tg::nn::Conv2dOptions(1, 16, 3).padding(1)));
  m->push_back(std::make_shared<tg::nn::BatchNorm2d>(16));
  m->push_back(std::make_shared<tg::nn::ReLU>());
  m->push_back(std::make_shared<tg::nn::MaxPool2d>(2));
  m->push_back(std::make_shared<tg::nn::Flatten>());
  m->push_back(std::make_shared<tg::nn::Linear>(16 * 8 * 8, 10));
  return m;
}

struct Job {
  tg::nn::StateDict init;
  std::vector<Tensor> inputs, targets;
};

// A model and its data, drawn from the global generator with `seed` (before any thread starts).
Job make_job(uint64_t seed) {
  tg::manual_seed(seed);
  Job j;
  for (const auto& kv : conv_bn()->state_dict()) j.init[kv.first] = kv.second.clone();
  for (int b = 0; b < 4; ++b) {
    j.inputs.push_back(tg::randn({32, 1, 16, 16}));
    j.targets.push_back(tg::randint(0, 10, {32}, tg::kInt64));
  }
  return j;
}

// 12 SGD steps with an evaluation under NoGradGuard every 4th; every value of the final state
// dict and the losses, as bytes.
std::vector<double> train(const Job& j) {
  auto m = conv_bn();
  m->load_state_dict(j.init);
  tg::optim::SGD opt(m->parameters(), tg::optim::SGDOptions(0.05).momentum(0.9));
  std::vector<double> out;
  for (int step = 0; step < 12; ++step) {
    const size_t b = size_t(step) % j.inputs.size();
    m->train();
    Tensor loss = F::cross_entropy((*m)(j.inputs[b]), j.targets[b]);
    opt.zero_grad(true);
    loss.backward();
    opt.step();
    out.push_back(loss.item<double>());
    if (step % 4 == 3) {
      tg::NoGradGuard no_grad;  // this thread's only: the other one is inside backward meanwhile
      m->eval();
      Tensor logits = (*m)(j.inputs[0]);
      out.push_back(logits.sum().item<double>());
      if (logits.requires_grad()) out.push_back(-1);  // marks a leaked grad mode
    }
  }
  for (const auto& kv : m->state_dict())
    for (double v : kv.second.to_vector<double>()) out.push_back(v);
  return out;
}

bool same_bits(const std::vector<double>& a, const std::vector<double>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0;
}

}  // namespace

TEST_CASE("threads: two models trained on two threads at once equal the same trainings one after the other") {
  const int threads_before = tg::get_num_threads();
  tg::set_num_threads(2);  // a pool the two trainings contend for
  const Job a = make_job(1), b = make_job(2);
  const std::vector<double> seq_a = train(a), seq_b = train(b);
  REQUIRE_FALSE(same_bits(seq_a, seq_b));  // two different trainings, so a mix-up would show
  for (int round = 0; round < 3; ++round) {
    std::vector<double> par_a, par_b;
    std::thread ta([&] { par_a = train(a); });
    std::thread tb([&] { par_b = train(b); });
    ta.join();
    tb.join();
    CHECK_MESSAGE(same_bits(par_a, seq_a), "round ", round, ": model A trained beside B differs");
    CHECK_MESSAGE(same_bits(par_b, seq_b), "round ", round, ": model B trained beside A differs");
  }
  tg::set_num_threads(threads_before);
}

TEST_CASE("threads: grad mode is per thread, the generator is shared and never torn") {
  // NoGradGuard on one thread leaves another thread's graph recording.
  std::atomic<int> phase{0};
  bool other_records = false;
  std::thread t([&] {
    tg::NoGradGuard no_grad;
    phase = 1;
    while (phase != 2) std::this_thread::yield();
    CHECK_FALSE(tg::is_grad_enabled());
  });
  while (phase != 1) std::this_thread::yield();
  Tensor x = tg::ones({2}).requires_grad_();
  other_records = (x * 2).requires_grad();
  phase = 2;
  t.join();
  CHECK(other_records);
  CHECK(tg::is_grad_enabled());

  // Two threads drawing whole tensors at once get, between them, exactly the tensors a single
  // thread draws from the same seed, in one order or the other.
  tg::manual_seed(11);
  const std::vector<double> first = tg::randn({50000}).to_vector<double>();
  const std::vector<double> second = tg::randn({50000}).to_vector<double>();
  for (int round = 0; round < 4; ++round) {
    tg::manual_seed(11);
    std::vector<double> u, v;
    std::thread tu([&] { u = tg::randn({50000}).to_vector<double>(); });
    std::thread tv([&] { v = tg::randn({50000}).to_vector<double>(); });
    tu.join();
    tv.join();
    CHECK(((same_bits(u, first) && same_bits(v, second)) || (same_bits(u, second) && same_bits(v, first))));
  }
}

TEST_CASE("threads: anomaly mode is per thread") {
  // A DetectAnomalyGuard on one thread makes a NaN throw there only; another thread's NaN, made
  // while the guard is alive, is an ordinary value.
  std::atomic<int> phase{0};
  bool guarded_threw = false;
  std::thread t([&] {
    tg::DetectAnomalyGuard anomaly;
    phase = 1;
    while (phase != 2) std::this_thread::yield();
    try {
      (void)tg::log(tg::full({2}, -1.0));
    } catch (const tg::Error&) {
      guarded_threw = true;
    }
    phase = 3;
  });
  while (phase != 1) std::this_thread::yield();
  CHECK_FALSE(tg::is_anomaly_enabled());
  Tensor y;
  CHECK_NOTHROW(y = tg::log(tg::full({2}, -1.0)));
  CHECK(std::isnan(y.to_vector<double>()[0]));
  phase = 2;
  while (phase != 3) std::this_thread::yield();
  t.join();
  CHECK(guarded_threw);
}
