// The same seed gives the same bits whatever the thread count: every parallel loop is cut by the
// problem's size only, every parallel sum is added in a fixed order, and every element of a
// vectorised function goes through the same code whether it falls in a vector or in a tail.
#include <doctest/doctest.h>

#include <cstring>
#include <memory>
#include <vector>

#include <tapegrad.hpp>

namespace F = tg::nn::functional;
using tg::Tensor;

namespace {

// Conv-BN-ReLU twice, max and average pooling, a sigmoid gate, a linear layer with more rows
// than a GEMM block: every kind of parallel loop the library has (per-sample and per-tile
// convolution, summed weight gradients, row-split GEMM, pooling planes, vectorised exp).
struct Net : tg::nn::Module {
  std::shared_ptr<tg::nn::Sequential> features;
  std::shared_ptr<tg::nn::Linear> fc1, fc2;
  Net() {
    features = register_module("features", std::make_shared<tg::nn::Sequential>(tg::nn::Sequential{
        tg::nn::Conv2d(tg::nn::Conv2dOptions(3, 16, 3).padding(1)), tg::nn::BatchNorm2d(16), tg::nn::ReLU(),
        tg::nn::MaxPool2d(2), tg::nn::Conv2d(tg::nn::Conv2dOptions(16, 24, 3).padding(1).bias(false)),
        tg::nn::BatchNorm2d(24), tg::nn::ReLU(), tg::nn::AvgPool2d(2), tg::nn::Flatten()}));
    fc1 = register_module("fc1", std::make_shared<tg::nn::Linear>(24 * 5 * 5, 70));
    fc2 = register_module("fc2", std::make_shared<tg::nn::Linear>(70, 10));
  }
  Tensor forward(const Tensor& x) override {
    Tensor h = fc1->forward((*features)(x));
    return fc2->forward(h * tg::sigmoid(h));
  }
};

// Six SGD steps with batches of 37 (not a multiple of any thread count), then one step on a
// single image (fewer samples than threads); the losses, an evaluation and the final weights.
std::vector<double> train(int threads) {
  tg::set_num_threads(threads);
  tg::manual_seed(5);
  auto net = std::make_shared<Net>();
  tg::optim::SGD opt(net->parameters(), tg::optim::SGDOptions(0.05).momentum(0.9));
  std::vector<double> out;
  for (int step = 0; step < 7; ++step) {
    const int64_t batch = step < 6 ? 37 : 1;
    Tensor x = tg::randn({batch, 3, 20, 20});
    Tensor y = tg::randint(0, 10, {batch}, tg::kInt64);
    net->train();
    Tensor loss = F::cross_entropy((*net)(x), y);
    opt.zero_grad();
    loss.backward();
    opt.step();
    out.push_back(loss.item<double>());
  }
  net->eval();
  {
    tg::NoGradGuard no_grad;
    for (double v : (*net)(tg::randn({3, 3, 20, 20})).to_vector<double>()) out.push_back(v);
  }
  for (const auto& kv : net->state_dict())
    for (double v : kv.second.to_vector<double>()) out.push_back(v);
  return out;
}

size_t first_difference(const std::vector<double>& a, const std::vector<double>& b) {
  for (size_t i = 0; i < a.size() && i < b.size(); ++i)
    if (std::memcmp(&a[i], &b[i], sizeof(double)) != 0) return i;
  return a.size() == b.size() ? a.size() : std::min(a.size(), b.size());
}

}  // namespace

TEST_CASE("determinism: a conv-BN model trains to the same bits on 1, 2, 3 and 4 threads") {
  const int threads_before = tg::get_num_threads();
  const std::vector<double> one = train(1);
  for (int threads : {2, 3, 4}) {
    const std::vector<double> other = train(threads);
    const size_t i = first_difference(one, other);
    CHECK_MESSAGE(i == one.size(), threads, " threads differ from 1 at value ", i, " of ", one.size(), ": ",
                  i < one.size() ? one[i] : 0.0, " vs ", i < other.size() ? other[i] : 0.0);
  }
  tg::set_num_threads(threads_before);
}

TEST_CASE("determinism: GEMMs cut into row blocks per thread give the same bits on 1 to 4 threads") {
  // One GEMM is split into one block of rows per thread (each repacks the right-hand side
  // once); OpenBLAS sums every element over k in the same order whatever block its row is in.
  const int threads_before = tg::get_num_threads();
  tg::manual_seed(9);
  const Tensor a = tg::randn({301, 517}), b = tg::randn({517, 203});
  const Tensor at = a.t().contiguous();
  tg::set_num_threads(1);
  const std::vector<double> ref = tg::matmul(a, b).to_vector<double>();
  const std::vector<double> ref_t = tg::matmul(at.t(), b).to_vector<double>();
  for (int threads : {2, 3, 4}) {
    tg::set_num_threads(threads);
    const std::vector<double> y = tg::matmul(a, b).to_vector<double>();
    const std::vector<double> yt = tg::matmul(at.t(), b).to_vector<double>();
    CHECK_MESSAGE(first_difference(ref, y) == ref.size(), threads, " threads");
    CHECK_MESSAGE(first_difference(ref_t, yt) == ref_t.size(), threads, " threads, transposed left operand");
  }
  tg::set_num_threads(threads_before);
}
