// Data-parallel training over MPI (docs/distributed.md): every rank trains the same MLP on its
// shard of a generated spiral data set; DistributedDataParallel averages the gradients during
// backward, so the ranks stay in step. Run: mpirun -np 2 ./build/examples/ddp_spiral
#include <tapegrad.hpp>

#include <cmath>
#include <cstdio>
#include <memory>
#include <vector>

namespace dist = tg::distributed;

// Three arms of a spiral, 2-D points; the same on every rank (built from a fixed formula).
struct Spiral : tg::data::Dataset {
  int64_t size() const override { return 3 * 256; }
  tg::data::Example get(int64_t i) const override {
    const int64_t c = i % 3, k = i / 3;
    const double r = double(k) / 256, t = 4.0 * double(c) + 4.0 * r + 0.3 * std::sin(17.0 * double(i));
    return {tg::tensor({r * std::sin(t), r * std::cos(t)}, {2}), tg::scalar_tensor(double(c), tg::kInt64)};
  }
};

int main(int argc, char** argv) {
  dist::init(&argc, &argv);
  const int rank = dist::rank(), world = dist::world_size();

  tg::manual_seed(uint64_t(rank));  // different on each rank: DDP starts everyone from rank 0's weights
  auto model = std::make_shared<tg::nn::Sequential>(std::initializer_list<std::shared_ptr<tg::nn::Module>>{
      std::make_shared<tg::nn::Linear>(2, 64), std::make_shared<tg::nn::ReLU>(), std::make_shared<tg::nn::Linear>(64, 3)});
  auto ddp = std::make_shared<dist::DistributedDataParallel>(model);

  // Each rank reads its shard of every epoch's shuffled order, 32 samples per step.
  Spiral spiral;
  auto sampler = std::make_shared<tg::data::DistributedSampler>(spiral.size(), world, rank);
  tg::data::DataLoader loader(spiral, tg::data::DataLoaderOptions().batch_size(32).sampler(sampler).num_workers(0));
  tg::optim::SGD opt(ddp->parameters(), tg::optim::SGDOptions(0.2).momentum(0.9));

  for (int epoch = 0; epoch < 30; ++epoch) {
    double loss_sum = 0;
    int64_t steps = 0;
    for (auto& batch : loader) {
      tg::Tensor loss = tg::nn::functional::cross_entropy(ddp->forward(batch.data), batch.target);
      opt.zero_grad();
      loss.backward();  // returns with every rank holding the averaged gradients
      opt.step();
      loss_sum += loss.item<double>();
      ++steps;
    }
    tg::Tensor mean_loss = tg::full({1}, loss_sum / double(steps), tg::kFloat64);
    dist::all_reduce(mean_loss);  // the average over ranks of each rank's mean loss
    if (rank == 0 && epoch % 5 == 4)
      std::printf("epoch %2d  loss %.4f  (%d ranks x %lld samples)\n", epoch + 1,
                  mean_loss.item<double>() / world, world, (long long)sampler->size());
  }
  dist::finalize();
}
